//! The lab captures (`../shared/data/lab/pcaps/*.pcap`, real resolvers on loopback, Ethernet
//! link type) against their ground truth: every host's queries appear as DNS observations with
//! the right answers, every TCP connection as a flow with the right state, and the mining
//! protocols / SNI are recognised.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use poolwatch::capture::{self, CaptureConfig};
use poolwatch::model::{
    normalize_name, DnsObservation, FlowObservation, FlowReport, FlowState, Observation,
};
use serde_json::Value;

fn lab() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lab");
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

fn s(v: &Value, k: &str) -> String {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn lab_captures_match_ground_truth() {
    let Some(lab) = lab() else { return };
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(lab.join("ground-truth.json")).unwrap())
            .unwrap();
    let mut problems = Vec::new();
    let (mut n_dns, mut n_conn, mut n_mining) = (0, 0, 0);
    for run in truth["runs"].as_array().unwrap() {
        let run_id = s(run, "run_id");
        let pcap = lab.join(s(run, "pcap"));
        let obs: Vec<Observation> = capture::open_file(&pcap, &CaptureConfig::default())
            .unwrap()
            .collect();
        let dns: Vec<&DnsObservation> = obs
            .iter()
            .filter_map(|o| match o {
                Observation::Dns(d) => Some(d),
                _ => None,
            })
            .collect();
        let flows: Vec<&FlowObservation> = obs
            .iter()
            .filter_map(|o| match o {
                Observation::Flow(f) => Some(f),
                _ => None,
            })
            .collect();
        for host in run["hosts"].as_array().unwrap() {
            let hid = s(host, "host_id");
            let ip: IpAddr = s(host, "ip").parse().unwrap();
            for q in host["dns"].as_array().unwrap() {
                n_dns += 1;
                let qname = normalize_name(&s(q, "qname"));
                let id = q["id"].as_u64().unwrap() as u16;
                let resolver: IpAddr = s(q, "resolver_ip").parse().unwrap();
                let port = q["src_port"].as_u64().map(|p| p as u16);
                let transport = s(q, "transport");
                let found = dns.iter().find(|d| {
                    d.client == ip
                        && d.id == Some(id)
                        && d.qname == qname
                        && d.qtype.to_string() == s(q, "qtype")
                        && d.server == Some(resolver)
                        && port.is_none_or(|p| d.client_port == Some(p))
                        && serde_json::to_value(d.transport).unwrap() == transport.as_str()
                });
                let Some(d) = found else {
                    problems.push(format!(
                        "{run_id} {hid}: query {qname} id {id} {transport} missing"
                    ));
                    continue;
                };
                if d.rcode.map(|r| r.to_string()) != Some(s(q, "rcode")) {
                    problems.push(format!(
                        "{run_id} {hid}: {qname} rcode {:?} != {}",
                        d.rcode,
                        s(q, "rcode")
                    ));
                }
                if d.truncated != q["tc"].as_bool().unwrap_or(false) {
                    problems.push(format!("{run_id} {hid}: {qname} TC differs"));
                }
                let want: BTreeSet<(String, String, String)> = q["answers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        let t = s(a, "type");
                        let data = if t == "CNAME" {
                            normalize_name(&s(a, "data"))
                        } else {
                            s(a, "data")
                        };
                        (normalize_name(&s(a, "name")), t, data)
                    })
                    .collect();
                let got: BTreeSet<(String, String, String)> = d
                    .answers
                    .iter()
                    .map(|a| (a.name.clone(), a.rtype.to_string(), a.data.clone()))
                    .collect();
                if want != got {
                    problems.push(format!(
                        "{run_id} {hid}: {qname} answers {got:?} != {want:?}"
                    ));
                }
                if d.rtt_us.is_none() {
                    problems.push(format!("{run_id} {hid}: {qname} no rtt"));
                }
            }
            for c in host["connections"].as_array().unwrap() {
                n_conn += 1;
                let dst: IpAddr = s(c, "dst_ip").parse().unwrap();
                let dport = c["dst_port"].as_u64().unwrap() as u16;
                let sport = c["src_port"].as_u64().unwrap() as u16;
                let reports: Vec<&&FlowObservation> = flows
                    .iter()
                    .filter(|f| {
                        f.src == ip && f.src_port == sport && f.dst == dst && f.dst_port == dport
                    })
                    .collect();
                let Some(fin) = reports.iter().find(|f| f.report == FlowReport::Final) else {
                    problems.push(format!(
                        "{run_id} {hid}: connection to {dst}:{dport} has no final flow"
                    ));
                    continue;
                };
                let want_state = match (
                    c["established"].as_bool(),
                    c.get("ts_close").is_some_and(|v| !v.is_null()),
                ) {
                    (Some(true), true) => FlowState::Closed,
                    (Some(true), false) => FlowState::Established,
                    _ => FlowState::Attempted,
                };
                if fin.state != want_state {
                    problems.push(format!(
                        "{run_id} {hid}: {dst}:{dport} state {:?} != {want_state:?}",
                        fin.state
                    ));
                }
                if fin.bytes_out == 0 || fin.packets_in == 0 {
                    problems.push(format!("{run_id} {hid}: {dst}:{dport} counts empty"));
                }
                let app = s(c, "app");
                let tls = c["tls"].as_bool().unwrap_or(false);
                if tls {
                    if !fin.app.tls || fin.app.sni.as_deref() != c["sni"].as_str() {
                        problems.push(format!(
                            "{run_id} {hid}: {dst}:{dport} TLS/SNI {:?} != {:?}",
                            fin.app, c["sni"]
                        ));
                    }
                } else if matches!(app.as_str(), "xmrig" | "stratum1" | "ethproxy") {
                    n_mining += 1;
                    if fin.app.stratum_method.is_none() {
                        problems.push(format!(
                            "{run_id} {hid}: {dst}:{dport} {app} not recognised"
                        ));
                    }
                    // Reported while the session is still open, not only at its end.
                    let early = reports
                        .iter()
                        .any(|f| f.report == FlowReport::Interim && f.app.stratum_method.is_some());
                    if !early {
                        problems.push(format!(
                            "{run_id} {hid}: {dst}:{dport} no interim Stratum report"
                        ));
                    }
                } else if matches!(app.as_str(), "http" | "selenium") && fin.app.http_host.is_none()
                {
                    problems.push(format!("{run_id} {hid}: {dst}:{dport} HTTP Host not read"));
                }
            }
            // Mining hosts (h11–h20, h24, h25) carry a recognised mining protocol on some flow.
            let verdict = s(host, "verdict");
            if verdict == "confirmed_mining" || verdict == "direct_ip_pool_connection" {
                let pc = &host["pool_contacted"];
                let mining = flows.iter().any(|f| {
                    f.src == ip
                        && (f.app.stratum_method.is_some()
                            || (pc["tls"].as_bool() == Some(true)
                                && f.app.sni.as_deref() == pc["sni"].as_str()))
                });
                if !mining {
                    problems.push(format!("{run_id} {hid}: no mining flow recognised"));
                }
            }
        }
    }
    println!("lab: {n_dns} queries, {n_conn} connections ({n_mining} clear-text mining) checked");
    assert!(n_dns > 1000 && n_conn > 100);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
