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
//! default grace of 6 h deliberately keeps bindings longer, see docs/detections.md). A late
//! flow (`within_ttl=0`) that no binding covers any more still carries Stratum and is reported
//! as its own `stratum:<ip>` incident with no lookup: the only extra incidents allowed. No `decoy`
//! name may appear in any detection; malformed packets must not stop the job (exit 0/1);
//! mDNS (port 5353) never yields a lookup (it would add pairs the truth does not have).
//!
//! - `tiny_workload_gates` (always on when ../shared/bench and python3 exist): generates
//!   `--preset tiny` (20k packets, ~1 s) into a temp dir and checks everything.
//! - `bench_dir_gates`: `POOLWATCH_BENCH_DIR=DIR` (a generated small/large workload) checks
//!   the same on it. `POOLWATCH_BIN=target/release/poolwatch` runs a release binary instead of
//!   the test's debug one (the large pcap takes minutes in debug).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::model::{Detection, Stage};
use poolwatch::store::Store;

fn bin() -> PathBuf {
    std::env::var_os("POOLWATCH_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_poolwatch")))
}

type FlowId = (String, String, u16, i64);

struct Truth {
    pairs: BTreeSet<(String, String)>,
    decoys: BTreeSet<String>,
    pool_queries: u64,
    flows_within_ttl: u64,
    /// (client, dst) of pool flows that start after their answer's TTL.
    late_flows: BTreeSet<(String, String)>,
    /// (client, dst, dst_port, start µs) of pool flows within their answer's TTL.
    within_flows: BTreeSet<FlowId>,
    /// (client, answer ip) → [(query µs, ttl s)] of every pool answer.
    answers: BTreeMap<(String, String), Vec<(i64, i64)>>,
}

