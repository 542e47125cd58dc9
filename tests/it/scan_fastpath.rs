//! The packet fast path (issue #16): `scan` of a capture skips the DNS messages that cannot
//! matter instead of decoding them, and the result is the same as decoding everything
//! (`scan --no-fast-path`). On every capture there is — the project's (`tests/data`), the
//! lab's and every public capture under `../shared/data` when present (it says so when it is
//! not), and the bench file named by `POOLWATCH_BENCH_DIR` if set — with the built-in lists and,
//! for the lab and bench captures, their own pool list:
//! - the library: the detections (every field), the pipeline summary (observations, every
//!   engine counter, every table size) and the capture counters agree, and on the lab
//!   captures messages were really skipped;
//! - the binary: `scan --output json` prints byte-identical output with and without
//!   `--no-fast-path`.

use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::capture::{self, CaptureConfig, CaptureStats};
use poolwatch::correlate::Pipeline;
use poolwatch::input::{self, InputFormat};
use poolwatch::store::MemoryStore;

use super::support::identity::{self, pipeline};
use super::support::{captures_in, shared_data};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pcaps_in(dir: &Path, out: &mut Vec<PathBuf>) {
    captures_in(dir, &["pcap", "pcapng", "cap"], out);
}

/// (capture, pool list or `None` for the built-in lists).
fn cases() -> Vec<(PathBuf, Option<PathBuf>)> {
    let mut files = Vec::new();
    pcaps_in(&repo().join("tests/data"), &mut files);
    let mut v: Vec<_> = files.into_iter().map(|p| (p, None)).collect();
    match shared_data() {
        Some(shared) => {
            let mut lab = Vec::new();
            pcaps_in(&shared.join("lab/pcaps"), &mut lab);
            assert!(lab.len() >= 6, "{lab:?}");
            let list = shared.join("lab/pool-domains.txt");
            for p in &lab {
                v.push((p.clone(), Some(list.clone())));
            }
            let mut public = Vec::new();
            pcaps_in(&shared.join("pcaps"), &mut public);
            assert!(public.len() >= 80, "{}", public.len());
            v.extend(lab.into_iter().chain(public).map(|p| (p, None)));
        }
        None => println!("../shared/data is absent: only the project's captures are compared"),
    }
    if let Some(dir) = std::env::var_os("POOLWATCH_BENCH_DIR").map(PathBuf::from) {
        v.push((dir.join("traffic.pcap"), Some(dir.join("blocklist.txt"))));
    }
    v
}

/// What one run gives: the detections as JSON lines (sorted as `scan` prints them), the
/// pipeline summary as JSON (observations, engine counters, table sizes), the capture
/// counters.
struct Run {
    detections: Vec<String>,
    summary: String,
    capture: CaptureStats,
}

fn finish(p: Pipeline, store: &MemoryStore, capture: CaptureStats) -> Run {
    let (detections, summary) = identity::finish(p, store);
    Run {
        detections,
        summary,
        capture,
    }
}

/// Every observation decoded and pushed (the reference).
fn decoded(path: &Path, list: Option<&Path>) -> Run {
    let (mut p, store) = pipeline(list);
    let mut r = capture::open_file(path, &CaptureConfig::default()).unwrap();
    for obs in r.by_ref() {
        p.push(obs).unwrap();
    }
    finish(p, &store, r.stats())
}

/// The fast path, as `scan` runs it.
fn fast(path: &Path, list: Option<&Path>) -> Run {
    let (mut p, store) = pipeline(list);
    let failures = input::ReadFailures::new();
    let bytes = input::ByteCount::new();
    let mut cap = input::open_capture_counting(
        path,
        InputFormat::Auto,
        &CaptureConfig::default(),
        &failures,
        &bytes,
    )
    .unwrap()
    .expect("a capture");
    poolwatch::cli::scan::scan_capture_fast(&mut cap, &mut p, &mut || {}).unwrap();
    finish(p, &store, cap.stats())
}

