//! dnstap messages → observations: CLIENT_QUERY / CLIENT_RESPONSE paired in the bounded
//! pending table of `ingest::pending`; the dnstap metrics.

#[allow(unused_imports)]
use super::*;

pub(super) struct Metrics {
    pub(super) data_frames: Counter,
    pub(super) control_frames: Counter,
    pub(super) client_queries: Counter,
    pub(super) client_responses: Counter,
    pub(super) skipped_resolver: Counter,
    pub(super) skipped_other: Counter,
    pub(super) unanswered: Counter,
    pub(super) evicted: Counter,
    pub(super) err_protobuf: Counter,
    pub(super) err_no_message: Counter,
    pub(super) err_dns: Counter,
    pub(super) err_address: Counter,
    pub(super) err_not_message: Counter,
    pub(super) err_stream: Counter,
}

pub(super) fn m() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let frames = |kind| {
            metrics::counter(
                "poolwatch_dnstap_frames_total",
                "Frame Streams frames read, by kind.",
                &[("kind", kind)],
            )
        };
        let msgs = |t| {
            metrics::counter(
                "poolwatch_dnstap_messages_total",
                "dnstap messages by outcome (client messages used; resolver/other types skipped).",
                &[("type", t)],
            )
        };
        let err = |reason| {
            metrics::counter(
                "poolwatch_dnstap_errors_total",
                "dnstap frames or messages rejected, by reason.",
                &[("reason", reason)],
            )
        };
        Metrics {
            data_frames: frames("data"),
            control_frames: frames("control"),
            client_queries: msgs("client_query"),
            client_responses: msgs("client_response"),
            skipped_resolver: msgs("skipped_resolver"),
            skipped_other: msgs("skipped_other"),
            unanswered: msgs("query_unanswered"),
            evicted: msgs("query_evicted"),
            err_protobuf: err("protobuf"),
            err_no_message: err("no_dns_message"),
            err_dns: err("dns_malformed"),
            err_address: err("bad_address"),
            err_not_message: err("not_message_type"),
            err_stream: err("stream"),
        }
    })
}

#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PairKey {
    client: IpAddr,
    port: Option<u16>,
    id: Option<u16>,
    qname: String,
    qtype: u16,
}

/// Turns decoded dnstap messages into observations, pairing CLIENT_RESPONSE with CLIENT_QUERY.
/// Memory: at most [`MAX_PENDING_QUERIES`] queries wait (in the bounded arrival-ordered table
/// every log parser uses, `ingest::pending`); a query waits at most [`PAIR_WINDOW_US`] of
/// message time.
pub struct Pairer {
    source: Source,
    pending: Pending<(PairKey, DnsObservation)>,
    latest: Timestamp,
}

pub(super) fn pair_hash(k: &PairKey) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = rustc_hash::FxHasher::default();
    k.hash(&mut h);
    h.finish()
}

impl Pairer {
    pub fn new(source: Source) -> Self {
        Pairer {
            source,
            pending: Pending::new(MAX_PENDING_QUERIES),
            latest: Timestamp(i64::MIN),
        }
    }

    /// Queries waiting for a response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decodes one data frame and appends the observations it completes.
    pub fn push_frame(&mut self, frame: &[u8], out: &mut Vec<Observation>) {
        let mx = m();
        mx.data_frames.inc();
        let msg = match decode_dnstap(frame) {
            Ok(msg) => msg,
            Err(_) => {
                mx.err_protobuf.inc();
                return;
            }
        };
        self.push(&msg, out);
    }

    /// Handles one decoded message.
    pub fn push(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let mx = m();
        if msg.dnstap_type.unwrap_or(1) != 1 {
            mx.err_not_message.inc();
            return;
        }
        match msg.message_type {
            Some(MSG_CLIENT_QUERY) => {
                mx.client_queries.inc();
                self.query(msg, out);
            }
            Some(MSG_CLIENT_RESPONSE) => {
                mx.client_responses.inc();
                self.response(msg, out);
            }
            Some(3 | 4) => mx.skipped_resolver.inc(),
            _ => mx.skipped_other.inc(),
        }
    }

