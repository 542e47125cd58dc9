//! The live feed over real HTTP on loopback: every event carries an `id:`; a client that
//! reconnects with `Last-Event-ID` gets, from the store, the detections it missed while away
//! (and not the one it saw last); a malformed id is a 400. The events' shape is the one
//! docs/detections.md and docs/api.md describe (every wire field documented, frames as shown).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::service as service_support;

use service_support::*;

/// One SSE frame: event name, id, data.
#[derive(Debug, Clone)]
struct Frame {
    event: String,
    id: String,
    data: Value,
}

fn open_stream(s: &Svc, last_event_id: Option<&str>) -> reqwest::blocking::Response {
    let mut rq = reqwest::blocking::Client::builder()
        .build()
        .unwrap()
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ);
    if let Some(id) = last_event_id {
        rq = rq.header("Last-Event-ID", id);
    }
    let r = rq.send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r
}

/// Reads frames until `stop` holds for the frames so far (or the deadline passes: panic).
fn read_frames(resp: reqwest::blocking::Response, stop: impl Fn(&[Frame]) -> bool) -> Vec<Frame> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(resp);
        let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() {
                    let frame = Frame {
                        event: std::mem::take(&mut event),
                        id: std::mem::take(&mut id),
                        data: serde_json::from_str(&std::mem::take(&mut data)).unwrap(),
                    };
                    if tx.send(frame).is_err() {
                        return;
                    }
                }
            } else if let Some(v) = l.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = l.strip_prefix("id:") {
                id = v.trim().to_string();
            } else if let Some(v) = l.strip_prefix("data:") {
                data.push_str(v.trim());
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let mut frames = Vec::new();
    while !stop(&frames) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(f) => frames.push(f),
            Err(_) => panic!("stream ended or timed out; frames so far: {frames:#?}"),
        }
    }
    frames
}

fn expected_id(d: &Value) -> String {
    let last_seen = chrono::DateTime::parse_from_rfc3339(d["last_seen"].as_str().unwrap())
        .unwrap()
        .timestamp_micros();
    format!("{last_seen}-{}", d["id"].as_str().unwrap())
}

fn has_client(frames: &[Frame], client: &str) -> bool {
    frames.iter().any(|f| f.data["client_ip"] == client)
}

