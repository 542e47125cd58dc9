//! The shared-address rule and list precision (docs/detections.md) on captures built with the
//! project's pcap builders, each scenario through the real `poolwatch scan` binary and through
//! the capture reader + engine (`support::scenario`).

use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists, ListSource};
use poolwatch::model::{AppInfo, Category, FlowReport, FlowState, Observation, Proto, Stage};

use crate::support::capture::*;
use crate::support::scenario::*;

// ---------------------------------------------------------------------------------------------
// Shared-address rule
// ---------------------------------------------------------------------------------------------

/// A pool name resolving to an address that also serves other sites.
fn shared_capture() -> Cap {
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    c.dns(
        "192.0.2.10",
        RESOLVER_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    c
}

#[test]
fn shared_address_with_own_non_pool_sni_is_not_direct_ip() {
    let mut c = shared_capture();
    c.tcp("192.0.2.21", POOL_IP, 443, &client_hello("www.example.com"));
    c.tcp("192.0.2.22", POOL_IP, 80, &http_get("shop.example.net"));
    // The same flow naming the pool is a pool connection.
    c.tcp(
        "192.0.2.23",
        POOL_IP,
        443,
        &client_hello("pool.supportxmr.com"),
    );
    let o = run(&c, &[], None, &[]);
    assert!(!o.reported("192.0.2.21"), "{:#?}", o.scan);
    assert!(!o.reported("192.0.2.22"), "{:#?}", o.scan);
    assert_eq!(
        o.stage("192.0.2.23", "supportxmr.com"),
        Some(Stage::Connection)
    );
    assert!(o
        .detection("192.0.2.23", "supportxmr.com")
        .query_names
        .contains(&"pool.supportxmr.com".to_string()));
}

#[test]
fn shared_address_with_own_non_pool_dns_answer_is_not_direct_ip() {
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    c.dns(
        "192.0.2.10",
        RESOLVER_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    // Other hosts' own answers name the pool address for other sites: directly...
    c.dns(
        "192.0.2.31",
        RESOLVER_IP,
        "www.example.com",
        &[a("www.example.com", 300, POOL_IP)],
    );
    // ... and through a CNAME to a CDN name.
    c.dns(
        "192.0.2.32",
        RESOLVER_IP,
        "static.example.org",
        &[
            cname("static.example.org", 300, "edge.cdn.example.net"),
            a("edge.cdn.example.net", 300, POOL_IP),
        ],
    );
    // TLS without SNI and plain TCP: their only name for the address is their own answer.
    c.tcp("192.0.2.31", POOL_IP, 443, &client_hello(""));
    c.tcp("192.0.2.32", POOL_IP, 8443, b"\x00\x01binary");
    // Stratum on the wire still counts, whatever the host resolved.
    c.tcp("192.0.2.31", POOL_IP, 3333, XMRIG_LOGIN);
    let o = run(&c, &[], None, &[]);
    assert!(!o.reported("192.0.2.32"), "{:#?}", o.scan);
    assert_eq!(
        o.stage("192.0.2.31", "supportxmr.com"),
        Some(Stage::Stratum)
    );
    let d = o.detection("192.0.2.31", "supportxmr.com");
    assert_eq!(d.counts.flows, 1, "only the Stratum flow: {d:#?}");
}

#[test]
fn flow_without_own_name_to_pool_address_is_direct_ip() {
    let mut c = shared_capture();
    c.tcp("192.0.2.41", POOL_IP, 443, &client_hello(""));
    c.tcp("192.0.2.42", POOL_IP, 5555, b"\x00\x01binary");
    c.syn("192.0.2.43", POOL_IP, 3333);
    let o = run(&c, &[], None, &[]);
    assert_eq!(
        o.stage("192.0.2.41", "supportxmr.com"),
        Some(Stage::DirectIp)
    );
    assert_eq!(
        o.stage("192.0.2.42", "supportxmr.com"),
        Some(Stage::DirectIp)
    );
    assert_eq!(
        o.stage("192.0.2.43", "supportxmr.com"),
        Some(Stage::ConnectionAttempt)
    );
    assert_eq!(
        o.detection("192.0.2.41", "supportxmr.com").counts.lookups,
        0
    );
}

#[test]
fn listed_pool_address_with_own_non_pool_name_is_not_direct_ip() {
    let dir = tempfile::tempdir().unwrap();
    let list = write(
        dir.path(),
        "pools.txt",
        b"supportxmr.com\n203.0.113.99\n203.0.113.98:3333\n",
    );
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    c.dns(
        "192.0.2.51",
        RESOLVER_IP,
        "cdn.example.com",
        &[a("cdn.example.com", 300, "203.0.113.99")],
    );
    c.tcp("192.0.2.51", "203.0.113.99", 443, &client_hello(""));
    c.tcp(
        "192.0.2.52",
        "203.0.113.99",
        443,
        &client_hello("www.example.com"),
    );
    c.tcp("192.0.2.53", "203.0.113.99", 443, &client_hello(""));
    c.tcp("192.0.2.54", "203.0.113.98", 3333, b"\x00\x01binary");
    let o = run(&c, &[], Some(&list), &[]);
    assert!(!o.reported("192.0.2.51"), "{:#?}", o.scan);
    assert!(!o.reported("192.0.2.52"), "{:#?}", o.scan);
    assert_eq!(o.stage("192.0.2.53", "203.0.113.99"), Some(Stage::DirectIp));
    assert_eq!(
        o.stage("192.0.2.54", "203.0.113.98:3333"),
        Some(Stage::DirectIp)
    );
}

#[test]
fn own_lookup_of_cdn_fronted_pool_with_other_sni_is_not_a_pool_connection() {
    // The pool CNAMEs to a CDN name (a shared address): this client's flow there naming
    // another site is that site's; naming the pool, or with no name, it is the pool's.
    let cdn = "203.0.113.80";
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    c.dns(
        "192.0.2.61",
        RESOLVER_IP,
        "us.prohashing.com",
        &[
            cname("us.prohashing.com", 300, "prohashing.edge-cdn.example.net"),
            a("prohashing.edge-cdn.example.net", 300, cdn),
        ],
    );
    c.tcp("192.0.2.61", cdn, 443, &client_hello("www.example.com"));
    c.wait(6);
    let o = run(&c, &[], None, &[]);
    assert_eq!(o.stage("192.0.2.61", "prohashing.com"), Some(Stage::Lookup));
    c.tcp("192.0.2.61", cdn, 443, &client_hello("us.prohashing.com"));
    let o = run(&c, &[], None, &[]);
    assert_eq!(
        o.stage("192.0.2.61", "prohashing.com"),
        Some(Stage::Connection)
    );
}

// ---------------------------------------------------------------------------------------------
// List precision
// ---------------------------------------------------------------------------------------------

#[test]
fn multi_purpose_domain_visit_is_not_connection() {
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    let visits = [
        ("192.0.2.71", "explorer.btc.com", "198.51.100.71"),
        ("192.0.2.72", "www.nicehash.com", "198.51.100.72"),
        ("192.0.2.73", "explorer.viabtc.com", "198.51.100.73"),
        ("192.0.2.74", "www.poolin.com", "198.51.100.74"),
        ("192.0.2.75", "news.bitcoin.com", "198.51.100.75"),
    ];
    for (host, name, ip) in visits {
        c.dns(host, RESOLVER_IP, name, &[a(name, 300, ip)]);
        c.tcp(host, ip, 443, &client_hello(name));
    }
    // Their pool hosts are still pools.
    let pools = [
        (
            "192.0.2.81",
            "btc.ss.btc.com",
            "198.51.100.81",
            "ss.btc.com",
        ),
        (
            "192.0.2.82",
            "randomxmonero.auto.nicehash.com",
            "198.51.100.82",
            "auto.nicehash.com",
        ),
        ("192.0.2.83", "btc.viabtc.io", "198.51.100.83", "viabtc.io"),
        (
            "192.0.2.84",
            "btc.ss.poolin.com",
            "198.51.100.84",
            "ss.poolin.com",
        ),
    ];
    for (host, name, ip, _) in pools {
        c.dns(host, RESOLVER_IP, name, &[a(name, 300, ip)]);
        c.tcp(host, ip, 3333, XMRIG_LOGIN);
    }
    let o = run(&c, &[], None, &[]);
    for (host, ..) in visits {
        assert!(
            !o.reported(host),
            "{host}: {:#?}",
            o.scan.get(&host.parse().unwrap())
        );
    }
    for (host, _, _, entry) in pools {
        assert_eq!(o.stage(host, entry), Some(Stage::Stratum), "{host}");
    }
}

#[test]
fn allowlisted_multi_purpose_domain_wins_over_a_bare_user_entry() {
    // A public list that carries the bare domain, loaded beside the shipped lists: the shipped
    // allowlist entry (same specificity) wins, the pool hosts (more specific) still match.
    let mut sources = ListSource::builtin().unwrap();
    sources.push(ListSource::memory(
        "public-list",
        Category::Pool,
        None,
        "btc.com\nnicehash.com\n",
    ));
    let (b, _) = Blocklists::build(sources).unwrap();
    assert!(b.match_name("explorer.btc.com").is_none());
    assert!(b.match_name("btc.com").is_none());
    assert!(b.match_name("www.nicehash.com").is_none());
    assert_eq!(b.match_name("eu.ss.btc.com").unwrap().entry, "ss.btc.com");
    assert_eq!(
        b.match_name("daggerhashimoto.eu-west.nicehash.com")
            .unwrap()
            .entry,
        "eu-west.nicehash.com"
    );
}

#[test]
fn established_flow_that_never_names_itself_is_convicted_after_the_reorder_window() {
    // The capture reports a TCP flow when it is established, before any payload: the engine
    // waits for its name, but a long session whose protocol is not recognised is still
    // reported direct_ip within the reorder window, not only when it closes hours later.
    let mut first = match obs_flow(
        1.0,
        "192.0.2.41",
        POOL_IP,
        5555,
        Proto::Tcp,
        AppInfo::default(),
    ) {
        Observation::Flow(f) => f,
        Observation::Dns(_) => unreachable!(),
    };
    first.report = FlowReport::Interim;
    first.state = FlowState::Established;
    first.bytes_out = 0;
    first.bytes_in = 0;
    let mut e = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let d = obs_dns(
        0.0,
        "192.0.2.10",
        RESOLVER_IP,
        "pool.supportxmr.com",
        &[POOL_IP],
    );
    e.observe(&d);
    let now = e.observe(&Observation::Flow(first.clone()));
    assert!(now
        .detections
        .iter()
        .all(|u| u.detection.client_ip != first.src));
    let later = e.observe(&obs_dns(
        9.0,
        "192.0.2.99",
        RESOLVER_IP,
        "www.example.org",
        &[],
    ));
    let got: Vec<_> = later
        .detections
        .iter()
        .filter(|u| u.detection.client_ip == first.src)
        .collect();
    assert_eq!(got.len(), 1, "{:#?}", later.detections);
    assert_eq!(got[0].detection.stage, Stage::DirectIp);
    // Its TLS report within the window instead names another site: not convicted at all.
    let mut e = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    e.observe(&d);
    e.observe(&Observation::Flow(first.clone()));
    let mut named = first.clone();
    named.bytes_out = 200;
    named.app.tls = true;
    named.app.sni = Some("www.example.com".into());
    let mut all = e.observe(&Observation::Flow(named)).detections;
    all.extend(e.drain().detections);
    assert!(
        all.iter().all(|u| u.detection.client_ip != first.src),
        "{all:#?}"
    );
}
