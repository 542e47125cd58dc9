//! Delivery under faults, with a real rsyslog as the receiver: the receiver is down while the
//! service detects and comes up later; poolwatch is killed with `kill -9` with a full outbox and
//! restarted; the outbox overflows (exact count, detection goes on); the rate limit counts and
//! announces itself.

use crate::support::output as output_support;
use crate::support::service as service_support;

use std::collections::BTreeSet;
use std::path::Path;

use output_support::*;
use poolwatch::output::format::cef;
use service_support::{self as ss, Svc};

fn serve(dir: &Path, import: bool, outputs: &[String]) -> Svc {
    let db = dir.join("db");
    let pcap = ss::sample("sample.pcap");
    let log = ss::sample("sample-dnsmasq.log");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        db.display().to_string(),
    ];
    if import {
        for p in [pcap, log] {
            args.push("--import".into());
            args.push(p.display().to_string());
        }
    }
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Svc::start(&refs, Some(dir))
}

fn cef_ids(rs: &Rsyslog, app: &str, n: usize) -> Vec<String> {
    rs.wait_app(app, n)
        .iter()
        .map(|l| cef::parse(&l.msg).unwrap().1["externalId"].clone())
        .collect()
}

fn assert_detected_everything(c: &reqwest::blocking::Client, s: &Svc) {
    let dets = ss::all_detections(c, s, None);
    assert_eq!(
        ss::served_stages(&dets),
        ss::expected_stages(&ss::expected_sample(), "stage"),
        "detection must not depend on the sinks"
    );
}

#[test]
fn receiver_down_then_up_gets_everything() {
    if rsyslogd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let outs = [
        "file:pw.json".to_string(),
        format!("syslog:tcp://127.0.0.1:{tcp},format=cef,app_name=pw-late,name=late"),
    ];
    let s = serve(dir.path(), true, &outs);
    let c = ss::client();
    settle(&c, &s, &["file"]);
    assert_detected_everything(&c, &s);
    let ids = event_ids(&read_jsonl(&dir.path().join("pw.json")));
    let late = &outputs(&c, &s)["late"];
    assert_eq!(late["state"], "failing", "{late}");
    assert_eq!(late["delivered"], 0);
    assert_eq!(late["backlog"].as_u64().unwrap() as usize, ids.len());
    assert!(
        late["last_error"].as_str().unwrap().contains("connect"),
        "{late}"
    );
    let m = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(m.contains(&format!(
        "poolwatch_output_backlog_records{{sink=\"late\"}} {}",
        ids.len()
    )));
    assert!(m.contains("poolwatch_output_up{sink=\"late\"} 0"));

    // The receiver comes up: the backlog drains by itself.
    let rs = Rsyslog::start(dir.path(), tcp, udp, None);
    let mut got = cef_ids(&rs, "pw-late", ids.len());
    got.sort();
    assert_eq!(got, ids);
    let late = eventually("late sink ok", || {
        let o = outputs(&c, &s)["late"].clone();
        (o["state"] == "ok" && o["backlog"] == 0).then_some(o)
    });
    assert_eq!(late["delivered"].as_u64().unwrap() as usize, ids.len());
    assert!(late["last_success"].is_string());
}

#[test]
fn kill9_with_a_full_outbox_then_restart_delivers_everything() {
    if rsyslogd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let outs = [
        "file:pw.json".to_string(),
        format!("syslog:tcp://127.0.0.1:{tcp},format=cef,app_name=pw-crash,name=crash"),
    ];
    let mut s = serve(dir.path(), true, &outs);
    let c = ss::client();
    settle(&c, &s, &["file"]);
    let ids = event_ids(&read_jsonl(&dir.path().join("pw.json")));
    assert_eq!(
        outputs(&c, &s)["crash"]["backlog"].as_u64().unwrap() as usize,
        ids.len()
    );
    s.kill9();

    let rs = Rsyslog::start(dir.path(), tcp, udp, None);
    // Restart on the same database, no input: only the outbox has something to say.
    let s = serve(dir.path(), false, &outs);
    let got = cef_ids(&rs, "pw-crash", ids.len());
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    // At least once: no gap (every event id); a duplicate would be allowed after a crash.
    assert_eq!(unique, ids.iter().cloned().collect::<BTreeSet<_>>());
    let o = eventually("outbox drained", || {
        let o = outputs(&c, &s)["crash"].clone();
        (o["backlog"] == 0 && o["state"] == "ok").then_some(o)
    });
    assert!(o["delivered"].as_u64().unwrap() as usize >= ids.len());
    // The file sink had delivered everything before the crash: nothing again.
    assert_eq!(read_jsonl(&dir.path().join("pw.json")).len(), ids.len());
}

