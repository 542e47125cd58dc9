//! The real service (`poolwatch serve` on 127.0.0.1:0 with a temporary sled database), fed by
//! `--import` and `--follow`, queried with a real HTTP client: every endpoint, filters,
//! pagination under concurrent inserts, errors, auth, SSE, metrics; and the lab's dev capture
//! and logs checked against the ground truth.

use crate::support;
use crate::support::service as service_support;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::Value;
use service_support::*;

fn tokens() -> Vec<&'static str> {
    vec!["--admin-token", ADMIN, "--read-token", READ]
}

fn get(c: &reqwest::blocking::Client, s: &Svc, path: &str) -> reqwest::blocking::Response {
    c.get(s.url(path)).bearer_auth(READ).send().unwrap()
}

fn error_code(resp: reqwest::blocking::Response, status: u16) -> String {
    assert_eq!(resp.status().as_u16(), status);
    let v: Value = resp.json().unwrap();
    v["error"]["code"].as_str().unwrap().to_string()
}

/// `poolwatch serve` on a free loopback port with both tokens, over `db`, plus `extra` flags.
fn serve(db: &std::path::Path, extra: &[&str]) -> Svc {
    let mut args = vec![
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--db",
        db.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.extend(tokens());
    Svc::start(&args, None)
}

fn sample_service(db: &std::path::Path) -> Svc {
    let (pcap, log) = (sample("sample.pcap"), sample("sample-dnsmasq.log"));
    serve(
        db,
        &[
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
        ],
    )
}

#[test]
fn sample_import_serves_every_read_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_service(&dir.path().join("db"));
    let c = client();
    let exp = expected_sample();
    let want = expected_stages(&exp, "stage");
    let dets = wait_for(&c, &s, Some(READ), "the sample's verdicts", |d| {
        served_stages(d) == want
    });
    assert_eq!(dets.len(), want.len(), "one detection per host here");

    // Probes.
    assert_eq!(c.get(s.url("/healthz")).send().unwrap().status(), 200);
    assert_eq!(c.get(s.url("/readyz")).send().unwrap().status(), 200);

    // Filters.
    let count = |q: &str| -> usize {
        let r = get(&c, &s, &format!("/api/v1/detections?{q}"));
        assert_eq!(r.status(), 200, "{q}");
        let v: Value = r.json().unwrap();
        v["items"].as_array().unwrap().len()
    };
    assert_eq!(count("client=192.0.2.10"), 1);
    assert_eq!(count("client=192.0.2.0/24"), want.len());
    assert_eq!(count("client=198.51.100.0/24"), 0);
    assert_eq!(count("pool=supportxmr.com"), 3);
    assert_eq!(count("pool=SupportXMR.com."), 3);
    assert_eq!(count("stage=stratum"), 2);
    assert_eq!(count("stage=blocked_lookup"), 2);
    let high = dets
        .iter()
        .filter(|d| d["risk_score"].as_u64().unwrap() >= 84)
        .count();
    assert_eq!(count("min_risk=84"), high);
    assert!(high > 0 && high < dets.len());
    assert_eq!(count("since=2026-11-26T00:00:00Z"), want.len());
    assert_eq!(count("until=2000-01-01T00:00:00Z"), 0);
    assert_eq!(count("suppressed=false"), want.len());
    assert_eq!(count("suppressed=true"), 0);
    assert_eq!(count("limit=3"), 3);

    // Pagination walks everything exactly once.
    let mut seen = HashSet::new();
    let mut cursor = None::<String>;
    loop {
        let q = match &cursor {
            Some(cur) => format!("/api/v1/detections?limit=3&cursor={cur}"),
            None => "/api/v1/detections?limit=3".into(),
        };
        let v: Value = get(&c, &s, &q).json().unwrap();
        for d in v["items"].as_array().unwrap() {
            assert!(seen.insert(d["id"].as_str().unwrap().to_string()));
        }
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, ids(&dets));

    // Bad filters and cursors: 400 with a JSON error.
    for (q, code) in [
        ("stage=mining", "invalid_parameter"),
        ("min_risk=500", "invalid_parameter"),
        ("client=not-an-ip", "invalid_parameter"),
        ("since=yesterday", "invalid_parameter"),
        ("limit=0", "invalid_parameter"),
        ("colour=red", "unknown_parameter"),
        ("cursor=zzzz", "bad_cursor"),
        ("cursor=t00", "bad_cursor"),
    ] {
        assert_eq!(
            error_code(get(&c, &s, &format!("/api/v1/detections?{q}")), 400),
            code,
            "{q}"
        );
    }

    // One detection by id.
    let miner = dets
        .iter()
        .find(|d| d["client_ip"] == "192.0.2.10")
        .unwrap();
    let id = miner["id"].as_str().unwrap();
    let one: Value = get(&c, &s, &format!("/api/v1/detections/{id}"))
        .json()
        .unwrap();
    assert_eq!(&one, miner);
    assert_eq!(one["stage"], "stratum");
    assert!(one["agents"][0]
        .as_str()
        .unwrap()
        .starts_with("XMRig/6.21.0"));
    assert_eq!(
        error_code(
            get(&c, &s, "/api/v1/detections/0123456789abcdef01234567"),
            404
        ),
        "not_found"
    );

    // Host timeline.
    let h: Value = get(&c, &s, "/api/v1/hosts/192.0.2.10").json().unwrap();
    assert_eq!(h["ip"], "192.0.2.10");
    assert_eq!(h["detections"].as_array().unwrap().len(), 1);
    assert!(!h["timeline"].as_array().unwrap().is_empty());
    assert_eq!(
        error_code(get(&c, &s, "/api/v1/hosts/192.0.2.99"), 404),
        "not_found"
    );
    assert_eq!(
        error_code(get(&c, &s, "/api/v1/hosts/not-an-ip"), 400),
        "invalid_parameter"
    );

    // Pools with prevalence.
    let p: Value = get(&c, &s, "/api/v1/pools").json().unwrap();
    let sx = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["pool_domain"] == "supportxmr.com")
        .expect("supportxmr.com in /pools");
    assert_eq!(sx["clients"], 3);
    assert_eq!(sx["strongest_stage"], "stratum");

    // Check.
    let ck: Value = get(&c, &s, "/api/v1/check?name=pool.supportxmr.com")
        .json()
        .unwrap();
    assert_eq!(ck["matched"], true);
    assert_eq!(ck["entry"], "supportxmr.com");
    let ck: Value = get(&c, &s, "/api/v1/check?name=notsupportxmr.com")
        .json()
        .unwrap();
    assert_eq!(ck["matched"], false);
    assert_eq!(
        error_code(get(&c, &s, "/api/v1/check"), 400),
        "invalid_parameter"
    );

    // Export with ETag / 304.
    let r = get(&c, &s, "/api/v1/export/pool-ips");
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = c
        .get(s.url("/api/v1/export/pool-ips"))
        .bearer_auth(READ)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    let j: Value = get(&c, &s, "/api/v1/export/pool-ips?format=json")
        .json()
        .unwrap();
    assert!(j["items"].is_array());

    // Metrics: pipeline counters and the service's own gauges, no addresses as labels.
    let m = get(&c, &s, "/metrics").text().unwrap();
    for name in [
        "poolwatch_detections_total",
        "poolwatch_correlate_observations_total",
        "poolwatch_service_queue_depth",
        "poolwatch_store_entries{tree=\"detections\"}",
        "poolwatch_http_requests_total",
    ] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
    assert!(!m.contains("192.0.2.10"), "an address in /metrics");

    // OpenAPI is public.
    assert_eq!(
        c.get(s.url("/api/v1/openapi.json"))
            .send()
            .unwrap()
            .status(),
        200
    );
}

