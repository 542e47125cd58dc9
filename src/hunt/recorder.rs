//! The history recorder: aggregates every observation the pipeline sees into per-day rows
//! (in memory, bounded) and merges them into the store's history trees at each flush; enforces
//! retention and the byte cap (oldest day first) and folds random-subdomain floods.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustc_hash::FxHasher;

use super::encode::{
    self as enc, ClientRow, FlowSummary, NameSummary, ServerRow, KIND_FLOW_NAME, KIND_LOOKUP,
    KIND_VIA_CNAME, QTYPE_A, QTYPE_AAAA, QTYPE_OTHER,
};
use super::metrics::HistoryMetrics;
use super::HuntError;
use crate::model::{
    DnsObservation, FlowObservation, FlowReport, FlowState, Observation, Proto, RrType,
};
use crate::ports::{HistoryKv, HistoryTree, Row};

/// Days kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Byte cap of the whole history by default (keys + values as written; sled's own overhead on
/// disk comes on top, see `docs/hunt.md`).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Aggregated rows kept in memory before a flush is forced.
pub const MAX_PENDING_ROWS: usize = 65_536;
/// Longest time rows wait in memory (the service); `scan` flushes at the end.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Distinct names of one zone per day kept exactly; further names of a zone that day are
/// folded into one `*.zone` row per client (a random-subdomain flood costs one row per client).
pub const MAX_NAMES_PER_ZONE_DAY: u32 = 1_000;
/// (day, zone) and (day, name) pairs tracked for folding; when full, the tracking restarts
/// (a name then counts as new again: folding comes sooner, never later).
pub const MAX_TRACKED_NAMES: usize = 1_000_000;
pub const MAX_TRACKED_ZONES: usize = 200_000;
/// Answer addresses kept per (day, name).
pub const MAX_ANSWERS_KEPT: usize = 16;
/// CNAME targets kept (and indexed) per (day, name).
pub const MAX_CNAMES_KEPT: usize = 4;
/// Clients kept per (day, DNS server): the resolver rule needs
/// `correlate::infra::RESOLVER_MIN_CLIENTS` (3).
pub const MAX_SERVER_CLIENTS: usize = 4;
/// Observations between clock reads for the flush interval.
const CLOCK_EVERY: u64 = 1_024;

/// How the history is kept.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct HistoryConfig {
    pub retention_days: u32,
    pub max_bytes: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            retention_days: DEFAULT_RETENTION_DAYS,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Tree {
    Names,
    Flows,
    Servers,
}

impl Tree {
    fn port(self) -> HistoryTree {
        match self {
            Tree::Names => HistoryTree::Names,
            Tree::Flows => HistoryTree::Flows,
            Tree::Servers => HistoryTree::Servers,
        }
    }
}

/// One aggregated row waiting for the flush.
#[derive(Clone, Debug)]
enum Agg {
    Summary(NameSummary),
    Client(u8, ClientRow),
    Flow(FlowSummary),
    Server(ServerRow),
}

#[derive(Default)]
struct Pending {
    rows: HashMap<(Tree, Vec<u8>), Agg>,
    /// Distinct (day, name) hashes and names per (day, zone) hash, for folding.
    names_seen: HashSet<u64>,
    zones: HashMap<u64, u32>,
    seen: u64,
    last_flush: Option<Instant>,
    newest_day: u32,
    /// Set when today's rows alone exceed the byte cap: no new rows for that day.
    full_day: Option<u32>,
}

