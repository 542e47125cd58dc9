//! Byte-level helpers shared by the line parsers: tokens, numbers, addresses, timestamps.
//! Nothing here allocates or panics; every function returns `None` on malformed input.

use std::net::IpAddr;

use memchr::memmem;

use super::time::{month_from_abbrev, TimeResolver};
use crate::model::Timestamp;

/// Splits on runs of ASCII spaces/tabs, skipping empty tokens (what
/// `b.split(|c| *c == b' ' || *c == b'\t').filter(|t| !t.is_empty())` gives:
/// `tests::tokens_are_the_split_definition`).
pub fn tokens(b: &[u8]) -> Tokens<'_> {
    Tokens { rest: b }
}

/// The iterator of [`tokens`]. A token's end is found eight bytes at a time (issue #16: the
/// byte-at-a-time split was ≈ 20 % of an Unbound log scan's instructions).
#[derive(Debug, Clone)]
pub struct Tokens<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let b = trim_start(self.rest);
        let end = blank_at(b).unwrap_or(b.len());
        let (token, rest) = b.split_at_checked(end)?;
        self.rest = rest;
        (!token.is_empty()).then_some(token)
    }
}

/// The bytes of `w` equal to `c`, flagged in their high bit. The lowest flag is exact (a
/// false flag can only sit above a true one), so the lowest flag of several such masks OR-ed
/// is the first byte equal to any of their values.
#[inline]
fn byte_flags(w: u64, c: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let x = w ^ ONES.wrapping_mul(u64::from(c));
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// Index of the first byte of `b` that `flags` marks in a little-endian word (built from
/// [`byte_flags`]) and `is` accepts in the tail: eight bytes at a time.
#[inline]
fn first_at(b: &[u8], flags: impl Fn(u64) -> u64, is: impl Fn(u8) -> bool) -> Option<usize> {
    let mut at = 0;
    let mut rest = b;
    while let Some((word, tail)) = rest.split_first_chunk::<8>() {
        let m = flags(u64::from_le_bytes(*word));
        if m != 0 {
            return Some(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
        rest = tail;
    }
    rest.iter().position(|c| is(*c)).map(|p| at + p)
}

/// Index of the first space or tab in `b`.
#[inline]
fn blank_at(b: &[u8]) -> Option<usize> {
    first_at(
        b,
        |w| byte_flags(w, b' ') | byte_flags(w, b'\t'),
        |c| c == b' ' || c == b'\t',
    )
}

/// Index of the first space (not tab) in `b`.
#[inline]
pub fn space_at(b: &[u8]) -> Option<usize> {
    first_at(b, |w| byte_flags(w, b' '), |c| c == b' ')
}

/// Strips leading spaces/tabs.
pub fn trim_start(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    b
}

/// Strips trailing whitespace (including `\r`).
pub fn trim_end(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = b {
        b = rest;
    }
    b
}

/// The first token and the rest after it (leading spaces of the rest stripped). The token's
/// end is found eight bytes at a time: a `memchr` set-up cost more on short lines (issue #16,
/// dnsmasq; `tests::tokens_are_the_split_definition`).
#[inline]
pub fn next_token(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let b = trim_start(b);
    if b.is_empty() {
        return None;
    }
    let end = blank_at(b).unwrap_or(b.len());
    let (token, rest) = b.split_at_checked(end)?;
    Some((token, trim_start(rest)))
}

/// First occurrence of `needle`. Log lines are short, so a first-byte scan beats building a
/// substring searcher per call; long haystacks use `memmem`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    if hay.len() > 512 {
        return memmem::find(hay, needle);
    }
    let mut from = 0;
    while let Some(i) = hay.get(from..).and_then(|h| memchr::memchr(first, h)) {
        let at = from + i;
        if hay.get(at + 1..at + 1 + rest.len()) == Some(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// A dotted-quad IPv4 address in canonical form (no leading zeros), without UTF-8 validation:
/// four octets of 1–3 digits, at most 255, with no leading zero, joined by single dots. An
/// octet at a time (issue #16: the byte loop with four tests a byte cost ≈ 80 instructions
/// an address more; `tests::parse_ipv4_is_the_canonical_quad`).
pub fn parse_ipv4(b: &[u8]) -> Option<std::net::Ipv4Addr> {
    let (a, rest) = octet(b)?;
    let (b2, rest) = octet(rest.strip_prefix(b".")?)?;
    let (c, rest) = octet(rest.strip_prefix(b".")?)?;
    let (d, rest) = octet(rest.strip_prefix(b".")?)?;
    rest.is_empty()
        .then(|| std::net::Ipv4Addr::new(a, b2, c, d))
}

/// The canonical decimal octet at the start of `b` (1–3 digits, at most 255, no leading zero
/// unless it is `0` itself) and the bytes after it; `None` when `b` does not start with one or
/// a fourth digit follows.
#[inline]
fn octet(b: &[u8]) -> Option<(u8, &[u8])> {
    let digit = |i: usize| b.get(i).map(|c| c.wrapping_sub(b'0')).filter(|d| *d <= 9);
    let d0 = digit(0)?;
    let Some(d1) = digit(1) else {
        return Some((d0, b.get(1..)?));
    };
    if d0 == 0 {
        return None; // leading zero: not canonical
    }
    let Some(d2) = digit(2) else {
        return Some((d0 * 10 + d1, b.get(2..)?));
    };
    if digit(3).is_some() {
        return None;
    }
    let v = u16::from(d0) * 100 + u16::from(d1) * 10 + u16::from(d2);
    Some((u8::try_from(v).ok()?, b.get(3..)?))
}

pub fn as_str(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

/// An IPv4/IPv6 address, optionally in brackets.
pub fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    let b = match b {
        [b'[', inner @ .., b']'] => inner,
        _ => b,
    };
    if b.is_empty() || b.len() > 64 {
        return None;
    }
    if let Some(v4) = parse_ipv4(b) {
        return Some(IpAddr::V4(v4));
    }
    if let Some(v6) = parse_ipv6_hex(b) {
        return Some(IpAddr::V6(v6));
    }
    // The rest (an embedded IPv4 part, a zone, or malformed): std decides, for IPv6 only.
    if !b.contains(&b':') {
        return None;
    }
    as_str(b)?.parse().ok()
}

/// The common IPv6 spellings without std's general parser (its set-up was 5% of a dnsmasq
/// scan), in one pass (a `memchr` per colon and two group passes were ≈ 1 500 instructions an
/// address, issue #16): eight groups of 1–4 hex digits, or fewer around one `::` standing for
/// at least one zero group. `None` for anything else (an embedded IPv4 part, a zone, a malformed string):
/// the caller then asks std, so `Some` is always std's own answer (`ipv6_agrees_with_std`).
pub(crate) fn parse_ipv6_hex(b: &[u8]) -> Option<std::net::Ipv6Addr> {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(u16::from(c - b'0')),
        b'a'..=b'f' => Some(u16::from(c - b'a' + 10)),
        b'A'..=b'F' => Some(u16::from(c - b'A' + 10)),
        _ => None,
    };
    let mut g = [0u16; 8];
    let mut n = 0usize;
    // Where the `::` stands: the number of groups before it.
    let mut gap = None;
    let mut i = 0;
    if b.starts_with(b"::") {
        gap = Some(0);
        i = 2;
        if i == b.len() {
            return Some(std::net::Ipv6Addr::UNSPECIFIED);
        }
    }
    loop {
        let start = i;
        let mut v = 0u16;
        while let Some(d) = b.get(i).and_then(|c| hex(*c)) {
            if i - start == 4 {
                return None;
            }
            v = v << 4 | d;
            i += 1;
        }
        if i == start {
            return None;
        }
        *g.get_mut(n)? = v;
        n += 1;
        match b.get(i) {
            None => break,
            Some(b':') => {
                i += 1;
                if b.get(i) == Some(&b':') {
                    if gap.is_some() {
                        return None;
                    }
                    gap = Some(n);
                    i += 1;
                    if i == b.len() {
                        break;
                    }
                }
            }
            Some(_) => return None,
        }
    }
    match gap {
        None if n == 8 => {}
        None => return None,
        Some(at) => {
            if n > 7 {
                return None;
            }
            let mut out = [0u16; 8];
            let tail = n.checked_sub(at)?;
            out.get_mut(..at)?.copy_from_slice(g.get(..at)?);
            out.get_mut(8 - tail..)?.copy_from_slice(g.get(at..n)?);
            g = out;
        }
    }
    Some(std::net::Ipv6Addr::from(g))
}

/// `addr<sep>port` where the separator is the last occurrence of `sep` (IPv6 safe for `#`, `@`,
/// `/`; for `:` an IPv6 address must be bracketed).
pub fn parse_ip_port(b: &[u8], sep: u8) -> Option<(IpAddr, u16)> {
    let i = memchr::memrchr(sep, b)?;
    let ip = parse_ip(b.get(..i)?)?;
    let port = parse_u64(b.get(i + 1..)?)?;
    Some((ip, u16::try_from(port).ok()?))
}

/// `ip:port`, `[ipv6]:port`, or a bare address (port `None`).
pub fn parse_endpoint(b: &[u8]) -> Option<(IpAddr, Option<u16>)> {
    if let Some(ip) = parse_ip(b) {
        return Some((ip, None));
    }
    let (ip, port) = parse_ip_port(b, b':')?;
    Some((ip, Some(port)))
}

/// A decimal unsigned integer (no sign, at most 19 digits).
pub fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for c in b {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

pub fn parse_hex_u16(b: &[u8]) -> Option<u16> {
    if b.is_empty() || b.len() > 4 {
        return None;
    }
    u16::from_str_radix(as_str(b)?, 16).ok()
}

/// `HH:MM:SS` with an optional `.fraction` (any number of digits) → (seconds of day, µs).
pub fn parse_hms(b: &[u8]) -> Option<(u32, u32)> {
    let h = parse_u64(b.get(0..2)?)? as u32;
    if b.get(2) != Some(&b':') || b.get(5) != Some(&b':') {
        return None;
    }
    let m = parse_u64(b.get(3..5)?)? as u32;
    let s = parse_u64(b.get(6..8)?)? as u32;
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    let mut micros = 0u32;
    if let Some(b'.' | b',') = b.get(8) {
        let frac = b.get(9..)?;
        let mut scale = 100_000u32;
        for c in frac.iter().take_while(|c| c.is_ascii_digit()).take(6) {
            micros += u32::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    Some((h * 3600 + m * 60 + s, micros))
}

/// Length of `HH:MM:SS[.frac]` at the start of `b`.
fn hms_len(b: &[u8]) -> usize {
    let mut n = 8.min(b.len());
    if matches!(b.get(8), Some(b'.' | b',')) {
        n = 9 + b
            .get(9..)
            .map_or(0, |f| f.iter().take_while(|c| c.is_ascii_digit()).count());
    }
    n
}

/// Syslog `Mon dd HH:MM:SS` (day space-padded or not, single or double spaces) at the start of
/// the line; returns the timestamp and the rest (not trimmed).
pub fn syslog_ts<'a>(line: &'a [u8], time: &mut TimeResolver) -> Option<(Timestamp, &'a [u8])> {
    let month = month_from_abbrev(line.get(..3)?)?;
    let rest = trim_start(line.get(3..)?);
    let dlen = rest.iter().take_while(|c| c.is_ascii_digit()).count();
    if dlen == 0 || dlen > 2 {
        return None;
    }
    let day = parse_u64(rest.get(..dlen)?)? as u32;
    let rest = trim_start(rest.get(dlen..)?);
    let (secs, micros) = parse_hms(rest)?;
    let n = hms_len(rest);
    let ts = time.resolve_yearless(month, day, secs, micros)?;
    Some((ts, rest.get(n..)?))
}

/// `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z|±hh:mm|±hhmm]` at the start of the line; zone-less values use
/// the resolver's zone. Returns the timestamp and the rest.
pub fn iso_ts<'a>(line: &'a [u8], time: &mut TimeResolver) -> Option<(Timestamp, &'a [u8])> {
    let year = parse_u64(line.get(0..4)?)? as i32;
    if line.get(4) != Some(&b'-') || line.get(7) != Some(&b'-') {
        return None;
    }
    let month = parse_u64(line.get(5..7)?)? as u32;
    let day = parse_u64(line.get(8..10)?)? as u32;
    if !matches!(line.get(10), Some(b'T' | b' ')) {
        return None;
    }
    let rest = line.get(11..)?;
    let (secs, micros) = parse_hms(rest)?;
    let mut rest = rest.get(hms_len(rest)..)?;
    let mut offset: i64 = 0;
    let mut zoned = false;
    match rest.first() {
        Some(b'Z' | b'z') => {
            zoned = true;
            rest = rest.get(1..)?;
        }
        Some(&c @ (b'+' | b'-')) => {
            let sign = if c == b'+' { 1 } else { -1 };
            let h = parse_u64(rest.get(1..3)?)? as i64;
            let (m, n) = if rest.get(3) == Some(&b':') {
                (parse_u64(rest.get(4..6)?)? as i64, 6)
            } else {
                (parse_u64(rest.get(3..5)?)? as i64, 5)
            };
            offset = sign * (h * 3600 + m * 60);
            zoned = true;
            rest = rest.get(n..)?;
        }
        _ => {}
    }
    let ts = if zoned {
        let mut utc = TimeResolver::new(super::time::Zone::Utc, None);
        let t = utc.resolve(year, month, day, secs, micros)?;
        Timestamp(t.0.checked_sub(offset.checked_mul(1_000_000)?)?)
    } else {
        time.resolve(year, month, day, secs, micros)?
    };
    Some((ts, rest))
}

/// `DD-Mon-YYYY HH:MM:SS.mmm` (BIND) at the start of the line.
pub fn bind_ts<'a>(line: &'a [u8], time: &mut TimeResolver) -> Option<(Timestamp, &'a [u8])> {
    let day = parse_u64(line.get(0..2)?)? as u32;
    if line.get(2) != Some(&b'-') || line.get(6) != Some(&b'-') || line.get(11) != Some(&b' ') {
        return None;
    }
    let month = month_from_abbrev(line.get(3..6)?)?;
    let year = parse_u64(line.get(7..11)?)? as i32;
    let rest = line.get(12..)?;
    let (secs, micros) = parse_hms(rest)?;
    let ts = time.resolve(year, month, day, secs, micros)?;
    Some((ts, rest.get(hms_len(rest)..)?))
}

/// Epoch seconds with an optional fraction (`1795724797`, `1795724946.178`).
pub fn epoch_ts(b: &[u8]) -> Option<Timestamp> {
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(i) => (b.get(..i)?, b.get(i + 1..)?),
        None => (b, &b""[..]),
    };
    let secs = parse_u64(int)?;
    if secs > 100_000_000_000 {
        return None;
    }
    let mut micros = 0i64;
    let mut scale = 100_000i64;
    for c in frac.iter().take(6) {
        if !c.is_ascii_digit() {
            return None;
        }
        micros += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(Timestamp(secs as i64 * 1_000_000 + micros))
}

/// `[secs]` or `[secs.frac]` (1–11 digits, 1–6 fraction digits) read in one pass, as Unbound
/// writes every line (issue #16: two `memchr` set-ups and a second digit pass were ≈ 300
/// instructions a line). `None` for any other shape; the caller then takes the general rule,
/// so `Some` is always its answer (`tests::bracket_epoch_is_the_general_rule`).
#[inline]
fn bracket_epoch(line: &[u8]) -> Option<(Timestamp, &[u8])> {
    let mut secs: i64 = 0;
    let mut i = 1;
    while let Some(d) = line
        .get(i)
        .map(|c| c.wrapping_sub(b'0'))
        .filter(|d| *d <= 9)
    {
        secs = secs * 10 + i64::from(d);
        i += 1;
        if i > 12 {
            return None;
        }
    }
    if i == 1 {
        return None;
    }
    let mut micros = 0i64;
    if line.get(i) == Some(&b'.') {
        let start = i + 1;
        let mut scale = 100_000i64;
        i = start;
        while let Some(d) = line
            .get(i)
            .map(|c| c.wrapping_sub(b'0'))
            .filter(|d| *d <= 9)
        {
            micros += i64::from(d) * scale;
            scale /= 10;
            i += 1;
            if i - start > 6 {
                return None;
            }
        }
        if i == start {
            return None;
        }
    }
    if line.get(i) != Some(&b']') || secs > 100_000_000_000 {
        return None;
    }
    Some((Timestamp(secs * 1_000_000 + micros), line.get(i + 1..)?))
}

/// Any of the leading timestamp forms logs use: `[epoch]`, ISO 8601, BIND's, syslog's.
pub fn any_ts<'a>(line: &'a [u8], time: &mut TimeResolver) -> Option<(Timestamp, &'a [u8])> {
    match line.first()? {
        b'[' => {
            if let Some(fast) = bracket_epoch(line) {
                return Some(fast);
            }
            let end = memchr::memchr(b']', line)?;
            let ts = epoch_ts(line.get(1..end)?)?;
            Some((ts, line.get(end + 1..)?))
        }
        c if c.is_ascii_digit() => match line.get(2) {
            Some(b'-') => bind_ts(line, time),
            _ => iso_ts(line, time),
        },
        _ => syslog_ts(line, time),
    }
}

/// After the timestamp: skips an optional hostname and returns (`program[pid]` token without the
/// colon, the message after `: `). The program token may be glued to the timestamp (Pi-hole's
/// test fixture writes `17:04:19dnsmasq[123]:`).
pub fn program<'a>(rest: &'a [u8], name_hint: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let rest = trim_start(rest);
    // Search the first two tokens for `prog[pid]:` or `prog:`.
    let mut cur = rest;
    for _ in 0..2 {
        let (tok, after) = next_token(cur)?;
        if let Some(p) = tok.strip_suffix(b":") {
            return Some((p, after));
        }
        if find(tok, name_hint).is_some() {
            // Unbound's own log file: `unbound[pid:tid] info: …` (no colon after the program).
            return Some((tok, after));
        }
        cur = after;
    }
    None
}

/// Value of `key="value"` in a structured (logfmt-like) line; the key must start a field.
pub fn kv<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    loop {
        let hay = line.get(from..)?;
        let i = find(hay, key)? + from;
        let at_field_start = i == 0 || matches!(line.get(i - 1), Some(b' ' | b'\t'));
        let after = i + key.len();
        if at_field_start && line.get(after) == Some(&b'=') {
            let v = line.get(after + 1..)?;
            if let Some(inner) = v.strip_prefix(b"\"") {
                let end = memchr::memchr(b'"', inner)?;
                return inner.get(..end);
            }
            let end = memchr::memchr2(b' ', b'\t', v).unwrap_or(v.len());
            return v.get(..end);
        }
        from = after;
    }
}