#[test]
fn auth_and_suppressions_on_the_real_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_service(&dir.path().join("db"));
    let c = client();

    // Reads need the read (or admin) token; writes the admin token.
    let r = c.get(s.url("/api/v1/detections")).send().unwrap();
    assert_eq!(error_code(r, 401), "unauthorized");
    let r = c
        .get(s.url("/api/v1/detections"))
        .bearer_auth("wrong-token-0123456789abcdef")
        .send()
        .unwrap();
    assert_eq!(error_code(r, 403), "forbidden");
    let r = c.get(s.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(s.url("/api/v1/detections"))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    let body =
        serde_json::json!({"client": "192.0.2.0/28", "pool": "nanopool.org", "reason": "lab"});
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .bearer_auth(READ)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(error_code(r, 403), "forbidden");
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"reason": "nothing to match"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().unwrap();
    let sid = created["id"].as_str().unwrap().to_string();
    let list: Value = get(&c, &s, "/api/v1/suppressions").json().unwrap();
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["id"] == sid.as_str() && x["reason"] == "lab"));
    let r = c
        .delete(s.url(&format!("/api/v1/suppressions/{sid}")))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .delete(s.url(&format!("/api/v1/suppressions/{sid}")))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = c
        .delete(s.url(&format!("/api/v1/suppressions/{sid}")))
        .bearer_auth(ADMIN)
        .send()
        .unwrap();
    assert_eq!(error_code(r, 404), "not_found");
    let list: Value = get(&c, &s, "/api/v1/suppressions").json().unwrap();
    assert!(list["items"].as_array().unwrap().is_empty());
}

