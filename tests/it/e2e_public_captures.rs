//! Public captures through `poolwatch scan` (built-in lists): the mining captures under
//! `../shared/data/pcaps/mining/` yield the detections their notes (`SOURCES.md`) and the peers
//! (nDPI's expected output, zeek-cryptomining's notices) describe; the benign captures
//! (`pcaps/zeek/**`, `pcaps/ndpi-dns/**`) yield none. Skips when ../shared/data is absent.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::model::{Detection, Stage};

fn shared() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.join("pcaps/mining").is_dir() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

fn scan(file: &Path, extra: &[&str]) -> Vec<Detection> {
    let out = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["scan", "--output", "json", "--no-progress"])
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (client, pool IP) of every `stratum` detection.
fn stratum_pairs(dets: &[Detection]) -> BTreeSet<(IpAddr, IpAddr)> {
    dets.iter()
        .filter(|d| d.stage == Stage::Stratum)
        .flat_map(|d| d.pool_ips.iter().map(move |p| (d.client_ip, *p)))
        .collect()
}

fn methods(d: &Detection) -> BTreeSet<String> {
    d.evidence.iter().filter_map(|e| e.method.clone()).collect()
}

/// One-pool sessions without DNS: exactly one `stratum` detection, no lookup, to that
/// address and port, recognised by that JSON-RPC method.
fn single_session(shared: &Path, file: &str, client: &str, dst: &str, port: u16, method: &str) {
    let dets = scan(&shared.join("pcaps/mining").join(file), &[]);
    assert_eq!(dets.len(), 1, "{file}: {dets:#?}");
    let d = &dets[0];
    assert_eq!(d.stage, Stage::Stratum, "{file}");
    assert_eq!(d.client_ip, ip(client), "{file}");
    assert_eq!(d.pool_ips, vec![ip(dst)], "{file}");
    assert!(d.dst_ports.contains(&port), "{file}: {:?}", d.dst_ports);
    assert_eq!(d.counts.lookups, 0, "{file}");
    assert!(methods(d).contains(method), "{file}: {:?}", methods(d));
    assert!(d.pool_domain.starts_with("stratum:"), "{file}");
}

#[test]
fn nesfit_single_pool_sessions() {
    let Some(sh) = shared() else { return };
    let n = "nesfit-DI-cryptominingdetection";
    // Ethereum getwork over Stratum-ish TCP (eth_submitLogin first) to nanopool.
    single_session(
        &sh,
        &format!("{n}/eth-eu1.nanopool.org.pcapng"),
        "147.229.13.222",
        "185.71.66.39",
        9999,
        "eth_submitLogin",
    );
    // Ethereum getwork over HTTP POST on port 80: the JSON-RPC body follows HTTP headers.
    single_session(
        &sh,
        &format!("{n}/pool.eth.pp.ua.pcapng"),
        "147.229.13.222",
        "88.198.15.41",
        80,
        "eth_submitHashrate",
    );
    // Monero Stratum (XMRig-style login with an agent).
    single_session(
        &sh,
        &format!("{n}/xmr-eu1.nanopool.org.pcapng"),
        "147.229.13.222",
        "185.71.66.20",
        14444,
        "login",
    );
    // ZCash Stratum (mining.subscribe).
    single_session(
        &sh,
        &format!("{n}/zec-eu.suprnova.cc.pcapng"),
        "147.229.13.222",
        "37.187.149.70",
        2142,
        "mining.subscribe",
    );
}

#[test]
fn nesfit_cgminer_probing() {
    let Some(sh) = shared() else { return };
    let dir = sh.join("pcaps/mining/nesfit-DI-cryptominingdetection");
    // g0: DNS for litecoinpool.org / us. / us2. (listed), then Stratum + getwork +
    // getblocktemplate to those answers and to many pool IPs without DNS.
    let dets = scan(&dir.join("cgminer.g0.pcapng"), &[]);
    let ltc: Vec<&Detection> = dets
        .iter()
        .filter(|d| d.pool_domain == "litecoinpool.org")
        .collect();
    assert_eq!(ltc.len(), 1, "{dets:#?}");
    assert_eq!(ltc[0].stage, Stage::Stratum);
    assert!(ltc[0].counts.lookups >= 3, "{:?}", ltc[0].counts);
    assert!(ltc[0]
        .query_names
        .iter()
        .any(|q| q == "us2.litecoinpool.org"));
    let all_methods: BTreeSet<String> = dets.iter().flat_map(methods).collect();
    for m in ["mining.subscribe", "getwork", "getblocktemplate"] {
        assert!(all_methods.contains(m), "g0 lacks {m}: {all_methods:?}");
    }
    // s0 (Stratum probing + unrelated desktop DNS: dropbox, microsoft), s1 and s2 (no DNS):
    // only `stratum` detections of the miner, nothing for the desktop lookups.
    for (f, min) in [
        ("cgminer.g0.pcapng", 40),
        ("cgminer.s0.pcapng", 10),
        ("cgminer.s1.pcapng", 50),
        ("cgminer.s2.pcapng", 50),
    ] {
        let dets = scan(&dir.join(f), &[]);
        assert!(dets.iter().any(|d| !d.agents.is_empty()), "{f}: no agent");
        assert!(dets.len() >= min, "{f}: only {}", dets.len());
        for d in &dets {
            assert_eq!(d.client_ip, ip("192.168.1.100"), "{f}");
            assert_eq!(d.stage, Stage::Stratum, "{f}: {}", d.pool_domain);
            // getwork-only sessions carry no agent; every agent seen is cgminer's.
            assert!(
                d.agents.iter().all(|a| a.starts_with("cgminer/")),
                "{f}: {:?}",
                d.agents
            );
        }
    }
}

