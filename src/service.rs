//! The service runner behind `poolwatch serve` and `poolwatch demo`: opens the store, loads the
//! lists, starts the inputs (live capture, followed logs, dnstap sockets, one-shot imports), runs
//! the correlation pipeline on a thread of its own and serves the REST API, until a shutdown
//! signal; then stops the inputs, drains what they produced, flushes and exits.
//!
//! ```text
//!  capture::live ─┐ (per-interface channel, forwarded)
//!  Follower ──────┤
//!  DnstapListener ┼──> bounded mpsc<Msg> ──> pipeline thread (Pipeline: engine + store) ──> broadcast (SSE)
//!  imports ───────┘                                   │
//!                                                     └── store <── api::serve (Backend)
//! ```
//!
//! Design notes and invariants: `docs/arch/service.md`; operation: `docs/service.md`.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};

use crate::api::{self, ApiOptions, AppState, Backend, BackendError};
use crate::capture::{self, CaptureConfig};
use crate::config::Settings;
use crate::correlate::{Engine, EngineConfig, Pipeline};
use crate::ingest::dnstap::{DnstapListener, ListenAddr};
use crate::ingest::follow::{auto_parser_factory, FileOffset, FollowConfig, Follower, OffsetStore};
use crate::ingest::IngestConfig;
use crate::input::{self, InputFormat};
use crate::matcher::{self, ListManager, ListManagerConfig, SharedBlocklists};
use crate::metrics::{self, Gauge};
use crate::model::{Detection, Observation, Timestamp};
use crate::query::{
    DetectionEvent, DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary,
    Suppression,
};
use crate::store::{Retention, Store, StoreError};

/// Observations (and follower offset commits) queued between the inputs and the pipeline.
/// Bounded so that a flood or a slow disk slows the readers (back-pressure) instead of growing
/// memory: ~8k observations of a few hundred bytes each is a few MiB.
pub const OBS_CHANNEL_CAPACITY: usize = 8_192;
/// Per-interface queue between a live capture thread and the forwarder into the main queue.
pub const LIVE_CHANNEL_CAPACITY: usize = 1_024;
/// Live-feed (SSE) buffer: a subscriber further behind than this gets a `lagged` event.
pub const EVENTS_CAPACITY: usize = 1_024;
/// How often the pipeline thread ticks (flushes due writes, advances the clock when idle, picks
/// up suppression changes) when no observation arrives.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// A follower offset is committed this long after the pipeline received it: by then the
/// incidents its lines opened have left the engine's reorder hold (5 s of observation time,
/// which for a live log is about wall time) and were written, so a crash re-reads those lines
/// instead of losing a held lookup. A clean stop commits at once.
pub const OFFSET_COMMIT_DELAY: Duration = Duration::from_secs(10);
/// Offsets waiting for their commit delay (saves come every second or 1000 lines per file);
/// beyond this the oldest is dropped (a newer one for that file follows).
const MAX_PENDING_OFFSETS: usize = 65_536;
/// Observations handled per wake-up before the pipeline looks at the clock again.
const BATCH: usize = 512;
/// How often retention pruning runs (`retention_days`; 0 disables it).
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// How often store statistics (table sizes, size on disk) are refreshed for `/metrics`. Counting
/// walks the trees, so not per scrape.
pub const STATS_INTERVAL: Duration = Duration::from_secs(15);
/// Imports are checked against the stop flag this often (in observations).
const IMPORT_STOP_EVERY: u64 = 1_024;
/// Most files one `--import` set merges at once (each holds an open reader).
pub const MAX_IMPORTS: usize = 4_096;

/// Errors that stop the service (start-up failures; runtime failures are logged and counted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("database: {source}{}", lock_hint(source))]
    Store {
        #[from]
        source: StoreError,
    },
    #[error("pool lists: {0}")]
    Lists(String),
    #[error("cannot listen on {addr}: {source}{}", busy_hint(.source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("live capture: {0}")]
    Capture(String),
    #[error("following logs: {0}")]
    Follow(String),
    #[error("dnstap listener: {0}")]
    Dnstap(String),
    #[error("import {path}: {message}")]
    Import { path: PathBuf, message: String },
    #[error("outputs: {0}")]
    Output(String),
    #[error("{0}")]
    Internal(String),
}

