//! Test support for the correlation-rule tests (`correlate_rules`, `correlate_shared_address`):
//! a capture scenario built with the pcap builders (`Cap`) and run twice — through the real
//! `poolwatch scan` binary on the written pcap and through the capture reader + engine — plus
//! engine-level observation shortcuts over [`super::obs`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use poolwatch::capture::{self, CaptureConfig};
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{AppInfo, Detection, Observation, Proto, Stage, Timestamp};

use super::capture::*;
use super::obs;

pub const RESOLVER_IP: &str = "192.0.2.53";
pub const UPSTREAM_IP: &str = "198.51.100.53";
pub const POOL_IP: &str = "203.0.113.10"; // pool.supportxmr.com
pub const HASHVAULT_IP: &str = "203.0.113.40"; // pool.hashvault.pro

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

/// A pcap under construction with a running clock and per-flow ports/ids.
pub struct Cap {
    pub p: Pcap,
    pub t: u64,
    pub port: u16,
    pub id: u16,
}

impl Cap {
    pub fn new() -> Self {
        Cap {
            p: Pcap::new(LINKTYPE_ETHERNET),
            t: 1_000_000,
            port: 41_000,
            id: 0x100,
        }
    }
    pub fn next(&mut self) -> (u16, u16) {
        self.port += 1;
        self.id += 1;
        (self.port, self.id)
    }
    /// `client` asks `server` for `qname` (A) and gets `answers`; advances the clock 10 ms.
    pub fn dns(&mut self, client: &str, server: &str, qname: &str, answers: &[Rr]) {
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
    pub fn unsolicited(&mut self, from: &str, to: &str, qname: &str) {
        let (port, id) = self.next();
        let msg = response(id, qname, 1, 0, &[a(qname, 60, "198.51.100.1")], &[]);
        self.p
            .push(self.t, &udp_frame(v4(from), 53, v4(to), port, &msg));
        self.t += 10_000;
    }
    /// An established TCP session; `data` is the client's first payload (TLS, HTTP, Stratum or
    /// nothing); the server answers with a few bytes. Advances the clock 1 s.
    pub fn tcp(&mut self, client: &str, server: &str, dport: u16, data: &[u8]) {
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
    pub fn syn(&mut self, client: &str, server: &str, dport: u16) {
        let (port, _) = self.next();
        self.p.push(
            self.t,
            &tcp_frame(v4(client), port, v4(server), dport, 7, 0, SYN, &[]),
        );
        self.t += 10_000;
    }
    pub fn wait(&mut self, secs: u64) {
        self.t += secs * 1_000_000;
    }
}

pub const XMRIG_LOGIN: &[u8] = br#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"4xxx","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64)","algo":["rx/0"]}}
"#;

pub fn http_get(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/8\r\n\r\n").into_bytes()
}

/// Three benign clients resolve through `resolver`: enough for it to be learned.
pub fn teach_resolver(c: &mut Cap, resolver: &str) {
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

pub struct Outcome {
    /// Strongest stage per client from the scan binary.
    pub scan: BTreeMap<IpAddr, Vec<Detection>>,
    /// The same from the engine fed by the capture reader.
    pub engine: BTreeMap<IpAddr, Vec<Detection>>,
    pub resolvers: Vec<IpAddr>,
}

impl Outcome {
    /// The detection of `client` for `entry` in both runs (they must agree on the stage).
    pub fn stage(&self, client: &str, entry: &str) -> Option<Stage> {
        let ip: IpAddr = client.parse().unwrap();
        let pick = |m: &BTreeMap<IpAddr, Vec<Detection>>| {
            m.get(&ip)
                .and_then(|v| v.iter().find(|d| d.pool_domain == entry).map(|d| d.stage))
        };
        let (a, b) = (pick(&self.scan), pick(&self.engine));
        assert_eq!(a, b, "scan and engine disagree for {client} / {entry}");
        a
    }
    pub fn reported(&self, client: &str) -> bool {
        let ip: IpAddr = client.parse().unwrap();
        let a = self.scan.get(&ip).is_some_and(|v| !v.is_empty());
        let b = self.engine.get(&ip).is_some_and(|v| !v.is_empty());
        assert_eq!(
            a, b,
            "scan and engine disagree whether {client} is reported"
        );
        a
    }
    pub fn detection(&self, client: &str, entry: &str) -> &Detection {
        let ip: IpAddr = client.parse().unwrap();
        self.scan
            .get(&ip)
            .and_then(|v| v.iter().find(|d| d.pool_domain == entry))
            .unwrap_or_else(|| panic!("{client} / {entry} not reported: {:#?}", self.scan))
    }
}

pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs the capture through `poolwatch scan` (with `args`) and through the engine.
pub fn run(c: &Cap, args: &[&str], lists: Option<&Path>, resolvers: &[&str]) -> Outcome {
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
// Engine level: observations fed straight to an engine
// ---------------------------------------------------------------------------------------------

/// `obs::T0 + secs`.
pub fn ts(secs: f64) -> Timestamp {
    obs::at(secs)
}

pub fn obs_dns(at: f64, client: &str, server: &str, qname: &str, ips: &[&str]) -> Observation {
    obs::dns(ts(at), client, qname)
        .server(Some(server), Some(53))
        .id(Some(7))
        .rtt_us(Some(300))
        .a(ips)
        .build()
}

pub fn obs_flow(
    at: f64,
    src: &str,
    dst: &str,
    port: u16,
    proto: Proto,
    app: AppInfo,
) -> Observation {
    obs::flow(ts(at), src, dst, port)
        .last(ts(at + 0.5))
        .src_port(40_001)
        .proto(proto)
        .bytes(60, 120)
        .packets(1, 1)
        .app(app)
        .build()
}

pub fn engine_run(lists: Blocklists, obs: &[Observation]) -> BTreeMap<IpAddr, Vec<Detection>> {
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

pub fn stage_of(m: &BTreeMap<IpAddr, Vec<Detection>>, client: &str) -> Option<Stage> {
    m.get(&client.parse::<IpAddr>().unwrap())
        .and_then(|v| v.iter().map(|d| d.stage).max())
}
