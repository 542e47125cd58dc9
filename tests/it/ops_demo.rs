//! `poolwatch demo` as a place to try everything: every line it suggests is run verbatim by a
//! real shell with real curl (and jq) against the running demo and must print something; the
//! printed admin token enables writes; `export/pool-ips?at=latest` (the capture's clock) is the
//! set of addresses bound in `GET /hosts/{ip}`, and its nftables form loads (`nft -c`);
//! `GET /check` on an allowlisted name answers `category: "allow"` with the entry.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::service as service_support;

use service_support::*;

fn have(tool: &str) -> bool {
    let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin", "/usr/local/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file());
    if !found {
        println!("skipping the parts that need {tool}: not installed");
    }
    found
}

/// The suggested lines: the indented block after `Try:` up to the first blank line.
fn suggested_lines(log: &str) -> Vec<String> {
    log.lines()
        .skip_while(|l| l.trim() != "Try:")
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect()
}

/// Runs `line` in bash (pipefail) after the assignments printed before it; stdout. With
/// pipefail a line like `curl … | grep -m1 x` fails whenever grep exits before curl has written
/// everything (timing-dependent): the demo prints no such line.
fn run_line(assignments: &[String], line: &str, timeout: Option<Duration>) -> (bool, String) {
    let script = format!("set -o pipefail\n{}\n{line}\n", assignments.join("\n"));
    let mut cmd = match timeout {
        Some(t) => {
            let mut c = Command::new("timeout");
            c.arg(format!("{}", t.as_secs())).arg("bash");
            c
        }
        None => Command::new("bash"),
    };
    let o = cmd.arg("-c").arg(&script).output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

#[test]
fn every_suggested_demo_line_returns_something() {
    if !(have("curl") && have("jq") && have("timeout")) {
        return;
    }
    let mut s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    let log = s.stderr();
    let lines = suggested_lines(&log);
    assert!(lines.len() >= 10, "suggested lines: {lines:?}\n{log}");
    let token_line = lines
        .iter()
        .find(|l| l.starts_with("TOKEN="))
        .unwrap_or_else(|| panic!("no admin token printed:\n{log}"));
    let token = token_line.trim_start_matches("TOKEN=").to_string();
    assert!(token.len() >= 32, "{token}");
    assert!(
        log.contains(&format!("Admin token for this run: {token}")),
        "{log}"
    );

    let mut assignments = Vec::new();
    for line in &lines {
        if line.starts_with("TOKEN=") {
            assignments.push(line.clone());
            continue;
        }
        assert!(
            line.starts_with("curl ") || line.starts_with("ID="),
            "{line}"
        );
        assert!(line.contains(&s.base), "{line} does not name {}", s.base);
        if line.contains("/detections/stream") {
            // A stream never ends: read it for a few seconds.
            let (_, out) = run_line(&assignments, line, Some(Duration::from_secs(4)));
            assert!(out.contains("event: new"), "{line}: {out}");
            assert!(
                out.contains("\nid: ") || out.starts_with("id: "),
                "{line}: {out}"
            );
            continue;
        }
        let (ok, out) = run_line(&assignments, line, None);
        assert!(ok, "`{line}` failed: {out}\n{}", s.stderr());
        assert!(!out.trim().is_empty(), "`{line}` printed nothing");
        // JSON answers are never errors (a 4xx body has `error`).
        if let Ok(v) = serde_json::from_str::<Value>(&out) {
            assert!(v.get("error").is_none(), "`{line}`: {out}");
        }
        if line.contains("/suppressions") {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["pool"], "minexmr.com", "the write was accepted: {out}");
        }
    }

    // The printed token is the admin token; another is refused.
    let r = c
        .post(s.url("/api/v1/blocklists/reload"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = c
        .post(s.url("/api/v1/blocklists/reload"))
        .bearer_auth("not-the-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    s.signal(libc::SIGINT);
    assert_eq!(s.wait_exit(), Some(0), "stderr:\n{}", s.stderr());
}

#[test]
fn pool_ips_at_the_capture_clock_match_the_hosts_bindings_and_load_in_nft() {
    let s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, None, "the sample verdicts", |d| {
        served_stages(d) == want
    });
    let get = |path: &str| -> reqwest::blocking::Response {
        let r = c.get(s.url(path)).send().unwrap();
        assert_eq!(r.status().as_u16(), 200, "{path}");
        r
    };
    let v: Value = get("/api/v1/export/pool-ips?at=latest&format=json")
        .json()
        .unwrap();
    let at = v["at"].as_str().unwrap().to_string();
    let exported: BTreeSet<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["ip"].as_str().unwrap().to_string())
        .collect();
    assert!(
        exported.contains("203.0.113.10"),
        "supportxmr's address is bound at the capture's clock: {v}"
    );
    // The same set, from the hosts' bindings that have not expired at that instant.
    let mut bound = BTreeSet::new();
    let clients: BTreeSet<&str> = dets
        .iter()
        .map(|d| d["client_ip"].as_str().unwrap())
        .collect();
    for client in clients {
        let h: Value = get(&format!("/api/v1/hosts/{client}")).json().unwrap();
        for b in h["bindings"].as_array().unwrap() {
            // RFC 3339 with fixed microseconds: string order is time order.
            if b["expires"].as_str().unwrap() > at.as_str() {
                bound.insert(b["ip"].as_str().unwrap().to_string());
            }
        }
    }
    assert_eq!(exported, bound, "pool-ips at {at} vs the hosts' bindings");
    // Text form: the same addresses, one a line.
    let text = get("/api/v1/export/pool-ips?at=latest").text().unwrap();
    let lines: BTreeSet<String> = text.lines().map(str::to_string).collect();
    assert_eq!(lines, exported);
    // The wall clock is days past the sample (TTL 300 s): nothing is bound now.
    let now = get("/api/v1/export/pool-ips").text().unwrap();
    assert_eq!(now, "", "the sample's bindings expired long ago");
    let r = c
        .get(s.url("/api/v1/export/pool-ips?at=yesterday"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // nftables: the set loads (nft -c parses and checks it without touching the ruleset).
    let nft = get("/api/v1/export/pool-ips?at=latest&format=nft")
        .text()
        .unwrap();
    assert!(nft.contains("203.0.113.10 timeout "), "{nft}");
    if have("nft") {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bound.nft");
        std::fs::write(&f, &nft).unwrap();
        let o = Command::new("nft")
            .arg("-c")
            .arg("-f")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "nft -c: {}\n{nft}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let ipset = get("/api/v1/export/pool-ips?at=latest&format=ipset")
        .text()
        .unwrap();
    for ip in &exported {
        let set = if ip.contains(':') { "v6" } else { "v4" };
        assert!(
            ipset.contains(&format!("add poolwatch_bound_{set} {ip} timeout ")),
            "{ipset}"
        );
    }
    // ipset has no dry run: restore into a fresh network namespace (its own sets), then list.
    if have("ipset") && have("unshare") {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bound.ipset");
        std::fs::write(&f, &ipset).unwrap();
        let script = format!(
            "ipset restore -exist -f {} && ipset list poolwatch_bound_v4 && ipset list poolwatch_bound_v6",
            f.display()
        );
        let o = Command::new("unshare")
            .args(["-n", "sh", "-c", &script])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        if !o.status.success() && err.contains("unshare") {
            println!("skipping the ipset load: no network namespaces here ({err})");
        } else {
            assert!(o.status.success(), "ipset restore: {err}\n{ipset}");
            let listed = String::from_utf8_lossy(&o.stdout);
            for ip in exported.iter().filter(|ip| !ip.contains(':')) {
                assert!(listed.contains(&format!("{ip} timeout ")), "{listed}");
            }
        }
    }
}

#[test]
fn check_on_an_allowlisted_name_answers_allow_with_the_entry() {
    let s = Svc::start(&["demo", "--listen", "127.0.0.1:0"], None);
    let c = client();
    wait_ready(&c, &s);
    for (name, entry) in [
        ("binance.com", "binance.com"),
        ("www.binance.com", "binance.com"),
    ] {
        let v: Value = c
            .get(s.url(&format!("/api/v1/check?name={name}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(v["name"], name);
        assert_eq!(v["matched"], false, "{v}");
        assert_eq!(v["category"], "allow", "{v}");
        assert_eq!(v["entry"], entry, "{v}");
        assert_eq!(v["list"], "allowlist", "{v}");
        assert_eq!(v.as_object().unwrap().len(), 5, "exactly five keys: {v}");
    }
    // A listed name still matches; an unlisted one has no entry.
    let v: Value = c
        .get(s.url("/api/v1/check?name=pool.supportxmr.com"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["matched"], true);
    assert_eq!(v["category"], "pool");
    let v: Value = c
        .get(s.url("/api/v1/check?name=notsupportxmr.com"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["matched"], false);
    assert!(v["category"].is_null() && v["entry"].is_null(), "{v}");
}

#[test]
fn blocklist_match_explains_an_allowlisted_name_like_check() {
    let o = Command::new(bin())
        .args(["blocklist", "match", "--output", "json", "www.binance.com"])
        .output()
        .unwrap();
    // Not listed (like grep: 1), but the answer names the allow entry.
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["matched"], false, "{v}");
    assert_eq!(v["category"], "allow", "{v}");
    assert_eq!(v["entry"], "binance.com", "{v}");
    assert_eq!(v["list"], "allowlist", "{v}");
    let o = Command::new(bin())
        .args([
            "blocklist",
            "match",
            "www.binance.com",
            "pool.supportxmr.com",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("www.binance.com\tALLOW\tallowlist:"),
        "{text}"
    );
    assert!(text.contains("pool.supportxmr.com\tMATCH\t"), "{text}");
    let o = Command::new(bin())
        .args(["blocklist", "match", "--only-matches", "www.binance.com"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
}
