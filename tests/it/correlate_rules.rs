//! The resolver rule (docs/detections.md) on captures built with the project's pcap builders:
//! every scenario runs twice, through the real `poolwatch scan` binary on the written pcap and
//! through the capture reader + engine directly (`support::scenario`), plus the rule at engine
//! level for DNS service traffic. The shared-address rule and list precision are in
//! `correlate_shared_address`.

use std::net::IpAddr;

use poolwatch::matcher::Blocklists;
use poolwatch::model::{AppInfo, Proto, Stage};

use crate::support::capture::*;
use crate::support::scenario::*;

// ---------------------------------------------------------------------------------------------
// Resolver rule
// ---------------------------------------------------------------------------------------------

#[test]
fn resolver_host_that_mines_is_reported() {
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    // The resolver's own lookups (nobody asked it): pools it then talks to itself.
    c.dns(
        RESOLVER_IP,
        UPSTREAM_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    c.dns(
        RESOLVER_IP,
        UPSTREAM_IP,
        "pool.hashvault.pro",
        &[a("pool.hashvault.pro", 300, HASHVAULT_IP)],
    );
    c.tcp(RESOLVER_IP, POOL_IP, 3333, XMRIG_LOGIN);
    // TLS without SNI to the other pool's address: a connection after its own lookup.
    c.tcp(RESOLVER_IP, HASHVAULT_IP, 443, &client_hello(""));
    let o = run(&c, &[], None, &[]);
    assert!(
        o.resolvers.contains(&RESOLVER_IP.parse().unwrap()),
        "learned"
    );
    assert_eq!(o.stage(RESOLVER_IP, "supportxmr.com"), Some(Stage::Stratum));
    assert_eq!(
        o.stage(RESOLVER_IP, "hashvault.pro"),
        Some(Stage::Connection)
    );
    let d = o.detection(RESOLVER_IP, "hashvault.pro");
    assert!(
        d.evidence
            .iter()
            .any(|e| e.summary.contains("(own lookup)")),
        "{d:#?}"
    );
    assert!(!o.reported(UPSTREAM_IP));
}

#[test]
fn single_udp_packet_from_port_53_does_not_exempt_host() {
    let miner = "192.0.2.66";
    let looker = "192.0.2.67";
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    // One stray "answer" from the miner's port 53, then it mines.
    c.unsolicited(miner, "192.0.2.10", "www.example.com");
    c.dns(
        miner,
        RESOLVER_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    c.tcp(miner, POOL_IP, 3333, XMRIG_LOGIN);
    // Unsolicited answers to three distinct hosts teach nothing either: its lookup is reported.
    for to in ["192.0.2.11", "192.0.2.12", "192.0.2.13"] {
        c.unsolicited(looker, to, "www.example.net");
    }
    c.dns(
        looker,
        RESOLVER_IP,
        "pool.hashvault.pro",
        &[a("pool.hashvault.pro", 300, HASHVAULT_IP)],
    );
    c.wait(10);
    c.dns("192.0.2.99", RESOLVER_IP, "www.example.org", &[]);
    let o = run(&c, &[], None, &[]);
    assert_eq!(o.stage(miner, "supportxmr.com"), Some(Stage::Stratum));
    assert_eq!(o.stage(looker, "hashvault.pro"), Some(Stage::Lookup));
    assert!(o.resolvers.iter().all(|r| r.to_string() != miner));
}

#[test]
fn resolver_upstream_lookup_is_not_reported() {
    let client = "192.0.2.10";
    let forwarder = "192.0.2.54"; // answers one client only: never learned
    let mut c = Cap::new();
    teach_resolver(&mut c, RESOLVER_IP);
    // Client → learned resolver → upstream, the pcap holds both legs (upstream leg first, as
    // a resolver answers only after its upstream did).
    c.dns(
        RESOLVER_IP,
        UPSTREAM_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    c.dns(
        client,
        RESOLVER_IP,
        "pool.supportxmr.com",
        &[a("pool.supportxmr.com", 300, POOL_IP)],
    );
    // Client → small forwarder (one client) → upstream, CNAME chain to a pool name: the
    // forwarder's lookup of the chain's pool name is exempt because its client asked it for
    // the same pool entry.
    c.dns(
        forwarder,
        UPSTREAM_IP,
        "gulf.moneroocean.stream",
        &[a("gulf.moneroocean.stream", 300, "203.0.113.30")],
    );
    c.dns(
        "192.0.2.11",
        forwarder,
        "api.cloud-sync-check.net",
        &[
            cname("api.cloud-sync-check.net", 300, "gulf.moneroocean.stream"),
            a("gulf.moneroocean.stream", 300, "203.0.113.30"),
        ],
    );
    c.wait(10);
    c.dns("192.0.2.99", RESOLVER_IP, "www.example.org", &[]);
    let o = run(&c, &[], None, &[]);
    assert_eq!(o.stage(client, "supportxmr.com"), Some(Stage::Lookup));
    assert_eq!(
        o.stage("192.0.2.11", "moneroocean.stream"),
        Some(Stage::Lookup)
    );
    for infra in [RESOLVER_IP, UPSTREAM_IP, forwarder] {
        assert!(!o.reported(infra), "{infra} reported: {:#?}", o.scan);
    }
    assert!(!o
        .resolvers
        .iter()
        .any(|r| r.to_string() == forwarder || r.to_string() == UPSTREAM_IP));
}

#[test]
fn configured_resolver_flows_are_still_graded() {
    let mut c = Cap::new();
    // Configured: no clients seen at all. Its lookup alone is never reported...
    c.dns(
        RESOLVER_IP,
        UPSTREAM_IP,
        "xmr-eu1.nanopool.org",
        &[a("xmr-eu1.nanopool.org", 300, "203.0.113.20")],
    );
    // ... but its Stratum to an address nobody resolved, and its TLS with a listed SNI, are.
    c.tcp(RESOLVER_IP, "203.0.113.77", 3333, XMRIG_LOGIN);
    c.tcp(
        RESOLVER_IP,
        HASHVAULT_IP,
        443,
        &client_hello("pool.hashvault.pro"),
    );
    c.wait(10);
    let o = run(&c, &[], None, &[RESOLVER_IP]);
    assert_eq!(o.stage(RESOLVER_IP, "nanopool.org"), None);
    assert_eq!(
        o.stage(RESOLVER_IP, "stratum:203.0.113.77"),
        Some(Stage::Stratum)
    );
    assert_eq!(
        o.stage(RESOLVER_IP, "hashvault.pro"),
        Some(Stage::Connection)
    );
}

// ---------------------------------------------------------------------------------------------
// Resolver rule, engine level: DNS service traffic (flows from logs such as Zeek conn.log)
// ---------------------------------------------------------------------------------------------

#[test]
fn resolver_binding_does_not_make_its_dns_traffic_a_connection() {
    // A pool name whose answer is the upstream server's own address (a DNS firewall answering
    // with itself): the resolver forwards a client's lookup, so both hold a binding for the
    // upstream address; their later DNS traffic to port 53 there is not a pool connection.
    let r = RESOLVER_IP;
    let mut obs = Vec::new();
    for (i, c) in ["192.0.2.201", "192.0.2.202", "192.0.2.203"]
        .iter()
        .enumerate()
    {
        obs.push(obs_dns(
            i as f64 * 0.1,
            c,
            r,
            "www.example.com",
            &["198.51.100.80"],
        ));
    }
    obs.push(obs_dns(
        1.0,
        r,
        UPSTREAM_IP,
        "pool.supportxmr.com",
        &[UPSTREAM_IP],
    ));
    obs.push(obs_dns(
        1.0,
        "192.0.2.10",
        r,
        "pool.supportxmr.com",
        &[UPSTREAM_IP],
    ));
    for i in 0..3 {
        let at = 2.0 + f64::from(i);
        obs.push(obs_flow(
            at,
            r,
            UPSTREAM_IP,
            53,
            Proto::Udp,
            AppInfo::default(),
        ));
        obs.push(obs_flow(
            at,
            r,
            UPSTREAM_IP,
            53,
            Proto::Tcp,
            AppInfo::default(),
        ));
    }
    // The client's bound address is its resolver's: its DNS to the resolver is DNS.
    obs.push(obs_dns(6.0, "192.0.2.12", r, "pool.hashvault.pro", &[r]));
    obs.push(obs_flow(
        7.0,
        "192.0.2.12",
        r,
        53,
        Proto::Udp,
        AppInfo::default(),
    ));
    // Stratum on port 53 is still mining.
    let stratum = AppInfo {
        stratum_method: Some("login".into()),
        ..Default::default()
    };
    obs.push(obs_flow(8.0, r, UPSTREAM_IP, 53, Proto::Tcp, stratum));
    let m = engine_run(Blocklists::builtin().unwrap(), &obs);
    assert_eq!(stage_of(&m, r), Some(Stage::Stratum), "{m:#?}");
    let rd = &m[&r.parse::<IpAddr>().unwrap()];
    assert_eq!(rd.iter().map(|d| d.counts.flows).sum::<u64>(), 1, "{rd:#?}");
    assert_eq!(stage_of(&m, "192.0.2.10"), Some(Stage::Lookup));
    assert_eq!(stage_of(&m, "192.0.2.12"), Some(Stage::Lookup));
    assert!(!m.contains_key(&UPSTREAM_IP.parse::<IpAddr>().unwrap()));
}
