//! The lab's real pcaps and real resolver logs through `poolwatch scan`: every host's verdict
//! must match `ground-truth.json`. Skips (with a line saying why) when ../shared/data is absent.
//!
//! Three ways of running each lab run:
//! - the pcap alone: full verdict rules (`support::check_verdicts`);
//! - each resolver log / dnstap file alone: there are no flows, so a mining host can only be a
//!   *lookup*. The verdict rules then apply to lookups: hosts that used that resolver and looked
//!   up a pool (confirmed_mining, pool_lookup_only) get lookup / blocked_lookup detections and
//!   nothing stronger; everybody else (benign, direct-IP, hosts of other resolvers,
//!   infrastructure) gets nothing. Exception, written down: a pool reached only through a CNAME
//!   (h16 `api.cloud-sync-check.net` → `gulf.moneroocean.stream`) is invisible in formats that
//!   log no answers (unbound `log-replies`, BIND querylog, PowerDNS `quiet=no`): nothing is
//!   expected there, and a detection would be a false positive of the name alone;
//! - the pcap together with each log: the same verdicts as the pcap alone (logs add sources,
//!   never change a verdict), and the log is listed among the detection's sources.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::model::{Detection, Stage};
use serde_json::Value;

fn scan(shared: &Path, inputs: &[PathBuf]) -> Vec<Detection> {
    let out = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["scan", "--output", "json", "--no-progress", "--blocklist"])
        .arg(shared.join("lab/pool-domains.txt"))
        .args(inputs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{inputs:?}: exit {:?}: {err}",
        out.status.code()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lab's log files of one run that carry per-query lines (kresd's stdout log has none).
fn run_logs(shared: &Path, run: &Value) -> Vec<(String, PathBuf)> {
    run["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| !l["path"].as_str().unwrap_or("").ends_with("kresd.log"))
        .map(|l| {
            (
                l["resolver"].as_str().unwrap_or("").to_string(),
                shared.join("lab").join(l["path"].as_str().unwrap_or("")),
            )
        })
        .collect()
}

/// Formats whose lines carry no answer records (a CNAME into a pool cannot be seen).
fn logs_answers(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !matches!(name, "unbound.log" | "query.log" | "recursor.log")
}

fn check_log_only(
    gt: &Value,
    run: &Value,
    resolver: &str,
    log: &Path,
    dets: &[Detection],
) -> Vec<String> {
    let mut problems = Vec::new();
    let tag = format!("{} {}", run["run_id"].as_str().unwrap_or(""), log.display());
    for inf in gt["infrastructure"].as_array().into_iter().flatten() {
        let ip = inf["ip"].as_str().unwrap_or("");
        if dets.iter().any(|d| d.client_ip.to_string() == ip) {
            problems.push(format!("{tag}: infrastructure {ip} reported"));
        }
    }
    for h in run["hosts"].as_array().into_iter().flatten() {
        let ip = h["ip"].as_str().unwrap_or("");
        let id = h["host_id"].as_str().unwrap_or("");
        let verdict = h["verdict"].as_str().unwrap_or("");
        let mine: Vec<&Detection> = dets
            .iter()
            .filter(|d| d.client_ip.to_string() == ip)
            .collect();
        let used_this = h["resolver"]["name"].as_str() == Some(resolver);
        let via_cname_only = h["pool_matches"]
            .as_array()
            .is_some_and(|a| !a.is_empty() && a.iter().all(|m| m["via_cname"] == true));
        let looked_up = matches!(verdict, "confirmed_mining" | "pool_lookup_only");
        let ok = if used_this && looked_up && via_cname_only && !logs_answers(log) {
            mine.is_empty()
        } else if used_this && looked_up {
            !mine.is_empty()
                && mine
                    .iter()
                    .all(|d| matches!(d.stage, Stage::Lookup | Stage::BlockedLookup))
                && mine
                    .iter()
                    .all(|d| d.pool_ips.is_empty() || logs_answers(log))
        } else {
            mine.is_empty()
        };
        if !ok {
            problems.push(format!(
                "{tag} {id} ({verdict}, resolver {:?}): got {:?}",
                h["resolver"]["name"].as_str(),
                mine.iter()
                    .map(|d| (d.pool_domain.as_str(), d.stage))
                    .collect::<Vec<_>>()
            ));
        }
    }
    problems
}

#[test]
fn lab_pcaps_match_ground_truth() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    for run in gt["runs"].as_array().unwrap() {
        let pcap = shared.join("lab").join(run["pcap"].as_str().unwrap());
        let dets = scan(&shared, std::slice::from_ref(&pcap));
        let problems = support::check_verdicts(&gt, run, &dets);
        assert!(problems.is_empty(), "{}: {problems:#?}", pcap.display());
        // h24 (direct IP to an address another host resolved) stays `stratum` (Stratum on any
        // flow wins), but its direct-IP nature must be visible: no own lookup, no query
        // name, and the evidence says whose binding the address came from.
        for h in run["hosts"].as_array().into_iter().flatten() {
            if h["verdict"] != "direct_ip_pool_connection" {
                continue;
            }
            let ip = h["ip"].as_str().unwrap();
            let d = dets.iter().find(|d| d.client_ip.to_string() == ip).unwrap();
            assert_eq!(d.counts.lookups, 0, "{ip}");
            assert!(d.query_names.is_empty(), "{ip}: {:?}", d.query_names);
            if h["pool_ip_seen_in_other_hosts_dns_answers_before_connect"] == true {
                assert!(
                    d.evidence
                        .iter()
                        .any(|e| e.summary.contains("bound by another client")),
                    "{ip}: {:?}",
                    d.evidence
                );
            }
        }
    }
}

