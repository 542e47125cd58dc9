//! Stage `dns`: DNS wire messages → the facts poolwatch needs.
//!
//! [`parse_message`] decodes one message with hickory-proto. hickory's `Message` decoding is
//! all-or-nothing, so when it fails we go back over the bytes with its `BinDecoder` and salvage
//! what precedes the damage: the header, the questions, and every answer record that still
//! decodes. The result then carries `salvaged: Some(reason)`. Only a message whose header or
//! first question is unreadable is an error. Nothing here panics on any input (fuzzed:
//! `fuzz/fuzz_targets/dns_parse.rs`).
//!
//! hickory types never leave this module: callers see [`ParsedMessage`] and [`DnsError`].

// TODO(#12): audited by wt-perf's fast path (the packet parsers here are being rewritten;
// every other module denies indexing_slicing, Cargo.toml [lints]).
#![allow(clippy::indexing_slicing)]

use hickory_proto::op::{Header, Message, MessageType, Query};
use hickory_proto::rr::{Name, RData, Record, RecordData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};

use crate::model::{DnsAnswer, Rcode, RrType};

pub mod wire;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// `detail` is hickory's message (bounded), `reason` its class.
    #[error("malformed DNS message: {detail}")]
    Malformed {
        reason: SalvageReason,
        detail: String,
    },
}

impl DnsError {
    /// A short fixed label for metrics (`poolwatch_dns_parse_errors_total{reason=…}`).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            DnsError::Malformed { reason, .. } => reason.as_str(),
        }
    }
}

/// Why a DNS message could not be decoded whole (or at all): a small fixed vocabulary, decided
/// here from hickory's error *type* (never its text), used as the metric label
/// (`poolwatch_dns_parse_errors_total{reason=…}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SalvageReason {
    /// The 12-byte header is unreadable (an error, nothing salvaged).
    Header,
    /// The first question is unreadable (an error, nothing salvaged).
    Question,
    /// A name: bad label, pointer loop or forward pointer, name too long.
    Name,
    /// The message ends inside a record.
    Truncated,
    /// The OPT pseudo-record.
    Edns,
    /// Anything else inside a record's data.
    Rdata,
}

impl SalvageReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SalvageReason::Header => "header",
            SalvageReason::Question => "question",
            SalvageReason::Name => "name",
            SalvageReason::Truncated => "truncated",
            SalvageReason::Edns => "edns",
            SalvageReason::Rdata => "rdata",
        }
    }

    /// The class of a hickory decoding error found past the header and question.
    fn of(e: &DecodeError) -> Self {
        match e {
            DecodeError::PointerNotPriorToLabel { .. }
            | DecodeError::LabelBytesTooLong(_)
            | DecodeError::UnrecognizedLabelCode(_)
            | DecodeError::DomainNameTooLong(_)
            | DecodeError::LabelOverlapsWithOther { .. }
            | DecodeError::EdnsNameNotRoot(_) => SalvageReason::Name,
            DecodeError::InsufficientBytes | DecodeError::InvalidEmptyRecord => {
                SalvageReason::Truncated
            }
            DecodeError::DuplicateEdns => SalvageReason::Edns,
            _ => SalvageReason::Rdata,
        }
    }
}

impl std::fmt::Display for SalvageReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parts of one DNS message that the observations carry.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedMessage {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: Rcode,
    pub truncated: bool,
    pub recursion_desired: bool,
    /// (normalised name, type) of each question.
    pub questions: Vec<(String, RrType)>,
    pub answers: Vec<DnsAnswer>,
    /// Set when only part of the message could be decoded: hickory's message (bounded), as
    /// `DnsObservation::salvaged` carries it.
    pub salvaged: Option<String>,
    /// The class of `salvaged` (set together with it).
    pub salvage_reason: Option<SalvageReason>,
}

/// Shortest possible DNS message: the 12-byte header.
pub const HEADER_LEN: usize = 12;

/// Most answers kept from one message. A response may legally carry thousands of records
/// (AXFR over TCP); the correlation stage only needs the address/alias chain, and a cap keeps a
/// hostile message from turning into a huge observation.
pub const MAX_ANSWERS: usize = 256;

