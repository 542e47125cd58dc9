//! `scan --threads N` (issue #16): a capture decoded by N worker threads gives what one decoder
//! gives. Two levels, on the project's captures and (when `../shared/data` is present) the lab
//! captures and the public mining captures:
//! - the library: the observations of `capture::open_file` with `threads` 1 to 4 are the
//!   same multiset (each one the same JSON) and the counters agree;
//! - the binary: `poolwatch scan --output json` prints byte-identical detections (every field,
//!   evidence included) for `--threads 1`, 2 and 3.

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::capture::{self, CaptureConfig};

use super::support::service::bin;
use super::support::{captures_in, shared_data};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pcaps_in(dir: &Path, out: &mut Vec<PathBuf>) {
    captures_in(dir, &["pcap", "pcapng"], out);
}

/// The project's captures, plus the lab's and the public mining captures when present.
fn captures() -> Vec<PathBuf> {
    let root = repo();
    let mut v = vec![root.join("tests/data/sample/sample.pcap")];
    pcaps_in(&root.join("tests/data/pcap"), &mut v);
    if let Some(shared) = shared_data() {
        pcaps_in(&shared.join("lab/pcaps"), &mut v);
        pcaps_in(&shared.join("pcaps/mining"), &mut v);
    }
    v
}

fn observations(path: &Path, threads: usize) -> (Vec<String>, poolwatch::capture::CaptureStats) {
    let cfg = CaptureConfig {
        threads,
        ..CaptureConfig::default()
    };
    let mut r = capture::open_file(path, &cfg).unwrap();
    let mut v: Vec<String> = r
        .by_ref()
        .map(|o| serde_json::to_string(&o).unwrap())
        .collect();
    assert!(r.error().is_none(), "{}: {:?}", path.display(), r.error());
    v.sort();
    (v, r.stats())
}

#[test]
fn workers_decode_the_same_observations() {
    let files = captures();
    assert!(files.len() >= 12, "{files:?}");
    for p in &files {
        let (one, s1) = observations(p, 1);
        // 1, 2 and 3 decoder workers beside the consumer.
        for n in [2, 3, 4] {
            let (many, sn) = observations(p, n);
            assert_eq!(one.len(), many.len(), "{} threads {n}", p.display());
            assert!(
                one == many,
                "{} threads {n}: observations differ",
                p.display()
            );
            assert_eq!(
                (s1.packets, s1.bytes, s1.udp, s1.tcp, s1.dns_messages),
                (sn.packets, sn.bytes, sn.udp, sn.tcp, sn.dns_messages),
                "{} threads {n}",
                p.display()
            );
            assert_eq!(
                (s1.dns_paired, s1.dns_unanswered, s1.flow_reports),
                (sn.dns_paired, sn.dns_unanswered, sn.flow_reports),
                "{} threads {n}",
                p.display()
            );
            assert_eq!(
                s1.decode_error_total(),
                sn.decode_error_total(),
                "{}",
                p.display()
            );
        }
    }
}

fn scan(inputs: &[PathBuf], blocklist: Option<&Path>, threads: u16) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(["scan", "--output", "json", "--no-progress", "--threads"])
        .arg(threads.to_string());
    if let Some(b) = blocklist {
        cmd.arg("--blocklist").arg(b);
    }
    let out = cmd.args(inputs).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{inputs:?}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn scan_detections_are_identical_for_any_thread_count() {
    let shared = shared_data();
    let lab_list = shared.as_ref().map(|s| s.join("lab/pool-domains.txt"));
    let mut detections = 0usize;
    for p in captures() {
        let list = if p.starts_with(repo()) {
            None
        } else if p.to_string_lossy().contains("/lab/") {
            lab_list.as_deref()
        } else {
            None
        };
        let one = scan(std::slice::from_ref(&p), list, 1);
        detections += one.lines().count();
        for n in [2, 3] {
            let many = scan(std::slice::from_ref(&p), list, n);
            assert!(one == many, "{}: --threads {n} differs from 1", p.display());
        }
    }
    // The comparison must be about something: the fixtures alone hold detections.
    assert!(detections >= 5, "{detections}");
}

#[test]
fn threads_flag_is_checked() {
    let p = repo().join("tests/data/pcap/xmrig_flow.pcap");
    for bad in ["0", "65", "x"] {
        let out = Command::new(bin())
            .args(["scan", "--no-progress", "--threads", bad])
            .arg(&p)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--threads {bad}");
    }
}
