//! The service's life cycle with the real binary and a real sled database: clean stop on
//! SIGTERM (exit 0, data kept), `kill -9` after detections were served (data kept), following a
//! log across a restart (resumes, no duplicates), and clear start-up errors.

use crate::support::service as service_support;

use std::time::Duration;

use serde_json::Value;
use service_support::*;

fn serve_args<'a>(db: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["serve", "--listen", "127.0.0.1:0", "--db", db];
    v.extend_from_slice(extra);
    v
}

/// (id, stage, counts) of each detection, sorted: what must survive a restart unchanged.
fn summary(dets: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = dets
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["stage"].as_str().unwrap().to_string(),
                d["counts"].to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn sigterm_exits_zero_and_a_restart_serves_the_same_detections() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let (pcap, log) = (sample("sample.pcap"), sample("sample-dnsmasq.log"));
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let mut s = Svc::start(
        &serve_args(
            db,
            &[
                "--import",
                pcap.to_str().unwrap(),
                "--import",
                log.to_str().unwrap(),
            ],
        ),
        None,
    );
    let before = wait_for(&c, &s, None, "sample verdicts", |d| {
        served_stages(d) == want
    });
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "stderr:\n{}", s.stderr());
    assert!(s.stderr().contains("SIGTERM"), "{}", s.stderr());

    // Same database, no inputs: the same incidents, unchanged.
    let mut s = Svc::start(&serve_args(db, &[]), None);
    let after = all_detections(&c, &s, None);
    assert_eq!(summary(&after), summary(&before));
    s.signal(libc::SIGINT);
    assert_eq!(s.wait_exit(), Some(0));
}

#[test]
fn kill_9_after_detections_were_served_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let pcap = sample("sample.pcap");
    let c = client();
    let mut s = Svc::start(&serve_args(db, &["--import", pcap.to_str().unwrap()]), None);
    // Whatever the API has shown was flushed before it was shown.
    let seen = wait_for(&c, &s, None, "the miner", |d| {
        d.iter()
            .any(|x| x["client_ip"] == "192.0.2.10" && x["stage"] == "stratum")
    });
    s.kill9();
    let s = Svc::start(&serve_args(db, &[]), None);
    let after = all_detections(&c, &s, None);
    for d in &seen {
        let id = d["id"].as_str().unwrap();
        let again = after
            .iter()
            .find(|x| x["id"] == id)
            .unwrap_or_else(|| panic!("{id} lost after kill -9"));
        assert_eq!(again["client_ip"], d["client_ip"]);
        // Never weaker than what was shown.
        let rank = |v: &Value| served_stages(std::slice::from_ref(v));
        assert!(rank(again) >= rank(d) || again["stage"] == d["stage"]);
    }
}

#[test]
fn follow_appends_show_up_and_a_restart_does_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let live = dir.path().join("resolver.log");
    let live_s = live.to_str().unwrap().to_string();
    std::fs::write(&live, "").unwrap();
    let c = client();

    let mut s = Svc::start(&serve_args(db, &["--follow", &live_s]), None);
    append(
        &live,
        &dnsmasq_lookup(
            1,
            "10.1.0.1",
            "pool.supportxmr.com",
            "203.0.113.10",
            "20:00:01",
        ),
    );
    let first = wait_for(&c, &s, None, "the first followed lookup", |d| d.len() == 1);
    assert_eq!(first[0]["client_ip"], "10.1.0.1");
    assert_eq!(first[0]["counts"]["lookups"], 1);
    append(
        &live,
        &dnsmasq_lookup(
            2,
            "10.1.0.2",
            "xmr-eu1.nanopool.org",
            "203.0.113.20",
            "20:00:02",
        ),
    );
    let two = wait_for(&c, &s, None, "the second followed lookup", |d| d.len() == 2);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0), "stderr:\n{}", s.stderr());

    // Lines written while the service is down are read after the restart; the old ones are not
    // read again (the lookup counts stay at 1).
    append(
        &live,
        &dnsmasq_lookup(
            3,
            "10.1.0.3",
            "gulf.moneroocean.stream",
            "203.0.113.30",
            "20:00:03",
        ),
    );
    let s = Svc::start(&serve_args(db, &["--follow", &live_s]), None);
    let three = wait_for(&c, &s, None, "the line written while down", |d| {
        d.len() == 3
    });
    std::thread::sleep(Duration::from_millis(1500));
    let three = {
        let again = all_detections(&c, &s, None);
        assert_eq!(summary(&again), summary(&three));
        again
    };
    for d in &two {
        let now = three.iter().find(|x| x["id"] == d["id"]).unwrap();
        assert_eq!(now["counts"]["lookups"], 1, "re-read after restart: {now}");
    }
}

