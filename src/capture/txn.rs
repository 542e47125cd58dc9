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

use crate::dns::{self, wire, ParsedMessage};
use crate::model::{
    DnsObservation, DnsSkim, Observation, Rcode, RrType, Source, Timestamp, Transport,
};

/// What the packet fast path asks the stage that consumes the observations (issue #16; `scan`
/// answers from its correlation engine, `correlate::skip`). It is asked only while no
/// observation of the current packet is waiting in the output queue, so the answers reflect
/// every observation before the message, and a skipped message is handed over in its place in
/// the stream.
pub trait DnsInterest {
    /// Whether a normalised name (`dns::name_str`'s form) is listed. The answer must not
    /// change while the table lives (the lists are fixed for the run): a response whose
    /// question equals its pending query's reuses the query's answer.
    fn name_listed(&mut self, name: &str) -> bool;
    /// Whether an unlisted response to `client` with these A/AAAA answers could change the
    /// consumer's state (a "no" lets the message be skipped).
    fn answers_matter(&mut self, client: IpAddr, ips: &[IpAddr]) -> bool;
    /// A message that was not decoded: the consumer counts it in its place in the stream.
    fn skipped(&mut self, s: DnsSkim);
    /// Whether responses may be skipped at all; `false` decodes every response without
    /// reading it in place first (see [`QueriesOnly`]).
    fn skips_responses(&self) -> bool {
        true
    }
}

/// The fast path for a consumer that cannot be asked in stream order — live capture, whose
/// engine runs on the service's pipeline thread behind a queue: queries are read in place
/// (no hickory decode, no `String` per query), every response is decoded and every
/// unanswered query reported, so the observations and counters are exactly the decoding
/// path's. It claims every name listed, so no pending query is read as unlisted, and never
/// lets a response be skipped: nothing reaches `skipped`.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueriesOnly;

impl DnsInterest for QueriesOnly {
    fn name_listed(&mut self, _: &str) -> bool {
        true
    }
    fn answers_matter(&mut self, _: IpAddr, _: &[IpAddr]) -> bool {
        true
    }
    fn skipped(&mut self, s: DnsSkim) {
        // Unreachable by the two answers above; were it reached, the message would be lost.
        debug_assert!(false, "QueriesOnly skipped a message: {s:?}");
    }
    fn skips_responses(&self) -> bool {
        false
    }
}

/// The fast path of one call: `None` decodes every message with hickory (the reference path).
pub type Fast<'a, 'b> = Option<&'a mut (dyn DnsInterest + 'b)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    server_port: u16,
    id: u16,
    transport: Transport,
}

/// Longest query name a pending entry keeps inline (longer ones are owned `String`s).
const INLINE_NAME: usize = 62;

/// A pending query's name: the fast path renders it into the entry itself (no allocation per
/// query, issue #16); the decoding path hands over the `String` hickory's decode produced.
enum QName {
    Inline { len: u8, buf: [u8; INLINE_NAME] },
    Owned(String),
}

impl QName {
    /// The fast path's rendered name: inline when it fits.
    fn rendered(name: &str) -> QName {
        let mut buf = [0u8; INLINE_NAME];
        match (buf.get_mut(..name.len()), u8::try_from(name.len())) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(name.as_bytes());
                QName::Inline { len, buf }
            }
            _ => QName::Owned(name.to_owned()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            QName::Inline { len, buf } => buf.get(..usize::from(*len)).unwrap_or_default(),
            QName::Owned(s) => s.as_bytes(),
        }
    }

    /// The name for an observation. An inline name was copied from a `&str` whole, so the
    /// UTF-8 check cannot fail (the lossy form is only the total function).
    fn into_string(self) -> String {
        match self {
            QName::Inline { .. } => String::from_utf8_lossy(self.as_bytes()).into_owned(),
            QName::Owned(s) => s,
        }
    }
}

struct Pending {
    ts: i64,
    qname: QName,
    qtype: RrType,
    salvaged: Option<String>,
    serial: u64,
    /// How the query was read (the fast path's list answer, kept for its response).
    seen: Seen,
}

/// How a pending query was read: decoded by hickory, or in place by the fast path with its
/// name found listed or not (`DnsInterest::name_listed`, stable for the table's life).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Decoded,
    /// A response with the same question is decoded without asking the list again (a
    /// pool-lookup flood asked twice per transaction, issue #11).
    Listed,
    /// If it stays unanswered, it is skipped rather than reported (an unanswered unlisted
    /// query changes nothing but the clock); a response with the same question reuses the
    /// answer.
    Unlisted,
}

/// What the fast path did with a message.
#[derive(Debug)]
enum Read {
    /// Handled (a query kept pending, or a message handed over skipped).
    Done,
    /// To be decoded by hickory, as without the fast path.
    Decode,
    /// To be decoded, with the question the fast path read and rendered in `Scratch::name`
    /// (`dns::parse_message_named`: not rendered a second time, issue #11).
    DecodeNamed,
    /// Read whole by the fast path, exactly as hickory reads it (`dns::whole`: a listed
    /// response of A/AAAA/CNAME/NS/PTR answers, every response of a pool-lookup flood,
    /// issue #11).
    Parsed(dns::ParsedMessage),
}

