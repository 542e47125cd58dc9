//! Issue #11, "a crash loop re-reads followed logs": a real `poolwatch serve --follow` child is
//! killed with SIGKILL again and again, before and after its first offset commit, while it
//! follows a real BIND query log. Lines read again after a kill (their offset was not committed
//! yet) must not count again: after every restart each detection's `counts.lookups` is exactly
//! what one clean pass over the log gives (`poolwatch scan` of the same file).

use crate::support::lab::shared_data;
use crate::support::service as service_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use service_support::*;

/// The host of the real log (BIND answered queries from loopback).
const HOST: &str = "127.0.0.1";
/// After this long the pipeline has committed the offsets of what it read
/// (`service::pipeline::OFFSET_COMMIT_DELAY`, 6 s, plus the follower's 1 s save interval and
/// slack for a loaded machine).
const PAST_COMMIT: Duration = Duration::from_secs(12);
/// Long enough for the re-read lines' updates to be flushed (1 s flush interval, 1 s idle
/// tick) and well inside the 6 s commit delay, so a kill after it is before the commit.
const SETTLE: Duration = Duration::from_millis(2500);

fn serve_args<'a>(db: &'a str, log: &'a str) -> Vec<&'a str> {
    vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db,
        "--follow",
        log,
    ]
}

/// pool entry → counts.lookups of `HOST`'s detections.
fn lookups(dets: &[Value]) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for d in dets.iter().filter(|d| d["client_ip"] == HOST) {
        let e: &mut u64 = m
            .entry(d["pool_domain"].as_str().unwrap_or("?").to_string())
            .or_default();
        *e += d["counts"]["lookups"].as_u64().unwrap_or(0);
    }
    m
}

/// What one clean pass over `log` counts: `poolwatch scan` of the file.
fn reference(log: &Path) -> BTreeMap<String, u64> {
    let out = Command::new(bin())
        .args(["scan", "--output", "json"])
        .arg(log)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "scan finds detections; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dets: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    lookups(&dets)
}

fn metric(c: &reqwest::blocking::Client, s: &Svc, name: &str) -> f64 {
    let text = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
        .unwrap_or(0.0)
}

/// Waits until the follower has read at least `lines` lines in this process.
fn wait_lines_read(c: &reqwest::blocking::Client, s: &Svc, lines: usize) {
    assert!(
        lines_read_within(c, s, lines, WAIT),
        "the follower never read {lines} lines; stderr:\n{}",
        s.stderr()
    );
}

/// Whether the follower reads at least `lines` lines within `limit`. A restart re-reads only
/// when the killed process had not committed its offsets yet; on a machine loaded enough to
/// delay the kill past the commit there is nothing to re-read, which is not a failure (the
/// counts are checked either way; the test asserts that some restarts did re-read).
fn lines_read_within(
    c: &reqwest::blocking::Client,
    s: &Svc,
    lines: usize,
    limit: Duration,
) -> bool {
    let t = Instant::now();
    while metric(c, s, "poolwatch_follow_lines_total") < lines as f64 {
        if t.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// How long a restart is given to start re-reading before it is taken as having nothing to
/// re-read.
const REREAD_WAIT: Duration = Duration::from_secs(8);

fn served(c: &reqwest::blocking::Client, s: &Svc) -> BTreeMap<String, u64> {
    lookups(&all_detections(c, s, None))
}

#[test]
fn sigkill_loop_before_and_after_the_offset_commit_counts_each_lookup_once() {
    let Some(shared) = shared_data() else {
        return;
    };
    let real = shared.join("logs/generated-locally/bind-9.18.49/named-querylog.log");
    let text = std::fs::read_to_string(&real).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (first, second) = lines.split_at(lines.len() / 2);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let log = dir.path().join("named-querylog.log");
    let log_s = log.to_str().unwrap().to_string();
    append(&log, &(first.join("\n") + "\n"));
    let want_first = reference(&log);
    let total_first: u64 = want_first.values().sum();
    assert!(
        total_first >= 3,
        "the first half has pool lookups: {want_first:?}"
    );
    let c = client();
    let mut replayed = 0.0;
    let mut re_reads = 0;

    // Rounds 1–3: killed before the first offset commit, as soon as what was (re-)read is
    // flushed: every restart reads the whole log again.
    for round in 1..=3 {
        let mut s = Svc::start(&serve_args(db, &log_s), None);
        wait_ready(&c, &s);
        if round == 1 {
            wait_lines_read(&c, &s, first.len());
        } else {
            // The durable state the previous process left: counted once.
            assert_eq!(served(&c, &s), want_first, "round {round}: at start");
            if lines_read_within(&c, &s, first.len(), REREAD_WAIT) {
                re_reads += 1;
            }
        }
        std::thread::sleep(SETTLE);
        assert_eq!(
            served(&c, &s),
            want_first,
            "round {round}: after (re-)reading {} lines",
            first.len()
        );
        replayed += metric(&c, &s, "poolwatch_correlate_replayed_total");
        s.kill9();
    }
    assert!(
        re_reads > 0 && replayed > 0.0,
        "no restart re-read the log (re-reads {re_reads}, replayed {replayed}): every kill came after the offset commit"
    );

    // Round 4: killed after the offset commit; the restart reads nothing again.
    let mut s = Svc::start(&serve_args(db, &log_s), None);
    wait_ready(&c, &s);
    std::thread::sleep(PAST_COMMIT);
    assert_eq!(served(&c, &s), want_first, "round 4: past the commit");
    s.kill9();

    // Round 5: the log grows while the service is down; the new lines are read once, and the
    // process is killed again before their commit.
    append(&log, &(second.join("\n") + "\n"));
    let want_all = reference(&log);
    assert!(
        want_all.values().sum::<u64>() > total_first,
        "the second half adds lookups: {want_all:?}"
    );
    let mut s = Svc::start(&serve_args(db, &log_s), None);
    wait_ready(&c, &s);
    assert_eq!(served(&c, &s), want_first, "round 5: at start");
    wait_lines_read(&c, &s, second.len());
    std::thread::sleep(SETTLE);
    assert_eq!(
        metric(&c, &s, "poolwatch_follow_lines_total") as usize,
        second.len(),
        "round 5: resumed at the committed offset (only the new lines were read)"
    );
    assert_eq!(
        served(&c, &s),
        want_all,
        "round 5: the new lines counted once"
    );
    s.kill9();

    // Round 6: the new lines are read again (their offset was not committed) and not counted
    // again; a clean stop commits, and the next start reads nothing.
    let mut s = Svc::start(&serve_args(db, &log_s), None);
    wait_ready(&c, &s);
    assert_eq!(served(&c, &s), want_all, "round 6: at start");
    if lines_read_within(&c, &s, second.len(), REREAD_WAIT) {
        std::thread::sleep(SETTLE);
        assert!(metric(&c, &s, "poolwatch_correlate_replayed_total") > 0.0);
    }
    assert_eq!(served(&c, &s), want_all, "round 6: after re-reading");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "stderr:\n{}", s.stderr());

    let s = Svc::start(&serve_args(db, &log_s), None);
    wait_ready(&c, &s);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&c, &s, "poolwatch_follow_lines_total"), 0.0);
    assert_eq!(served(&c, &s), want_all, "after a clean stop");
}
