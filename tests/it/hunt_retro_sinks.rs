//! Retro detections go where live ones go (issue #18): a retro-hunt's detections reach the
//! alert sinks (the real file sink, through its outbox) and the SSE feed (real HTTP on
//! loopback), and a suppression applies to them as to live detections: the suppressed one is
//! stored marked `suppressed` and kept out of the sink, which by default takes no suppressed
//! records. Real binary, real sled, the project's fixture captures.

use crate::support::hunt::{self as hs, ADMIN, READ};
use crate::support::output::read_jsonl;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const POOLS: &[&str] = hs::FIXTURE_POOLS;
const MISSING: &str = "moneroocean.stream";
/// Missing too and not suppressed: what the sink must receive.
const MISSING2: &str = "supportxmr.com";

fn fixture_pcaps() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    v.into_iter().map(|p| p.display().to_string()).collect()
}

/// `data:` payloads of `detection`-carrying SSE frames, read on a thread into `tx`.
fn sse_reader(resp: reqwest::blocking::Response, tx: mpsc::Sender<Value>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(resp);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if let Some(d) = line.trim_end().strip_prefix("data:") {
                if let Ok(v) = serde_json::from_str::<Value>(d.trim()) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        }
    });
}

#[test]
fn retro_detections_reach_sinks_and_feed_with_suppressions_applied() {
    let tmp = tempfile::tempdir().unwrap();
    let pcaps = fixture_pcaps();
    let inputs: Vec<&str> = pcaps.iter().map(String::as_str).collect();
    let full = hs::write_list(tmp.path(), "full.txt", POOLS);
    let partial: Vec<&str> = POOLS
        .iter()
        .copied()
        .filter(|p| *p != MISSING && *p != MISSING2)
        .collect();
    let partial = hs::write_list(tmp.path(), "partial.txt", &partial);
    let mut args = vec!["--blocklist", full.to_str().unwrap()];
    args.extend(&inputs);
    let full_dets = hs::scan_json(&args);
    let want = hs::stages_of(&full_dets, MISSING);
    let want2 = hs::stages_of(&full_dets, MISSING2);
    assert!(!want2.is_empty(), "the fixtures find {MISSING2}");
    let clients: BTreeSet<String> = want.iter().map(|(c, _)| c.clone()).collect();
    assert!(!clients.is_empty());
    let db = tmp.path().join("db");
    let mut args = vec![
        "--db",
        db.to_str().unwrap(),
        "--history",
        "--blocklist",
        partial.to_str().unwrap(),
    ];
    args.extend(&inputs);
    hs::scan_json(&args);

    let sink = tmp.path().join("alerts.json");
    let sink_spec = format!("file:{}", sink.display());
    let s = hs::serve_with(&db, &partial, &["--output", &sink_spec]);
    let c = hs::client();
    // One client of the missing pool is suppressed before the hunt (by client and pool).
    let quiet = clients.iter().next().unwrap().clone();
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .bearer_auth(ADMIN)
        .json(&json!({"client": quiet, "pool": MISSING, "reason": "lab box"}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // The live feed, open before the list changes (no Last-Event-ID: nothing is replayed).
    let resp = reqwest::blocking::Client::new()
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (tx, rx) = mpsc::channel();
    sse_reader(resp, tx);

    assert_eq!(
        hs::put_list(&c, &s, "added", &format!("{MISSING}\n{MISSING2}\n")),
        200
    );
    hs::wait_retro_runs(&c, &s, 1);
    let mut stored = hs::detections(&c, &s, MISSING);
    assert_eq!(hs::stages_of(&stored, MISSING), want);
    let stored2 = hs::detections(&c, &s, MISSING2);
    assert_eq!(hs::stages_of(&stored2, MISSING2), want2);
    stored.extend(stored2);
    for d in &stored {
        assert_eq!(d["retro"], true, "{d}");
        assert_eq!(
            d["suppressed"] == true,
            d["client_ip"] == quiet.as_str() && d["pool_domain"] == MISSING,
            "suppression applied to the retro detection of its client only: {d}"
        );
    }
    let ids = |v: &mut dyn Iterator<Item = &Value>| -> BTreeSet<String> {
        v.map(|d| d["id"].as_str().unwrap().to_string()).collect()
    };
    let all_ids = ids(&mut stored.iter());
    let loud_ids = ids(&mut stored.iter().filter(|d| d["suppressed"] == false));
    assert!(!loud_ids.is_empty() && loud_ids.len() < all_ids.len());

    // The feed carries every retro change, suppressed or not (as it does for live ones).
    let deadline = Instant::now() + hs::WAIT;
    let mut fed = BTreeSet::new();
    while fed != all_ids {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(v) if v["pool_domain"] == MISSING || v["pool_domain"] == MISSING2 => {
                assert_eq!(v["retro"], true, "{v}");
                fed.insert(v["id"].as_str().unwrap().to_string());
            }
            Ok(_) => {}
            Err(_) => panic!("feed has {fed:?}, want {all_ids:?}\n{}", s.stderr()),
        }
    }

    // The file sink gets the unsuppressed ones, marked retro, through its outbox.
    let deadline = Instant::now() + hs::WAIT;
    let got = loop {
        let recs: Vec<Value> = read_jsonl(&sink)
            .into_iter()
            .filter(|r| r["pool_domain"] == MISSING || r["pool_domain"] == MISSING2)
            .collect();
        let got = ids(&mut recs.iter());
        if got == loud_ids || Instant::now() > deadline {
            assert!(recs.iter().all(|r| r["retro"] == true), "{recs:#?}");
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(got, loud_ids, "sink records; stderr:\n{}", s.stderr());
    // Nothing suppressed reached it later either.
    std::thread::sleep(Duration::from_millis(500));
    let late: BTreeSet<String> = ids(&mut read_jsonl(&sink)
        .iter()
        .filter(|r| r["pool_domain"] == MISSING || r["pool_domain"] == MISSING2));
    assert_eq!(late, loud_ids);
}
