//! The history recorder: aggregates every observation the pipeline sees into per-day blocks in
//! memory (bounded), and writes them at each flush without reading what is stored (one row
//! per (day, name) and per (day, destination), see `hunt::encode`); compacts a finished day
//! into one block per name / destination; enforces retention and the byte cap (oldest day
//! first) and folds random-subdomain floods.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
use crate::ports::{HistoryKv, HistoryTree};

mod compact;
mod flush;
mod writer;
pub(super) use compact::{merge_client, merge_flow, merge_summary};
use flush::split_names;
pub use writer::MAX_QUEUED_FLUSHES;

/// Days kept by default.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// Byte cap of the whole history by default. It counts keys + values as written plus
/// [`ROW_OVERHEAD_BYTES`] per row (sled's own cost; measured ratio in `docs/hunt.md`).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// Bytes counted per stored row on top of its key and value: sled's per-entry cost on disk
/// (node headers, offsets, log framing), an estimate; `docs/hunt.md` has the measured ratio
/// of sled's real size to the counted bytes.
pub const ROW_OVERHEAD_BYTES: u64 = 32;
/// How far the database's real size on disk (sled's `size_on_disk`, the whole database) may
/// exceed the byte cap before the oldest day is evicted for it: sled writes its log in 512 KiB
/// segments and reclaims space after removals lazily (freed segments are reused; the file
/// shrinks only from its end), so the file runs ahead of the rows it holds.
pub const DISK_SLACK_BYTES: u64 = 8 << 20;
/// How far sled's file must grow past its size at the last on-disk eviction before another
/// day is evicted for it. An eviction writes its own removals to sled's log (after the size
/// that triggered it was measured), so without this margin the next flush would see the file
/// "grown" by those writes and evict again, until one day was left.
pub const DISK_REGROW_BYTES: u64 = 2 << 20;
/// Aggregated entries (name summaries, client entries, flow entries) kept in memory before a
/// flush is forced (~100 bytes each).
pub const MAX_PENDING_ROWS: usize = 262_144;
/// Longest time entries wait in memory (the service); `scan` flushes at the end.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Client / flow entries per block; a name or destination with more that flush is split into
/// several blocks (so one row stays small enough to rewrite and to read).
pub const MAX_BLOCK_ENTRIES: usize = 4_096;
/// Rows per write batch; the byte cap is checked between batches, so it is exceeded by at
/// most one batch.
pub const WRITE_BATCH_ROWS: usize = 4_096;
/// Rows read per page when a finished day is compacted.
pub const COMPACT_PAGE_ROWS: usize = 8_192;
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

/// A name's entries of one day, waiting for the flush.
#[derive(Default)]
struct NameAgg {
    summary: Option<NameSummary>,
    clients: HashMap<(u8, IpAddr), ClientRow>,
}

type FlowAgg = HashMap<(u16, bool, IpAddr), FlowSummary>;

#[derive(Default)]
struct Pending {
    /// (day, reversed name) → entries.
    names: HashMap<(u32, String), NameAgg>,
    /// (day, destination) → (port, TCP, client) → summary.
    flows: HashMap<(u32, IpAddr), FlowAgg>,
    servers: HashMap<(u32, IpAddr), ServerRow>,
    /// Entries in `names` and `flows` (summaries, client and flow entries).
    entries: usize,
    /// Distinct (day, name) hashes and names per (day, zone) hash, for folding.
    names_seen: HashSet<u64>,
    zones: HashMap<u64, u32>,
    seen: u64,
    last_flush: Option<Instant>,
    newest_day: u32,
}

/// What one flush writes: the aggregates taken out of [`Pending`].
struct Batch {
    names: HashMap<(u32, String), NameAgg>,
    flows: HashMap<(u32, IpAddr), FlowAgg>,
    servers: HashMap<(u32, IpAddr), ServerRow>,
    /// The newest day recorded when the batch was taken (retention counts back from it).
    newest_day: u32,
}

impl Pending {
    /// Takes every pending entry out for a flush (the folding state stays).
    fn take(&mut self) -> Batch {
        self.last_flush = Some(Instant::now());
        self.entries = 0;
        Batch {
            names: std::mem::take(&mut self.names),
            flows: std::mem::take(&mut self.flows),
            servers: std::mem::take(&mut self.servers),
            newest_day: self.newest_day,
        }
    }
}

/// The writing side's state, kept across flushes.
#[derive(Default)]
struct WriteState {
    /// Set when the newest day's rows alone exceed the byte cap: no new rows for that day.
    full_day: Option<u32>,
    /// Last block number handed out (microseconds since the epoch, strictly increasing).
    last_block: u64,
    /// The database's size on disk when a day was last evicted for it (0: none since the size
    /// was last within the cap).
    disk_mark: u64,
    /// The newest day of the batches written.
    newest_day: u32,
}