fn lock_hint(e: &StoreError) -> &'static str {
    let s = e.to_string().to_ascii_lowercase();
    if s.contains("lock") || s.contains("resource temporarily unavailable") {
        " (is another poolwatch running on this database? use another --db)"
    } else {
        ""
    }
}

fn busy_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::AddrInUse {
        " (the port is in use; pick another with --listen, e.g. --listen 127.0.0.1:0 for any free port)"
    } else {
        ""
    }
}

/// Optional behaviour for embedders (`demo`).
#[derive(Default)]
pub struct Hooks {
    /// Called once the API listens, with the bound address (after the `listening on` line).
    pub on_listening: Option<Box<dyn FnOnce(SocketAddr) + Send>>,
    /// When `settings.listen` is busy, listen on an ephemeral port of the same address instead
    /// of failing (the demo's default port).
    pub listen_fallback: bool,
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C). A second one ends the process at once
/// (exit 130), for when a drain takes too long.
pub async fn shutdown_signal() {
    let name = wait_signal().await;
    tracing::info!(
        signal = name,
        "shutting down (send it again to exit at once)"
    );
    eprintln!("poolwatch: {name}: shutting down (again to exit at once)");
    tokio::spawn(async {
        let name = wait_signal().await;
        eprintln!("poolwatch: second {name}: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => tokio::select! {
            _ = t.recv() => "SIGTERM",
            _ = i.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Runs the service until `shutdown` resolves, then drains and flushes. Prints
/// `listening on http://ADDR` on stderr once the API accepts connections.
pub async fn run<F>(settings: Settings, shutdown: F, hooks: Hooks) -> Result<(), ServiceError>
where
    F: Future<Output = ()> + Send,
{
    let store = {
        let db = settings.db.clone();
        tokio::task::spawn_blocking(move || Store::open(&db))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??
    };
    tracing::info!(db = %settings.db.display(), schema = store.schema_version(), "database open");
    let (lists, manager) = start_blocklists(&settings)?;
    // The DNS and flow history of the retro-hunt (docs/hunt.md): recorded by the pipeline
    // thread, read by `GET /api/v1/hunt` and the retro-hunt worker.
    let history = settings
        .history
        .clone()
        .map(|cfg| crate::hunt::Recorder::new(Arc::new(store.clone()), cfg));

    let (events_tx, _) = broadcast::channel::<DetectionEvent>(EVENTS_CAPACITY);
    // Alert sinks: their outboxes open with the store; delivery tasks start now, so the
    // backlog of an earlier run goes out while the inputs start.
    let outputs = crate::output::Outputs::open(&store, &settings.outputs)
        .map_err(|e| ServiceError::Output(e.to_string()))?;
    let (outputs_stop_tx, outputs_stop_rx) = watch::channel(false);
    let output_tasks = outputs.spawn(outputs_stop_rx);
    let state = AppState::new(
        Arc::new(store.clone()) as Arc<dyn Backend>,
        lists.clone(),
        events_tx.clone(),
        ApiOptions::from_settings(&settings),
    )
    .with_lists(manager.clone())
    .with_outputs(outputs.clone());
    let state = match &history {
        Some(h) => state.with_hunter(Arc::new(crate::hunt::Hunter::new(
            Arc::new(store.clone()),
            Some(h.clone()),
        ))),
        None => state,
    };
    let (lists_stop_tx, mut lists_stop_rx) = watch::channel(false);
    let lists_task = manager.spawn_background(async move {
        let _ = lists_stop_rx.wait_for(|v| *v).await;
    });

    let listener = bind(settings.listen, hooks.listen_fallback).await?;
    let addr = listener.local_addr().map_err(|source| ServiceError::Bind {
        addr: settings.listen,
        source,
    })?;
    eprintln!("listening on http://{addr}");
    tracing::info!(%addr, "listening");
    if let Some(f) = hooks.on_listening {
        f(addr);
    }
    let (api_stop_tx, mut api_stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(api::serve(listener, state.clone(), async move {
        let _ = api_stop_rx.wait_for(|v| *v).await;
    }));

    // The pipeline thread.
    let (tx, rx) = mpsc::channel::<Msg>(OBS_CHANNEL_CAPACITY);
    let importing = Arc::new(AtomicUsize::new(usize::from(!settings.import.is_empty())));
    let pipeline = {
        let engine = Engine::new(engine_config(&settings), lists.clone());
        let mut p = Pipeline::new(engine, Some(store.clone()))
            .map_err(|e| ServiceError::Internal(e.to_string()))?
            .with_events(events_tx.clone());
        if !outputs.is_empty() {
            p = p.with_sink(Box::new(outputs.writer(store.clone())));
        }
        let store = store.clone();
        let importing = importing.clone();
        let rt = tokio::runtime::Handle::current();
        let history = history.clone();
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline_loop(p, rx, store, importing, rt, history))
            .map_err(|e| ServiceError::Internal(e.to_string()))?
    };

    // Inputs. A start-up failure stops what was started and reports the error.
    let stop = Arc::new(AtomicBool::new(false));
    let mut inputs = Inputs::default();
    if let Err(e) = start_inputs(&settings, &store, &tx, &stop, &importing, &mut inputs) {
        stop.store(true, Ordering::Relaxed);
        inputs.join();
        drop(tx);
        let _ = pipeline.join();
        let _ = outputs_stop_tx.send(true);
        for t in output_tasks {
            let _ = t.await;
        }
        let _ = api_stop_tx.send(true);
        let _ = api_task.await;
        let _ = lists_stop_tx.send(true);
        let _ = lists_task.await;
        let _ = store.flush();
        return Err(e);
    }
    drop(tx);
    if settings.interfaces.is_empty()
        && settings.follow.is_empty()
        && settings.dnstap.is_empty()
        && settings.import.is_empty()
    {
        tracing::warn!(
            "no inputs configured (--interface, --follow, --dnstap, --import): serving stored data only"
        );
    }
    state.set_ready(true);
    tracing::info!("ready");

    let maintenance = tokio::spawn(maintenance(store.clone(), settings.clone()));
    let retro = match &history {
        Some(h) => crate::hunt::RetroWorker::spawn(crate::hunt::RetroDeps {
            lists: lists.clone(),
            kv: Arc::new(store.clone()),
            sink: Arc::new(store.clone()),
            recorder: Some(h.clone()),
            engine: engine_config(&settings),
        })
        .map_err(|e| tracing::error!(error = %e, "the retro-hunt worker did not start"))
        .ok(),
        None => None,
    };

    shutdown.await;
    state.set_ready(false);
    stop.store(true, Ordering::Relaxed);
    maintenance.abort();
    // Inputs first (their last offsets and held observations go into the queue), then the
    // pipeline drains the queue and flushes; the API answers until the data is durable.
    let joined = tokio::task::spawn_blocking(move || inputs.join()).await;
    if joined.is_err() {
        tracing::warn!("an input thread panicked during shutdown");
    }
    let summary = tokio::task::spawn_blocking(move || pipeline.join()).await;
    if let Some(r) = retro {
        let _ = tokio::task::spawn_blocking(move || r.stop()).await;
    }
    if let Some(h) = history {
        let _ = tokio::task::spawn_blocking(move || h.flush()).await;
    }
    match summary {
        Ok(Ok(Ok(s))) => tracing::info!(
            observations = s.observations,
            new = s.new,
            upgraded = s.upgraded,
            "pipeline finished"
        ),
        _ => tracing::error!("the pipeline thread ended abnormally"),
    }
    // The final flush wrote the last outbox entries; the sinks deliver what they can within
    // output::SHUTDOWN_DRAIN, the rest waits in the outbox for the next start.
    let _ = outputs_stop_tx.send(true);
    for t in output_tasks {
        let _ = t.await;
    }
    let _ = api_stop_tx.send(true);
    let _ = api_task.await;
    let _ = lists_stop_tx.send(true);
    let _ = lists_task.await;
    let flushed = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.flush()).await
    };
    match flushed {
        Ok(Ok(())) => {
            tracing::info!("stopped cleanly (database flushed)");
            Ok(())
        }
        Ok(Err(e)) => Err(ServiceError::from(e)),
        Err(e) => Err(ServiceError::Internal(e.to_string())),
    }
}

/// Opens the list manager: shipped or `--blocklist` lists, persisted user lists and feed
/// copies (the running set), with the manager that the list routes, the `--blocklist` watcher
/// and the feed refresher use. The one place that knows how lists are managed.
pub fn start_blocklists(
    settings: &Settings,
) -> Result<(SharedBlocklists, Arc<ListManager>), ServiceError> {
    let (manager, shared) = ListManager::open(ListManagerConfig::from_settings(settings))
        .map_err(|e| ServiceError::Lists(e.to_string()))?;
    let set = shared.load();
    matcher::record_entries(&set);
    tracing::info!(
        entries = set.len(),
        user_lists = %settings.user_lists.display(),
        feeds = settings.feeds.len(),
        "pool lists loaded"
    );
    Ok((shared, manager))
}

/// The correlation settings of the service.
pub fn engine_config(s: &Settings) -> EngineConfig {
    let d = EngineConfig::default();
    EngineConfig {
        binding_grace_secs: s.grace.map_or(d.binding_grace_secs, |g| {
            i64::try_from(g.as_secs()).unwrap_or(i64::MAX)
        }),
        lookback_secs: i64::from(s.lookback_days).saturating_mul(86_400),
        resolvers: s.resolvers.clone(),
        sinkholes: s.sinkholes.clone(),
        ..d
    }
}

/// The retention policy for `retention_days` (None: keep everything). Host records (which make
/// `is_new`) are kept at least as long as the look-back.
pub fn retention(s: &Settings) -> Option<Retention> {
    if s.retention_days == 0 {
        return None;
    }
    let days = i64::from(s.retention_days);
    Some(Retention {
        detections_secs: days * 86_400,
        hosts_secs: days.max(i64::from(s.lookback_days)) * 86_400,
    })
}

// ---------------------------------------------------------------------------------------------
// The queue and the pipeline thread
// ---------------------------------------------------------------------------------------------

/// What travels from the inputs to the pipeline thread.
enum Msg {
    Obs(Box<Observation>),
    /// A follower's read position, committed to the store only once every observation read
    /// before it has been handed to the pipeline (see [`DeferredOffsets`]).
    Offset(String, FileOffset),
}

fn pipeline_loop(
    mut p: Pipeline,
    mut rx: mpsc::Receiver<Msg>,
    store: Store,
    importing: Arc<AtomicUsize>,
    rt: tokio::runtime::Handle,
    history: Option<Arc<crate::hunt::Recorder>>,
) -> Result<crate::correlate::PipelineSummary, String> {
    let depth = metrics::gauge(
        "poolwatch_service_queue_depth",
        "Observations waiting between the inputs and the correlation pipeline.",
        &[],
    );
    let capacity_g = metrics::gauge(
        "poolwatch_service_queue_capacity",
        "Capacity of the queue between the inputs and the correlation pipeline.",
        &[],
    );
    capacity_g.set(OBS_CHANNEL_CAPACITY as i64);
    let errors = metrics::counter(
        "poolwatch_service_pipeline_errors_total",
        "Store errors met by the correlation pipeline (the observation is skipped).",
        &[],
    );
    let mut last_tick = Instant::now();
    let mut last_err: Option<Instant> = None;
    let mut report = |e: &dyn std::fmt::Display| {
        errors.inc();
        // Rate-limited: a full disk would otherwise log once per observation.
        if last_err.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::error!(error = %e, "pipeline: store error");
            last_err = Some(Instant::now());
        }
    };
    // Follower offsets waiting for their commit delay (see OFFSET_COMMIT_DELAY).
    let mut offsets: VecDeque<(Instant, String, FileOffset)> = VecDeque::new();
    loop {
        let first = rt.block_on(async { tokio::time::timeout(TICK_INTERVAL, rx.recv()).await });
        let mut closed = false;
        match first {
            Ok(Some(m)) => {
                handle(&mut p, &mut offsets, m, &mut report, history.as_deref());
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) => handle(&mut p, &mut offsets, m, &mut report, history.as_deref()),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            Ok(None) => closed = true,
            Err(_) => {}
        }
        depth.set(rx.len() as i64);
        while offsets
            .front()
            .is_some_and(|(t, _, _)| t.elapsed() >= OFFSET_COMMIT_DELAY)
        {
            if let Some((_, key, off)) = offsets.pop_front() {
                if let Err(e) = store.save_offset(&key, &off) {
                    report(&e);
                }
            }
        }
        if closed {
            break;
        }
        // While an import of old data runs, its own timestamps drive the engine's clock; the
        // wall clock would release held incidents early. `push` flushes what is due meanwhile.
        if last_tick.elapsed() >= TICK_INTERVAL && importing.load(Ordering::Acquire) == 0 {
            last_tick = Instant::now();
            if let Err(e) = p.tick(Timestamp::now()) {
                report(&e);
            }
        }
    }
    depth.set(0);
    // Clean stop: every observation was pushed; `finish` reports what is held and its flush
    // makes these offsets durable together with the detections.
    for (_, key, off) in offsets.drain(..) {
        if let Err(e) = store.save_offset(&key, &off) {
            report(&e);
        }
    }
    p.finish().map_err(|e| {
        tracing::error!(error = %e, "pipeline: final flush failed");
        e.to_string()
    })
}

fn handle(
    p: &mut Pipeline,
    offsets: &mut VecDeque<(Instant, String, FileOffset)>,
    m: Msg,
    report: &mut dyn FnMut(&dyn std::fmt::Display),
    history: Option<&crate::hunt::Recorder>,
) {
    match m {
        Msg::Obs(o) => {
            if let Some(h) = history {
                h.record(&o);
            }
            if let Err(e) = p.push(*o) {
                report(&e);
            }
        }
        Msg::Offset(key, off) => {
            // Only the newest position per file matters; bounded by the followed-file cap.
            if offsets.len() >= MAX_PENDING_OFFSETS {
                offsets.pop_front();
            }
            offsets.push_back((Instant::now(), key, off));
        }
    }
}

/// The follower's offset store: loads from the database, but a save travels through the
/// observation queue behind the observations read before it, and is written by the pipeline
/// thread after it has pushed them and [`OFFSET_COMMIT_DELAY`] has passed. So a durable offset
/// never runs ahead of the detections made from the lines before it.
struct DeferredOffsets {
    store: Store,
    tx: mpsc::Sender<Msg>,
    /// Saved but not yet committed, so that a load in between sees the newest position.
    pending: Mutex<HashMap<String, FileOffset>>,
}

impl OffsetStore for DeferredOffsets {
    fn load_offset(&self, key: &str) -> Option<FileOffset> {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(o) = pending.get(key) {
            return Some(o.clone());
        }
        drop(pending);
        self.store.load_offset(key)
    }

    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String> {
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // One entry per followed path (at most MAX_FOLLOWED_FILES live ones); rotated
            // names come and go, so the map is reset rather than grown without bound.
            if pending.len() >= 4 * crate::ingest::follow::MAX_FOLLOWED_FILES {
                pending.clear();
            }
            pending.insert(key.to_string(), offset.clone());
        }
        self.tx
            .blocking_send(Msg::Offset(key.to_string(), offset.clone()))
            .map_err(|_| "the pipeline has stopped".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Inputs {
    threads: Vec<(String, JoinHandle<()>)>,
    live: Vec<capture::live::LiveHandle>,
}

impl Inputs {
    fn join(self) {
        for h in self.live {
            let iface = h.interface().to_string();
            let st = h.join();
            tracing::info!(interface = %iface, stats = ?st, "live capture stopped");
        }
        for (name, t) in self.threads {
            if t.join().is_err() {
                tracing::error!(input = %name, "input thread panicked");
            }
        }
    }
}

fn start_inputs(
    settings: &Settings,
    store: &Store,
    tx: &mpsc::Sender<Msg>,
    stop: &Arc<AtomicBool>,
    importing: &Arc<AtomicUsize>,
    inputs: &mut Inputs,
) -> Result<(), ServiceError> {
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(f)
            .map(|h| (name, h))
            .map_err(|e| ServiceError::Internal(e.to_string()))
    };

    for iface in &settings.interfaces {
        let mut cfg = capture::live::LiveConfig::new(iface.clone());
        cfg.bpf_filter = settings.bpf.clone();
        let (ltx, mut lrx) = mpsc::channel::<Observation>(LIVE_CHANNEL_CAPACITY);
        let h = capture::live::spawn(cfg, ltx, stop.clone())
            .map_err(|e| ServiceError::Capture(e.to_string()))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(o) = lrx.recv().await {
                if tx.send(Msg::Obs(Box::new(o))).await.is_err() {
                    break;
                }
            }
        });
        tracing::info!(interface = %iface, "live capture started");
        inputs.live.push(h);
    }

    if !settings.follow.is_empty() {
        let offsets = Arc::new(DeferredOffsets {
            store: store.clone(),
            tx: tx.clone(),
            pending: Mutex::new(HashMap::new()),
        });
        let mut follower = Follower::new(
            &settings.follow,
            FollowConfig::default(),
            auto_parser_factory(None, IngestConfig::default()),
            Some(offsets as Arc<dyn OffsetStore>),
        )
        .map_err(|e| ServiceError::Follow(e.to_string()))?;
        tracing::info!(patterns = ?settings.follow, files = follower.files().len(), "following logs");
        let (tx, stop) = (tx.clone(), stop.clone());
        inputs.threads.push(spawn(
            "follow".into(),
            Box::new(move || {
                let mut sink =
                    move |o: Observation| tx.blocking_send(Msg::Obs(Box::new(o))).is_ok();
                let st = follower.run(&mut sink, &stop);
                tracing::info!(
                    lines = st.lines,
                    observations = st.observations,
                    "follower stopped"
                );
            }),
        )?);
    }

    for spec in &settings.dnstap {
        let addr = ListenAddr::parse(spec).ok_or_else(|| {
            ServiceError::Dnstap(format!("{spec:?} is not unix:PATH or tcp:ADDR"))
        })?;
        let l = DnstapListener::bind(&addr).map_err(|e| ServiceError::Dnstap(e.to_string()))?;
        if let Some(a) = l.local_addr() {
            tracing::info!(addr = %a, "dnstap listening");
        } else {
            tracing::info!(addr = %spec, "dnstap listening");
        }
        let (tx, stop, spec) = (tx.clone(), stop.clone(), spec.clone());
        inputs.threads.push(spawn(
            format!("dnstap {spec}"),
            Box::new(move || {
                let sink = move |o: Observation| tx.blocking_send(Msg::Obs(Box::new(o))).is_ok();
                if let Err(e) = l.run(sink, stop) {
                    tracing::error!(error = %e, "dnstap listener stopped");
                }
            }),
        )?);
    }

    if !settings.import.is_empty() {
        if settings.import.len() > MAX_IMPORTS {
            return Err(ServiceError::Import {
                path: settings.import.first().cloned().unwrap_or_default(),
                message: format!("too many imports (at most {MAX_IMPORTS})"),
            });
        }
        // Open every file now, so that a bad one is a start-up error; read them in the background.
        let (ccfg, icfg) = (CaptureConfig::default(), IngestConfig::default());
        let mut readers = Vec::with_capacity(settings.import.len());
        for p in &settings.import {
            let r = input::open(p, InputFormat::Auto, &ccfg, &icfg).map_err(|e| {
                ServiceError::Import {
                    path: p.clone(),
                    message: e.to_string(),
                }
            })?;
            readers.push(r);
        }
        let files = settings.import.len();
        let (tx, stop, importing) = (tx.clone(), stop.clone(), importing.clone());
        inputs.threads.push(spawn(
            "import".into(),
            Box::new(move || {
                let started = Instant::now();
                let mut n = 0u64;
                let mut complete = true;
                for o in input::merge_by_time(readers) {
                    if n % IMPORT_STOP_EVERY == 0 && stop.load(Ordering::Relaxed) {
                        complete = false;
                        break;
                    }
                    if tx.blocking_send(Msg::Obs(Box::new(o))).is_err() {
                        complete = false;
                        break;
                    }
                    n += 1;
                }
                importing.store(0, Ordering::Release);
                if complete {
                    tracing::info!(
                        files,
                        observations = n,
                        secs = started.elapsed().as_secs_f64(),
                        "import finished"
                    );
                } else {
                    tracing::warn!(files, observations = n, "import interrupted by shutdown");
                }
            }),
        )?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// API listener, maintenance
// ---------------------------------------------------------------------------------------------

async fn bind(addr: SocketAddr, fallback: bool) -> Result<tokio::net::TcpListener, ServiceError> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if fallback && e.kind() == std::io::ErrorKind::AddrInUse => {
            let any = SocketAddr::new(addr.ip(), 0);
            eprintln!("poolwatch: {addr} is in use; listening on a free port instead");
            tokio::net::TcpListener::bind(any)
                .await
                .map_err(|source| ServiceError::Bind { addr: any, source })
        }
        Err(source) => Err(ServiceError::Bind { addr, source }),
    }
}

struct StoreGauges {
    trees: Vec<(&'static str, Gauge)>,
    size: Gauge,
}

impl StoreGauges {
    fn new() -> Self {
        let trees = [
            "detections",
            "bindings",
            "pool_flows",
            "hosts",
            "suppressions",
            "offsets",
        ]
        .into_iter()
        .map(|t| {
            (
                t,
                metrics::gauge(
                    "poolwatch_store_entries",
                    "Records per store tree (refreshed every 15 s).",
                    &[("tree", t)],
                ),
            )
        })
        .collect();
        StoreGauges {
            trees,
            size: metrics::gauge(
                "poolwatch_store_size_bytes",
                "Size of the database on disk (refreshed every 15 s).",
                &[],
            ),
        }
    }

    fn update(&self, st: &crate::store::StoreStats) {
        for (t, g) in &self.trees {
            let v = match *t {
                "detections" => st.detections,
                "bindings" => st.bindings,
                "pool_flows" => st.pool_flows,
                "hosts" => st.hosts,
                "suppressions" => st.suppressions,
                _ => st.offsets,
            };
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        self.size
            .set(i64::try_from(st.size_on_disk).unwrap_or(i64::MAX));
    }
}

/// Store statistics for `/metrics` and periodic retention pruning.
async fn maintenance(store: Store, settings: Settings) {
    let gauges = Arc::new(StoreGauges::new());
    let policy = retention(&settings);
    let mut stats_every = tokio::time::interval(STATS_INTERVAL);
    let mut prune_every = tokio::time::interval(PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = stats_every.tick() => {
                let (s, g) = (store.clone(), gauges.clone());
                let _ = tokio::task::spawn_blocking(move || match s.stats() {
                    Ok(st) => g.update(&st),
                    Err(e) => tracing::warn!(error = %e, "store statistics"),
                }).await;
            }
            _ = prune_every.tick() => {
                let Some(r) = policy else { continue };
                let s = store.clone();
                let _ = tokio::task::spawn_blocking(move || match s.prune(Timestamp::now(), &r) {
                    Ok(st) => tracing::info!(stats = ?st, "retention: pruned"),
                    Err(e) => tracing::error!(error = %e, "retention pruning failed"),
                }).await;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The store as the API's backend
// ---------------------------------------------------------------------------------------------

fn backend_err(e: StoreError) -> BackendError {
    match e {
        // The client's input: 400.
        StoreError::BadCursor => BackendError::BadCursor("not a cursor this API issued".into()),
        StoreError::Invalid(m) => BackendError::BadCursor(m),
        other => BackendError::Other(other.to_string()),
    }
}

impl Backend for Store {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        Store::list_detections(self, f, limit, cursor).map_err(backend_err)
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError> {
        Store::get_detection(self, id).map_err(backend_err)
    }
    fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, BackendError> {
        Store::host_timeline(self, ip, limit).map_err(backend_err)
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        Store::pools(self).map_err(backend_err)
    }
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError> {
        Store::add_suppression(self, s).map_err(backend_err)
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Store::list_suppressions(self).map_err(backend_err)
    }
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError> {
        Store::delete_suppression(self, id).map_err(backend_err)
    }
    fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Store::pool_ips(self, now).map_err(backend_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_api_classes() {
        assert!(matches!(
            backend_err(StoreError::BadCursor),
            BackendError::BadCursor(_)
        ));
        assert!(matches!(
            backend_err(StoreError::Invalid("x".into())),
            BackendError::BadCursor(_)
        ));
        assert!(matches!(
            backend_err(StoreError::Db("io".into())),
            BackendError::Other(_)
        ));
    }

    #[test]
    fn backend_over_a_real_store_pages_with_cursors() {
        let s = Store::open_temporary().unwrap();
        let b: &dyn Backend = &s;
        let page = b
            .list_detections(&DetectionFilter::default(), 10, None)
            .unwrap();
        assert!(page.items.is_empty() && page.next_cursor.is_none());
        assert!(matches!(
            b.list_detections(&DetectionFilter::default(), 10, Some("zz")),
            Err(BackendError::BadCursor(_))
        ));
        assert!(b.get_detection("nope").unwrap().is_none());
    }

    #[test]
    fn retention_policy_from_settings() {
        let mut s = Settings {
            retention_days: 0,
            ..Settings::default()
        };
        assert!(retention(&s).is_none());
        s.retention_days = 7;
        s.lookback_days = 30;
        let r = retention(&s).unwrap();
        assert_eq!(r.detections_secs, 7 * 86_400);
        assert_eq!(r.hosts_secs, 30 * 86_400);
    }
}
