//! `scan`'s log pre-filter (issue #16) changes no result: BIND and Unbound lines naming no
//! listed pool are dropped unparsed, dnsmasq transactions of unlisted names are read lite and,
//! when one log is the only input, skipped where the engine holds nothing for their addresses.
//! On every log there is — the project's (`tests/data/logs`, built-in lists and a fixture list),
//! the lab's (its pool list, alone and joined with the run's capture and other logs) and the
//! bench logs named by `POOLWATCH_BENCH_DIR` if set (with their list):
//! - the library: the detections (every field) agree with reading every line in full, and for
//!   the formats whose lines are not dropped (dnsmasq and the rest) so does the pipeline summary
//!   (observations, every engine counter, every table size);
//! - the ingest layer: dnsmasq read lite gives exactly the observations of the full reading;
//! - the binary: `scan --output json` prints byte-identical output with and without
//!   `--no-log-prefilter`.

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::capture::CaptureConfig;
use poolwatch::correlate::Pipeline;
use poolwatch::ingest::{self, IngestConfig, LogFormat, Prefilter};
use poolwatch::input::{self, InputFormat};
use poolwatch::store::MemoryStore;

use super::support::identity::{self, lists, pipeline};
use super::support::shared_data;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The pool list of the project's fixtures (`tests/data/logs`).
const FIXTURE_LIST: &str = "nanopool.org\nhashvault.pro\nminexmr.com\nmoneroocean.stream\n\
supportxmr.com\ncloud-sync-check.net\n";

/// (inputs of one scan, pool list or `None` for the built-in lists).
fn cases(tmp: &Path) -> Vec<(Vec<PathBuf>, Option<PathBuf>)> {
    let fixture_list = tmp.join("fixture-list.txt");
    std::fs::write(&fixture_list, FIXTURE_LIST).unwrap();
    let mut v = Vec::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/data/logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    assert!(logs.len() >= 9, "{logs:?}");
    for l in logs {
        v.push((vec![l.clone()], None));
        v.push((vec![l], Some(fixture_list.clone())));
    }
    match shared_data() {
        Some(shared) => {
            let lab = shared.join("lab");
            let list = lab.join("pool-domains.txt");
            let mut runs = Vec::new();
            for res in std::fs::read_dir(lab.join("logs")).unwrap() {
                for run in std::fs::read_dir(res.unwrap().path()).unwrap() {
                    let run = run.unwrap().path();
                    let mut files: Vec<PathBuf> = std::fs::read_dir(&run)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .filter(|p| p.extension().is_some_and(|e| e == "log"))
                        .collect();
                    files.sort();
                    for f in &files {
                        v.push((vec![f.clone()], Some(list.clone())));
                        v.push((vec![f.clone()], None));
                    }
                    let name = run.file_name().unwrap().to_string_lossy().to_string();
                    runs.push((name, files));
                }
            }
            assert!(v.len() >= 30, "{}", v.len());
            // Each run's capture joined with its logs (several inputs: read lite, not skipped).
            for (name, files) in runs {
                let pcap = lab.join("pcaps").join(format!("{name}.pcap"));
                if pcap.exists() && !files.is_empty() {
                    let mut inputs = vec![pcap];
                    inputs.extend(files);
                    v.push((inputs, Some(list.clone())));
                }
            }
        }
        None => println!("../shared/data is absent: only the project's logs are compared"),
    }
    if let Some(dir) = std::env::var_os("POOLWATCH_BENCH_DIR").map(PathBuf::from) {
        for l in ["bind-query.log", "unbound.log", "dnsmasq.log"] {
            v.push((vec![dir.join(l)], Some(dir.join("blocklist.txt"))));
        }
    }
    v
}

/// Detections as JSON lines (in `scan`'s order) and the pipeline summary as JSON.
struct Run {
    detections: Vec<String>,
    summary: String,
    skipped: u64,
}

fn finish(p: Pipeline, store: &MemoryStore, skipped: u64) -> Run {
    let (detections, summary) = identity::finish(p, store);
    Run {
        detections,
        summary,
        skipped,
    }
}

fn prefilter(list: Option<&Path>) -> std::sync::Arc<Prefilter> {
    let l = lists(list);
    std::sync::Arc::new(Prefilter::new(Box::new(move |n| {
        l.match_name_bytes(n).is_some()
    })))
}

/// Every line parsed in full and every observation pushed (the reference).
fn full(path: &Path, list: Option<&Path>) -> Run {
    let (mut p, store) = pipeline(list);
    let failures = input::ReadFailures::new();
    let r = input::open_counting(
        path,
        InputFormat::Auto,
        &CaptureConfig::default(),
        &IngestConfig::default(),
        &failures,
        &input::ByteCount::new(),
    )
    .unwrap();
    for obs in r {
        p.push(obs).unwrap();
    }
    finish(p, &store, 0)
}

