//! `scan`'s progress bar (issue #17): under a real pseudo-terminal (util-linux `script`) the
//! bar counts the bytes read of the inputs' total and reaches 100%, for a capture and for a
//! log; with stderr not a terminal nothing but log lines reaches it.

use crate::support::{lab, service as service_support};

use std::path::Path;
use std::process::{Command, Stdio};

fn have_script() -> bool {
    Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A file over the bar's 8 MiB threshold made of a real input repeated: a capture's records
/// after its one header, or a log's lines.
fn grow(src: &[u8], header: usize, out: &Path) -> u64 {
    let (head, body) = src.split_at(header);
    let copies = (9 << 20) / body.len() + 1;
    let mut data = head.to_vec();
    for _ in 0..copies {
        data.extend_from_slice(body);
    }
    std::fs::write(out, &data).unwrap();
    data.len() as u64
}

/// indicatif's `{total_bytes}` for sizes in the MiB range.
fn mib(n: u64) -> String {
    format!("{:.2} MiB", n as f64 / 1048576.0)
}

/// Runs `poolwatch scan INPUT` with stderr on a pseudo-terminal; returns what the terminal saw.
fn scan_on_pty(input: &Path) -> String {
    let cmd = format!(
        "{} scan {} >/dev/null",
        service_support::bin(),
        input.display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_bar_completes(tty: &str, size: u64) {
    let total = mib(size);
    let done = format!("{total}/{total} 100%");
    assert!(
        tty.contains(&done),
        "the bar never showed {done:?}; the terminal saw: {:?}",
        tty.chars().rev().take(600).collect::<String>()
    );
    // It moved on the way there (bytes counted while reading, not set at the end).
    let partial = tty
        .split(['\r', '\n'])
        .filter(|l| l.contains(&format!("/{total} ")) && !l.contains(" 100%"))
        .count();
    assert!(partial > 0, "no intermediate state: {tty:?}");
    assert!(tty.contains("ETA"), "no ETA: {tty:?}");
}

#[test]
fn scan_progress_bar_on_a_terminal_reaches_the_total() {
    let Some(shared) = lab::shared_data() else {
        return;
    };
    if !have_script() {
        println!("SKIP: util-linux `script` not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = std::fs::read(shared.join("pcaps/ndpi-dns/bad-dns-traffic.pcap")).unwrap();
    assert_eq!(pcap.get(..4), Some(&[0xd4, 0xc3, 0xb2, 0xa1][..]));
    let big_pcap = dir.path().join("big.pcap");
    let size = grow(&pcap, 24, &big_pcap);
    assert_bar_completes(&scan_on_pty(&big_pcap), size);

    let log = std::fs::read(shared.join("logs/bind/logstash-patterns-core-bind_spec-sample.log"))
        .unwrap();
    let big_log = dir.path().join("big.log");
    let size = grow(&log, 0, &big_log);
    assert_bar_completes(&scan_on_pty(&big_log), size);

    // Not a terminal: stderr carries no bar (nothing at all at the default log level).
    let out = Command::new(service_support::bin())
        .args(["scan", big_pcap.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('%') && !err.contains("MiB") && !err.contains('\r'),
        "stderr without a terminal: {err:?}"
    );
}
