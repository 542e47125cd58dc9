//! Engine behaviour on small hand-built scenarios: blocking signals, infrastructure, reordering,
//! expiry, suppressions, `is_new` across restarts (real sled store), and hard table caps.

use std::net::IpAddr;

use poolwatch::correlate::{ChangeKind, Engine, EngineConfig, EngineLimits, Pipeline};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::*;
use poolwatch::query::NewSuppression;
use poolwatch::store::Store;

use crate::support::obs;

const T0: i64 = 1_795_724_800;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn t(secs: f64) -> Timestamp {
    Timestamp::from_secs_f64(T0 as f64 + secs)
}

fn lists() -> matcher::SharedBlocklists {
    matcher::shared(Blocklists::builtin().unwrap())
}

fn dns(
    at: f64,
    client: &str,
    qname: &str,
    rcode: Option<Rcode>,
    answers: &[(&str, &str)],
    ttl: u32,
) -> Observation {
    obs::dns(t(at), client, qname)
        .client_port(Some(5353))
        .rcode(rcode)
        .records(answers, ttl)
        .build()
}

fn flow(at: f64, client: &str, dst: &str, port: u16, state: FlowState) -> Observation {
    obs::flow(t(at), client, dst, port).state(state).build()
}

/// Runs observations through an engine; returns the final state of each detection.
fn run(engine: &mut Engine, obs: &[Observation]) -> Vec<Detection> {
    let mut m = std::collections::BTreeMap::new();
    for o in obs {
        for u in engine.observe(o).detections {
            m.insert(u.detection.id.clone(), u.detection);
        }
    }
    for u in engine.drain().detections {
        m.insert(u.detection.id.clone(), u.detection);
    }
    m.into_values().collect()
}

#[test]
fn blocked_signals_nxdomain_zero_and_sinkhole() {
    let cfg = EngineConfig {
        sinkholes: vec![ip("198.18.0.1")],
        ..Default::default()
    };
    let mut e = Engine::new(cfg, lists());
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.1",
                "pool.minexmr.com",
                Some(Rcode::NXDOMAIN),
                &[],
                60,
            ),
            dns(
                1.0,
                "10.0.0.2",
                "c3pool.com",
                Some(Rcode::NOERROR),
                &[("c3pool.com", "0.0.0.0")],
                60,
            ),
            dns(
                2.0,
                "10.0.0.3",
                "xmr.2miners.com",
                Some(Rcode::NOERROR),
                &[("xmr.2miners.com", "198.18.0.1")],
                60,
            ),
            // A sinkholed address is not a binding: connecting to it is not mining.
            flow(3.0, "10.0.0.3", "198.18.0.1", 3333, FlowState::Closed),
        ],
    );
    assert_eq!(d.len(), 3);
    for x in &d {
        assert_eq!(x.stage, Stage::BlockedLookup, "{x:?}");
        assert_eq!(x.risk_score, 45);
        assert!(x.pool_ips.is_empty());
    }
}

#[test]
fn configured_and_learned_resolvers_are_not_reported() {
    let cfg = EngineConfig {
        resolvers: vec![ip("10.0.0.53")],
        ..Default::default()
    };
    let mut e = Engine::new(cfg, lists());
    // 10.0.0.54 is learned: it answers a client's query just after its own upstream lookup.
    let mut upstream = dns(
        0.0,
        "10.0.0.54",
        "pool.supportxmr.com",
        Some(Rcode::NOERROR),
        &[("pool.supportxmr.com", "198.51.100.17")],
        60,
    );
    if let Observation::Dns(d) = &mut upstream {
        d.server = Some(ip("192.0.2.1"));
    }
    let mut client = dns(
        0.01,
        "10.0.0.7",
        "pool.supportxmr.com",
        Some(Rcode::NOERROR),
        &[("pool.supportxmr.com", "198.51.100.17")],
        60,
    );
    if let Observation::Dns(d) = &mut client {
        d.server = Some(ip("10.0.0.54"));
    }
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.53",
                "pool.supportxmr.com",
                Some(Rcode::NOERROR),
                &[],
                60,
            ),
            upstream,
            client,
        ],
    );
    let clients: Vec<String> = d.iter().map(|x| x.client_ip.to_string()).collect();
    assert_eq!(clients, vec!["10.0.0.7"]);
    // One answered client is not enough to learn a resolver (resolver rule): 10.0.0.54's
    // upstream lookup is exempt because 10.0.0.7 asked it for the same pool entry.
    assert!(e.is_dns_server(ip("10.0.0.54")) && e.is_dns_server(ip("192.0.2.1")));
    assert!(!e.is_infrastructure(ip("10.0.0.54")) && !e.is_infrastructure(ip("192.0.2.1")));
    assert!(e.is_infrastructure(ip("10.0.0.53")));
}

