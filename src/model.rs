//! The domain model: the observations every input stage produces and the detections the correlation
//! stage makes of them.
//!
//! Both packet input (`capture` + `dns`) and log input (`ingest`) produce the same
//! [`Observation`]s, so everything downstream is independent of where a fact came from. Foreign types
//! (hickory, pcap, sled, axum) never appear here.
//!
//! JSON shapes are part of the public contract (`docs/observations.md`, `docs/detections.md`):
//! change them only by adding fields.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

// ---------------------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------------------

/// A point in time, microseconds since the Unix epoch, UTC.
///
/// Kept as an integer so that observations are cheap to copy and compare and sled keys can be
/// big-endian encodings of it. Serialised as RFC 3339 (`2026-11-26T20:26:41.951234Z`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub const MIN: Timestamp = Timestamp(i64::MIN);
    pub const MAX: Timestamp = Timestamp(i64::MAX);

    pub fn from_micros(us: i64) -> Self {
        Timestamp(us)
    }
    pub fn from_secs_f64(secs: f64) -> Self {
        Timestamp((secs * 1_000_000.0).round() as i64)
    }
    pub fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000))
    }
    pub fn now() -> Self {
        Timestamp(Utc::now().timestamp_micros())
    }
    pub fn as_micros(self) -> i64 {
        self.0
    }
    pub fn as_secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }
    /// `self + secs`, saturating.
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000)))
    }
    pub fn to_datetime(self) -> Option<DateTime<Utc>> {
        Utc.timestamp_micros(self.0).single()
    }
    pub fn to_rfc3339(self) -> String {
        match self.to_datetime() {
            Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
            None => format!("@{}us", self.0),
        }
    }
    /// Parses RFC 3339 (any offset) or a plain Unix epoch in seconds (with optional fraction).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
            return Some(Timestamp(dt.with_timezone(&Utc).timestamp_micros()));
        }
        let f: f64 = s.parse().ok()?;
        if f.is_finite() && f.abs() < 1.0e12 {
            Some(Timestamp::from_secs_f64(f))
        } else {
            None
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            S(String),
            F(f64),
        }
        match Raw::deserialize(d)? {
            Raw::S(s) => Timestamp::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid timestamp {s:?}"))),
            Raw::F(f) if f.is_finite() => Ok(Timestamp::from_secs_f64(f)),
            Raw::F(_) => Err(serde::de::Error::custom("invalid timestamp")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Where an observation came from
// ---------------------------------------------------------------------------------------------

/// Where an observation came from, e.g. `pcap:lab.pcap`, `live:eth1`, `log:bind:/var/log/query.log`,
/// `dnstap:unix:/run/dnstap.sock`. Shared (`Arc`) because every observation of one input carries it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(Arc<str>);

impl Source {
    pub fn new(s: impl Into<Arc<str>>) -> Self {
        Source(s.into())
    }
    pub fn pcap(path: &str) -> Self {
        Source(format!("pcap:{path}").into())
    }
    pub fn live(iface: &str) -> Self {
        Source(format!("live:{iface}").into())
    }
    pub fn log(format: &str, path: &str) -> Self {
        Source(format!("log:{format}:{path}").into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The kind prefix (`pcap`, `live`, `log`, `dnstap`, …).
    pub fn kind(&self) -> &str {
        self.0.split(':').next().unwrap_or("")
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl Serialize for Source {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Source(String::deserialize(d)?.into()))
    }
}

// ---------------------------------------------------------------------------------------------
// DNS codes (numeric inside, mnemonic in JSON)
// ---------------------------------------------------------------------------------------------

/// A DNS RR type (`qtype`, answer `type`). Serialised by mnemonic (`"A"`, `"AAAA"`, `"TYPE65534"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RrType(pub u16);

const RR_TYPES: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (11, "WKS"),
    (12, "PTR"),
    (13, "HINFO"),
    (15, "MX"),
    (16, "TXT"),
    (17, "RP"),
    (18, "AFSDB"),
    (24, "SIG"),
    (25, "KEY"),
    (28, "AAAA"),
    (29, "LOC"),
    (33, "SRV"),
    (35, "NAPTR"),
    (36, "KX"),
    (37, "CERT"),
    (39, "DNAME"),
    (41, "OPT"),
    (42, "APL"),
    (43, "DS"),
    (44, "SSHFP"),
    (45, "IPSECKEY"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (49, "DHCID"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (53, "SMIMEA"),
    (55, "HIP"),
    (59, "CDS"),
    (60, "CDNSKEY"),
    (61, "OPENPGPKEY"),
    (62, "CSYNC"),
    (63, "ZONEMD"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (99, "SPF"),
    (108, "EUI48"),
    (109, "EUI64"),
    (249, "TKEY"),
    (250, "TSIG"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (256, "URI"),
    (257, "CAA"),
    (32768, "TA"),
    (32769, "DLV"),
];

impl RrType {
    pub const A: RrType = RrType(1);
    pub const NS: RrType = RrType(2);
    pub const CNAME: RrType = RrType(5);
    pub const SOA: RrType = RrType(6);
    pub const PTR: RrType = RrType(12);
    pub const MX: RrType = RrType(15);
    pub const TXT: RrType = RrType(16);
    pub const AAAA: RrType = RrType(28);
    pub const SRV: RrType = RrType(33);
    pub const DNAME: RrType = RrType(39);
    pub const OPT: RrType = RrType(41);
    pub const SVCB: RrType = RrType(64);
    pub const HTTPS: RrType = RrType(65);
    pub const ANY: RrType = RrType(255);

    pub fn name(self) -> Option<&'static str> {
        RR_TYPES.iter().find(|(n, _)| *n == self.0).map(|(_, s)| *s)
    }
    /// Parses a mnemonic (case-insensitive) or `TYPEnnn`, or a bare number.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some((n, _)) = RR_TYPES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
            return Some(RrType(*n));
        }
        let upper = s.to_ascii_uppercase();
        if let Some(num) = upper.strip_prefix("TYPE") {
            return num.parse().ok().map(RrType);
        }
        s.parse().ok().map(RrType)
    }
}

impl fmt::Display for RrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "TYPE{}", self.0),
        }
    }
}
impl fmt::Debug for RrType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl Serialize for RrType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for RrType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RrType::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown RR type {s:?}")))
    }
}