#[test]
fn fast_path_gives_what_decoding_everything_gives() {
    let cases = cases();
    assert!(cases.len() >= 12, "{cases:?}");
    for (path, list) in &cases {
        let what = format!("{} ({:?})", path.display(), list);
        // Files that are not captures at all (garbage fixtures) are no case for this test.
        if capture::open_file(path, &CaptureConfig::default()).is_err() {
            continue;
        }
        let a = decoded(path, list.as_deref());
        let b = fast(path, list.as_deref());
        assert_eq!(a.capture, b.capture, "{what}: capture counters");
        assert_eq!(a.summary, b.summary, "{what}: pipeline summary");
        assert_eq!(a.detections.len(), b.detections.len(), "{what}");
        for (x, y) in a.detections.iter().zip(&b.detections) {
            assert_eq!(x, y, "{what}: detection");
        }
    }
}

/// The fast path really skips: counted by a consumer that records what it is handed.
#[test]
fn lab_messages_are_skipped() {
    let Some(shared) = shared_data() else {
        return;
    };
    struct Count {
        skipped: u64,
        listed: u64,
    }
    impl capture::DnsInterest for Count {
        fn name_listed(&mut self, name: &str) -> bool {
            let l = name.ends_with("moneroocean.stream");
            self.listed += u64::from(l);
            l
        }
        fn answers_matter(&mut self, _: std::net::IpAddr, _: &[std::net::IpAddr]) -> bool {
            false
        }
        fn skipped(&mut self, _: poolwatch::model::DnsSkim) {
            self.skipped += 1;
        }
    }
    let path = shared.join("lab/pcaps/mixed.pcap");
    let mut r = capture::open_file(&path, &CaptureConfig::default()).unwrap();
    let mut c = Count {
        skipped: 0,
        listed: 0,
    };
    let mut kept = 0u64;
    while r.next_fast(&mut c).is_some() {
        kept += 1;
    }
    let s = r.stats();
    assert!(
        c.skipped > 0 && kept > 0,
        "{} skipped, {kept} kept",
        c.skipped
    );
    assert!(
        c.skipped < s.dns_messages,
        "{} of {}",
        c.skipped,
        s.dns_messages
    );
}

#[test]
fn scan_prints_the_same_with_and_without_the_fast_path() {
    for (path, list) in cases() {
        let run = |extra: &[&str]| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
            cmd.args(["scan", "--output", "json", "--no-progress"]);
            if let Some(l) = &list {
                cmd.arg("--blocklist").arg(l);
            }
            let out = cmd.args(extra).arg(&path).output().unwrap();
            (out.status.code(), out.stdout)
        };
        let (code_a, a) = run(&["--no-fast-path"]);
        let (code_b, b) = run(&[]);
        assert_eq!(code_a, code_b, "{}", path.display());
        assert!(a == b, "{}: output differs", path.display());
    }
}

