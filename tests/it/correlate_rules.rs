//! The resolver rule and the shared-address rule (docs/detections.md), and list precision, on
//! captures built here with the project's pcap builders (`tests/capture_support`). Every
//! scenario runs twice: through the real `poolwatch scan` binary on the written pcap, and
//! through the capture reader + engine directly.

use crate::support::capture as capture_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use capture_support::*;
use poolwatch::capture::{self, CaptureConfig};
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists, ListSource};
use poolwatch::model::{
    AppInfo, Category, Detection, Direction, DnsAnswer, DnsObservation, FlowObservation,
    FlowReport, FlowState, Observation, Proto, Rcode, RrType, Source, Stage, Timestamp, Transport,
};

const RESOLVER_IP: &str = "192.0.2.53";
const UPSTREAM_IP: &str = "198.51.100.53";
const POOL_IP: &str = "203.0.113.10"; // pool.supportxmr.com
const HASHVAULT_IP: &str = "203.0.113.40"; // pool.hashvault.pro

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// A pcap under construction with a running clock and per-flow ports/ids.
struct Cap {
    p: Pcap,
    t: u64,
    port: u16,
    id: u16,
}

impl Cap {
    fn new() -> Self {
        Cap {
            p: Pcap::new(LINKTYPE_ETHERNET),
            t: 1_000_000,
            port: 41_000,
            id: 0x100,
        }
    }
    fn next(&mut self) -> (u16, u16) {
        self.port += 1;
        self.id += 1;
        (self.port, self.id)
    }
    /// `client` asks `server` for `qname` (A) and gets `answers`; advances the clock 10 ms.
    fn dns(&mut self, client: &str, server: &str, qname: &str, answers: &[Rr]) {
        let (port, id) = self.next();
        let (c, s) = (v4(client), v4(server));
        self.p
            .push(self.t, &udp_frame(c, port, s, 53, &query(id, qname, 1)));
        self.p.push(
            self.t + 500,
            &udp_frame(s, 53, c, port, &response(id, qname, 1, 0, answers, &[])),
        );
        self.t += 10_000;
    }
    /// One UDP "response" from port 53 that answers no query that was seen.
    fn unsolicited(&mut self, from: &str, to: &str, qname: &str) {
        let (port, id) = self.next();
        let msg = response(id, qname, 1, 0, &[a(qname, 60, "198.51.100.1")], &[]);
        self.p
            .push(self.t, &udp_frame(v4(from), 53, v4(to), port, &msg));
        self.t += 10_000;
    }
    /// An established TCP session; `data` is the client's first payload (TLS, HTTP, Stratum or
    /// nothing); the server answers with a few bytes. Advances the clock 1 s.
    fn tcp(&mut self, client: &str, server: &str, dport: u16, data: &[u8]) {
        let (port, _) = self.next();
        let mut k = Conn::new(v4(client), port, v4(server), dport);
        k.handshake(&mut self.p, self.t);
        if !data.is_empty() {
            k.client(&mut self.p, self.t + 300, data);
        }
        k.server(&mut self.p, self.t + 400, b"\x16\x03\x03\x00\x04ok!!");
        k.close(&mut self.p, self.t + 500_000);
        self.t += 1_000_000;
    }
    /// A SYN that is never answered.
    fn syn(&mut self, client: &str, server: &str, dport: u16) {
        let (port, _) = self.next();
        self.p.push(
            self.t,
            &tcp_frame(v4(client), port, v4(server), dport, 7, 0, SYN, &[]),
        );
        self.t += 10_000;
    }
    fn wait(&mut self, secs: u64) {
        self.t += secs * 1_000_000;
    }
}

const XMRIG_LOGIN: &[u8] = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4xxx","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64)","algo":["rx/0"]}}
"#;

fn http_get(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8\r\n\r\n").into_bytes()
}

/// Three benign clients resolve through `resolver`: enough for it to be learned.
fn teach_resolver(c: &mut Cap, resolver: &str) {
    for (i, host) in ["192.0.2.201", "192.0.2.202", "192.0.2.203"]
        .iter()
        .enumerate()
    {
        let name = format!("www{i}.example.com");
        c.dns(host, resolver, &name, &[a(&name, 300, "198.51.100.80")]);
    }
}

// ---------------------------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------------------------

struct Outcome {
    /// Strongest stage per client from the scan binary.
    scan: BTreeMap<IpAddr, Vec<Detection>>,
    /// The same from the engine fed by the capture reader.
    engine: BTreeMap<IpAddr, Vec<Detection>>,
    resolvers: Vec<IpAddr>,
}

