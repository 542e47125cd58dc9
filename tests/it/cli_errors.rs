//! The CLI's argument errors: a bad path or an unknown format gives a clear message and a
//! non-zero exit, never a panic.

use std::process::{Command, Output};

fn poolwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(args)
        .output()
        .expect("run poolwatch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(
        !o.status.success(),
        "expected failure, got success; stderr: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "stderr should mention {needle:?}: {err}"
    );
}

#[test]
fn help_describes_every_subcommand() {
    let o = poolwatch(&["--help"]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for sub in ["scan", "inspect", "blocklist", "serve", "demo"] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
        let o = poolwatch(&[sub, "--help"]);
        assert!(o.status.success(), "{sub} --help failed: {}", stderr(&o));
    }
}

#[test]
fn missing_input_file() {
    let o = poolwatch(&["inspect", "/nonexistent/capture.pcap"]);
    assert_clean_failure(&o, "/nonexistent/capture.pcap");
}

#[test]
fn unknown_format() {
    let o = poolwatch(&["inspect", "--format", "wireshark-xml", "Cargo.toml"]);
    assert_clean_failure(&o, "unknown format");
    // The message lists what is accepted.
    assert!(stderr(&o).contains("pcap"), "{}", stderr(&o));
}

#[test]
fn unknown_subcommand_and_flag() {
    let o = poolwatch(&["mine"]);
    assert_clean_failure(&o, "unrecognized subcommand");
    let o = poolwatch(&["inspect", "--frobnicate", "x"]);
    assert_clean_failure(&o, "--frobnicate");
}

#[test]
fn missing_required_input() {
    let o = poolwatch(&["inspect"]);
    assert_clean_failure(&o, "INPUT");
}

#[test]
fn replay_rejects_damaged_observation_lines() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("obs.jsonl");
    std::fs::write(&p, "{\"observation\":\"dns\"}\n").unwrap();
    let o = poolwatch(&["inspect", "--format", "observations", p.to_str().unwrap()]);
    assert_clean_failure(&o, "obs.jsonl:1");
}

/// Standard input is sniffed like a file; bytes that are neither a capture nor a known log
/// ask for `--format`.
#[test]
fn stdin_of_unknown_kind_asks_for_a_format() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run poolwatch");
    // The child may exit before reading: a failed write is fine.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"not a capture\n");
    let o = child.wait_with_output().expect("wait");
    assert_clean_failure(&o, "pass --format");
}

#[test]
fn scan_output_into_a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sample/sample.pcap");
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(["scan", "--output", "json", sample])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run poolwatch");
    // Close the read end at once, as `| head -c0` would.
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    let err = stderr(&o);
    assert!(
        !err.contains("Broken pipe") && !err.contains("panicked"),
        "{err}"
    );
    // Detections were found (exit 1), and nothing failed (not 2).
    assert_eq!(o.status.code(), Some(1), "{err}");
}
