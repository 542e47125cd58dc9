//! `poolwatch blocklist match|lint|stats|export` as a user runs them.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
    // Run from elsewhere: the shipped lists are embedded, not read from the working directory.
    c.current_dir(std::env::temp_dir());
    c
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/blocklists")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn match_json_objects_have_the_contract_fields() {
    let o = run(&[
        "blocklist",
        "match",
        "--output",
        "json",
        "XMR-EU1.nanopool.org.",
        "my2miners.com",
    ]);
    assert!(o.status.success());
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["name"], "XMR-EU1.nanopool.org.");
    assert_eq!(lines[0]["matched"], true);
    assert_eq!(lines[0]["entry"], "nanopool.org");
    assert_eq!(lines[0]["list"], "pools-monero");
    assert_eq!(lines[0]["category"], "pool");
    assert!(lines[0]["line"].as_u64().unwrap() > 0);
    assert_eq!(lines[1]["matched"], false);
    for k in ["entry", "list", "category"] {
        assert!(lines[1][k].is_null(), "{k}");
    }
}

#[test]
fn match_streams_stdin_and_sets_exit_status() {
    let mut child = bin()
        .args(["blocklist", "match", "-b"])
        .arg(fixture("plain.txt"))
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for i in 0..20_000 {
        input.push_str(&format!("host{i}.benign.example\r\n"));
    }
    input.push_str("pool.supportxmr.com\n\n# comment\n");
    // Feed stdin from a thread: the child's stdout pipe must be drained at the same time.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success());
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 20_001);
    assert!(out.contains("pool.supportxmr.com\tMATCH\tplain:2\tsupportxmr.com\tpool"));
    let o = run(&["blocklist", "match", "benign.example"]);
    assert_eq!(o.status.code(), Some(1), "no match → exit 1");
}

#[test]
fn lint_reports_file_and_line_and_fails_on_errors() {
    let f = fixture("invalid.txt");
    let o = bin().args(["blocklist", "lint"]).arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for line in 2..=8 {
        assert!(
            out.contains(&format!("{}:{line}: error:", f.display())),
            "line {line} in:\n{out}"
        );
    }
    assert!(!out.contains(":9: error"), "ok.example is fine:\n{out}");
    let o = bin()
        .args(["blocklist", "lint"])
        .arg(fixture("hosts.txt"))
        .arg(fixture("dnsmasq.txt"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stdout(&o));
    let o = bin()
        .args(["blocklist", "lint", "--strict"])
        .arg(fixture("adblock.txt"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "skipped rules are warnings, errors under --strict"
    );
    let o = bin()
        .args(["blocklist", "lint", "--format", "hosts"])
        .arg(fixture("hosts.txt"))
        .output()
        .unwrap();
    assert!(o.status.success());
}

#[test]
fn stats_text_and_json() {
    let o = run(&["blocklist", "stats"]);
    assert!(o.status.success());
    let out = stdout(&o);
    assert!(
        out.contains("pools-monero") && out.contains("allowlist") && out.contains("browser_miner")
    );
    let o = run(&["blocklist", "stats", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["entries"].as_u64().unwrap() > 200);
    assert_eq!(v["engine"], "hash-walk");
    assert!(v["lists"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["license"].is_string()));
}

#[test]
fn export_every_format_to_stdout_and_file() {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "rpz",
        "hosts",
        "dnsmasq",
        "unbound",
        "adblock",
        "nftables",
        "suricata-dataset",
    ] {
        let o = run(&["blocklist", "export", "--format", f]);
        assert!(o.status.success(), "{f}");
        assert!(!o.stdout.is_empty(), "{f}");
        let path = dir.path().join(format!("out.{f}"));
        let o = bin()
            .args(["blocklist", "export", "--format", f, "-o"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{f}");
        assert!(std::fs::metadata(&path).unwrap().len() > 0);
    }
}

#[test]
fn bad_input_gives_a_message_not_a_panic() {
    for args in [
        vec!["blocklist", "export", "--format", "pdf"],
        vec![
            "blocklist",
            "match",
            "-b",
            "/nonexistent/list.txt",
            "x.example",
        ],
        vec!["blocklist", "stats", "-b", "/nonexistent"],
        vec!["blocklist", "lint", "/nonexistent"],
        vec!["blocklist", "lint", "--format", "pdf", "/etc/hostname"],
    ] {
        let o = run(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains("error"), "{args:?}: {err}");
    }
    let o = run(&["blocklist", "export", "--format", "pdf"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("rpz, hosts"));
}

#[test]
fn public_lists_lint_match_stats_export() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/blocklists");
    if !root.is_dir() {
        println!("skipping: ../shared/data not present");
        return;
    }
    let mut files = Vec::new();
    for d in std::fs::read_dir(&root).unwrap().filter_map(Result::ok) {
        for f in std::fs::read_dir(d.path()).unwrap().filter_map(Result::ok) {
            files.push(f.path());
        }
    }
    files.sort();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_lowercase();
        let o = bin()
            .args(["blocklist", "lint", "-q"])
            .arg(f)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked"), "{}: {err}", f.display());
        if name.starts_with("license") || name.ends_with(".md") {
            continue;
        }
        // Every real list loads and answers.
        let o = bin()
            .args(["blocklist", "match", "-b"])
            .arg(f)
            .args(["supportxmr.com"])
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
        let o = bin()
            .args(["blocklist", "stats", "-b"])
            .arg(f)
            .output()
            .unwrap();
        assert!(!String::from_utf8_lossy(&o.stderr).contains("panicked"));
    }
    let nocoin = root.join("hoshsadiq-adblock-nocoin-list/nocoin.txt");
    if nocoin.is_file() {
        let o = bin()
            .args(["blocklist", "match", "--output", "json", "-b"])
            .arg(&nocoin)
            .arg("xmr.2miners.com")
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["matched"], true);
        assert_eq!(v["list"], "nocoin");
        assert_eq!(v["line"], 14);
        let o = bin()
            .args(["blocklist", "export", "--format", "rpz", "-b"])
            .arg(&nocoin)
            .output()
            .unwrap();
        assert!(o.status.success());
    }
}

/// Issue #11: `lint` names a too-wide CIDR block (`0.0.0.0/0`, `::/0`, wider than the
/// documented minimum) with file and line, and fails.
#[test]
fn lint_flags_wide_cidr_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("wide.txt");
    std::fs::write(
        &f,
        "pool.example\n0.0.0.0/0\n::/0\n198.51.100.0/24\n64.0.0.0/2\n",
    )
    .unwrap();
    let o = bin().args(["blocklist", "lint"]).arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for line in [2, 3, 5] {
        let tag = format!("{}:{line}: error: CIDR block", f.display());
        assert!(out.contains(&tag), "line {line} in:\n{out}");
    }
    assert!(!out.contains(":4: error"), "a /24 is fine:\n{out}");
    assert!(out.contains("2 entries, 3 errors"), "{out}");
}
