//! Zero-copy reading of a DNS message (issue #16's fast path, step one): the header, the
//! questions and the answer records — owner names, types, TTLs, data — as slices of the
//! message bytes, with no allocation. Names are [`WireName`]s (a validated start offset) whose
//! labels are read in place, compression pointers included.
//!
//! The name rules are hickory-proto's (`Name::read`), so that whenever both read a name they
//! read the same one: a pointer must point before the start of the name (segment) that holds it,
//! a label past a followed pointer must lie before the segment the pointer left, at most 63
//! bytes a label and 255 encoded bytes a name; on top, at most [`MAX_POINTERS`] pointers a
//! name (hickory has no count, its "strictly backwards" rule bounds it by the message size).
//! `fuzz/fuzz_targets/dns_fastpath.rs` checks the agreement on arbitrary bytes, and
//! `dns::tests` on every fixture's messages. hickory stays the decoder of record: this reader
//! only decides what is worth decoding (`capture::txn`'s fast path, docs/performance.md #16).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name at most; more is an error (the caller falls back
/// to the full decode).
pub const MAX_POINTERS: usize = 32;
/// Longest encoded name (labels, their length bytes and the root byte), RFC 1035 and hickory.
pub const MAX_NAME_LEN: usize = 255;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;

const TYPE_A: u16 = 1;
const TYPE_NS: u16 = 2;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
/// EDNS options hickory decodes (and may reject): client subnet, NSID.
const EDNS_SUBNET: u16 = 8;
const EDNS_NSID: u16 = 3;

/// Why a message could not be read (the caller decodes it in full instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// The message ends inside the header, a name or a record.
    Truncated,
    /// A label length byte with the reserved high bits 01 or 10.
    LabelCode,
    /// A pointer not pointing before its name, or a label overlapping a later one.
    Pointer,
    /// More than [`MAX_POINTERS`] pointers in one name.
    TooManyPointers,
    /// A name longer than [`MAX_NAME_LEN`].
    NameTooLong,
}

/// A name inside a message: where it starts (validated when it was read).
#[derive(Clone, Copy, Debug)]
pub struct WireName<'a> {
    msg: &'a [u8],
    start: usize,
}

/// The labels of a [`WireName`], in order, as slices of the message.
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    hops: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let b = *self.msg.get(self.pos)?;
            match b & 0xc0 {
                0x00 if b == 0 => return None,
                0x00 => {
                    let start = self.pos + 1;
                    let end = start + usize::from(b);
                    self.pos = end;
                    return self.msg.get(start..end);
                }
                0xc0 => {
                    // Validated when read; the bound keeps a misuse finite all the same.
                    self.hops += 1;
                    if self.hops > MAX_POINTERS {
                        return None;
                    }
                    let lo = *self.msg.get(self.pos + 1)?;
                    self.pos = usize::from(u16::from_be_bytes([b & 0x3f, lo]));
                }
                _ => return None,
            }
        }
    }
}