#[test]
fn outbox_overflow_is_counted_exactly_and_detection_goes_on() {
    if rsyslogd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    const CAP: usize = 3;
    let outs = [
        "file:pw.json".to_string(),
        format!(
            "syslog:tcp://127.0.0.1:{tcp},format=cef,app_name=pw-full,name=full,max_backlog={CAP}"
        ),
    ];
    let mut s = serve(dir.path(), true, &outs);
    let c = ss::client();
    settle(&c, &s, &["file"]);
    assert_detected_everything(&c, &s);
    let pw = read_jsonl(&dir.path().join("pw.json"));
    let ids = event_ids(&pw);
    assert!(ids.len() > CAP);
    let full = &outputs(&c, &s)["full"];
    assert_eq!(full["backlog"].as_u64().unwrap() as usize, CAP, "{full}");
    assert_eq!(full["dropped"].as_u64().unwrap() as usize, ids.len() - CAP);
    let m = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(
        m.contains(&format!(
            "poolwatch_output_dropped_total{{sink=\"full\",reason=\"overflow\"}} {}",
            ids.len() - CAP
        )),
        "{m}"
    );
    assert!(s.stderr().contains("outbox full"), "{}", s.stderr());
    // A clean stop keeps the backlog; the next start delivers it: the oldest events (the
    // outbox refuses new ones when full, it never evicts what it accepted).
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(), Some(0));
    let rs = Rsyslog::start(dir.path(), tcp, udp, None);
    let s = serve(dir.path(), false, &outs);
    let mut got = cef_ids(&rs, "pw-full", CAP);
    got.sort();
    let mut by_seq: Vec<(u64, String)> = pw
        .iter()
        .map(|r| {
            (
                r["event"]["sequence"].as_u64().unwrap(),
                r["event"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    by_seq.sort();
    let mut oldest: Vec<String> = by_seq.into_iter().take(CAP).map(|x| x.1).collect();
    oldest.sort();
    assert_eq!(got, oldest);
    let o = eventually("drained", || {
        let o = outputs(&c, &s)["full"].clone();
        (o["backlog"] == 0).then_some(o)
    });
    // The overflow count is durable.
    assert_eq!(o["dropped"].as_u64().unwrap() as usize, ids.len() - CAP);
}

#[test]
fn rate_limit_counts_and_sends_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let outs = [
        "file:pw.json".to_string(),
        "file:limited.json,name=limited,rate_limit=2,rate_limit_window=1h".to_string(),
    ];
    let s = serve(dir.path(), true, &outs);
    let c = ss::client();
    settle(&c, &s, &["file", "limited"]);
    let all = read_jsonl(&dir.path().join("pw.json"));
    let limited = read_jsonl(&dir.path().join("limited.json"));
    let (notes, dets): (Vec<_>, Vec<_>) = limited
        .iter()
        .partition(|r| r["event"]["kind"] == "rate_limited");
    assert_eq!(dets.len(), 2);
    assert_eq!(notes.len(), 1, "one announcement when the limit kicks in");
    assert_eq!(notes[0]["rate_limit"]["limit"], 2);
    assert_eq!(notes[0]["rate_limit"]["window_secs"], 3600);
    assert_eq!(notes[0]["rate_limit"]["sink"], "limited");
    let o = &outputs(&c, &s)["limited"];
    assert_eq!(o["rate_limited"].as_u64().unwrap() as usize, all.len() - 2);
    assert_eq!(o["dropped"], 0);
}