/// Decodes one DNS message (no TCP length prefix).
///
/// Never panics. Falls back to salvage (header + questions + readable answers) when the full
/// decode fails; returns an error only when not even the header and one question are readable
/// (a header-only message with no question is returned with empty `questions`).
pub fn parse_message(wire: &[u8]) -> Result<ParsedMessage, DnsError> {
    match Message::from_vec(wire) {
        Ok(msg) => Ok(from_message(&msg)),
        Err(e) => salvage(wire, &e),
    }
}

/// DNS UPDATE (RFC 2136): its "answer" section holds prerequisites, not answers.
const OPCODE_UPDATE: u8 = 5;

fn from_message(msg: &Message) -> ParsedMessage {
    let questions = msg.queries.iter().map(question).collect();
    let answers = if u8::from(msg.metadata.op_code) == OPCODE_UPDATE {
        Vec::new()
    } else {
        msg.answers
            .iter()
            .filter(|r| !r.data.is_update())
            .take(MAX_ANSWERS)
            .map(answer)
            .collect()
    };
    ParsedMessage {
        id: msg.metadata.id,
        is_response: msg.metadata.message_type == MessageType::Response,
        opcode: u8::from(msg.metadata.op_code),
        rcode: Rcode(u16::from(msg.metadata.response_code)),
        truncated: msg.metadata.truncation,
        recursion_desired: msg.metadata.recursion_desired,
        questions,
        answers,
        salvaged: None,
        salvage_reason: None,
    }
}

fn question(q: &Query) -> (String, RrType) {
    (name_str(q.name()), RrType(u16::from(q.query_type())))
}

/// Presentation form of a name, normalised: lowercase, no trailing dot, `.` for the root.
///
/// Printable ASCII is kept as is (unlike hickory's `to_ascii`, which escapes `*`, `=`, …), so
/// names compare equal to what Wireshark, Zeek and resolver logs print; a `.` or `\` inside a
/// label is escaped with `\`, other bytes as `\DDD` (RFC 1035 master-file style).
pub fn name_str(name: &Name) -> String {
    use std::io::Write as _;
    // Bytes first, lowercased once at the end: plain labels (nearly all) are one copy each
    // instead of a char push per byte (name rendering was ~3% of a scan).
    let mut v: Vec<u8> = Vec::with_capacity(64);
    for label in name.iter() {
        if !v.is_empty() {
            v.push(b'.');
        }
        if label
            .iter()
            .all(|&b| matches!(b, 0x21..=0x7e) && b != b'.' && b != b'\\')
        {
            v.extend_from_slice(label);
            continue;
        }
        for &b in label {
            match b {
                b'.' | b'\\' => v.extend_from_slice(&[b'\\', b]),
                0x21..=0x7e => v.push(b),
                _ => {
                    let _ = write!(v, "\\{b:03}");
                }
            }
        }
    }
    if v.is_empty() {
        v.push(b'.');
    }
    // Escapes are digits, '.' and '\\': lowercasing everything equals lowercasing the labels.
    v.make_ascii_lowercase();
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Dotted-quad without going through `fmt` (A answers are the hot path: ~10% of decode time
/// was `Ipv4Addr::to_string`).
fn ipv4_str(o: [u8; 4]) -> String {
    let mut s = String::with_capacity(15);
    for (i, b) in o.into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if b >= 100 {
            s.push(char::from(b'0' + b / 100));
        }
        if b >= 10 {
            s.push(char::from(b'0' + (b / 10) % 10));
        }
        s.push(char::from(b'0' + b % 10));
    }
    s
}

/// `Ipv6Addr`'s `Display` (RFC 5952: lowercase hex, the first longest run of two or more zero
/// groups as `::`, IPv4-mapped as `::ffff:a.b.c.d`) without `fmt` and its per-group `{:x}` calls
/// (AAAA answers were ~1% of a scan in `<u16 as LowerHex>::fmt`).
fn ipv6_str(a: std::net::Ipv6Addr) -> String {
    if let Some(v4) = a.to_ipv4_mapped() {
        return format!("::ffff:{}", ipv4_str(v4.octets()));
    }
    let seg = a.segments();
    // First longest run of zero groups (std picks the first on ties).
    let (mut best_start, mut best_len, mut cur_start, mut cur_len) = (0, 0, 0, 0);
    for (i, &g) in seg.iter().enumerate() {
        if g == 0 {
            if cur_len == 0 {
                cur_start = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                (best_start, best_len) = (cur_start, cur_len);
            }
        } else {
            cur_len = 0;
        }
    }
    let mut s = String::with_capacity(39);
    let push_groups = |s: &mut String, groups: &[u16]| {
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                s.push(':');
            }
            push_hex(s, g);
        }
    };
    if best_len > 1 {
        push_groups(&mut s, seg.get(..best_start).unwrap_or_default());
        s.push_str("::");
        push_groups(&mut s, seg.get(best_start + best_len..).unwrap_or_default());
    } else {
        push_groups(&mut s, &seg);
    }
    s
}

