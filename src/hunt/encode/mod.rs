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

/// Version byte of the server rows (and of the per-client rows of schema 2, see
/// `migrations/0003_history_blocks.md`).
pub const VALUE_V1: u8 = 1;
/// Version byte of the name and flow blocks (schema 3 and 4).
pub const VALUE_V2: u8 = 2;
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
//
// Rows are blocks: one row per (day, name) and per (day, destination address) holds every
// client entry of that name / destination, so a day costs one key per name and destination
// rather than one per (name, client). A key ends with a block number (`u64` BE): each flush
// writes new blocks without reading what is stored, and a finished day is compacted into one
// block per name / destination (numbers from 0).

pub fn day_key(day: u32) -> [u8; 4] {
    day.to_be_bytes()
}

/// Bytes of the block number ending every names / flows key.
pub const BLOCK_NO_LEN: usize = 8;

/// `[day][reversed name]`: the prefix of a name and everything below it.
pub fn name_prefix(day: u32, rev: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + rev.len() + 1 + BLOCK_NO_LEN);
    k.extend_from_slice(&day.to_be_bytes());
    k.extend_from_slice(rev.as_bytes());
    k
}

/// `[day][reversed name]0x00`: the prefix of exactly this name's blocks.
pub fn exact_name_prefix(day: u32, rev: &str) -> Vec<u8> {
    let mut k = name_prefix(day, rev);
    k.push(0);
    k
}

/// A name block: `[day][reversed name]0x00[block u64]`.
pub fn name_key(day: u32, rev: &str, block: u64) -> Vec<u8> {
    let mut k = exact_name_prefix(day, rev);
    k.extend_from_slice(&block.to_be_bytes());
    k
}

/// A decoded key of the names tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NameKey {
    pub day: u32,
    /// Reversed form.
    pub rev: String,
    pub block: u64,
}

pub fn parse_name_key(k: &[u8]) -> Option<NameKey> {
    let mut r = Reader::new(k);
    let day = r.u32()?;
    let rest = r.rest();
    let nul = rest.iter().position(|&b| b == 0)?;
    let rev = std::str::from_utf8(rest.get(..nul)?).ok()?.to_string();
    let block: [u8; BLOCK_NO_LEN] = rest.get(nul + 1..)?.try_into().ok()?;
    Some(NameKey {
        day,
        rev,
        block: u64::from_be_bytes(block),
    })
}

/// `[day][dst]`: every block of one destination address.
pub fn flow_prefix(day: u32, dst: IpAddr) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + 17 + BLOCK_NO_LEN);
    k.extend_from_slice(&day.to_be_bytes());
    put_ip(&mut k, dst);
    k
}

/// A flow block: `[day][dst][block u64]`.
pub fn flow_block_key(day: u32, dst: IpAddr, block: u64) -> Vec<u8> {
    let mut k = flow_prefix(day, dst);
    k.extend_from_slice(&block.to_be_bytes());
    k
}

/// (day, destination, block) of a flows-tree key.
pub fn parse_flow_block_key(k: &[u8]) -> Option<(u32, IpAddr, u64)> {
    let mut r = Reader::new(k);
    let day = r.u32()?;
    let dst = r.ip()?;
    let block: [u8; BLOCK_NO_LEN] = r.rest().try_into().ok()?;
    Some((day, dst, u64::from_be_bytes(block)))
}

/// One flow summary's identity (a flow block entry with its block's day and destination).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub day: u32,
    pub dst: IpAddr,
    pub port: u16,
    pub tcp: bool,
    pub client: IpAddr,
}

pub fn server_key(day: u32, server: IpAddr) -> Vec<u8> {
    let mut k = day.to_be_bytes().to_vec();
    put_ip(&mut k, server);
    k
}

mod pages;
mod values;
pub use pages::*;
pub use values::*;

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
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let nb = NameBlock {
            summary: Some(s),
            clients: vec![
                ClientEntry {
                    kind: KIND_LOOKUP,
                    client: ip,
                    row: ClientRow {
                        first_ms: 9,
                        last_ms: 10,
                        count: 2,
                        rcode: Some(0),
                        qtypes: QTYPE_A,
                        ..ClientRow::default()
                    },
                },
                ClientEntry {
                    kind: KIND_VIA_CNAME,
                    client: ip,
                    row: ClientRow {
                        first_ms: 9,
                        last_ms: 10,
                        count: 1,
                        qname: Some("q.example".into()),
                        ..ClientRow::default()
                    },
                },
                ClientEntry {
                    kind: KIND_FLOW_NAME,
                    client: "2001:db8::7".parse().unwrap(),
                    row: ClientRow {
                        first_ms: 1,
                        last_ms: 1,
                        count: 1,
                        flow: Some((ip, 443, true)),
                        sni: true,
                        ..ClientRow::default()
                    },
                },
            ],
        };
        let b = nb.encode();
        assert_eq!(NameBlock::decode(&b), Some(nb));
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
        let fb = FlowBlock {
            flows: vec![FlowEntry {
                port: 3333,
                tcp: true,
                client: ip,
                summary: f,
            }],
        };
        let b2 = fb.encode();
        assert_eq!(FlowBlock::decode(&b2), Some(fb));
        for cut in 0..b.len() {
            let _ = NameBlock::decode(&b[..cut]);
        }
        for cut in 0..b2.len() {
            let _ = FlowBlock::decode(&b2[..cut]);
        }
        // A huge entry count in a short value is refused, not allocated.
        assert_eq!(
            NameBlock::decode(&[VALUE_V2, 0, 0xff, 0xff, 0xff, 0x7f]),
            None
        );
        assert_eq!(NameBlock::decode(&[VALUE_V1, 0, 0]), None);
        assert_eq!(parse_name_key(&[0, 0]), None);
    }

    #[test]
    fn keys_round_trip() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let k = name_key(20_000, "com.example.", 77);
        let p = parse_name_key(&k).unwrap();
        assert_eq!(p.rev, "com.example.");
        assert_eq!((p.day, p.block), (20_000, 77));
        assert!(k.starts_with(&exact_name_prefix(20_000, "com.example.")));
        let fk = flow_block_key(20_000, ip, 5);
        assert_eq!(parse_flow_block_key(&fk), Some((20_000, ip, 5)));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
        let d = DayValue {
            bytes: 9,
            compacted: true,
            gen: 3,
            covered: 77,
        };
        assert_eq!(parse_day_value(&day_value(&d)), Some(d));
        let old = parse_day_value(&9u64.to_be_bytes()).unwrap();
        assert_eq!((old.bytes, old.compacted, old.gen), (9, false, 0));
        assert!(
            parse_day_value(&[0, 0, 0, 0, 0, 0, 0, 9, 1])
                .unwrap()
                .compacted
        );
    }
}