/// The capture of [`unlisted_answers_that_matter_are_decoded`], written into `dir`.
pub(super) fn shadow_capture(dir: &Path) -> PathBuf {
    use super::support::capture::*;
    let (c, d, e, r) = (
        v4("10.9.0.2"),
        v4("10.9.0.3"),
        v4("10.9.0.4"),
        v4("10.9.0.53"),
    );
    let pool = "pool.supportxmr.com";
    let udp_dns = |p: &mut Pcap, t: u64, client, port: u16, msg: &[u8], up: bool| {
        let (s, sp, dst, dp) = if up {
            (client, port, r, 53)
        } else {
            (r, 53, client, port)
        };
        p.push(t, &ether(&ip(s, dst, 17, &udp(sp, dp, msg)), false, &[]));
    };
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    let mut t = 1_000u64;
    let mut id = 1u16;
    let mut lookup = |p: &mut Pcap, t: &mut u64, client, name: &str| {
        udp_dns(p, *t, client, 40_000 + id, &query(id, name, 1), true);
        let ans = [a(name, 300, "203.0.113.7")];
        udp_dns(
            p,
            *t + 500,
            client,
            40_000 + id,
            &response(id, name, 1, 0, &ans, &[]),
            false,
        );
        *t += 100_000;
        id += 1;
    };
    lookup(&mut p, &mut t, c, pool);
    lookup(&mut p, &mut t, c, "img.cdn-example.net");
    lookup(&mut p, &mut t, d, "shop.example.org");
    // E over TCP: both queries, then both responses in one segment.
    let mut tcp_conn = Conn::new(e, 45_000, r, 53);
    tcp_conn.handshake(&mut p, t);
    let mut both_q = tcp_dns(&query(90, pool, 1));
    both_q.extend(tcp_dns(&query(91, "img.cdn-example.net", 1)));
    tcp_conn.client(&mut p, t + 1_000, &both_q);
    // Another address than C's: only E's own binding (still queued) makes the second matter.
    let mut both_r = tcp_dns(&response(
        90,
        pool,
        1,
        0,
        &[a(pool, 300, "203.0.113.9")],
        &[],
    ));
    let cdn = [a("img.cdn-example.net", 300, "203.0.113.9")];
    both_r.extend(tcp_dns(&response(
        91,
        "img.cdn-example.net",
        1,
        0,
        &cdn,
        &[],
    )));
    tcp_conn.server(&mut p, t + 2_000, &both_r);
    tcp_conn.close(&mut p, t + 3_000);
    t += 1_000_000;
    for (i, (client, dst)) in [(c, "203.0.113.7"), (d, "203.0.113.7"), (e, "203.0.113.9")]
        .into_iter()
        .enumerate()
    {
        let mut conn = Conn::new(client, 50_000 + i as u16, v4(dst), 443);
        conn.handshake(&mut p, t);
        conn.client(&mut p, t + 1_000, &client_hello("img.cdn-example.net"));
        conn.close(&mut p, t + 2_000);
        t += 10_000;
    }
    let path = dir.join("shadow.pcap");
    std::fs::write(&path, &p.bytes).unwrap();
    path
}

/// A capture where unlisted answers do matter (regression for the fast path's engine
/// questions): client C resolves a pool to 203.0.113.7, then an unlisted CDN name to the same
/// address (shadowing C's binding); client D resolves another unlisted name to it (the
/// shared-address rule's answer names); over TCP, one segment carries E's pool answer and then
/// E's unlisted answer for E's pool address (the second must not be judged before the first
/// reached the engine); every client then connects to the address. Skipping any of the
/// unlisted answers changes the engine's counters and tables.
#[test]
fn unlisted_answers_that_matter_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let path = shadow_capture(dir.path());
    let a = decoded(&path, None);
    let b = fast(&path, None);
    let summary: serde_json::Value = serde_json::from_str(&a.summary).unwrap();
    assert!(
        summary["engine"]["shadowed_bindings"].as_u64() >= Some(2),
        "{summary}"
    );
    assert!(
        summary["tables"]["answer_names"].as_u64() >= Some(1),
        "{summary}"
    );
    assert_eq!(a.summary, b.summary);
    assert_eq!(a.capture, b.capture);
    assert_eq!(a.detections, b.detections);
}

/// Live capture's fast path (`Decoder::packet_live`, issue #16: queries read in place, every
/// response decoded) against `Decoder::packet` on every capture: after each frame the
/// observations queued are the same, in the same order, and so are the final observations and
/// all capture counters. Fails if the live path's consumer ever lets a message be skipped.
#[test]
fn live_query_fast_path_gives_what_decoding_gives() {
    use poolwatch::capture::savefile::Savefile;
    use poolwatch::capture::Decoder;
    use poolwatch::model::Source;
    use std::collections::VecDeque;

    let mut compared = 0usize;
    for (path, _) in cases() {
        let Ok(mut file) = std::fs::File::open(&path).map(|f| Savefile::new(Box::new(f))) else {
            continue;
        };
        // Files that are not captures at all (garbage fixtures) are no case for this test.
        let Ok(file) = file.as_mut() else {
            continue;
        };
        let what = path.display().to_string();
        let cfg = CaptureConfig::default();
        let source = Source::live("lo");
        let (mut decoding, mut live) = (
            Decoder::new(&cfg, source.clone()),
            Decoder::new(&cfg, source),
        );
        let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
        let mut frames = 0u64;
        while let Ok(Some(f)) = file.next_frame() {
            decoding.packet(f.ts_us, f.linktype, f.data, &mut qa);
            live.packet_live(f.ts_us, f.linktype, f.data, &mut qb);
            assert_eq!(qa, qb, "{what}: frame {frames}");
            qa.clear();
            qb.clear();
            frames += 1;
        }
        decoding.finish(&mut qa);
        live.finish(&mut qb);
        assert_eq!(qa, qb, "{what}: end of input");
        assert_eq!(decoding.stats(), live.stats(), "{what}: capture counters");
        compared += usize::from(decoding.stats().dns_messages > 0);
    }
    // The project's own captures alone hold 9 with DNS; with ../shared/data, the lab's too.
    let least = if shared_data().is_some() { 10 } else { 9 };
    assert!(compared >= least, "{compared} captures with DNS compared");
}

