//! Real resolver logs from the lab set (`../shared/data/lab/`): every client query in the ground
//! truth must come out of its resolver's log with the right client, name, type, time (and port
//! and answers where the format has them), and nothing else may come out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use poolwatch::ingest::{self, IngestConfig, LogFormat};
use poolwatch::model::{Observation, Rcode, RrType, Timestamp};
use serde_json::Value;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.is_dir() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

fn format_for(resolver: &str) -> Option<LogFormat> {
    Some(match resolver {
        "unbound" => LogFormat::Unbound,
        "bind" => LogFormat::Bind,
        "dnsmasq" => LogFormat::Dnsmasq,
        "pdns-recursor" => LogFormat::Pdns,
        _ => return None,
    })
}

#[test]
fn lab_logs_match_ground_truth() {
    let Some(data) = shared() else { return };
    let lab = data.join("lab");
    let truth: Value =
        serde_json::from_slice(&std::fs::read(lab.join("ground-truth.json")).unwrap()).unwrap();
    let mut checked = 0usize;
    for run in truth["runs"].as_array().unwrap() {
        let run_id = run["run_id"].as_str().unwrap();
        for log in run["logs"].as_array().unwrap() {
            let resolver = log["resolver"].as_str().unwrap();
            let path = log["path"].as_str().unwrap();
            let file = lab.join(path);
            if path.ends_with(".fstrm") {
                let head = std::fs::read(&file).unwrap();
                assert_eq!(
                    ingest::detect_format(&head),
                    Some(LogFormat::Dnstap),
                    "{path}"
                );
                continue;
            }
            if path.ends_with("kresd.log") {
                // Knot Resolver's daemon log: recognised, and no query comes out of it.
                let head = std::fs::read(&file).unwrap();
                assert_eq!(
                    ingest::detect_format(&head),
                    Some(LogFormat::Knot),
                    "{path}"
                );
                assert!(ingest::read_all(&file, None, &IngestConfig::default())
                    .unwrap()
                    .is_empty());
                continue;
            }
            let Some(format) = format_for(resolver) else {
                continue;
            };
            let head = std::fs::read(&file).unwrap();
            assert_eq!(
                ingest::detect_format(&head[..head.len().min(ingest::DETECT_LEN)]),
                Some(format),
                "{run_id} {path}: detection"
            );
            let cfg = IngestConfig::default();
            let obs = ingest::read_all(&file, None, &cfg).unwrap();
            // (client, qname, qtype) → observations, in order.
            let mut by_key: HashMap<
                (IpAddr, String, RrType),
                Vec<&poolwatch::model::DnsObservation>,
            > = HashMap::new();
            for o in &obs {
                let Observation::Dns(d) = o else {
                    panic!("{run_id} {path}: a flow from a resolver log")
                };
                by_key
                    .entry((d.client, d.qname.clone(), d.qtype))
                    .or_default()
                    .push(d);
            }
            let mut expected = 0usize;
            for host in run["hosts"].as_array().unwrap() {
                if host["resolver"]["name"].as_str() != Some(resolver) {
                    continue;
                }
                let ip: IpAddr = host["ip"].as_str().unwrap().parse().unwrap();
                for q in host["dns"].as_array().unwrap() {
                    expected += 1;
                    let qname = poolwatch::model::normalize_name(q["qname"].as_str().unwrap());
                    let qtype = RrType::parse(q["qtype"].as_str().unwrap()).unwrap();
                    let ts = Timestamp::from_secs_f64(q["ts"].as_f64().unwrap());
                    let list = by_key
                        .get_mut(&(ip, qname.clone(), qtype))
                        .unwrap_or_else(|| panic!("{run_id} {path}: {ip} {qname} {qtype} missing"));
                    // The first one in file order within 1.5 s (second-resolution logs truncate).
                    let port = q["src_port"].as_u64();
                    let near =
                        |d: &&poolwatch::model::DnsObservation| (d.ts.0 - ts.0).abs() <= 1_500_000;
                    let (i, d) = list
                        .iter()
                        .enumerate()
                        .find(|(_, d)| near(d) && d.client_port.map(u64::from) == port)
                        .or_else(|| list.iter().enumerate().find(|(_, d)| near(d)))
                        .unwrap_or_else(|| {
                            panic!("{run_id} {path}: {ip} {qname} {qtype} seen too few times")
                        });
                    assert!(
                        (d.ts.0 - ts.0).abs() <= 1_500_000,
                        "{run_id} {path}: {ip} {qname}: ts {} vs truth {}",
                        d.ts,
                        ts
                    );
                    if let (Some(port), Some(p)) = (q["src_port"].as_u64(), d.client_port) {
                        assert_eq!(u64::from(p), port, "{run_id} {path}: {qname} port");
                    }
                    if format != LogFormat::Bind && format != LogFormat::Pdns {
                        // Formats that log the response: the rcode must agree.
                        if let (Some(r), Some(rc)) = (q["rcode"].as_str(), d.rcode) {
                            assert_eq!(Some(rc), Rcode::parse(r), "{run_id} {path}: {qname} rcode");
                        }
                    }
                    if format == LogFormat::Dnsmasq && q["rcode"] == "NOERROR" && q["tc"] != true {
                        assert!(d.answers_known);
                        let mut want: Vec<String> = q["answers"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|a| a["type"] == "A" || a["type"] == "AAAA")
                            .map(|a| {
                                a["data"]
                                    .as_str()
                                    .unwrap()
                                    .parse::<IpAddr>()
                                    .unwrap()
                                    .to_string()
                            })
                            .collect();
                        let mut got: Vec<String> = d.answer_ips().map(|i| i.to_string()).collect();
                        want.sort();
                        got.sort();
                        assert_eq!(got, want, "{run_id} {path}: {qname} answers");
                        let want_cnames: Vec<String> = q["answers"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|a| a["type"] == "CNAME")
                            .map(|a| poolwatch::model::normalize_name(a["data"].as_str().unwrap()))
                            .collect();
                        let got_cnames: Vec<String> =
                            d.cname_targets().map(str::to_string).collect();
                        assert_eq!(got_cnames, want_cnames, "{run_id} {path}: {qname} CNAMEs");
                    }
                    list.remove(i);
                    checked += 1;
                }
            }
            let left: Vec<_> = by_key.values().flatten().collect();
            assert!(
                left.is_empty(),
                "{run_id} {path}: {} observations not in the ground truth, e.g. {:?}",
                left.len(),
                left.first()
            );
            assert!(expected > 0, "{run_id} {path}: no host used {resolver}");
        }
    }
    assert!(checked > 1000, "only {checked} queries checked");
}
