//! One incident per (client, pool entry) whatever the table pressure (issue #11): more clients
//! than the engine's incident table holds, through the real pipeline and both real stores (sled
//! and the in-memory store of `scan`), with flushes rarer than evictions so that evicted
//! incidents are often not yet in the store when they recur.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use poolwatch::correlate::{
    DetectionStore, Engine, EngineConfig, EngineLimits, Pipeline, PipelineConfig,
};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::*;
use poolwatch::store::{MemoryStore, Store};

use crate::support::obs;

const T0: f64 = 1_795_724_800.0;

fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 9, (i >> 8) as u8, i as u8))
}

fn lookup(at: f64, c: IpAddr, n: u32) -> Observation {
    let name = format!("r{n:x}.pool.supportxmr.com");
    obs::dns(Timestamp::from_secs_f64(T0 + at), &c.to_string(), &name)
        .id(Some(n as u16))
        .a(&["203.0.113.7"])
        .source(Source::pcap("pressure.pcap"))
        .build()
}

fn syn(at: f64, c: IpAddr, port: u16) -> Observation {
    obs::flow(
        Timestamp::from_secs_f64(T0 + at),
        &c.to_string(),
        "203.0.113.7",
        3333,
    )
    .last(Timestamp::from_secs_f64(T0 + at + 3.0))
    .src_port(port)
    .state(FlowState::Attempted)
    .bytes(0, 0)
    .packets(1, 0)
    .source(Source::pcap("pressure.pcap"))
    .build()
}

/// `clients` clients round-robin for `rounds` rounds (each a lookup and a SYN), with an incident
/// table of `cap` (< LAG); returns the stored detections.
fn run(
    store: Box<dyn DetectionStore>,
    cap: usize,
    clients: u32,
    rounds: u32,
    cfg: PipelineConfig,
) -> Vec<Detection> {
    let reader = store.clone_handle();
    let ecfg = EngineConfig {
        limits: EngineLimits {
            incidents: cap,
            ..EngineLimits::default()
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(ecfg, matcher::shared(Blocklists::builtin().unwrap()));
    let mut p = Pipeline::with_store(engine, Some(store))
        .unwrap()
        .with_config(cfg);
    // Each client's SYN comes LAG lookups after its own lookup: more than the table holds, so
    // its incident was evicted in between, often before any flush.
    const LAG: u32 = 130;
    let mut at = 0.0;
    let mut n = 0u32;
    for r in 0..rounds {
        for i in 0..clients + LAG {
            if i < clients {
                n += 1;
                p.push(lookup(at, client(i), n)).unwrap();
            }
            if i >= LAG {
                p.push(syn(at, client(i - LAG), 20_000 + r as u16)).unwrap();
            }
            at += 0.002;
        }
    }
    let s = p.finish().unwrap();
    assert!(
        s.engine.evicted > 0,
        "the table must be under pressure: {s:?}"
    );
    assert_eq!(s.engine.parked_dropped, 0);
    reader.all_detections().unwrap()
}

fn check(dets: &[Detection], clients: u32, rounds: u32) {
    let mut per: HashMap<(IpAddr, String), Vec<&Detection>> = HashMap::new();
    for d in dets {
        per.entry((d.client_ip, d.pool_domain.clone()))
            .or_default()
            .push(d);
    }
    let split: Vec<_> = per
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .take(3)
        .map(|(k, v)| {
            (
                k,
                v.iter().map(|d| (&d.id, d.first_seen)).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert!(split.is_empty(), "split incidents, e.g. {split:?}");
    assert_eq!(per.len(), clients as usize, "one detection per client");
    for d in dets {
        assert_eq!(
            d.counts.lookups,
            u64::from(rounds),
            "{} {}: lookups lost on eviction",
            d.client_ip,
            d.id
        );
        assert_eq!(d.counts.flows, u64::from(rounds), "{}: flows", d.client_ip);
        assert_eq!(d.stage, Stage::ConnectionAttempt);
    }
}

/// Flushes only when the batch or the parked table demands it (never by time).
fn rare_flushes(max_dirty: usize) -> PipelineConfig {
    PipelineConfig {
        ack_flush_interval: Duration::from_secs(3600),
        flush_interval: Duration::from_secs(3600),
        max_dirty,
    }
}

#[test]
fn incidents_do_not_split_under_table_pressure() {
    let (cap, clients, rounds) = (100, 1_000, 4);
    for max_dirty in [
        poolwatch::correlate::PipelineConfig::default().max_dirty,
        1_000_000,
    ] {
        let sled = Store::open_temporary().unwrap();
        check(
            &run(
                Box::new(sled),
                cap,
                clients,
                rounds,
                rare_flushes(max_dirty),
            ),
            clients,
            rounds,
        );
        check(
            &run(
                Box::new(MemoryStore::new()),
                cap,
                clients,
                rounds,
                rare_flushes(max_dirty),
            ),
            clients,
            rounds,
        );
    }
}

/// The default caps and more clients than `MAX_INCIDENTS`, in memory (as `scan` runs).
#[test]
fn incidents_do_not_split_beyond_max_incidents() {
    let clients = poolwatch::correlate::MAX_INCIDENTS as u32 + 5_000;
    let rounds = 2;
    let store = MemoryStore::new();
    let reader = store.clone();
    let engine = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let mut p = Pipeline::with_store(engine, Some(Box::new(store))).unwrap();
    let mut at = 0.0;
    let mut n = 0;
    for r in 0..rounds {
        for i in 0..clients {
            let c = IpAddr::V4(Ipv4Addr::from(0x0a40_0000 + i));
            n += 1;
            p.push(lookup(at, c, n)).unwrap();
            p.push(syn(at + 0.001, c, 20_000 + r as u16)).unwrap();
            at += 0.0005;
        }
    }
    let s = p.finish().unwrap();
    assert!(s.engine.evicted > 0);
    check(&reader.all_detections().unwrap(), clients, rounds);
}
