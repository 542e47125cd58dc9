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
//! `fuzz/fuzz_targets/dns_fastpath.rs` (through `dns::differential`) checks the agreement on
//! arbitrary bytes, and `dns::tests` on every fixture's messages. hickory stays the decoder of
//! record: this reader decides what is worth decoding (`capture::txn`'s fast path,
//! docs/performance.md #16), and builds a listed response itself only where it reads exactly
//! what hickory reads (`dns::whole`; both checked against hickory by `dns::differential`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Compression pointers followed in one name at most; more is an error (the caller falls back
/// to the full decode).
pub const MAX_POINTERS: usize = 32;
/// Longest encoded name (labels, their length bytes and the root byte), RFC 1035 and hickory.
pub const MAX_NAME_LEN: usize = 255;
/// Longest label.
pub const MAX_LABEL_LEN: usize = 63;

pub(super) const TYPE_A: u16 = 1;
pub(super) const TYPE_NS: u16 = 2;
pub(super) const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
pub(super) const TYPE_PTR: u16 = 12;
const TYPE_MX: u16 = 15;
const TYPE_TXT: u16 = 16;
pub(super) const TYPE_AAAA: u16 = 28;
pub(super) const TYPE_OPT: u16 = 41;
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

    /// Whether this name's labels are byte for byte `other`'s (then both render the same):
    /// the same offset, a compression pointer to it (an answer owner `0xC00C` is the
    /// question's name), or the same labels written out again. Both names were validated when
    /// read (so their label walks end at their root byte).
    pub fn has_labels_of(&self, other: &WireName<'_>) -> bool {
        if std::ptr::eq(self.msg, other.msg) && self.start == other.start {
            return true;
        }
        let (mut a, mut b) = (self.labels(), other.labels());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x == y => {}
                _ => return false,
            }
        }
    }

    /// Whether [`WireName::write_normalised`] would write exactly `s`, without writing it: each
    /// label compared in place, lowercased through the rendering's own table; a label with a
    /// byte to escape (or one that differs) is rendered alone and compared (issue #16: a
    /// response's question is compared with its pending query's rendered name, which was one
    /// rendering and a UTF-8 check a response).
    pub fn renders_as(&self, s: &[u8]) -> bool {
        let mut rest = s;
        let mut first = true;
        let mut label_text = Vec::new();
        for label in self.labels() {
            if !first {
                match rest.split_first() {
                    Some((b'.', r)) => rest = r,
                    _ => return false,
                }
            }
            first = false;
            if let Some((head, tail)) = rest.split_at_checked(label.len()) {
                let plain_equal = label.iter().zip(head).all(|(&b, &c)| {
                    super::PLAIN_LOWER
                        .get(usize::from(b))
                        .is_some_and(|&l| l != 0 && l == c)
                });
                if plain_equal {
                    rest = tail;
                    continue;
                }
            }
            label_text.clear();
            super::push_label(&mut label_text, label);
            match rest.strip_prefix(label_text.as_slice()) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        if first {
            return s == b".";
        }
        rest.is_empty()
    }

    /// The root name (no labels).
    pub fn is_root(&self) -> bool {
        self.labels().next().is_none()
    }

    /// Appends the name as `dns::name_str` renders it (lowercase, no trailing dot, `.` for the
    /// root, `\.`, `\\` and `\DDD` escapes) — no allocation beyond `out`'s growth.
    ///
    /// Each run of labels between pointers is copied in one piece and its length bytes turned
    /// into dots in place (issue #16, fourth pass: a copy and a call per label were most of the
    /// cost); a run with a byte to escape is rendered label by label ([`super::push_label`]).
    /// The output is [`WireName::labels`] joined with dots, each label as `push_label` renders
    /// it (`tests::runs_render_as_labels`).
    pub fn write_normalised(&self, out: &mut Vec<u8>) {
        let begin = out.len();
        let msg = self.msg;
        let mut pos = self.start;
        let mut hops = 0usize;
        loop {
            // The labels from `pos` up to the root, a pointer, a bad length byte or the end.
            let mut end = pos;
            while let Some(&b) = msg.get(end) {
                let next = end + 1 + usize::from(b);
                if b == 0 || b & 0xc0 != 0 || next > msg.len() {
                    break;
                }
                end = next;
            }
            if let Some(run) = msg.get(pos..end).filter(|r| !r.is_empty()) {
                if out.len() > begin {
                    out.push(b'.');
                }
                push_run(out, run);
            }
            match (msg.get(end), msg.get(end + 1)) {
                (Some(&hi), Some(&lo)) if hi & 0xc0 == 0xc0 && hops < MAX_POINTERS => {
                    hops += 1;
                    pos = usize::from(u16::from_be_bytes([hi & 0x3f, lo]));
                }
                _ => break,
            }
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

/// Appends `run` (length-prefixed labels, at least one) as its labels joined with dots, each
/// rendered as [`super::push_label`] does. One copy; the length bytes are set to a plain byte,
/// the copy is checked and lowercased eight bytes at a time, then the length bytes become dots.
/// A run with a byte to escape is rendered label by label instead.
fn push_run(out: &mut Vec<u8>, run: &[u8]) {
    let at = out.len();
    out.extend_from_slice(run.get(1..).unwrap_or_default());
    if out.get_mut(at..).is_some_and(|dst| plain_run(dst, run)) {
        return;
    }
    out.truncate(at);
    let mut pos = 0usize;
    while let Some(&len) = run.get(pos) {
        let label = run
            .get(pos + 1..pos + 1 + usize::from(len))
            .unwrap_or_default();
        if pos > 0 {
            out.push(b'.');
        }
        super::push_label(out, label);
        pos += 1 + usize::from(len);
    }
}

/// The length bytes of `run` after the first, as offsets into its copy without the first byte.
fn later_lengths(run: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut i = usize::from(run.first().copied().unwrap_or(0));
    std::iter::from_fn(move || {
        let len = *run.get(i + 1)?;
        let here = i;
        i += 1 + usize::from(len);
        Some(here)
    })
}

/// Renders `dst` (the copy of `run` without its first length byte) in place when every label
/// byte is plain (`PLAIN_LOWER`: `0x21..=0x7e` but `.` and `\`): lowercased, length bytes as
/// dots. `false` (and `dst` partly rewritten) when a byte needs an escape.
fn plain_run(dst: &mut [u8], run: &[u8]) -> bool {
    for i in later_lengths(run) {
        if let Some(b) = dst.get_mut(i) {
            *b = b'a';
        }
    }
    let mut chunks = dst.chunks_exact_mut(8);
    for c in &mut chunks {
        let Ok(word) = <&mut [u8; 8]>::try_from(c) else {
            return false;
        };
        match plain_lower_word(u64::from_le_bytes(*word)) {
            Some(w) => *word = w.to_le_bytes(),
            None => return false,
        }
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let mut last = [b'a'; 8];
        if let Some(d) = last.get_mut(..rest.len()) {
            d.copy_from_slice(rest);
        }
        let Some(w) = plain_lower_word(u64::from_le_bytes(last)) else {
            return false;
        };
        if let Some(src) = w.to_le_bytes().get(..rest.len()) {
            rest.copy_from_slice(src);
        }
    }
    for i in later_lengths(run) {
        if let Some(b) = dst.get_mut(i) {
            *b = b'.';
        }
    }
    true
}

/// `PLAIN_LOWER` on eight bytes at once: `None` when one of them is outside `0x21..=0x7e` or is
/// `.` or `\`, else the word with `A`–`Z` lowercased. Each test below is exact for "some byte":
/// `(w - n) & !w & 0x80` per byte finds a byte below `n` (n ≤ 0x80), `(w + 0x7f - n) | w`
/// one above `n`.
#[inline]
fn plain_lower_word(w: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let above = |x: u64, n: u8| (x.wrapping_add(ONES * u64::from(0x7f - n)) | x) & HIGHS;
    let bad = below(w, 0x21)
        | above(w, 0x7e)
        | below(w ^ (ONES * u64::from(b'.')), 1)
        | below(w ^ (ONES * u64::from(b'\\')), 1);
    if bad != 0 {
        return None;
    }
    // All bytes are below 0x80: no carry crosses a byte.
    let ge_a = w.wrapping_add(ONES * u64::from(0x80 - b'A')) & HIGHS;
    let gt_z = w.wrapping_add(ONES * u64::from(0x80 - b'Z' - 1)) & HIGHS;
    Some(w | (ge_a & !gt_z) >> 2)
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
    /// TC: the message was truncated.
    pub fn truncated(&self) -> bool {
        self.flags & 0x0200 != 0
    }
    /// RD: recursion desired.
    pub fn recursion_desired(&self) -> bool {
        self.flags & 0x0100 != 0
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
        self.walk_whole(|_, _, _| {})
    }

    /// [`WireMessage::decodes_whole`], noting on the way what [`WireMessage::answers`] would
    /// give of the first [`super::MAX_ANSWERS`] answers: their A/AAAA addresses and where their
    /// CNAME targets start ([`WireMessage::name_at`]), in order. One walk of the message
    /// instead of two (issue #16: the fast path walked the answers again after this check).
    /// `notes` is cleared first; when this returns `false` it holds a prefix only.
    pub fn decodes_whole_noting(&self, notes: &mut AnswerNotes) -> bool {
        notes.ips.clear();
        notes.cnames.clear();
        let msg = self.msg;
        self.walk_whole(|rtype, start, end| match rtype {
            TYPE_A => {
                if let Some(o) = msg
                    .get(start..end)
                    .and_then(|d| <[u8; 4]>::try_from(d).ok())
                {
                    notes.ips.push(IpAddr::V4(Ipv4Addr::from(o)));
                }
            }
            TYPE_AAAA => {
                if let Some(o) = msg
                    .get(start..end)
                    .and_then(|d| <[u8; 16]>::try_from(d).ok())
                {
                    notes.ips.push(IpAddr::V6(Ipv6Addr::from(o)));
                }
            }
            TYPE_CNAME => notes.cnames.push(start),
            _ => {}
        })
    }

    /// The name at `start` (an offset [`WireMessage::decodes_whole_noting`] noted).
    pub fn name_at(&self, start: usize) -> WireName<'a> {
        WireName {
            msg: self.msg,
            start,
        }
    }

    /// The walk of [`WireMessage::decodes_whole`]; `answer(rtype, start, end)` is called for
    /// each of the first [`super::MAX_ANSWERS`] records of the answer section that passed the
    /// rules, with its record data's bounds.
    #[inline]
    fn walk_whole(&self, mut answer: impl FnMut(u16, usize, usize)) -> bool {
        if self.opcode() != 0 || self.qdcount != 1 {
            return false;
        }
        let msg = self.msg;
        let sections = [self.ancount, self.nscount, self.arcount];
        let mut pos = self.answers_at;
        let mut edns = false;
        for (section, &count) in sections.iter().enumerate() {
            let additional = section == 2;
            for i in 0..count {
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
                if section == 0 && usize::from(i) < super::MAX_ANSWERS {
                    answer(rtype, start, end);
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

    /// Every record of the answer, authority and additional sections, in order, uncapped
    /// (`dns::whole`); an unreadable record ends the iteration with its error.
    pub(super) fn records(&self) -> Answers<'a> {
        Answers {
            msg: self.msg,
            pos: self.answers_at,
            left: usize::from(self.ancount) + usize::from(self.nscount) + usize::from(self.arcount),
        }
    }
}

/// What [`WireMessage::decodes_whole_noting`] read of the answer section.
#[derive(Debug, Default)]
pub struct AnswerNotes {
    /// The A/AAAA addresses, in order.
    pub ips: Vec<IpAddr>,
    /// Where the CNAME targets start, in order.
    pub cnames: Vec<usize>,
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

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