#[test]
fn reconnect_with_last_event_id_replays_what_was_missed() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("dnsmasq.log");
    std::fs::write(&live, "").unwrap();
    let db = dir.path().join("db");
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
        "--follow",
        live.to_str().unwrap(),
    ];
    args.extend(["--admin-token", ADMIN, "--read-token", READ]);
    let s = Svc::start(&args, None);
    let c = client();
    wait_ready(&c, &s);

    // Connected: the first detection arrives live, with its id.
    let stream = open_stream(&s, None);
    append(
        &live,
        &dnsmasq_lookup(
            1,
            "10.7.0.1",
            "pool.supportxmr.com",
            "203.0.113.10",
            "21:00:00",
        ),
    );
    let first = read_frames(stream, |f| has_client(f, "10.7.0.1"));
    let seen = first.last().unwrap().clone();
    assert_eq!(seen.event, "new");
    assert_eq!(seen.id, expected_id(&seen.data), "{seen:?}");

    // Away: two more incidents happen.
    append(
        &live,
        &format!(
            "{}{}",
            dnsmasq_lookup(
                2,
                "10.7.0.2",
                "xmr-eu1.nanopool.org",
                "203.0.113.20",
                "21:02:00"
            ),
            dnsmasq_lookup(
                3,
                "10.7.0.3",
                "gulf.moneroocean.stream",
                "203.0.113.30",
                "21:04:00"
            )
        ),
    );
    wait_for(&c, &s, Some(READ), "the missed detections", |d| {
        d.len() == 3
    });

    // Back with Last-Event-ID: exactly the two missed ones, oldest first, then live.
    let stream = open_stream(&s, Some(&seen.id));
    let replay = read_frames(stream, |f| {
        has_client(f, "10.7.0.2") && has_client(f, "10.7.0.3")
    });
    let clients: Vec<&str> = replay
        .iter()
        .map(|f| f.data["client_ip"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["10.7.0.2", "10.7.0.3"], "{replay:#?}");
    for f in &replay {
        assert_eq!(f.event, "new");
        assert_eq!(f.id, expected_id(&f.data));
    }
    // Resuming from the newest: nothing to replay (the others lie before the 60 s slack), and a
    // new incident still comes live on the same connection.
    let stream = open_stream(&s, Some(&replay[1].id));
    append(
        &live,
        &dnsmasq_lookup(
            4,
            "10.7.0.4",
            "pool.hashvault.pro",
            "203.0.113.40",
            "21:06:00",
        ),
    );
    let more = read_frames(stream, |f| has_client(f, "10.7.0.4"));
    let clients: Vec<&str> = more
        .iter()
        .map(|f| f.data["client_ip"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["10.7.0.4"], "{more:#?}");

    // Malformed ids are refused, naming the header.
    for bad in ["yesterday", "12-", "1-a b"] {
        let r = c
            .get(s.url("/api/v1/detections/stream"))
            .bearer_auth(READ)
            .header("Last-Event-ID", bad)
            .timeout(Duration::from_secs(5))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let v: Value = r.json().unwrap();
        assert!(v.to_string().contains("Last-Event-ID"), "{v}");
    }
}

/// Field names of a docs/detections.md table row: "| `a`, `b` | …" → a, b.
fn documented_fields(doc: &str) -> BTreeSet<String> {
    doc.lines()
        .skip_while(|l| !l.starts_with("## Fields"))
        .take_while(|l| !l.starts_with("## Stages"))
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| {
            cell.split(',')
                .filter_map(|f| f.trim().strip_prefix('`')?.strip_suffix('`'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The evidence keys the paragraph after the table names.
fn documented_evidence(doc: &str) -> BTreeSet<String> {
    let para: String = doc
        .lines()
        .skip_while(|l| !l.starts_with("**Evidence** items:"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let before_summaries = para.split("Flow summaries").next().unwrap_or("");
    before_summaries
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .map(str::to_string)
        .collect()
}

#[test]
fn sse_frames_match_the_documented_shape() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let detections_md = std::fs::read_to_string(root.join("docs/detections.md")).unwrap();
    let api_md = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    let fields = documented_fields(&detections_md);
    assert!(
        fields.contains("client_ip") && fields.contains("last_seen"),
        "{fields:?}"
    );
    let evidence_keys = documented_evidence(&detections_md);
    assert!(evidence_keys.contains("ts") && evidence_keys.contains("dst_port"));
    // docs/api.md shows the frame: event, id, data.
    for frame_line in ["# event: new", "# id: ", "# data: {"] {
        assert!(
            api_md.contains(frame_line),
            "docs/api.md lacks `{frame_line}`"
        );
    }

    let s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    // The import may still refine them (the miner looks the name up again at +95 s): wait
    // until the store holds still for a second.
    let mut dets = all_detections(&c, &s, None);
    let t = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = all_detections(&c, &s, None);
        if now == dets {
            break;
        }
        assert!(t.elapsed() < WAIT, "the demo's store never settled");
        dets = now;
    }
    // A replay from the start: every stored detection as a frame.
    let r = reqwest::blocking::Client::new()
        .get(s.url("/api/v1/detections/stream"))
        .header("Last-Event-ID", "0-0")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let frames = read_frames(r, |f| f.len() == dets.len());
    let mut upgraded = 0;
    for f in &frames {
        assert!(["new", "upgraded"].contains(&f.event.as_str()), "{f:?}");
        upgraded += usize::from(f.event == "upgraded");
        assert_eq!(f.id, expected_id(&f.data));
        let obj = f.data.as_object().unwrap();
        for k in obj.keys() {
            assert!(
                fields.contains(k),
                "wire field `{k}` is not in docs/detections.md"
            );
        }
        for e in f.data["evidence"].as_array().unwrap() {
            for k in e.as_object().unwrap().keys() {
                assert!(
                    evidence_keys.contains(k),
                    "evidence field `{k}` is not in docs/detections.md"
                );
            }
        }
        // The frame is the stored detection.
        let stored: Value = c
            .get(s.url(&format!(
                "/api/v1/detections/{}",
                f.data["id"].as_str().unwrap()
            )))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(stored, f.data);
    }
    // Frames come oldest first (by last_seen).
    let times: Vec<&str> = frames
        .iter()
        .map(|f| f.data["last_seen"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);
    // The sample's miners rose from lookup to stratum: those are `upgraded`.
    assert!(upgraded > 0, "{frames:#?}");
}