#[test]
fn flow_before_skewed_dns_is_still_a_connection() {
    let mut e = Engine::new(EngineConfig::default(), lists());
    let d = run(
        &mut e,
        &[
            // The flow is reported (last_ts) before the log's DNS line, which is 1.5 s late.
            flow(0.2, "10.0.0.9", "198.51.100.17", 3333, FlowState::Closed),
            dns(
                1.5,
                "10.0.0.9",
                "pool.supportxmr.com",
                Some(Rcode::NOERROR),
                &[("pool.supportxmr.com", "198.51.100.17")],
                60,
            ),
        ],
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].stage, Stage::Connection);
    assert_eq!(d[0].risk_score, 88);
    assert_eq!(d[0].counts.lookups, 1);
}

#[test]
fn expired_binding_does_not_attribute() {
    let cfg = EngineConfig {
        binding_grace_secs: 10,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, lists());
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.9",
                "pool.supportxmr.com",
                Some(Rcode::NOERROR),
                &[("pool.supportxmr.com", "198.51.100.17")],
                60,
            ),
            flow(500.0, "10.0.0.9", "198.51.100.17", 3333, FlowState::Closed),
            flow(501.0, "10.0.0.10", "198.51.100.17", 3333, FlowState::Closed),
        ],
    );
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].stage, Stage::Lookup);
}

#[test]
fn attempt_then_upgrade_events() {
    let mut e = Engine::new(EngineConfig::default(), lists());
    let mut kinds = Vec::new();
    for o in [
        dns(
            0.0,
            "10.0.0.9",
            "pool.supportxmr.com",
            Some(Rcode::NOERROR),
            &[("pool.supportxmr.com", "198.51.100.17")],
            60,
        ),
        flow(1.0, "10.0.0.9", "198.51.100.17", 3333, FlowState::Attempted),
        flow(2.0, "10.0.0.9", "198.51.100.17", 3333, FlowState::Rejected),
        flow(3.0, "10.0.0.9", "198.51.100.17", 443, FlowState::Closed),
    ] {
        for u in e.observe(&o).detections {
            kinds.push((u.kind, u.detection.stage, u.detection.risk_score));
        }
    }
    assert_eq!(
        kinds.first(),
        Some(&(ChangeKind::New, Stage::ConnectionAttempt, 84))
    );
    assert!(kinds.contains(&(ChangeKind::Upgraded, Stage::Connection, 88)));
    assert!(
        kinds.iter().filter(|k| k.0 == ChangeKind::New).count() == 1,
        "{kinds:?}"
    );
}

#[test]
fn is_new_and_incidents_survive_restart_and_suppression_marks() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    {
        let store = Store::open(&db).unwrap();
        let mut p =
            Pipeline::new(Engine::new(EngineConfig::default(), lists()), Some(store)).unwrap();
        p.push(dns(
            0.0,
            "10.0.0.9",
            "pool.supportxmr.com",
            Some(Rcode::NOERROR),
            &[("pool.supportxmr.com", "198.51.100.17")],
            60,
        ))
        .unwrap();
        p.finish().unwrap();
    }
    let store = Store::open(&db).unwrap();
    store
        .add_suppression(NewSuppression {
            client: None,
            pool: Some("nanopool.org".into()),
            expires: None,
            reason: "test".into(),
        })
        .unwrap();
    let mut p = Pipeline::new(
        Engine::new(EngineConfig::default(), lists()),
        Some(store.clone()),
    )
    .unwrap();
    // Same client, new pool, an hour later: not new (look-back 30 days), and suppressed.
    p.push(dns(
        3_600.0,
        "10.0.0.9",
        "xmr-eu1.nanopool.org",
        Some(Rcode::NOERROR),
        &[],
        60,
    ))
    .unwrap();
    // Same incident continued after the restart (binding restored): no second row, upgraded.
    p.push(flow(
        3_601.0,
        "10.0.0.9",
        "198.51.100.17",
        3333,
        FlowState::Closed,
    ))
    .unwrap();
    // Another client: new.
    p.push(dns(
        3_602.0,
        "10.0.0.10",
        "pool.supportxmr.com",
        Some(Rcode::NOERROR),
        &[],
        60,
    ))
    .unwrap();
    p.finish().unwrap();
    let all = store.all_detections().unwrap();
    assert_eq!(all.len(), 3, "{all:#?}");
    let nano = all
        .iter()
        .find(|d| d.pool_domain == "nanopool.org")
        .unwrap();
    assert!(!nano.is_new);
    assert!(nano.suppressed && nano.suppression_id.is_some());
    let sx = all
        .iter()
        .find(|d| d.client_ip == ip("10.0.0.9") && d.pool_domain == "supportxmr.com")
        .unwrap();
    assert!(sx.is_new, "first detection of that host");
    assert_eq!(sx.stage, Stage::Connection);
    let other = all.iter().find(|d| d.client_ip == ip("10.0.0.10")).unwrap();
    assert!(other.is_new);
}

