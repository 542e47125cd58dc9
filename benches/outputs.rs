//! Output stage benchmark (plain `main`, one run prints one table; all numbers of a table come
//! from the same run).
//!
//! 1. **Outbox cost on the pipeline** (what `scan` and `serve` run): the same observation stream
//!    through `correlate::Pipeline` with a sled store and no sink, with one sink and with three
//!    sinks (policy + outbox writes in the flush), interleaved `RUNS` times; median wall time and
//!    the ratio against no sinks. Two mixes: `realistic` (0.1% pool lookups, each followed by a
//!    Stratum session) and `storm` (5%: an alert storm, every one a new incident).
//! 2. **Delivery throughput per sink**: an outbox filled by the storm mix is drained by one sink
//!    at a time to a receiver on loopback (file with and without fsync, syslog UDP and TCP to a
//!    discarding socket, webhook to a local HTTP server); records per second.
//!
//! Run: `cargo bench --bench outputs` (env `RUNS`, `EVENTS`).

// A test/bench/example fails loudly: unwrap/expect/indexing are allowed here (Cargo.toml [lints]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use poolwatch::correlate::{Engine, EngineConfig, Pipeline};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::*;
use poolwatch::output::{config, Outputs};
use poolwatch::store::Store;

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

fn dns(ts: Timestamp, client: IpAddr, qname: String, answer: IpAddr) -> Observation {
    Observation::Dns(DnsObservation {
        ts,
        client,
        client_port: Some(33333),
        server: Some(IpAddr::from([10, 0, 0, 53])),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(7),
        answers: vec![DnsAnswer {
            name: qname.clone(),
            rtype: RrType::A,
            ttl: Some(300),
            data: answer.to_string(),
        }],
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

fn flow(ts: Timestamp, src: IpAddr, dst: IpAddr, port: u16, stratum: bool) -> Observation {
    Observation::Flow(FlowObservation {
        ts,
        last_ts: ts.plus_secs(1),
        src,
        src_port: 40000,
        dst,
        dst_port: port,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Closed,
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

/// `per_mille` pool lookups (each by a client of its own, then a Stratum flow); the rest benign.
fn workload(n: usize, per_mille: u64) -> Vec<Observation> {
    let mut r = Rng(0x2545_F491_4F6C_DD1D);
    let pools = [
        "pool.supportxmr.com",
        "gulf.moneroocean.stream",
        "xmr-eu1.nanopool.org",
    ];
    let mut out = Vec::with_capacity(n);
    let mut t = Timestamp::from_secs(1_795_724_800);
    let mut miners = 0u64;
    while out.len() < n {
        t = Timestamp(t.0 + 200);
        let x = r.next();
        if x % 1000 < per_mille {
            miners += 1;
            let client = v4(miners, [10, 200]);
            let ip = v4(x >> 20, [198, 51]);
            out.push(dns(t, client, pools[(x >> 8) as usize % 3].to_string(), ip));
            out.push(flow(t, client, ip, 3333, true));
        } else {
            let client = v4(x % 2000, [10, 1]);
            let name = format!("host{}.example{}.com", (x >> 8) % 50, (x >> 16) % 100);
            let ip = v4(x >> 24, [203, 0]);
            out.push(dns(t, client, name, ip));
            if x % 3 == 0 {
                out.push(flow(t, client, ip, 443, false));
            }
        }
    }
    out.truncate(n);
    out
}

fn lists() -> matcher::SharedBlocklists {
    matcher::shared(Blocklists::builtin().expect("builtin lists"))
}

fn sinks(specs: &[String]) -> Vec<config::OutputSettings> {
    let cfgs: Vec<_> = specs
        .iter()
        .map(|s| config::parse_flag(s).expect("flag"))
        .collect();
    config::validate_all(&cfgs).expect("valid outputs")
}

/// Pushes `work` through a pipeline on a fresh temporary store with `specs` sinks (their
/// outboxes written, nothing delivered). Returns (wall seconds, store, outputs).
fn run_pipeline(work: &[Observation], specs: &[String]) -> (f64, Store, Outputs) {
    let store = Store::open_temporary().expect("store");
    let outputs = Outputs::open(&store, &sinks(specs)).expect("outputs");
    let e = Engine::new(EngineConfig::default(), lists());
    let mut p = Pipeline::new(e, Some(store.clone())).expect("pipeline");
    if !outputs.is_empty() {
        p = p.with_sink(Box::new(outputs.writer(store.clone())));
    }
    let work = work.to_vec();
    let t = Instant::now();
    for o in work {
        p.push(o).expect("push");
    }
    p.finish().expect("finish");
    (t.elapsed().as_secs_f64(), store, outputs)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn discard_tcp() -> u16 {
    use tokio::io::AsyncReadExt;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut b = vec![0u8; 1 << 16];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn discard_udp() -> u16 {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = s.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut b = vec![0u8; 1 << 16];
        while s.recv(&mut b).await.is_ok() {}
    });
    port
}

async fn http_ok() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let _ =
                            axum::body::to_bytes(axum::body::Body::new(req.into_body()), 1 << 20)
                                .await;
                        Ok::<_, std::convert::Infallible>(hyper::Response::new("{}".to_string()))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    port
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let events: usize = std::env::var("EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().expect("tempdir");
    let f = |n: &str| dir.path().join(n).display().to_string();
    let one = vec![format!("file:{},fsync=never", f("a.json"))];
    let three = vec![
        format!("file:{},fsync=never", f("b.json")),
        format!("file:{},format=ecs,fsync=never", f("c.json")),
        "syslog:tcp://127.0.0.1:9,format=cef".to_string(),
    ];

    println!(
        "# poolwatch output benchmark: {events} observations, {runs} interleaved runs (median)"
    );
    println!();
    println!("## outbox cost on the pipeline (scan/serve path), same run");
    println!("| mix | detections | sinks | wall s | observations/s | ratio vs no sinks | outbox records |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (mix, per_mille) in [("realistic", 1u64), ("storm", 50)] {
        let work = workload(events, per_mille);
        let mut t0 = Vec::new();
        let mut t1 = Vec::new();
        let mut t3 = Vec::new();
        let mut dets = 0;
        let mut records = (0, 0);
        for _ in 0..runs {
            let (t, s, _) = run_pipeline(&work, &[]);
            dets = s.all_detections().map(|d| d.len()).unwrap_or(0);
            t0.push(t);
            let (t, _, o) = run_pipeline(&work, &one);
            records.0 = o.status().iter().map(|s| s.backlog).sum::<u64>();
            t1.push(t);
            let (t, _, o) = run_pipeline(&work, &three);
            records.1 = o.status().iter().map(|s| s.backlog).sum::<u64>();
            t3.push(t);
        }
        let (m0, m1, m3) = (median(t0), median(t1), median(t3));
        let rate = |t: f64| events as f64 / t;
        println!(
            "| {mix} | {dets} | 0 | {m0:.3} | {:.0} | 1.000 | 0 |",
            rate(m0)
        );
        println!(
            "| {mix} | {dets} | 1 | {m1:.3} | {:.0} | {:.3} | {} |",
            rate(m1),
            m0 / m1,
            records.0
        );
        println!(
            "| {mix} | {dets} | 3 | {m3:.3} | {:.0} | {:.3} | {} |",
            rate(m3),
            m0 / m3,
            records.1
        );
    }

    println!();
    println!("## delivery throughput per sink (storm mix outbox, loopback receivers)");
    println!("| sink | records | seconds | records/s |");
    println!("| --- | ---: | ---: | ---: |");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (tcp, udp, http) =
        rt.block_on(async { (discard_tcp().await, discard_udp().await, http_ok().await) });
    let work = workload(events, 50);
    let cases = [
        ("file (fsync per batch)", format!("file:{}", f("d1.json"))),
        (
            "file (fsync never)",
            format!("file:{},fsync=never", f("d2.json")),
        ),
        (
            "file ecs (fsync never)",
            format!("file:{},format=ecs,fsync=never", f("d3.json")),
        ),
        ("syslog udp json", format!("syslog:udp://127.0.0.1:{udp}")),
        (
            "syslog tcp cef",
            format!("syslog:tcp://127.0.0.1:{tcp},format=cef"),
        ),
        (
            "syslog tcp leef",
            format!("syslog:tcp://127.0.0.1:{tcp},format=leef"),
        ),
        (
            "webhook http json",
            format!("webhook:http://127.0.0.1:{http}/hook"),
        ),
    ];
    for (label, spec) in cases {
        let (_, _store, outputs) = run_pipeline(&work, &[spec]);
        let n = outputs.status()[0].backlog;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let t = Instant::now();
        let secs = rt.block_on(async {
            let tasks = outputs.spawn(rx);
            loop {
                let st = &outputs.status()[0];
                if st.backlog == 0 {
                    break;
                }
                if t.elapsed() > Duration::from_secs(300) {
                    eprintln!("{label}: gave up: {st:?}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let secs = t.elapsed().as_secs_f64();
            let _ = tx.send(true);
            for h in tasks {
                let _ = h.await;
            }
            secs
        });
        println!("| {label} | {n} | {secs:.3} | {:.0} |", n as f64 / secs);
    }
}
