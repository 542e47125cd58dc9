//! Correlation benchmarks.
//!
//! * `engine/*` — events/s through `correlate::Engine` alone on a realistic mix (0.1% pool
//!   lookups, each followed by a Stratum session; the rest benign DNS and flows).
//! * `pipeline/null` vs `pipeline/sled` — the same stream through `correlate::Pipeline` with no
//!   store and with a real (temporary) sled store: goal S1 says sled may cost ≤ 5%.
//! * Flood (not timed by criterion): `FLOOD_EVENTS=10000000 cargo bench --bench correlate`
//!   feeds random pool-looking subdomains from random clients, random answer IPs and SYNs to bound
//!   IPs, and prints peak RSS and table sizes every million events; it fails if peak RSS exceeds
//!   `FLOOD_RSS_CAP_MIB` (default [`FLOOD_RSS_CAP_MIB`], documented in docs/arch/correlate.md).
//! * CPU-time comparison (steadier than wall time here): `CPU_RUNS=7 cargo bench --bench correlate`.

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use poolwatch::correlate::{Engine, EngineConfig, Pipeline};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::*;
use poolwatch::store::Store;

/// Peak RSS allowed for the 10M-event engine flood (MiB).
const FLOOD_RSS_CAP_MIB: u64 = 512;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn v4(x: u64, net: [u8; 2]) -> IpAddr {
    IpAddr::from([net[0], net[1], (x >> 8) as u8, x as u8])
}

fn dns(ts: Timestamp, client: IpAddr, qname: String, answer: Option<IpAddr>) -> Observation {
    Observation::Dns(DnsObservation {
        ts,
        client,
        client_port: Some(33333),
        server: Some(IpAddr::from([10, 0, 0, 53])),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(7),
        answers: answer
            .map(|ip| {
                vec![DnsAnswer {
                    name: qname.clone(),
                    rtype: RrType::A,
                    ttl: Some(300),
                    data: ip.to_string(),
                }]
            })
            .unwrap_or_default(),
        qname,
        qtype: RrType::A,
        rcode: Some(Rcode::NOERROR),
        answers_known: true,
        query_seen: true,
        rtt_us: Some(900),
        truncated: false,
        salvaged: None,
        source: Source::pcap("bench.pcap"),
    })
}

fn flow(
    ts: Timestamp,
    src: IpAddr,
    dst: IpAddr,
    port: u16,
    state: FlowState,
    stratum: bool,
) -> Observation {
    Observation::Flow(FlowObservation {
        ts,
        last_ts: ts.plus_secs(1),
        src,
        src_port: 40000,
        dst,
        dst_port: port,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state,
        report: FlowReport::Final,
        bytes_out: 500,
        bytes_in: 4000,
        packets_out: 5,
        packets_in: 5,
        payload_out: Vec::new(),
        payload_in: Vec::new(),
        app: AppInfo {
            stratum_method: stratum.then(|| "login".to_string()),
            ..Default::default()
        },
        source: Source::pcap("bench.pcap"),
    })
}

/// A realistic stream: 2,000 clients, 5,000 benign names, 0.1% pool lookups (the share the bench
/// README's generator uses) each followed by a Stratum session, a third of benign answers
/// followed by a flow.
fn workload(n: usize) -> Vec<Observation> {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    let pools = [
        "pool.supportxmr.com",
        "gulf.moneroocean.stream",
        "xmr-eu1.nanopool.org",
    ];
    let mut out = Vec::with_capacity(n);
    let mut t = Timestamp::from_secs(1_795_724_800);
    while out.len() < n {
        t = Timestamp(t.0 + 200);
        let x = r.next();
        let client = v4(x % 2000, [10, 1]);
        if x % 1000 == 0 {
            let ip = v4(x >> 20, [198, 51]);
            out.push(dns(
                t,
                client,
                pools[(x >> 8) as usize % 3].to_string(),
                Some(ip),
            ));
            out.push(flow(t, client, ip, 3333, FlowState::Closed, true));
        } else {
            let name = format!("host{}.example{}.com", (x >> 8) % 50, (x >> 16) % 100);
            let ip = v4(x >> 24, [203, 0]);
            out.push(dns(t, client, name, Some(ip)));
            if x % 3 == 0 {
                out.push(flow(t, client, ip, 443, FlowState::Closed, false));
            }
        }
    }
    out.truncate(n);
    out
}

fn lists() -> matcher::SharedBlocklists {
    matcher::shared(Blocklists::builtin().expect("builtin lists"))
}

fn run_engine(work: Vec<Observation>) {
    let mut e = Engine::new(EngineConfig::default(), lists());
    for o in &work {
        black_box(e.observe(o));
    }
    black_box(e.drain());
}

fn run_pipeline(work: Vec<Observation>, store: Option<Store>) {
    let e = Engine::new(EngineConfig::default(), lists());
    let mut p = Pipeline::new(e, store).expect("pipeline");
    for o in work {
        p.push(o).expect("push");
    }
    black_box(p.finish().expect("finish"));
}

