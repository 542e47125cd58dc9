//! Test support: turns the lab's `ground-truth.json` into the observations the input stages
//! would produce (DNS from the pcap and a query-only resolver log, the resolvers' upstream
//! queries, and flows with interim + final reports), so correlation can be checked against the
//! ground truth before the packet and log readers exist. After the merge, the same checks run
//! on the real pcaps and logs.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use poolwatch::model::*;
use serde_json::Value;

/// `$CARGO_MANIFEST_DIR/../shared/data`, or `None` (after printing the skip line) when absent.
pub fn shared_data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if p.join("lab/ground-truth.json").is_file() {
        Some(p)
    } else {
        println!("skipping: ../shared/data not present");
        None
    }
}

/// Appends every file under `dir` (recursively, each directory in name order) whose extension
/// is one of `exts`; a missing directory adds nothing.
pub fn captures_in(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| Some(e.ok()?.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            captures_in(&p, exts, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| exts.contains(&x))
        {
            out.push(p);
        }
    }
}

pub fn load_ground_truth(shared: &Path) -> Value {
    let text = std::fs::read_to_string(shared.join("lab/ground-truth.json")).expect("read gt");
    serde_json::from_str(&text).expect("parse gt")
}

/// Skew applied to the query-only log copy of each client query (a resolver log and a pcap of
/// the same traffic disagree by about this much).
pub const LOG_SKEW_US: i64 = 300_000;
/// The authoritative server of the lab.
pub const AUTHORITATIVE: &str = "127.53.0.1";

