//! Follower overhead: lines delivered per second by `Follower` (read, split, hand to a parser that
//! only counts) against the baseline of reading the same file and counting `\n` with memchr.
//! 200k BIND-like lines (~150 bytes) in a temp file (page cache warm).
//!
//! `cargo bench --bench follow`

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poolwatch::ingest::follow::{FollowConfig, Follower, ParserFactory};
use poolwatch::ingest::LogParser;
use poolwatch::model::Observation;

const LINES: usize = 200_000;

struct Count;
impl LogParser for Count {
    fn parse_line(&mut self, line: &[u8], _out: &mut Vec<Observation>) {
        std::hint::black_box(line);
    }
    fn flush(&mut self, _out: &mut Vec<Observation>) {}
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("query.log");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        for i in 0..LINES {
            writeln!(
                f,
                "26-Nov-2026 20:27:18.781 queries: info: client @0x7f3bc6101098 10.0.{}.{}#59593 (host{i}.example.com): query: host{i}.example.com IN A +E(0)K (127.53.1.2)",
                i % 250,
                i % 200
            )
            .expect("write");
        }
    }
    let mut g = c.benchmark_group("follow");
    g.throughput(Throughput::Elements(LINES as u64));
    g.sample_size(20);
    g.bench_function("baseline_read_memchr_count", |b| {
        b.iter(|| {
            let mut f = std::fs::File::open(&path).expect("open");
            let mut buf = vec![0u8; 64 * 1024];
            let mut n = 0usize;
            loop {
                let k = f.read(&mut buf).expect("read");
                if k == 0 {
                    break;
                }
                n += memchr::memchr_iter(b'\n', &buf[..k]).count();
            }
            n
        })
    });
    g.bench_function("follower_deliver_lines", |b| {
        b.iter(|| {
            let factory: ParserFactory =
                Box::new(|_: &Path, _: &[u8]| Some(Box::new(Count) as Box<dyn LogParser>));
            let mut f = Follower::new(
                &[path.display().to_string()],
                FollowConfig::default(),
                factory,
                None,
            )
            .expect("follower");
            let stop = AtomicBool::new(false);
            let mut sink = |_o: Observation| true;
            while f.stats().lines < LINES as u64 {
                f.poll_once(&mut sink, &stop);
            }
            f.stats().lines
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