/// One group in lowercase hex without leading zeros.
fn push_hex(s: &mut String, g: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12u16, 8, 4, 0] {
        let d = usize::from((g >> shift) & 0xf);
        if d != 0 || started || shift == 0 {
            started = true;
            s.push(char::from(HEX.get(d).copied().unwrap_or(b'0')));
        }
    }
}

/// TXT data in master-file form, as dig prints it: each character-string quoted, separated by
/// a space, with `"` and `\\` escaped and bytes outside printable ASCII as `\\DDD`.
fn txt_str<'a>(strings: impl Iterator<Item = &'a [u8]>) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for part in strings {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push('"');
        for &b in part {
            match b {
                b'"' | b'\\' => {
                    s.push('\\');
                    s.push(b as char);
                }
                0x20..=0x7e => s.push(b as char),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('"');
    }
    s
}

fn answer(r: &Record) -> DnsAnswer {
    let data = match &r.data {
        RData::A(a) => ipv4_str(a.0.octets()),
        RData::AAAA(a) => ipv6_str(a.0),
        RData::CNAME(n) => name_str(&n.0),
        RData::NS(n) => name_str(&n.0),
        RData::PTR(n) => name_str(&n.0),
        RData::ANAME(n) => name_str(&n.0),
        RData::TXT(t) => txt_str(t.txt_data.iter().map(|b| &b[..])),
        other => other.to_string(),
    };
    DnsAnswer {
        name: name_str(&r.name),
        rtype: RrType(u16::from(r.record_type())),
        ttl: Some(r.ttl),
        data,
    }
}

/// Re-reads a message that failed to decode, keeping everything before the damage.
fn salvage(wire: &[u8], cause: &DecodeError) -> Result<ParsedMessage, DnsError> {
    let mut dec = BinDecoder::new(wire);
    let header = Header::read(&mut dec).map_err(|e| DnsError::Malformed {
        reason: SalvageReason::Header,
        detail: truncate_reason(format!("header: {e}")),
    })?;
    let meta = header.metadata;
    let mut questions = Vec::new();
    for i in 0..header.counts.queries {
        match Query::read(&mut dec) {
            Ok(q) => questions.push(question(&q)),
            // Without its first question a message says nothing we can use.
            Err(e) if i == 0 => {
                return Err(DnsError::Malformed {
                    reason: SalvageReason::Question,
                    detail: truncate_reason(format!("question: {e}")),
                })
            }
            Err(_) => break,
        }
    }
    let mut answers = Vec::new();
    if questions.len() == usize::from(header.counts.queries) {
        for _ in 0..header.counts.answers {
            if answers.len() >= MAX_ANSWERS {
                break;
            }
            match Record::read(&mut dec) {
                // An OPT/TSIG in the answer section is a protocol violation; skip it.
                Ok(r)
                    if matches!(r.record_type(), RecordType::OPT | RecordType::TSIG)
                        || r.data.is_update()
                        || u8::from(meta.op_code) == OPCODE_UPDATE => {}
                Ok(r) => answers.push(answer(&r)),
                Err(_) => break,
            }
        }
    }
    Ok(ParsedMessage {
        id: meta.id,
        is_response: meta.message_type == MessageType::Response,
        opcode: u8::from(meta.op_code),
        // Only the low 4 bits: the EDNS high bits live in the (unreadable) additional section.
        rcode: Rcode(u16::from(meta.response_code) & 0x0f),
        truncated: meta.truncation,
        recursion_desired: meta.recursion_desired,
        questions,
        answers,
        salvaged: Some(truncate_reason(cause.to_string())),
        salvage_reason: Some(SalvageReason::of(cause)),
    })
}

/// Longest salvage reason kept: hickory's messages can quote input.
const MAX_REASON_LEN: usize = 160;

fn truncate_reason(mut s: String) -> String {
    if s.len() > MAX_REASON_LEN {
        let mut cut = MAX_REASON_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `www.example.com A` query, id 0x1234, RD.
    fn query_bytes() -> Vec<u8> {
        let mut v = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in ["www", "example", "com"] {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.extend_from_slice(&[0, 0, 1, 0, 1]);
        v
    }

    fn response_bytes() -> Vec<u8> {
        let mut v = query_bytes();
        v[2] = 0x81;
        v[3] = 0x80;
        v[7] = 2; // ancount
                  // CNAME www.example.com -> Edge.Example.NET.
        v.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
        let mut target = Vec::new();
        for l in ["Edge", "Example", "NET"] {
            target.push(l.len() as u8);
            target.extend_from_slice(l.as_bytes());
        }
        target.push(0);
        v.extend_from_slice(&(target.len() as u16).to_be_bytes());
        let target_off = v.len();
        v.extend_from_slice(&target);
        // A edge.example.net -> 192.0.2.7
        v.extend_from_slice(&[
            0xc0,
            target_off as u8,
            0,
            1,
            0,
            1,
            0,
            0,
            1,
            0,
            0,
            4,
            192,
            0,
            2,
            7,
        ]);
        v
    }

    /// A NOERROR response with every record type the fast path checks: TXT and MX answers,
    /// an SOA in the authority section (names compressed), an OPT with a cookie option.
    fn full_sections_bytes() -> Vec<u8> {
        let mut v = query_bytes();
        v[2] = 0x81;
        v[3] = 0x80;
        v[7] = 2; // ancount
        v[9] = 1; // nscount
        v[11] = 1; // arcount
                   // TXT www.example.com "v=1" "x"
        v.extend_from_slice(&[
            0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'v', b'=', b'1',
        ]);
        v.extend_from_slice(&[1, b'x']);
        // MX 10 mail.<example.com>
        v.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 9, 0, 10]);
        v.extend_from_slice(&[4, b'm', b'a', b'i', b'l', 0xc0, 16]);
        // SOA example.com: ns.<example.com> host.<example.com> + 5 numbers
        v.extend_from_slice(&[0xc0, 16, 0, 6, 0, 1, 0, 0, 0, 60, 0, 32]);
        v.extend_from_slice(&[2, b'n', b's', 0xc0, 16, 4, b'h', b'o', b's', b't', 0xc0, 16]);
        v.extend_from_slice(&[0; 20]);
        // OPT, payload 1232, a cookie option (code 10, 8 bytes).
        v.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
        v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        v
    }

    #[test]
    fn decodes_whole_says_what_hickory_does() {
        let full = full_sections_bytes();
        let m = parse_message(&full).unwrap();
        assert!(m.salvaged.is_none(), "{:?}", m.salvaged);
        assert_eq!(m.answers.len(), 2);
        assert!(wire::parse(&full).unwrap().decodes_whole());
        assert!(wire::parse(&response_bytes()).unwrap().decodes_whole());
        assert!(wire::parse(&query_bytes()).unwrap().decodes_whole());
        // An SOA one byte short: hickory salvages, the fast path declines.
        let mut v = full.clone();
        let soa_len = v.len() - 23 - 32 - 1;
        v[soa_len] = 31;
        assert!(parse_message(&v).unwrap().salvaged.is_some());
        assert!(!wire::parse(&v).unwrap().decodes_whole());
        // A client-subnet option instead of the cookie: hickory parses it, so the fast path
        // leaves the message to hickory.
        let mut v = full.clone();
        let code = v.len() - 12;
        v[code + 1] = 8;
        assert!(!wire::parse(&v).unwrap().decodes_whole());
        // Two OPT records: hickory rejects the second.
        let mut v = full.clone();
        v[11] = 2;
        v.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(parse_message(&v).unwrap().salvaged.is_some());
        assert!(!wire::parse(&v).unwrap().decodes_whole());
        wire::differential(&v).unwrap();
    }

    #[test]
    fn name_str_lowercases_and_escapes() {
        let n = Name::from_labels(vec![
            b"Pool.X".to_vec(),
            b"A\\b\x00\xff".to_vec(),
            b"MoneroOcean".to_vec(),
            b"STREAM".to_vec(),
        ])
        .unwrap();
        assert_eq!(name_str(&n), "pool\\.x.a\\\\b\\000\\255.moneroocean.stream");
        assert_eq!(name_str(&Name::root()), ".");
    }

    #[test]
    fn parses_query_and_response() {
        let q = parse_message(&query_bytes()).unwrap();
        assert_eq!(q.id, 0x1234);
        assert!(!q.is_response);
        assert_eq!(
            q.questions,
            vec![("www.example.com".to_string(), RrType::A)]
        );
        let r = parse_message(&response_bytes()).unwrap();
        assert!(r.is_response);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.answers[0].data, "edge.example.net");
        assert_eq!(r.answers[1].name, "edge.example.net");
        assert_eq!(r.answers[1].data, "192.0.2.7");
        assert_eq!(r.answers[1].ttl, Some(256));
        assert!(r.salvaged.is_none());
    }

    #[test]
    fn salvages_question_when_answers_are_damaged() {
        let mut v = response_bytes();
        let n = v.len();
        v.truncate(n - 3); // cut into the A record's rdata
        let r = parse_message(&v).unwrap();
        assert!(r.salvaged.is_some());
        assert_eq!(r.questions[0].0, "www.example.com");
        assert_eq!(r.answers.len(), 1, "the CNAME before the damage is kept");
    }

    #[test]
    fn salvage_reasons_are_classified_by_error_type() {
        let mut v = response_bytes();
        let n = v.len();
        v.truncate(n - 3);
        let r = parse_message(&v).unwrap();
        assert_eq!(
            r.salvage_reason,
            Some(SalvageReason::Rdata),
            "{:?}",
            r.salvaged
        );
        // Cut inside the first answer's fixed fields: the message ends inside a record.
        let mut v = response_bytes();
        v.truncate(query_bytes().len() + 5);
        let r = parse_message(&v).unwrap();
        assert_eq!(
            r.salvage_reason,
            Some(SalvageReason::Truncated),
            "{:?}",
            r.salvaged
        );
        // A header alone is not a message; a question cut short is unreadable.
        let e = parse_message(&v[..5]).unwrap_err();
        assert_eq!(e.metric_reason(), "header");
        let e = parse_message(&query_bytes()[..15]).unwrap_err();
        assert_eq!(e.metric_reason(), "question");
        // A compression pointer to itself in the answer's owner name.
        let mut v = response_bytes();
        let q_end = query_bytes().len();
        v[q_end] = 0xc0;
        v[q_end + 1] = u8::try_from(q_end).unwrap();
        let r = parse_message(&v).unwrap();
        assert_eq!(
            r.salvage_reason,
            Some(SalvageReason::Name),
            "{:?}",
            r.salvaged
        );
        assert_eq!(SalvageReason::Name.as_str(), "name");
    }

    #[test]
    fn ipv4_formatting() {
        for o in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 9, 100, 199],
            [1, 20, 0, 250],
        ] {
            assert_eq!(ipv4_str(o), std::net::Ipv4Addr::from(o).to_string());
        }
    }

    #[test]
    fn ipv6_formatting_equals_std() {
        let mut cases: Vec<std::net::Ipv6Addr> = [
            "::",
            "::1",
            "1::",
            "::ffff:1.2.3.4",
            "::1.2.3.4",
            "2001:db8::1",
            "2001:db8:0:0:1:0:0:1",
            "2001:0:0:1:0:0:0:1",
            "1:0:2:0:3:0:4:0",
            "0:0:1:0:0:1:0:0",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "64:ff9b::c000:201",
            "fe80::a:b0:c00:d000",
            "0:1:2:3:4:5:6:0",
        ]
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
        // Every pattern of zero/non-zero groups, with varied group widths.
        for mask in 0u16..256 {
            let seg: Vec<u16> = (0..8u16)
                .map(|i| {
                    if mask & (1 << i) != 0 {
                        0x1u16.wrapping_shl(u32::from(i) * 2) | i
                    } else {
                        0
                    }
                })
                .collect();
            let mut g = [0u16; 8];
            g.copy_from_slice(&seg);
            cases.push(std::net::Ipv6Addr::from(g));
        }
        for a in cases {
            assert_eq!(ipv6_str(a), a.to_string(), "{a:?}");
        }
    }

    #[test]
    fn header_only_garbage_is_an_error() {
        assert!(parse_message(&[1, 2, 3]).is_err());
        let mut v = query_bytes();
        v.truncate(15);
        assert!(parse_message(&v).is_err());
    }

    #[test]
    fn every_truncation_and_bitflip_is_safe() {
        let base = response_bytes();
        for cut in 0..=base.len() {
            let _ = parse_message(&base[..cut]);
        }
        for i in 0..base.len() {
            for bit in 0..8 {
                let mut v = base.clone();
                v[i] ^= 1 << bit;
                let _ = parse_message(&v);
            }
        }
        // A compression loop.
        let mut v = query_bytes();
        v.truncate(12);
        v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        let _ = parse_message(&v);
    }

    #[test]
    fn wire_reader_reads_what_hickory_reads() {
        let r = response_bytes();
        let m = wire::parse(&r).unwrap();
        let q = m.question.unwrap();
        assert_eq!(q.name.to_normalised(), "www.example.com");
        assert_eq!((m.id, m.is_response(), m.ancount), (0x1234, true, 2));
        let answers: Vec<_> = m.answers().map(|a| a.unwrap()).collect();
        assert_eq!(answers[0].name.to_normalised(), "www.example.com");
        assert_eq!(
            answers[0].target().unwrap().to_normalised(),
            "edge.example.net"
        );
        assert_eq!(answers[1].ip(), Some("192.0.2.7".parse().unwrap()));
        assert_eq!(answers[1].name.to_normalised(), "edge.example.net");
        wire::differential(&r).unwrap();
        wire::differential(&query_bytes()).unwrap();
        // A pointer to itself, a forward pointer, a loop: errors, never a hang.
        let mut v = query_bytes();
        v.truncate(12);
        v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(wire::parse(&v).unwrap_err(), wire::WireError::Pointer);
        v.truncate(12);
        v.extend_from_slice(&[0xc0, 14, 0, 0, 1, 0, 1]);
        assert_eq!(wire::parse(&v).unwrap_err(), wire::WireError::Pointer);
    }

    /// The differential property over truncations, bit flips and random byte patches of real
    /// messages (the fuzz target `dns_fastpath` does the same with coverage guidance).
    #[test]
    fn wire_reader_agrees_with_hickory_on_damaged_messages() {
        let bases = [response_bytes(), query_bytes(), full_sections_bytes()];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut checked = 0;
        for base in &bases {
            for cut in 0..=base.len() {
                wire::differential(&base[..cut]).unwrap();
            }
            for i in 0..base.len() {
                for bit in 0..8 {
                    let mut v = base.clone();
                    v[i] ^= 1 << bit;
                    if let Err(e) = wire::differential(&v) {
                        panic!("byte {i} bit {bit}: {e}");
                    }
                    checked += 1;
                }
            }
            for _ in 0..20_000 {
                let mut v = base.clone();
                for _ in 0..1 + next() % 4 {
                    let i = (next() % v.len() as u64) as usize;
                    // Bytes that matter to names: pointers, small lengths, offsets.
                    v[i] = match next() % 4 {
                        0 => 0xc0,
                        1 => (next() % 64) as u8,
                        _ => next() as u8,
                    };
                }
                if let Err(e) = wire::differential(&v) {
                    panic!("{v:02x?}: {e}");
                }
                checked += 1;
            }
        }
        assert!(checked > 40_000);
    }
}
