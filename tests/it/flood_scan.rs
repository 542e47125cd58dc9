//! Issue #11: a pool-lookup flood (random subdomains of a listed pool name from many clients,
//! each answered, plus SYNs to the answers) against a clean capture of the same size and shape.
//! Real pcaps (written here), the real binary, CPU time of the children from `getrusage`.
//!
//! * `pool_lookup_flood_is_exact_within_memory_cap` (always runs): exactly one detection per
//!   client with every lookup and SYN counted, memory under the documented scan cap, and the
//!   flood/clean CPU ratio printed. Its deterministic cost proxy: the scan's own work counters
//!   (`scan finished` log line) show no incident evicted and reloaded (the churn that was
//!   ≈ 45% of the flood's CPU, docs/performance.md) and a handful of flushes, not one per
//!   second of input — a regression of the fast path fails here on any machine, without a
//!   timing assertion.
//! * `pool_lookup_flood_costs_at_most_3x_clean` (ignored: a timing assertion flakes on a
//!   loaded 2-core CI; run it on a quiet machine): median of 3 runs each, asserts the 3× bound.

use crate::support::flood as flood_support;

use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::proc;

use flood_support::{build, FloodSpec};

/// More clients than the engine's default incident table (`MAX_INCIDENTS` = 20 000), which
/// `scan` without `--db` sizes up to its in-memory store (`EngineLimits::in_memory`).
const CLIENTS: u32 = 21_000;
const ROUNDS: u32 = 3;
/// The bound of the issue.
const MAX_RATIO: f64 = 3.0;
/// Documented memory cap of a scan (docs/performance.md, ARCHITECTURE.md limits).
const RSS_CAP_MIB: i64 = 512;

/// Flushes a flood scan may need: the final one plus those forced by a full batch. One per
/// second of input (the old non-durable behaviour) would be hundreds.
const MAX_FLUSHES: u64 = 8;

/// Runs `scan --output json` on `pcap`; returns (CPU seconds, peak RSS MiB, stdout, stderr).
fn scan_full(pcap: &Path) -> (f64, i64, String, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["scan", "--output", "json", "--no-progress"])
        .args(["--log-level", "poolwatch=info", "--log-json"])
        .arg(pcap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run poolwatch");
    let (out, usage) = proc::wait_with_usage(child);
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        usage.cpu_secs,
        usage.max_rss_kb / 1024,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn scan(pcap: &Path) -> (f64, i64, String) {
    let (c, m, out, _) = scan_full(pcap);
    (c, m, out)
}

/// The `scan finished` log line's fields.
fn finished(stderr: &str) -> serde_json::Value {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "scan finished")
        .map(|v| v["fields"].clone())
        .unwrap_or_else(|| panic!("no `scan finished` line in: {stderr}"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn write_pcaps(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let flood = dir.join("flood.pcap");
    let clean = dir.join("clean.pcap");
    for (path, listed) in [(&flood, true), (&clean, false)] {
        let p = build(FloodSpec {
            clients: CLIENTS,
            rounds: ROUNDS,
            listed,
            seed: 11,
        });
        std::fs::write(path, &p.bytes).unwrap();
    }
    assert_eq!(
        std::fs::metadata(&flood).unwrap().len(),
        std::fs::metadata(&clean).unwrap().len(),
        "same size and shape"
    );
    (flood, clean)
}

/// One detection per client, each lookup and SYN counted once.
fn check_exact(flood_out: &str) {
    let mut clients = std::collections::HashSet::new();
    for line in flood_out.lines() {
        let d: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(d["pool_domain"], "supportxmr.com");
        assert_eq!(d["stage"], "connection_attempt");
        assert_eq!(d["counts"]["lookups"], ROUNDS, "{line}");
        assert_eq!(d["counts"]["flows"], ROUNDS, "{line}");
        assert!(
            clients.insert(d["client_ip"].as_str().unwrap().to_string()),
            "split: {line}"
        );
    }
    assert_eq!(clients.len(), CLIENTS as usize);
}

#[test]
fn pool_lookup_flood_is_exact_within_memory_cap() {
    let dir = tempfile::tempdir().unwrap();
    let (flood, clean) = write_pcaps(dir.path());
    let (c, _, out) = scan(&clean);
    assert!(out.is_empty(), "the clean capture has no detection");
    let (f, max_rss_mib, out, err) = scan_full(&flood);
    check_exact(&out);
    let work = finished(&err);
    println!("scan finished: {work}");
    assert_eq!(work["new"], CLIENTS, "{work}");
    assert_eq!(work["evicted"], 0, "incidents evicted and reloaded: {work}");
    let flushes = work["flushes"].as_u64().unwrap();
    assert!(flushes <= MAX_FLUSHES, "{flushes} flushes: {work}");
    println!(
        "flood {f:.2} CPU-s, clean {c:.2} CPU-s, ratio {:.2}, max RSS {max_rss_mib} MiB",
        f / c.max(0.01)
    );
    assert!(
        max_rss_mib <= RSS_CAP_MIB,
        "max RSS {max_rss_mib} MiB > {RSS_CAP_MIB} MiB"
    );
}

#[test]
#[ignore = "timing: run on a quiet machine (`cargo test --release -- --ignored`); the always-run test asserts the deterministic work counters"]
fn pool_lookup_flood_costs_at_most_3x_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (flood, clean) = write_pcaps(dir.path());
    let (mut fc, mut cc) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (c, _, out) = scan(&clean);
        assert!(out.is_empty(), "the clean capture has no detection");
        cc.push(c);
        let (c, _, out) = scan(&flood);
        fc.push(c);
        check_exact(&out);
    }
    let (f, c) = (median(fc.clone()), median(cc.clone()));
    let ratio = f / c.max(0.01);
    println!("flood {f:.2} CPU-s {fc:?}, clean {c:.2} CPU-s {cc:?}, ratio {ratio:.2}");
    assert!(
        ratio <= MAX_RATIO,
        "flood/clean CPU ratio {ratio:.2} > {MAX_RATIO}"
    );
}
