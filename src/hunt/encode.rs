//! Key and value encodings of the history trees (layout and sizes: `docs/hunt.md`).
//!
//! Keys start with the day (days since the Unix epoch, `u32` big-endian) so that a day is one
//! key range. Names are stored with reversed labels and a trailing dot (`pool.supportxmr.com`
//! → `com.supportxmr.pool.`), so "this name and everything below it" is one prefix scan that
//! respects label boundaries. Values start with a version byte; times are milliseconds within
//! the day (`u32`), counts and byte totals LEB128 varints. Decoding never panics: a row that
//! does not decode is skipped and counted by the caller.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::Timestamp;

/// Version byte of every value written by this code.
pub const VALUE_V1: u8 = 1;
/// Microseconds in a day.
pub const DAY_US: i64 = 86_400 * 1_000_000;
/// Longest name kept (the DNS limit); longer ones are not names.
pub const MAX_NAME_LEN: usize = 253;
/// Longest SNI / HTTP Host / Stratum method kept in a flow summary.
pub const MAX_FLOW_NAME_LEN: usize = 128;
/// Longest miner agent kept in a flow summary.
pub const MAX_AGENT_LEN: usize = 96;

/// Row kinds below a name (the byte after the name's terminating `0x00`).
pub const KIND_LOOKUP: u8 = 1;
/// The client asked for another name whose CNAME chain reached this one.
pub const KIND_VIA_CNAME: u8 = 2;
/// A flow of the client named this name (TLS SNI or HTTP Host).
pub const KIND_FLOW_NAME: u8 = 3;

// ---------------------------------------------------------------------------------------------
// Days and times
// ---------------------------------------------------------------------------------------------

/// The day of `ts` (days since 1970-01-01, UTC); times before 1970 are day 0.
pub fn day_of(ts: Timestamp) -> u32 {
    u32::try_from(ts.0.div_euclid(DAY_US).max(0)).unwrap_or(u32::MAX)
}

/// Milliseconds of `ts` within its day.
pub fn ms_of_day(ts: Timestamp) -> u32 {
    u32::try_from(ts.0.rem_euclid(DAY_US) / 1_000).unwrap_or(0)
}

/// The time `ms` milliseconds into `day`.
pub fn at(day: u32, ms: u32) -> Timestamp {
    Timestamp(i64::from(day) * DAY_US + i64::from(ms) * 1_000)
}

/// `YYYY-MM-DD` of a day.
pub fn day_label(day: u32) -> String {
    match at(day, 0).to_datetime() {
        Some(dt) => dt.format("%Y-%m-%d").to_string(),
        None => format!("day{day}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/// Whether `name` can be stored: 1..=253 bytes of printable ASCII without spaces (every input
/// normalises names to lowercase; anything else is not a name a list could hold).
pub fn storable_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| (0x21..0x7f).contains(&b))
        && !name.starts_with('.')
        && !name.contains("..")
}

/// `pool.supportxmr.com` → `com.supportxmr.pool.`.
pub fn reverse_name(name: &str) -> String {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = String::with_capacity(name.len() + 1);
    for label in name.rsplit('.') {
        out.push_str(label);
        out.push('.');
    }
    out
}

/// `com.supportxmr.pool.` → `pool.supportxmr.com`.
pub fn unreverse_name(rev: &str) -> String {
    let rev = rev.strip_suffix('.').unwrap_or(rev);
    rev.rsplit('.').collect::<Vec<_>>().join(".")
}

/// The zone a name is folded into under a random-subdomain flood: its last two labels, or
/// three when the second-level label is a short public suffix part (`example.co.uk`).
pub fn zone_of(name: &str) -> &str {
    let dots: Vec<usize> = name.match_indices('.').map(|(i, _)| i).collect();
    // The last `labels` labels of the name (the whole name when it has no more).
    let suffix = |labels: usize| -> &str {
        match dots.len().checked_sub(labels) {
            Some(i) => dots.get(i).and_then(|&d| name.get(d + 1..)).unwrap_or(name),
            None => name,
        }
    };
    let two = suffix(2);
    let second = two.split('.').next().unwrap_or("");
    if second.len() <= 3 && dots.len() >= 2 {
        suffix(3)
    } else {
        two
    }
}

/// The folded name of a zone (`*.example.com`).
pub fn folded_name(zone: &str) -> String {
    format!("*.{zone}")
}

// ---------------------------------------------------------------------------------------------
// Addresses and varints
// ---------------------------------------------------------------------------------------------

pub fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            out.push(4);
            out.extend_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            out.push(6);
            out.extend_from_slice(&v6.octets());
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str, max: usize) {
    let mut end = s.len().min(max).min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let head = s.get(..end).unwrap_or_default();
    out.push(head.len() as u8);
    out.extend_from_slice(head.as_bytes());
}

