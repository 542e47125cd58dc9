//! DNS transactions: pair each response with its query so the observation carries the client
//! that asked, the answers and the round-trip time.
//!
//! Pending queries live in a table keyed by (client addr/port, server addr/port, id,
//! transport), capped at `CaptureConfig::max_pending_dns` (oldest reported unanswered first) and
//! timed out after `CaptureConfig::dns_timeout_us` of *capture* time, so a file replays the same
//! way however fast it is read.

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::net::IpAddr;

use rustc_hash::FxHashMap;

use crate::dns::{self, ParsedMessage};
use crate::model::{DnsObservation, Observation, Rcode, RrType, Source, Timestamp, Transport};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    server_port: u16,
    id: u16,
    transport: Transport,
}

struct Pending {
    ts: i64,
    qname: String,
    qtype: RrType,
    salvaged: Option<String>,
    serial: u64,
}

/// Counters of the transaction table (merged into the capture stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnStats {
    pub messages: u64,
    pub queries: u64,
    pub responses: u64,
    pub paired: u64,
    pub unanswered: u64,
    pub unsolicited: u64,
    pub duplicate_queries: u64,
    /// Responses whose question differed from the pending query with the same id.
    pub mismatched: u64,
    pub salvaged: u64,
    pub evicted: u64,
    /// Parse failures by fixed reason label.
    pub parse_errors: Vec<(&'static str, u64)>,
}

impl TxnStats {
    fn parse_error(&mut self, reason: &'static str) {
        match self.parse_errors.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.parse_errors.push((reason, 1)),
        }
    }
}

pub struct DnsTxns {
    map: FxHashMap<Key, Pending>,
    order: VecDeque<(Key, u64)>,
    serial: u64,
    cap: usize,
    timeout_us: i64,
    source: Source,
    pub stats: TxnStats,
}

