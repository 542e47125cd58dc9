//! Decode throughput of the capture stage (link → IP → UDP/TCP → DNS transactions + flows), on
//! frames already in memory, so libpcap's file reading is not measured (see
//! `benches/capture_job.sh` for the whole job against tcpdump/tshark).
//!
//! Input: `$POOLWATCH_BENCH_PCAP` (default `/tmp/bench-small/traffic.pcap`, made by
//! `python3 ../shared/bench/gen/dnsgen.py --preset small --out /tmp/bench-small`); when absent,
//! the project's fixtures under `tests/data/pcap/` repeated.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poolwatch::capture::{CaptureConfig, Decoder};
use poolwatch::model::Source;

/// Frames of a classic little-endian pcap: (timestamp µs, linktype, bytes).
fn load(path: &Path) -> Option<Vec<(i64, i32, Vec<u8>)>> {
    let b = std::fs::read(path).ok()?;
    if b.get(..4)? != [0xd4, 0xc3, 0xb2, 0xa1] {
        return None;
    }
    let lt = i32::from_le_bytes(b.get(20..24)?.try_into().ok()?);
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= b.len() {
        let w = |o: usize| u32::from_le_bytes(b[off + o..off + o + 4].try_into().unwrap());
        let ts = i64::from(w(0)) * 1_000_000 + i64::from(w(4));
        let len = w(8) as usize;
        let frame = b.get(off + 16..off + 16 + len)?.to_vec();
        out.push((ts, lt, frame));
        off += 16 + len;
    }
    Some(out)
}

fn frames() -> Vec<(i64, i32, Vec<u8>)> {
    let p = std::env::var_os("POOLWATCH_BENCH_PCAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/bench-small/traffic.pcap"));
    if let Some(f) = load(&p) {
        eprintln!("bench input: {} ({} frames)", p.display(), f.len());
        return f;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pcap");
    let mut all = Vec::new();
    for round in 0..200i64 {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            for (ts, lt, f) in load(&e.path()).unwrap_or_default() {
                all.push((ts + round * 60_000_000, lt, f));
            }
        }
    }
    eprintln!("bench input: fixtures x200 ({} frames)", all.len());
    all
}

fn decode(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("capture");
    g.sample_size(10);
    g.throughput(Throughput::Elements(frames.len() as u64));
    for (name, track_flows) in [("decode_dns_flows", true), ("decode_dns_only", false)] {
        let cfg = CaptureConfig {
            track_flows,
            ..CaptureConfig::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut d = Decoder::new(&cfg, Source::new("bench"));
                let mut out = VecDeque::new();
                let mut n = 0usize;
                for (ts, lt, f) in &frames {
                    d.packet(*ts, *lt, f, &mut out);
                    n += out.len();
                    out.clear();
                }
                d.finish(&mut out);
                n + out.len()
            })
        });
    }
    g.finish();

    // One typical response through the DNS parser alone.
    let resp = frames
        .iter()
        .filter_map(|(_, _, f)| f.get(42..).filter(|d| d.len() > 12 && d[2] & 0x80 != 0))
        .find(|d| poolwatch::dns::parse_message(d).is_ok_and(|m| !m.answers.is_empty()))
        .map(|d| d.to_vec());
    if let Some(resp) = resp {
        c.bench_function("dns_parse_message_response", |b| {
            b.iter(|| poolwatch::dns::parse_message(&resp))
        });
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
