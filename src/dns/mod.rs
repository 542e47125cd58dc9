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

use hickory_proto::op::{Header, Message, MessageType, Metadata, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};

use crate::model::{DnsAnswer, Rcode, RrType};

#[doc(hidden)]
pub mod differential;
pub mod whole;
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
    match decode_sections(wire, None) {
        Ok(m) => Ok(m),
        Err(e) => salvage(wire, &e),
    }
}

/// [`parse_message`] of a message whose first question the caller has read already, with its
/// name rendered as [`name_str`] renders it (`first_name`: the packet fast path reads a
/// listed response's question in place, `wire::WireName::write_normalised`). The result is
/// the same: hickory still decodes the question, and fails where it fails, but a message it
/// decodes whole takes `first_name` for that question instead of rendering hickory's name a
/// second time (issue #11: ≈ 800 instructions per flood response). A salvaged message renders
/// its questions itself.
pub fn parse_message_named(wire: &[u8], first_name: &str) -> Result<ParsedMessage, DnsError> {
    match decode_sections(wire, Some(first_name)) {
        Ok(m) => Ok(m),
        Err(e) => salvage(wire, &e),
    }
}

/// DNS UPDATE (RFC 2136): its "answer" section holds prerequisites, not answers.
const OPCODE_UPDATE: u8 = 5;

/// hickory's whole-message decode (`Message::read`), section by section, with the same readers
/// in the same order (`Header::read`, `Query::read`, `Message::read_records` for the answer,
/// authority and additional sections), so it fails exactly where that fails, with the same
/// error. What it does not build (issue #11, every flood response is decoded): the `Message`
/// and its question list — each question becomes its observation form as it is read — and the
/// authority and additional records are dropped as soon as their section is checked (only the
/// OPT record's extended rcode bits are kept). `tests::sectional_decode_equals_the_message_decode`
/// compares the result with `from_message(&Message::from_vec(..))` on damaged and varied
/// messages.
fn decode_sections(wire: &[u8], first_name: Option<&str>) -> Result<ParsedMessage, DecodeError> {
    let mut dec = BinDecoder::new(wire);
    let Header {
        mut metadata,
        counts,
    } = Header::read(&mut dec)?;
    let mut questions = Vec::with_capacity(usize::from(counts.queries.min(1)));
    for i in 0..counts.queries {
        let q = Query::read(&mut dec)?;
        questions.push(match first_name.filter(|_| i == 0) {
            Some(name) => {
                debug_assert_eq!(name, name_str(q.name()), "the fast path's rendering");
                (name.to_owned(), RrType(u16::from(q.query_type())))
            }
            None => question(&q),
        });
    }
    let op = metadata.op_code;
    let (records, _, _) = Message::read_records(&mut dec, usize::from(counts.answers), false, op)?;
    // Checked (hickory rejects a message whose later sections do not decode), not kept.
    if counts.authorities > 0 {
        Message::read_records(&mut dec, usize::from(counts.authorities), false, op)?;
    }
    if counts.additionals > 0 {
        let (_, edns, _) =
            Message::read_records(&mut dec, usize::from(counts.additionals), true, op)?;
        // As `Message::read`: the EDNS high rcode bits extend the header's.
        if let Some(edns) = &edns {
            metadata.response_code =
                ResponseCode::from(edns.rcode_high(), metadata.response_code.low());
        }
    }
    Ok(ParsedMessage {
        answers: answers_of(u8::from(op), &records),
        ..parsed(&metadata, questions)
    })
}

/// The observation's answers of a decoded answer section.
fn answers_of(opcode: u8, records: &[Record]) -> Vec<DnsAnswer> {
    if opcode == OPCODE_UPDATE {
        return Vec::new();
    }
    records
        .iter()
        .filter(|r| !r.data.is_update())
        .take(MAX_ANSWERS)
        .map(answer)
        .collect()
}

/// The header's part of a message decoded whole (no answers yet).
fn parsed(meta: &Metadata, questions: Vec<(String, RrType)>) -> ParsedMessage {
    ParsedMessage {
        id: meta.id,
        is_response: meta.message_type == MessageType::Response,
        opcode: u8::from(meta.op_code),
        rcode: Rcode(u16::from(meta.response_code)),
        truncated: meta.truncation,
        recursion_desired: meta.recursion_desired,
        questions,
        answers: Vec::new(),
        salvaged: None,
        salvage_reason: None,
    }
}

/// The reference: hickory's `Message` decoded whole, then converted (what `parse_message` did
/// before the sectional decode; the tests compare the two).
#[cfg(test)]
fn from_message(msg: &Message) -> ParsedMessage {
    let questions = msg.queries.iter().map(question).collect();
    let answers = answers_of(u8::from(msg.metadata.op_code), &msg.answers);
    ParsedMessage {
        answers,
        ..parsed(&msg.metadata, questions)
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
    let mut v: Vec<u8> = Vec::with_capacity(64);
    for label in name.iter() {
        if !v.is_empty() {
            v.push(b'.');
        }
        push_label(&mut v, label);
    }
    if v.is_empty() {
        v.push(b'.');
    }
    String::from_utf8(v).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Each byte as a plain name byte renders: printable ASCII other than `.` and `\`, lowercased;
/// 0 for a byte that is escaped (see [`push_label`]).
const PLAIN_LOWER: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        if b != b'.' as usize && b != b'\\' as usize {
            t[b] = (b as u8).to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Appends one label as [`name_str`] renders it: printable ASCII lowercased, `.` and `\`
/// escaped with `\`, other bytes as `\DDD` (master-file style). One pass over a plain label
/// (nearly all): copied, then mapped through a table that also says whether any byte needs an
/// escape (name rendering was ≈ 4 % of a pool-lookup flood's instructions, issue #11). The
/// packet fast path (`wire::WireName::write_normalised`) renders with it too, so both agree.
#[inline]
pub(crate) fn push_label(out: &mut Vec<u8>, label: &[u8]) {
    let start = out.len();
    out.extend_from_slice(label);
    let mut plain = true;
    if let Some(copied) = out.get_mut(start..) {
        for b in copied {
            let c = PLAIN_LOWER[usize::from(*b)];
            plain &= c != 0;
            *b = c;
        }
    }
    if plain {
        return;
    }
    out.truncate(start);
    for &b in label {
        match b {
            b'.' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0x21..=0x7e => out.push(b.to_ascii_lowercase()),
            _ => {
                out.extend_from_slice(&[b'\\', b'0' + b / 100, b'0' + (b / 10) % 10, b'0' + b % 10])
            }
        }
    }
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
mod tests;
