//! `blocklist export --format suricata-rules` checked by real Suricata 7: the rules load
//! (`suricata -T`) and, run over the sample capture (`suricata -r`), alert on every pool name the
//! clients look up (subdomains of the entries) and on the pool's TLS SNI, and on nothing benign
//! (look-alikes, the CDN). An allow under a blocked name becomes a `pass` rule that Suricata
//! honours. Skips, saying so, when suricata is not installed (`.ci/deps` installs it).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::service::{bin, sample};

fn suricata() -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join("suricata");
        if p.is_file() {
            return Some(p);
        }
    }
    println!("skipping: suricata not installed (.ci/deps installs it from bookworm-backports)");
    None
}

/// `poolwatch blocklist export --format suricata-rules [-b LIST…]` into `dir/poolwatch.rules`.
fn export_rules(dir: &Path, lists: &[&Path]) -> PathBuf {
    let out = dir.join("poolwatch.rules");
    let mut cmd = Command::new(bin());
    cmd.args(["blocklist", "export", "--format", "suricata-rules", "-o"])
        .arg(&out);
    for l in lists {
        cmd.arg("-b").arg(l);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// A minimal configuration: the packaged suricata.yaml is for a sensor (af-packet, rule paths
/// under /var/lib); the test only needs the dns and tls parsers, eve alerts and fast.log.
fn config(dir: &Path) -> PathBuf {
    let classification = ["/etc/suricata/classification.config"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("suricata's classification.config (installed with suricata)");
    let yaml = format!(
        "%YAML 1.1\n---\ndefault-log-dir: {log}\nclassification-file: {classification}\n\
         default-rule-path: {log}\nrule-files: []\n\
         outputs:\n  - fast:\n      enabled: yes\n      filename: fast.log\n  \
         - eve-log:\n      enabled: yes\n      filename: eve.json\n      types:\n        - alert\n\
         app-layer:\n  protocols:\n    tls:\n      enabled: yes\n    dns:\n      tcp:\n        enabled: yes\n      udp:\n        enabled: yes\n\
         logging:\n  outputs:\n    - console:\n        enabled: yes\n",
        log = dir.display(),
    );
    let p = dir.join("suricata.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

fn run(suricata: &Path, args: &[&std::ffi::OsStr]) -> String {
    let o = Command::new(suricata).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "suricata {args:?} failed:\n{text}");
    text
}

/// Alerts of eve.json as (name looked up or SNI, sid, signature).
fn alerts(eve: &Path) -> Vec<(String, u64, String)> {
    let text = std::fs::read_to_string(eve).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["event_type"] != "alert" {
            continue;
        }
        let name = v["dns"]["query"][0]["rrname"]
            .as_str()
            .or_else(|| v["dns"]["rrname"].as_str())
            .or_else(|| v["tls"]["sni"].as_str())
            .unwrap_or("")
            .to_string();
        out.push((
            name,
            v["alert"]["signature_id"].as_u64().unwrap(),
            v["alert"]["signature"].as_str().unwrap().to_string(),
        ));
    }
    out
}

/// Loads `rules` (`-T`), then reads the sample capture; returns the alerts.
fn check_and_run(suricata: &Path, dir: &Path, rules: &Path) -> Vec<(String, u64, String)> {
    let conf = config(dir);
    let out = run(
        suricata,
        &[
            "-T".as_ref(),
            "-c".as_ref(),
            conf.as_os_str(),
            "-S".as_ref(),
            rules.as_os_str(),
            "-l".as_ref(),
            dir.as_os_str(),
        ],
    );
    assert!(!out.contains("error parsing signature"), "{out}");
    let pcap = sample("sample.pcap");
    run(
        suricata,
        &[
            "-c".as_ref(),
            conf.as_os_str(),
            "-S".as_ref(),
            rules.as_os_str(),
            "-l".as_ref(),
            dir.as_os_str(),
            "-k".as_ref(),
            "none".as_ref(),
            "-r".as_ref(),
            pcap.as_os_str(),
        ],
    );
    alerts(&dir.join("eve.json"))
}

#[test]
fn suricata_loads_the_rules_and_alerts_on_pool_subdomains_only() {
    let Some(suricata) = suricata() else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = export_rules(dir.path(), &[]);
    let text = std::fs::read_to_string(&rules).unwrap();
    // Every rule has a unique sid from the documented range, classtype and MITRE metadata.
    let mut sids = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sid: u64 = line
            .split("sid:")
            .nth(1)
            .and_then(|r| r.split(';').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no sid in {line}"));
        assert!((1_496_000_000..1_500_000_000).contains(&sid), "{line}");
        assert!(sids.insert(sid), "duplicate sid {sid}");
        if line.starts_with("alert") {
            assert!(line.contains("classtype:coin-mining;"), "{line}");
            assert!(line.contains("mitre_technique_id T1496"), "{line}");
            assert!(line.contains("dotprefix; content:\"."), "{line}");
        }
    }
    assert!(sids.len() > 300, "{} rules", sids.len());

    let got = check_and_run(&suricata, dir.path(), &rules);
    let names: BTreeMap<&str, BTreeSet<&str>> = got.iter().fold(BTreeMap::new(), |mut m, a| {
        m.entry(a.0.as_str()).or_default().insert(a.2.as_str());
        m
    });
    // The clients' (and the resolver's upstream) lookups of pool subdomains, and the SNI.
    for (name, signature) in [
        (
            "pool.supportxmr.com",
            "poolwatch pool lookup supportxmr.com (list pools-monero)",
        ),
        (
            "xmr-eu1.nanopool.org",
            "poolwatch pool lookup nanopool.org (list pools-monero)",
        ),
        (
            "pool.minexmr.com",
            "poolwatch pool lookup minexmr.com (list pools-monero)",
        ),
        (
            "gulf.moneroocean.stream",
            "poolwatch pool lookup moneroocean.stream (list pools-monero)",
        ),
        (
            "pool.hashvault.pro",
            "poolwatch pool lookup hashvault.pro (list pools-monero)",
        ),
        (
            "pool.hashvault.pro",
            "poolwatch pool TLS SNI hashvault.pro (list pools-monero)",
        ),
    ] {
        assert!(
            names.get(name).is_some_and(|s| s.contains(signature)),
            "no `{signature}` alert for {name}; alerts: {names:?}"
        );
    }
    // Nothing benign: the web host, its CDN chain, the look-alikes (label boundaries).
    for benign in [
        "www.example.com",
        "edge7.cdn.example.net",
        "notsupportxmr.com",
        "supportxmr.com.evil.example",
    ] {
        assert!(!names.contains_key(benign), "alert on {benign}: {names:?}");
    }
    assert!(
        names.keys().all(|n| !n.is_empty()),
        "an alert without a name: {got:?}"
    );
}

#[test]
fn an_allow_under_a_blocked_name_passes_in_suricata_and_sids_stay_stable() {
    let Some(suricata) = suricata() else { return };
    let dir = tempfile::tempdir().unwrap();
    let lists = dir.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(lists.join("pools.txt"), "supportxmr.com\nnanopool.org\n").unwrap();
    std::fs::write(lists.join("allowlist.txt"), "pool.supportxmr.com\n").unwrap();
    let rules = export_rules(dir.path(), &[&lists]);
    let text = std::fs::read_to_string(&rules).unwrap();
    assert!(
        text.contains("pass dns any any -> any any (msg:\"poolwatch allow pool.supportxmr.com"),
        "{text}"
    );
    let got = check_and_run(&suricata, dir.path(), &rules);
    assert!(
        got.iter().any(|a| a.0 == "xmr-eu1.nanopool.org"),
        "the other pool still alerts: {got:?}"
    );
    assert!(
        !got.iter().any(|a| a.0 == "pool.supportxmr.com"),
        "the allowed name alerted: {got:?}"
    );

    // The same entry keeps its sid in a different set (the shipped lists).
    let full_dir = tempfile::tempdir().unwrap();
    let full = std::fs::read_to_string(export_rules(full_dir.path(), &[])).unwrap();
    let sid_of = |rules: &str, entry: &str| -> Option<String> {
        rules
            .lines()
            .find(|l| l.starts_with("alert dns") && l.contains(&format!("content:\".{entry}\";")))
            .and_then(|l| l.split("sid:").nth(1))
            .and_then(|r| r.split(';').next())
            .map(str::to_string)
    };
    for entry in ["supportxmr.com", "nanopool.org"] {
        let a = sid_of(&text, entry);
        assert!(a.is_some(), "{entry} has a rule");
        assert_eq!(a, sid_of(&full, entry), "sid of {entry} changed");
    }
}
