//! Suricata EVE JSON: `dns` events (v1: one event per answer record; v2: `answers[]`/`grouped`;
//! v3 (Suricata 8): `request`/`response`, `queries[]`, responder as `src_ip`), and `flow` /
//! `netflow` events.
//!
//! A request and its response (same `flow_id` and DNS id) become one observation. The client is
//! the side not on port 53 (falling back to the version's convention: v3 responses come from the
//! responder). Flow events map to final flow records; netflow events are one direction each.

use std::net::IpAddr;

use serde_json::Value;

use super::pending::Pending;
use super::{lex, Ctx, LineParser, PENDING_TIMEOUT_SECS};
use crate::model::{
    AppInfo, Direction, DnsAnswer, DnsObservation, FlowObservation, FlowReport, FlowState,
    Observation, Proto, Rcode, RrType, Timestamp, Transport,
};

pub struct Eve {
    pending: Pending<DnsObservation>,
    /// A v1 response being assembled from its one-record-per-event lines.
    v1: Option<(u64, DnsObservation)>,
}

impl Eve {
    pub fn new(cap: usize) -> Self {
        Eve {
            pending: Pending::new(cap),
            v1: None,
        }
    }

    fn finish_v1(&mut self, out: &mut Vec<Observation>) {
        if let Some((_, o)) = self.v1.take() {
            out.push(Observation::Dns(o));
        }
    }
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k)?.as_str()
}
fn n(v: &Value, k: &str) -> Option<u64> {
    v.get(k)?.as_u64()
}
fn ip(v: &Value, k: &str) -> Option<IpAddr> {
    s(v, k)?.parse().ok()
}
fn port(v: &Value, k: &str) -> Option<u16> {
    u16::try_from(n(v, k)?).ok()
}

fn ts_of(v: &Value, k: &str, ctx: &mut Ctx) -> Option<Timestamp> {
    let t = s(v, k)?;
    lex::iso_ts(t.as_bytes(), &mut ctx.time).map(|(t, _)| t)
}

fn join_key(flow_id: u64, id: u64) -> u64 {
    flow_id.rotate_left(16) ^ id
}

fn rtype(v: &Value, k: &str) -> Option<RrType> {
    RrType::parse(s(v, k)?)
}

fn answer_of(a: &Value) -> Option<DnsAnswer> {
    let rt = rtype(a, "rrtype")?;
    let name = crate::model::normalize_name(s(a, "rrname").unwrap_or("."));
    let data = s(a, "rdata")?;
    let data = match rt {
        RrType::A | RrType::AAAA => match data.parse::<IpAddr>() {
            Ok(ip) => ip.to_string(),
            Err(_) => data.to_string(),
        },
        RrType::CNAME | RrType::DNAME | RrType::NS | RrType::PTR => {
            crate::model::normalize_name(data)
        }
        _ => data.to_string(),
    };
    Some(DnsAnswer {
        name,
        rtype: rt,
        ttl: n(a, "ttl").and_then(|t| u32::try_from(t).ok()),
        data,
    })
}

/// `grouped` answers: no owners or TTLs; CNAME owners are rebuilt along the chain.
fn grouped(g: &Value, qname: &str, out: &mut Vec<DnsAnswer>) {
    let Some(obj) = g.as_object() else {
        return;
    };
    let mut owner = qname.to_string();
    if let Some(cn) = obj.get("CNAME").and_then(Value::as_array) {
        for t in cn.iter().filter_map(Value::as_str) {
            let target = crate::model::normalize_name(t);
            out.push(DnsAnswer {
                name: owner.clone(),
                rtype: RrType::CNAME,
                ttl: None,
                data: target.clone(),
            });
            owner = target;
        }
    }
    for (k, vals) in obj {
        if k == "CNAME" {
            continue;
        }
        let Some(rt) = RrType::parse(k) else { continue };
        for d in vals
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let data = match d.parse::<IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) => d.to_string(),
            };
            out.push(DnsAnswer {
                name: owner.clone(),
                rtype: rt,
                ttl: None,
                data,
            });
        }
    }
}

/// The raw `event_type` value, found without parsing the JSON (most EVE events are alerts,
/// http, tls, stats …: they are skipped before the costly parse).
fn event_type(line: &[u8]) -> Option<&[u8]> {
    let i = lex::find(line, b"\"event_type\"")?;
    let rest = lex::trim_start(line.get(i + 12..)?);
    let rest = lex::trim_start(rest.strip_prefix(b":")?);
    let rest = rest.strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    rest.get(..end)
}

