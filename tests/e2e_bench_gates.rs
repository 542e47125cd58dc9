//! The bench generator's correctness gates (../shared/bench/README.md, G1–G3) through the whole
//! job, `poolwatch scan`, on the pcap and on the BIND / Unbound / dnsmasq logs.
//!
//! What "a detection" means here: the generator's `expected_pool_queries` counts *queries*
//! (rows of truth-queries.csv with a `matched_entry`), while poolwatch reports one detection per
//! (client, pool entry) incident. So G1 is checked at both levels: the set of (client, entry)
//! incidents equals the distinct (client, matched_entry) pairs of the truth file, and the sum
//! of the incidents' `counts.lookups + counts.blocked_lookups` equals `expected_pool_queries`.
//! G2 (`expected_pool_flows_within_ttl`) is counted on the stored pool flows whose attribution
//! is "own lookup", with `--binding-grace 0` so that a binding lives exactly for its TTL (the
//! default grace of 6 h deliberately keeps bindings longer, see docs/detections.md). No `decoy`
//! name may appear in any detection; malformed packets must not stop the job (exit 0/1);
//! mDNS (port 5353) never yields a lookup (it would add pairs the truth does not have).
//!
//! - `tiny_workload_gates` (always on when ../shared/bench and python3 exist): generates
//!   `--preset tiny` (20k packets, ~1 s) into a temp dir and checks everything.
//! - `bench_dir_gates`: `POOLWATCH_BENCH_DIR=DIR` (a generated small/large workload) checks
//!   the same on it. `POOLWATCH_BIN=target/release/poolwatch` runs a release binary instead of
//!   the test's debug one (the large pcap takes minutes in debug).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::model::{Detection, Stage};
use poolwatch::store::Store;

fn bin() -> PathBuf {
    std::env::var_os("POOLWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_poolwatch")))
}

struct Truth {
    pairs: BTreeSet<(String, String)>,
    decoys: BTreeSet<String>,
    pool_queries: u64,
    flows_within_ttl: u64,
}

fn truth(dir: &Path) -> Truth {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let counts = &manifest["counts"];
    let text = std::fs::read_to_string(dir.join("truth-queries.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (c_client, c_qname, c_entry, c_kind) = (
        col("client"),
        col("qname"),
        col("matched_entry"),
        col("kind"),
    );
    let (mut pairs, mut decoys, mut rows) = (BTreeSet::new(), BTreeSet::new(), 0u64);
    for l in lines {
        // `answers` is space-separated, so splitting on ',' keeps the columns.
        let f: Vec<&str> = l.split(',').collect();
        let entry = f[c_entry];
        if !entry.is_empty() {
            rows += 1;
            pairs.insert((f[c_client].to_string(), entry.to_string()));
        }
        if f[c_kind] == "decoy" {
            decoys.insert(f[c_qname].to_ascii_lowercase());
        }
    }
    let pool_queries = counts["expected_pool_queries"].as_u64().unwrap();
    assert_eq!(rows, pool_queries, "truth file and manifest disagree");
    Truth {
        pairs,
        decoys,
        pool_queries,
        flows_within_ttl: counts["expected_pool_flows_within_ttl"].as_u64().unwrap(),
    }
}

/// Runs the scan into a database under `db`, returns the stored detections and the number of
/// stored pool flows attributed to the client's own lookup.
fn scan(input: &Path, blocklist: &Path, db: &Path) -> (Vec<Detection>, u64) {
    let out = Command::new(bin())
        .args([
            "scan",
            "--output",
            "json",
            "--no-progress",
            "--binding-grace",
            "0",
        ])
        .arg("--blocklist")
        .arg(blocklist)
        .arg("--db")
        .arg(db)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}: exit {:?}: {}",
        input.display(),
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<Detection> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let store = Store::open(db).unwrap();
    let stored = store.all_detections().unwrap();
    assert_eq!(printed.len(), stored.len(), "printed = stored");
    let mut own = 0;
    for d in &stored {
        let flows = store.detection_flows(&d.id, usize::MAX).unwrap();
        own += flows
            .iter()
            .filter(|f| f.attribution.as_deref() == Some("own lookup"))
            .count() as u64;
    }
    (stored, own)
}

fn check(dir: &Path, t: &Truth, input: &str, dets: &[Detection], own_flows: u64) {
    let got: BTreeSet<(String, String)> = dets
        .iter()
        .map(|d| (d.client_ip.to_string(), d.pool_domain.clone()))
        .collect();
    let missing: Vec<_> = t.pairs.difference(&got).collect();
    let extra: Vec<_> = got.difference(&t.pairs).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} {input}: G1 incidents: missing {missing:?}, extra {extra:?}",
        dir.display()
    );
    let lookups: u64 = dets
        .iter()
        .map(|d| d.counts.lookups + d.counts.blocked_lookups)
        .sum();
    assert_eq!(lookups, t.pool_queries, "{input}: G1 queries");
    let decoy: Vec<&String> = dets
        .iter()
        .flat_map(|d| d.query_names.iter())
        .filter(|q| t.decoys.contains(*q))
        .collect();
    assert!(decoy.is_empty(), "{input}: decoys reported: {decoy:?}");
    if input.ends_with(".pcap") {
        assert_eq!(
            own_flows, t.flows_within_ttl,
            "{input}: G2 flows within TTL"
        );
    } else {
        // Logs have no flows: verdicts are lookups only.
        assert!(
            dets.iter()
                .all(|d| matches!(d.stage, Stage::Lookup | Stage::BlockedLookup)),
            "{input}: stages {:?}",
            dets.iter().map(|d| d.stage).collect::<BTreeSet<_>>()
        );
    }
}

fn gates(dir: &Path) {
    let t = truth(dir);
    let tmp = tempfile::tempdir().unwrap();
    let blocklist = dir.join("blocklist.txt");
    for input in [
        "traffic.pcap",
        "bind-query.log",
        "unbound.log",
        "dnsmasq.log",
    ] {
        let (dets, own) = scan(&dir.join(input), &blocklist, &tmp.path().join(input));
        check(dir, &t, input, &dets, own);
        println!(
            "{} {input}: {} incidents, {} queries, {own} own-lookup flows: gates hold",
            dir.display(),
            dets.len(),
            t.pool_queries
        );
    }
}

#[test]
fn tiny_workload_gates() {
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/gen/dnsgen.py");
    if !gen.is_file() {
        println!("skipping: ../shared/bench not present");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new("python3")
        .arg(&gen)
        .args(["--preset", "tiny", "--out"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => gates(tmp.path()),
        other => println!("skipping: cannot run the generator with python3 ({other:?})"),
    }
}

#[test]
fn bench_dir_gates() {
    let Some(dir) = std::env::var_os("POOLWATCH_BENCH_DIR").map(PathBuf::from) else {
        println!("skipping: POOLWATCH_BENCH_DIR not set");
        return;
    };
    gates(&dir);
}
