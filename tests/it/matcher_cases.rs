//! Table-driven matching semantics over the project's own fixtures (tests/data/blocklists).

use std::net::IpAddr;
use std::path::PathBuf;

use poolwatch::matcher::{Automaton, Blocklists, ListSource};
use poolwatch::model::Category;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blocklists")
        .join(name)
}

fn fixture_set() -> Blocklists {
    let paths: Vec<PathBuf> = [
        "plain.txt",
        "hosts.txt",
        "adblock.txt",
        "dnsmasq.txt",
        "allow.txt",
    ]
    .iter()
    .map(|f| fixture(f))
    .collect();
    Blocklists::load(&paths).expect("fixtures load")
}

/// (case name, query, expected entry or None).
const NAME_CASES: &[(&str, &str, Option<&str>)] = &[
    ("exact entry", "supportxmr.com", Some("supportxmr.com")),
    ("subdomain", "pool.supportxmr.com", Some("supportxmr.com")),
    (
        "deep subdomain",
        "a.b.c.pool.supportxmr.com",
        Some("supportxmr.com"),
    ),
    (
        "uppercase query",
        "POOL.SUPPORTXMR.COM",
        Some("supportxmr.com"),
    ),
    (
        "mixed case 0x20",
        "pOoL.sUpPoRtXmR.cOm",
        Some("supportxmr.com"),
    ),
    (
        "trailing dot",
        "pool.supportxmr.com.",
        Some("supportxmr.com"),
    ),
    (
        "entry written uppercase with dot",
        "gulf.moneroocean.stream",
        Some("moneroocean.stream"),
    ),
    ("look-alike prefix glued", "notsupportxmr.com", None),
    (
        "look-alike entry as prefix",
        "supportxmr.com.evil.example",
        None,
    ),
    (
        "look-alike cdn suffix",
        "moneroocean.stream.cdn-cache.net",
        None,
    ),
    ("look-alike hyphenated", "supportxmr-com.example", None),
    ("look-alike single char", "xsupportxmr.com", None),
    ("look-alike tld swap", "supportxmr.net", None),
    ("parent of entry", "example.net", None),
    ("sibling of entry", "other.example.net", None),
    (
        "most specific wins (parent)",
        "x.pool.example.net",
        Some("pool.example.net"),
    ),
    (
        "most specific wins (child)",
        "x.deep.pool.example.net",
        Some("deep.pool.example.net"),
    ),
    (
        "overlap exact child",
        "deep.pool.example.net",
        Some("deep.pool.example.net"),
    ),
    ("allow under block", "safe.pool.example.net", None),
    ("allow subtree", "a.safe.pool.example.net", None),
    (
        "block sibling of allow",
        "unsafe.pool.example.net",
        Some("pool.example.net"),
    ),
    (
        "wildcard entry covers apex",
        "wild.example",
        Some("wild.example"),
    ),
    (
        "wildcard entry covers sub",
        "a.wild.example",
        Some("wild.example"),
    ),
    ("wildcard not glued", "notwild.example", None),
    ("ddns root allowed", "someone.duckdns.org", None),
    (
        "ddns specific pool still flagged",
        "a.xmr.duckdns.org",
        Some("xmr.duckdns.org"),
    ),
    (
        "ddns exact pool",
        "xmr.duckdns.org",
        Some("xmr.duckdns.org"),
    ),
    (
        "idn entry via punycode query",
        "pool.xn--bcher-pool-9db.example",
        Some("xn--bcher-pool-9db.example"),
    ),
    (
        "idn entry via unicode query",
        "pool.bücher-pool.example",
        Some("xn--bcher-pool-9db.example"),
    ),
    ("idn look-alike", "bucher-pool.example", None),
    (
        "hosts entry a",
        "hostpool-a.example",
        Some("hostpool-a.example"),
    ),
    (
        "hosts entry b second name",
        "x.hostpool-b.example",
        Some("hostpool-b.example"),
    ),
    (
        "hosts entry with inline comment",
        "hostpool-c.example",
        Some("hostpool-c.example"),
    ),
    ("hosts localhost ignored", "localhost", None),
    (
        "adblock block",
        "www.coin-miner.example",
        Some("coin-miner.example"),
    ),
    (
        "adblock third-party option",
        "coin-miner2.example",
        Some("coin-miner2.example"),
    ),
    ("adblock exception", "ok.coin-miner.example", None),
    ("adblock exception subtree", "a.ok.coin-miner.example", None),
    ("adblock domain-scoped rule skipped", "scoped.example", None),
    (
        "dnsmasq server first domain",
        "dm-a.example",
        Some("dm-a.example"),
    ),
    (
        "dnsmasq server second domain",
        "x.dm-b.example",
        Some("dm-b.example"),
    ),
    ("dnsmasq address", "dm-c.example", Some("dm-c.example")),
    ("dnsmasq local", "dm-d.example", Some("dm-d.example")),
    (
        "name:port entry matches the name",
        "pool.example.org",
        Some("pool.example.org"),
    ),
    ("empty name", "", None),
    ("lone dot", ".", None),
    ("double trailing dot", "pool.supportxmr.com..", None),
    ("overlong name", "", None),
    ("space inside", "pool supportxmr.com", None),
    ("tld only", "com", None),
];