impl LineParser for Eve {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        if let Some(t) = event_type(line) {
            if !matches!(t, b"dns" | b"flow" | b"netflow") {
                return ctx.stats.ignored();
            }
        }
        let v: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(_) => return ctx.stats.error("bad_json", line),
        };
        let Some(ts) = ts_of(&v, "timestamp", ctx) else {
            return ctx.stats.error("bad_timestamp", line);
        };
        let cutoff = ts.plus_secs(-PENDING_TIMEOUT_SECS);
        while self.pending.oldest().is_some_and(|o| o.ts < cutoff) {
            if let Some(o) = self.pending.pop_oldest() {
                out.push(Observation::Dns(o));
            }
        }
        let (Some(src), Some(dst)) = (ip(&v, "src_ip"), ip(&v, "dest_ip")) else {
            return ctx.stats.error("bad_address", line);
        };
        let sp = port(&v, "src_port").unwrap_or(0);
        let dp = port(&v, "dest_port").unwrap_or(0);
        let proto = s(&v, "proto").unwrap_or("");
        match s(&v, "event_type") {
            Some("dns") => {}
            Some("flow") | Some("netflow") => {
                self.finish_v1(out);
                return self.flow(&v, ts, (src, sp, dst, dp), proto, ctx, out, line);
            }
            _ => {
                self.finish_v1(out);
                return ctx.stats.ignored();
            }
        }
        let Some(dns) = v.get("dns") else {
            return ctx.stats.error("missing_field", line);
        };
        let version = n(dns, "version").unwrap_or(1);
        let kind = s(dns, "type").unwrap_or("");
        let is_query = matches!(kind, "query" | "request");
        let is_resp = matches!(kind, "answer" | "response");
        if !is_query && !is_resp {
            return ctx.stats.error("bad_dns_type", line);
        }
        let flow_id = n(&v, "flow_id").unwrap_or(0);
        let id = n(dns, "id").unwrap_or(0);
        let key = join_key(flow_id, id);
        let transport = match proto {
            "UDP" | "udp" => Transport::Udp,
            "TCP" | "tcp" => Transport::Tcp,
            _ => Transport::Unknown,
        };
        // Orientation: the client is the side off port 53; else by version convention.
        let client_is_src = if sp == 53 && dp != 53 {
            false
        } else if dp == 53 && sp != 53 {
            true
        } else {
            is_query || version < 3
        };
        let (client, cport, server, sport) = if client_is_src {
            (src, sp, dst, dp)
        } else {
            (dst, dp, src, sp)
        };
        let questions: Vec<(String, RrType)> = match dns.get("queries").and_then(Value::as_array) {
            Some(qs) => qs
                .iter()
                .filter_map(|q| {
                    Some((
                        crate::model::normalize_name(s(q, "rrname")?),
                        rtype(q, "rrtype")?,
                    ))
                })
                .collect(),
            None => match (s(dns, "rrname"), rtype(dns, "rrtype")) {
                (Some(nm), Some(t)) => vec![(crate::model::normalize_name(nm), t)],
                _ => Vec::new(),
            },
        };
        let make = |ctx: &Ctx, qname: String, qtype: RrType| {
            let mut o = ctx.dns(ts, client, qname, qtype);
            o.client_port = Some(cport);
            o.server = Some(server);
            o.server_port = Some(sport);
            o.transport = transport;
            o.id = u16::try_from(id).ok();
            o
        };
        if is_query {
            self.finish_v1(out);
            if questions.is_empty() {
                return ctx.stats.error("no_query", line);
            }
            for (qname, qtype) in questions {
                let o = make(ctx, qname, qtype);
                if let Some(old) = self.pending.insert(key, o) {
                    out.push(Observation::Dns(old));
                }
            }
            return;
        }
        let rcode = s(dns, "rcode").and_then(Rcode::parse);
        let tc = dns.get("tc").and_then(Value::as_bool).unwrap_or(false)
            || s(dns, "flags")
                .and_then(|f| u16::from_str_radix(f, 16).ok())
                .is_some_and(|f| f & 0x0200 != 0);
        // v1: one event per answer record, without a version field and with the record inline.
        if version == 1 && dns.get("answers").is_none() && dns.get("grouped").is_none() {
            if let Some((k, cur)) = self.v1.as_mut() {
                if *k == key {
                    if let Some(a) = answer_of(dns) {
                        cur.answers.push(a);
                    }
                    return;
                }
            }
            self.finish_v1(out);
        } else {
            self.finish_v1(out);
        }
        let first_q = questions.first().cloned();
        let found = self.pending.take(key, |o| {
            o.client == client
                && first_q
                    .as_ref()
                    .is_none_or(|(qn, qt)| version == 1 || (o.qname == *qn && o.qtype == *qt))
        });
        let mut o = match found {
            Some(o) => o,
            None => {
                let Some((qn, qt)) = first_q.clone() else {
                    return ctx.stats.error("no_query", line);
                };
                let mut o = make(ctx, qn, qt);
                o.query_seen = false;
                o
            }
        };
        o.rtt_us = u64::try_from(ts.0.saturating_sub(o.ts.0)).ok();
        o.rcode = rcode;
        o.truncated = tc;
        o.answers_known = true;
        if let Some(list) = dns.get("answers").and_then(Value::as_array) {
            o.answers.extend(list.iter().filter_map(answer_of));
        } else if let Some(g) = dns.get("grouped") {
            let qn = o.qname.clone();
            grouped(g, &qn, &mut o.answers);
        } else if version == 1 {
            if let Some(a) = answer_of(dns) {
                o.answers.push(a);
            }
            self.v1 = Some((key, o));
            return;
        }
        out.push(Observation::Dns(o));
    }

    fn flush(&mut self, _ctx: &mut Ctx, out: &mut Vec<Observation>) {
        self.finish_v1(out);
        while let Some(o) = self.pending.pop_oldest() {
            out.push(Observation::Dns(o));
        }
    }
}