impl Outcome {
    /// The detection of `client` for `entry` in both runs (they must agree on the stage).
    fn stage(&self, client: &str, entry: &str) -> Option<Stage> {
        let ip: IpAddr = client.parse().unwrap();
        let pick = |m: &BTreeMap<IpAddr, Vec<Detection>>| {
            m.get(&ip)
                .and_then(|v| v.iter().find(|d| d.pool_domain == entry).map(|d| d.stage))
        };
        let (a, b) = (pick(&self.scan), pick(&self.engine));
        assert_eq!(a, b, "scan and engine disagree for {client} / {entry}");
        a
    }
    fn reported(&self, client: &str) -> bool {
        let ip: IpAddr = client.parse().unwrap();
        let a = self.scan.get(&ip).is_some_and(|v| !v.is_empty());
        let b = self.engine.get(&ip).is_some_and(|v| !v.is_empty());
        assert_eq!(
            a, b,
            "scan and engine disagree whether {client} is reported"
        );
        a
    }
    fn detection(&self, client: &str, entry: &str) -> &Detection {
        let ip: IpAddr = client.parse().unwrap();
        self.scan
            .get(&ip)
            .and_then(|v| v.iter().find(|d| d.pool_domain == entry))
            .unwrap_or_else(|| panic!("{client} / {entry} not reported: {:#?}", self.scan))
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs the capture through `poolwatch scan` (with `args`) and through the engine.
fn run(c: &Cap, args: &[&str], lists: Option<&Path>, resolvers: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let pcap = write(dir.path(), "t.pcap", &c.p.bytes);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolwatch"));
    cmd.args(["scan", "--output", "json", "--no-progress"]);
    cmd.args(args);
    if let Some(l) = lists {
        cmd.arg("--blocklist").arg(l);
    }
    for r in resolvers {
        cmd.args(["--resolver", r]);
    }
    let out = cmd.arg(&pcap).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "scan failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scan: BTreeMap<IpAddr, Vec<Detection>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let d: Detection = serde_json::from_str(line).expect("one Detection a line");
        scan.entry(d.client_ip).or_default().push(d);
    }

    let blocklists = match lists {
        Some(l) => Blocklists::load(&[l.to_path_buf()]).unwrap(),
        None => Blocklists::builtin().unwrap(),
    };
    let cfg = EngineConfig {
        resolvers: resolvers.iter().map(|r| r.parse().unwrap()).collect(),
        ..Default::default()
    };
    let mut e = Engine::new(cfg, matcher::shared(blocklists));
    let mut latest: BTreeMap<String, Detection> = BTreeMap::new();
    let reader = capture::open_file(&pcap, &CaptureConfig::default()).unwrap();
    for o in reader {
        for u in e.observe(&o).detections {
            latest.insert(u.detection.id.clone(), u.detection);
        }
    }
    for u in e.drain().detections {
        latest.insert(u.detection.id.clone(), u.detection);
    }
    let mut engine: BTreeMap<IpAddr, Vec<Detection>> = BTreeMap::new();
    for d in latest.into_values() {
        engine.entry(d.client_ip).or_default().push(d);
    }
    let resolvers = [RESOLVER_IP, UPSTREAM_IP, "192.0.2.54", "192.0.2.66"]
        .iter()
        .map(|s| s.parse().unwrap())
        .filter(|ip| e.is_infrastructure(*ip))
        .collect();
    Outcome {
        scan,
        engine,
        resolvers,
    }
}

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

const T0: i64 = 1_795_724_800;

fn ts(secs: f64) -> Timestamp {
    Timestamp::from_secs_f64(T0 as f64 + secs)
}

fn obs_dns(at: f64, client: &str, server: &str, qname: &str, ips: &[&str]) -> Observation {
    Observation::Dns(DnsObservation {
        ts: ts(at),
        client: client.parse().unwrap(),
        client_port: Some(40_000),
        server: Some(server.parse().unwrap()),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(7),
        qname: qname.into(),
        qtype: RrType::A,
        rcode: Some(Rcode::NOERROR),
        answers: ips
            .iter()
            .map(|ip| DnsAnswer {
                name: qname.into(),
                rtype: RrType::A,
                ttl: Some(300),
                data: ip.to_string(),
            })
            .collect(),
        answers_known: true,
        query_seen: true,
        rtt_us: Some(300),
        truncated: false,
        salvaged: None,
        source: Source::pcap("t.pcap"),
    })
}

fn obs_flow(at: f64, src: &str, dst: &str, port: u16, proto: Proto, app: AppInfo) -> Observation {
    Observation::Flow(FlowObservation {
        ts: ts(at),
        last_ts: ts(at + 0.5),
        src: src.parse().unwrap(),
        src_port: 40_001,
        dst: dst.parse().unwrap(),
        dst_port: port,
        proto,
        direction: Direction::Originator,
        state: FlowState::Closed,
        report: FlowReport::Final,
        bytes_out: 60,
        bytes_in: 120,
        packets_out: 1,
        packets_in: 1,
        payload_out: vec![],
        payload_in: vec![],
        app,
        source: Source::pcap("t.pcap"),
    })
}

fn engine_run(lists: Blocklists, obs: &[Observation]) -> BTreeMap<IpAddr, Vec<Detection>> {
    let mut e = Engine::new(EngineConfig::default(), matcher::shared(lists));
    let mut latest: BTreeMap<String, Detection> = BTreeMap::new();
    for o in obs {
        for u in e.observe(o).detections {
            latest.insert(u.detection.id.clone(), u.detection);
        }
    }
    for u in e.drain().detections {
        latest.insert(u.detection.id.clone(), u.detection);
    }
    let mut m: BTreeMap<IpAddr, Vec<Detection>> = BTreeMap::new();
    for d in latest.into_values() {
        m.entry(d.client_ip).or_default().push(d);
    }
    m
}

fn stage_of(m: &BTreeMap<IpAddr, Vec<Detection>>, client: &str) -> Option<Stage> {
    m.get(&client.parse::<IpAddr>().unwrap())
        .and_then(|v| v.iter().map(|d| d.stage).max())
}

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
