//! `poolwatch hunt --db DIR NAME…` and `GET /api/v1/hunt` input checks, over a history built
//! by `scan --history` from the fixtures (a directory input).

use crate::support::hunt as hunt_support;

use std::process::Command;

use hunt_support::{bin, client, serve, write_list, READ};
use serde_json::Value;

#[test]
fn hunt_cli_and_api_read_the_history() {
    let tmp = tempfile::tempdir().unwrap();
    let list = write_list(tmp.path(), "l.txt", &["supportxmr.com"]);
    let db = tmp.path().join("db");
    let pcaps = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pcap");
    let st = Command::new(bin())
        .args(["scan", "--no-progress", "--history", "--db"])
        .arg(&db)
        .arg("--blocklist")
        .arg(&list)
        .arg(pcaps)
        .output()
        .unwrap();
    assert!(
        matches!(st.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let hunt = |args: &[&str]| {
        Command::new(bin())
            .arg("hunt")
            .arg("--db")
            .arg(&db)
            .args(args)
            .output()
            .unwrap()
    };
    let out = hunt(&["--output", "json", "moneroocean.stream", "203.0.113.0/24"]);
    assert_eq!(out.status.code(), Some(0));
    let reps: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reps.len(), 2);
    assert_eq!(reps[0]["kind"], "domain");
    assert!(reps[0]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "192.0.2.10"));
    assert_eq!(reps[1]["kind"], "address");
    assert!(!reps[1]["flows"].as_array().unwrap().is_empty());
    // Nothing there: exit 1; not a name: exit 2 with a message.
    assert_eq!(hunt(&["never-seen.example"]).status.code(), Some(1));
    let bad = hunt(&["bad name!"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a domain"));

    let s = serve(&db, &list);
    let c = client();
    let get = |q: &str| {
        c.get(s.url(&format!("/api/v1/hunt{q}")))
            .bearer_auth(READ)
            .send()
            .unwrap()
    };
    let r = get("?name=moneroocean.stream&since=2026-11-01T00:00:00Z");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert!(!v["lookups"].as_array().unwrap().is_empty(), "{v}");
    for q in [
        "",
        "?name=",
        "?name=a%20b",
        "?name=x.example&limit=0",
        "?name=x.example&since=soon",
        "?name=x.example&extra=1",
    ] {
        let r = get(q);
        assert_eq!(r.status(), 400, "{q}");
        let e: Value = r.json().unwrap();
        assert!(e["error"]["code"].is_string(), "{q}: {e}");
    }
    let r = c.get(s.url("/api/v1/hunt?name=x.example")).send().unwrap();
    assert_eq!(r.status(), 401);
}