/// A cursor over a stored value; every read is checked.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(b)
    }
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.bytes(2)?.try_into().ok()?))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.bytes(4)?.try_into().ok()?))
    }
    pub fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    pub fn ip(&mut self) -> Option<IpAddr> {
        match self.u8()? {
            4 => {
                let b: [u8; 4] = self.bytes(4)?.try_into().ok()?;
                Some(IpAddr::V4(Ipv4Addr::from(b)))
            }
            6 => {
                let b: [u8; 16] = self.bytes(16)?.try_into().ok()?;
                Some(IpAddr::V6(Ipv6Addr::from(b)))
            }
            _ => None,
        }
    }
    pub fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u8()?);
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.buf
    }
}

/// The smallest byte string greater than every string starting with `prefix` (`None`: none,
/// the prefix is all `0xff`).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------

pub fn day_key(day: u32) -> [u8; 4] {
    day.to_be_bytes()
}

/// `[day][reversed name]`: the prefix of a name and everything below it.
pub fn name_prefix(day: u32, rev: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + rev.len() + 1);
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(rev.as_bytes());
    k
}

/// The name summary row: `[day][reversed name]0x00`.
pub fn summary_key(day: u32, rev: &str) -> Vec<u8> {
    let mut k = name_prefix(day, rev);
    k.push(0);
    k
}

/// A client row below a name: `[day][reversed name]0x00[kind][client]`.
pub fn client_key(day: u32, rev: &str, kind: u8, client: IpAddr) -> Vec<u8> {
    let mut k = summary_key(day, rev);
    k.push(kind);
    put_ip(&mut k, client);
    k
}

/// A decoded key of the names tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameKey {
    pub day: u32,
    /// Reversed form.
    pub rev: String,
    /// `None` for the name summary.
    pub row: Option<(u8, IpAddr)>,
}

pub fn parse_name_key(k: &[u8]) -> Option<NameKey> {
    let mut r = Reader::new(k);
    let day = r.u32()?;
    let rest = r.rest();
    let nul = rest.iter().position(|&b| b == 0)?;
    let rev = std::str::from_utf8(rest.get(..nul)?).ok()?.to_string();
    let mut r = Reader::new(rest.get(nul + 1..)?);
    if r.rest().is_empty() {
        return Some(NameKey {
            day,
            rev,
            row: None,
        });
    }
    let kind = r.u8()?;
    let ip = r.ip()?;
    Some(NameKey {
        day,
        rev,
        row: Some((kind, ip)),
    })
}

/// `[day][dst][port][proto]`: every client's flows to one destination port.
pub fn flow_prefix(day: u32, dst: IpAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + 17 + 3 + 17);
    k.extend_from_slice(&day.to_be_bytes());
    put_ip(&mut k, dst);
    k
}

pub fn flow_key(day: u32, dst: IpAddr, port: u16, tcp: bool, client: IpAddr) -> Vec<u8> {
    let mut k = flow_prefix(day, dst);
    k.extend_from_slice(&port.to_be_bytes());
    k.push(u8::from(tcp));
    put_ip(&mut k, client);
    k
}

/// A decoded key of the flows tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub day: u32,
    pub dst: IpAddr,
    pub port: u16,
    pub tcp: bool,
    pub client: IpAddr,
}

