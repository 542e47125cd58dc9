//! The pipeline runner: an [`Engine`] plus (optionally) a [`DetectionStore`] (sled for `serve`
//! and `scan --db`, memory for `scan`), with the durability policy and the live event feed.
//! Synchronous, so `scan` runs it on the calling thread and the service on a blocking thread fed
//! by a bounded channel.
//!
//! Durability policy (also in `docs/store.md`):
//! * Write-behind: bindings, pool flows and detection updates are collected in a [`Batch`],
//!   coalesced per row (many updates of one detection within a flush are one write), and
//!   written together by [`Pipeline::flush`] — the one place a batch is persisted and fsynced.
//! * The batch is flushed when a new or upgraded detection is waiting to be announced and
//!   [`ACK_FLUSH_INTERVAL`] has passed since the last flush, when it holds [`MAX_DIRTY`]
//!   detections or [`MAX_BATCH_ROWS`] bindings + flows, every [`FLUSH_INTERVAL`] while anything
//!   waits, on [`Pipeline::flush`], [`Pipeline::tick`] and [`Pipeline::finish`].
//! * Events (`DetectionEvent`) are published only **after** the flush that made them durable:
//!   a detection anyone was told about survives `kill -9`.
//! * After each flush the engine is told ([`Engine::persisted`]): incidents it evicted while
//!   their updates were still in the batch are kept in memory until then, so an eviction never
//!   reloads a stale copy or opens a second incident.

use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::engine::{Changes, Engine, EngineStats, TableSizes};
use crate::metrics::{self, Counter, Gauge};
use crate::model::{Detection, Observation, Stage, Timestamp};
use crate::ports::{Batch, DetectionChange, DetectionSink, DetectionStore, PersistenceError};
use crate::query::{ChangeKind, DetectionEvent};

/// Longest a new/upgraded detection waits for its flush (bounds fsyncs to ~10/s under a burst).
pub const ACK_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a mere update (counts, last_seen) stays unflushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Wall-clock idle time after which `tick` advances the engine's clock to `now`. While
/// observations keep coming (an import of old captures), their own timestamps drive time, so a
/// tick must not jump the engine to the wall clock and defeat the reorder window.
pub const TICK_IDLE: Duration = Duration::from_secs(1);
/// Dirty detections coalesced in memory before they are written out. It also bounds the
/// incidents the engine keeps parked between flushes (`correlate::incidents`).
pub const MAX_DIRTY: usize = 1_024;
/// Binding and flow rows coalesced before a flush (a flood of lookups binds one row each; ~300 B
/// per row keeps the batch under ~5 MB).
pub const MAX_BATCH_ROWS: usize = 16_384;
/// Bindings restored from the store on start (the newest are kept by the engine's own cap).
const MAX_PRELOAD_BINDINGS: usize = 1_000_000;
/// How often (in observations) table-size gauges are refreshed.
const GAUGE_EVERY: u64 = 4_096;
/// `push` checks the flush deadlines (a wall-clock read) once per this many observations; `tick`
/// (every ~100 ms in the service) checks them every time, so nothing waits long.
const FLUSH_CHECK_EVERY: u64 = 256;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Store(#[from] PersistenceError),
    #[error("detection sink: {0}")]
    Sink(String),
}

/// Pipeline tunables.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    pub ack_flush_interval: Duration,
    pub flush_interval: Duration,
    pub max_dirty: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            ack_flush_interval: ACK_FLUSH_INTERVAL,
            flush_interval: FLUSH_INTERVAL,
            max_dirty: MAX_DIRTY,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct PipelineSummary {
    pub observations: u64,
    pub new: u64,
    pub upgraded: u64,
    pub updated: u64,
    pub flushes: u64,
    pub engine: EngineStats,
    pub tables: TableSizes,
}

