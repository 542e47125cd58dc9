//! The REST API's Server-Sent Events over real HTTP: new and upgraded detections on the stream,
//! bad filters, the subscriber cap, and shutdown with open streams. The server and its
//! in-memory backend are in `support::api`.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use poolwatch::api::ApiOptions;
use poolwatch::model::Stage;
use poolwatch::query::{ChangeKind, DetectionEvent};
use serde_json::Value;

use crate::support::api::{client, detection, expect_error, Server, READ};

// ---------------------------------------------------------------------------------------------
// Server-Sent Events and shutdown
// ---------------------------------------------------------------------------------------------

/// Reads SSE events (name, data) from a blocking response until `n` arrived.
fn read_events(resp: reqwest::blocking::Response, n: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    let mut reader = BufReader::new(resp);
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data:") {
            out.push((name.clone(), serde_json::from_str(v.trim()).unwrap()));
        }
    }
    out
}

fn wait_for_subscribers(s: &Server, n: usize) {
    let t = Instant::now();
    while s.state.events().receiver_count() < n {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stream never subscribed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sse_streams_new_and_upgraded_detections() {
    let mut s = Server::with_tokens();
    let c = client();
    let all = c
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(all.status(), 200);
    assert!(all.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let high = c
        .get(s.url("/api/v1/detections/stream?min_risk=90"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    wait_for_subscribers(&s, 2);

    let tx = s.state.events().clone();
    tx.send(DetectionEvent {
        kind: ChangeKind::New,
        detection: detection(1, "192.0.2.11", "nanopool.org", Stage::Lookup, 60),
    })
    .unwrap();
    tx.send(DetectionEvent {
        kind: ChangeKind::Upgraded,
        detection: detection(2, "192.0.2.10", "supportxmr.com", Stage::Stratum, 95),
    })
    .unwrap();

    let got = read_events(all, 2);
    assert_eq!(got[0].0, "new");
    assert_eq!(got[0].1["id"], "det-00001");
    assert_eq!(got[1].0, "upgraded");
    assert_eq!(got[1].1["stage"], "stratum");
    let got = read_events(high, 1);
    assert_eq!(
        got[0].1["id"], "det-00002",
        "filter let a low-risk event through"
    );

    // An open stream must not hold up shutdown.
    let _open = c
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    wait_for_subscribers(&s, 1);
    let took = s.shutdown();
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
}

#[test]
fn sse_rejects_bad_filters_and_caps_clients() {
    let s = Server::start(ApiOptions {
        max_streams: 1,
        ..ApiOptions::default()
    });
    let c = client();
    expect_error(
        c.get(s.url("/api/v1/detections/stream?stage=x"))
            .send()
            .unwrap(),
        400,
        "invalid_parameter",
    );
    let first = c.get(s.url("/api/v1/detections/stream")).send().unwrap();
    assert_eq!(first.status(), 200);
    expect_error(
        c.get(s.url("/api/v1/detections/stream")).send().unwrap(),
        503,
        "too_many_streams",
    );
    drop(first);
    // The slot comes back once the client goes away.
    let t = Instant::now();
    loop {
        let r = c.get(s.url("/api/v1/detections/stream")).send().unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}
