//! Support for the retro-hunt tests: the "scan with a list lacking one pool domain, add it
//! through the real API, compare with a full-list scan" scenario, over the real binary, a real
//! sled database and real HTTP on loopback.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use crate::support::service::{bin, client, Svc, ADMIN, READ, WAIT};

/// The pools of the project's fixture captures (the retro-hunt tests drop some of them).
pub const FIXTURE_POOLS: &[&str] = &[
    "supportxmr.com",
    "moneroocean.stream",
    "nanopool.org",
    "2miners.com",
    "hashvault.pro",
    "braiins.com",
    "minexmr.com",
    "nicehash.com",
    "minergate.com",
];

/// `poolwatch scan --output json ARGS…`: the detections printed (exit 0 or 1 expected).
pub fn scan_json(args: &[&str]) -> Vec<Value> {
    let out = Command::new(bin())
        .arg("scan")
        .args(["--output", "json", "--no-progress"])
        .args(args)
        .output()
        .expect("run poolwatch scan");
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("detection JSON"))
        .collect()
}

/// (client, stage) of each detection of `pool`.
pub fn stages_of(dets: &[Value], pool: &str) -> BTreeSet<(String, String)> {
    dets.iter()
        .filter(|d| d["pool_domain"] == pool)
        .map(|d| {
            (
                d["client_ip"].as_str().unwrap_or("").to_string(),
                d["stage"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

pub fn write_list(dir: &Path, name: &str, domains: &[&str]) -> PathBuf {
    let p = dir.join(name);
    let mut text = String::from("# test list\n");
    for d in domains {
        text.push_str(d);
        text.push('\n');
    }
    std::fs::write(&p, text).unwrap();
    p
}

pub fn serve(db: &Path, list: &Path) -> Svc {
    serve_with(db, list, &[])
}

/// `serve` on loopback over `db` with `list` and both tokens, plus `extra` flags.
pub fn serve_with(db: &Path, list: &Path, extra: &[&str]) -> Svc {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--blocklist",
        list.to_str().unwrap(),
        "--admin-token",
        ADMIN,
        "--read-token",
        READ,
    ];
    args.extend_from_slice(extra);
    Svc::start(&args, None)
}

pub fn detections(c: &reqwest::blocking::Client, s: &Svc, pool: &str) -> Vec<Value> {
    let r = c
        .get(s.url(&format!("/api/v1/detections?pool={pool}&limit=1000")))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Polls the detections of `pool` until `done` holds (panics with the log after [`WAIT`]).
pub fn wait_pool(
    c: &reqwest::blocking::Client,
    s: &Svc,
    pool: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let t = Instant::now();
    loop {
        let d = detections(c, s, pool);
        if done(&d) {
            return d;
        }
        assert!(
            t.elapsed() < WAIT,
            "timed out; have {:?}\nstderr:\n{}",
            stages_of(&d, pool),
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn put_list(c: &reqwest::blocking::Client, s: &Svc, name: &str, body: &str) -> u16 {
    c.put(s.url(&format!("/api/v1/blocklists/{name}")))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body(body.to_string())
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// Deadline for a retro-hunt under a loaded CI box (debug build, 2 cores shared by parallel
/// tests): generous, since the wait ends on the worker's own counter, not on a guess.
pub const RETRO_WAIT: Duration = Duration::from_secs(240);

/// A counter of the service's `/metrics` (0 when absent).
pub fn counter(c: &reqwest::blocking::Client, s: &Svc, name: &str) -> u64 {
    let r = c.get(s.url("/metrics")).bearer_auth(READ).send().unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse::<f64>().unwrap() as u64)
}

/// `poolwatch_retro_runs_finished_total` of the service.
pub fn retro_runs_finished(c: &reqwest::blocking::Client, s: &Svc) -> u64 {
    counter(c, s, "poolwatch_retro_runs_finished_total")
}

/// Waits until the retro-hunt worker has diffed more than `seen` list-set changes.
pub fn wait_list_change_seen(c: &reqwest::blocking::Client, s: &Svc, seen: u64) {
    let t = Instant::now();
    while counter(c, s, "poolwatch_retro_list_changes_total") <= seen {
        assert!(
            t.elapsed() < RETRO_WAIT,
            "list change not seen after {RETRO_WAIT:?}; stderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the service's retro-hunt worker has finished `n` hunts (panics with the log
/// after [`RETRO_WAIT`]); a hunt beyond `n` is a failure too.
pub fn wait_retro_runs(c: &reqwest::blocking::Client, s: &Svc, n: u64) {
    let t = Instant::now();
    loop {
        let done = retro_runs_finished(c, s);
        assert!(done <= n, "{done} retro-hunts, expected {n}");
        if done == n {
            return;
        }
        assert!(
            t.elapsed() < RETRO_WAIT,
            "retro-hunt {n} not finished after {RETRO_WAIT:?}; stderr:\n{}",
            s.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The scenario: `scan --db --history` over `inputs` with `full` minus `missing`,
/// then `serve` over that database, add `missing` through the API, and expect exactly the
/// (client, stage) pairs that a full-list scan gives for it, every one marked `retro`.
/// Returns the retro detections.
pub fn retro_matches_full_scan(inputs: &[PathBuf], full: &[&str], missing: &str) -> Vec<Value> {
    let tmp = tempfile::tempdir().unwrap();
    let full_list = write_list(tmp.path(), "full.txt", full);
    let partial: Vec<&str> = full.iter().copied().filter(|d| *d != missing).collect();
    let partial_list = write_list(tmp.path(), "partial.txt", &partial);
    let inputs: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();

    let mut args = vec!["--blocklist", full_list.to_str().unwrap()];
    args.extend(&inputs);
    let want = stages_of(&scan_json(&args), missing);
    assert!(!want.is_empty(), "the full-list scan finds {missing}");

    let db = tmp.path().join("db");
    let mut args = vec![
        "--db",
        db.to_str().unwrap(),
        "--history",
        "--blocklist",
        partial_list.to_str().unwrap(),
    ];
    args.extend(&inputs);
    let partial_dets = scan_json(&args);
    assert!(
        stages_of(&partial_dets, missing).is_empty(),
        "the partial list must not find {missing}"
    );

    let s = serve(&db, &partial_list);
    let c = client();
    assert!(detections(&c, &s, missing).is_empty());
    assert_eq!(retro_runs_finished(&c, &s), 0);
    assert_eq!(put_list(&c, &s, "added", &format!("{missing}\n")), 200);
    // The worker counts a retro-hunt as finished after its detections are merged and flushed:
    // once it is, the store holds everything that hunt will ever add (no sleeping, no guessing).
    wait_retro_runs(&c, &s, 1);
    let got2 = detections(&c, &s, missing);
    assert_eq!(
        stages_of(&got2, missing),
        want,
        "same clients and stages as a full scan"
    );
    for d in &got2 {
        assert_eq!(d["retro"], true, "marked retro: {d}");
        let ev = d["evidence"].as_array().unwrap();
        assert!(!ev.is_empty());
        assert!(
            ev.iter().all(|e| e["summary"]
                .as_str()
                .unwrap_or("")
                .starts_with("from history: ")
                && e["source"].as_str().unwrap_or("").starts_with("history:")),
            "evidence says it came from history: {ev:#?}"
        );
    }
    // The hunt route sees what the history holds for the name, and creates nothing.
    let r = c
        .get(s.url(&format!("/api/v1/hunt?name={missing}")))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let rep: Value = r.json().unwrap();
    let clients: BTreeSet<String> = rep["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    for (client, _) in &want {
        assert!(
            clients.contains(client),
            "{client} in the hunt report {rep}"
        );
    }
    // Deleting the entry keeps the detections; adding it again creates no duplicates.
    let changes = counter(&c, &s, "poolwatch_retro_list_changes_total");
    let del = c
        .delete(s.url("/api/v1/blocklists/added"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    // The worker diffs the list set: let it see the deletion before the entry comes back.
    wait_list_change_seen(&c, &s, changes);
    assert_eq!(detections(&c, &s, missing).len(), got2.len());
    assert_eq!(put_list(&c, &s, "added", &format!("{missing}\n")), 200);
    // Deleting added nothing (no hunt); re-adding runs the second one.
    wait_retro_runs(&c, &s, 2);
    assert_eq!(
        detections(&c, &s, missing).len(),
        got2.len(),
        "deleting the entry kept the detections"
    );
    let again = detections(&c, &s, missing);
    let ids = |v: &[Value]| -> BTreeSet<String> {
        v.iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&again),
        ids(&got2),
        "re-adding finds the same incidents"
    );
    got2
}
