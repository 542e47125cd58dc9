//! Public observation builders: one place that spells out every field of a `DnsObservation`
//! and a `FlowObservation`, so a test names only what its scenario is about and a new model
//! field is added here once, not in every test file.
//!
//! ```ignore
//! let q = dns(at(0.0), "10.0.0.1", "pool.supportxmr.com").a(&["203.0.113.10"]).build();
//! let f = flow(at(1.0), "10.0.0.1", "203.0.113.10", 3333).state(FlowState::Established).build();
//! ```
#![allow(dead_code)]

use std::net::IpAddr;

use poolwatch::model::*;

/// 2026-11-26T12:26:40Z: the common time origin of the hand-built scenarios.
pub const T0: i64 = 1_795_724_800;

/// `T0 + secs`.
pub fn at(secs: f64) -> Timestamp {
    Timestamp::from_secs_f64(T0 as f64 + secs)
}

/// An address literal of a test (panics on a typo, which is a broken test).
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A DNS transaction under construction; [`dns`] starts one.
pub struct Dns(DnsObservation);

/// A UDP A query of `client` for `qname`, answered NOERROR (no records yet) by the site resolver
/// `192.0.2.53:53`, from client port 40000, transaction id 1, RTT 500 µs, source `pcap:t.pcap`.
pub fn dns(ts: Timestamp, client: &str, qname: &str) -> Dns {
    Dns(DnsObservation {
        ts,
        client: ip(client),
        client_port: Some(40_000),
        server: Some(ip("192.0.2.53")),
        server_port: Some(53),
        transport: Transport::Udp,
        id: Some(1),
        qname: qname.into(),
        qtype: RrType::A,
        rcode: Some(Rcode::NOERROR),
        answers: Vec::new(),
        answers_known: true,
        query_seen: true,
        rtt_us: Some(500),
        truncated: false,
        salvaged: None,
        source: Source::pcap("t.pcap"),
    })
}

impl Dns {
    /// Adds one record for the query name per address (A or AAAA by the address), TTL 300.
    pub fn a(self, addrs: &[&str]) -> Self {
        let name = self.0.qname.clone();
        let recs: Vec<(&str, &str)> = addrs.iter().map(|a| (name.as_str(), *a)).collect();
        self.records(&recs, 300)
    }

    /// Adds `(owner, data)` records with `ttl`: A/AAAA when `data` is an address, else CNAME.
    pub fn records(mut self, recs: &[(&str, &str)], ttl: u32) -> Self {
        for (name, data) in recs {
            let rtype = match data.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => RrType::A,
                Ok(IpAddr::V6(_)) => RrType::AAAA,
                Err(_) => RrType::CNAME,
            };
            self.0.answers.push(DnsAnswer {
                name: name.to_string(),
                rtype,
                ttl: Some(ttl),
                data: data.to_string(),
            });
        }
        self
    }

    pub fn rcode(mut self, rcode: Option<Rcode>) -> Self {
        self.0.rcode = rcode;
        self
    }

    pub fn qtype(mut self, qtype: RrType) -> Self {
        self.0.qtype = qtype;
        self
    }

    /// The answering server (`None`: a log line that does not name it).
    pub fn server(mut self, server: Option<&str>, port: Option<u16>) -> Self {
        self.0.server = server.map(ip);
        self.0.server_port = port;
        self
    }

    pub fn client_port(mut self, port: Option<u16>) -> Self {
        self.0.client_port = port;
        self
    }

    pub fn id(mut self, id: Option<u16>) -> Self {
        self.0.id = id;
        self
    }

    pub fn rtt_us(mut self, rtt: Option<u64>) -> Self {
        self.0.rtt_us = rtt;
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.0.source = source;
        self
    }

    pub fn inner(self) -> DnsObservation {
        self.0
    }

    pub fn build(self) -> Observation {
        Observation::Dns(self.0)
    }
}

/// A flow under construction; [`flow`] starts one.
pub struct Flow(FlowObservation);

/// A closed TCP flow `src:40000 → dst:port` reported once (final), lasting one second, 100 bytes
/// and 3 packets each way, no payload, no application data, source `pcap:t.pcap`.
pub fn flow(ts: Timestamp, src: &str, dst: &str, port: u16) -> Flow {
    Flow(FlowObservation {
        ts,
        last_ts: Timestamp(ts.0 + 1_000_000),
        src: ip(src),
        src_port: 40_000,
        dst: ip(dst),
        dst_port: port,
        proto: Proto::Tcp,
        direction: Direction::Originator,
        state: FlowState::Closed,
        report: FlowReport::Final,
        bytes_out: 100,
        bytes_in: 100,
        packets_out: 3,
        packets_in: 3,
        payload_out: vec![],
        payload_in: vec![],
        app: AppInfo::default(),
        source: Source::pcap("t.pcap"),
    })
}

impl Flow {
    pub fn state(mut self, state: FlowState) -> Self {
        self.0.state = state;
        self
    }

    pub fn proto(mut self, proto: Proto) -> Self {
        self.0.proto = proto;
        self
    }

    pub fn report(mut self, report: FlowReport) -> Self {
        self.0.report = report;
        self
    }

    pub fn src_port(mut self, port: u16) -> Self {
        self.0.src_port = port;
        self
    }

    /// The time of the flow's last packet.
    pub fn last(mut self, last: Timestamp) -> Self {
        self.0.last_ts = last;
        self
    }

    pub fn bytes(mut self, out: u64, inb: u64) -> Self {
        self.0.bytes_out = out;
        self.0.bytes_in = inb;
        self
    }

    pub fn packets(mut self, out: u64, inp: u64) -> Self {
        self.0.packets_out = out;
        self.0.packets_in = inp;
        self
    }

    pub fn payload_out(mut self, payload: &[u8]) -> Self {
        self.0.payload_out = payload.to_vec();
        self
    }

    pub fn app(mut self, app: AppInfo) -> Self {
        self.0.app = app;
        self
    }

    pub fn source(mut self, source: Source) -> Self {
        self.0.source = source;
        self
    }

    pub fn inner(self) -> FlowObservation {
        self.0
    }

    pub fn build(self) -> Observation {
        Observation::Flow(self.0)
    }
}
