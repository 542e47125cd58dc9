//! Matcher benchmark: names/s of the production path (the tail gate and the hash-set
//! label-suffix walk, `Blocklists::match_name`) against the reference automaton (anchored
//! Aho-Corasick over reversed names, the production path before issue #16's fourth pass), in
//! the same run; compile time and heap for 100k and 1M entries.
//!
//! Workload: `python3 /work/shared/bench/gen/dnsgen.py --preset small --blocklist 100000 --out
//! /tmp/bench-small` (override with `POOLWATCH_BENCH_DIR`): its `blocklist.txt` and the query
//! names of its `bind-query.log`. Without it, a deterministic synthetic workload is used.
//!
//! Run: `cargo bench --bench matcher`.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poolwatch::matcher::{Automaton, Blocklists, ListSource};
use poolwatch::model::Category;

/// Counts live heap bytes and the peak, to report what a compiled set costs.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
            PEAK.fetch_max(now.max(0) as usize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
}

#[global_allocator]
static A: Counting = Counting;

fn bench_dir() -> PathBuf {
    std::env::var_os("POOLWATCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/bench-small"))
}

/// Deterministic pseudo-random generator (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn word(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'a' + (self.next() % 26) as u8))
            .collect()
    }
}

const TLDS: [&str; 8] = ["com", "net", "org", "io", "de", "co.uk", "info", "xyz"];

fn synthetic_list(n: usize, seed: u64) -> String {
    let mut r = Lcg(seed);
    let mut s = String::with_capacity(n * 20);
    for i in 0..n {
        let len = 5 + (r.next() % 8) as usize;
        let w = r.word(len);
        let tld = TLDS[(r.next() % 8) as usize];
        if i % 5 == 0 {
            s.push_str(&format!("pool.{w}{i}.{tld}\n"));
        } else {
            s.push_str(&format!("{w}{i}.{tld}\n"));
        }
    }
    s
}

fn workload() -> (String, Vec<String>, &'static str) {
    let dir = bench_dir();
    let list = std::fs::read_to_string(dir.join("blocklist.txt"));
    let log = std::fs::read_to_string(dir.join("bind-query.log"));
    if let (Ok(list), Ok(log)) = (list, log) {
        let names: Vec<String> = log
            .lines()
            .filter_map(|l| l.split_once("query: ").map(|(_, r)| r))
            .filter_map(|r| r.split(' ').next())
            .map(str::to_string)
            .collect();
        if !names.is_empty() {
            return (
                list,
                names,
                "dnsgen small (bind-query.log names, blocklist.txt)",
            );
        }
    }
    let list = synthetic_list(100_000, 7);
    let mut r = Lcg(11);
    let entries: Vec<&str> = list.lines().collect();
    let names = (0..30_000)
        .map(|i| {
            if i % 500 == 0 {
                format!("xmr.{}", entries[(r.next() as usize) % entries.len()])
            } else {
                format!("www.{}.{}", r.word(8), TLDS[(r.next() % 8) as usize])
            }
        })
        .collect();
    (list, names, "synthetic (dnsgen workload not found)")
}

fn build(text: &str) -> Blocklists {
    Blocklists::build(vec![ListSource::memory(
        "bench",
        Category::Pool,
        None,
        text,
    )])
    .expect("bench list compiles")
    .0
}

/// Compile time and heap of the compiled set, printed once (too slow for criterion's loop at 1M).
fn report_compile(label: &str, text: &str) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before.max(0) as usize, Ordering::Relaxed);
    let t = Instant::now();
    let b = build(text);
    let secs = t.elapsed().as_secs_f64();
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) as isize - before;
    println!(
        "compile {label}: {} entries in {:.3} s (name set {:.3} s); heap retained {:.1} MiB, peak during build {:.1} MiB, name set {:.1} MiB",
        b.len(),
        secs,
        b.stats().automaton_ms / 1e3,
        live as f64 / 1048576.0,
        peak as f64 / 1048576.0,
        b.stats().automaton_bytes as f64 / 1048576.0
    );
    let t = Instant::now();
    let ac = Automaton::new(b.name_entries().iter().map(|h| h.entry.as_str())).unwrap();
    println!(
        "  reference automaton over the same entries: built in {:.3} s",
        t.elapsed().as_secs_f64()
    );
    drop(ac);
}

fn benches(c: &mut Criterion) {
    let (list, names, what) = workload();
    println!("workload: {what}: {} names", names.len());
    report_compile("100k", &list);
    let big = synthetic_list(1_000_000, 3);
    report_compile("1M (synthetic)", &big);
    drop(big);

    let b = build(&list);
    let ac = Automaton::new(b.name_entries().iter().map(|h| h.entry.as_str())).unwrap();
    // Cross-check before timing: both paths must agree on every name.
    let mut matched = 0usize;
    for n in &names {
        let walk = b.explain_name(n).map(|h| h.entry.as_str());
        let reference = ac.find(n).map(|i| b.name_entries()[i].entry.as_str());
        assert_eq!(walk, reference, "paths disagree on {n}");
        matched += usize::from(walk.is_some());
    }
    println!(
        "{matched} of {} names match (both paths agree)",
        names.len()
    );

    let mut g = c.benchmark_group("match_name");
    g.throughput(Throughput::Elements(names.len() as u64));
    g.bench_function("tail_gate_and_suffix_walk", |bch| {
        bch.iter(|| {
            let mut n = 0usize;
            for name in &names {
                n += usize::from(b.match_name(black_box(name)).is_some());
            }
            n
        })
    });
    g.bench_function("aho_corasick_reversed_anchored", |bch| {
        bch.iter(|| {
            let mut n = 0usize;
            for name in &names {
                n += usize::from(ac.find(black_box(name)).is_some());
            }
            n
        })
    });
    g.finish();

    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("100k", |bch| bch.iter(|| build(black_box(&list))));
    g.finish();
}

criterion_group!(matcher, benches);
criterion_main!(matcher);
