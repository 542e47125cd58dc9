//! The pipeline runner: an [`Engine`] plus (optionally) a [`Store`], with the durability policy
//! and the live event feed. Synchronous, so `scan` runs it on the calling thread and the service
//! on a blocking thread fed by a bounded channel.
//!
//! Durability policy (also in `docs/store.md`):
//! * Bindings, pool flows and detection updates are written to sled as they come (in memory),
//!   detection rows coalesced per id in a dirty buffer.
//! * The store is flushed (fsync) when a new or upgraded detection is waiting to be announced and
//!   [`ACK_FLUSH_INTERVAL`] has passed since the last flush, when the dirty buffer reaches
//!   [`MAX_DIRTY`], every [`FLUSH_INTERVAL`] while anything is dirty, on [`Pipeline::flush`],
//!   [`Pipeline::tick`] and [`Pipeline::finish`].
//! * Events (`DetectionEvent`) are published only **after** the flush that made them durable:
//!   a detection anyone was told about survives `kill -9`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::engine::{Changes, Engine, EngineStats, TableSizes, UpdateKind};
use crate::metrics::{self, Counter, Gauge};
use crate::model::{Detection, Observation, Stage, Timestamp};
use crate::ports::{ChangeKind, DetectionChange, DetectionSink};
use crate::query::{DetectionEvent, DetectionEventKind};
use crate::store::{Store, StoreError};

/// Longest a new/upgraded detection waits for its flush (bounds fsyncs to ~10/s under a burst).
pub const ACK_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a mere update (counts, last_seen) stays unflushed.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// Wall-clock idle time after which `tick` advances the engine's clock to `now`. While
/// observations keep coming (an import of old captures), their own timestamps drive time, so a
/// tick must not jump the engine to the wall clock and defeat the reorder window.
pub const TICK_IDLE: Duration = Duration::from_secs(1);
/// Dirty detections coalesced in memory before they are written out.
pub const MAX_DIRTY: usize = 1_024;
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
    Store(#[from] StoreError),
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
    store: Option<Store>,
    events: Option<broadcast::Sender<DetectionEvent>>,
    cfg: PipelineConfig,
    dirty: HashMap<String, Detection>,
    pending_events: Vec<DetectionEvent>,
    last_flush: Instant,
    /// When `tick` last saw the observation counter move (see `push`).
    last_push: Instant,
    pushed_at_tick: u64,
    supp_gen: Option<u64>,
    summary: PipelineSummary,
    metrics: Metrics,
    /// Output hook (`with_sink`): changes since the last flush, handed over in `flush`.
    sink: Option<Box<dyn DetectionSink>>,
    sink_changes: Vec<(ChangeKind, Detection)>,
    sink_updated: std::collections::HashSet<String>,
}

