//! The retro-hunt history benchmark of issue #18: ingests simulated days of DNS lookups and
//! flows for many clients through the correlation engine, once without and once with the
//! history recorder (same process, same generated observations), then measures the history's
//! size (counted bytes and sled's real size on disk) and the latency of hunts and retro-hunts
//! for entries a list did not have.
//!
//! `cargo build --release --example hunt_bench`, then (under the bench lock):
//! `target/release/examples/hunt_bench --days 30 --clients 10000 --dir /tmp/hb`
//! (`benches/hunt_job.sh` wraps it with `uptime` and `du`).
//!
//! The workload is deterministic (xorshift, fixed seed): per client and day `--lookups` A
//! lookups, 80% over a shared universe of `--names` names with a power-law popularity, 20%
//! over the client's own names; each answered with one address of the name; 40% followed by a
//! TLS flow to that address (SNI = the name), 10% by a plain TCP flow. `--miners` clients also
//! look up pool names (`pool.newpoolN.example`) a few times a day and keep a Stratum connection
//! to the answer on port 3333; those pools are not on the list, so the hunts for them are the
//! issue's "new entry".

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::hunt::{retro_hunt, HistoryConfig, Hunter, Recorder, RetroEngine};
use poolwatch::matcher::{Blocklists, ListSource};
use poolwatch::model::{
    AppInfo, Category, Direction, DnsAnswer, DnsObservation, FlowObservation, FlowReport,
    FlowState, ListHit, Observation, Proto, Rcode, RrType, Source, Timestamp, Transport,
};
use poolwatch::ports::{HistoryKv, HuntRequest};
use poolwatch::store::Store;

struct Args {
    days: u32,
    clients: u32,
    lookups: u32,
    names: u32,
    miners: u32,
    hunts: usize,
    dir: PathBuf,
    max_bytes: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        days: 30,
        clients: 10_000,
        lookups: 60,
        names: 100_000,
        miners: 20,
        hunts: 200,
        dir: PathBuf::from("/tmp/hunt_bench"),
        max_bytes: poolwatch::hunt::DEFAULT_MAX_BYTES,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i + 1 < v.len() {
        let val = &v[i + 1];
        match v[i].as_str() {
            "--days" => a.days = val.parse().unwrap(),
            "--clients" => a.clients = val.parse().unwrap(),
            "--lookups" => a.lookups = val.parse().unwrap(),
            "--names" => a.names = val.parse().unwrap(),
            "--miners" => a.miners = val.parse().unwrap(),
            "--hunts" => a.hunts = val.parse().unwrap(),
            "--dir" => a.dir = PathBuf::from(val),
            "--max-bytes" => a.max_bytes = val.parse().unwrap(),
            other => panic!("unknown flag {other}"),
        }
        i += 2;
    }
    a
}

/// xorshift64*: deterministic and cheap.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn mix(a: u64, b: u64) -> u64 {
    let mut r =
        Rng(a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_add(0x632B_E59B_D9B4_E019) | 1);
    r.next();
    r.next()
}

const TLDS: [&str; 6] = ["com", "net", "org", "de", "io", "co.uk"];
/// 2025-01-06 00:00 UTC.
const T0_US: i64 = 1_736_121_600_000_000;
const DAY_US: i64 = 86_400_000_000;
const RESOLVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);

fn name_of(id: u64) -> String {
    let zone = id / 4;
    let host = ["www", "api", "cdn", "img"][(id % 4) as usize];
    format!(
        "{host}.s{zone:x}.{}",
        TLDS[(mix(zone, 7) % TLDS.len() as u64) as usize]
    )
}

fn addr_of(id: u64) -> IpAddr {
    // Names of a zone share addresses often (CDN-like): by zone, 1 in 4 distinct.
    let h = mix(id / 4, 11) as u32;
    IpAddr::V4(Ipv4Addr::new(
        100 + (h % 27) as u8,
        (h >> 8) as u8,
        (h >> 16) as u8,
        (h >> 24) as u8 | 1,
    ))
}

fn client_of(c: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        1 + (c >> 16) as u8,
        (c >> 8) as u8,
        c as u8,
    ))
}

fn pool_name(k: u32) -> String {
    format!("pool.newpool{k}.example")
}

fn pool_addr(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10 + k as u8))
}