/// The pre-filter, as `scan` runs it on one log.
fn filtered(path: &Path, list: Option<&Path>) -> Run {
    let (mut p, store) = pipeline(list);
    let icfg = IngestConfig {
        prefilter: Some(prefilter(list)),
        ..IngestConfig::default()
    };
    let failures = input::ReadFailures::new();
    let mut log = input::open_log_counting(
        path,
        InputFormat::Auto,
        &icfg,
        &failures,
        &input::ByteCount::new(),
    )
    .unwrap()
    .expect("a log");
    let skipped = poolwatch::cli::scan::scan_log_fast(&mut log, &mut p, &mut || {}).unwrap();
    finish(p, &store, skipped)
}

fn is_dropping(path: &Path) -> bool {
    let head = std::fs::read(path).unwrap();
    matches!(
        ingest::detect_format(head.get(..head.len().min(ingest::DETECT_LEN)).unwrap()),
        Some(LogFormat::Bind | LogFormat::Unbound)
    )
}

#[test]
fn prefilter_gives_what_reading_every_line_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let mut skipped = 0;
    for (inputs, list) in cases(tmp.path()) {
        let [path] = inputs.as_slice() else {
            continue;
        };
        let what = format!("{} ({:?})", path.display(), list);
        let a = full(path, list.as_deref());
        let b = filtered(path, list.as_deref());
        if !is_dropping(path) {
            assert_eq!(a.summary, b.summary, "{what}: pipeline summary");
        }
        assert_eq!(a.detections.len(), b.detections.len(), "{what}");
        for (x, y) in a.detections.iter().zip(&b.detections) {
            assert_eq!(x, y, "{what}: detection");
        }
        skipped += b.skipped;
    }
    assert!(skipped > 0, "no dnsmasq transaction was skipped");
}