impl Eve {
    #[allow(clippy::too_many_arguments)]
    fn flow(
        &mut self,
        v: &Value,
        ts: Timestamp,
        (src, sp, dst, dp): (IpAddr, u16, IpAddr, u16),
        proto: &str,
        ctx: &mut Ctx,
        out: &mut Vec<Observation>,
        line: &[u8],
    ) {
        let proto = match proto {
            "TCP" | "tcp" => Proto::Tcp,
            "UDP" | "udp" => Proto::Udp,
            _ => return ctx.stats.ignored(),
        };
        let netflow = v.get("netflow");
        let Some(f) = v.get("flow").or(netflow) else {
            return ctx.stats.error("missing_field", line);
        };
        let start = ts_of(f, "start", ctx).unwrap_or(ts);
        let end = ts_of(f, "end", ctx).unwrap_or(ts);
        let tcp = v.get("tcp");
        let flag = |k: &str| {
            tcp.and_then(|t| t.get(k))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let hex = |k: &str| {
            tcp.and_then(|t| s(t, k))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .unwrap_or(0)
        };
        let (bytes_out, bytes_in, packets_out, packets_in, state, direction);
        if netflow.is_some() {
            bytes_out = n(f, "bytes").unwrap_or(0);
            packets_out = n(f, "pkts").unwrap_or(0);
            bytes_in = 0;
            packets_in = 0;
            direction = Direction::Inferred;
            state = match proto {
                Proto::Tcp if flag("syn") && flag("ack") => {
                    if flag("fin") || flag("rst") {
                        FlowState::Closed
                    } else {
                        FlowState::Established
                    }
                }
                _ => FlowState::Attempted,
            };
        } else {
            bytes_out = n(f, "bytes_toserver").unwrap_or(0);
            bytes_in = n(f, "bytes_toclient").unwrap_or(0);
            packets_out = n(f, "pkts_toserver").unwrap_or(0);
            packets_in = n(f, "pkts_toclient").unwrap_or(0);
            direction = Direction::Originator;
            let tc = hex("tcp_flags_tc");
            state = if packets_in == 0 {
                FlowState::Attempted
            } else if proto == Proto::Tcp {
                const SYN: u8 = 0x02;
                const RST: u8 = 0x04;
                const FIN: u8 = 0x01;
                if tc & RST != 0 && tc & SYN == 0 && (!flag("ack") || packets_in <= 1) {
                    FlowState::Rejected
                } else if tcp.and_then(|t| s(t, "state")) == Some("syn_sent") {
                    FlowState::Attempted
                } else if flag("fin") || flag("rst") || hex("tcp_flags") & (FIN | RST) != 0 {
                    FlowState::Closed
                } else {
                    FlowState::Established
                }
            } else {
                FlowState::Established
            };
        }
        out.push(Observation::Flow(FlowObservation {
            ts: start,
            last_ts: end.max(start),
            src,
            src_port: sp,
            dst,
            dst_port: dp,
            proto,
            direction,
            state,
            report: FlowReport::Final,
            bytes_out,
            bytes_in,
            packets_out,
            packets_in,
            payload_out: Vec::new(),
            payload_in: Vec::new(),
            app: AppInfo::default(),
            source: ctx.source.clone(),
        }));
    }
}