impl Pipeline {
    /// `store: None` is the null sink (benchmarks, dry runs): nothing is persisted.
    /// With a store, the engine consults it for `is_new` and incident continuity, and the
    /// store's suppressions are applied.
    pub fn new(mut engine: Engine, store: Option<Store>) -> Result<Self, PipelineError> {
        if let Some(s) = &store {
            engine.set_history(Box::new(s.clone()));
            for b in s.bindings(MAX_PRELOAD_BINDINGS)? {
                engine.preload_binding(&b);
            }
        }
        let mut p = Pipeline {
            engine,
            store,
            events: None,
            cfg: PipelineConfig::default(),
            dirty: HashMap::new(),
            pending_events: Vec::new(),
            last_flush: Instant::now(),
            last_push: Instant::now(),
            pushed_at_tick: 0,
            supp_gen: None,
            summary: PipelineSummary::default(),
            metrics: Metrics::new(),
            sink: None,
            sink_changes: Vec::new(),
            sink_updated: std::collections::HashSet::new(),
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
        self.events = Some(tx);
        self
    }

    /// Hand every detection change to `sink`, in the same flush that stores it.
    pub fn with_sink(mut self, sink: Box<dyn DetectionSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
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
        let changes = self.engine.observe(&obs);
        if !changes.is_empty() {
            self.apply(changes)?;
        }
        if self.summary.observations % GAUGE_EVERY == 0 {
            self.refresh_gauges();
            self.reload_suppressions()?;
        }
        // The wall clock is read only every FLUSH_CHECK_EVERY observations: with detections
        // pending (`dirty`), reading it per observation was ~1% of a scan.
        if self.summary.observations % FLUSH_CHECK_EVERY == 0
            || self.dirty.len() >= self.cfg.max_dirty
        {
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

    /// Writes and fsyncs everything pending, then publishes waiting events.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        // A sink failure must not keep detections from being stored: flush first, report after.
        let handed = self.hand_to_sink();
        if let Some(store) = &self.store {
            for (_, d) in self.dirty.drain() {
                store.upsert_detection(&d)?;
            }
            store.flush()?;
        } else {
            self.dirty.clear();
        }
        if let (Ok(true), Some(sink)) = (&handed, self.sink.as_mut()) {
            sink.durable();
        }
        self.summary.flushes += 1;
        self.metrics.flushes.inc();
        self.last_flush = Instant::now();
        if let Some(tx) = &self.events {
            for ev in self.pending_events.drain(..) {
                // No subscribers is fine (nobody is listening to the feed).
                let _ = tx.send(ev);
            }
        } else {
            self.pending_events.clear();
        }
        handed.map(|_| ())
    }

    /// Reports held incidents, flushes, and returns what the run did.
    pub fn finish(mut self) -> Result<PipelineSummary, PipelineError> {
        let changes = self.engine.drain();
        if !changes.is_empty() {
            self.apply(changes)?;
        }
        self.flush()?;
        self.refresh_gauges();
        self.summary.engine = self.engine.stats().clone();
        self.summary.tables = self.engine.table_sizes();
        Ok(self.summary)
    }

    /// The summary so far.
    pub fn summary(&self) -> PipelineSummary {
        let mut s = self.summary.clone();
        s.engine = self.engine.stats().clone();
        s.tables = self.engine.table_sizes();
        s
    }

    fn apply(&mut self, changes: Changes) -> Result<(), PipelineError> {
        if let Some(store) = &self.store {
            for b in &changes.bindings {
                store.put_binding(b)?;
            }
            for f in &changes.flows {
                store.put_flow(f)?;
            }
        }
        for u in changes.detections {
            let kind = match u.kind {
                UpdateKind::New => {
                    self.summary.new += 1;
                    if let Some(c) = self.metrics.new_by_stage.get(stage_idx(u.detection.stage)) {
                        c.inc();
                    }
                    Some(DetectionEventKind::New)
                }
                UpdateKind::Upgraded => {
                    self.summary.upgraded += 1;
                    if let Some(c) = self
                        .metrics
                        .upgraded_by_stage
                        .get(stage_idx(u.detection.stage))
                    {
                        c.inc();
                    }
                    Some(DetectionEventKind::Upgraded)
                }
                UpdateKind::Updated => {
                    self.summary.updated += 1;
                    None
                }
            };
            // Without a feed nobody is told before `flush`/`finish` (offline scan), so there is
            // nothing to acknowledge early and no reason to fsync more than every second.
            if let (Some(kind), true) = (kind, self.events.is_some()) {
                self.pending_events.push(DetectionEvent {
                    kind,
                    detection: u.detection.clone(),
                });
            }
            if let Some(sink) = &self.sink {
                match u.kind {
                    UpdateKind::New => self
                        .sink_changes
                        .push((ChangeKind::New, u.detection.clone())),
                    UpdateKind::Upgraded => self
                        .sink_changes
                        .push((ChangeKind::Upgrade, u.detection.clone())),
                    UpdateKind::Updated if sink.wants_updates() => {
                        self.sink_updated.insert(u.detection.id.clone());
                    }
                    UpdateKind::Updated => {}
                }
            }
            self.dirty.insert(u.detection.id.clone(), u.detection);
        }
        Ok(())
    }

    /// Hands the changes since the last flush to the sink (before the store flush, so that
    /// what it writes is durable with the detections). True when anything was handed over.
    fn hand_to_sink(&mut self) -> Result<bool, PipelineError> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(false);
        };
        if self.sink_changes.is_empty() && self.sink_updated.is_empty() {
            return Ok(false);
        }
        let mut changes: Vec<DetectionChange<'_>> = self
            .sink_changes
            .iter()
            .map(|(kind, detection)| DetectionChange {
                kind: *kind,
                detection,
            })
            .collect();
        changes.extend(
            self.sink_updated
                .iter()
                .filter(|id| !self.sink_changes.iter().any(|(_, d)| &d.id == *id))
                .filter_map(|id| self.dirty.get(id))
                .map(|detection| DetectionChange {
                    kind: ChangeKind::Update,
                    detection,
                }),
        );
        let r = sink.persist(&changes).map_err(PipelineError::Sink);
        self.sink_changes.clear();
        self.sink_updated.clear();
        r.map(|_| true)
    }

    fn maybe_flush(&mut self) -> Result<(), PipelineError> {
        // Nothing pending (the common case): nothing can be due, skip the clock read.
        if self.pending_events.is_empty() && self.dirty.is_empty() && self.sink_changes.is_empty() {
            return Ok(());
        }
        let since = self.last_flush.elapsed();
        let announce = !self.pending_events.is_empty() || !self.sink_changes.is_empty();
        let due = (announce && since >= self.cfg.ack_flush_interval)
            || self.dirty.len() >= self.cfg.max_dirty
            || (!self.dirty.is_empty() && since >= self.cfg.flush_interval);
        if due {
            self.flush()?;
        }
        Ok(())
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