impl<'a> WireName<'a> {
    pub fn labels(&self) -> Labels<'a> {
        Labels {
            msg: self.msg,
            pos: self.start,
            hops: 0,
        }
    }

    /// The root name (no labels).
    pub fn is_root(&self) -> bool {
        self.labels().next().is_none()
    }

    /// Appends the name as `dns::name_str` renders it (lowercase, no trailing dot, `.` for the
    /// root, `\.`, `\\` and `\DDD` escapes) — no allocation beyond `out`'s growth.
    pub fn write_normalised(&self, out: &mut Vec<u8>) {
        let begin = out.len();
        for label in self.labels() {
            if out.len() > begin {
                out.push(b'.');
            }
            super::push_label(out, label);
        }
        if out.len() == begin {
            out.push(b'.');
        }
    }

    /// [`WireName::write_normalised`] as a `String` (tests, the slow path).
    pub fn to_normalised(&self) -> String {
        let mut v = Vec::with_capacity(64);
        self.write_normalised(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// Reads the name at `pos`: the name and the offset just after it (after its first pointer,
/// if it has one).
pub fn read_name(msg: &[u8], pos: usize) -> Result<(WireName<'_>, usize), WireError> {
    let start = pos;
    let mut pos = pos;
    // hickory's `name_start` (the segment being read) and `ptr_max_idx` (labels read after a
    // pointer must lie before the segment it left).
    let mut segment = pos;
    let mut limit: Option<usize> = None;
    let mut after: Option<usize> = None;
    let mut encoded = 1usize; // the root byte
    let mut hops = 0usize;
    loop {
        if limit.is_some_and(|l| pos >= l) {
            return Err(WireError::Pointer);
        }
        let b = *msg.get(pos).ok_or(WireError::Truncated)?;
        match b & 0xc0 {
            0x00 if b == 0 => {
                let next = after.unwrap_or(pos + 1);
                return Ok((WireName { msg, start }, next));
            }
            0x00 => {
                let len = usize::from(b);
                if pos + 1 + len > msg.len() {
                    return Err(WireError::Truncated);
                }
                encoded += len + 1;
                if encoded > MAX_NAME_LEN {
                    return Err(WireError::NameTooLong);
                }
                pos += 1 + len;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(WireError::Truncated)?;
                let target = usize::from(u16::from_be_bytes([b & 0x3f, lo]));
                if target >= segment {
                    return Err(WireError::Pointer);
                }
                hops += 1;
                if hops > MAX_POINTERS {
                    return Err(WireError::TooManyPointers);
                }
                if after.is_none() {
                    after = Some(pos + 2);
                }
                limit = Some(segment);
                segment = target;
                pos = target;
            }
            _ => return Err(WireError::LabelCode),
        }
    }
}

/// A name at `start` that ends exactly at `end` (record data holding one name).
fn name_fills(msg: &[u8], start: usize, end: usize) -> bool {
    read_name(msg, start).is_ok_and(|(_, next)| next == end)
}

/// Character-strings (a length byte, then that many bytes) filling `start..end` exactly.
fn strings_fill(msg: &[u8], start: usize, end: usize) -> bool {
    let mut p = start;
    while p < end {
        let Some(&l) = msg.get(p) else {
            return false;
        };
        p += 1 + usize::from(l);
    }
    p == end
}

/// EDNS options (code, length, data) filling `start..end` exactly, none of the kinds hickory
/// decodes further.
fn options_fill(msg: &[u8], start: usize, end: usize) -> bool {
    let mut p = start;
    while p < end {
        let (Some(code), Some(len)) = (be16(msg, p), be16(msg, p + 2)) else {
            return false;
        };
        if code == EDNS_SUBNET || code == EDNS_NSID {
            return false;
        }
        p += 4 + usize::from(len);
    }
    p == end
}

/// One question.
#[derive(Clone, Copy, Debug)]
pub struct WireQuestion<'a> {
    pub name: WireName<'a>,
    pub qtype: u16,
    pub qclass: u16,
}

/// One resource record of the answer section.
#[derive(Clone, Copy, Debug)]
pub struct WireRecord<'a> {
    pub name: WireName<'a>,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: &'a [u8],
    /// Offset of `rdata` in the message (names in it may point anywhere before).
    rdata_at: usize,
    msg: &'a [u8],
}

impl<'a> WireRecord<'a> {
    /// The address of an A/AAAA record of the right length.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.rtype {
            TYPE_A => <[u8; 4]>::try_from(self.rdata)
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            TYPE_AAAA => <[u8; 16]>::try_from(self.rdata)
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }

    /// The target name of a CNAME/NS/PTR record, when it reads within the record data.
    pub fn target(&self) -> Option<WireName<'a>> {
        if !matches!(self.rtype, TYPE_CNAME | TYPE_NS | TYPE_PTR) {
            return None;
        }
        let (name, next) = read_name(self.msg, self.rdata_at).ok()?;
        (next <= self.rdata_at + self.rdata.len()).then_some(name)
    }
}

/// A message read in place: header fields and the question section; the answers are read on
/// demand ([`WireMessage::answers`]).
#[derive(Clone, Copy, Debug)]
pub struct WireMessage<'a> {
    msg: &'a [u8],
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
    /// The first question (none when `qdcount` is 0).
    pub question: Option<WireQuestion<'a>>,
    /// Offset of the answer section.
    answers_at: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Reads the header and every question.
