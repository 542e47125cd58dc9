//! Unbound `log-queries`, `log-replies` and `log-local-actions`, with epoch (`[1795724797]`) or
//! ASCII (`log-time-ascii`) time, with or without `log-tag-queryreply`, and syslog envelopes.
//!
//! ```text
//! [1795724797] unbound[6769:0] info: 127.0.10.23 pool.minexmr.com. A IN
//! [1795724801] unbound[6769:0] info: 127.0.10.16 api.cloud-sync-check.net. A IN NOERROR 0.000455 0 147
//! Nov 26 20:08:31 unbound[22737:0] info: litecoinpool.org. static 127.0.0.1@59650 us2.litecoinpool.org. A IN
//! ```
//! A reply line completes its query (joined by client + name + type): one observation with the
//! query's time, the rcode and the round-trip time. A local-action line adds the client port.
//! Unanswered queries are emitted after [`super::PENDING_TIMEOUT_SECS`] of log time, when the
//! pending table is full, or at flush. No answer data exists in this log.

use std::net::IpAddr;

use super::pending::{key_of, Pending};
use super::{lex, Ctx, LineParser, PENDING_TIMEOUT_SECS};
use crate::model::{DnsObservation, Observation, Rcode, RrType, Timestamp};

pub struct Unbound {
    pending: Pending<DnsObservation>,
}

impl Unbound {
    pub fn new(cap: usize) -> Self {
        Unbound {
            pending: Pending::new(cap),
        }
    }

    fn expire(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        let cutoff = now.plus_secs(-PENDING_TIMEOUT_SECS);
        self.pending
            .drain_expired(|o| o.ts < cutoff, |o| out.push(Observation::Dns(o)));
    }
}

/// Whether a normalised name equals a raw log name (any case, optional trailing dot).
pub(crate) fn name_eq(norm: &str, raw: &[u8]) -> bool {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    if raw.is_empty() {
        return norm == ".";
    }
    norm.as_bytes().eq_ignore_ascii_case(raw)
}

fn ip_key(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

pub(crate) fn join_key(ip: &IpAddr, name: &[u8], qtype: RrType) -> u64 {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let k = ip_key(ip);
    key_of(
        &[name],
        (k as u64) ^ ((k >> 64) as u64).rotate_left(17) ^ u64::from(qtype.0) << 48,
    )
}

impl LineParser for Unbound {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        let Some((ts, rest)) = lex::any_ts(line, &mut ctx.time) else {
            return ctx.stats.error("bad_timestamp", line);
        };
        // Unbound's own file (`unbound[pid:tid] info: …`) and syslog's `unbound: …` start with
        // the program token: `lex::program` would return what follows it, whichever of its two
        // rules matched (a token ending in `:` or naming the program), so skip the search.
        let own = lex::trim_start(rest)
            .starts_with(b"unbound")
            .then(|| lex::next_token(rest))
            .flatten();
        let msg = match own {
            Some((_, m)) => Some(m),
            None => lex::program(rest, b"unbound").map(|(_, m)| m),
        };
        let Some(mut msg) = msg else {
            return ctx.stats.error("unrecognized", line);
        };
        // Syslog form `unbound: [pid:tid] info: …`.
        if msg.first() == Some(&b'[') {
            match lex::next_token(msg) {
                Some((_, m)) => msg = m,
                None => return ctx.stats.error("truncated", line),
            }
        }
        self.expire(ts, out);
        let Some((kind, msg)) = lex::next_token(msg) else {
            return ctx.stats.error("truncated", line);
        };
        if !matches!(kind, b"info:" | b"query:" | b"reply:") {
            return ctx.stats.ignored();
        }
        let mut f: [&[u8]; 9] = [&[]; 9];
        let mut n = 0;
        for t in lex::tokens(msg) {
            if n == f.len() {
                n += 1;
                break;
            }
            if let Some(slot) = f.get_mut(n) {
                *slot = t;
            }
            n += 1;
        }
        let [t0, t1, t2, t3, t4, t5, _t6, _t7, _] = f;
        // Query and reply lines name the query second, local-action lines fourth (after the
        // zone): with the pre-filter, a line naming no listed pool stops here (expiry above
        // has run, as for every line).
        let name = if n == 6 { t3 } else { t1 };
        if ctx.unlisted(name) {
            return;
        }
        match n {
            4 | 8 => {
                let Some(client) = lex::parse_ip(t0) else {
                    // `info:` daemon messages of the same length.
                    return ctx.stats.ignored();
                };
                let Some(qtype) = lex::rrtype(t2) else {
                    return ctx.stats.error("bad_qtype", line);
                };
                if n == 4 {
                    let Some(qname) = lex::name(t1) else {
                        return ctx.stats.error("bad_name", line);
                    };
                    let obs = ctx.dns(ts, client, qname, qtype);
                    let key = join_key(&client, t1, qtype);
                    if let Some(old) = self.pending.insert(key, obs) {
                        out.push(Observation::Dns(old));
                    }
                    return;
                }
                let Some(rcode) = lex::as_str(t4).and_then(Rcode::parse) else {
                    return ctx.stats.error("bad_rcode", line);
                };
                let rtt_us = lex::parse_scaled(t5, 6);
                let key = join_key(&client, t1, qtype);
                let found = self.pending.take(key, |o| {
                    o.client == client && o.qtype == qtype && name_eq(&o.qname, t1)
                });
                let mut obs = match found {
                    Some(o) => o,
                    None => {
                        let Some(qname) = lex::name(t1) else {
                            return ctx.stats.error("bad_name", line);
                        };
                        // Reply without its query line (query logging off, or rotated away).
                        let qts = Timestamp(ts.0.saturating_sub(rtt_us.unwrap_or(0) as i64));
                        let mut o = ctx.dns(qts, client, qname, qtype);
                        o.query_seen = false;
                        o
                    }
                };
                obs.rcode = Some(rcode);
                obs.rtt_us = rtt_us;
                out.push(Observation::Dns(obs));
            }
            6 => {
                let (Some((client, port)), Some(qtype)) =
                    (lex::parse_ip_port(t2, b'@'), lex::rrtype(t4))
                else {
                    return ctx.stats.ignored();
                };
                let action = t1;
                let key = join_key(&client, t3, qtype);
                if let Some(o) = self.pending.newest_mut(key) {
                    if o.client == client && o.qtype == qtype && name_eq(&o.qname, t3) {
                        o.client_port = Some(port);
                        if o.rcode.is_none() {
                            o.rcode = match action {
                                b"always_nxdomain" => Some(Rcode::NXDOMAIN),
                                b"always_refuse" | b"refuse" => Some(Rcode::REFUSED),
                                _ => None,
                            };
                        }
                    }
                }
                ctx.stats.ignored();
            }
            _ => ctx.stats.ignored(),
        }
    }

    fn flush(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>) {
        while let Some(o) = self.pending.pop_oldest() {
            out.push(Observation::Dns(o));
        }
    }
}