impl DnsTxns {
    pub fn new(cap: usize, timeout_us: i64, source: Source) -> Self {
        DnsTxns {
            map: FxHashMap::default(),
            order: VecDeque::new(),
            serial: 0,
            cap: cap.max(1),
            timeout_us,
            source,
            stats: TxnStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Handles one DNS message seen from `src:sport` to `dst:dport`.
    #[allow(clippy::too_many_arguments)]
    pub fn message(
        &mut self,
        ts: i64,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        transport: Transport,
        wire: &[u8],
        out: &mut VecDeque<Observation>,
    ) {
        self.stats.messages += 1;
        let mut m = match dns::parse_message(wire) {
            Ok(m) => m,
            Err(e) => {
                self.stats.parse_error(e.metric_reason());
                return;
            }
        };
        if let Some(r) = m.salvage_reason {
            self.stats.salvaged += 1;
            self.stats.parse_error(r.as_str());
        }
        // Moved out, not cloned: the observation takes ownership of the message's strings.
        let Some((qname, qtype)) = std::mem::take(&mut m.questions).into_iter().next() else {
            self.stats.parse_error("no_question");
            return;
        };
        if !m.is_response {
            self.stats.queries += 1;
            let key = Key {
                client: src,
                client_port: sport,
                server: dst,
                server_port: dport,
                id: m.id,
                transport,
            };
            if self.map.len() >= self.cap {
                if self.map.contains_key(&key) {
                    // A retransmission: the transaction started with the first copy.
                    self.stats.duplicate_queries += 1;
                    return;
                }
                self.evict_oldest(out);
            }
            // Below the cap: one lookup decides duplicate or new.
            match self.map.entry(key) {
                Entry::Occupied(_) => {
                    // A retransmission: the transaction started with the first copy.
                    self.stats.duplicate_queries += 1;
                }
                Entry::Vacant(v) => {
                    self.serial += 1;
                    self.order.push_back((key, self.serial));
                    v.insert(Pending {
                        ts,
                        qname,
                        qtype,
                        salvaged: m.salvaged,
                        serial: self.serial,
                    });
                }
            }
            return;
        }
        self.stats.responses += 1;
        let key = Key {
            client: dst,
            client_port: dport,
            server: src,
            server_port: sport,
            id: m.id,
            transport,
        };
        // One lookup: the pending query leaves the table whether or not it matches.
        let q = match self.map.remove(&key) {
            // Same id but another question: not this query's answer (a spoofing attempt or a
            // confused server). Report both halves separately rather than merge them.
            Some(q) if q.qname != qname || q.qtype != qtype => {
                self.stats.unanswered += 1;
                self.stats.mismatched += 1;
                out.push_back(self.unanswered(&key, q));
                None
            }
            other => other,
        };
        match q {
            Some(q) => {
                self.stats.paired += 1;
                let rtt = ts.saturating_sub(q.ts).max(0) as u64;
                let salvaged = m.salvaged.take().or(q.salvaged);
                let obs = self.observation(q.ts, &key, m, qname, qtype, true, Some(rtt), salvaged);
                out.push_back(Observation::Dns(obs));
            }
            None => {
                self.stats.unsolicited += 1;
                let salvaged = m.salvaged.take();
                let obs = self.observation(ts, &key, m, qname, qtype, false, None, salvaged);
                out.push_back(Observation::Dns(obs));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn observation(
        &self,
        ts: i64,
        key: &Key,
        m: ParsedMessage,
        qname: String,
        qtype: RrType,
        query_seen: bool,
        rtt_us: Option<u64>,
        salvaged: Option<String>,
    ) -> DnsObservation {
        DnsObservation {
            ts: Timestamp(ts),
            client: key.client,
            client_port: Some(key.client_port),
            server: Some(key.server),
            server_port: Some(key.server_port),
            transport: key.transport,
            id: Some(key.id),
            qname,
            qtype,
            rcode: Some(m.rcode),
            answers: m.answers,
            answers_known: true,
            query_seen,
            rtt_us,
            truncated: m.truncated,
            salvaged,
            source: self.source.clone(),
        }
    }

    fn unanswered(&self, key: &Key, q: Pending) -> Observation {
        Observation::Dns(DnsObservation {
            ts: Timestamp(q.ts),
            client: key.client,
            client_port: Some(key.client_port),
            server: Some(key.server),
            server_port: Some(key.server_port),
            transport: key.transport,
            id: Some(key.id),
            qname: q.qname,
            qtype: q.qtype,
            rcode: None::<Rcode>,
            answers: Vec::new(),
            answers_known: true,
            query_seen: true,
            rtt_us: None,
            truncated: false,
            salvaged: q.salvaged,
            source: self.source.clone(),
        })
    }

    fn evict_oldest(&mut self, out: &mut VecDeque<Observation>) {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|p| p.serial == s) {
                if let Some(q) = self.map.remove(&k) {
                    self.stats.evicted += 1;
                    self.stats.unanswered += 1;
                    out.push_back(self.unanswered(&k, q));
                }
                return;
            }
        }
    }

    /// Reports queries unanswered for longer than the timeout (capture time `now`).
    pub fn expire(&mut self, now: i64, out: &mut VecDeque<Observation>) {
        while let Some((k, s)) = self.order.front().copied() {
            match self.map.get(&k) {
                Some(p) if p.serial == s => {
                    if now.saturating_sub(p.ts) <= self.timeout_us {
                        break;
                    }
                    self.order.pop_front();
                    if let Some(q) = self.map.remove(&k) {
                        self.stats.unanswered += 1;
                        out.push_back(self.unanswered(&k, q));
                    }
                }
                _ => {
                    self.order.pop_front();
                }
            }
        }
        // Answered queries leave stale queue entries; keep the queue proportional to the table.
        if self.order.len() > self.cap.saturating_mul(2).max(1024) {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|p| p.serial == *s));
        }
    }

    /// End of input: every pending query is reported unanswered, oldest first.
    pub fn finish(&mut self, out: &mut VecDeque<Observation>) {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|p| p.serial == s) {
                if let Some(q) = self.map.remove(&k) {
                    self.stats.unanswered += 1;
                    out.push_back(self.unanswered(&k, q));
                }
            }
        }
        self.map.clear();
    }
}