/// A DNS response code, extended (12-bit) where EDNS supplied the upper bits.
/// Serialised by mnemonic (`"NOERROR"`, `"NXDOMAIN"`, `"RCODE23"`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rcode(pub u16);

const RCODES: &[(u16, &str)] = &[
    (0, "NOERROR"),
    (1, "FORMERR"),
    (2, "SERVFAIL"),
    (3, "NXDOMAIN"),
    (4, "NOTIMP"),
    (5, "REFUSED"),
    (6, "YXDOMAIN"),
    (7, "YXRRSET"),
    (8, "NXRRSET"),
    (9, "NOTAUTH"),
    (10, "NOTZONE"),
    (11, "DSOTYPENI"),
    (16, "BADVERS"),
    (17, "BADKEY"),
    (18, "BADTIME"),
    (19, "BADMODE"),
    (20, "BADNAME"),
    (21, "BADALG"),
    (22, "BADTRUNC"),
    (23, "BADCOOKIE"),
];

impl Rcode {
    pub const NOERROR: Rcode = Rcode(0);
    pub const FORMERR: Rcode = Rcode(1);
    pub const SERVFAIL: Rcode = Rcode(2);
    pub const NXDOMAIN: Rcode = Rcode(3);
    pub const REFUSED: Rcode = Rcode(5);