struct Metrics {
    obs_dns: Counter,
    obs_flow: Counter,
    new_by_stage: Vec<Counter>,
    upgraded_by_stage: Vec<Counter>,
    matches_name: Counter,
    matches_cname: Counter,
    matches_sni: Counter,
    matches_ip: Counter,
    stratum: Counter,
    tables: Vec<(&'static str, Gauge)>,
    /// Evictions of the resolver / shared-address tables, by table.
    evictions: Vec<(&'static str, Counter)>,
    flushes: Counter,
    last: EngineStats,
}

impl Metrics {
    fn new() -> Self {
        let obs = |kind| {
            metrics::counter(
                "poolwatch_correlate_observations_total",
                "Observations fed to the correlation engine.",
                &[("kind", kind)],
            )
        };
        let m = |via| {
            metrics::counter(
                "poolwatch_matches_total",
                "Pool list matches, by what matched.",
                &[("via", via)],
            )
        };
        let det = |event, st: Stage| {
            metrics::counter(
                "poolwatch_detections_total",
                "Detections reported, by event (new/upgraded) and stage.",
                &[("event", event), ("stage", st.as_str())],
            )
        };
        let tables = [
            "bindings",
            "ip_index",
            "incidents",
            "dedupe",
            "flows",
            "infra",
            "recent_flows",
            "hosts",
            "held",
            "parked",
            "answer_names",
            "forwarded",
            "unnamed",
        ]
        .into_iter()
        .map(|t| {
            (
                t,
                metrics::gauge(
                    "poolwatch_correlate_table_entries",
                    "Entries in the correlation engine's bounded tables.",
                    &[("table", t)],
                ),
            )
        })
        .collect();
        Metrics {
            obs_dns: obs("dns"),
            obs_flow: obs("flow"),
            new_by_stage: Stage::ALL.iter().map(|s| det("new", *s)).collect(),
            upgraded_by_stage: Stage::ALL.iter().map(|s| det("upgraded", *s)).collect(),
            matches_name: m("qname"),
            matches_cname: m("cname"),
            matches_sni: m("sni"),
            matches_ip: m("ip"),
            stratum: metrics::counter(
                "poolwatch_stratum_flows_total",
                "Flows whose payload was a mining protocol.",
                &[],
            ),
            tables,
            evictions: ["infra", "forwarded", "answer_names", "unnamed"]
                .into_iter()
                .map(|t| {
                    (
                        t,
                        metrics::counter(
                            "poolwatch_correlate_evictions_total",
                            "Entries evicted from a full correlation table (resolver and \
                             shared-address rules).",
                            &[("table", t)],
                        ),
                    )
                })
                .collect(),
            flushes: metrics::counter(
                "poolwatch_store_flushes_total",
                "Durable flushes of the detection store.",
                &[],
            ),
            last: EngineStats::default(),
        }
    }

    fn sync(&mut self, s: &EngineStats, t: &TableSizes) {
        self.matches_name
            .add(s.name_matches - self.last.name_matches);
        self.matches_cname
            .add(s.cname_matches - self.last.cname_matches);
        self.matches_sni.add(s.sni_matches - self.last.sni_matches);
        self.matches_ip.add(s.ip_matches - self.last.ip_matches);
        self.stratum.add(s.stratum_flows - self.last.stratum_flows);
        for ((_, c), (now, before)) in self.evictions.iter().zip([
            (s.infra_evicted, self.last.infra_evicted),
            (s.forwarded_evicted, self.last.forwarded_evicted),
            (s.answer_names_evicted, self.last.answer_names_evicted),
            (s.unnamed_evicted, self.last.unnamed_evicted),
        ]) {
            c.add(now.saturating_sub(before));
        }
        self.last = s.clone();
        let vals = [
            t.bindings,
            t.ip_index,
            t.incidents,
            t.dedupe,
            t.flows,
            t.infra,
            t.recent_flows,
            t.hosts,
            t.held,
            t.parked,
            t.answer_names,
            t.forwarded,
            t.unnamed,
        ];
        for ((_, g), v) in self.tables.iter().zip(vals) {
            g.set(v as i64);
        }
    }
}

fn stage_idx(s: Stage) -> usize {
    Stage::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

/// Engine + store + event feed.
pub struct Pipeline {
    engine: Engine,
    store: Option<Box<dyn DetectionStore>>,
    events: Option<broadcast::Sender<DetectionEvent>>,
    cfg: PipelineConfig,
    batch: Batch,
    /// New/upgraded detections since the last flush, as reported (copies): handed to the sink
    /// before the store flush and published on the feed after it. Kept only when someone
    /// listens (a feed or a sink).
    announced: Vec<DetectionEvent>,
    last_flush: Instant,
    /// When `tick` last saw the observation counter move (see `push`).
    last_push: Instant,
    pushed_at_tick: u64,
    supp_gen: Option<u64>,
    summary: PipelineSummary,
    metrics: Metrics,
    /// Output hook (`with_sink`): changes since the last flush, handed over in `flush`.
    sink: Option<Box<dyn DetectionSink>>,
}

impl Pipeline {
    /// `store: None` is the null sink (benchmarks, dry runs): nothing is persisted.
    /// With a store, the engine consults it for `is_new` and incident continuity, and the
    /// store's suppressions are applied.
    pub fn new<S: DetectionStore + 'static>(
        engine: Engine,
        store: Option<S>,
    ) -> Result<Self, PipelineError> {
        Self::with_store(
            engine,
            store.map(|s| Box::new(s) as Box<dyn DetectionStore>),
        )
    }

    /// Like [`Pipeline::new`], over a boxed [`DetectionStore`] (the caller picks sled or memory
    /// at run time).
    pub fn with_store(
        mut engine: Engine,
        store: Option<Box<dyn DetectionStore>>,
    ) -> Result<Self, PipelineError> {
        // Nobody is told about detections until `with_events`: no copy is needed before the
        // flush (see `Engine::set_deferred_announcements`).
        engine.set_deferred_announcements(true);
        if let Some(s) = &store {
            engine.set_record_rows(s.keeps_rows());
            engine.set_history(s.history());
            for b in s.preload_bindings(MAX_PRELOAD_BINDINGS)? {
                engine.preload_binding(&b);
            }
        }
        let mut p = Pipeline {
            engine,
            store,
            events: None,
            cfg: PipelineConfig::default(),
            batch: Batch::default(),
            announced: Vec::new(),
            last_flush: Instant::now(),
            last_push: Instant::now(),
            pushed_at_tick: 0,
            supp_gen: None,
            summary: PipelineSummary::default(),
            metrics: Metrics::new(),
            sink: None,
        };
        p.reload_suppressions()?;
        Ok(p)
    }

    pub fn with_config(mut self, cfg: PipelineConfig) -> Self {
        self.cfg = cfg;
        self
    }

    /// Publish new/upgraded detections here (after they are durable).
    pub fn with_events(mut self, tx: broadcast::Sender<DetectionEvent>) -> Self {
        // Announcements need the detection as reported: back to copies for New/Upgraded.
        self.engine.set_deferred_announcements(false);
        self.engine.set_deferred_updates(true);
        self.events = Some(tx);
        self
    }

    /// Hand every detection change to `sink`, in the same flush that stores it.
    pub fn with_sink(mut self, sink: Box<dyn DetectionSink>) -> Self {
        // The sink needs each New/Upgraded as reported (a copy); updates stay deferred and
        // reach it from the batch in `flush`.
        self.engine.set_deferred_announcements(false);
        self.engine.set_deferred_updates(true);
        self.sink = Some(sink);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The packet fast path's name question, answered by the engine against `lists` (its
    /// snapshot, [`Engine::lists_snapshot`]); a listed name's hit is kept for the observation
    /// that follows ([`Engine::dns_name_listed_noting`]).
    pub fn dns_name_listed_noting(
        &mut self,
        lists: &std::sync::Arc<crate::matcher::Blocklists>,
        name: &str,
    ) -> bool {
        self.engine.dns_name_listed_noting(lists, name)
    }

    pub fn store(&self) -> Option<&dyn DetectionStore> {
        self.store.as_deref()
    }

    /// Feeds one observation read at `pos` of a source that can be read again (a followed log):
    /// one a detection counted already is not counted twice (`correlate::replay`).
    pub fn push_at(
        &mut self,
        obs: Observation,
        pos: Option<crate::model::SourcePos>,
    ) -> Result<(), PipelineError> {
        self.engine.set_next_position(pos);
        self.push(obs)
    }

    /// Feeds one observation.
    pub fn push(&mut self, obs: Observation) -> Result<(), PipelineError> {
        // No clock read here: at millions of observations per second it was 1.5% of the scan.
        // `tick` notices new observations through the counter instead.
        self.summary.observations += 1;
        match &obs {
            Observation::Dns(_) => self.metrics.obs_dns.inc(),
            Observation::Flow(_) => self.metrics.obs_flow.inc(),
        }
        let changes = self.engine.observe_owned(obs);
        self.pushed(changes)
    }

    /// A DNS message the packet fast path did not decode (`correlate::skip`): it counts as a
    /// DNS observation, as if it had been pushed.
    pub fn push_skipped(&mut self, s: &crate::model::DnsSkim) -> Result<(), PipelineError> {
        self.summary.observations += 1;
        self.metrics.obs_dns.inc();
        let changes = self.engine.observe_skipped(s);
        self.pushed(changes)
    }

    /// A DNS observation without a server that the log pre-filter did not build
    /// (`Engine::observe_skipped_log`): it counts as a DNS observation, as if it had been pushed.
    pub fn push_skipped_log(&mut self, ts: crate::model::Timestamp) -> Result<(), PipelineError> {
        self.summary.observations += 1;
        self.metrics.obs_dns.inc();
        let changes = self.engine.observe_skipped_log(ts);
        self.pushed(changes)
    }

    fn pushed(&mut self, changes: Changes) -> Result<(), PipelineError> {
        if !changes.is_empty() {
            self.apply(changes)?;
        }
        if self.summary.observations % GAUGE_EVERY == 0 {
            self.refresh_gauges();
            self.reload_suppressions()?;
        }
        // The wall clock is read only every FLUSH_CHECK_EVERY observations: with detections
        // pending (`dirty`), reading it per observation was ~1% of a scan.
        if self.summary.observations % FLUSH_CHECK_EVERY == 0 || self.batch_full() {
            self.maybe_flush()?;
        }
        Ok(())
    }

    /// Call every ~100 ms with the wall clock (service): flushes what is due, picks up
    /// suppression changes, and once no observation came for [`TICK_IDLE`], advances the engine
    /// to `now` so held lookups are reported even when traffic stops.
    pub fn tick(&mut self, now: Timestamp) -> Result<(), PipelineError> {
        if self.summary.observations != self.pushed_at_tick {
            self.pushed_at_tick = self.summary.observations;
            self.last_push = Instant::now();
        }
        if self.last_push.elapsed() >= TICK_IDLE {
            let changes = self.engine.tick(now);
            if !changes.is_empty() {
                self.apply(changes)?;
            }
        }
        self.reload_suppressions()?;
        self.engine.set_clock(now);
        self.refresh_gauges();
        self.maybe_flush()
    }

    /// Writes and fsyncs everything pending (the batch), then publishes waiting events. The one
    /// place a batch of detection updates is persisted: anything that must be durable together
    /// with the detections (an outbox row, say) belongs here, before `write_batch`.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        // Coalesced detection state: evicted incidents (moved) and, for a durable store, dirty
        // live ones (one copy per detection per flush, however many events changed it). With a
        // sink that wants updates, the live dirty ones are taken even without a durable store.
        let durable = self.store.as_ref().is_some_and(|s| s.durable());
        let live = durable || self.sink.as_ref().is_some_and(|s| s.wants_updates());
        let batch = &mut self.batch;
        self.engine
            .take_dirty(live, &mut |d| batch.add_detection(d));
        // The sink's rows (outbox) are written before the batch's fsync, so they become durable
        // with their detections. A sink failure must not keep detections from being stored:
        // write the batch first, report after.
        let handed = self.hand_to_sink();
        match &self.store {
            Some(store) => store.write_batch(&mut self.batch)?,
            None => self.batch.clear(),
        }
        self.engine.persisted();
        if let (Ok(true), Some(sink)) = (&handed, self.sink.as_mut()) {
            sink.durable();
        }
        self.summary.flushes += 1;
        self.metrics.flushes.inc();
        self.last_flush = Instant::now();
        if let Some(tx) = &self.events {
            for ev in self.announced.drain(..) {
                // No subscribers is fine (nobody is listening to the feed).
                let _ = tx.send(ev);
            }
        } else {
            self.announced.clear();
        }
        handed.map(|_| ())
    }

    /// Reports held incidents, flushes, and returns what the run did.
    pub fn finish(mut self) -> Result<PipelineSummary, PipelineError> {
        self.finish_in_place()
    }

    /// [`Pipeline::finish`] for a process that exits next (`scan` without `--db`): the
    /// engine's tables are not freed entry by entry — freeing a flood's bindings, incident
    /// and host tables took ≈ 5 % of its CPU (issue #11). Only with a store that is not
    /// durable and no sink (nothing could be left for a drop to do; the store's result is
    /// read through its other handles); otherwise the pipeline is dropped as usual.
    pub fn finish_leaking(mut self) -> Result<PipelineSummary, PipelineError> {
        let r = self.finish_in_place();
        let durable = self.sink.is_some() || self.store.as_ref().is_none_or(|s| s.durable());
        if durable {
            drop(self);
        } else {
            std::mem::forget(self);
        }
        r
    }

    fn finish_in_place(&mut self) -> Result<PipelineSummary, PipelineError> {
        let changes = self.engine.drain();
        if !changes.is_empty() {
            self.apply(changes)?;
        }
        // A store that is not durable, with no sink to hand updates to (`scan` without
        // `--db`): the incidents go to it in chunks of the batch size instead of all through
        // one batch, which would hold every detection once more, in a hash table, at the peak
        // of the run (issue #11: ≈ 72 MB of a 65 536-client flood's 734 MiB).
        // They go boxed (`DetectionStore::write_boxed`): the in-memory store keeps the boxes,
        // so a flood's result is not unboxed, re-keyed by id in a batch and boxed again.
        let chunk = self.cfg.max_dirty.max(1);
        let mut failed = None;
        match self.store.as_deref() {
            Some(store) if self.sink.is_none() && !store.durable() => {
                // What an earlier `apply` batched goes first (it is older).
                failed = store.write_batch(&mut self.batch).err();
                let mut boxes: Vec<Box<Detection>> = Vec::with_capacity(chunk.min(4096));
                self.engine.take_all_dirty_boxed(&mut |d| {
                    boxes.push(d);
                    if boxes.len() >= chunk && failed.is_none() {
                        failed = store.write_boxed(&mut boxes).err();
                        boxes.clear();
                    }
                });
                if failed.is_none() {
                    failed = store.write_boxed(&mut boxes).err();
                }
            }
            _ => {
                let batch = &mut self.batch;
                self.engine.take_all_dirty(&mut |d| batch.add_detection(d));
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        self.flush()?;
        self.refresh_gauges();
        self.summary.updated += self.engine.stats().deferred_updates;
        self.summary.engine = self.engine.stats().clone();
        self.summary.tables = self.engine.table_sizes();
        Ok(self.summary.clone())
    }

    /// The summary so far.
    pub fn summary(&self) -> PipelineSummary {
        let mut s = self.summary.clone();
        s.updated += self.engine.stats().deferred_updates;
        s.engine = self.engine.stats().clone();
        s.tables = self.engine.table_sizes();
        s
    }

    fn apply(&mut self, changes: Changes) -> Result<(), PipelineError> {
        if self.store.is_some() {
            for b in changes.bindings {
                self.batch.add_binding(b);
            }
            for f in changes.flows {
                self.batch.add_flow(f);
            }
        }
        for (kind, stage) in changes.deferred {
            self.count(kind, stage);
        }
        let listened = self.events.is_some() || self.sink.is_some();
        for u in changes.detections {
            self.count(u.kind, u.detection.stage);
            // Without a feed or a sink nobody is told before `flush`/`finish` (offline scan),
            // so there is nothing to acknowledge early and no reason to fsync more than every
            // second. Updates are deferred (taken from the engine in `flush`): a sink gets what
            // the batch holds (`hand_to_sink`).
            if listened && u.kind != ChangeKind::Updated {
                self.announced.push(u.clone());
            }
            self.batch.add_detection(u.detection);
        }
        Ok(())
    }

    /// Hands the changes since the last flush to the sink (before the store flush, so that
    /// what it writes is durable with the detections). True when anything was handed over.
    fn hand_to_sink(&mut self) -> Result<bool, PipelineError> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(false);
        };
        // Updates: whatever the batch holds for this flush (deferred updates taken from the
        // engine, evicted incidents) that is not already a New/Upgrade above.
        let updates = sink.wants_updates() && !self.batch.detections.is_empty();
        if self.announced.is_empty() && !updates {
            return Ok(false);
        }
        let mut changes: Vec<DetectionChange<'_>> =
            self.announced.iter().map(DetectionEvent::as_ref).collect();
        if updates {
            let announced: std::collections::HashSet<&str> = self
                .announced
                .iter()
                .map(|e| e.detection.id.as_str())
                .collect();
            changes.extend(
                self.batch
                    .detections
                    .values()
                    .filter(|d| !announced.contains(d.id.as_str()))
                    .map(|detection| DetectionChange {
                        kind: ChangeKind::Updated,
                        detection,
                    }),
            );
        }
        if changes.is_empty() {
            return Ok(false);
        }
        sink.persist(&changes).map_err(PipelineError::Sink)?;
        Ok(true)
    }

    fn maybe_flush(&mut self) -> Result<(), PipelineError> {
        // Nothing pending (the common case): nothing can be due, skip the clock read.
        // Deferred updates live in the engine until the flush; a durable store (or a sink that
        // wants updates) must get them within FLUSH_INTERVAL too.
        let live = self.store.as_ref().is_some_and(|s| s.durable())
            || self.sink.as_ref().is_some_and(|s| s.wants_updates());
        // Evicted incidents filling their parked table must be flushed whatever the store (a
        // store that keeps no rows may have an empty batch while they pile up).
        let waiting = !self.batch.is_empty()
            || self.engine.needs_flush()
            || (live && self.engine.has_unwritten());
        if self.announced.is_empty() && !waiting {
            return Ok(());
        }
        let since = self.last_flush.elapsed();
        let announce = !self.announced.is_empty();
        let due = (announce && since >= self.cfg.ack_flush_interval)
            || self.batch_full()
            || (waiting && since >= self.cfg.flush_interval);
        if due {
            self.flush()?;
        }
        Ok(())
    }

    /// Counters of a reported change (for a deferred announcement, its detection is written at
    /// the flush).
    fn count(&mut self, kind: ChangeKind, stage: Stage) {
        let by_stage = match kind {
            ChangeKind::New => {
                self.summary.new += 1;
                &self.metrics.new_by_stage
            }
            ChangeKind::Upgraded => {
                self.summary.upgraded += 1;
                &self.metrics.upgraded_by_stage
            }
            ChangeKind::Updated => {
                self.summary.updated += 1;
                return;
            }
        };
        if let Some(c) = by_stage.get(stage_idx(stage)) {
            c.inc();
        }
    }

    fn batch_full(&self) -> bool {
        self.batch.detections.len() >= self.cfg.max_dirty
            || self.batch.rows() >= MAX_BATCH_ROWS
            || self.engine.needs_flush()
    }

    fn reload_suppressions(&mut self) -> Result<(), PipelineError> {
        let Some(store) = &self.store else {
            return Ok(());
        };
        let gen = store.suppression_generation();
        if self.supp_gen == Some(gen) {
            return Ok(());
        }
        let rules = store.list_suppressions()?;
        self.engine.set_suppressions(rules, Timestamp::now());
        self.supp_gen = Some(gen);
        Ok(())
    }

    fn refresh_gauges(&mut self) {
        let s = self.engine.stats().clone();
        let t = self.engine.table_sizes();
        self.metrics.sync(&s, &t);
    }
}
