//! Following `-` (stdin): the test binary re-runs itself as a child with a pipe on stdin, so the
//! follower reads a real pipe: partial writes, a partial last line, and end of input.

use crate::support::follow as follow_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use poolwatch::ingest::follow::{FollowConfig, Follower, ParserFactory};
use poolwatch::ingest::LogParser;
use poolwatch::model::Observation;

use follow_support::LineParser;

const CHILD_ENV: &str = "POOLWATCH_FOLLOW_STDIN_CHILD";

#[test]
fn stdin_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // only meaningful when re-run by `stdin_is_followed`
    }
    let factory: ParserFactory = Box::new(|path: &Path, _head: &[u8]| {
        assert_eq!(path, Path::new("-"));
        Some(Box::new(LineParser::for_path(path)) as Box<dyn LogParser>)
    });
    let cfg = FollowConfig {
        poll_interval: Duration::from_millis(5),
        ..FollowConfig::default()
    };
    let mut f = Follower::new(&["-".to_string()], cfg, factory, None).unwrap();
    let stop = AtomicBool::new(false);
    let mut sink = |o: Observation| {
        if let Observation::Dns(d) = o {
            println!("LINE<{}>", d.qname);
        }
        true
    };
    // Returns by itself at end of stdin (stdin is the only input).
    let stats = f.run(&mut sink, &stop);
    println!("STATS lines={}", stats.lines);
}

#[test]
fn stdin_is_followed() {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "follow_stdin::stdin_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntw").unwrap();
        stdin.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
        stdin.write_all(b"o\nthree\nunterminated").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = text
        .lines()
        .filter_map(|l| l.find("LINE<").map(|i| &l[i + 5..]))
        .filter_map(|l| l.strip_suffix('>'))
        .collect();
    assert_eq!(got, vec!["one", "two", "three", "unterminated"], "{text}");
    assert!(text.contains("STATS lines=4"), "{text}");
}