pub fn parse_flow_key(k: &[u8]) -> Option<FlowKey> {
    let mut r = Reader::new(k);
    let day = r.u32()?;
    let dst = r.ip()?;
    let port = r.u16()?;
    let tcp = r.u8()? != 0;
    let client = r.ip()?;
    Some(FlowKey {
        day,
        dst,
        port,
        tcp,
        client,
    })
}

pub fn server_key(day: u32, server: IpAddr) -> Vec<u8> {
    let mut k = day.to_be_bytes().to_vec();
    put_ip(&mut k, server);
    k
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Per (day, name): what the name was and resolved to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameSummary {
    pub first_ms: u32,
    pub last_ms: u32,
    pub count: u64,
    /// Client rows created below this name (saturating).
    pub clients: u64,
    /// Smallest A/AAAA TTL seen (0: none carried).
    pub min_ttl: u32,
    /// A response with answers was seen (the answers are known, not merely absent).
    pub answered: bool,
    /// Last response code (`None`: never seen).
    pub rcode: Option<u16>,
    /// CNAME/DNAME chain from this name, in order (bounded).
    pub cnames: Vec<String>,
    /// A/AAAA answer addresses (bounded sample, first seen kept).
    pub answers: Vec<IpAddr>,
}

impl NameSummary {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24 + self.answers.len() * 5);
        v.push(VALUE_V1);
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(
            &mut v,
            u64::from(self.last_ms.saturating_sub(self.first_ms)),
        );
        put_varint(&mut v, self.count);
        put_varint(&mut v, self.clients);
        put_varint(&mut v, u64::from(self.min_ttl));
        v.push(u8::from(self.answered));
        put_rcode(&mut v, self.rcode);
        v.push(self.cnames.len().min(255) as u8);
        for c in self.cnames.iter().take(255) {
            put_str(&mut v, c, MAX_NAME_LEN);
        }
        v.push(self.answers.len().min(255) as u8);
        for a in self.answers.iter().take(255) {
            put_ip(&mut v, *a);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<NameSummary> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V1 {
            return None;
        }
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let clients = r.varint()?;
        let min_ttl = u32::try_from(r.varint()?).ok()?;
        let answered = r.u8()? != 0;
        let rcode = get_rcode(&mut r)?;
        let n = r.u8()?;
        let mut cnames = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            cnames.push(r.string()?);
        }
        let n = r.u8()?;
        let mut answers = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            answers.push(r.ip()?);
        }
        Some(NameSummary {
            first_ms,
            last_ms,
            count,
            clients,
            min_ttl,
            answered,
            rcode,
            cnames,
            answers,
        })
    }
}

fn put_rcode(v: &mut Vec<u8>, rcode: Option<u16>) {
    match rcode {
        None => put_varint(v, 0),
        Some(c) => put_varint(v, u64::from(c) + 1),
    }
}

fn get_rcode(r: &mut Reader<'_>) -> Option<Option<u16>> {
    match r.varint()? {
        0 => Some(None),
        n => Some(Some(u16::try_from(n - 1).ok()?)),
    }
}

/// Per (day, name, client) row: a lookup, a lookup through a CNAME, or a flow that named it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientRow {
    pub first_ms: u32,
    pub last_ms: u32,
    pub count: u64,
    /// Lookups: last response code; `None` when no response was seen.
    pub rcode: Option<u16>,
    /// Lookups: query types asked (bit 0 A, bit 1 AAAA, bit 2 anything else).
    pub qtypes: u8,
    /// [`KIND_VIA_CNAME`]: the name the client asked for.
    pub qname: Option<String>,
    /// [`KIND_FLOW_NAME`]: the flow (destination, port, TCP) and whether the name was the SNI
    /// (else the HTTP Host).
    pub flow: Option<(IpAddr, u16, bool)>,
    pub sni: bool,
}

pub const QTYPE_A: u8 = 1;
pub const QTYPE_AAAA: u8 = 2;
pub const QTYPE_OTHER: u8 = 4;