fn ts(v: &Value) -> Option<Timestamp> {
    v.as_f64().map(Timestamp::from_secs_f64)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn answers(d: &Value) -> Vec<DnsAnswer> {
    d["answers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| {
                    let rtype = RrType::parse(s(&x["type"]))?;
                    let data = if rtype == RrType::CNAME {
                        normalize_name(s(&x["data"]))
                    } else {
                        s(&x["data"]).to_string()
                    };
                    Some(DnsAnswer {
                        name: normalize_name(s(&x["name"])),
                        rtype,
                        ttl: x["ttl"].as_u64().map(|t| t as u32),
                        data,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The observations of one run, sorted by `Observation::ts()` like a k-way merge would give.
pub fn run_observations(gt: &Value, run: &Value) -> Vec<Observation> {
    let run_id = s(&run["run_id"]);
    let pcap = Source::pcap(&format!("lab/pcaps/{run_id}.pcap"));
    let log = Source::log("unbound", &format!("lab/logs/{run_id}/query.log"));
    let auth: IpAddr = AUTHORITATIVE.parse().unwrap();
    let pool_list: Vec<String> = gt["pool_domains"]
        .as_array()
        .map(|a| a.iter().map(|x| s(x).to_string()).collect())
        .unwrap_or_default();
    let is_pool = |name: &str| {
        pool_list
            .iter()
            .any(|p| name == p || name.ends_with(&format!(".{p}")))
    };
    let mut out = Vec::new();
    for h in run["hosts"].as_array().into_iter().flatten() {
        let client: IpAddr = s(&h["ip"]).parse().unwrap();
        for d in h["dns"].as_array().into_iter().flatten() {
            let t = ts(&d["ts"]).unwrap();
            let resp = ts(&d["response_ts"]);
            let resolver: IpAddr = s(&d["resolver_ip"]).parse().unwrap();
            let qname = normalize_name(s(&d["qname"]));
            let qtype = RrType::parse(s(&d["qtype"])).unwrap_or(RrType::A);
            let rcode = d["rcode"].as_str().and_then(Rcode::parse);
            let ans = answers(d);
            let transport = if s(&d["transport"]) == "tcp" {
                Transport::Tcp
            } else {
                Transport::Udp
            };
            let obs = DnsObservation {
                ts: t,
                client,
                client_port: d["src_port"].as_u64().map(|p| p as u16),
                server: Some(resolver),
                server_port: Some(53),
                transport,
                id: d["id"].as_u64().map(|i| i as u16),
                qname: qname.clone(),
                qtype,
                rcode,
                answers: ans.clone(),
                answers_known: true,
                query_seen: true,
                rtt_us: resp.map(|r| (r.0 - t.0).max(0) as u64),
                truncated: d["tc"].as_bool().unwrap_or(false),
                salvaged: None,
                source: pcap.clone(),
            };
            // The resolver's upstream query for names it had to fetch (pool-related ones are
            // what matters: a sensor near the resolver sees the resolver asking for them).
            let chain_pool = is_pool(&qname)
                || ans
                    .iter()
                    .any(|a| a.rtype == RrType::CNAME && is_pool(&a.data));
            if chain_pool {
                out.push(Observation::Dns(DnsObservation {
                    ts: Timestamp(t.0 + 150),
                    client: resolver,
                    client_port: Some(40000),
                    server: Some(auth),
                    id: Some(4242),
                    rtt_us: Some(100),
                    ..obs.clone()
                }));
            }
            // The same query as a query-only resolver log line (skewed, no answers).
            out.push(Observation::Dns(DnsObservation {
                ts: Timestamp(t.0 + LOG_SKEW_US),
                client_port: None,
                server: None,
                server_port: None,
                id: None,
                answers: Vec::new(),
                answers_known: false,
                rtt_us: None,
                source: log.clone(),
                ..obs.clone()
            }));
            out.push(Observation::Dns(obs));
        }
        for c in h["connections"].as_array().into_iter().flatten() {
            let start = ts(&c["ts_connect"]).unwrap();
            let end = ts(&c["ts_close"]).unwrap_or(start.plus_secs(1));
            let established = c["established"].as_bool().unwrap_or(false);
            let tls = c["tls"].as_bool().unwrap_or(false);
            let msgs: Vec<&str> = c["client_messages"]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            let app_kind = s(&c["app"]);
            let mining = matches!(app_kind, "xmrig" | "stratum1" | "ethproxy");
            let mut app = AppInfo {
                sni: c["sni"].as_str().map(normalize_name),
                tls,
                ..Default::default()
            };
            let payload_out: Vec<u8> = if tls {
                vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01]
            } else {
                msgs.first()
                    .map(|m| format!("{m}\n").into_bytes())
                    .unwrap_or_default()
            };
            if mining && !tls {
                if let Some(first) = msgs.first() {
                    if let Ok(j) = serde_json::from_str::<Value>(first) {
                        app.stratum_method = j["method"].as_str().map(str::to_string);
                        app.stratum_agent = j["params"]["agent"].as_str().map(str::to_string);
                    }
                }
            }
            let bytes_out: u64 = msgs.iter().map(|m| m.len() as u64 + 1).sum();
            let base = FlowObservation {
                ts: start,
                last_ts: end,
                src: client,
                src_port: c["src_port"].as_u64().unwrap_or(40000) as u16,
                dst: s(&c["dst_ip"]).parse().unwrap(),
                dst_port: c["dst_port"].as_u64().unwrap_or(0) as u16,
                proto: Proto::Tcp,
                direction: Direction::Originator,
                state: if established {
                    FlowState::Closed
                } else {
                    FlowState::Attempted
                },
                report: FlowReport::Final,
                bytes_out,
                bytes_in: 300 * c["server_lines_received"].as_u64().unwrap_or(1),
                packets_out: msgs.len() as u64 + 3,
                packets_in: c["server_lines_received"].as_u64().unwrap_or(1) + 2,
                payload_out,
                payload_in: Vec::new(),
                app,
                source: pcap.clone(),
            };
            if established {
                // An interim report first: it must be superseded, not double counted.
                out.push(Observation::Flow(FlowObservation {
                    last_ts: Timestamp(start.0 + 20_000),
                    state: FlowState::Established,
                    report: FlowReport::Interim,
                    bytes_out: bytes_out / 2,
                    bytes_in: 0,
                    ..base.clone()
                }));
            }
            out.push(Observation::Flow(base));
        }
    }
    out.sort_by_key(|o| o.ts());
    out
}

/// Writes observations as JSON lines (the `inspect --output json` shape).
pub fn write_jsonl(path: &Path, obs: &[Observation]) {
    let mut text = String::new();
    for o in obs {
        text.push_str(&serde_json::to_string(o).unwrap());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// The lab's pool list as a `Blocklists` (from `pool-domains.txt`).
pub fn lab_lists(shared: &Path) -> poolwatch::matcher::Blocklists {
    poolwatch::matcher::Blocklists::load(&[shared.join("lab/pool-domains.txt")]).unwrap()
}

/// Checks one run's detections against its ground truth; returns a list of problems.
pub fn check_verdicts(gt: &Value, run: &Value, dets: &[Detection]) -> Vec<String> {
    let mut problems = Vec::new();
    let run_id = s(&run["run_id"]);
    for inf in gt["infrastructure"].as_array().into_iter().flatten() {
        let ip: IpAddr = s(&inf["ip"]).parse().unwrap();
        if dets.iter().any(|d| d.client_ip == ip) {
            problems.push(format!("{run_id}: infrastructure {ip} reported"));
        }
    }
    for h in run["hosts"].as_array().into_iter().flatten() {
        let id = s(&h["host_id"]);
        let ip: IpAddr = s(&h["ip"]).parse().unwrap();
        let mine: Vec<&Detection> = dets.iter().filter(|d| d.client_ip == ip).collect();
        let best = mine.iter().map(|d| d.stage).max();
        let verdict = s(&h["verdict"]);
        let tls = h["pool_contacted"]["tls"].as_bool().unwrap_or(false);
        let ok = match verdict {
            "confirmed_mining" => {
                let want = if tls {
                    Stage::Connection
                } else {
                    Stage::Stratum
                };
                best == Some(want)
                    && mine
                        .iter()
                        .any(|d| d.stage == want && d.counts.lookups > 0 && d.is_new)
            }
            "pool_lookup_only" => {
                let nx = h["pool_matches"]
                    .as_array()
                    .is_some_and(|a| a.iter().all(|m| s(&m["rcode"]) == "NXDOMAIN"));
                let want = if nx {
                    Stage::BlockedLookup
                } else {
                    Stage::Lookup
                };
                !mine.is_empty() && mine.iter().all(|d| d.stage == want && d.risk_score < 84)
            }
            "direct_ip_pool_connection" => {
                let known = h["pool_ip_seen_in_other_hosts_dns_answers_before_connect"]
                    .as_bool()
                    .unwrap_or(false);
                mine.len() == 1
                    && mine.iter().all(|d| {
                        d.counts.lookups == 0
                            && d.stage >= Stage::DirectIp
                            && if known {
                                // Attributed to the pool entry another host resolved.
                                !d.pool_domain.starts_with("stratum:")
                            } else {
                                d.stage == Stage::Stratum && d.pool_domain.starts_with("stratum:")
                            }
                    })
            }
            _ => mine.is_empty(),
        };
        if !ok {
            problems.push(format!(
                "{run_id} {id} ({verdict}): got {:?}",
                mine.iter()
                    .map(|d| (
                        d.pool_domain.as_str(),
                        d.stage,
                        d.risk_score,
                        d.counts.lookups
                    ))
                    .collect::<Vec<_>>()
            ));
        }
    }
    problems
}
