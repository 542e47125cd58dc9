//! DNS observations and the DNS codes they carry (numeric inside, mnemonic in JSON).

use super::*;

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

/// A DNS message the packet fast path did not decode (issue #16, `capture::txn`): no listed
/// name, no answer address the correlation stage holds state for. It still counts as an
/// observation and moves the engine's clock; these are the only fields the engine reads of
/// such a message (`correlate::skip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsSkim {
    /// The observation time it would have had (the query's time when paired).
    pub ts: Timestamp,
    pub client: IpAddr,
    pub server: IpAddr,
    /// A response (paired or unsolicited); `false`: a query reported unanswered.
    pub answered: bool,
    /// The query was seen (`DnsObservation::query_seen`).
    pub query_seen: bool,
}

#[cfg(test)]
impl DnsObservation {
    /// For unit tests: `client` (port 40000) asked 192.0.2.53:53 over UDP for `qname`'s A
    /// record and got one answer, `qname` → `addr` (TTL 300), read from `t.pcap`.
    pub(crate) fn test_lookup(ts: Timestamp, client: IpAddr, qname: &str, addr: &str) -> Self {
        DnsObservation {
            ts,
            client,
            client_port: Some(40_000),
            server: Some(IpAddr::from([192, 0, 2, 53])),
            server_port: Some(53),
            transport: Transport::Udp,
            id: Some(1),
            qname: qname.into(),
            qtype: RrType::A,
            rcode: Some(Rcode::NOERROR),
            answers: vec![DnsAnswer {
                name: qname.into(),
                rtype: RrType::A,
                ttl: Some(300),
                data: addr.into(),
            }],
            answers_known: true,
            query_seen: true,
            rtt_us: None,
            truncated: false,
            salvaged: None,
            source: Source::pcap("t.pcap"),
        }
    }
}
