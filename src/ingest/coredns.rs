//! CoreDNS `log` plugin (common log format), plain or wrapped in container-runtime JSON
//! (`{"log": "…", "time": …}` from Docker, `{"message": "…"}` from Kubernetes shippers).
//!
//! ```text
//! 2019-03-06T08:55:28.903Z [INFO] 172.17.0.4:36413 - 21583 "A IN httpbin.org.cluster.local. udp 43 false 512" NXDOMAIN qr,rd,ra 136 0.000102078s
//! [INFO] [::1]:50759 - 29008 "A IN example.org. udp 41 false 4096" NOERROR qr,rd,ra,ad 68 0.037990251s
//! ```
//! One line per answered query: client address and port, DNS id, type, name, transport, rcode and
//! duration. No answer data.

use super::{lex, Ctx, LineParser};
use crate::model::{Observation, Rcode, Timestamp, Transport};

pub struct CoreDns;

/// Whether a line (plain or JSON-wrapped) looks like a CoreDNS query log line.
pub fn looks_like(line: &[u8]) -> bool {
    (lex::find(line, b"[INFO] ").is_some() || lex::find(line, b"[INFO]").is_some())
        && lex::find(line, b" - ").is_some()
        && (lex::find(line, b" IN ").is_some())
}

impl LineParser for CoreDns {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        if line.first() == Some(&b'{') {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                return ctx.stats.error("bad_json", line);
            };
            let inner = v
                .get("log")
                .or_else(|| v.get("message"))
                .or_else(|| v.get("msg"))
                .and_then(|m| m.as_str());
            let Some(inner) = inner else {
                return ctx.stats.error("missing_field", line);
            };
            let outer_ts = v
                .get("time")
                .or_else(|| v.get("@timestamp"))
                .and_then(|t| t.as_str())
                .and_then(Timestamp::parse);
            return self.plain(inner.trim_end().as_bytes(), outer_ts, ctx, out);
        }
        self.plain(line, None, ctx, out);
    }
}

impl CoreDns {
    fn plain(
        &self,
        line: &[u8],
        outer_ts: Option<Timestamp>,
        ctx: &mut Ctx,
        out: &mut Vec<Observation>,
    ) {
        let (ts, rest) = match lex::any_ts(line, &mut ctx.time) {
            Some((t, r)) if line.first() != Some(&b'[') => (Some(t), r),
            _ => (None, line),
        };
        let Some(ts) = ts
            .or(outer_ts)
            .or_else(|| Some(ctx.time.reference_or_now()))
        else {
            return ctx.stats.error("bad_timestamp", line);
        };
        let Some(q1) = memchr::memchr(b'"', rest) else {
            return ctx.stats.ignored();
        };
        let Some(q2) = rest
            .get(q1 + 1..)
            .and_then(|r| memchr::memchr(b'"', r))
            .map(|i| i + q1 + 1)
        else {
            return ctx.stats.error("truncated", line);
        };
        let head = rest.get(..q1).unwrap_or(&[]);
        let quoted = rest.get(q1 + 1..q2).unwrap_or(&[]);
        let tail = rest.get(q2 + 1..).unwrap_or(&[]);
        // head: [LEVEL] remote - id
        let mut h: Vec<&[u8]> = lex::tokens(head).collect();
        if h.first()
            .is_some_and(|t| t.starts_with(b"[") && t.ends_with(b"]") && t.len() < 12)
        {
            h.remove(0);
        }
        let (Some(remote), Some(id)) = (h.first(), h.get(2)) else {
            return ctx.stats.error("truncated", line);
        };
        let Some((client, port)) = lex::parse_endpoint(remote) else {
            return ctx.stats.error("bad_client", line);
        };
        let mut q = lex::tokens(quoted);
        let (Some(qtype), Some(_class), Some(name), proto) =
            (q.next(), q.next(), q.next(), q.next())
        else {
            return ctx.stats.error("truncated", line);
        };
        let Some(qtype) = lex::rrtype(qtype) else {
            return ctx.stats.error("bad_qtype", line);
        };
        let Some(qname) = lex::name(name) else {
            return ctx.stats.error("bad_name", line);
        };
        let mut obs = ctx.dns(ts, client, qname, qtype);
        obs.client_port = port;
        obs.id = lex::parse_u64(id).and_then(|i| u16::try_from(i).ok());
        obs.transport = match proto {
            Some(b"udp") => Transport::Udp,
            Some(b"tcp") => Transport::Tcp,
            _ => Transport::Unknown,
        };
        let mut t = lex::tokens(tail);
        obs.rcode = t.next().and_then(lex::as_str).and_then(Rcode::parse);
        let flags = t.next().unwrap_or(&[]);
        obs.truncated = flags.split(|c| *c == b',').any(|f| f == b"tc");
        let _size = t.next();
        obs.rtt_us = t
            .next()
            .and_then(|d| d.strip_suffix(b"s"))
            .and_then(|s| lex::parse_scaled(s, 6));
        out.push(Observation::Dns(obs));
    }
}