    pub fn name(self) -> Option<&'static str> {
        RCODES.iter().find(|(n, _)| *n == self.0).map(|(_, s)| *s)
    }
    /// Parses a mnemonic (case-insensitive, `NXDOMAIN`), `RCODEnn` or a bare number.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some((n, _)) = RCODES.iter().find(|(_, m)| m.eq_ignore_ascii_case(s)) {
            return Some(Rcode(*n));
        }
        let upper = s.to_ascii_uppercase();
        if let Some(num) = upper.strip_prefix("RCODE") {
            return num.parse().ok().map(Rcode);
        }
        s.parse().ok().map(Rcode)
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}
impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
impl Serialize for Rcode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Rcode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Rcode::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown rcode {s:?}")))
    }
}

// ---------------------------------------------------------------------------------------------
// Observations
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    /// DNS over TLS/HTTPS/QUIC as reported by a resolver log.
    Encrypted,
    Unknown,
}

/// One answer-section record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// Owner name, normalised (lowercase, no trailing dot).
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: RrType,
    /// TTL in seconds, when the source carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// Presentation form of the data: an address for A/AAAA, a normalised name for
    /// CNAME/DNAME/NS/PTR, the rest as the source gave it.
    pub data: String,
}

impl DnsAnswer {
    /// The address carried by an A/AAAA answer.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.rtype {
            RrType::A | RrType::AAAA => self.data.parse().ok(),
            _ => None,
        }
    }
}

/// One DNS transaction as seen by a sensor or written by a resolver: a query, its response, or both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DnsObservation {
    /// When the query was sent (or, for an unsolicited response, when the response was seen).
    pub ts: Timestamp,
    /// The host that asked.
    pub client: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_port: Option<u16>,
    /// The resolver that was asked, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_port: Option<u16>,
    pub transport: Transport,
    /// DNS transaction id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u16>,
    /// Query name: lowercase, no trailing dot, `.` for the root.
    pub qname: String,
    pub qtype: RrType,
    /// Absent when no response was seen (or the source logs queries only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<Rcode>,
    #[serde(default)]
    pub answers: Vec<DnsAnswer>,
    /// False when the source cannot carry answers (query-only logs): an empty `answers` then
    /// means "unknown", not "none".
    #[serde(default = "yes")]
    pub answers_known: bool,
    /// Whether the query itself was seen (false for an unsolicited response, or a log reply line
    /// whose query line was not seen).
    #[serde(default = "yes")]
    pub query_seen: bool,
    /// Round-trip time between query and response, microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
    /// TC bit of the response.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Set when the message was malformed and only part of it could be salvaged (the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salvaged: Option<String>,
    pub source: Source,
}

impl DnsObservation {
    /// Addresses from A/AAAA answers.
    pub fn answer_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.answers.iter().filter_map(DnsAnswer::ip)
    }
    /// Targets of CNAME/DNAME answers, in order (the chain).
    pub fn cname_targets(&self) -> impl Iterator<Item = &str> + '_ {
        self.answers
            .iter()
            .filter(|a| a.rtype == RrType::CNAME || a.rtype == RrType::DNAME)
            .map(|a| a.data.as_str())
    }
    /// When the response arrived, when it is known.
    pub fn response_ts(&self) -> Option<Timestamp> {
        self.rtt_us
            .map(|rtt| Timestamp(self.ts.0.saturating_add(rtt as i64)))
    }
}

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
// Detections
// ---------------------------------------------------------------------------------------------

