//! Syslog sinks against a real rsyslog (imudp, imtcp, gtls): RFC 5424 over UDP, TCP with
//! octet-counted framing and TLS, with JSON, CEF and LEEF messages. Every record the file sink
//! of the same run received must reach rsyslog with the documented fields.

use crate::support::output as output_support;
use crate::support::service as service_support;

use std::collections::BTreeMap;
use std::path::Path;

use output_support::*;
use poolwatch::output::format::cef;
use serde_json::Value;
use service_support::{self as ss, Svc};

fn serve(dir: &Path, outputs: &[String]) -> Svc {
    let db = dir.join("db");
    let pcap = ss::sample("sample.pcap");
    let log = ss::sample("sample-dnsmasq.log");
    let mut args: Vec<String> = vec![
        "serve".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--db".into(),
        db.display().to_string(),
        "--import".into(),
        pcap.display().to_string(),
        "--import".into(),
        log.display().to_string(),
        "--output".into(),
        "file:pw.json".into(),
    ];
    for o in outputs {
        args.push("--output".into());
        args.push(o.clone());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Svc::start(&refs, Some(dir))
}

fn leef_attrs(msg: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let parts: Vec<&str> = msg.splitn(7, '|').collect();
    let attrs = parts
        .get(6)
        .unwrap_or(&"")
        .split('\t')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (parts.iter().take(6).map(|s| s.to_string()).collect(), attrs)
}

#[test]
fn rsyslog_receives_json_cef_and_leef_over_udp_and_tcp() {
    if rsyslogd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (tcp, udp) = (free_port(), free_udp_port());
    let rs = Rsyslog::start(dir.path(), tcp, udp, None);
    let s = serve(
        dir.path(),
        &[
            format!("syslog:udp://127.0.0.1:{udp},app_name=pw-udp,name=udp"),
            format!("syslog:tcp://127.0.0.1:{tcp},format=cef,app_name=pw-cef,facility=auth,name=cef"),
            format!("syslog:tcp://localhost:{tcp},format=leef,app_name=pw-leef,facility=local5,name=leef"),
        ],
    );
    let c = ss::client();
    settle(&c, &s, &["file", "udp", "cef", "leef"]);
    let pw = read_jsonl(&dir.path().join("pw.json"));
    let ids = event_ids(&pw);
    assert!(ids.len() >= 8, "{ids:?}");
    let by_id: BTreeMap<String, &Value> = pw
        .iter()
        .map(|r| (r["event"]["id"].as_str().unwrap().to_string(), r))
        .collect();
    let outs = outputs(&c, &s);
    for n in ["udp", "cef", "leef"] {
        assert_eq!(outs[n]["type"], "syslog");
        assert_eq!(outs[n]["state"], "ok", "{}", outs[n]);
        assert_eq!(outs[n]["delivered"].as_u64().unwrap() as usize, ids.len());
    }
    assert_eq!(outs["udp"]["format"], "json");

    // JSON over UDP: the poolwatch record is the MSG.
    let udp_lines = rs.wait_app("pw-udp", ids.len());
    let mut got: Vec<String> = Vec::new();
    for l in &udp_lines {
        let v: Value = serde_json::from_str(&l.msg).unwrap_or_else(|e| panic!("{e}: {}", l.msg));
        let id = v["event"]["id"].as_str().unwrap().to_string();
        assert_eq!(l.msgid, v["event"]["kind"].as_str().unwrap());
        assert_eq!(l.pri / 8, 16, "local0 by default");
        assert!(!l.host.is_empty() && l.host != "-");
        assert_eq!(&v, by_id[&id]);
        got.push(id);
    }
    got.sort();
    assert_eq!(got, ids);

    // CEF over TCP (octet-counted): rsyslog splits the frames exactly.
    let cef_lines = rs.wait_app("pw-cef", ids.len());
    let mut got: Vec<String> = Vec::new();
    for l in &cef_lines {
        assert_eq!(l.pri / 8, 4, "facility auth");
        let (h, ext) = cef::parse(&l.msg).unwrap_or_else(|| panic!("not CEF: {}", l.msg));
        assert_eq!(&h[..3], ["CEF:0", "poolwatch", "poolwatch"]);
        let r = by_id[&ext["externalId"]];
        assert_eq!(ext["src"], r["client_ip"].as_str().unwrap());
        assert_eq!(ext["cs2"], r["stage"].as_str().unwrap());
        assert_eq!(ext["cs3"], "T1496");
        assert_eq!(ext["act"], l.msgid);
        if let Some(ip) = r["pool_ips"][0].as_str() {
            assert_eq!(ext["dst"], ip);
        }
        if let Some(p) = r["dst_ports"][0].as_u64() {
            assert_eq!(ext["dpt"], p.to_string());
        }
        let sev: u8 = h[6].parse().unwrap();
        assert!(sev <= 10);
        // Syslog severity follows the risk: stratum/direct IP critical (2) … blocked low (5).
        let risk = r["risk_score"].as_u64().unwrap();
        let want_sev = match risk {
            90.. => 2,
            80..=89 => 3,
            50..=79 => 4,
            _ => 5,
        };
        assert_eq!(l.pri % 8, want_sev, "{risk}");
        got.push(ext["externalId"].clone());
    }
    got.sort();
    assert_eq!(got, ids);

    // LEEF 2.0 over TCP to a host name.
    let leef_lines = rs.wait_app("pw-leef", ids.len());
    let mut got: Vec<String> = Vec::new();
    for l in &leef_lines {
        assert_eq!(l.pri / 8, 21, "facility local5");
        let (h, a) = leef_attrs(&l.msg);
        assert_eq!(h[0], "LEEF:2.0");
        assert_eq!(h[5], "x09");
        let r = by_id[&a["eventId"]];
        assert_eq!(a["src"], r["client_ip"].as_str().unwrap());
        assert_eq!(h[4], format!("mining_{}", r["stage"].as_str().unwrap()));
        assert_eq!(a["mitreTechnique"], "T1496");
        got.push(a["eventId"].clone());
    }
    got.sort();
    assert_eq!(got, ids);
    rs.stop();
}

#[test]
fn rsyslog_over_tls_with_a_private_ca() {
    if rsyslogd().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let (tcp, udp) = (free_port(), free_udp_port());
    let rs = Rsyslog::start(dir.path(), tcp, udp, Some(&tls));
    let s = serve(
        dir.path(),
        &[
            format!(
                "syslog:tls://127.0.0.1:{tcp},format=cef,app_name=pw-tls,name=tls,ca_file={}",
                tls.ca.display()
            ),
            // Without the private CA the server is not trusted: nothing may be sent.
            format!("syslog:tls://localhost:{tcp},app_name=pw-untrusted,name=untrusted"),
        ],
    );
    let c = ss::client();
    settle(&c, &s, &["file", "tls"]);
    let ids = event_ids(&read_jsonl(&dir.path().join("pw.json")));
    let lines = rs.wait_app("pw-tls", ids.len());
    let mut got: Vec<String> = lines
        .iter()
        .map(|l| cef::parse(&l.msg).unwrap().1["externalId"].clone())
        .collect();
    got.sort();
    assert_eq!(got, ids);
    let outs = outputs(&c, &s);
    let u = &outs["untrusted"];
    assert_eq!(u["state"], "failing", "{u}");
    assert_eq!(u["delivered"], 0);
    assert_eq!(u["backlog"].as_u64().unwrap() as usize, ids.len());
    let err = u["last_error"].as_str().unwrap();
    assert!(err.contains("TLS") || err.contains("certificate"), "{err}");
    assert!(rs.lines().iter().all(|l| l.app != "pw-untrusted"));
    rs.stop();
}