/// Records observations into the history (one per store; cheap to share).
pub struct Recorder {
    kv: Arc<dyn HistoryKv>,
    cfg: HistoryConfig,
    pending: Mutex<Pending>,
    metrics: HistoryMetrics,
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = FxHasher::default();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Recorder {
    pub fn new(kv: Arc<dyn HistoryKv>, cfg: HistoryConfig) -> Arc<Recorder> {
        Arc::new(Recorder {
            kv,
            cfg,
            pending: Mutex::new(Pending::default()),
            metrics: HistoryMetrics::get(),
        })
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves aggregates that are still consistent rows.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds one observation. Flushes when the pending table is full or (every
    /// [`CLOCK_EVERY`] observations) [`FLUSH_INTERVAL`] has passed; a flush error is logged and
    /// counted, never returned (history must not stop detection).
    pub fn record(&self, obs: &Observation) {
        let mut p = self.lock();
        match obs {
            Observation::Dns(d) => self.record_dns(&mut p, d),
            Observation::Flow(f) => self.record_flow(&mut p, f),
        }
        p.seen += 1;
        let due = p.rows.len() >= MAX_PENDING_ROWS
            || (p.seen % CLOCK_EVERY == 0
                && p.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_INTERVAL));
        if due {
            if let Err(e) = self.flush_locked(&mut p) {
                self.metrics.flush_errors.inc();
                tracing::warn!(error = %e, "history flush failed");
            }
        }
    }

    /// Writes every pending row (merging with what is stored), then applies retention and
    /// the byte cap.
    pub fn flush(&self) -> Result<(), HuntError> {
        let mut p = self.lock();
        self.flush_locked(&mut p)
    }

    fn new_name(&self, p: &mut Pending, day: u32, name: &str) -> bool {
        let h = hash_of(&[&day.to_be_bytes(), name.as_bytes()]);
        if p.names_seen.len() >= MAX_TRACKED_NAMES {
            p.names_seen.clear();
        }
        p.names_seen.insert(h)
    }

    /// The name a row for `name` is kept under on `day`: itself, or `*.zone` once the zone has
    /// [`MAX_NAMES_PER_ZONE_DAY`] distinct names that day.
    fn keep_as(&self, p: &mut Pending, day: u32, name: &str) -> (String, bool) {
        let zone = enc::zone_of(name);
        if zone == name {
            return (name.to_string(), false);
        }
        let zh = hash_of(&[&day.to_be_bytes(), zone.as_bytes()]);
        let known = p
            .names_seen
            .contains(&hash_of(&[&day.to_be_bytes(), name.as_bytes()]));
        let n = p.zones.get(&zh).copied().unwrap_or(0);
        if !known && n >= MAX_NAMES_PER_ZONE_DAY {
            self.metrics.folded.inc();
            return (enc::folded_name(zone), true);
        }
        if !known && self.new_name(p, day, name) {
            if p.zones.len() >= MAX_TRACKED_ZONES {
                p.zones.clear();
            }
            *p.zones.entry(zh).or_insert(0) += 1;
        }
        (name.to_string(), false)
    }

    fn record_dns(&self, p: &mut Pending, d: &DnsObservation) {
        if !enc::storable_name(&d.qname) {
            self.metrics.skipped_bad_name.inc();
            return;
        }
        let day = enc::day_of(d.ts);
        let ms = enc::ms_of_day(d.ts);
        p.newest_day = p.newest_day.max(day);
        let (name, folded) = self.keep_as(p, day, &d.qname);
        let rev = enc::reverse_name(&name);
        let answers: Vec<IpAddr> = d.answer_ips().take(MAX_ANSWERS_KEPT).collect();
        let cnames: Vec<String> = d
            .cname_targets()
            .filter(|t| enc::storable_name(t))
            .take(MAX_CNAMES_KEPT)
            .map(str::to_string)
            .collect();
        let ttl = d
            .answers
            .iter()
            .filter(|a| a.rtype == RrType::A || a.rtype == RrType::AAAA)
            .filter_map(|a| a.ttl)
            .min();
        let answered = d.answers_known && d.rcode.is_some();
        // The name summary.
        let key = (Tree::Names, enc::summary_key(day, &rev));
        let new_summary = !p.rows.contains_key(&key);
        let s = p.rows.entry(key).or_insert_with(|| {
            Agg::Summary(NameSummary {
                first_ms: ms,
                last_ms: ms,
                ..NameSummary::default()
            })
        });
        if let Agg::Summary(s) = s {
            s.first_ms = s.first_ms.min(ms);
            s.last_ms = s.last_ms.max(ms);
            s.count = s.count.saturating_add(1);
            s.answered |= answered;
            if d.rcode.is_some() {
                s.rcode = d.rcode.map(|r| r.0);
            }
            if let Some(t) = ttl {
                s.min_ttl = if s.min_ttl == 0 { t } else { s.min_ttl.min(t) };
            }
            if !folded {
                for c in &cnames {
                    if s.cnames.len() < MAX_CNAMES_KEPT && !s.cnames.contains(c) {
                        s.cnames.push(c.clone());
                    }
                }
            }
            for a in &answers {
                if s.answers.len() < MAX_ANSWERS_KEPT && !s.answers.contains(a) {
                    s.answers.push(*a);
                }
            }
        }
        let _ = new_summary;
        let qbit = match d.qtype {
            RrType::A => QTYPE_A,
            RrType::AAAA => QTYPE_AAAA,
            _ => QTYPE_OTHER,
        };
        let rcode = d.rcode.map(|r| r.0);
        self.client_row(p, day, &rev, KIND_LOOKUP, d.client, ms, |r| {
            r.qtypes |= qbit;
            if rcode.is_some() {
                r.rcode = rcode;
            }
        });
        if !folded {
            for c in &cnames {
                let crev = enc::reverse_name(c);
                let q = d.qname.clone();
                self.client_row(p, day, &crev, KIND_VIA_CNAME, d.client, ms, |r| {
                    r.qtypes |= qbit;
                    if rcode.is_some() {
                        r.rcode = rcode;
                    }
                    if r.qname.is_none() {
                        r.qname = Some(q);
                    }
                });
            }
        }
        if let Some(server) = d.server {
            let k = (Tree::Servers, enc::server_key(day, server));
            let e = p
                .rows
                .entry(k)
                .or_insert_with(|| Agg::Server(ServerRow::default()));
            if let Agg::Server(s) = e {
                if s.clients.len() < MAX_SERVER_CLIENTS && !s.clients.contains(&d.client) {
                    s.clients.push(d.client);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn client_row(
        &self,
        p: &mut Pending,
        day: u32,
        rev: &str,
        kind: u8,
        client: IpAddr,
        ms: u32,
        update: impl FnOnce(&mut ClientRow),
    ) {
        let k = (Tree::Names, enc::client_key(day, rev, kind, client));
        let e = p.rows.entry(k).or_insert_with(|| {
            Agg::Client(
                kind,
                ClientRow {
                    first_ms: ms,
                    last_ms: ms,
                    ..ClientRow::default()
                },
            )
        });
        if let Agg::Client(_, r) = e {
            r.first_ms = r.first_ms.min(ms);
            r.last_ms = r.last_ms.max(ms);
            r.count = r.count.saturating_add(1);
            update(r);
        }
    }

    fn record_flow(&self, p: &mut Pending, f: &FlowObservation) {
        let day = enc::day_of(f.ts);
        let first = enc::ms_of_day(f.ts);
        // A flow past midnight is summarised on its first day, ending at the day's end.
        let last = if enc::day_of(f.last_ts) == day {
            enc::ms_of_day(f.last_ts)
        } else {
            86_399_999
        };
        p.newest_day = p.newest_day.max(day);
        let tcp = f.proto == Proto::Tcp;
        let k = (
            Tree::Flows,
            enc::flow_key(day, f.dst, f.dst_port, tcp, f.src),
        );
        let clip = |s: &Option<String>, max: usize| {
            s.as_ref().map(|s| {
                let mut end = s.len().min(max);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s[..end].to_string()
            })
        };
        let e = p.rows.entry(k).or_insert_with(|| {
            Agg::Flow(FlowSummary {
                first_ms: first,
                last_ms: last,
                src_port: f.src_port,
                ..FlowSummary::default()
            })
        });
        if let Agg::Flow(s) = e {
            if first < s.first_ms {
                s.first_ms = first;
                s.src_port = f.src_port;
            }
            s.last_ms = s.last_ms.max(last);
            if f.report == FlowReport::Final || s.count == 0 {
                s.count = s.count.saturating_add(1);
            }
            if f.report == FlowReport::Final {
                s.bytes_out = s.bytes_out.saturating_add(f.bytes_out);
                s.bytes_in = s.bytes_in.saturating_add(f.bytes_in);
            } else {
                s.bytes_out = s.bytes_out.max(f.bytes_out);
                s.bytes_in = s.bytes_in.max(f.bytes_in);
            }
            s.established |= matches!(f.state, FlowState::Established | FlowState::Closed);
            s.rejected |= f.state == FlowState::Rejected;
            s.stratum |= f.app.is_stratum();
            s.tls |= f.app.tls;
            if s.sni.is_none() {
                s.sni = clip(&f.app.sni, enc::MAX_FLOW_NAME_LEN);
            }
            if s.http_host.is_none() {
                s.http_host = clip(&f.app.http_host, enc::MAX_FLOW_NAME_LEN);
            }
            if s.stratum_method.is_none() {
                s.stratum_method = clip(&f.app.stratum_method, enc::MAX_FLOW_NAME_LEN);
            }
            if s.agent.is_none() {
                s.agent = clip(&f.app.stratum_agent, enc::MAX_AGENT_LEN);
            }
        }
        // The names the flow carried point back at it.
        for (name, sni) in [(&f.app.sni, true), (&f.app.http_host, false)] {
            let Some(name) = name.as_deref() else {
                continue;
            };
            if !enc::storable_name(name) {
                continue;
            }
            let (kept, _) = self.keep_as(p, day, name);
            let rev = enc::reverse_name(&kept);
            let (dst, port) = (f.dst, f.dst_port);
            self.client_row(p, day, &rev, KIND_FLOW_NAME, f.src, first, |r| {
                if r.flow.is_none() {
                    r.flow = Some((dst, port, tcp));
                    r.sni = sni;
                }
            });
        }
    }

    fn flush_locked(&self, p: &mut Pending) -> Result<(), HuntError> {
        let started = Instant::now();
        p.last_flush = Some(started);
        let rows = std::mem::take(&mut p.rows);
        let mut out: HashMap<Tree, Vec<Row>> = HashMap::new();
        let mut day_delta: HashMap<u32, i64> = HashMap::new();
        let mut new_summaries: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut refused = 0u64;
        // Client rows first, so that their count of new clients reaches the summaries.
        let mut sorted: Vec<((Tree, Vec<u8>), Agg)> = rows.into_iter().collect();
        sorted.sort_by_key(|((_, _), a)| u8::from(matches!(a, Agg::Summary(_))));
        for ((tree, key), agg) in sorted {
            let Some(day) = key
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_be_bytes)
            else {
                continue;
            };
            let old = self.kv.get(tree.port(), &key).map_err(HuntError::Store)?;
            if old.is_none() && p.full_day == Some(day) {
                refused += 1;
                continue;
            }
            let value = match agg {
                Agg::Summary(mut s) => {
                    if let Some(n) = new_summaries.get(&key) {
                        s.clients = s.clients.saturating_add(*n);
                    }
                    if let Some(o) = old.as_deref().and_then(NameSummary::decode) {
                        s = merge_summary(o, s);
                    }
                    s.encode()
                }
                Agg::Client(kind, mut r) => {
                    match old.as_deref().and_then(|o| ClientRow::decode(kind, o)) {
                        Some(o) => r = merge_client(o, r),
                        None => {
                            if let Some(n) = enc::parse_name_key(&key) {
                                *new_summaries
                                    .entry(enc::summary_key(n.day, &n.rev))
                                    .or_insert(0) += 1;
                            }
                        }
                    }
                    r.encode(kind)
                }
                Agg::Flow(mut f) => {
                    if let Some(o) = old.as_deref().and_then(FlowSummary::decode) {
                        f = merge_flow(o, f);
                    }
                    f.encode()
                }
                Agg::Server(mut s) => {
                    if let Some(o) = old.as_deref().and_then(ServerRow::decode) {
                        for c in o.clients.into_iter().rev() {
                            if !s.clients.contains(&c) {
                                s.clients.insert(0, c);
                            }
                        }
                        s.clients.truncate(MAX_SERVER_CLIENTS);
                    }
                    s.encode()
                }
            };
            let before = old.map_or(0, |o| key.len() + o.len()) as i64;
            *day_delta.entry(day).or_insert(0) += (key.len() + value.len()) as i64 - before;
            out.entry(tree).or_default().push((key, value));
        }
        if refused > 0 {
            self.metrics.refused_cap.add(refused);
        }
        let mut written = 0u64;
        for (tree, rows) in &out {
            self.kv.put(tree.port(), rows).map_err(HuntError::Store)?;
            written += rows.len() as u64;
        }
        self.metrics.rows_written.add(written);
        let mut day_rows = Vec::new();
        for (day, delta) in day_delta {
            let cur = self.day_bytes(day)?;
            let v = (cur as i64).saturating_add(delta).max(0) as u64;
            day_rows.push((enc::day_key(day).to_vec(), v.to_be_bytes().to_vec()));
        }
        self.kv
            .put(HistoryTree::Days, &day_rows)
            .map_err(HuntError::Store)?;
        self.enforce(p)?;
        self.metrics.flush_seconds.add(started.elapsed());
        Ok(())
    }

    fn day_bytes(&self, day: u32) -> Result<u64, HuntError> {
        Ok(self
            .kv
            .get(HistoryTree::Days, &enc::day_key(day))
            .map_err(HuntError::Store)?
            .and_then(|v| v.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Every stored day with its bytes, oldest first.
    pub fn days(&self) -> Result<Vec<(u32, u64)>, HuntError> {
        days(self.kv.as_ref())
    }

    /// Retention (days older than the newest day recorded minus `retention_days`), then the
    /// byte cap (oldest days first; the newest day is never evicted, it stops taking new rows).
    fn enforce(&self, p: &mut Pending) -> Result<(), HuntError> {
        let mut days = self.days()?;
        let newest = days.last().map_or(p.newest_day, |d| d.0.max(p.newest_day));
        let oldest_kept = newest.saturating_sub(self.cfg.retention_days.saturating_sub(1));
        while let Some(&(day, _)) = days.first() {
            if day >= oldest_kept {
                break;
            }
            self.evict(day)?;
            self.metrics.evicted_retention.inc();
            days.remove(0);
        }
        let mut total: u64 = days.iter().map(|d| d.1).sum();
        while total > self.cfg.max_bytes && days.len() > 1 {
            let (day, bytes) = days.remove(0);
            self.evict(day)?;
            self.metrics.evicted_cap.inc();
            total = total.saturating_sub(bytes);
        }
        p.full_day = match days.last() {
            Some(&(day, _)) if total > self.cfg.max_bytes => Some(day),
            _ => None,
        };
        self.metrics.bytes.set(total as i64);
        self.metrics.days.set(days.len() as i64);
        Ok(())
    }

    fn evict(&self, day: u32) -> Result<(), HuntError> {
        let lo = enc::day_key(day);
        let hi = enc::day_key(day.saturating_add(1));
        for t in [
            HistoryTree::Names,
            HistoryTree::Flows,
            HistoryTree::Servers,
            HistoryTree::Days,
        ] {
            self.kv
                .remove_range(t, &lo, &hi)
                .map_err(HuntError::Store)?;
        }
        tracing::info!(day = %enc::day_label(day), "history day evicted");
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "history: final flush failed");
        }
    }
}

/// Every stored day with its bytes, oldest first.
pub fn days(kv: &dyn HistoryKv) -> Result<Vec<(u32, u64)>, HuntError> {
    let rows = kv
        .scan(HistoryTree::Days, &[], &[0xff; 5], 100_000)
        .map_err(HuntError::Store)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| {
            let d = u32::from_be_bytes(k.try_into().ok()?);
            let b = u64::from_be_bytes(v.try_into().ok()?);
            Some((d, b))
        })
        .collect())
}

fn merge_summary(o: NameSummary, mut n: NameSummary) -> NameSummary {
    n.first_ms = n.first_ms.min(o.first_ms);
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.clients = n.clients.saturating_add(o.clients);
    n.min_ttl = match (o.min_ttl, n.min_ttl) {
        (0, t) | (t, 0) => t,
        (a, b) => a.min(b),
    };
    n.answered |= o.answered;
    n.rcode = n.rcode.or(o.rcode);
    let mut cn = o.cnames;
    for c in n.cnames {
        if cn.len() < MAX_CNAMES_KEPT && !cn.contains(&c) {
            cn.push(c);
        }
    }
    n.cnames = cn;
    let mut ans = o.answers;
    for a in n.answers {
        if ans.len() < MAX_ANSWERS_KEPT && !ans.contains(&a) {
            ans.push(a);
        }
    }
    n.answers = ans;
    n
}

fn merge_client(o: ClientRow, mut n: ClientRow) -> ClientRow {
    n.first_ms = n.first_ms.min(o.first_ms);
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.rcode = n.rcode.or(o.rcode);
    n.qtypes |= o.qtypes;
    n.qname = o.qname.or(n.qname);
    if o.flow.is_some() {
        n.flow = o.flow;
        n.sni = o.sni;
    }
    n
}

fn merge_flow(o: FlowSummary, mut n: FlowSummary) -> FlowSummary {
    if o.first_ms <= n.first_ms {
        n.first_ms = o.first_ms;
        n.src_port = o.src_port;
    }
    n.last_ms = n.last_ms.max(o.last_ms);
    n.count = n.count.saturating_add(o.count);
    n.established |= o.established;
    n.rejected |= o.rejected;
    n.stratum |= o.stratum;
    n.tls |= o.tls;
    n.bytes_out = n.bytes_out.saturating_add(o.bytes_out);
    n.bytes_in = n.bytes_in.saturating_add(o.bytes_in);
    n.sni = o.sni.or(n.sni);
    n.http_host = o.http_host.or(n.http_host);
    n.stratum_method = o.stratum_method.or(n.stratum_method);
    n.agent = o.agent.or(n.agent);
    n
}
