//! Windows DNS Server debug log (`dns.log` with "Log packets for debugging"), both the
//! length-prefixed name form and the dotted one.
//!
//! ```text
//! 5/21/2015 1:51:18 PM 0D48 PACKET  000000000181D1C0 UDP Rcv 10.250.2.246    0c6b   Q [0001   D   NOERROR] A      (10)sitecheck2(5)opera(3)com(0)
//! 5/21/2015 1:51:18 PM 0D48 PACKET  000000000181D1C0 UDP Snd 10.250.2.246    0c6b R Q [8081   DR  NOERROR] A      (10)sitecheck2(5)opera(3)com(0)
//! 4/15/2014 3:16:00 PM 0710 PACKET  0000000028FB94C0 UDP  Rcv 69.160.33.71    8857 R Q [0080       NOERROR] A      .ns1.offeringsmislead.com.
//! ```
//! A received query (`Rcv`, no `R`) is a client query; the response the server sends back to that
//! client (`Snd … R`, same address and id) completes it with its rcode. The server's own
//! forwarding (`Snd` queries, `Rcv` responses) is not client activity and is skipped. The date
//! is the server's short date format, read as `M/D/YYYY` (or ISO `YYYY-MM-DD`), in the configured
//! zone (the log is in the server's local time). No answer data.

use super::pending::{key_of, Pending};
use super::{lex, Ctx, LineParser, PENDING_TIMEOUT_SECS};
use crate::model::{DnsObservation, Observation, Rcode, Timestamp, Transport};

pub struct Windows {
    pending: Pending<DnsObservation>,
}

impl Windows {
    pub fn new(cap: usize) -> Self {
        Windows {
            pending: Pending::new(cap),
        }
    }
}

pub fn looks_like(line: &[u8]) -> bool {
    line.starts_with(b"DNS Server log") || lex::find(line, b" PACKET ").is_some()
}

/// `(3)www(7)example(3)com(0)` or `.www.example.com.` → `www.example.com`.
fn decode_name(b: &[u8]) -> Option<String> {
    if b.first() != Some(&b'(') {
        let t = b.strip_prefix(b".").unwrap_or(b);
        return lex::name(t);
    }
    let mut out = String::new();
    let mut rest = b;
    loop {
        let r = rest.strip_prefix(b"(")?;
        let close = memchr::memchr(b')', r)?;
        let n = lex::parse_u64(r.get(..close)?)? as usize;
        if n == 0 {
            break;
        }
        let label = r.get(close + 1..close + 1 + n)?;
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(lex::as_str(label)?);
        rest = r.get(close + 1 + n..)?;
        if out.len() > 1024 {
            return None;
        }
    }
    Some(crate::model::normalize_name(&out))
}