pub fn parse(msg: &[u8]) -> Result<WireMessage<'_>, WireError> {
    let field = |at| be16(msg, at).ok_or(WireError::Truncated);
    let (id, flags, qdcount, ancount) = (field(0)?, field(2)?, field(4)?, field(6)?);
    let (nscount, arcount) = (field(8)?, field(10)?);
    if msg.len() < super::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let mut pos = super::HEADER_LEN;
    let mut question = None;
    for _ in 0..qdcount {
        let (name, next) = read_name(msg, pos)?;
        let (qtype, qclass) = (field(next)?, field(next + 2)?);
        if question.is_none() {
            question = Some(WireQuestion {
                name,
                qtype,
                qclass,
            });
        }
        pos = next + 4;
    }
    Ok(WireMessage {
        msg,
        id,
        flags,
        qdcount,
        ancount,
        nscount,
        arcount,
        question,
        answers_at: pos,
    })
}

impl<'a> WireMessage<'a> {
    pub fn is_response(&self) -> bool {
        self.flags & 0x8000 != 0
    }
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0x0f) as u8
    }
    /// The header's 4 rcode bits (EDNS may extend them, in the additional section).
    pub fn rcode_low(&self) -> u8 {
        (self.flags & 0x0f) as u8
    }

    /// Whether hickory-proto decodes this message whole (no salvage), decided by reading every
    /// record of all three sections with hickory's rules. Conservative: `false` also for
    /// messages hickory would read but this reader does not check — an opcode other than
    /// QUERY, not exactly one question, a record type outside A, AAAA, CNAME, NS, PTR, SOA,
    /// MX, TXT and (in the additional section, once) OPT, EDNS options hickory parses itself
    /// (client subnet, NSID), OPT options that do not fill the record exactly, more than
    /// [`MAX_POINTERS`] pointers in a name. The fast path only skips messages for which this
    /// holds, so a message hickory would salvage always takes the decoding path and is
    /// counted there (`differential` checks the implication).
    pub fn decodes_whole(&self) -> bool {
        if self.opcode() != 0 || self.qdcount != 1 {
            return false;
        }
        let msg = self.msg;
        let sections = [self.ancount, self.nscount, self.arcount];
        let mut pos = self.answers_at;
        let mut edns = false;
        for (section, &count) in sections.iter().enumerate() {
            let additional = section == 2;
            for _ in 0..count {
                let Ok((name, at)) = read_name(msg, pos) else {
                    return false;
                };
                let (Some(rtype), Some(len)) = (be16(msg, at), be16(msg, at + 8)) else {
                    return false;
                };
                let (start, len) = (at + 10, usize::from(len));
                let end = start + len;
                if end > msg.len() {
                    return false;
                }
                let ok = match rtype {
                    TYPE_A => len == 4,
                    TYPE_AAAA => len == 16,
                    TYPE_CNAME | TYPE_NS | TYPE_PTR => name_fills(msg, start, end),
                    TYPE_MX => len > 2 && name_fills(msg, start + 2, end),
                    TYPE_SOA => read_name(msg, start)
                        .and_then(|(_, n)| read_name(msg, n))
                        .is_ok_and(|(_, n)| n + 20 == end),
                    TYPE_TXT => len > 0 && strings_fill(msg, start, end),
                    TYPE_OPT if additional && !edns && name.is_root() => {
                        edns = true;
                        options_fill(msg, start, end)
                    }
                    _ => false,
                };
                if !ok {
                    return false;
                }
                pos = end;
            }
        }
        true
    }

    /// The answer records, in order, at most [`super::MAX_ANSWERS`]; an unreadable record
    /// ends the iteration with its error.
    pub fn answers(&self) -> Answers<'a> {
        Answers {
            msg: self.msg,
            pos: self.answers_at,
            left: usize::from(self.ancount).min(super::MAX_ANSWERS),
        }
    }
}

/// See [`WireMessage::answers`].
pub struct Answers<'a> {
    msg: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Answers<'a> {
    type Item = Result<WireRecord<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = self.record();
        if r.is_err() {
            self.left = 0;
        }
        Some(r)
    }
}

