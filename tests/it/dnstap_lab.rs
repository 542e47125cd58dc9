//! dnstap files written by real resolvers (Unbound, BIND, Knot Resolver) against the lab's
//! ground truth: every client query to that resolver must appear with the right client, port,
//! id, qname, qtype, rcode and answers.

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;

use poolwatch::ingest::{dnstap, IngestConfig};
use poolwatch::model::{DnsObservation, Observation};
use serde_json::Value;

fn lab() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/lab");
    if p.join("ground-truth.json").exists() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

fn read(path: &std::path::Path) -> Vec<DnsObservation> {
    dnstap::open_file(path, &IngestConfig::default())
        .expect("open dnstap")
        .filter_map(|o| match o {
            Observation::Dns(d) => Some(d),
            Observation::Flow(_) => None,
        })
        .collect()
}

#[test]
fn lab_dnstap_matches_ground_truth() {
    let Some(lab) = lab() else { return };
    let gt: Value =
        serde_json::from_slice(&std::fs::read(lab.join("ground-truth.json")).unwrap()).unwrap();
    let resolvers = [
        ("unbound", "127.53.1.1"),
        ("bind", "127.53.1.2"),
        ("knot-resolver", "127.53.1.4"),
    ];
    let mut checked = 0usize;
    for run in gt["runs"].as_array().unwrap() {
        let run_id = run["run_id"].as_str().unwrap();
        for (name, rip) in resolvers {
            if run_id != "mixed" && run_id != format!("solo-{name}") {
                continue;
            }
            let file = lab.join(format!("logs/{name}/{run_id}/dnstap.fstrm"));
            if !file.exists() {
                continue;
            }
            let obs = read(&file);
            // Resolver upstream traffic is never reported as a client.
            assert!(obs
                .iter()
                .all(|o| !o.client.to_string().starts_with("127.53.")));
            for host in run["hosts"].as_array().unwrap() {
                let client: IpAddr = host["ip"].as_str().unwrap().parse().unwrap();
                for q in host["dns"].as_array().unwrap() {
                    if q["resolver_ip"].as_str() != Some(rip) {
                        continue;
                    }
                    let qname = q["qname"]
                        .as_str()
                        .unwrap()
                        .trim_end_matches('.')
                        .to_ascii_lowercase();
                    let qtype = q["qtype"].as_str().unwrap();
                    let port = q["src_port"].as_u64().map(|p| p as u16);
                    let id = q["id"].as_u64().map(|p| p as u16);
                    let found = obs.iter().find(|o| {
                        o.client == client
                            && o.qname == qname
                            && o.qtype.to_string() == qtype
                            && (port.is_none() || o.client_port == port)
                            && o.id == id
                    });
                    let o = found.unwrap_or_else(|| {
                        panic!("{name}/{run_id}: {client} {qname} {qtype} id {id:?} missing")
                    });
                    assert!(o.query_seen, "{name}/{run_id}: {qname} query not paired");
                    assert_eq!(
                        o.rcode.map(|r| r.to_string()).as_deref(),
                        q["rcode"].as_str(),
                        "{name}/{run_id}: {qname} rcode"
                    );
                    assert_eq!(o.server, Some(rip.parse().unwrap()));
                    let want: HashSet<(String, String)> = q["answers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|a| matches!(a["type"].as_str(), Some("A" | "AAAA" | "CNAME")))
                        .map(|a| {
                            let t = a["type"].as_str().unwrap().to_string();
                            let d = a["data"].as_str().unwrap();
                            let d = if t == "CNAME" {
                                d.trim_end_matches('.').to_ascii_lowercase()
                            } else {
                                d.to_string()
                            };
                            (t, d)
                        })
                        .collect();
                    let got: HashSet<(String, String)> = o
                        .answers
                        .iter()
                        .filter(|a| matches!(a.rtype.0, 1 | 28 | 5))
                        .map(|a| (a.rtype.to_string(), a.data.clone()))
                        .collect();
                    // Other types' presentation is the dns module's business; count them.
                    assert_eq!(got, want, "{name}/{run_id}: {qname} {qtype} answers");
                    assert_eq!(
                        o.answers.len(),
                        q["answers"].as_array().unwrap().len(),
                        "{name}/{run_id}: {qname} {qtype} answer count"
                    );
                    assert_eq!(
                        o.transport.eq(&poolwatch::model::Transport::Tcp),
                        q["transport"] == "tcp",
                        "{name}/{run_id}: {qname} transport"
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("checked {checked} ground-truth queries");
    assert!(checked > 900, "only {checked} queries checked");
}