/// Buffers the fast path reuses from message to message (no allocation once warm).
#[derive(Default)]
struct Scratch {
    name: Vec<u8>,
    /// The answers' addresses and CNAME targets, read by the whole-message check.
    notes: wire::AnswerNotes,
}

/// `name` as `dns::name_str` renders it, written into `buf` (`None` only if that were not
/// UTF-8, which the rendering never writes).
fn rendered<'b>(name: &wire::WireName<'_>, buf: &'b mut Vec<u8>) -> Option<&'b str> {
    buf.clear();
    name.write_normalised(buf);
    std::str::from_utf8(buf).ok()
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
    scratch: Scratch,
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
            scratch: Scratch::default(),
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
        mut fast: Fast<'_, '_>,
    ) {
        self.stats.messages += 1;
        let mut read = Read::Decode;
        if let Some(f) = fast.as_deref_mut() {
            let mut scratch = std::mem::take(&mut self.scratch);
            let flow = (src, sport, dst, dport, transport);
            read = self.fast_message(ts, flow, wire, out, f, &mut scratch);
            self.scratch = scratch;
            if matches!(read, Read::Done) {
                return;
            }
        }
        let parsed = match read {
            Read::Parsed(m) => Ok(m),
            // The fast path rendered the question already (`scratch.name`).
            Read::DecodeNamed => match std::str::from_utf8(&self.scratch.name) {
                Ok(name) => dns::parse_message_named(wire, name),
                Err(_) => dns::parse_message(wire),
            },
            _ => dns::parse_message(wire),
        };
        let mut m = match parsed {
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
            let qname = QName::Owned(qname);
            let seen = Seen::Decoded;
            self.insert_query(key, ts, (qname, qtype), m.salvaged, seen, out, fast);
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
            Some(q) if q.qname.as_bytes() != qname.as_bytes() || q.qtype != qtype => {
                self.stats.unanswered += 1;
                self.stats.mismatched += 1;
                self.report_unanswered(&key, q, out, fast);
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

    /// A query starts a transaction (or is a retransmission of a pending one).
    #[allow(clippy::too_many_arguments)]
    fn insert_query(
        &mut self,
        key: Key,
        ts: i64,
        (qname, qtype): (QName, RrType),
        salvaged: Option<String>,
        seen: Seen,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        if self.map.len() >= self.cap {
            if self.map.contains_key(&key) {
                // A retransmission: the transaction started with the first copy.
                self.stats.duplicate_queries += 1;
                return;
            }
            self.evict_oldest(out, fast);
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
                    salvaged,
                    serial: self.serial,
                    seen,
                });
            }
        }
    }

    /// The fast path (issue #16): reads the message in place (`dns::wire`) and, when it cannot
    /// matter to the consumer, counts it exactly as the decoding path would and hands it over
    /// as skipped. Returns `false`, having changed nothing, for every message that must be
    /// decoded: one hickory would not read whole, a response while an observation of this
    /// packet is queued, a question that differs from the pending query's, a listed query
    /// name or CNAME target, answers the consumer holds state for. Queries are always handled
    /// here when readable (they produce no observation; only their pending entry is kept).
    fn fast_message(
        &mut self,
        ts: i64,
        (src, sport, dst, dport, transport): (IpAddr, u16, IpAddr, u16, Transport),
        bytes: &[u8],
        out: &mut VecDeque<Observation>,
        f: &mut dyn DnsInterest,
        scratch: &mut Scratch,
    ) -> Read {
        let Ok(w) = wire::parse(bytes) else {
            return Read::Decode;
        };
        if w.is_response() && !f.skips_responses() {
            return Read::Decode;
        }
        let Some(q) = w
            .question
            .filter(|_| w.decodes_whole_noting(&mut scratch.notes))
        else {
            return Read::Decode;
        };
        let qtype = RrType(q.qtype);
        if !w.is_response() {
            let Some(qname) = rendered(&q.name, &mut scratch.name) else {
                return Read::Decode;
            };
            self.stats.queries += 1;
            let listed = f.name_listed(qname);
            let key = Key {
                client: src,
                client_port: sport,
                server: dst,
                server_port: dport,
                id: w.id,
                transport,
            };
            let qname = QName::rendered(qname);
            let seen = if listed { Seen::Listed } else { Seen::Unlisted };
            self.insert_query(key, ts, (qname, qtype), None, seen, out, Some(f));
            return Read::Done;
        }
        let key = Key {
            client: dst,
            client_port: dport,
            server: src,
            server_port: sport,
            id: w.id,
            transport,
        };
        if !out.is_empty() {
            return Read::Decode;
        }
        // The question of a listed response is rendered (`dns::whole` builds the observation
        // with it); an unlisted one is compared in place with the name of the query the fast
        // path read, no rendering of the response's (issue #16).
        let listed_name = match self.map.get(&key) {
            Some(p) if p.seen == Seen::Unlisted => {
                if p.qtype != qtype || !q.name.renders_as(p.qname.as_bytes()) {
                    return Read::Decode;
                }
                None
            }
            pending => {
                let Some(qname) = rendered(&q.name, &mut scratch.name) else {
                    return Read::Decode;
                };
                let listed = match pending {
                    Some(p) if p.qname.as_bytes() != qname.as_bytes() || p.qtype != qtype => {
                        return Read::Decode
                    }
                    // The fast path read this transaction's query, with the same name: its
                    // answer holds (`DnsInterest::name_listed` is stable), no second list match.
                    Some(p) if p.seen == Seen::Listed => true,
                    _ => f.name_listed(qname),
                };
                listed.then_some(qname)
            }
        };
        if let Some(qname) = listed_name {
            return match dns::whole::parsed(&w, qname) {
                Some(m) => Read::Parsed(m),
                // `scratch.name` still holds the question, rendered as `dns::name_str` does.
                None => Read::DecodeNamed,
            };
        }
        // The whole-message check read the answers: their CNAME targets, then their addresses.
        for &at in &scratch.notes.cnames {
            scratch.name.clear();
            w.name_at(at).write_normalised(&mut scratch.name);
            if std::str::from_utf8(&scratch.name).map_or(true, |t| f.name_listed(t)) {
                return Read::Decode;
            }
        }
        if f.answers_matter(dst, &scratch.notes.ips) {
            return Read::Decode;
        }
        self.stats.responses += 1;
        let (obs_ts, query_seen) = match self.map.remove(&key) {
            Some(q) => {
                self.stats.paired += 1;
                (q.ts, true)
            }
            None => {
                self.stats.unsolicited += 1;
                (ts, false)
            }
        };
        f.skipped(DnsSkim {
            ts: Timestamp(obs_ts),
            client: dst,
            server: src,
            answered: true,
            query_seen,
        });
        Read::Done
    }

    /// A query left unanswered: skipped when the fast path read it with an unlisted name and
    /// nothing of this packet is queued before it, else reported.
    fn report_unanswered(
        &self,
        key: &Key,
        q: Pending,
        out: &mut VecDeque<Observation>,
        fast: Fast<'_, '_>,
    ) {
        if let Some(f) = fast.filter(|_| q.seen == Seen::Unlisted && out.is_empty()) {
            f.skipped(DnsSkim {
                ts: Timestamp(q.ts),
                client: key.client,
                server: key.server,
                answered: false,
                query_seen: true,
            });
            return;
        }
        out.push_back(self.unanswered(key, q));
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
            qname: q.qname.into_string(),
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

    fn evict_oldest(&mut self, out: &mut VecDeque<Observation>, fast: Fast<'_, '_>) {
        while let Some((k, s)) = self.order.pop_front() {
            if self.map.get(&k).is_some_and(|p| p.serial == s) {
                if let Some(q) = self.map.remove(&k) {
                    self.stats.evicted += 1;
                    self.stats.unanswered += 1;
                    self.report_unanswered(&k, q, out, fast);
                }
                return;
            }
        }
    }

    /// Reports queries unanswered for longer than the timeout (capture time `now`).
    pub fn expire(&mut self, now: i64, out: &mut VecDeque<Observation>, mut fast: Fast<'_, '_>) {
        while let Some((k, s)) = self.order.front().copied() {
            match self.map.get(&k) {
                Some(p) if p.serial == s => {
                    if now.saturating_sub(p.ts) <= self.timeout_us {
                        break;
                    }
                    self.order.pop_front();
                    if let Some(q) = self.map.remove(&k) {
                        self.stats.unanswered += 1;
                        self.report_unanswered(&k, q, out, fast.as_deref_mut());
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
    pub fn finish(&mut self, out: &mut VecDeque<Observation>, mut fast: Fast<'_, '_>) {
        while !self.finish_some(out, fast.as_deref_mut(), usize::MAX) {}
    }

    /// [`DnsTxns::finish`] in steps of at most `max` queries: `true` once every pending query
    /// is reported (see `FlowTable::finish_some`).
    pub fn finish_some(
        &mut self,
        out: &mut VecDeque<Observation>,
        mut fast: Fast<'_, '_>,
        max: usize,
    ) -> bool {
        let mut budget = max.max(1);
        while budget > 0 {
            let Some((k, s)) = self.order.pop_front() else {
                self.map = FxHashMap::default();
                self.order = VecDeque::new();
                return true;
            };
            if self.map.get(&k).is_some_and(|p| p.serial == s) {
                if let Some(q) = self.map.remove(&k) {
                    budget -= 1;
                    self.stats.unanswered += 1;
                    self.report_unanswered(&k, q, out, fast.as_deref_mut());
                }
            }
        }
        false
    }
}