/// A fast-path consumer that answers every name `listed` (or not), says no answer matters,
/// and records the names it was asked about and the skips.
struct Asked {
    listed: bool,
    names: Vec<String>,
    skips: u64,
}

impl capture::DnsInterest for Asked {
    fn name_listed(&mut self, name: &str) -> bool {
        self.names.push(name.to_string());
        self.listed
    }
    fn answers_matter(&mut self, _: std::net::IpAddr, _: &[std::net::IpAddr]) -> bool {
        false
    }
    fn skipped(&mut self, _: poolwatch::model::DnsSkim) {
        self.skips += 1;
    }
}

/// One query for `qname` and its response (an A record for `addr`), read by the fast path with
/// every name `listed` or not: what was asked, the observations and the capture counters.
fn one_transaction(
    qname: &str,
    addr: &str,
    listed: bool,
) -> (Asked, Vec<poolwatch::model::Observation>, CaptureStats) {
    use super::support::capture::*;
    let (c, r) = (v4("10.9.0.2"), v4("10.9.0.53"));
    let mut p = Pcap::new(LINKTYPE_ETHERNET);
    p.push(1_000, &udp_frame(c, 40_001, r, 53, &query(7, qname, 1)));
    let resp = response(7, qname, 1, 0, &[a(qname, 300, addr)], &[]);
    p.push(1_500, &udp_frame(r, 53, c, 40_001, &resp));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.pcap");
    std::fs::write(&path, &p.bytes).unwrap();
    let mut reader = capture::open_file(&path, &CaptureConfig::default()).unwrap();
    let mut asked = Asked {
        listed,
        names: Vec::new(),
        skips: 0,
    };
    let mut seen = Vec::new();
    while let Some(o) = reader.next_fast(&mut asked) {
        seen.push(o);
    }
    (asked, seen, reader.stats())
}

/// Issue #16 (second pass): an unlisted response to a query the fast path read is not
/// matched against the list again — one `name_listed` question per transaction (the
/// query's), and the transaction is skipped. Fails if the response asks again.
#[test]
fn a_response_reuses_its_querys_list_answer() {
    let name = "www.example.org";
    let (asked, _, stats) = one_transaction(name, "198.51.100.7", false);
    assert_eq!(asked.names, vec![name.to_string()], "one list question");
    assert_eq!(asked.skips, 1, "the transaction was skipped");
    assert_eq!(stats.dns_messages, 2);
}

/// Issue #11: a response to a query the fast path read as *listed* is not matched against the
/// list again either: one `name_listed` question per transaction (a pool-lookup flood asked
/// twice), and the response is decoded into its observation, answers and all. Fails if the
/// response asks again.
#[test]
fn a_listed_response_reuses_its_querys_list_answer() {
    use poolwatch::model::Observation;
    let name = "x1.pool.supportxmr.com";
    let (asked, seen, _) = one_transaction(name, "203.0.113.9", true);
    assert_eq!(asked.names, vec![name.to_string()], "one list question");
    assert_eq!(asked.skips, 0, "nothing skipped");
    let [Observation::Dns(d)] = seen.as_slice() else {
        panic!("one DNS observation: {seen:?}");
    };
    assert_eq!((d.qname.as_str(), d.query_seen), (name, true));
    assert_eq!(d.answers.len(), 1);
    assert_eq!(d.answers[0].data, "203.0.113.9");
}