/// Reads SSE events until `stop(event name, data)` says so; returns what was read.
fn read_events_until(
    resp: reqwest::blocking::Response,
    stop: impl Fn(&str, &Value) -> bool,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    let mut reader = BufReader::new(resp);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return out;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data:") {
            let data: Value = serde_json::from_str(v.trim()).unwrap();
            let done = stop(&name, &data);
            out.push((name.clone(), data));
            if done {
                return out;
            }
        }
    }
}

/// A followed log: suppressions apply to what arrives after them, the live feed (SSE) carries
/// new detections as they are found, and paging stays stable while detections keep arriving.
#[test]
fn followed_log_feeds_sse_suppression_and_stable_pagination() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("dnsmasq.log");
    let db = dir.path().join("db");
    let s = serve(&db, &["--follow", live.to_str().unwrap()]);
    let c = client();

    // Suppress the lookup-only host before its traffic arrives.
    let r = c
        .post(s.url("/api/v1/suppressions"))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"client": "192.0.2.11", "reason": "known test box"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let sid: Value = r.json().unwrap();

    // Subscribe, then write the resolver log the service follows.
    let stream = reqwest::blocking::Client::builder()
        .build()
        .unwrap()
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(stream.status(), 200);
    let reader = std::thread::spawn(move || {
        read_events_until(stream, |_, d| d["client_ip"] == "192.0.2.10")
    });
    std::thread::sleep(Duration::from_millis(300));
    let text = std::fs::read_to_string(sample("sample-dnsmasq.log")).unwrap();
    append(&live, &text);
    let events = reader.join().unwrap();
    let (name, miner) = events.last().unwrap();
    assert_eq!(name, "new");
    assert_eq!(miner["pool_domain"], "supportxmr.com");

    let want = expected_stages(&expected_sample(), "stage_from_log_only");
    let dets = wait_for(&c, &s, Some(READ), "the log's verdicts", |d| {
        served_stages(d) == want
    });
    for d in &dets {
        let suppressed = d["client_ip"] == "192.0.2.11";
        assert_eq!(d["suppressed"], suppressed, "{d}");
        if suppressed {
            assert_eq!(d["suppression_id"], sid["id"]);
        }
    }
    let only: Value = get(&c, &s, "/api/v1/detections?suppressed=true")
        .json()
        .unwrap();
    assert_eq!(only["items"].as_array().unwrap().len(), 1);

    // More hosts arrive while a client pages (limit 2): every detection present at the start
    // is returned exactly once.
    let initial = ids(&dets);
    let mut seen = HashSet::new();
    let mut cursor = None::<String>;
    let mut round = 0u32;
    loop {
        let q = match &cursor {
            Some(cur) => format!("/api/v1/detections?limit=2&cursor={cur}"),
            None => "/api/v1/detections?limit=2".into(),
        };
        let v: Value = get(&c, &s, &q).json().unwrap();
        for d in v["items"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "{id} returned twice");
        }
        round += 1;
        let mut batch = String::new();
        for k in 0..3 {
            let n = round * 3 + k;
            batch.push_str(&dnsmasq_lookup(
                100 + n,
                &format!("10.9.{}.{}", n / 200, n % 200 + 1),
                "xmr-eu1.nanopool.org",
                "203.0.113.20",
                // Some before, some after the existing detections in time order.
                if k == 0 { "19:59:00" } else { "20:05:00" },
            ));
        }
        append(&live, &batch);
        std::thread::sleep(Duration::from_millis(150));
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
        assert!(round < 200, "pagination does not terminate");
    }
    assert!(initial.is_subset(&seen), "a detection was skipped");
    // The hosts added meanwhile did arrive (the inserts were real).
    wait_for(&c, &s, Some(READ), "the added hosts", |d| {
        d.len() >= initial.len() + 3 * round as usize
    });
}

