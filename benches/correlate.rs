//! Correlation benchmarks.
//!
//! * `engine/*` — events/s through `correlate::Engine` alone on a realistic mix (≈0.5% pool
//!   lookups, each followed by a Stratum session; the rest benign DNS and flows).
//! * `pipeline/null` vs `pipeline/sled` — the same stream through `correlate::Pipeline` with no
//!   store and with a real (temporary) sled store: goal S1 says sled may cost ≤ 5%.
//! * Flood (not timed by criterion): `FLOOD_EVENTS=10000000 cargo bench --bench correlate`
//!   feeds random pool-looking subdomains from random clients, random answer IPs and SYNs to bound
//!   IPs, and prints peak RSS and table sizes every million events; it fails if peak RSS exceeds
//!   `FLOOD_RSS_CAP_MIB` (default [`FLOOD_RSS_CAP_MIB`], documented in docs/arch/correlate.md).

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{BenchmarkId, Criterion, Throughput};
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

/// A realistic stream: 2,000 clients, 5,000 benign names, ≈0.5% pool lookups followed by a
/// Stratum session, a third of benign answers followed by a flow.
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
        if x % 200 == 0 {
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

fn benches(c: &mut Criterion) {
    let work = workload(100_000);
    let mut g = c.benchmark_group("correlate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(work.len() as u64));
    g.bench_function(BenchmarkId::new("engine", "mix100k"), |b| {
        b.iter(|| {
            let mut e = Engine::new(EngineConfig::default(), lists());
            for o in &work {
                black_box(e.observe(o));
            }
            black_box(e.drain());
        })
    });
    g.bench_function(BenchmarkId::new("pipeline", "null"), |b| {
        b.iter(|| {
            let e = Engine::new(EngineConfig::default(), lists());
            let mut p = Pipeline::new(e, None).expect("pipeline");
            for o in &work {
                p.push(o.clone()).expect("push");
            }
            black_box(p.finish().expect("finish"));
        })
    });
    g.bench_function(BenchmarkId::new("pipeline", "sled"), |b| {
        b.iter(|| {
            let store = Store::open_temporary().expect("store");
            let e = Engine::new(EngineConfig::default(), lists());
            let mut p = Pipeline::new(e, Some(store)).expect("pipeline");
            for o in &work {
                p.push(o.clone()).expect("push");
            }
            black_box(p.finish().expect("finish"));
        })
    });
    g.finish();
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
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
}