fn truth(dir: &Path) -> Truth {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let counts = &manifest["counts"];
    let text = std::fs::read_to_string(dir.join("truth-queries.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (c_ts, c_client, c_qname, c_entry, c_kind, c_answers, c_ttl) = (
        col("ts_us"),
        col("client"),
        col("qname"),
        col("matched_entry"),
        col("kind"),
        col("answers"),
        col("ttl"),
    );
    let (mut pairs, mut decoys, mut rows) = (BTreeSet::new(), BTreeSet::new(), 0u64);
    let mut answers: BTreeMap<(String, String), Vec<(i64, i64)>> = BTreeMap::new();
    for l in lines {
        // `answers` is space-separated, so splitting on ',' keeps the columns.
        let f: Vec<&str> = l.split(',').collect();
        let entry = f[c_entry];
        if !entry.is_empty() {
            rows += 1;
            pairs.insert((f[c_client].to_string(), entry.to_string()));
            for ip in f[c_answers].split_whitespace() {
                answers
                    .entry((f[c_client].to_string(), ip.to_string()))
                    .or_default()
                    .push((f[c_ts].parse().unwrap(), f[c_ttl].parse().unwrap_or(0)));
            }
        }
        if f[c_kind] == "decoy" {
            decoys.insert(f[c_qname].to_ascii_lowercase());
        }
    }
    let flows = std::fs::read_to_string(dir.join("truth-flows.csv")).unwrap();
    let mut flines = flows.lines();
    let fh: Vec<&str> = flines.next().unwrap().split(',').collect();
    let fcol = |n: &str| fh.iter().position(|h| *h == n).unwrap();
    let (f_ts, f_client, f_dst, f_port, f_within) = (
        fcol("ts_us"),
        fcol("client"),
        fcol("dst"),
        fcol("dport"),
        fcol("within_ttl"),
    );
    let (mut late_flows, mut within_flows) = (BTreeSet::new(), BTreeSet::new());
    for l in flines {
        let f: Vec<&str> = l.split(',').collect();
        if f[f_within] == "0" {
            late_flows.insert((f[f_client].to_string(), f[f_dst].to_string()));
        } else {
            within_flows.insert((
                f[f_client].to_string(),
                f[f_dst].to_string(),
                f[f_port].parse().unwrap(),
                f[f_ts].parse().unwrap(),
            ));
        }
    }
    let pool_queries = counts["expected_pool_queries"].as_u64().unwrap();
    assert_eq!(rows, pool_queries, "truth file and manifest disagree");
    Truth {
        pairs,
        decoys,
        pool_queries,
        flows_within_ttl: counts["expected_pool_flows_within_ttl"].as_u64().unwrap(),
        late_flows,
        within_flows,
        answers,
    }
}

/// Runs the scan into a database under `db`, returns the stored detections and the number of
/// stored pool flows attributed to the client's own lookup.
fn scan(input: &Path, blocklist: &Path, db: &Path) -> (Vec<Detection>, BTreeSet<FlowId>) {
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
    let mut own = BTreeSet::new();
    for d in &stored {
        let flows = store.detection_flows(&d.id, usize::MAX).unwrap();
        own.extend(
            flows
                .iter()
                .filter(|f| f.attribution == Some(poolwatch::model::How::OwnLookup))
                .map(|f| {
                    (
                        f.client.to_string(),
                        f.dst.to_string(),
                        f.dst_port,
                        f.start.0,
                    )
                }),
        );
    }
    (stored, own)
}

fn check(dir: &Path, t: &Truth, input: &str, dets: &[Detection], own: &BTreeSet<FlowId>) {
    let got: BTreeSet<(String, String)> = dets
        .iter()
        .map(|d| (d.client_ip.to_string(), d.pool_domain.clone()))
        .collect();
    let missing: Vec<_> = t.pairs.difference(&got).collect();
    // A pool flow that starts after its answer expired (within_ttl=0) and finds no other
    // binding still carries Stratum: it is reported on its own, as `stratum:<ip>` without a
    // lookup ("Stratum seen on any flow is stratum"). Those are the only extras allowed.
    let late_stratum = |c: &String, e: &String| {
        e.strip_prefix("stratum:")
            .is_some_and(|ip| t.late_flows.contains(&(c.clone(), ip.to_string())))
    };
    let extra: Vec<_> = got
        .difference(&t.pairs)
        .filter(|(c, e)| !late_stratum(c, e))
        .collect();
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
        let missing: Vec<_> = t.within_flows.difference(own).collect();
        // The generator marks a flow `within_ttl=0` against the lookup it followed; when the
        // same client looked the pool up again and that newer answer (same address) is still
        // live, the flow does follow a live answer of its own. Those are attributed, rightly.
        let live_own_answer = |(c, ip, _, ts): &FlowId| {
            t.answers.get(&(c.clone(), ip.clone())).is_some_and(|v| {
                v.iter()
                    .any(|(q, ttl)| *q <= *ts && *ts <= q + ttl.saturating_mul(1_000_000))
            })
        };
        let extra: Vec<_> = own
            .difference(&t.within_flows)
            .filter(|f| !live_own_answer(f))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{input}: G2 flows within TTL: missing {missing:?}, extra {extra:?}"
        );
        let explained = own.difference(&t.within_flows).count();
        assert_eq!(
            own.len() as u64,
            t.flows_within_ttl + explained as u64,
            "{input}: G2 count"
        );
        println!("{input}: {explained} late flows follow a newer live lookup of the same client");
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
        if input != "traffic.pcap" && !dir.join(input).is_file() {
            println!("{}: no {input} (generated with --no-logs)", dir.display());
            continue;
        }
        let (dets, own) = scan(&dir.join(input), &blocklist, &tmp.path().join(input));
        check(dir, &t, input, &dets, &own);
        println!(
            "{} {input}: {} incidents, {} queries, {own} own-lookup flows: gates hold",
            dir.display(),
            dets.len(),
            t.pool_queries,
            own = own.len()
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
