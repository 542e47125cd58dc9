//! Flow observations, the observation enum, and the pool-flow record the correlation stage
//! keeps of each flow it attributed.

use super::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

/// Whether `src` is known to be the flow's originator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The originator was seen opening the flow (TCP SYN, or the first UDP packet).
    Originator,
    /// Picked up mid-stream; orientation inferred (the side on the lower/well-known port is the server).
    Inferred,
}

/// Lifecycle of a flow, from weakest to strongest evidence of a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowState {
    /// SYN (or one-way UDP) seen, no answer.
    Attempted,
    /// The server refused (RST to the SYN, or ICMP unreachable).
    Rejected,
    /// Handshake completed (or UDP traffic in both directions); still open.
    Established,
    /// Established, then ended by FIN or RST.
    Closed,
}

impl FlowState {
    /// The serialised name (`serde`'s `snake_case`).
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::Attempted => "attempted",
            FlowState::Rejected => "rejected",
            FlowState::Established => "established",
            FlowState::Closed => "closed",
        }
    }
}

/// Whether this flow record is a progress report or the last word on the flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FlowReport {
    /// The flow is still open; a later record for the same flow supersedes this one.
    Interim,
    /// The flow ended, was evicted, or the input ended.
    #[default]
    Final,
}

/// What was recognised in a flow's first payload bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Stratum / mining JSON-RPC method seen (`mining.subscribe`, `login`, `eth_submitLogin`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_method: Option<String>,
    /// Miner agent string (`XMRig/6.21.0 …`), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_agent: Option<String>,
    /// Miner login/worker (wallet address), truncated, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_login: Option<String>,
    /// SNI of a TLS ClientHello, normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The first client bytes were a TLS handshake.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls: bool,
    /// HTTP `Host` header of a cleartext request, normalised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_host: Option<String>,
}

impl AppInfo {
    pub fn is_stratum(&self) -> bool {
        self.stratum_method.is_some()
    }
}

/// One transport flow (a TCP connection or a UDP 5-tuple), oriented originator → responder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlowObservation {
    /// First packet of the flow.
    pub ts: Timestamp,
    /// Last packet seen so far.
    pub last_ts: Timestamp,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: Proto,
    pub direction: Direction,
    pub state: FlowState,
    #[serde(default)]
    pub report: FlowReport,
    /// Bytes of transport payload, originator → responder.
    pub bytes_out: u64,
    /// Bytes of transport payload, responder → originator.
    pub bytes_in: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    /// First payload bytes from the originator (at most `capture::PAYLOAD_PREFIX_MAX`), hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_bytes")]
    pub payload_out: Vec<u8>,
    /// First payload bytes from the responder, hex.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_bytes")]
    pub payload_in: Vec<u8>,
    #[serde(default)]
    pub app: AppInfo,
    pub source: Source,
}

impl FlowObservation {
    pub fn duration_us(&self) -> i64 {
        self.last_ts.0.saturating_sub(self.ts.0).max(0)
    }
}

/// The one event type that flows from the input stages into correlation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "observation", rename_all = "lowercase")]
pub enum Observation {
    Dns(DnsObservation),
    Flow(FlowObservation),
}

impl Observation {
    /// Event time used to merge inputs: query time for DNS, last activity for flows (a flow is
    /// reported after the packets it summarises).
    pub fn ts(&self) -> Timestamp {
        match self {
            Observation::Dns(d) => d.ts,
            Observation::Flow(f) => f.last_ts,
        }
    }
    pub fn source(&self) -> &Source {
        match self {
            Observation::Dns(d) => &d.source,
            Observation::Flow(f) => &f.source,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pool flows
// ---------------------------------------------------------------------------------------------

/// A flow that touched a bound or listed pool address: the evidence an analyst drills into.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolFlow {
    pub detection_id: String,
    pub client: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    pub dst_port: u16,
    pub proto: Proto,
    pub start: Timestamp,
    pub last: Timestamp,
    pub state: FlowState,
    pub report: FlowReport,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub packets_in: u64,
    pub duration_ms: u64,
    /// What the flow was graded as.
    pub stage: Stage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stratum_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    pub source: Source,
    /// Why the flow belongs to the pool: "own lookup", "tls sni", "http host", "address bound
    /// by another client's lookup", "listed pool address" or "stratum payload". Lets an analyst (and the
    /// bench gates) tell a flow that followed this client's own answer from a direct-IP one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<How>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            // Writing to a String cannot fail.
            let _ = write!(out, "{b:02x}");
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd-length hex"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("invalid hex"))
            })
            .collect()
    }
}

/// How a flow was attributed to a pool entry; `as_str` is the text of
/// `PoolFlow::attribution` and of the evidence summaries (a public string).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum How {
    /// The client's own pool lookup returned the address.
    #[serde(rename = "own lookup")]
    OwnLookup,
    /// The TLS ClientHello named a listed host.
    #[serde(rename = "tls sni")]
    TlsSni,
    /// The HTTP request's Host header named a listed host.
    #[serde(rename = "http host")]
    HttpHost,
    /// Another client's pool lookup returned the address.
    #[serde(rename = "address bound by another client's lookup")]
    OtherClientBinding,
    /// The address (or endpoint) is on an IP list.
    #[serde(rename = "listed pool address")]
    ListedAddress,
    /// Only the mining protocol on the wire identifies the pool.
    #[serde(rename = "stratum payload")]
    StratumPayload,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::OwnLookup => "own lookup",
            How::TlsSni => "tls sni",
            How::HttpHost => "http host",
            How::OtherClientBinding => "address bound by another client's lookup",
            How::ListedAddress => "listed pool address",
            How::StratumPayload => "stratum payload",
        }
    }

    /// Attributed by a name the flow itself carries (counted like a lookup).
    pub fn is_flow_name(self) -> bool {
        matches!(self, How::TlsSni | How::HttpHost)
    }
}