#[test]
fn ndpi_mining_flows_match_ndpi() {
    let Some(sh) = shared() else { return };
    // nDPI's expected output lists its Mining flows as `TCP a:p <-> b:q [proto: 42/Mining]`.
    let expected_text =
        std::fs::read_to_string(sh.join("peer-expected/ndpi/mining.pcapng.out")).unwrap();
    let mut want = BTreeSet::new();
    for line in expected_text.lines().filter(|l| l.contains("/Mining]")) {
        let mut it = line.split_whitespace().skip_while(|w| *w != "TCP").skip(1);
        let (Some(a), Some(_), Some(b)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let host = |s: &str| ip(s.rsplit_once(':').unwrap().0);
        want.insert((host(a), host(b)));
    }
    assert_eq!(want.len(), 4, "{want:?}");
    let dets = scan(&sh.join("pcaps/mining/ndpi/mining.pcapng"), &[]);
    assert_eq!(stratum_pairs(&dets), want, "{dets:#?}");
    // monero.pcap is Monero P2P node traffic (port 18080), not pool mining: nDPI calls it
    // Monero, not Mining, and so do we (nothing).
    let dets = scan(&sh.join("pcaps/mining/ndpi/monero.pcap"), &[]);
    assert!(dets.is_empty(), "{dets:#?}");
}

#[test]
fn zeek_cryptomining_matches_zeek_notices() {
    let Some(sh) = shared() else { return };
    let z = sh.join("pcaps/mining/zeek-cryptomining");
    // Zeek's notices: Mining_Pool_Server at 74.84.128.158:3333 and 113.21.199.11:3333, miner
    // 10.0.2.15 (Stratum subscribe/authorize/notify, getwork, getblocktemplate).
    let notices = std::fs::read_to_string(
        sh.join("peer-expected/zeek-cryptomining/tests.bitcoin-mining/out"),
    )
    .unwrap();
    let want: BTreeSet<(IpAddr, IpAddr)> = notices
        .lines()
        .filter(|l| l.contains("Mining_Pool_Server"))
        .filter_map(|l| {
            let o = l.split("orig_h=").nth(1)?.split(',').next()?;
            let r = l.split("resp_h=").nth(1)?.split(',').next()?;
            Some((ip(o), ip(r)))
        })
        .collect();
    assert_eq!(want.len(), 2);
    let dets = scan(&z.join("bitcoin-mining.pcap"), &[]);
    assert_eq!(stratum_pairs(&dets), want, "{dets:#?}");
    let all: BTreeSet<String> = dets.iter().flat_map(methods).collect();
    for m in ["mining.subscribe", "getwork", "getblocktemplate"] {
        assert!(all.contains(m), "lacks {m}: {all:?}");
    }
    assert!(dets
        .iter()
        .all(|d| d.agents.iter().any(|a| a.starts_with("bfgminer/"))));

    // In progress: the capture starts mid-session (the pool pushes mining.notify); the miner
    // then looks up bitminter.com, whose answers are the web site (104.24.x, Cloudflare), not
    // the pool address. bitminter.com (a closed pool) is not on the built-in lists: one
    // `stratum` detection for the pool address.
    let f = z.join("bitcoin-mining-in-progress.pcap");
    let dets = scan(&f, &[]);
    assert_eq!(
        stratum_pairs(&dets),
        BTreeSet::from([(ip("10.0.2.15"), ip("74.84.128.158"))])
    );
    assert_eq!(dets.len(), 1);
    assert!(methods(&dets[0]).contains("mining.notify"));
    // With bitminter.com on a list, the lookup is seen too (and its answers are connected to
    // over HTTPS: `connection`); the stratum session stays attributed to the address.
    let list = std::env::temp_dir().join(format!("pw-e2e-bitminter-{}.txt", std::process::id()));
    std::fs::write(&list, "bitminter.com\n").unwrap();
    let dets = scan(&f, &["--blocklist", list.to_str().unwrap()]);
    let _ = std::fs::remove_file(&list);
    let bm: Vec<&Detection> = dets
        .iter()
        .filter(|d| d.pool_domain == "bitminter.com")
        .collect();
    assert_eq!(bm.len(), 1, "{dets:#?}");
    assert!(bm[0].counts.lookups >= 1 && bm[0].stage >= Stage::Lookup);
    assert_eq!(
        stratum_pairs(&dets),
        BTreeSet::from([(ip("10.0.2.15"), ip("74.84.128.158"))])
    );
}

#[test]
fn benign_captures_yield_nothing() {
    let Some(sh) = shared() else { return };
    let mut files = Vec::new();
    for dir in ["pcaps/zeek", "pcaps/ndpi-dns"] {
        collect(&sh.join(dir), &mut files);
    }
    assert!(files.len() >= 10, "only {} benign captures", files.len());
    for f in &files {
        let dets = scan(f, &[]);
        assert!(dets.is_empty(), "{}: {dets:#?}", f.display());
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| matches!(x, "pcap" | "pcapng" | "cap"))
        {
            out.push(p);
        }
    }
}