#[test]
fn lab_logs_alone_give_lookups() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    let mut checked = 0;
    for run in gt["runs"].as_array().unwrap() {
        for (resolver, log) in run_logs(&shared, run) {
            let dets = scan(&shared, std::slice::from_ref(&log));
            let problems = check_log_only(&gt, run, &resolver, &log, &dets);
            assert!(problems.is_empty(), "{problems:#?}");
            checked += 1;
        }
    }
    // Solo runs: their resolver's files (unbound and bind: log + dnstap; dnsmasq, knot's
    // dnstap, pdns: one each) = 7; the mixed run: all 7 again.
    assert!(checked >= 14, "only {checked} logs checked");
}

#[test]
fn lab_pcap_with_each_log_matches_ground_truth() {
    let Some(shared) = support::shared_data() else {
        return;
    };
    let gt = support::load_ground_truth(&shared);
    for run in gt["runs"].as_array().unwrap() {
        let pcap = shared.join("lab").join(run["pcap"].as_str().unwrap());
        let logs = run_logs(&shared, run);
        for (resolver, log) in &logs {
            let dets = scan(&shared, &[pcap.clone(), log.clone()]);
            let problems = support::check_verdicts(&gt, run, &dets);
            assert!(
                problems.is_empty(),
                "{} + {}: {problems:#?}",
                pcap.display(),
                log.display()
            );
            // The log's own view is merged in: some detection of a host of this resolver lists
            // the log among its sources.
            let log_src = dets.iter().any(|d| {
                d.sources.iter().any(|s| {
                    s.to_string()
                        .contains(log.file_name().and_then(|n| n.to_str()).unwrap_or("?"))
                })
            });
            let has_pool_host = run["hosts"].as_array().into_iter().flatten().any(|h| {
                h["resolver"]["name"].as_str() == Some(resolver.as_str())
                    && matches!(
                        h["verdict"].as_str(),
                        Some("confirmed_mining" | "pool_lookup_only")
                    )
            });
            assert!(
                !has_pool_host || log_src,
                "{}: no detection lists {}",
                pcap.display(),
                log.display()
            );
        }
        // Everything at once: the pcap and every log of the run.
        let mut all = vec![pcap.clone()];
        all.extend(logs.into_iter().map(|(_, p)| p));
        let dets = scan(&shared, &all);
        let problems = support::check_verdicts(&gt, run, &dets);
        assert!(
            problems.is_empty(),
            "{} + all logs: {problems:#?}",
            pcap.display()
        );
    }
}