#[test]
fn name_cases() {
    let b = fixture_set();
    let reference = Automaton::new(b.name_entries().iter().map(|h| h.entry.as_str())).unwrap();
    let long = format!("{}.supportxmr.com", "a.".repeat(130));
    let mut failures = Vec::new();
    for (case, q, want) in NAME_CASES {
        let q = if *case == "overlong name" {
            long.as_str()
        } else {
            q
        };
        let got = b.match_name(q).map(|h| h.entry.as_str());
        if got != *want {
            failures.push(format!(
                "{case}: match_name({q:?}) = {got:?}, want {want:?}"
            ));
        }
        // The reference automaton agrees on ASCII input (it does not convert IDN).
        if q.is_ascii() {
            let alt = reference
                .find(q)
                .map(|i| &b.name_entries()[i])
                .filter(|h| h.category != Category::Allow)
                .map(|h| h.entry.as_str());
            if alt != got && !q.contains(' ') {
                failures.push(format!("{case}: automaton {alt:?} != hash walk {got:?}"));
            }
        }
    }
    assert!(NAME_CASES.len() >= 40);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hit_reports_list_line_and_category() {
    let b = fixture_set();
    let h = b.match_name("xmr.moneroocean.stream").unwrap();
    assert_eq!(
        (h.list.as_str(), h.line, h.category),
        ("plain", 3, Category::Pool)
    );
    let h = b.match_name("hostpool-c.example").unwrap();
    assert_eq!((h.list.as_str(), h.line), ("hosts", 5));
    let h = b.explain_name("ok.coin-miner.example").unwrap();
    assert_eq!((h.list.as_str(), h.category), ("adblock", Category::Allow));
}

/// (case name, address, port, expected entry or None).
const IP_CASES: &[(&str, &str, Option<u16>, Option<&str>)] = &[
    ("exact ipv4", "203.0.113.7", None, Some("203.0.113.7")),
    (
        "exact ipv4 any port",
        "203.0.113.7",
        Some(443),
        Some("203.0.113.7"),
    ),
    ("ipv4 neighbour", "203.0.113.8", None, None),
    (
        "cidr member",
        "198.51.100.200",
        Some(3333),
        Some("198.51.100.0/24"),
    ),
    (
        "cidr boundary low",
        "198.51.100.0",
        None,
        Some("198.51.100.0/24"),
    ),
    ("cidr outside", "198.51.101.1", None, None),
    (
        "allowlisted address inside cidr",
        "198.51.100.9",
        None,
        None,
    ),
    (
        "endpoint right port",
        "192.0.2.10",
        Some(3333),
        Some("192.0.2.10:3333"),
    ),
    ("endpoint wrong port", "192.0.2.10", Some(80), None),
    (
        "endpoint without port",
        "192.0.2.10",
        None,
        Some("192.0.2.10:3333"),
    ),
    (
        "ipv6 endpoint",
        "2001:db8::7",
        Some(4444),
        Some("[2001:db8::7]:4444"),
    ),
    (
        "ipv6 cidr",
        "2001:db8:1:ffff::1",
        None,
        Some("2001:db8:1::/48"),
    ),
    ("ipv6 outside", "2001:db8:2::1", None, None),
    (
        "v4-mapped v6",
        "::ffff:203.0.113.7",
        None,
        Some("203.0.113.7"),
    ),
];

#[test]
fn ip_cases() {
    let b = fixture_set();
    let mut failures = Vec::new();
    for (case, ip, port, want) in IP_CASES {
        let ip: IpAddr = ip.parse().unwrap();
        let got = b.match_ip(ip, *port).map(|h| h.entry.as_str());
        if got != *want {
            failures.push(format!(
                "{case}: match_ip({ip}, {port:?}) = {got:?}, want {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn directories_with_and_without_manifest() {
    let b = Blocklists::load(&[fixture("dir-plain")]).unwrap();
    assert_eq!(b.match_name("list-one.example").unwrap().list, "one");
    assert_eq!(b.match_name("a.list-two.example").unwrap().list, "two");
    assert!(
        b.match_name("ignored.example").is_none(),
        "README.md is not a list"
    );
    let b = Blocklists::load(&[fixture("dir-manifest")]).unwrap();
    assert_eq!(
        b.match_name("x.mf-pool.example").unwrap().list,
        "manifest-pools"
    );
    assert!(b.match_name("ok.mf-pool.example").is_none());
    let rep = b.stats();
    assert_eq!(rep.lists[0].license.as_deref(), Some("MIT OR Apache-2.0"));
}

#[test]
fn lab_ground_truth_on_shipped_lists() {
    let b = Blocklists::builtin().unwrap();
    // Every pool name the lab's hosts really looked up (ground truth) matches the shipped lists.
    let gt = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lab/ground-truth.json");
    match std::fs::read_to_string(&gt) {
        Ok(text) => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut n = 0;
            for run in v["runs"].as_array().into_iter().flatten() {
                for h in run["hosts"].as_array().into_iter().flatten() {
                    for m in h["pool_matches"].as_array().into_iter().flatten() {
                        let name = m["matched_name"].as_str().unwrap().to_ascii_lowercase();
                        assert!(b.match_name(&name).is_some(), "lab pool name {name}");
                        n += 1;
                    }
                }
            }
            assert!(n > 0);
        }
        Err(_) => println!("skipping: {} is absent", gt.display()),
    }
    // The lab's list entries, narrowed where the shipped lists list only the pool hosts of a
    // multi-purpose domain (blocklists/multi-purpose.toml).
    for n in [
        "supportxmr.com",
        "moneroocean.stream",
        "nanopool.org",
        "2miners.com",
        "hashvault.pro",
        "braiins.com",
        "minexmr.com",
        "randomxmonero.auto.nicehash.com",
        "minergate.com",
        "btc.viabtc.com",
        "prohashing.com",
        "woolypooly.com",
        "c3pool.com",
        "herominers.com",
        "f2pool.com",
        "unmineable.com",
        "kryptex.network",
        "xmr-eu1.nanopool.org",
        "gulf.moneroocean.stream.",
        "coinhive.com",
        "donate.v2.xmrig.com",
    ] {
        assert!(
            b.match_name(n).is_some(),
            "{n} must match the shipped lists"
        );
    }
    for n in [
        "notsupportxmr.com",
        "supportxmr.com.evil.example",
        "moneroocean.stream.cdn-cache.net",
        "my2miners.com",
        "nanopool.org-status.info",
        "xmr-eu1.nanopool.org.corp-intranet.net",
        "www.binance.com",
        "www.nicehash.com",
        "explorer.viabtc.com",
        "explorer.btc.com",
        "coinbase.com",
        "trezor.io",
        "home.duckdns.org",
        "example.com",
    ] {
        assert!(
            b.match_name(n).is_none(),
            "{n} must not match the shipped lists"
        );
    }
    assert_eq!(
        b.match_name("pool.supportxmr.com").unwrap().category,
        Category::Pool
    );
    assert_eq!(
        b.match_name("coinhive.com").unwrap().category,
        Category::BrowserMiner
    );
    assert_eq!(
        b.match_name("donate.v2.xmrig.com").unwrap().category,
        Category::MinerProxy
    );
}

#[test]
fn builtin_is_identical_to_the_files_on_disk() {
    // The binary embeds blocklists/; loading the directory must give the same set.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("blocklists");
    let a = Blocklists::builtin().unwrap();
    let b = Blocklists::load(&[dir]).unwrap();
    assert_eq!(a.name_entries(), b.name_entries());
    assert_eq!(a.len(), b.len());
}

#[test]
fn in_memory_sources_and_empty_sets() {
    let src = vec![
        ListSource::memory("user", Category::Pool, None, "user-pool.example\n"),
        ListSource::memory(
            "user-allow",
            Category::Allow,
            None,
            "ok.user-pool.example\n",
        ),
    ];
    let (b, rep) = Blocklists::build(src).unwrap();
    assert!(b.match_name("x.user-pool.example").is_some());
    assert!(b.match_name("ok.user-pool.example").is_none());
    assert_eq!(rep.categories.get("allow"), Some(&1));
    assert!(Blocklists::build(vec![ListSource::memory(
        "e",
        Category::Pool,
        None,
        "# nothing\n"
    )])
    .is_err());
    let err = Blocklists::build(vec![ListSource::memory(
        "bad",
        Category::Pool,
        None,
        "\nbad..example\n",
    )])
    .unwrap_err()
    .to_string();
    assert!(err.contains("<memory>:2:"), "{err}");
    assert!(Blocklists::empty().match_name("supportxmr.com").is_none());
    assert!(Blocklists::empty().is_empty());
}
