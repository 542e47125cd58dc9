//! PowerDNS Recursor query logging (`quiet=no`): structured (4.6+, `key="value"`) and classic.
//!
//! ```text
//! Nov 26 20:29:06 msg="Question" subsystem="syncres" … ts="1795724946.178" ecs="" mtid="60" proto="udp" qname="api.cloud-sync-check.net" qtype="A" remote="127.0.10.16:50876"
//! Nov 26 20:29:06 msg="Answer" … mtid="60" … qname="api.cloud-sync-check.net" qtype="A" rcode="0" … remote="127.0.10.16:50876" … totms="1.2"
//! Nov 26 20:29:01 msg="Question answered from packet cache" … proto="udp" qname="www.google.com" qtype="A" remote="127.0.10.20:36985" …
//! Nov 26 20:29:00 3 [1/1] question for 'www.google.com|A' from 127.0.0.1:56425
//! ```
//! `Question` and `Answer` are joined by `mtid` (one observation with the rcode and `totms` as
//! RTT); a packet-cache hit is a line of its own. The log has answer counts, never answer data.

use super::pending::{key_of, Pending};
use super::unbound::name_eq;
use super::{lex, Ctx, LineParser, PENDING_TIMEOUT_SECS};
use crate::model::{DnsObservation, Observation, Rcode, RrType, Timestamp, Transport};

pub struct Pdns {
    pending: Pending<DnsObservation>,
}

impl Pdns {
    pub fn new(cap: usize) -> Self {
        Pdns {
            pending: Pending::new(cap),
        }
    }

    fn expire(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        let cutoff = now.plus_secs(-PENDING_TIMEOUT_SECS);
        self.pending
            .drain_expired(|o| o.ts < cutoff, |o| out.push(Observation::Dns(o)));
    }
}

fn mtid_key(mtid: &[u8], remote: &[u8]) -> u64 {
    key_of(&[remote], lex::parse_u64(mtid).unwrap_or(0))
}

impl LineParser for Pdns {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        let env = lex::any_ts(line, &mut ctx.time);
        if let Some(msg) = lex::kv(line, b"msg") {
            let ts = lex::kv(line, b"ts")
                .and_then(lex::epoch_ts)
                .or(env.map(|(t, _)| t));
            let Some(ts) = ts else {
                return ctx.stats.error("bad_timestamp", line);
            };
            self.expire(ts, out);
            let cached = msg.ends_with(b"answered from packet cache");
            if msg != b"Question" && msg != b"Answer" && !cached {
                return ctx.stats.ignored();
            }
            let (Some(qname), Some(qtype), Some(remote)) = (
                lex::kv(line, b"qname"),
                lex::kv(line, b"qtype"),
                lex::kv(line, b"remote"),
            ) else {
                return ctx.stats.error("missing_field", line);
            };
            let Some((client, port)) = lex::parse_endpoint(remote) else {
                return ctx.stats.error("bad_client", line);
            };
            let Some(qtype) = lex::rrtype(qtype) else {
                return ctx.stats.error("bad_qtype", line);
            };
            let transport = match lex::kv(line, b"proto") {
                Some(b"udp") => Transport::Udp,
                Some(b"tcp") => Transport::Tcp,
                Some(b"dot" | b"doh") => Transport::Encrypted,
                _ if msg.starts_with(b"TCP") => Transport::Tcp,
                _ => Transport::Unknown,
            };
            let mtid = lex::kv(line, b"mtid").unwrap_or(&[]);
            if msg == b"Answer" {
                let rcode = lex::kv(line, b"rcode")
                    .and_then(lex::as_str)
                    .and_then(Rcode::parse);
                let rtt_us = lex::kv(line, b"totms").and_then(|ms| lex::parse_scaled(ms, 3));
                let key = mtid_key(mtid, remote);
                let found = self.pending.take(key, |o| {
                    o.client == client && o.qtype == qtype && name_eq(&o.qname, qname)
                });
                let mut obs = match found {
                    Some(o) => o,
                    None => {
                        let Some(name) = lex::name(qname) else {
                            return ctx.stats.error("bad_name", line);
                        };
                        let mut o = ctx.dns(ts, client, name, qtype);
                        o.client_port = port;
                        o.transport = transport;
                        o.query_seen = false;
                        o
                    }
                };
                obs.rcode = rcode;
                obs.rtt_us = rtt_us;
                out.push(Observation::Dns(obs));
                return;
            }
            let Some(name) = lex::name(qname) else {
                return ctx.stats.error("bad_name", line);
            };
            let mut obs = ctx.dns(ts, client, name, qtype);
            obs.client_port = port;
            obs.transport = transport;
            if cached {
                out.push(Observation::Dns(obs));
            } else if let Some(old) = self.pending.insert(mtid_key(mtid, remote), obs) {
                out.push(Observation::Dns(old));
            }
            return;
        }
        // Classic: "question for 'NAME|TYPE' from ADDR".
        if let Some(i) = lex::find(line, b"question for '") {
            let Some((ts, _)) = env else {
                return ctx.stats.error("bad_timestamp", line);
            };
            let rest = line.get(i + 14..).unwrap_or(&[]);
            let Some(q) = memchr::memchr(b'\'', rest) else {
                return ctx.stats.error("truncated", line);
            };
            let spec = rest.get(..q).unwrap_or(&[]);
            let Some(bar) = memchr::memrchr(b'|', spec) else {
                return ctx.stats.error("bad_query_spec", line);
            };
            let after = rest.get(q + 1..).unwrap_or(&[]);
            let from = lex::find(after, b"from ").and_then(|f| after.get(f + 5..));
            let Some((client, port)) = from
                .and_then(|f| lex::next_token(f))
                .and_then(|(t, _)| lex::parse_endpoint(t))
            else {
                return ctx.stats.error("bad_client", line);
            };
            let (Some(name), Some(qtype)) = (
                spec.get(..bar).and_then(lex::name),
                spec.get(bar + 1..)
                    .and_then(lex::as_str)
                    .and_then(RrType::parse),
            ) else {
                return ctx.stats.error("bad_query_spec", line);
            };
            let mut obs = ctx.dns(ts, client, name, qtype);
            obs.client_port = port;
            out.push(Observation::Dns(obs));
            return;
        }
        if env.is_some() {
            ctx.stats.ignored();
        } else {
            ctx.stats.error("unrecognized", line);
        }
    }

    fn flush(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>) {
        while let Some(o) = self.pending.pop_oldest() {
            out.push(Observation::Dns(o));
        }
    }
}
