//! Log ingestion throughput.
//!
//! Two parts, both on the generator's logs (`python3 /work/shared/bench/gen/dnsgen.py --preset
//! small --out /tmp/bench-ingest`; another directory via `POOLWATCH_BENCH_DIR`):
//!
//! 1. Whole-file job vs `grep -F -f blocklist.txt`, measured in the same run in CPU seconds
//!    (getrusage; median of `POOLWATCH_BENCH_RUNS`, default 5): read + parse every line +
//!    `Blocklists::load(&[blocklist.txt])` + `match_name` on every qname and CNAME target.
//!    Correctness against `truth-queries.csv` (false positives / misses) is printed too.
//! 2. Criterion micro-benchmarks of each line parser on in-memory data (the first 20k lines of
//!    each log, or the project fixtures when the generator output is absent).
//!
//! `cargo bench --bench ingest` (`-- --quick` style criterion options work after `--`).

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use poolwatch::ingest::{self, IngestConfig, LogFormat};
use poolwatch::matcher::Blocklists;
use poolwatch::model::{Observation, Timestamp};

fn bench_dir() -> PathBuf {
    std::env::var_os("POOLWATCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/bench-ingest"))
}

/// (user + system) CPU seconds of this process or of its waited-for children.
fn cpu(who: libc::c_int) -> f64 {
    // SAFETY: getrusage fills the zeroed struct; no other invariants.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn count_lines(p: &Path) -> usize {
    std::fs::read(p)
        .map(|b| memchr::memchr_iter(b'\n', &b).count())
        .unwrap_or(0)
}

/// One pass of the whole job; returns (matched (ts µs, client, qname) set, observations).
fn job(
    file: &Path,
    format: LogFormat,
    blocklist: &Path,
) -> (HashSet<(i64, String, String)>, usize) {
    let lists = Blocklists::load(&[blocklist.to_path_buf()]).expect("blocklist loads");
    let cfg = IngestConfig {
        reference: Timestamp::parse("2025-12-31T00:00:00Z"),
        ..IngestConfig::default()
    };
    let mut hits = HashSet::new();
    let mut n = 0;
    for o in ingest::open_file(file, Some(format), &cfg).expect("log opens") {
        n += 1;
        if let Observation::Dns(d) = o {
            let hit = lists.match_name(&d.qname).is_some()
                || d.cname_targets().any(|t| lists.match_name(t).is_some());
            if hit {
                hits.insert((d.ts.as_micros(), d.client.to_string(), d.qname.clone()));
            }
        }
    }
    (hits, n)
}