/// How far a host got towards mining, weakest first. `Ord` follows strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Resolved a pool name.
    Lookup,
    /// Tried to resolve a pool name and the answer was blocked (NXDOMAIN, 0.0.0.0, sinkhole).
    BlockedLookup,
    /// Tried to connect to an address from a pool answer; no handshake.
    ConnectionAttempt,
    /// Connected to an address from its own pool answer.
    Connection,
    /// Connected to a pool address it never resolved itself (hard-coded IP, hosts file, DoH).
    DirectIp,
    /// Mining protocol (Stratum / XMRig JSON-RPC) seen on the wire.
    Stratum,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Lookup,
        Stage::BlockedLookup,
        Stage::ConnectionAttempt,
        Stage::Connection,
        Stage::DirectIp,
        Stage::Stratum,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lookup => "lookup",
            Stage::BlockedLookup => "blocked_lookup",
            Stage::ConnectionAttempt => "connection_attempt",
            Stage::Connection => "connection",
            Stage::DirectIp => "direct_ip",
            Stage::Stratum => "stratum",
        }
    }
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
    /// Whether this stage means traffic actually went to a pool (not only a name lookup).
    pub fn is_contact(self) -> bool {
        self >= Stage::ConnectionAttempt
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Category of a list entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Mining pool (Stratum endpoints, pool web front-ends on the same domain).
    Pool,
    /// In-browser mining service (cryptojacking scripts).
    BrowserMiner,
    /// Mining proxy / relay services.
    MinerProxy,
    /// Known false positive; never reported.
    Allow,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pool => "pool",
            Category::BrowserMiner => "browser_miner",
            Category::MinerProxy => "miner_proxy",
            Category::Allow => "allow",
        }
    }
    pub fn parse(s: &str) -> Option<Category> {
        match s {
            "pool" => Some(Category::Pool),
            "browser_miner" => Some(Category::BrowserMiner),
            "miner_proxy" => Some(Category::MinerProxy),
            "allow" => Some(Category::Allow),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which list entry matched: the answer to "which list flagged this?".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListHit {
    /// List name (from the manifest, or the file stem of a user list).
    pub list: String,
    /// The entry as normalised (`supportxmr.com`, `203.0.113.0/24`, `198.51.100.7:3333`).
    pub entry: String,
    pub category: Category,
    /// 1-based line in the list file (0 when the entry did not come from a file).
    pub line: u32,
}

/// What kind of fact an evidence item records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A DNS query for a listed name (or with a listed CNAME target).
    DnsLookup,
    /// A DNS answer that shows the lookup was blocked.
    DnsBlocked,
    /// A flow to a pool address.
    Flow,
    /// A TLS ClientHello naming a pool.
    TlsSni,
    /// Mining protocol on the wire.
    Stratum,
}

/// One thing that was seen, with when and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub ts: Timestamp,
    pub kind: EvidenceKind,
    pub source: Source,
    /// One-line human summary, e.g. `A pool.supportxmr.com -> 127.20.141.17 (ttl 300)`.
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcode: Option<Rcode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dst_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<FlowState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

impl Evidence {
    /// An evidence item with only the required fields set.
    pub fn new(ts: Timestamp, kind: EvidenceKind, source: Source, summary: String) -> Self {
        Evidence {
            ts,
            kind,
            source,
            summary,
            qname: None,
            rcode: None,
            answers: Vec::new(),
            dst: None,
            dst_port: None,
            src_port: None,
            state: None,
            bytes_out: None,
            bytes_in: None,
            duration_ms: None,
            agent: None,
            method: None,
        }
    }
}

/// MITRE ATT&CK mapping; constant for this detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mitre {
    pub technique: String,
    pub technique_name: String,
    pub tactic: String,
    pub tactic_id: String,
}

impl Default for Mitre {
    fn default() -> Self {
        Mitre {
            technique: "T1496".into(),
            technique_name: "Resource Hijacking".into(),
            tactic: "Impact".into(),
            tactic_id: "TA0040".into(),
        }
    }
}

/// Running counts behind a detection.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionCounts {
    pub lookups: u64,
    pub blocked_lookups: u64,
    pub flows: u64,
    pub established_flows: u64,
    pub stratum_flows: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// The kill-chain stage every detection maps to.
pub const KILL_CHAIN: &str = "actions_on_objective";
/// The name of the detection, as the reference NDR calls it.
pub const DETECTION_TITLE: &str = "New Cryptocurrency Mining Activity";
/// Version of the detection JSON shape (bumped only for additive changes, documented).
pub const DETECTION_SCHEMA_VERSION: u32 = 1;

