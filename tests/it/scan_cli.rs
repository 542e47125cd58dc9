//! `poolwatch scan` end to end: the real binary over observation files, exit codes, outputs,
//! a kept database, and clear errors.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::model::{Detection, Stage};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_poolwatch"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/observations")
        .join(name)
}

fn by_client(dets: &[Detection]) -> HashMap<String, Vec<&Detection>> {
    let mut m: HashMap<String, Vec<&Detection>> = HashMap::new();
    for d in dets {
        m.entry(d.client_ip.to_string()).or_default().push(d);
    }
    m
}

fn parse_lines(stdout: &[u8]) -> Vec<Detection> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one Detection"))
        .collect()
}

#[test]
fn json_output_covers_every_stage() {
    let out = bin()
        .args(["scan", "--format", "observations", "--output", "json"])
        .arg(fixture("mini.jsonl"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "detections found → exit 1; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dets = parse_lines(&out.stdout);
    let m = by_client(&dets);
    let one = |ip: &str| -> &Detection {
        let v = m
            .get(ip)
            .unwrap_or_else(|| panic!("{ip} not detected: {dets:#?}"));
        assert_eq!(v.len(), 1, "{ip}: one incident");
        v[0]
    };
    let a = one("10.0.0.11");
    assert_eq!(
        (a.stage, a.pool_domain.as_str()),
        (Stage::Stratum, "supportxmr.com")
    );
    assert_eq!(a.counts.lookups, 1, "pcap + log copy = one lookup");
    assert_eq!(a.sources.len(), 2);
    assert_eq!(a.counts.flows, 1, "interim superseded by final");
    assert_eq!(a.counts.bytes_in, 65536);
    assert!(a.risk_score > 95 && a.risk_score <= 100);
    assert!(a.is_new);
    let b = one("10.0.0.12");
    assert_eq!((b.stage, b.risk_score), (Stage::Lookup, 60));
    let c = one("10.0.0.13");
    assert_eq!(c.stage, Stage::BlockedLookup);
    assert_eq!(c.counts.blocked_lookups, 2);
    let d = one("10.0.0.14");
    assert_eq!(
        (d.stage, d.pool_domain.as_str()),
        (Stage::DirectIp, "supportxmr.com")
    );
    assert_eq!(d.counts.lookups, 0);
    let f = one("10.0.0.16");
    assert_eq!((f.stage, f.risk_score), (Stage::ConnectionAttempt, 84));
    assert_eq!(f.pool_domain, "moneroocean.stream");
    let g = one("10.0.0.17");
    assert_eq!(
        (g.stage, g.pool_domain.as_str()),
        (Stage::Stratum, "stratum:203.0.113.99")
    );
    let h = one("10.0.0.18");
    assert_eq!(h.stage, Stage::BlockedLookup);
    for benign in ["10.0.0.15", "10.0.0.19", "192.0.2.53", "192.0.2.1"] {
        assert!(!m.contains_key(benign), "{benign} must not be reported");
    }
    assert_eq!(dets.len(), 7);
}

#[test]
fn table_output_and_kept_db_with_suppression() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Suppress one client in the database first; the incident is still recorded, marked.
    {
        let store = poolwatch::store::Store::open(&db).unwrap();
        store
            .add_suppression(poolwatch::query::NewSuppression {
                client: Some("10.0.0.12/32".parse().unwrap()),
                pool: None,
                expires: None,
                reason: "analyst lab box".into(),
            })
            .unwrap();
    }
    let out = bin()
        .args(["scan", "--format", "observations", "--db"])
        .arg(&db)
        .arg(fixture("mini.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FIRST SEEN") && text.contains("stratum:203.0.113.99"),
        "{text}"
    );
    assert!(text.contains("suppressed"), "{text}");
    assert!(text.contains("7 detection(s), 6 unsuppressed"), "{text}");
    let store = poolwatch::store::Store::open(&db).unwrap();
    let all = store.all_detections().unwrap();
    assert_eq!(all.len(), 7);
    let b = all
        .iter()
        .find(|d| d.client_ip.to_string() == "10.0.0.12")
        .unwrap();
    assert!(b.suppressed && b.suppression_id.is_some());
    // A second scan of the same data continues the incidents (no duplicates) and they are no
    // longer new.
    drop(store);
    let again = bin()
        .args([
            "scan",
            "--format",
            "observations",
            "--output",
            "json",
            "--db",
        ])
        .arg(&db)
        .arg(fixture("mini.jsonl"))
        .output()
        .unwrap();
    let dets = parse_lines(&again.stdout);
    assert_eq!(dets.len(), 7, "same incidents, not new rows");
}

#[test]
fn no_detections_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("benign.jsonl");
    let text: String = std::fs::read_to_string(fixture("mini.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("10.0.0.15") || l.contains("10.0.0.19"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&p, text).unwrap();
    let out = bin()
        .args(["scan", "--format", "observations"])
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no detections"));
}

#[test]
fn errors_are_clear_and_exit_two() {
    let out = bin()
        .args(["scan", "/nonexistent/file.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/file.pcap"), "{err}");
    assert!(!err.contains("panicked"));

    let out = bin()
        .args(["scan", "--format", "nosuchformat"])
        .arg(fixture("mini.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown format"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"observation\":\"dns\",\"ts\":12\n").unwrap();
    let out = bin()
        .args(["scan", "--format", "observations"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.jsonl:1"));
}

#[test]
fn lab_runs_through_the_binary() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let dir = tempfile::tempdir().unwrap();
    for run in gt["runs"].as_array().unwrap() {
        let obs = support::run_observations(&gt, run);
        // Split DNS and flows into two inputs to exercise the k-way merge.
        let (dns, flows): (Vec<_>, Vec<_>) = obs
            .into_iter()
            .partition(|o| matches!(o, poolwatch::model::Observation::Dns(_)));
        let a = dir.path().join("dns.jsonl");
        let b = dir.path().join("flows.jsonl");
        support::write_jsonl(&a, &dns);
        support::write_jsonl(&b, &flows);
        let out = bin()
            .args([
                "scan",
                "--format",
                "observations",
                "--output",
                "json",
                "--blocklist",
            ])
            .arg(shared.join("lab/pool-domains.txt"))
            .arg(&a)
            .arg(&b)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let dets = parse_lines(&out.stdout);
        let problems = support::check_verdicts(&gt, run, &dets);
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