/// The lab's dev capture and resolver logs (mixed run) through the service: the served
/// detections equal `poolwatch scan`'s on the same inputs, and match the ground truth.
#[test]
fn lab_mixed_run_through_the_service_matches_ground_truth() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let run = gt["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run_id"] == "mixed")
        .cloned()
        .expect("mixed run");
    let lab = shared.join("lab");
    let inputs = [
        lab.join("pcaps/mixed.pcap"),
        lab.join("logs/dnsmasq/mixed/dnsmasq.log"),
        lab.join("logs/bind/mixed/query.log"),
        lab.join("logs/unbound/mixed/unbound.log"),
    ];
    let list = lab.join("pool-domains.txt");

    let out = std::process::Command::new(bin())
        .args(["scan", "--output", "json", "--no-progress", "--blocklist"])
        .arg(&list)
        .args(&inputs)
        .output()
        .unwrap();
    let scanned: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!scanned.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut args = vec![
        "serve".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        db.display().to_string(),
        "--blocklist".into(),
        list.display().to_string(),
    ];
    for i in &inputs {
        args.push("--import".into());
        args.push(i.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let s = Svc::start(&args, None);
    let c = client();
    let want = served_stages(&scanned);
    let dets = wait_for(&c, &s, None, "scan's detections", |d| {
        d.len() == scanned.len() && served_stages(d) == want
    });
    assert_eq!(ids(&dets), ids(&scanned), "same incidents as scan");
    let typed: Vec<poolwatch::model::Detection> = dets
        .iter()
        .map(|d| serde_json::from_value(d.clone()).unwrap())
        .collect();
    let problems = support::check_verdicts(&gt, &run, &typed);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// The live feed carries detections found by a background import while it runs: a long
/// resolver log (benign lookups, then a miner's) is imported; a client subscribed right after
/// start-up receives the miner's detection.
#[test]
fn sse_receives_a_detection_while_an_import_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big-dnsmasq.log");
    let mut text = String::with_capacity(16 << 20);
    const BENIGN: u32 = 40_000;
    for i in 0..BENIGN {
        let t = format!("20:{:02}:{:02}", (i / 60) % 60, i % 60);
        text.push_str(&dnsmasq_lookup(
            i % 900 + 1,
            &format!("10.5.{}.{}", (i / 250) % 250, i % 250 + 1),
            &format!("www{}.example.com", i % 97),
            "198.51.100.80",
            &t,
        ));
    }
    text.push_str(&dnsmasq_lookup(
        950,
        "10.6.0.1",
        "pool.supportxmr.com",
        "203.0.113.10",
        "21:00:00",
    ));
    std::fs::write(&log, &text).unwrap();
    let db = dir.path().join("db");
    let s = serve(&db, &["--import", log.to_str().unwrap()]);
    let stream = reqwest::blocking::Client::builder()
        .build()
        .unwrap()
        .get(s.url("/api/v1/detections/stream?min_risk=1"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(stream.status(), 200);
    // Still importing when the subscription is in place (the miner is the log's last line).
    let c = client();
    let early = all_detections(&c, &s, Some(READ));
    assert!(early.is_empty(), "import already finished: {early:?}");
    let events = read_events_until(stream, |_, d| d["client_ip"] == "10.6.0.1");
    let (name, d) = events.last().unwrap();
    assert_eq!(name, "new");
    assert_eq!(d["pool_domain"], "supportxmr.com");
    assert_eq!(d["stage"], "lookup");
}
