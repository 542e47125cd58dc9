//! Issue #18: `poolwatch scan --db DIR --history` over the fixtures, then
//! `poolwatch hunt --db DIR NAME…` reports what the history holds (the clients a full-list scan
//! detects for the name); a name never seen gives empty rows, and alone exits 1.
//! (That a hunt creates no detection is checked over the API in `hunt_retro`: the count is
//! unchanged after `GET /api/v1/hunt`.)

mod hunt_support;

use std::path::Path;
use std::process::Command;

use hunt_support::{bin, scan_json, stages_of, write_list};
use serde_json::Value;

const POOL: &str = "moneroocean.stream";

fn hunt(db: &Path, targets: &[&str]) -> (Option<i32>, Vec<Value>) {
    let out = Command::new(bin())
        .args(["hunt", "--db", db.to_str().unwrap(), "--output", "json"])
        .args(targets)
        .output()
        .expect("run poolwatch hunt");
    let reports = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("hunt report JSON"))
        .collect();
    (out.status.code(), reports)
}

#[test]
fn hunt_cli_reports_what_the_history_holds() {
    let pcaps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
    let tmp = tempfile::tempdir().unwrap();
    let full = write_list(tmp.path(), "full.txt", &[POOL]);
    let empty = write_list(tmp.path(), "empty.txt", &["example.invalid"]);
    let mut files: Vec<String> = std::fs::read_dir(&pcaps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    let mut args = vec!["--blocklist", full.to_str().unwrap()];
    args.extend(files.iter().map(String::as_str));
    let want = stages_of(&scan_json(&args), POOL);
    assert!(!want.is_empty(), "the fixtures hold {POOL}");

    let db = tmp.path().join("db");
    let dets = scan_json(&[
        "--db",
        db.to_str().unwrap(),
        "--history",
        "--blocklist",
        empty.to_str().unwrap(),
        pcaps.to_str().unwrap(),
    ]);
    assert!(stages_of(&dets, POOL).is_empty());

    let (code, reports) = hunt(&db, &[POOL, "never-seen.example"]);
    assert_eq!(code, Some(0), "{reports:#?}");
    assert_eq!(reports.len(), 2);
    let clients: Vec<&str> = reports[0]["clients"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for (client, _) in &want {
        assert!(
            clients.contains(&client.as_str()),
            "{client} in {:#}",
            reports[0]
        );
    }
    assert!(!reports[0]["lookups"].as_array().unwrap().is_empty());
    assert!(reports[1]["lookups"].as_array().unwrap().is_empty());
    assert!(reports[1]["flows"].as_array().unwrap().is_empty());

    let (code, _) = hunt(&db, &["never-seen.example"]);
    assert_eq!(code, Some(1), "nothing found exits 1");

    let inspect = Command::new(bin())
        .args([
            "hunt",
            "--db",
            db.to_str().unwrap(),
            "--output",
            "bogus",
            POOL,
        ])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "unknown --output is refused");
}