#[test]
fn start_up_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();

    // A database in use by another instance.
    let s = Svc::start(&serve_args(db, &[]), None);
    let out = std::process::Command::new(bin())
        .args(serve_args(db, &[]))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another poolwatch"), "{err}");

    // The API port in use.
    let addr = s.base.trim_start_matches("http://").to_string();
    let other = dir.path().join("db2");
    let out = std::process::Command::new(bin())
        .args(["serve", "--listen", &addr, "--db", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use") && err.contains("--listen"), "{err}");

    // A bad dnstap address is a configuration error naming the flag.
    let out = std::process::Command::new(bin())
        .args(["serve", "--check-config", "--dnstap", "carrier-pigeon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--dnstap"));
}

#[test]
fn dnstap_socket_input_is_served() {
    // A resolver's dnstap over TCP: a bidirectional Frame Streams session replaying the lab's
    // Unbound capture. Skips when ../shared is absent.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    let fstrm = shared.join("lab/logs/unbound/mixed/dnstap.fstrm");
    if !fstrm.is_file() {
        println!("skipping: ../shared/data not present");
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let spec = format!("tcp:127.0.0.1:{port}");
    let list = shared.join("lab/pool-domains.txt");
    let s = Svc::start(
        &serve_args(
            db.to_str().unwrap(),
            &["--dnstap", &spec, "--blocklist", list.to_str().unwrap()],
        ),
        None,
    );
    let c = client();
    wait_ready(&c, &s);
    let frames = data_frames(&std::fs::read(&fstrm).unwrap());
    assert!(!frames.is_empty());
    send_dnstap(port, &frames);
    let dets = wait_for(&c, &s, None, "dnstap detections", |d| !d.is_empty());
    assert!(dets
        .iter()
        .all(|d| d["sources"].to_string().contains("dnstap:tcp:")));
}

/// The data frames of a unidirectional Frame Streams file.
fn data_frames(b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0usize;
    let be = |i: usize| -> Option<usize> {
        Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize)
    };
    while let Some(len) = be(i) {
        i += 4;
        if len == 0 {
            // Control frame: its own length, then the payload.
            let Some(cl) = be(i) else { break };
            i += 4 + cl;
            continue;
        }
        let Some(f) = b.get(i..i + len) else { break };
        out.push(f.to_vec());
        i += len;
    }
    out
}

/// Speaks bidirectional Frame Streams as a resolver does: READY → (ACCEPT) → START, frames, STOP.
fn send_dnstap(port: u16, frames: &[Vec<u8>]) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let control = |t: u32, ct: bool| -> Vec<u8> {
        let mut payload = t.to_be_bytes().to_vec();
        if ct {
            let c = b"protobuf:dnstap.Dnstap";
            payload.extend_from_slice(&1u32.to_be_bytes());
            payload.extend_from_slice(&(c.len() as u32).to_be_bytes());
            payload.extend_from_slice(c);
        }
        let mut v = 0u32.to_be_bytes().to_vec();
        v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        v.extend_from_slice(&payload);
        v
    };
    s.write_all(&control(4, true)).unwrap(); // READY
    let mut hdr = [0u8; 8];
    s.read_exact(&mut hdr).unwrap();
    let len = u32::from_be_bytes(hdr[4..8].try_into().unwrap()) as usize;
    let mut acc = vec![0u8; len];
    s.read_exact(&mut acc).unwrap();
    assert_eq!(&acc[..4], &1u32.to_be_bytes(), "ACCEPT expected");
    s.write_all(&control(2, true)).unwrap(); // START
    for f in frames {
        s.write_all(&(f.len() as u32).to_be_bytes()).unwrap();
        s.write_all(f).unwrap();
    }
    s.write_all(&control(3, false)).unwrap(); // STOP
    let mut fin = [0u8; 12];
    let _ = s.read_exact(&mut fin); // FINISH
}

