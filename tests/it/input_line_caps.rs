//! Every line reader has a named maximum line length and skips longer lines (issue #11: a
//! newline-free `--format observations` input grew to 24 GB). The real binary is fed hundreds
//! of MiB without a newline through a pipe; its peak memory (`wait4` on that one child) must stay far below the input size, and the lines
//! after the monster must still be read.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::proc;

/// Newline-free bytes fed before the real input.
const JUNK: usize = 320 << 20;
/// Peak RSS allowed to the child: the reader holds one capped line (1 MiB) and a read chunk;
/// the rest is the process itself (lists, a temporary sled database).
const MAX_RSS_KB: i64 = 160 * 1024;

fn feed(args: &[&str], tail: Vec<u8>) -> (Output, i64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poolwatch"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![b'{'; 1 << 20];
        for _ in 0..JUNK / chunk.len() {
            if stdin.write_all(&chunk).is_err() {
                return;
            }
        }
        let _ = stdin.write_all(b"\n");
        let _ = stdin.write_all(&tail);
    });
    let (o, usage) = proc::wait_with_usage(child);
    writer.join().unwrap();
    (o, usage.max_rss_kb)
}

#[test]
fn newline_free_observations_input_is_bounded() {
    let mini = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/observations/mini.jsonl"),
    )
    .unwrap();
    let (o, rss) = feed(
        &["scan", "--format", "observations", "--output", "json", "-"],
        mini,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the lines after it are read: {err}"
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("10.0.0.11"));
    assert!(
        rss < MAX_RSS_KB,
        "peak RSS {rss} KiB for a {} MiB line",
        JUNK >> 20
    );
}

#[test]
fn newline_free_names_on_stdin_are_bounded() {
    let (o, rss) = feed(&["blocklist", "match", "-"], b"supportxmr.com\n".to_vec());
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("supportxmr.com"), "{out} {err}");
    assert!(err.contains("1 line(s) longer than"), "{err}");
    assert!(rss < MAX_RSS_KB, "peak RSS {rss} KiB");
}
