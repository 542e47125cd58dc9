//! `scan --threads N` with the packet fast path (issue #16, `capture::parallel_fast`): the
//! decoder threads make the fast path's skips, the consumer checks each answered one with its
//! engine, and a refused skip makes `scan` read the capture again on one thread. On the
//! project's captures, the lab's and the public mining captures (when `../shared/data` is
//! present), and the capture where unlisted answers matter:
//! - the library: the threaded fast path gives the detections, pipeline summary and capture
//!   counters of the one-thread fast path, really skips, and with one worker never has a skip
//!   refused;
//! - the binary: `scan --output json --threads 2/3` prints what `--threads 1` prints, also
//!   where a skip is refused (`capture_parallel::scan_detections_are_identical_for_any_thread_count`
//!   covers the other captures).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use poolwatch::capture::{self, CaptureConfig, CaptureStats, ListedNames};
use poolwatch::correlate::Engine;
use poolwatch::input::{self, InputFormat};
use poolwatch::matcher::Blocklists;

use super::support::identity::{self, pipeline};
use super::support::service::bin;
use super::support::{captures_in, shared_data};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (capture, pool list or `None` for the built-in lists).
fn cases() -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut files = Vec::new();
    captures_in(&repo().join("tests/data"), &["pcap", "pcapng"], &mut files);
    let mut v: Vec<_> = files.into_iter().map(|p| (p, None)).collect();
    if let Some(shared) = shared_data() {
        let mut lab = Vec::new();
        captures_in(&shared.join("lab/pcaps"), &["pcap", "pcapng"], &mut lab);
        assert!(lab.len() >= 6, "{lab:?}");
        let list = shared.join("lab/pool-domains.txt");
        v.extend(lab.iter().map(|p| (p.clone(), Some(list.clone()))));
        let mut mining = Vec::new();
        captures_in(
            &shared.join("pcaps/mining"),
            &["pcap", "pcapng"],
            &mut mining,
        );
        v.extend(lab.into_iter().chain(mining).map(|p| (p, None)));
    } else {
        println!("../shared/data is absent: only the project's captures are compared");
    }
    v
}

/// The workers' list questions, answered as `scan` answers them (the engine's own tests).
struct Lists(Arc<Blocklists>);

impl ListedNames for Lists {
    fn name_listed(&self, name: &str) -> bool {
        Engine::dns_name_listed_in(&self.0, name)
    }
    fn ip_listed(&self, ip: IpAddr) -> bool {
        Engine::dns_ip_listed_in(&self.0, ip)
    }
}

struct Run {
    detections: Vec<String>,
    summary: String,
    capture: CaptureStats,
    /// A skip was refused: the run stopped early (`scan` reads the file again).
    mispredicted: bool,
}

/// `scan`'s fast path with `workers` decoder threads (0: on the consumer's thread).
fn run(path: &Path, list: Option<&Path>, workers: usize) -> Option<Run> {
    let (mut p, store) = pipeline(list);
    let failures = input::ReadFailures::new();
    let bytes = input::ByteCount::new();
    let cfg = CaptureConfig::default();
    let mut cap =
        input::open_capture_counting(path, InputFormat::Auto, &cfg, &failures, &bytes).ok()??;
    if workers > 0 {
        let names = Arc::new(Lists(p.engine().lists_snapshot()));
        assert!(cap.start_threads(&cfg, workers, names).unwrap());
    }
    poolwatch::cli::scan::scan_capture_fast(&mut cap, &mut p, &mut || {}).unwrap();
    let (detections, summary) = identity::finish(p, &store);
    Some(Run {
        detections,
        summary,
        capture: cap.stats(),
        mispredicted: cap.mispredicted(),
    })
}

/// A pipeline summary without its table sizes.
fn without_tables(summary: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(summary).unwrap();
    if let Some(o) = v.as_object_mut() {
        o.remove("tables");
    }
    v
}

#[test]
fn threaded_fast_path_gives_what_one_thread_gives() {
    let cases = cases();
    assert!(cases.len() >= 10, "{cases:?}");
    let mut compared = 0usize;
    for (path, list) in &cases {
        let what = format!("{} ({:?})", path.display(), list);
        let Some(one) = run(path, list.as_deref(), 0) else {
            continue;
        };
        for workers in [1, 2, 3] {
            let many = run(path, list.as_deref(), workers).unwrap();
            if many.mispredicted {
                // Several workers only: one sees every DNS message (asserted below).
                assert!(workers > 1, "{what}: one worker had a skip refused");
                continue;
            }
            assert_eq!(
                one.capture.thread_invariant(),
                many.capture.thread_invariant(),
                "{what}: {workers} workers: capture counters"
            );
            if workers == 1 {
                assert_eq!(one.summary, many.summary, "{what}: one worker");
            } else {
                // Several workers merge their end-of-input reports by time (as `parallel`
                // does): the engine's table sizes may differ, never its counters.
                assert_eq!(
                    without_tables(&one.summary),
                    without_tables(&many.summary),
                    "{what}: {workers} workers"
                );
            }
            assert!(
                one.detections == many.detections,
                "{what}: {workers} workers: detections differ"
            );
            compared += 1;
        }
    }
    assert!(compared >= 20, "{compared} threaded runs compared");
}