#[test]
fn tables_stay_within_caps_under_a_flood() {
    let limits = EngineLimits {
        bindings: 500,
        ip_index: 300,
        incidents: 200,
        dedupe: 400,
        flows: 300,
        infra: 50,
        recent_flows: 100,
        hosts: 250,
        answer_names: 150,
        forwarded: 120,
    };
    let cfg = EngineConfig {
        limits,
        ..Default::default()
    };
    let mut e = Engine::new(cfg, lists());
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut reported = 0usize;
    for i in 0..30_000u64 {
        let r = rnd();
        let client = format!(
            "10.{}.{}.{}",
            (r >> 8) as u8,
            (r >> 16) as u8,
            (r >> 24) as u8
        );
        let ans = format!("198.51.{}.{}", (r >> 32) as u8, (r >> 40) as u8);
        let at = i as f64 * 0.001;
        let o = match i % 3 {
            0 => dns(
                at,
                &client,
                &format!("{:x}.pool.supportxmr.com", r),
                Some(Rcode::NOERROR),
                &[("x", &ans)],
                600,
            ),
            1 => {
                let mut o = dns(
                    at,
                    &client,
                    &format!("{:x}.nanopool.org", r),
                    Some(Rcode::NOERROR),
                    &[],
                    60,
                );
                if let Observation::Dns(d) = &mut o {
                    d.server = Some(ip(&format!(
                        "192.0.{}.{}",
                        (r >> 48) as u8,
                        (r >> 56) as u8
                    )));
                }
                o
            }
            _ => flow(at, &client, &ans, 3333, FlowState::Attempted),
        };
        reported += e.observe(&o).detections.len();
        let s = e.table_sizes();
        assert!(
            s.bindings <= 500 && s.ip_index <= 300 && s.incidents <= 200,
            "{s:?}"
        );
        assert!(s.dedupe <= 400 && s.flows <= 300 && s.infra <= 50, "{s:?}");
        assert!(
            s.recent_flows <= 100 && s.hosts <= 250 && s.held <= 200,
            "{s:?}"
        );
    }
    assert!(reported > 0);
    assert!(e.stats().evicted > 0);
}

/// A pool behind a CDN (the pool name CNAMEs to an unlisted CDN name whose addresses serve
/// unrelated sites too): other clients visiting that CDN are not `direct_ip`; the client that
/// resolved the pool still is correlated. A pool's own address (A owner is the listed name)
/// still convicts others.
#[test]
fn cdn_fronted_pool_addresses_do_not_convict_other_clients() {
    let mut e = Engine::new(EngineConfig::default(), lists());
    let cdn = "203.0.113.80";
    let own = "198.51.100.7";
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.1",
                "us.prohashing.com",
                Some(Rcode::NOERROR),
                &[
                    ("us.prohashing.com", "prohashing-com.edge-cdn.net"),
                    ("prohashing-com.edge-cdn.net", cdn),
                ],
                300,
            ),
            dns(
                0.5,
                "10.0.0.1",
                "pool.supportxmr.com",
                Some(Rcode::NOERROR),
                &[("pool.supportxmr.com", own)],
                300,
            ),
            flow(1.0, "10.0.0.1", cdn, 3333, FlowState::Closed),
            // A browser on another host, same CDN address, port 443.
            flow(2.0, "10.0.0.2", cdn, 443, FlowState::Closed),
            // A host connecting to the pool's own address without a lookup: direct_ip.
            flow(3.0, "10.0.0.3", own, 3333, FlowState::Closed),
        ],
    );
    assert!(d.iter().all(|x| x.client_ip != ip("10.0.0.2")), "{d:#?}");
    let first = d
        .iter()
        .find(|x| x.client_ip == ip("10.0.0.1") && x.pool_domain == "prohashing.com")
        .unwrap();
    assert_eq!(first.stage, Stage::Connection);
    let third: Vec<_> = d.iter().filter(|x| x.client_ip == ip("10.0.0.3")).collect();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].stage, Stage::DirectIp);
    assert_eq!(third[0].counts.lookups, 0);
}