fn benches(c: &mut Criterion) {
    let work = workload(100_000);
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(work.len() as u64));
    g.bench_function(BenchmarkId::new("engine", "mix100k"), |b| {
        b.iter_batched(|| work.clone(), run_engine, BatchSize::LargeInput)
    });
    g.bench_function(BenchmarkId::new("pipeline", "null"), |b| {
        b.iter_batched(
            || work.clone(),
            |w| run_pipeline(w, None),
            BatchSize::LargeInput,
        )
    });
    g.bench_function(BenchmarkId::new("pipeline", "sled"), |b| {
        b.iter_batched(
            || (work.clone(), Store::open_temporary().expect("store")),
            |(w, s)| run_pipeline(w, Some(s)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// User + system CPU seconds of the whole process (all threads: sled's flusher counts too).
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// `CPU_RUNS=N`: runs engine, pipeline+null and pipeline+sled N times, interleaved, and prints
/// median CPU seconds and events per CPU-second (CPU time is steadier than wall time on the
/// shared machine).
fn cpu_compare(runs: usize) {
    let events = std::env::var("CPU_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let work = workload(events);
    let n = work.len() as f64;
    let mut t: [Vec<f64>; 4] = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, slot) in t.iter_mut().enumerate() {
            let w = work.clone();
            // Opening the database is start-up cost, not per-event cost.
            let store = (i >= 2).then(|| Store::open_temporary().expect("store"));
            let c0 = cpu_secs();
            match i {
                0 => run_engine(w),
                1 => run_pipeline(w, None),
                // An open but unused database: separates "sled is in the process" from "sled
                // does work".
                3 => run_pipeline(w, None),
                _ => run_pipeline(w, store.clone()),
            }
            drop(store);
            slot.push(cpu_secs() - c0);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let [mut e, mut nl, mut sl, mut idle] = t;
    let (e, nl, sl, idle) = (med(&mut e), med(&mut nl), med(&mut sl), med(&mut idle));
    println!("events per run: {n}; median CPU s over {runs} runs");
    println!("engine         {e:.4} s  {:>10.0} events/CPU-s", n / e);
    println!("pipeline null  {nl:.4} s  {:>10.0} events/CPU-s", n / nl);
    println!("pipeline sled  {sl:.4} s  {:>10.0} events/CPU-s", n / sl);
    println!(
        "null + idle db {idle:.4} s  {:>10.0} events/CPU-s",
        n / idle
    );
    println!("sled / null CPU ratio: {:.3} (goal S1: <= 1.05)", sl / nl);
    println!("sled / (null + idle db) CPU ratio: {:.3}", sl / idle);
}

fn peak_rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

/// Random pool-looking subdomains from random clients with random answers, and SYNs to bound
/// IPs. Every event is pool-related, so every table is under pressure.
fn flood(events: u64, with_store: bool) {
    let cap: u64 = std::env::var("FLOOD_RSS_CAP_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLOOD_RSS_CAP_MIB);
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let mut engine = Engine::new(EngineConfig::default(), lists());
    let mut pipeline = if with_store {
        let store = Store::open_temporary().expect("store");
        Some(Pipeline::new(Engine::new(EngineConfig::default(), lists()), Some(store)).expect("p"))
    } else {
        None
    };
    let suffixes = [
        "supportxmr.com",
        "nanopool.org",
        "moneroocean.stream",
        "2miners.com",
    ];
    let mut t = Timestamp::from_secs(1_795_724_800);
    let mut last_bound: Vec<(IpAddr, IpAddr)> = Vec::with_capacity(1024);
    let start = std::time::Instant::now();
    let mut reported = 0u64;
    for i in 0..events {
        t = Timestamp(t.0 + 100);
        let x = r.next();
        let client = IpAddr::from(((x >> 32) as u32 | 0x0a00_0000).to_be_bytes());
        let o = if i % 3 == 2 && !last_bound.is_empty() {
            let (c, ip) = last_bound[(x as usize) % last_bound.len()];
            flow(t, c, ip, 3333, FlowState::Attempted, false)
        } else {
            let ip = IpAddr::from(((x & 0xffff_ffff) as u32).to_be_bytes());
            let name = format!("{:016x}.{}", r.next(), suffixes[(x >> 5) as usize % 4]);
            if last_bound.len() < 1024 {
                last_bound.push((client, ip));
            } else {
                last_bound[(x >> 12) as usize % 1024] = (client, ip);
            }
            dns(t, client, name, Some(ip))
        };
        match &mut pipeline {
            Some(p) => p.push(o).expect("push"),
            None => reported += engine.observe(&o).detections.len() as u64,
        }
        if (i + 1) % 1_000_000 == 0 {
            let sizes = match &pipeline {
                Some(p) => p.engine().table_sizes(),
                None => engine.table_sizes(),
            };
            println!(
                "flood: {} events, {:.1} s, peak RSS {} MiB, updates {reported}, tables {:?}",
                i + 1,
                start.elapsed().as_secs_f64(),
                peak_rss_mib(),
                sizes
            );
        }
    }
    let peak = peak_rss_mib();
    println!("flood done: {events} events, peak RSS {peak} MiB (cap {cap} MiB)");
    assert!(peak <= cap, "peak RSS {peak} MiB over the {cap} MiB cap");
}

fn main() {
    if let Some(n) = std::env::var("FLOOD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        flood(n, std::env::var("FLOOD_STORE").is_ok());
        return;
    }
    if let Some(n) = std::env::var("CPU_RUNS").ok().and_then(|v| v.parse().ok()) {
        cpu_compare(n);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
