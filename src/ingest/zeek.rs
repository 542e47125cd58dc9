//! Zeek `dns.log` and `conn.log`, in TSV (with `#separator`/`#fields` headers, `-` unset,
//! `(empty)` empty) and JSON (`LogAscii::use_json`; epoch or ISO 8601 `ts`). The variant is
//! recognised per line, so a file may even switch.
//!
//! dns.log: one record per transaction (query and response), answers without types or owners:
//! an address is an A/AAAA record, another name is a CNAME (the chain's owners are rebuilt in
//! order), for PTR/MX/TXT/… queries the record has the query's type; `TTLs` are kept.
//! conn.log: one record per connection at its end (`report: final`); `conn_state` maps to
//! [`FlowState`], payload bytes and packets each way.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{lex, Ctx, LineParser, LogFormat};
use crate::model::{
    AppInfo, Direction, DnsAnswer, FlowObservation, FlowReport, FlowState, Observation, Proto,
    Rcode, RrType, Timestamp, Transport,
};

const DNS_DEFAULT_FIELDS: &str = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name qtype qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected";
const CONN_DEFAULT_FIELDS: &str = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents";
/// Most columns a `#fields` header may declare (Zeek logs have a few dozen).
const MAX_FIELDS: usize = 256;

pub struct Zeek {
    format: LogFormat,
    sep: u8,
    set_sep: u8,
    unset: Vec<u8>,
    empty: Vec<u8>,
    cols: HashMap<String, usize>,
}

/// `#fields`/`#path` header → the format it declares.
pub fn detect_header(line: &[u8]) -> Option<LogFormat> {
    if let Some(p) = line.strip_prefix(b"#path") {
        return match lex::trim_start(p) {
            b"dns" => Some(LogFormat::ZeekDns),
            b"conn" => Some(LogFormat::ZeekConn),
            _ => None,
        };
    }
    let f = line.strip_prefix(b"#fields")?;
    if lex::find(f, b"conn_state").is_some() {
        Some(LogFormat::ZeekConn)
    } else if lex::find(f, b"qtype").is_some() || lex::find(f, b"query").is_some() {
        Some(LogFormat::ZeekDns)
    } else {
        None
    }
}

fn cols_of(spec: &str) -> HashMap<String, usize> {
    spec.split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .take(MAX_FIELDS)
        .enumerate()
        .map(|(i, s)| (s.to_string(), i))
        .collect()
}

impl Zeek {
    pub fn new(format: LogFormat) -> Self {
        let spec = if format == LogFormat::ZeekConn {
            CONN_DEFAULT_FIELDS
        } else {
            DNS_DEFAULT_FIELDS
        };
        Zeek {
            format,
            sep: b'\t',
            set_sep: b',',
            unset: b"-".to_vec(),
            empty: b"(empty)".to_vec(),
            cols: cols_of(spec),
        }
    }

    fn header(&mut self, line: &[u8]) {
        let (key, val) = match memchr::memchr2(b' ', b'\t', line) {
            Some(i) => (
                line.get(..i).unwrap_or(&[]),
                line.get(i + 1..).unwrap_or(&[]),
            ),
            None => (line, &b""[..]),
        };
        match key {
            b"#separator" => {
                if let Some(hex) = val.strip_prefix(b"\\x") {
                    if let Some(b) = lex::as_str(hex).and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        self.sep = b;
                    }
                } else if let Some(b) = val.first() {
                    self.sep = *b;
                }
            }
            b"#set_separator" => {
                if let Some(b) = val.first() {
                    self.set_sep = *b;
                }
            }
            b"#unset_field" => self.unset = val.to_vec(),
            b"#empty_field" => self.empty = val.to_vec(),
            b"#fields" => {
                let spec = String::from_utf8_lossy(val).replace(self.sep as char, " ");
                self.cols = cols_of(&spec);
            }
            _ => {}
        }
    }
}

/// A record, whichever encoding it came in.
enum Rec<'a> {
    Tsv { fields: Vec<&'a [u8]>, z: &'a Zeek },
    Json(serde_json::Value),
}