/// The resolving client later looks up an unrelated name answered by the same (CDN) address:
/// its later non-Stratum flow there follows that newer lookup, not the pool's; Stratum on the
/// same address still counts.
#[test]
fn later_non_pool_answer_shadows_the_binding() {
    let mut e = Engine::new(EngineConfig::default(), lists());
    let cdn = "203.0.113.81";
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.1",
                "us.prohashing.com",
                Some(Rcode::NOERROR),
                &[
                    ("us.prohashing.com", "p.edge-cdn.net"),
                    ("p.edge-cdn.net", cdn),
                ],
                3600,
            ),
            dns(
                100.0,
                "10.0.0.1",
                "www.example.org",
                Some(Rcode::NOERROR),
                &[
                    ("www.example.org", "w.edge-cdn.net"),
                    ("w.edge-cdn.net", cdn),
                ],
                300,
            ),
            flow(100.1, "10.0.0.1", cdn, 443, FlowState::Closed),
        ],
    );
    // Only the lookup: the 443 flow is explained by www.example.org.
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].stage, Stage::Lookup);
    assert_eq!(d[0].counts.flows, 0);
    // A fresh pool lookup clears the shadow.
    let mut e = Engine::new(EngineConfig::default(), lists());
    let d = run(
        &mut e,
        &[
            dns(
                0.0,
                "10.0.0.1",
                "us.prohashing.com",
                Some(Rcode::NOERROR),
                &[
                    ("us.prohashing.com", "p.edge-cdn.net"),
                    ("p.edge-cdn.net", cdn),
                ],
                3600,
            ),
            dns(
                100.0,
                "10.0.0.1",
                "www.example.org",
                Some(Rcode::NOERROR),
                &[
                    ("www.example.org", "w.edge-cdn.net"),
                    ("w.edge-cdn.net", cdn),
                ],
                300,
            ),
            dns(
                200.0,
                "10.0.0.1",
                "us.prohashing.com",
                Some(Rcode::NOERROR),
                &[
                    ("us.prohashing.com", "p.edge-cdn.net"),
                    ("p.edge-cdn.net", cdn),
                ],
                3600,
            ),
            flow(200.1, "10.0.0.1", cdn, 3333, FlowState::Closed),
        ],
    );
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0].stage, Stage::Connection);
}

/// `observe_owned` (the pipeline's: the engine keeps the observation's strings) changes the
/// engine exactly as `observe(&obs)`: the same changes, event by event, and the same stats,
/// over lookups, a repeated one (dedupe: no second evidence item), an NXDOMAIN, a CNAME hit,
/// flows to the answers and an unlisted lookup.
#[test]
fn an_owned_observation_changes_the_engine_as_a_borrowed_one() {
    let (ok, nx) = (Some(Rcode::NOERROR), Some(Rcode::NXDOMAIN));
    let a = [("pool.supportxmr.com", "203.0.113.7")];
    let pool = |at, client, name| dns(at, client, name, ok, &a, 300);
    let cdn = [("cdn.example.net", "198.51.100.9")];
    let scenario = vec![
        pool(0.0, "10.0.0.5", "pool.supportxmr.com"),
        pool(0.0, "10.0.0.5", "pool.supportxmr.com"),
        flow(1.0, "10.0.0.5", "203.0.113.7", 3333, FlowState::Attempted),
        dns(2.0, "10.0.0.6", "xmr.nanopool.org", nx, &[], 300),
        dns(3.0, "10.0.0.7", "cdn.example.net", ok, &cdn, 60),
        pool(4.0, "10.0.0.5", "b.pool.supportxmr.com"),
        flow(5.0, "10.0.0.5", "203.0.113.7", 3333, FlowState::Established),
        dns(90.0, "10.0.0.8", "www.example.org", ok, &[], 300),
    ];
    let mut borrowed = Engine::new(EngineConfig::default(), lists());
    let mut owned = Engine::new(EngineConfig::default(), lists());
    let mut reported = 0;
    for o in &scenario {
        let b = borrowed.observe(o);
        let w = owned.observe_owned(o.clone());
        assert_eq!(format!("{b:?}"), format!("{w:?}"), "after {o:?}");
        reported += b.detections.len();
    }
    assert_eq!(
        format!("{:?}", borrowed.drain()),
        format!("{:?}", owned.drain())
    );
    assert_eq!(
        format!("{:?}", borrowed.stats()),
        format!("{:?}", owned.stats())
    );
    assert!(reported > 0, "the scenario reports detections");
}