impl ClientRow {
    pub fn encode(&self, kind: u8) -> Vec<u8> {
        let mut v = Vec::with_capacity(16);
        v.push(VALUE_V1);
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(
            &mut v,
            u64::from(self.last_ms.saturating_sub(self.first_ms)),
        );
        put_varint(&mut v, self.count);
        match kind {
            KIND_FLOW_NAME => {
                let (dst, port, tcp) =
                    self.flow
                        .unwrap_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0, true));
                put_ip(&mut v, dst);
                v.extend_from_slice(&port.to_be_bytes());
                v.push(u8::from(tcp) | (u8::from(self.sni) << 1));
            }
            _ => {
                put_rcode(&mut v, self.rcode);
                v.push(self.qtypes);
                if kind == KIND_VIA_CNAME {
                    put_str(&mut v, self.qname.as_deref().unwrap_or(""), MAX_NAME_LEN);
                }
            }
        }
        v
    }

    pub fn decode(kind: u8, b: &[u8]) -> Option<ClientRow> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V1 {
            return None;
        }
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let mut row = ClientRow {
            first_ms,
            last_ms,
            count,
            ..ClientRow::default()
        };
        match kind {
            KIND_FLOW_NAME => {
                let dst = r.ip()?;
                let port = r.u16()?;
                let flags = r.u8()?;
                row.flow = Some((dst, port, flags & 1 != 0));
                row.sni = flags & 2 != 0;
            }
            KIND_LOOKUP | KIND_VIA_CNAME => {
                row.rcode = get_rcode(&mut r)?;
                row.qtypes = r.u8()?;
                if kind == KIND_VIA_CNAME {
                    row.qname = Some(r.string()?);
                }
            }
            _ => return None,
        }
        Some(row)
    }
}

/// Per (day, destination, port, protocol, client): the flows' summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlowSummary {
    pub first_ms: u32,
    pub last_ms: u32,
    /// Flows (final reports; a flow seen only in progress counts once).
    pub count: u64,
    pub established: bool,
    pub rejected: bool,
    pub stratum: bool,
    pub tls: bool,
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// Source port of the first flow.
    pub src_port: u16,
    pub sni: Option<String>,
    pub http_host: Option<String>,
    pub stratum_method: Option<String>,
    pub agent: Option<String>,
}

impl FlowSummary {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(24);
        v.push(VALUE_V1);
        v.extend_from_slice(&self.first_ms.to_be_bytes());
        put_varint(
            &mut v,
            u64::from(self.last_ms.saturating_sub(self.first_ms)),
        );
        put_varint(&mut v, self.count);
        let flags = u8::from(self.established)
            | u8::from(self.rejected) << 1
            | u8::from(self.stratum) << 2
            | u8::from(self.tls) << 3
            | u8::from(self.sni.is_some()) << 4
            | u8::from(self.http_host.is_some()) << 5
            | u8::from(self.stratum_method.is_some()) << 6
            | u8::from(self.agent.is_some()) << 7;
        v.push(flags);
        put_varint(&mut v, self.bytes_out);
        put_varint(&mut v, self.bytes_in);
        v.extend_from_slice(&self.src_port.to_be_bytes());
        for s in [&self.sni, &self.http_host, &self.stratum_method]
            .into_iter()
            .flatten()
        {
            put_str(&mut v, s, MAX_FLOW_NAME_LEN);
        }
        if let Some(a) = &self.agent {
            put_str(&mut v, a, MAX_AGENT_LEN);
        }
        v
    }

    pub fn decode(b: &[u8]) -> Option<FlowSummary> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V1 {
            return None;
        }
        let first_ms = r.u32()?;
        let last_ms = first_ms.saturating_add(u32::try_from(r.varint()?).ok()?);
        let count = r.varint()?;
        let flags = r.u8()?;
        let bytes_out = r.varint()?;
        let bytes_in = r.varint()?;
        let src_port = r.u16()?;
        let mut opt = |bit: u8| -> Option<Option<String>> {
            if flags & (1 << bit) != 0 {
                Some(Some(r.string()?))
            } else {
                Some(None)
            }
        };
        let sni = opt(4)?;
        let http_host = opt(5)?;
        let stratum_method = opt(6)?;
        let agent = opt(7)?;
        Some(FlowSummary {
            first_ms,
            last_ms,
            count,
            established: flags & 1 != 0,
            rejected: flags & 2 != 0,
            stratum: flags & 4 != 0,
            tls: flags & 8 != 0,
            bytes_out,
            bytes_in,
            src_port,
            sni,
            http_host,
            stratum_method,
            agent,
        })
    }
}