    fn base(&self, msg: &DnstapMessage<'_>, wire: &[u8]) -> Option<(DnsObservation, PairKey)> {
        let mx = m();
        let Some(client) = msg.query_address.and_then(ip_from_bytes) else {
            mx.err_address.inc();
            return None;
        };
        let parsed = match parse_message(wire) {
            Ok(p) => p,
            Err(_) => {
                mx.err_dns.inc();
                return None;
            }
        };
        let Some((qname, qtype)) = parsed.questions.first().cloned() else {
            mx.err_dns.inc();
            return None;
        };
        let client_port = msg.query_port.and_then(|p| u16::try_from(p).ok());
        let transport = match msg.socket_protocol {
            Some(1) => Transport::Udp,
            Some(2) => Transport::Tcp,
            Some(3..=7) => Transport::Encrypted,
            _ => Transport::Unknown,
        };
        let ts = time(msg.query_time_sec, msg.query_time_nsec)
            .or_else(|| time(msg.response_time_sec, msg.response_time_nsec))
            .unwrap_or_default();
        let key = PairKey {
            client,
            port: client_port,
            id: Some(parsed.id),
            qname: qname.clone(),
            qtype: qtype.0,
        };
        let obs = DnsObservation {
            ts,
            client,
            client_port,
            server: msg.response_address.and_then(ip_from_bytes),
            server_port: msg.response_port.and_then(|p| u16::try_from(p).ok()),
            transport,
            id: Some(parsed.id),
            qname,
            qtype,
            rcode: parsed.is_response.then_some(parsed.rcode),
            answers: if parsed.is_response {
                parsed.answers
            } else {
                Vec::new()
            },
            answers_known: true,
            query_seen: true,
            rtt_us: None,
            truncated: parsed.is_response && parsed.truncated,
            salvaged: parsed.salvaged,
            source: self.source.clone(),
        };
        Some((obs, key))
    }

    fn query(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let Some(wire) = msg.query_message else {
            m().err_no_message.inc();
            return;
        };
        let Some((obs, key)) = self.base(msg, wire) else {
            return;
        };
        self.latest = self.latest.max(obs.ts);
        self.expire(out);
        let h = pair_hash(&key);
        if let Some((_, old)) = self.pending.take(h, |(k, _)| *k == key) {
            // A retransmission with the same id: the first copy was a real query too.
            m().unanswered.inc();
            out.push(Observation::Dns(old));
        }
        if let Some((_, evicted)) = self.pending.insert(h, (key, obs)) {
            m().evicted.inc();
            out.push(Observation::Dns(evicted));
        }
    }

    fn response(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let Some(wire) = msg.response_message else {
            m().err_no_message.inc();
            return;
        };
        let Some((mut obs, key)) = self.base(msg, wire) else {
            return;
        };
        let resp_ts = time(msg.response_time_sec, msg.response_time_nsec);
        if let Some((_, q)) = self.pending.take(pair_hash(&key), |(k, _)| *k == key) {
            obs.ts = q.ts;
            obs.transport = q.transport;
            obs.query_seen = true;
        } else {
            // A response alone carries the question and answers: a complete observation, but
            // its query was not seen in this stream.
            obs.query_seen = false;
            if msg.query_time_sec.is_none() {
                obs.ts = resp_ts.unwrap_or(obs.ts);
            }
        }
        if let Some(r) = resp_ts {
            obs.rtt_us = u64::try_from(r.0.saturating_sub(obs.ts.0)).ok();
        }
        self.latest = self.latest.max(resp_ts.unwrap_or(obs.ts));
        out.push(Observation::Dns(obs));
        self.expire(out);
    }

    /// Emits queries older than the pairing window (by message time).
    fn expire(&mut self, out: &mut Vec<Observation>) {
        let cutoff = self.latest.0.saturating_sub(PAIR_WINDOW_US);
        self.expire_before(cutoff, out);
    }

    fn expire_before(&mut self, cutoff: i64, out: &mut Vec<Observation>) {
        self.pending.drain_expired(
            |(_, q)| q.ts.0 < cutoff,
            |(_, q)| {
                m().unanswered.inc();
                out.push(Observation::Dns(q));
            },
        );
    }

    /// Emits queries whose response has not come within the window of wall-clock `now` (for
    /// live sockets, where message time stops advancing when traffic stops).
    pub fn expire_at(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        self.expire_before(now.0.saturating_sub(PAIR_WINDOW_US), out);
    }

    /// End of input: every waiting query is emitted unanswered.
    pub fn finish(&mut self, out: &mut Vec<Observation>) {
        while let Some((_, q)) = self.pending.pop_oldest() {
            m().unanswered.inc();
            out.push(Observation::Dns(q));
        }
    }
}

pub(super) fn time(sec: Option<u64>, nsec: Option<u64>) -> Option<Timestamp> {
    let sec = i64::try_from(sec?).ok()?;
    let us = sec
        .checked_mul(1_000_000)?
        .checked_add(i64::try_from(nsec.unwrap_or(0) / 1000).ok()?)?;
    Some(Timestamp(us))
}

pub(super) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(a)));
    }
    <[u8; 16]>::try_from(b)
        .ok()
        .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}