impl Rec<'_> {
    fn raw(&self, k: &str) -> Option<String> {
        match self {
            Rec::Tsv { fields, z } => {
                let v = *fields.get(*z.cols.get(k)?)?;
                if v == z.unset.as_slice() || v == z.empty.as_slice() {
                    return None;
                }
                Some(String::from_utf8_lossy(v).into_owned())
            }
            Rec::Json(v) => {
                let x = v.get(k).or_else(|| {
                    let (a, b) = k.split_once('.')?;
                    v.get(a)?.get(b)
                })?;
                match x {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Number(n) => Some(n.to_string()),
                    serde_json::Value::Bool(b) => Some(if *b { "T".into() } else { "F".into() }),
                    _ => None,
                }
            }
        }
    }
    fn list(&self, k: &str) -> Vec<String> {
        match self {
            Rec::Tsv { z, .. } => match self.raw(k) {
                Some(s) => s
                    .split(z.set_sep as char)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            },
            Rec::Json(v) => v
                .get(k)
                .and_then(|a| a.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| match x {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
    fn num(&self, k: &str) -> Option<f64> {
        self.raw(k)?.parse::<f64>().ok().filter(|f| f.is_finite())
    }
    fn u64(&self, k: &str) -> Option<u64> {
        self.raw(k)?.parse().ok()
    }
    fn ip(&self, k: &str) -> Option<IpAddr> {
        self.raw(k)?.parse().ok()
    }
    fn ts(&self) -> Option<Timestamp> {
        let s = self.raw("ts")?;
        Timestamp::parse(&s)
    }
}

fn secs_to_us(f: f64) -> Option<u64> {
    (0.0..1e9).contains(&f).then(|| (f * 1e6).round() as u64)
}

impl LineParser for Zeek {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>) {
        if line.first() == Some(&b'#') {
            self.header(line);
            return ctx.stats.ignored();
        }
        let rec = if line.first() == Some(&b'{') {
            match serde_json::from_slice::<serde_json::Value>(line) {
                Ok(v) => Rec::Json(v),
                Err(_) => return ctx.stats.error("bad_json", line),
            }
        } else {
            let fields: Vec<&[u8]> = line.split(|c| *c == self.sep).take(MAX_FIELDS).collect();
            if fields.len() < 6 {
                return ctx.stats.error("truncated", line);
            }
            Rec::Tsv { fields, z: self }
        };
        let Some(ts) = rec.ts() else {
            return ctx.stats.error("bad_timestamp", line);
        };
        let (Some(orig), Some(resp)) = (rec.ip("id.orig_h"), rec.ip("id.resp_h")) else {
            return ctx.stats.error("bad_address", line);
        };
        let orig_p = rec.u64("id.orig_p").and_then(|p| u16::try_from(p).ok());
        let resp_p = rec.u64("id.resp_p").and_then(|p| u16::try_from(p).ok());
        let proto = rec.raw("proto");
        let obs = if self.format == LogFormat::ZeekConn {
            let proto = match proto.as_deref() {
                Some("tcp") => Proto::Tcp,
                Some("udp") => Proto::Udp,
                _ => return ctx.stats.ignored(),
            };
            let state = rec.raw("conn_state").unwrap_or_default();
            let history = rec.raw("history").unwrap_or_default();
            let (fstate, inferred) = conn_state(&state, proto);
            let duration = rec.num("duration").and_then(secs_to_us).unwrap_or(0);
            Observation::Flow(FlowObservation {
                ts,
                last_ts: Timestamp(ts.0.saturating_add(duration as i64)),
                src: orig,
                src_port: orig_p.unwrap_or(0),
                dst: resp,
                dst_port: resp_p.unwrap_or(0),
                proto,
                direction: if inferred || history.contains('^') {
                    Direction::Inferred
                } else {
                    Direction::Originator
                },
                state: fstate,
                report: FlowReport::Final,
                bytes_out: rec.u64("orig_bytes").unwrap_or(0),
                bytes_in: rec.u64("resp_bytes").unwrap_or(0),
                packets_out: rec.u64("orig_pkts").unwrap_or(0),
                packets_in: rec.u64("resp_pkts").unwrap_or(0),
                payload_out: Vec::new(),
                payload_in: Vec::new(),
                app: AppInfo::default(),
                source: ctx.source.clone(),
            })
        } else {
            let Some(query) = rec.raw("query") else {
                // Zeek logs responses without a question (and some opcodes) with no query.
                return ctx.stats.error("no_query", line);
            };
            let qtype = rec
                .u64("qtype")
                .and_then(|t| u16::try_from(t).ok())
                .map(RrType)
                .or_else(|| rec.raw("qtype_name").and_then(|n| RrType::parse(&n)))
                // A response logged without its question (mDNS announcements): the type of the
                // first address answer.
                .or_else(|| {
                    rec.list("answers")
                        .first()
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        .map(|ip| {
                            if ip.is_ipv4() {
                                RrType::A
                            } else {
                                RrType::AAAA
                            }
                        })
                });
            // Still unknown (a response without a question): TYPE0, reserved, so it reads as
            // "unknown" rather than as a guess.
            let qtype = qtype.unwrap_or(RrType(0));
            let qname = crate::model::normalize_name(&query);
            let mut d = ctx.dns(ts, orig, qname, qtype);
            d.client_port = orig_p;
            d.server = Some(resp);
            d.server_port = resp_p;
            d.transport = match proto.as_deref() {
                Some("udp") => Transport::Udp,
                Some("tcp") => Transport::Tcp,
                _ => Transport::Unknown,
            };
            d.id = rec.u64("trans_id").and_then(|i| u16::try_from(i).ok());
            d.rtt_us = rec.num("rtt").and_then(secs_to_us);
            d.rcode = rec
                .u64("rcode")
                .and_then(|r| u16::try_from(r).ok())
                .map(Rcode)
                .or_else(|| rec.raw("rcode_name").and_then(|n| Rcode::parse(&n)));
            d.truncated = rec.raw("TC").is_some_and(|t| t == "T" || t == "true");
            d.answers_known = d.rcode.is_some();
            let ttls = rec.list("TTLs");
            let mut owner = d.qname.clone();
            for (i, a) in rec.list("answers").into_iter().enumerate() {
                let ttl = ttls
                    .get(i)
                    .and_then(|t| t.parse::<f64>().ok())
                    .filter(|t| t.is_finite() && *t >= 0.0 && *t <= f64::from(u32::MAX))
                    .map(|t| t as u32);
                let (rtype, data) = match a.parse::<IpAddr>() {
                    Ok(ip) => (
                        if ip.is_ipv4() {
                            RrType::A
                        } else {
                            RrType::AAAA
                        },
                        ip.to_string(),
                    ),
                    Err(_) => match qtype {
                        RrType::A | RrType::AAAA | RrType::CNAME | RrType::HTTPS | RrType::SVCB
                            if !a.contains(' ') =>
                        {
                            (RrType::CNAME, crate::model::normalize_name(&a))
                        }
                        RrType::PTR | RrType::NS => (qtype, crate::model::normalize_name(&a)),
                        _ => (qtype, a),
                    },
                };
                let next_owner = (rtype == RrType::CNAME).then(|| data.clone());
                d.answers.push(DnsAnswer {
                    name: owner.clone(),
                    rtype,
                    ttl,
                    data,
                });
                if let Some(n) = next_owner {
                    owner = n;
                }
            }
            Observation::Dns(d)
        };
        out.push(obs);
    }
}

/// Zeek `conn_state` → flow state, and whether the orientation is a guess.
fn conn_state(s: &str, proto: Proto) -> (FlowState, bool) {
    match s {
        "S0" | "SH" | "RSTOS0" => (FlowState::Attempted, false),
        "REJ" | "RSTRH" => (FlowState::Rejected, s == "RSTRH"),
        "S1" => (FlowState::Established, false),
        "SF" if proto == Proto::Udp => (FlowState::Established, false),
        "SF" | "S2" | "S3" | "RSTO" | "RSTR" => (FlowState::Closed, false),
        "SHR" => (FlowState::Established, true),
        "OTH" => (FlowState::Established, true),
        _ => (FlowState::Attempted, true),
    }
}