/// One mining incident of one client with one pool entry, updated as stronger evidence arrives.
/// The JSON contract is documented in `docs/detections.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    pub id: String,
    pub client_ip: IpAddr,
    pub stage: Stage,
    /// 0–100; see `docs/detections.md` for the scale.
    pub risk_score: u8,
    /// The matched list entry (a domain, or an IP/CIDR/endpoint for IP-list matches, or
    /// `stratum` when only the protocol identified the pool).
    pub pool_domain: String,
    pub query_names: Vec<String>,
    pub pool_ips: Vec<IpAddr>,
    pub dst_ports: Vec<u16>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// True when this client had no mining detection in the look-back window before this one.
    pub is_new: bool,
    /// Bounded (oldest and strongest kept); see `counts` for totals.
    pub evidence: Vec<Evidence>,
    pub sources: Vec<Source>,
    pub lists: Vec<ListHit>,
    #[serde(default)]
    pub mitre: Mitre,
    #[serde(default = "kill_chain")]
    pub kill_chain: String,
    // --- additions beyond the first contract (additive only) ---
    #[serde(default = "title")]
    pub title: String,
    #[serde(default)]
    pub counts: DetectionCounts,
    /// Miner agent strings seen in Stratum logins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    /// Set when a suppression rule covers this incident (it is still recorded).
    #[serde(default)]
    pub suppressed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression_id: Option<String>,
    /// When the stage last rose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_changed: Option<Timestamp>,
    #[serde(default = "schema_version")]
    pub schema_version: u32,
    /// Found by a retro-hunt: the history held this activity from before its list entry was
    /// added (`docs/hunt.md`). Absent (false) for live detections.
    #[serde(default, skip_serializing_if = "is_false")]
    pub retro: bool,
}

fn kill_chain() -> String {
    KILL_CHAIN.to_string()
}
fn title() -> String {
    DETECTION_TITLE.to_string()
}
fn schema_version() -> u32 {
    DETECTION_SCHEMA_VERSION
}
fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// Lowercase, strip one trailing dot; the root stays `.`. Used by every input stage so that names
/// compare equal whatever case or form the source used.
pub fn normalize_name(name: &str) -> String {
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return ".".to_string();
    }
    trimmed.to_ascii_lowercase()
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_rfc3339_round_trip() {
        let t = Timestamp::from_micros(1_795_724_797_123_456);
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(s, "\"2026-11-26T20:26:37.123456Z\"");
        let back: Timestamp = serde_json::from_str(&s).unwrap();
        assert_eq!(back, t);
        let from_epoch: Timestamp = serde_json::from_str("1795724797.123456").unwrap();
        assert_eq!(from_epoch, t);
    }

    #[test]
    fn codes_by_mnemonic() {
        assert_eq!(RrType::parse("aaaa"), Some(RrType::AAAA));
        assert_eq!(RrType::parse("TYPE65534"), Some(RrType(65534)));
        assert_eq!(RrType(65534).to_string(), "TYPE65534");
        assert_eq!(Rcode::parse("NXDOMAIN"), Some(Rcode::NXDOMAIN));
        assert_eq!(Rcode(4000).to_string(), "RCODE4000");
    }

    #[test]
    fn stage_order_is_strength() {
        let mut v = Stage::ALL.to_vec();
        v.reverse();
        v.sort();
        assert_eq!(v, Stage::ALL.to_vec());
        assert!(Stage::Stratum > Stage::DirectIp);
        assert!(Stage::Connection.is_contact());
        assert!(!Stage::BlockedLookup.is_contact());
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_name("Pool.HashVault.PRO."), "pool.hashvault.pro");
        assert_eq!(normalize_name("."), ".");
        assert_eq!(normalize_name(""), ".");
    }
}