/// The workers really skip (counted by a consumer that accepts every skip) on a lab capture,
/// and fewer than all messages.
#[test]
fn workers_skip_lab_messages() {
    let Some(shared) = shared_data() else {
        return;
    };
    struct Count {
        skipped: u64,
        asked: u64,
    }
    impl capture::DnsInterest for Count {
        fn name_listed(&mut self, _: &str) -> bool {
            unreachable!("the workers answer the list questions")
        }
        fn answers_matter(&mut self, _: IpAddr, _: &[IpAddr]) -> bool {
            self.asked += 1;
            false
        }
        fn skipped(&mut self, _: poolwatch::model::DnsSkim) {
            self.skipped += 1;
        }
    }
    let path = shared.join("lab/pcaps/mixed.pcap");
    let list = identity::lists(Some(&shared.join("lab/pool-domains.txt")));
    let mut r = capture::open_file(&path, &CaptureConfig::default()).unwrap();
    assert!(r
        .start_fast_threads(
            &CaptureConfig::default(),
            2,
            Arc::new(Lists(Arc::new(list)))
        )
        .unwrap());
    let mut c = Count {
        skipped: 0,
        asked: 0,
    };
    let mut kept = 0u64;
    while r.next_fast(&mut c).is_some() {
        kept += 1;
    }
    let s = r.stats();
    assert!(!r.mispredicted());
    assert!(
        c.skipped > 0 && kept > 0,
        "{} skipped, {kept} kept",
        c.skipped
    );
    assert!(c.asked > 0 && c.asked <= c.skipped, "{} asked", c.asked);
    assert!(
        c.skipped < s.dns_messages,
        "{} of {}",
        c.skipped,
        s.dns_messages
    );
}

/// The capture where unlisted answers matter (`scan_fastpath::shadow_capture`: a pool address
/// bound by C's lookup, then answered to C and D for unlisted names). One worker sees C's pool
/// lookup before D's answer and decodes that answer itself (its bound addresses): no skip is
/// refused and the result is one thread's. With several workers, C's and D's lookups are
/// decoded on different workers for some N: the consumer refuses D's skip, and `scan`'s
/// output is still `--threads 1`'s. Fails if the workers' guess or the consumer's check is
/// broken.
#[test]
fn a_skip_that_matters_is_decoded_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = super::scan_fastpath::shadow_capture(dir.path());
    let one = run(&path, None, 0).unwrap();
    let w1 = run(&path, None, 1).unwrap();
    assert!(!w1.mispredicted, "one worker sees every lookup");
    assert_eq!(one.summary, w1.summary);
    assert_eq!(one.detections, w1.detections);
    let refused: Vec<usize> = (2..=8)
        .filter(|&n| run(&path, None, n).unwrap().mispredicted)
        .collect();
    assert!(!refused.is_empty(), "no worker count split C and D");
    // `scan --threads N` of the file (`stdin`: of the same bytes as a stream, `-`).
    let scan = |threads: usize, stdin: bool| {
        let mut cmd = Command::new(bin());
        cmd.args([
            "scan",
            "--output",
            "json",
            "--no-progress",
            "--format",
            "pcap",
        ]);
        cmd.args(["--threads", &threads.to_string()]);
        if stdin {
            cmd.arg("-").stdin(std::fs::File::open(&path).unwrap());
        } else {
            cmd.arg(&path);
        }
        let out = cmd.output().unwrap();
        (out.status.code(), out.stdout)
    };
    let reference = scan(1, false);
    assert!(!reference.1.is_empty());
    // `scan --threads N` runs N fast-path workers.
    for n in [2, 3].into_iter().chain(refused.iter().copied()) {
        assert!(scan(n, false) == reference, "--threads {n} differs from 1");
    }
    // Streams never take the fast path (`input::open_capture_counting`: a refused skip could
    // not read them again): `scan - --threads N` decodes on threads and prints what one
    // thread prints (the source is named `-`, so its own reference).
    let reference = scan(1, true);
    assert!(!reference.1.is_empty());
    for n in [2, 3] {
        assert!(
            scan(n, true) == reference,
            "stdin with --threads {n} differs from 1"
        );
    }
}