impl<'a> Answers<'a> {
    fn record(&mut self) -> Result<WireRecord<'a>, WireError> {
        let msg = self.msg;
        let (name, at) = read_name(msg, self.pos)?;
        let rtype = be16(msg, at).ok_or(WireError::Truncated)?;
        let class = be16(msg, at + 2).ok_or(WireError::Truncated)?;
        let ttl = be32(msg, at + 4).ok_or(WireError::Truncated)?;
        let len = usize::from(be16(msg, at + 8).ok_or(WireError::Truncated)?);
        let rdata_at = at + 10;
        let rdata = msg
            .get(rdata_at..rdata_at + len)
            .ok_or(WireError::Truncated)?;
        self.pos = rdata_at + len;
        Ok(WireRecord {
            name,
            rtype,
            class,
            ttl,
            rdata,
            rdata_at,
            msg,
        })
    }
}

/// The differential check of the fuzz target and the tests: where hickory (`parse_message`)
/// reads a message whole, this reader must read it too, with the same first question (name as
/// `name_str` renders it, type) and the same answers (owner names, types, TTLs, A/AAAA
/// addresses, CNAME/NS/PTR targets). Where hickory only salvages, the first questions must
/// still agree when both read them. `Err` says what differs.
#[doc(hidden)]
pub fn differential(msg: &[u8]) -> Result<(), String> {
    let Ok(h) = super::parse_message(msg) else {
        if parse(msg).is_ok_and(|w| w.decodes_whole()) {
            return Err("the fast path would skip a message hickory cannot read".into());
        }
        return Ok(());
    };
    let whole = h.salvaged.is_none();
    if !whole && parse(msg).is_ok_and(|w| w.decodes_whole()) {
        return Err(format!(
            "the fast path would skip a message hickory only salvages: {:?}",
            h.salvaged
        ));
    }
    let w = match parse(msg) {
        Ok(w) => w,
        // Beyond this reader's own pointer bound it falls back to hickory: allowed.
        Err(WireError::TooManyPointers) => return Ok(()),
        Err(e) if whole => return Err(format!("hickory read the message, the fast path: {e:?}")),
        Err(_) => return Ok(()),
    };
    match (h.questions.first(), w.question) {
        (Some((name, qtype)), Some(q)) => {
            let mine = q.name.to_normalised();
            if *name != mine || qtype.0 != q.qtype {
                return Err(format!("question {name}/{} vs {mine}/{}", qtype.0, q.qtype));
            }
        }
        (None, None) => {}
        (a, b) => return Err(format!("question {a:?} vs {:?}", b.map(|q| q.qtype))),
    }
    if !whole || h.opcode == 5 || usize::from(w.ancount) > super::MAX_ANSWERS {
        return Ok(());
    }
    let mut mine = Vec::new();
    for r in w.answers() {
        let r = match r {
            Ok(r) => r,
            Err(WireError::TooManyPointers) => return Ok(()),
            Err(e) => return Err(format!("hickory read the answers, the fast path: {e:?}")),
        };
        if !r.rdata.is_empty() {
            mine.push(r);
        }
    }
    if mine.len() != h.answers.len() {
        return Err(format!("{} answers vs {}", h.answers.len(), mine.len()));
    }
    for (a, r) in h.answers.iter().zip(&mine) {
        let name = r.name.to_normalised();
        if a.name != name || a.rtype.0 != r.rtype || a.ttl != Some(r.ttl) {
            return Err(format!(
                "answer {} {} {:?} vs {name} {} {}",
                a.name, a.rtype.0, a.ttl, r.rtype, r.ttl
            ));
        }
        let data = match (r.ip(), r.target()) {
            (Some(ip), _) => Some(ip.to_string()),
            (None, Some(t)) => Some(t.to_normalised()),
            (None, None) => None,
        };
        if let Some(d) = data {
            if d != a.data {
                return Err(format!("answer data {} vs {d}", a.data));
            }
        } else if matches!(
            r.rtype,
            TYPE_A | TYPE_AAAA | TYPE_CNAME | TYPE_NS | TYPE_PTR
        ) {
            return Err(format!("answer {} of type {}: no data read", name, r.rtype));
        }
    }
    Ok(())
}