/// Read lite without a consumer to ask (several inputs, `parse_bytes`), dnsmasq gives the
/// observations of the full reading, field for field: plain and `=extra` logs, CNAME chains
/// (unlisted ones kept lite and replayed, a listed target upgrading, a chain reopened
/// by a forward), IPv6 answers as logged and in other spellings, text data,
/// answers for another name, waiting clients served by one answer.
#[test]
fn dnsmasq_read_lite_gives_the_full_observations() {
    let crafted = b"\
Jan  6 09:00:00 dnsmasq[812]: query[A] a.example.com from 10.0.0.1
Jan  6 09:00:00 dnsmasq[812]: query[A] a.example.com from 10.0.0.2
Jan  6 09:00:00 dnsmasq[812]: forwarded a.example.com to 9.9.9.9
Jan  6 09:00:00 dnsmasq[812]: reply a.example.com is 192.0.2.1
Jan  6 09:00:00 dnsmasq[812]: reply A.Example.COM. is 192.0.2.2
Jan  6 09:00:01 dnsmasq[812]: query[AAAA] b.example.com from fd00::1
Jan  6 09:00:01 dnsmasq[812]: reply b.example.com is 2001:db8::1
Jan  6 09:00:01 dnsmasq[812]: reply b.example.com is 2001:DB8::2
Jan  6 09:00:01 dnsmasq[812]: reply b.example.com is 2001:db8:0::3
Jan  6 09:00:02 dnsmasq[812]: query[A] c.example.com from 10.0.0.3
Jan  6 09:00:02 dnsmasq[812]: reply c.example.com is <CNAME>
Jan  6 09:00:02 dnsmasq[812]: reply pool.supportxmr.com is 203.0.113.7
Jan  6 09:00:03 dnsmasq[812]: query[TXT] d.example.com from 10.0.0.4
Jan  6 09:00:03 dnsmasq[812]: reply d.example.com is v=spf1 -all
Jan  6 09:00:04 dnsmasq[812]: query[A] e.example.com from 10.0.0.5
Jan  6 09:00:04 dnsmasq[812]: cached e.example.com is 192.0.2.5
Jan  6 09:00:04 dnsmasq[812]: cached e.example.com is [192.0.2.6]
Jan  6 09:00:05 dnsmasq[812]: query[A] f.example.com from 10.0.0.6
Jan  6 09:00:05 dnsmasq[812]: cached f.example.com is NXDOMAIN
Jan  6 09:00:06 dnsmasq[812]: query[AAAA] g.example.com from 10.0.0.7
Jan  6 09:00:06 dnsmasq[812]: reply g.example.com is NODATA-IPv6
Jan  6 09:00:07 dnsmasq[812]: query[A] h.example.com from 10.0.0.8
Jan  6 09:00:50 dnsmasq[812]: query[A] i.example.com from 10.0.0.9
Jan  6 09:00:50 dnsmasq[812]: reply error is SERVFAIL
Jan  6 09:00:51 dnsmasq[812]: 7 10.0.0.10/4000 query[A] j.example.com from 10.0.0.10
Jan  6 09:00:51 dnsmasq[812]: 7 10.0.0.10/4000 reply j.example.com is 192.0.2.10
Jan  6 09:00:51 dnsmasq[812]: 8 10.0.0.11/4001 query[A] k.example.com from 10.0.0.11
Jan  6 09:00:51 dnsmasq[812]: 8 10.0.0.11/4001 cached k.example.com is <CNAME>
Jan  6 09:00:51 dnsmasq[812]: 8 10.0.0.11/4001 cached k2.example.com is 192.0.2.11
Jan  6 09:00:52 dnsmasq[812]: query[A] www.l.example.com from 10.0.0.12
Jan  6 09:00:52 dnsmasq[812]: cached www.l.example.com is <CNAME>
Jan  6 09:00:52 dnsmasq[812]: cached l.edge.example.net is <CNAME>
Jan  6 09:00:52 dnsmasq[812]: cached e1.edge.example.net is 192.0.2.12
Jan  6 09:00:52 dnsmasq[812]: cached e1.edge.example.net is 192.0.2.13
Jan  6 09:00:53 dnsmasq[812]: query[A] m.example.com from 10.0.0.13
Jan  6 09:00:53 dnsmasq[812]: cached m.example.com is <CNAME>
Jan  6 09:00:53 dnsmasq[812]: query[A] n.example.com from 10.0.0.14
Jan  6 09:00:53 dnsmasq[812]: forwarded m.example.com to 9.9.9.9
Jan  6 09:00:53 dnsmasq[812]: reply m.example.com is <CNAME>
Jan  6 09:00:53 dnsmasq[812]: reply m2.example.net is 192.0.2.14
Jan  6 09:00:54 dnsmasq[812]: query[A] o.example.com from 10.0.0.15
Jan  6 09:00:54 dnsmasq[812]: query[A] o.example.com from 10.0.0.16
Jan  6 09:00:54 dnsmasq[812]: reply o.example.com is <CNAME>
Jan  6 09:00:54 dnsmasq[812]: reply o2.example.net is 192.0.2.15
Jan  6 09:00:55 dnsmasq[812]: query[A] p.example.com from 10.0.0.17
Jan  6 09:00:55 dnsmasq[812]: reply p.example.com is <CNAME>
Jan  6 09:00:55 dnsmasq[812]: reply P.example.COM is 192.0.2.16
Jan  6 09:00:55 dnsmasq[812]: reply p.example.com is <SRV record>
";
    let mut logs = vec![crafted.to_vec()];
    logs.push(std::fs::read(repo().join("tests/data/logs/dnsmasq.log")).unwrap());
    if let Some(shared) = shared_data() {
        for run in ["solo-dnsmasq", "mixed"] {
            let p = shared.join(format!("lab/logs/dnsmasq/{run}/dnsmasq.log"));
            logs.push(std::fs::read(p).unwrap());
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, FIXTURE_LIST).unwrap();
    let pre = prefilter(Some(&list));
    for log in logs {
        let all = ingest::parse_bytes(LogFormat::Dnsmasq, &log, &IngestConfig::default());
        let lite = ingest::parse_bytes(
            LogFormat::Dnsmasq,
            &log,
            &IngestConfig {
                prefilter: Some(pre.clone()),
                ..IngestConfig::default()
            },
        );
        assert!(all.len() > 5);
        assert_eq!(all, lite);
    }
}

/// A dnsmasq log where unlisted answers do matter (regression for the skip's engine
/// question): client C resolves a pool to 203.0.113.7, then an unlisted name to the same
/// address (shadowing C's binding); client D resolves another unlisted name to it (the
/// shared-address rule's answer names: C's and D's); client E's unlisted name is a CNAME of the pool
/// (listed only on the reply line, an address nobody holds yet); client F's unlisted lookup of another address and G's
/// unlisted CNAME chain can be skipped. Skipping any of the first three changes the engine's
/// counters or detections.
#[test]
fn dnsmasq_unlisted_answers_that_matter_are_kept() {
    let log = "\
Jan  6 09:00:00 dnsmasq[812]: query[A] pool.supportxmr.com from 10.9.0.2
Jan  6 09:00:00 dnsmasq[812]: reply pool.supportxmr.com is 203.0.113.7
Jan  6 09:00:01 dnsmasq[812]: query[A] img.cdn-example.net from 10.9.0.2
Jan  6 09:00:01 dnsmasq[812]: reply img.cdn-example.net is 203.0.113.7
Jan  6 09:00:02 dnsmasq[812]: query[A] shop.example.org from 10.9.0.3
Jan  6 09:00:02 dnsmasq[812]: reply shop.example.org is 203.0.113.7
Jan  6 09:00:03 dnsmasq[812]: query[A] www.example.com from 10.9.0.4
Jan  6 09:00:03 dnsmasq[812]: reply www.example.com is <CNAME>
Jan  6 09:00:03 dnsmasq[812]: reply pool.supportxmr.com is 203.0.113.9
Jan  6 09:00:04 dnsmasq[812]: query[A] other.example.net from 10.9.0.5
Jan  6 09:00:04 dnsmasq[812]: reply other.example.net is 198.51.100.1
Jan  6 09:00:05 dnsmasq[812]: query[A] www.example.net from 10.9.0.6
Jan  6 09:00:05 dnsmasq[812]: reply www.example.net is <CNAME>
Jan  6 09:00:05 dnsmasq[812]: reply edge.example.net is 198.51.100.2
";
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dnsmasq.log");
    std::fs::write(&path, log).unwrap();
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, "supportxmr.com\n").unwrap();
    let a = full(&path, Some(&list));
    let b = filtered(&path, Some(&list));
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.detections, b.detections);
    let s: serde_json::Value = serde_json::from_str(&b.summary).unwrap();
    assert_eq!(s["observations"], 6, "{s}");
    assert_eq!(s["engine"]["shadowed_bindings"], 1, "{s}");
    assert_eq!(s["tables"]["answer_names"], 2, "{s}");
    assert_eq!(s["engine"]["cname_matches"], 1, "{s}");
    // Only F's and G's lookups cannot matter.
    assert_eq!(b.skipped, 2);
}