fn whole_file() {
    let dir = bench_dir();
    let blocklist = dir.join("blocklist.txt");
    if !blocklist.is_file() {
        println!(
            "skipping whole-file comparison: {} missing (run dnsgen.py --preset small --out {})",
            blocklist.display(),
            dir.display()
        );
        return;
    }
    let runs: usize = std::env::var("POOLWATCH_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    // Truth: every pool/decoy transaction; an empty matched_entry must not match.
    let truth = std::fs::read_to_string(dir.join("truth-queries.csv")).unwrap_or_default();
    let mut must: HashSet<(String, String)> = HashSet::new();
    let mut must_not: HashSet<(String, String)> = HashSet::new();
    for line in truth.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if let (Some(client), Some(q), Some(entry)) = (f.get(1), f.get(3), f.get(6)) {
            let key = (client.to_string(), q.to_ascii_lowercase());
            if entry.is_empty() {
                must_not.insert(key);
            } else {
                must.insert(key);
            }
        }
    }
    println!("\nwhole-file job vs grep -F -f blocklist.txt (CPU s = user+sys, median of {runs})");
    let lang = std::env::var("LANG").unwrap_or_default();
    println!(
        "| log | lines | grep (LC_ALL=C) CPU s | grep lines/CPU-s | grep (LANG={lang}) CPU s | poolwatch CPU s | poolwatch lines/CPU-s | x grep C | x grep LANG | obs | matched | false pos | missed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, format) in [
        ("bind-query.log", LogFormat::Bind),
        ("unbound.log", LogFormat::Unbound),
        ("dnsmasq.log", LogFormat::Dnsmasq),
    ] {
        let file = dir.join(name);
        if !file.is_file() {
            continue;
        }
        let lines = count_lines(&file);
        let mut grep_t = Vec::new();
        let mut grep_env_t = Vec::new();
        let mut ours_t = Vec::new();
        let mut last = (HashSet::new(), 0);
        for _ in 0..runs {
            let before = cpu(libc::RUSAGE_CHILDREN);
            // Output captured through a pipe: with stdout on /dev/null GNU grep stops at the
            // first match.
            let status = Command::new("grep")
                .arg("-F")
                .arg("-f")
                .arg(&blocklist)
                .arg(&file)
                .env("LC_ALL", "C")
                .output();
            if status.is_err() {
                println!("grep not runnable");
                return;
            }
            grep_t.push(cpu(libc::RUSAGE_CHILDREN) - before);
            // The same with the environment's locale (what a user's shell runs).
            let before = cpu(libc::RUSAGE_CHILDREN);
            let _ = Command::new("grep")
                .arg("-F")
                .arg("-f")
                .arg(&blocklist)
                .arg(&file)
                .output();
            grep_env_t.push(cpu(libc::RUSAGE_CHILDREN) - before);
            let before = cpu(libc::RUSAGE_SELF);
            last = job(&file, format, &blocklist);
            ours_t.push(cpu(libc::RUSAGE_SELF) - before);
        }
        let (g, ge, o) = (median(grep_t), median(grep_env_t), median(ours_t));
        let (hits, nobs) = last;
        let pairs: HashSet<(String, String)> = hits
            .iter()
            .map(|(_, c, q)| (c.clone(), q.clone()))
            .collect();
        let fp = pairs.iter().filter(|k| must_not.contains(*k)).count()
            + pairs
                .iter()
                .filter(|k| !must.contains(*k) && !must_not.contains(*k))
                .count();
        let missed = must.iter().filter(|k| !pairs.contains(*k)).count();
        println!(
            "| {name} | {lines} | {g:.3} | {:.0} | {ge:.3} | {o:.3} | {:.0} | {:.2} | {:.2} | {nobs} | {} | {fp} | {missed} |",
            lines as f64 / g,
            lines as f64 / o,
            g / o,
            ge / o,
            pairs.len()
        );
    }
}

fn sample(format: LogFormat) -> Vec<u8> {
    let dir = bench_dir();
    let file = match format {
        LogFormat::Bind => dir.join("bind-query.log"),
        LogFormat::Unbound => dir.join("unbound.log"),
        LogFormat::Dnsmasq => dir.join("dnsmasq.log"),
        _ => PathBuf::new(),
    };
    if let Ok(data) = std::fs::read(&file) {
        let cut = memchr::memchr_iter(b'\n', &data)
            .nth(20_000)
            .map_or(data.len(), |i| i + 1);
        return data.get(..cut).unwrap_or(&data).to_vec();
    }
    // Fall back to the project's fixtures, repeated.
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/logs")
        .join(format!("{}.log", format.name()));
    let one = std::fs::read(fixture).unwrap_or_default();
    one.repeat(200)
}

fn parsers(c: &mut Criterion) {
    let cfg = IngestConfig {
        reference: Timestamp::parse("2026-12-31T00:00:00Z"),
        ..IngestConfig::default()
    };
    let mut g = c.benchmark_group("parse_lines");
    g.measurement_time(Duration::from_secs(3));
    g.sample_size(20);
    for format in [
        LogFormat::Bind,
        LogFormat::Unbound,
        LogFormat::Dnsmasq,
        LogFormat::Pdns,
        LogFormat::CoreDns,
        LogFormat::WindowsDns,
        LogFormat::ZeekDns,
        LogFormat::ZeekConn,
        LogFormat::Eve,
    ] {
        let data = sample(format);
        if data.is_empty() {
            continue;
        }
        let lines = memchr::memchr_iter(b'\n', &data).count().max(1) as u64;
        g.throughput(Throughput::Elements(lines));
        g.bench_with_input(BenchmarkId::from_parameter(format.name()), &data, |b, d| {
            b.iter(|| ingest::parse_bytes(format, d, &cfg).len())
        });
    }
    g.finish();
}

criterion_group!(benches, parsers);

fn main() {
    whole_file();
    if std::env::var_os("POOLWATCH_BENCH_WHOLE_ONLY").is_some() {
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