/// Per (day, DNS server): distinct clients it answered (bounded sample; enough to apply the
/// resolver rule, which needs a handful).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerRow {
    pub clients: Vec<IpAddr>,
}

impl ServerRow {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![VALUE_V1, self.clients.len().min(255) as u8];
        for c in self.clients.iter().take(255) {
            put_ip(&mut v, *c);
        }
        v
    }
    pub fn decode(b: &[u8]) -> Option<ServerRow> {
        let mut r = Reader::new(b);
        if r.u8()? != VALUE_V1 {
            return None;
        }
        let n = r.u8()?;
        let mut clients = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            clients.push(r.ip()?);
        }
        Some(ServerRow { clients })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversed_names_scan_by_label() {
        assert_eq!(reverse_name("pool.supportxmr.com"), "com.supportxmr.pool.");
        assert_eq!(
            unreverse_name("com.supportxmr.pool."),
            "pool.supportxmr.com"
        );
        let entry = reverse_name("supportxmr.com");
        assert!(reverse_name("pool.supportxmr.com").starts_with(&entry));
        assert!(!reverse_name("notsupportxmr.com").starts_with(&entry));
        assert!(!reverse_name("supportxmr.com.evil.example").starts_with(&entry));
    }

    #[test]
    fn zones() {
        assert_eq!(zone_of("a.b.example.com"), "example.com");
        assert_eq!(zone_of("x.example.co.uk"), "example.co.uk");
        assert_eq!(zone_of("example.com"), "example.com");
        assert_eq!(zone_of("localhost"), "localhost");
    }

    #[test]
    fn values_round_trip_and_hostile_bytes_do_not_panic() {
        let s = NameSummary {
            first_ms: 5,
            last_ms: 86_399_999,
            count: 300,
            clients: 2,
            min_ttl: 60,
            answered: true,
            rcode: Some(3),
            cnames: vec!["a.example".into()],
            answers: vec!["127.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap()],
        };
        let b = s.encode();
        assert_eq!(NameSummary::decode(&b), Some(s));
        let f = FlowSummary {
            first_ms: 1,
            last_ms: 2,
            count: 3,
            established: true,
            stratum: true,
            bytes_out: 1 << 40,
            src_port: 4444,
            sni: Some("pool.example".into()),
            agent: Some("XMRig/6".into()),
            ..FlowSummary::default()
        };
        let b2 = f.encode();
        assert_eq!(FlowSummary::decode(&b2), Some(f));
        for cut in 0..b.len() {
            let _ = NameSummary::decode(&b[..cut]);
        }
        for cut in 0..b2.len() {
            let _ = FlowSummary::decode(&b2[..cut]);
        }
        let c = ClientRow {
            first_ms: 9,
            last_ms: 10,
            count: 1,
            qname: Some("q.example".into()),
            ..ClientRow::default()
        };
        let b3 = c.encode(KIND_VIA_CNAME);
        assert_eq!(ClientRow::decode(KIND_VIA_CNAME, &b3), Some(c));
        assert_eq!(ClientRow::decode(9, &b3), None);
        assert_eq!(parse_name_key(&[0, 0]), None);
    }

    #[test]
    fn keys_round_trip() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let k = client_key(20_000, "com.example.", KIND_LOOKUP, ip);
        let p = parse_name_key(&k).unwrap();
        assert_eq!(p.rev, "com.example.");
        assert_eq!(p.row, Some((KIND_LOOKUP, ip)));
        let fk = flow_key(20_000, ip, 3333, true, ip);
        assert_eq!(parse_flow_key(&fk).unwrap().port, 3333);
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