/// A non-negative decimal (`0.000455`) times 10^`scale` (so `scale` 6 turns seconds into µs),
/// rounded down; at most 12 integer digits.
pub fn parse_scaled(b: &[u8], scale: u32) -> Option<u64> {
    let (int, frac) = match memchr::memchr(b'.', b) {
        Some(i) => (b.get(..i)?, b.get(i + 1..)?),
        None => (b, &b""[..]),
    };
    if int.len() > 12 || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let mut v = if int.is_empty() { 0 } else { parse_u64(int)? };
    let mut used = 0;
    for c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        if used < scale {
            v = v * 10 + u64::from(c - b'0');
            used += 1;
        }
    }
    while used < scale {
        v *= 10;
        used += 1;
    }
    Some(v)
}

/// An RR type mnemonic; the common ones without the table walk.
pub fn rrtype(b: &[u8]) -> Option<crate::model::RrType> {
    use crate::model::RrType;
    Some(match b {
        b"A" => RrType::A,
        b"AAAA" => RrType::AAAA,
        b"HTTPS" => RrType::HTTPS,
        b"PTR" => RrType::PTR,
        b"TXT" => RrType::TXT,
        b"MX" => RrType::MX,
        b"CNAME" => RrType::CNAME,
        b"SRV" => RrType::SRV,
        b"NS" => RrType::NS,
        b"SOA" => RrType::SOA,
        _ => return RrType::parse(as_str(b)?),
    })
}

/// Lower-case, strip one trailing dot (`model::normalize_name` on bytes). Names that are not
/// UTF-8 are rejected (resolvers escape non-printable bytes, so real logs never hit this).
pub fn name(b: &[u8]) -> Option<String> {
    let s = as_str(b)?;
    if s.is_empty() || s.len() > 1024 {
        return None;
    }
    Some(crate::model::normalize_name(s))
}

/// [`name`] into a reused buffer: true and `out` holds the name, or false (`out` untouched)
/// where [`name`] gives `None`.
pub fn name_into(b: &[u8], out: &mut String) -> bool {
    let Some(s) = as_str(b) else {
        return false;
    };
    if s.is_empty() || s.len() > 1024 {
        return false;
    }
    out.clear();
    match s.strip_suffix('.').unwrap_or(s) {
        "" => out.push('.'),
        t => {
            out.push_str(t);
            out.make_ascii_lowercase();
        }
    }
    true
}

#[cfg(test)]
#[path = "lex_tests.rs"]
mod tests;