#[test]
fn scan_prints_the_same_with_and_without_the_prefilter() {
    let tmp = tempfile::tempdir().unwrap();
    for (inputs, list) in cases(tmp.path()) {
        let run = |extra: &[&str]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
            cmd.args(["scan", "--output", "json", "--no-progress"]);
            if let Some(l) = &list {
                cmd.arg("--blocklist").arg(l);
            }
            let out = cmd.args(extra).args(&inputs).output().unwrap();
            (out.status.code(), out.stdout)
        };
        let (code_a, a) = run(&["--no-log-prefilter"]);
        let (code_b, b) = run(&[]);
        assert_eq!(code_a, code_b, "{inputs:?}");
        assert!(a == b, "{inputs:?}: output differs");
    }
}

/// `scan`'s pre-filter looks raw log tokens up as bytes (`Blocklists::match_name_bytes`, no
/// lowercased copy, no UTF-8 check): the answer is `match_name`'s on every entry of the list in
/// other cases, with a trailing dot, under a sub-label, as a decoy, and on non-ASCII and
/// non-UTF-8 bytes. (`scan_prints_the_same_with_and_without_the_prefilter` fails when the byte
/// lookup is made case-sensitive: the fixture's `Pool.SupportXMR.com.` lines are dropped.)
#[test]
fn byte_lookup_is_the_engines_test() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("list.txt");
    std::fs::write(&list, FIXTURE_LIST).unwrap();
    for l in [lists(Some(&list)), lists(None)] {
        let mut names: Vec<Vec<u8>> = Vec::new();
        for e in FIXTURE_LIST
            .lines()
            .chain(["xmr.pool.minergate.com", "example.com"])
        {
            for n in [
                e.to_string(),
                e.to_ascii_uppercase(),
                format!("{e}."),
                format!("Pool.{e}"),
                format!("x{e}"),
                format!("{e}.evil.example"),
                format!("b\u{fc}cher.{e}"),
            ] {
                names.push(n.into_bytes());
            }
            names.push([b"\xff\xfe.", e.as_bytes()].concat());
        }
        let mut listed = 0;
        for n in &names {
            let by_str = std::str::from_utf8(n).ok().and_then(|s| l.match_name(s));
            assert_eq!(
                l.match_name_bytes(n).map(|h| &h.entry),
                by_str.map(|h| &h.entry),
                "{:?}",
                String::from_utf8_lossy(n)
            );
            listed += usize::from(by_str.is_some());
        }
        assert!(listed >= 20, "{listed}");
    }
}