#[test]
fn config_file_logging_settings_take_effect() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("poolwatch.toml");
    std::fs::write(
        &cfg,
        "listen = \"127.0.0.1:0\"\ndb = \"db\"\nlog_json = true\nlog_level = \"info\"\n",
    )
    .unwrap();
    let mut s = Svc::start(&["serve", "--config", cfg.to_str().unwrap()], None);
    let c = client();
    wait_ready(&c, &s);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0));
    let log = s.stderr();
    let json_lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        json_lines.iter().any(|v| v["fields"]["message"] == "ready"),
        "no JSON log line for `ready`:\n{log}"
    );
    // The database path in the file is relative to the file.
    assert!(dir.path().join("db").is_dir());
}

/// A user list uploaded through the API changes what the running pipeline detects at once, and
/// persists across a restart of the service.
#[test]
fn uploaded_user_list_is_used_by_the_pipeline_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let live = dir.path().join("resolver.log");
    let live_s = live.to_str().unwrap().to_string();
    std::fs::write(&live, "").unwrap();
    let c = client();
    let args = serve_args(
        db,
        &[
            "--follow",
            &live_s,
            "--admin-token",
            ADMIN,
            "--read-token",
            READ,
        ],
    );
    let mut s = Svc::start(&args, None);
    wait_ready(&c, &s);
    let r = c
        .put(s.url("/api/v1/blocklists/site-pools?category=pool"))
        .bearer_auth(ADMIN)
        .body("corp-mining.example\n")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let ck: Value = c
        .get(s.url("/api/v1/check?name=eu.corp-mining.example"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ck["matched"], true, "{ck}");
    assert_eq!(ck["list"], "site-pools");
    append(
        &live,
        &dnsmasq_lookup(
            1,
            "10.2.0.1",
            "eu.corp-mining.example",
            "203.0.113.99",
            "20:00:01",
        ),
    );
    let dets = wait_for(
        &c,
        &s,
        Some(READ),
        "a detection from the uploaded list",
        |d| !d.is_empty(),
    );
    assert_eq!(dets[0]["pool_domain"], "corp-mining.example");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0));

    let s = Svc::start(&args, None);
    let ck: Value = c
        .get(s.url("/api/v1/check?name=corp-mining.example"))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(ck["matched"], true, "user list lost on restart: {ck}");
}

/// `kill -9` while following: after the restart the followed lines are read again where their
/// offset was not yet committed (at least once), and they continue the same incidents instead
/// of opening new ones.
#[test]
fn kill_9_while_following_loses_nothing_and_adds_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let db = db.to_str().unwrap();
    let live = dir.path().join("resolver.log");
    let live_s = live.to_str().unwrap().to_string();
    append(
        &live,
        &dnsmasq_lookup(
            1,
            "10.3.0.1",
            "pool.supportxmr.com",
            "203.0.113.10",
            "20:00:01",
        ),
    );
    append(
        &live,
        &dnsmasq_lookup(
            2,
            "10.3.0.2",
            "xmr-eu1.nanopool.org",
            "203.0.113.20",
            "20:00:02",
        ),
    );
    let c = client();
    let mut s = Svc::start(&serve_args(db, &["--follow", &live_s]), None);
    let before = wait_for(&c, &s, None, "both lookups", |d| d.len() == 2);
    s.kill9();
    let s = Svc::start(&serve_args(db, &["--follow", &live_s]), None);
    std::thread::sleep(Duration::from_millis(2500));
    let after = all_detections(&c, &s, None);
    assert_eq!(
        ids(&after),
        ids(&before),
        "rows lost or added after kill -9"
    );
}