impl WriteState {
    /// A block number above every one written before (also across restarts: the clock).
    fn next_block(&mut self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        self.last_block = now.max(self.last_block.saturating_add(1));
        self.last_block
    }
}

/// A stored day (`hist_days`): counted bytes, compaction state, page generation.
type DayState = enc::DayValue;

/// One row ready to be written.
struct Out {
    day: u32,
    tree: HistoryTree,
    key: Vec<u8>,
    value: Vec<u8>,
    entries: u64,
}

fn row_cost(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ROW_OVERHEAD_BYTES
}

/// Records observations into the history (one per store; cheap to share).
pub struct Recorder {
    core: Arc<Core>,
    pending: Mutex<Pending>,
    metrics: HistoryMetrics,
    /// Background writes ([`Recorder::with_background_writes`]); `None`: each flush writes on
    /// the thread that records.
    writer: Option<writer::Writer>,
    /// Pending entries that force a flush ([`MAX_PENDING_ROWS`]; smaller in unit tests).
    max_pending: usize,
}

/// The writing side: the store, the limits and the state of the rows written.
struct Core {
    kv: Arc<dyn HistoryKv>,
    cfg: HistoryConfig,
    metrics: HistoryMetrics,
    write: Mutex<WriteState>,
}

impl Core {
    fn lock(&self) -> MutexGuard<'_, WriteState> {
        // A panic while holding the lock leaves the block counter and the marks usable.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes one batch (the flush proper; see [`Recorder::flush`]).
    fn write(&self, b: Batch) -> Result<(), HuntError> {
        let mut w = self.lock();
        w.newest_day = w.newest_day.max(b.newest_day);
        self.flush_locked(&mut w, b)
    }
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = FxHasher::default();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Recorder {
    /// A recorder whose flushes write on the thread that records (or calls [`Recorder::flush`]).
    pub fn new(kv: Arc<dyn HistoryKv>, cfg: HistoryConfig) -> Arc<Recorder> {
        Arc::new(Recorder::build(kv, cfg, false, MAX_PENDING_ROWS))
    }

    /// A recorder whose due flushes are written by a thread of its own, so that recording (the
    /// service's pipeline thread) does not wait for the store: the pending entries are taken
    /// out (as a synchronous flush would at that moment) and queued to the writer, at most
    /// [`MAX_QUEUED_FLUSHES`] waiting; beyond that recording waits (counted in
    /// `poolwatch_history_flush_waits_total`). Batches are written in the order they were
    /// taken, so the rows are the same as [`Recorder::new`]'s. [`Recorder::flush`] still
    /// returns once everything recorded before it is written. If the thread cannot start,
    /// flushes are written in place (logged).
    pub fn with_background_writes(kv: Arc<dyn HistoryKv>, cfg: HistoryConfig) -> Arc<Recorder> {
        Arc::new(Recorder::build(kv, cfg, true, MAX_PENDING_ROWS))
    }

    fn build(
        kv: Arc<dyn HistoryKv>,
        cfg: HistoryConfig,
        background: bool,
        max_pending: usize,
    ) -> Recorder {
        let metrics = HistoryMetrics::get();
        let core = Arc::new(Core {
            kv,
            cfg,
            metrics: metrics.clone(),
            write: Mutex::new(WriteState::default()),
        });
        let writer = if background {
            writer::Writer::spawn(core.clone())
                .map_err(|e| tracing::warn!(error = %e, "history: no writer thread, flushes are written in place"))
                .ok()
        } else {
            None
        };
        Recorder {
            core,
            pending: Mutex::new(Pending::default()),
            metrics,
            writer,
            max_pending,
        }
    }

    pub fn config(&self) -> &HistoryConfig {
        &self.core.cfg
    }

    /// Every stored day with its bytes, oldest first.
    pub fn days(&self) -> Result<Vec<(u32, u64)>, HuntError> {
        days(self.core.kv.as_ref())
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
        let due = p.entries >= self.max_pending
            || (p.seen % CLOCK_EVERY == 0
                && p.last_flush.is_none_or(|t| t.elapsed() >= FLUSH_INTERVAL));
        if due {
            let batch = p.take();
            let res = match &self.writer {
                // Queued under the pending lock: batches reach the writer in order.
                Some(w) => w.queue(batch),
                None => self.core.write(batch),
            };
            if let Err(e) = res {
                self.metrics.flush_errors.inc();
                tracing::warn!(error = %e, "history flush failed");
            }
        }
    }

    /// Writes every pending entry as new blocks, applies retention and the byte cap, and
    /// compacts the days that are finished. With background writes, returns once the writer
    /// has written every batch queued before this one and this one.
    pub fn flush(&self) -> Result<(), HuntError> {
        let mut p = self.lock();
        let batch = p.take();
        match &self.writer {
            Some(w) => {
                let done = w.queue_and_wait(batch);
                drop(p);
                done.wait()
            }
            None => self.core.write(batch),
        }
    }

    /// Entries waiting in memory.
    pub fn pending_entries(&self) -> usize {
        self.lock().entries
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
        let qbit = match d.qtype {
            RrType::A => QTYPE_A,
            RrType::AAAA => QTYPE_AAAA,
            _ => QTYPE_OTHER,
        };
        let rcode = d.rcode.map(|r| r.0);
        // The name summary.
        {
            let agg = p.names.entry((day, rev.clone())).or_default();
            let new = agg.summary.is_none();
            let s = agg.summary.get_or_insert_with(|| NameSummary {
                first_ms: ms,
                last_ms: ms,
                ..NameSummary::default()
            });
            s.first_ms = s.first_ms.min(ms);
            s.last_ms = s.last_ms.max(ms);
            s.count = s.count.saturating_add(1);
            s.answered |= answered;
            if rcode.is_some() {
                s.rcode = rcode;
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
            if new {
                p.entries += 1;
            }
        }
        client_entry(p, day, rev, KIND_LOOKUP, d.client, ms, |r| {
            r.qtypes |= qbit;
            if rcode.is_some() {
                r.rcode = rcode;
            }
        });
        if !folded {
            for c in &cnames {
                let crev = enc::reverse_name(c);
                client_entry(p, day, crev, KIND_VIA_CNAME, d.client, ms, |r| {
                    r.qtypes |= qbit;
                    if rcode.is_some() {
                        r.rcode = rcode;
                    }
                    if r.qname.is_none() {
                        r.qname = Some(d.qname.clone());
                    }
                });
            }
        }
        if let Some(server) = d.server {
            let s = p.servers.entry((day, server)).or_default();
            if s.clients.len() < MAX_SERVER_CLIENTS && !s.clients.contains(&d.client) {
                s.clients.push(d.client);
            }
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
        let clip = |s: &Option<String>, max: usize| {
            s.as_ref().map(|s| {
                let mut end = s.len().min(max);
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                s.get(..end).unwrap_or_default().to_string()
            })
        };
        let block = p.flows.entry((day, f.dst)).or_default();
        let new = !block.contains_key(&(f.dst_port, tcp, f.src));
        let s = block
            .entry((f.dst_port, tcp, f.src))
            .or_insert_with(|| FlowSummary {
                first_ms: first,
                last_ms: last,
                src_port: f.src_port,
                ..FlowSummary::default()
            });
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
        if new {
            p.entries += 1;
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
            client_entry(p, day, rev, KIND_FLOW_NAME, f.src, first, |r| {
                if r.flow.is_none() {
                    r.flow = Some((dst, port, tcp));
                    r.sni = sni;
                }
            });
        }
    }
}

/// Adds to the pending client entry (kind, client) of (day, rev), creating it.
#[allow(clippy::too_many_arguments)]
fn client_entry(
    p: &mut Pending,
    day: u32,
    rev: String,
    kind: u8,
    client: IpAddr,
    ms: u32,
    update: impl FnOnce(&mut ClientRow),
) {
    let agg = p.names.entry((day, rev)).or_default();
    let mut new = false;
    let r = agg.clients.entry((kind, client)).or_insert_with(|| {
        new = true;
        ClientRow {
            first_ms: ms,
            last_ms: ms,
            ..ClientRow::default()
        }
    });
    r.first_ms = r.first_ms.min(ms);
    r.last_ms = r.last_ms.max(ms);
    r.count = r.count.saturating_add(1);
    update(r);
    if new {
        p.entries += 1;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::warn!(error = %e, "history: final flush failed");
        }
    }
}

/// Every stored day with its `hist_days` value, oldest first (rows that do not parse are
/// skipped).
pub fn day_rows(kv: &dyn HistoryKv) -> Result<Vec<(u32, enc::DayValue)>, HuntError> {
    let rows = kv
        .scan(HistoryTree::Days, &[], &[0xff; 5], 100_000)
        .map_err(HuntError::Store)?;
    Ok(rows
        .into_iter()
        .filter_map(|(k, v)| {
            let d = u32::from_be_bytes(k.try_into().ok()?);
            Some((d, enc::parse_day_value(&v)?))
        })
        .collect())
}

/// Every stored day with its bytes, oldest first.
pub fn days(kv: &dyn HistoryKv) -> Result<Vec<(u32, u64)>, HuntError> {
    Ok(day_rows(kv)?
        .into_iter()
        .map(|(d, v)| (d, v.bytes))
        .collect())
}