/// `M/D/YYYY H:MM:SS [AM|PM]` or `YYYY-MM-DD HH:MM:SS`; returns the timestamp and the rest.
fn parse_ts<'a>(line: &'a [u8], ctx: &mut Ctx) -> Option<(Timestamp, &'a [u8])> {
    let (date, rest) = lex::next_token(line)?;
    let (time, mut rest) = lex::next_token(rest)?;
    let (y, m, d) = if date.contains(&b'/') {
        let mut p = date.split(|c| *c == b'/');
        let m = lex::parse_u64(p.next()?)? as u32;
        let d = lex::parse_u64(p.next()?)? as u32;
        let y = lex::parse_u64(p.next()?)? as i32;
        (y, m, d)
    } else {
        let mut p = date.split(|c| *c == b'-');
        let y = lex::parse_u64(p.next()?)? as i32;
        let m = lex::parse_u64(p.next()?)? as u32;
        let d = lex::parse_u64(p.next()?)? as u32;
        (y, m, d)
    };
    let mut parts = time.split(|c| *c == b':');
    let mut h = lex::parse_u64(parts.next()?)? as u32;
    let mi = lex::parse_u64(parts.next()?)? as u32;
    let s = lex::parse_u64(parts.next()?)? as u32;
    if let Some((ampm, r)) = lex::next_token(rest) {
        match ampm {
            b"AM" | b"am" => {
                if h == 12 {
                    h = 0;
                }
                rest = r;
            }
            b"PM" | b"pm" => {
                if h < 12 {
                    h += 12;
                }
                rest = r;
            }
            _ => {}
        }
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let ts = ctx.time.resolve(y, m, d, h * 3600 + mi * 60 + s, 0)?;
    Some((ts, rest))
}

impl LineParser for Windows {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        let Some(p) = lex::find(line, b" PACKET ") else {
            return ctx.stats.ignored();
        };
        let Some((ts, _)) = parse_ts(line, ctx) else {
            return ctx.stats.error("bad_timestamp", line);
        };
        let cutoff = ts.plus_secs(-PENDING_TIMEOUT_SECS);
        while self.pending.oldest().is_some_and(|o| o.ts < cutoff) {
            if let Some(o) = self.pending.pop_oldest() {
                out.push(Observation::Dns(o));
            }
        }
        let rest = line.get(p + 8..).unwrap_or(&[]);
        let (Some(open), Some(close)) = (memchr::memchr(b'[', rest), memchr::memchr(b']', rest))
        else {
            return ctx.stats.error("truncated", line);
        };
        if close < open {
            return ctx.stats.error("truncated", line);
        }
        let head: Vec<&[u8]> = lex::tokens(rest.get(..open).unwrap_or(&[])).collect();
        // pktid proto dir remote xid [R] opcode
        let (Some(proto), Some(dir), Some(remote), Some(xid)) =
            (head.get(1), head.get(2), head.get(3), head.get(4))
        else {
            return ctx.stats.error("truncated", line);
        };
        let is_response = head.get(5) == Some(&&b"R"[..]);
        let flags: Vec<&[u8]> = lex::tokens(rest.get(open + 1..close).unwrap_or(&[])).collect();
        let rcode = flags
            .last()
            .and_then(|r| lex::as_str(r))
            .and_then(Rcode::parse);
        let mut tail = lex::tokens(rest.get(close + 1..).unwrap_or(&[]));
        let (Some(qtype), Some(name)) = (tail.next(), tail.next()) else {
            return ctx.stats.error("truncated", line);
        };
        let Some(client) = lex::parse_ip(remote) else {
            return ctx.stats.error("bad_client", line);
        };
        let Some(id) = lex::parse_hex_u16(xid) else {
            return ctx.stats.error("bad_id", line);
        };
        let Some(qtype) = lex::rrtype(qtype) else {
            return ctx.stats.error("bad_qtype", line);
        };
        let Some(qname) = decode_name(name) else {
            return ctx.stats.error("bad_name", line);
        };
        let key = key_of(&[remote], u64::from(id));
        match (*dir, is_response) {
            (b"Rcv", false) => {
                let mut obs = ctx.dns(ts, client, qname, qtype);
                obs.id = Some(id);
                obs.transport = match *proto {
                    b"TCP" => Transport::Tcp,
                    _ => Transport::Udp,
                };
                if let Some(old) = self.pending.insert(key, obs) {
                    out.push(Observation::Dns(old));
                }
            }
            (b"Snd", true) => {
                let found = self.pending.take(key, |o| {
                    o.client == client && o.id == Some(id) && o.qname == qname
                });
                let mut obs = match found {
                    Some(o) => o,
                    None => {
                        let mut o = ctx.dns(ts, client, qname, qtype);
                        o.id = Some(id);
                        o.query_seen = false;
                        o.transport = match *proto {
                            b"TCP" => Transport::Tcp,
                            _ => Transport::Udp,
                        };
                        o
                    }
                };
                obs.rcode = rcode;
                obs.rtt_us = u64::try_from(ts.0.saturating_sub(obs.ts.0)).ok();
                out.push(Observation::Dns(obs));
            }
            // The server's own upstream traffic.
            _ => ctx.stats.ignored(),
        }
    }

    fn flush(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>) {
        while let Some(o) = self.pending.pop_oldest() {
            out.push(Observation::Dns(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode_name;

    #[test]
    fn names() {
        assert_eq!(
            decode_name(b"(10)sitecheck2(5)opera(3)com(0)").as_deref(),
            Some("sitecheck2.opera.com")
        );
        assert_eq!(
            decode_name(b".ns1.Offerings.com.").as_deref(),
            Some("ns1.offerings.com")
        );
        assert_eq!(decode_name(b"(99)ab(0)"), None);
        assert_eq!(decode_name(b"(0)").as_deref(), Some("."));
    }
}