fn dns(ts: i64, client: IpAddr, name: String, ip: IpAddr, src: &Source) -> Observation {
    Observation::Dns(DnsObservation {
        ts: Timestamp(ts),
        client,
        client_port: Some(40_000 + (ts % 20_000) as u16),
        server: Some(IpAddr::V4(RESOLVER)),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some((ts & 0xffff) as u16),
        answers: vec![DnsAnswer {
            name: name.clone(),
            rtype: RrType::A,
            ttl: Some(300),
            data: ip.to_string(),
        }],
        qname: name,
        qtype: RrType::A,
        rcode: Some(Rcode(0)),
        answers_known: true,
        query_seen: true,
        rtt_us: Some(900),
        truncated: false,
        salvaged: None,
        source: src.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn flow(
    ts: i64,
    client: IpAddr,
    dst: IpAddr,
    port: u16,
    sni: Option<String>,
    stratum: bool,
    src: &Source,
) -> Observation {
    Observation::Flow(FlowObservation {
        ts: Timestamp(ts + 20_000),
        last_ts: Timestamp(ts + 20_000 + 30_000_000),
        src: client,
        src_port: 50_000 + (ts % 10_000) as u16,
        dst,
        dst_port: port,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Closed,
        report: FlowReport::Final,
        bytes_out: 900,
        bytes_in: 4_000,
        packets_out: 8,
        packets_in: 9,
        payload_out: Vec::new(),
        payload_in: Vec::new(),
        app: AppInfo {
            stratum_method: stratum.then(|| "login".to_string()),
            stratum_agent: stratum.then(|| "XMRig/6.21.0".to_string()),
            stratum_login: None,
            tls: sni.is_some(),
            sni,
            http_host: None,
        },
        source: src.clone(),
    })
}

/// One simulated day, in time order, handed to `f` one observation at a time.
fn day_observations(a: &Args, day: u32, mut f: impl FnMut(&Observation)) -> u64 {
    let src = Source::new("bench");
    let mut rng = Rng(0x5EED_0000 + u64::from(day));
    let day0 = T0_US + i64::from(day) * DAY_US;
    let step_us = DAY_US / i64::from(a.lookups.max(1));
    let mut n = 0u64;
    for step in 0..a.lookups {
        for c in 0..a.clients {
            let ts = day0 + i64::from(step) * step_us + i64::from(c % 1000) * 1_000;
            let client = client_of(c);
            let id = if rng.below(5) != 0 {
                // Shared universe, power-law popularity (like ../shared/bench/gen/dnsgen.py).
                (f64::from(a.names) * rng.unit().powf(3.0)) as u64
            } else {
                // The client's own names (a few hundred per client).
                mix(u64::from(c), rng.below(300)) % u64::from(a.names)
            };
            let name = name_of(id);
            let ip = addr_of(id);
            f(&dns(ts, client, name.clone(), ip, &src));
            n += 1;
            match rng.below(10) {
                0..=3 => {
                    f(&flow(ts, client, ip, 443, Some(name), false, &src));
                    n += 1;
                }
                4 => {
                    f(&flow(ts, client, ip, 80, None, false, &src));
                    n += 1;
                }
                _ => {}
            }
        }
        // Miners: a lookup of their pool every 24th step, a Stratum connection after it.
        if step % 24 == 0 {
            for m in 0..a.miners {
                let ts = day0 + i64::from(step) * step_us + 500_000 + i64::from(m) * 1_000;
                let client = client_of(a.clients + m);
                let k = m % 5;
                f(&dns(ts, client, pool_name(k), pool_addr(k), &src));
                f(&flow(ts, client, pool_addr(k), 3333, None, true, &src));
                n += 2;
            }
        }
    }
    n
}

fn lists(extra: &[String]) -> Arc<Blocklists> {
    let mut text = String::from("supportxmr.com\nmoneroocean.stream\nnanopool.org\n");
    for e in extra {
        text.push_str(e);
        text.push('\n');
    }
    let (b, _) = Blocklists::build(vec![ListSource::memory(
        "bench",
        Category::Pool,
        None,
        &text,
    )])
    .unwrap();
    Arc::new(b)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            n += if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

fn main() {
    let a = parse_args();
    let _ = std::fs::remove_dir_all(&a.dir);
    let shared = Arc::new(arc_swap::ArcSwap::new(lists(&[])));
    println!(
        "workload: days {} clients {} lookups/client/day {} names {} miners {}",
        a.days, a.clients, a.lookups, a.names, a.miners
    );

    // 1. Generation alone, then the engine alone (the ingest without history), day 0..days.
    let t = Instant::now();
    let mut obs = 0u64;
    for day in 0..a.days {
        obs += day_observations(&a, day, |o| {
            std::hint::black_box(o);
        });
    }
    let gen_s = t.elapsed().as_secs_f64();
    println!(
        "generate: {obs} observations in {gen_s:.2} s ({:.0}/day)",
        obs as f64 / f64::from(a.days)
    );

    let t = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), shared.clone());
    let mut dets = 0usize;
    for day in 0..a.days {
        day_observations(&a, day, |o| dets += engine.observe(o).detections.len());
    }
    dets += engine.drain().detections.len();
    drop(engine);
    let base_s = t.elapsed().as_secs_f64();
    println!("ingest without history: {base_s:.2} s ({dets} detection updates)");

    // 2. The same with the recorder in front of the engine (as the service's pipeline does).
    let store = Store::open(&a.dir).unwrap();
    let kv: Arc<dyn HistoryKv> = Arc::new(store.clone());
    let rec = Recorder::new(
        kv.clone(),
        HistoryConfig {
            retention_days: 30,
            max_bytes: a.max_bytes,
        },
    );
    let t = Instant::now();
    let mut engine = Engine::new(EngineConfig::default(), shared.clone());
    let mut rec_s = 0.0f64;
    for day in 0..a.days {
        day_observations(&a, day, |o| {
            let r = Instant::now();
            rec.record(o);
            rec_s += r.elapsed().as_secs_f64();
            std::hint::black_box(engine.observe(o).detections.len());
        });
    }
    let r = Instant::now();
    rec.flush().unwrap();
    rec_s += r.elapsed().as_secs_f64();
    engine.drain();
    drop(engine);
    let hist_s = t.elapsed().as_secs_f64();
    store.flush().unwrap();
    println!(
        "ingest with history: {hist_s:.2} s (recorder {rec_s:.2} s); ratio {:.2}x, over the engine's own work (generation subtracted) {:.2}x",
        hist_s / base_s,
        (hist_s - gen_s) / (base_s - gen_s).max(1e-9),
    );
    let days = rec.days().unwrap();
    let counted: u64 = days.iter().map(|d| d.1).sum();
    let n = days.len().max(1) as f64;
    println!(
        "history: {} days, counted {:.1} MB ({:.2} MB/day)",
        days.len(),
        counted as f64 / 1e6,
        counted as f64 / 1e6 / n
    );
    let metrics = poolwatch::metrics::render();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("poolwatch_history_") && !l.starts_with('#'))
    {
        println!("  {l}");
    }

    // 3. Hunts: the pools the list lacks, names across the popularity range, addresses.
    let mut targets: Vec<String> = (0..5).map(|k| format!("newpool{k}.example")).collect();
    let mut rng = Rng(0xC0FFEE);
    while targets.len() < a.hunts.max(10) * 3 / 4 {
        let id = (f64::from(a.names) * rng.unit().powf(3.0)) as u64;
        targets.push(name_of(id).split_once('.').unwrap().1.to_string());
    }
    while targets.len() < a.hunts.max(10) {
        let id = rng.below(u64::from(a.names));
        targets.push(addr_of(id).to_string());
    }
    let hunter = Hunter::new(kv.clone(), Some(rec.clone()));
    let mut lat = Vec::new();
    let mut found_rows = 0usize;
    let mut pool_clients = 0usize;
    for tgt in &targets {
        let t = Instant::now();
        let rep = hunter
            .hunt_target(&HuntRequest {
                target: tgt.clone(),
                since: None,
                limit: 10_000,
            })
            .unwrap();
        lat.push(t.elapsed());
        found_rows += rep.lookups.len() + rep.flows.len();
        if tgt.starts_with("newpool") {
            pool_clients += rep.clients.len();
        }
    }
    lat.sort();
    println!(
        "hunt (GET /api/v1/hunt path, {} targets, {found_rows} rows found, pool clients {pool_clients}): p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        lat.len(),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );

    // 4. Retro-hunts of new entries (search + replay through the engine + merge): the pools,
    // and names across the popularity range.
    let mut rlat = Vec::new();
    let mut created = 0u64;
    for tgt in targets
        .iter()
        .filter(|t| t.parse::<IpAddr>().is_err())
        .take(60)
    {
        let l = lists(std::slice::from_ref(tgt));
        let added: Vec<ListHit> = l
            .name_entries()
            .iter()
            .filter(|h| h.entry == *tgt)
            .cloned()
            .collect();
        let t = Instant::now();
        let cfg = EngineConfig::default();
        let live = RetroEngine {
            config: &cfg,
            suppressions: Vec::new(),
        };
        let r = retro_hunt(kv.as_ref(), &store, l, &added, &live).unwrap();
        rlat.push(t.elapsed());
        created += r.merge.created;
    }
    rlat.sort();
    println!(
        "retro-hunt of a new entry ({} entries, {created} detections created): p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
        rlat.len(),
        pct(&rlat, 0.5),
        pct(&rlat, 0.99),
        pct(&rlat, 1.0)
    );

    drop(hunter);
    drop(rec);
    store.flush().unwrap();
    let sled_size = kv.disk_bytes().unwrap_or(0);
    drop(kv);
    drop(store);
    let du = dir_bytes(&a.dir);
    println!(
        "on disk: sled size_on_disk {:.1} MB, directory {:.1} MB ({:.2} MB/day); counted/disk {:.2}",
        sled_size as f64 / 1e6,
        du as f64 / 1e6,
        du as f64 / 1e6 / n,
        du as f64 / counted.max(1) as f64
    );
}
