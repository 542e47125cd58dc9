//! BIND 9 querylog (`queries` category) and `query-errors` lines, with or without
//! print-time/print-category/print-severity, syslog envelopes, the `client @0x…` form, views.
//!
//! ```text
//! 26-Nov-2026 20:27:18.781 queries: info: client @0x7f3b… 127.0.10.17#59593 (xmr-eu1.nanopool.org): query: xmr-eu1.nanopool.org IN A +T (127.53.1.2)
//! 26-Nov-2026 20:08:55.673 query-errors: info: client @0x7f13… 127.0.0.1#32948 (refused.test): query failed (failure) for refused.test/IN/A at query.c:7916
//! ```
//! Query lines carry no answers (`answers_known: false`). A query-errors line becomes a second,
//! reply-only record of that query (`query_seen: false`) carrying the failure as an rcode.

use super::{lex, Ctx, LineParser};
use crate::model::{Observation, Rcode, Transport};

#[derive(Default)]
pub struct Bind;

impl LineParser for Bind {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        let Some(ci) = lex::find(line, b"client ") else {
            // Other BIND categories in the same channel, or junk.
            if lex::any_ts(line, &mut ctx.time).is_some() {
                ctx.stats.ignored();
            } else {
                ctx.stats.error("unrecognized", line);
            }
            return;
        };
        // The time is read before the pre-filter may drop the line: year inference of
        // year-less (syslog) times depends on the line before, dropped or not.
        let ts = if ci == 0 {
            // No print-time: nothing better than the reference time.
            ctx.time.reference_or_now()
        } else {
            match lex::any_ts(line, &mut ctx.time) {
                Some((ts, _)) => ts,
                None => return ctx.stats.error("bad_timestamp", line),
            }
        };
        let Some(rest) = line.get(ci + 7..) else {
            return ctx.stats.error("truncated", line);
        };
        let Some((mut tok, mut rest)) = lex::next_token(rest) else {
            return ctx.stats.error("truncated", line);
        };
        if tok.starts_with(b"@0x") {
            match lex::next_token(rest) {
                Some(x) => (tok, rest) = x,
                None => return ctx.stats.error("truncated", line),
            }
        }
        // With the pre-filter: the name after `query: ` is looked up where the parser below
        // takes it (after the client and `@0x…` tokens), before the address is parsed.
        let query = lex::find(rest, b"query: ");
        if let Some(q) = query {
            let name = rest
                .get(q + 7..)
                .and_then(lex::next_token)
                .map_or(&b""[..], |(t, _)| t);
            if ctx.unlisted(name) {
                return;
            }
        }
        let Some((client, port)) = lex::parse_ip_port(tok, b'#') else {
            return ctx.stats.error("bad_client", line);
        };
        // Skip "(name):" and an optional "view NAME:" / "signer …" part up to the keyword.
        if let Some(q) = query {
            let Some(q) = rest.get(q + 7..) else {
                return ctx.stats.error("truncated", line);
            };
            let mut it = lex::tokens(q);
            let (Some(name), Some(_class), Some(qtype)) = (it.next(), it.next(), it.next()) else {
                return ctx.stats.error("truncated", line);
            };
            let Some(qname) = lex::name(name) else {
                return ctx.stats.error("bad_name", line);
            };
            let Some(qtype) = lex::rrtype(qtype) else {
                return ctx.stats.error("bad_qtype", line);
            };
            let mut obs = ctx.dns(ts, client, qname, qtype);
            obs.client_port = Some(port);
            obs.transport = Transport::Udp;
            for t in it {
                if let [b'(', inner @ .., b')'] = t {
                    obs.server = lex::parse_ip(inner);
                } else if matches!(t.first(), Some(b'+' | b'-')) && t.contains(&b'T') {
                    obs.transport = Transport::Tcp;
                }
            }
            out.push(Observation::Dns(obs));
        } else if let Some(q) = lex::find(rest, b"query failed (") {
            let Some(q) = rest.get(q + 14..) else {
                return ctx.stats.error("truncated", line);
            };
            let Some(close) = memchr::memchr(b')', q) else {
                return ctx.stats.error("truncated", line);
            };
            let reason = q.get(..close).unwrap_or(&[]);
            let after = q.get(close + 1..).unwrap_or(&[]);
            let Some(f) = lex::find(after, b" for ") else {
                return ctx.stats.error("truncated", line);
            };
            let spec = lex::next_token(after.get(f + 5..).unwrap_or(&[])).map(|(t, _)| t);
            let Some(spec) = spec else {
                return ctx.stats.error("truncated", line);
            };
            // name/CLASS/TYPE (the name may itself contain '/', so split from the right).
            let mut parts = spec.rsplitn(3, |c| *c == b'/');
            let (Some(qtype), Some(_class), Some(name)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return ctx.stats.error("bad_query_spec", line);
            };
            let (Some(qname), Some(qtype)) = (lex::name(name), lex::rrtype(qtype)) else {
                return ctx.stats.error("bad_query_spec", line);
            };
            let rcode = lex::as_str(reason)
                .and_then(Rcode::parse)
                .unwrap_or(Rcode::SERVFAIL);
            let mut obs = ctx.dns(ts, client, qname, qtype);
            obs.client_port = Some(port);
            obs.rcode = Some(rcode);
            obs.query_seen = false;
            out.push(Observation::Dns(obs));
        } else {
            // Other client messages (updates, transfers, denials) carry no query record.
            ctx.stats.ignored();
        }
    }
}
