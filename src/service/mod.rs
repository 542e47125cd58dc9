//! The service runner behind `poolwatch serve` and `poolwatch demo`: opens the store, loads the
//! lists, starts the inputs (live capture, followed logs, dnstap sockets, one-shot imports), runs
//! the correlation pipeline on a thread of its own and serves the REST API, until a shutdown
//! signal; then stops the inputs, drains what they produced, flushes and exits.
//!
//! ```text
//!  LiveCapture ────┐  every input is a ports::Producer: run(QueueSink, StopToken)
//!  Follower ───────┤
//!  DnstapListener ─┼──> bounded QueueSink (Produced) ──> pipeline thread (Pipeline: engine + store) ──> broadcast (SSE)
//!  Import ─────────┘                                             │
//!                                                                └── store <── api::serve (Backend)
//! ```
//!
//! Layout: this module wires the parts together ([`run`]); [`inputs`] starts the producers,
//! [`pipeline`] is the pipeline thread (the one writer of detection data: it also commits
//! follower offsets and prunes), [`maintenance`] refreshes store gauges, [`shutdown`] holds the
//! signals and the order of the phases, [`backend`] is the store as the API's backend.
//!
//! Design notes and invariants: `docs/arch/service.md`; operation: `docs/service.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::broadcast;

use crate::api::{self, ApiOptions, AppState, Backend};
use crate::capture::CaptureError;
use crate::config::Settings;
use crate::correlate::{Engine, EngineConfig, Pipeline, PipelineError};
use crate::ingest::dnstap::DnstapError;
use crate::ingest::follow::FollowError;
use crate::input::ImportError;
use crate::matcher::{self, ListManager, ListManagerConfig, MatcherError, SharedBlocklists};
use crate::output::OutputError;
use crate::ports::QueueSink;
use crate::query::DetectionEvent;
use crate::store::{Retention, Store, StoreError};

mod backend;
mod inputs;
mod maintenance;
pub mod notify;
mod pipeline;
pub mod reload;
mod retro;
mod shutdown;

pub use crate::input::MAX_IMPORTS;
pub use maintenance::STATS_INTERVAL;
pub use pipeline::{OFFSET_COMMIT_DELAY, PRUNE_INTERVAL, TICK_INTERVAL};

/// Observations (and follower offset commits) queued between the inputs and the pipeline.
/// Bounded so that a flood or a slow disk slows the readers (back-pressure) instead of growing
/// memory: ~8k observations of a few hundred bytes each is a few MiB. A live capture's slot
/// holds a batch of up to `capture::live::SEND_BATCH` (16) observations, so with live inputs the
/// bound is 16× that (tens of MiB).
pub const OBS_CHANNEL_CAPACITY: usize = 8_192;
/// Live-feed (SSE) buffer: a subscriber further behind than this gets a `lagged` event.
pub const EVENTS_CAPACITY: usize = 1_024;

/// Errors that stop the service (start-up failures; runtime failures are logged and counted).
/// Each keeps its cause as `source`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    #[error("database: {source}{}", lock_hint(source))]
    Store {
        #[from]
        source: StoreError,
    },
    #[error("pool lists: {source}")]
    Lists {
        #[source]
        source: MatcherError,
    },
    #[error("cannot listen on {addr}: {source}{}", busy_hint(.source))]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("live capture: {source}")]
    Capture {
        #[source]
        source: CaptureError,
    },
    #[error("following logs: {source}")]
    Follow {
        #[source]
        source: FollowError,
    },
    #[error("dnstap listener: {spec:?} is not unix:PATH or tcp:ADDR")]
    DnstapAddress { spec: String },
    #[error("dnstap listener: {source}")]
    Dnstap {
        #[source]
        source: DnstapError,
    },
    #[error("{source}")]
    Import {
        #[source]
        source: ImportError,
    },
    #[error("outputs: {source}")]
    Output {
        #[source]
        source: OutputError,
    },
    #[error("pipeline: {source}")]
    Pipeline {
        #[source]
        source: PipelineError,
    },
    #[error("cannot start thread {name}: {source}")]
    Thread {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("a service task failed: {source}")]
    Task {
        #[source]
        source: tokio::task::JoinError,
    },
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
    /// Called once the service is ready (API listening, lists loaded, inputs started).
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
    /// Re-reads the configuration on SIGHUP (`reload.rs`); `None`: SIGHUP re-reads the lists.
    pub reload: Option<reload::LoadSettings>,
    /// Stderr carries JSON lines only (`--log-json`): no plain `listening on` banner.
    pub json_stderr: bool,
}

/// Runs the service until `shutdown` resolves, then drains and flushes. Prints
/// `listening on http://ADDR` on stderr once the API accepts connections.
pub async fn run<F>(settings: Settings, shutdown: F, mut hooks: Hooks) -> Result<(), ServiceError>
where
    F: Future<Output = ()> + Send,
{
    let store = {
        let db = settings.db.clone();
        tokio::task::spawn_blocking(move || Store::open(&db))
            .await
            .map_err(|source| ServiceError::Task { source })??
    };
    tracing::info!(db = %settings.db.display(), schema = store.schema_version(), "database open");
    let (lists, manager) = start_blocklists(&settings)?;
    // The DNS and flow history of the retro-hunt (docs/hunt.md): recorded by the pipeline
    // thread, read by `GET /api/v1/hunt` and the retro-hunt worker.
    let history = settings
        .history
        .clone()
        .map(|cfg| crate::hunt::Recorder::with_background_writes(Arc::new(store.clone()), cfg));
    let phases = shutdown::Phases::default();

    let (events_tx, _) = broadcast::channel::<DetectionEvent>(EVENTS_CAPACITY);
    // Alert sinks: their outboxes open with the store; delivery tasks start now, so the
    // backlog of an earlier run goes out while the inputs start.
    let outputs = crate::output::Outputs::open(&store, &settings.outputs)
        .map_err(|source| ServiceError::Output { source })?;
    let output_tasks = outputs.spawn(shutdown::watch_of(&phases.outputs));
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
    let lists_task = {
        let stop = phases.lists.clone();
        manager.spawn_background(async move { stop.stopped().await })
    };

    // One outbox writer for the alert sinks, shared by the pipeline and the retro-hunt: retro
    // detections reach the sinks (and the event feed) exactly as live ones do.
    let alert_sink = (!outputs.is_empty())
        .then(|| retro::SharedSink::new(Box::new(outputs.writer(store.clone()))));
    // The retro-hunt worker holds the list set it diffs against before the API can change it
    // (a list edit that arrived before the worker existed would never be hunted).
    let retro = match &history {
        Some(h) => crate::hunt::RetroWorker::spawn(crate::hunt::RetroDeps {
            lists: lists.clone(),
            kv: Arc::new(store.clone()),
            sink: Arc::new(retro::RetroRoute {
                store: store.clone(),
                sink: alert_sink.clone(),
                events: events_tx.clone(),
            }),
            recorder: Some(h.clone()),
            engine: engine_config(&settings),
            suppressions: Some({
                let store = store.clone();
                Arc::new(move || store.list_suppressions().map_err(|e| e.to_string()))
            }),
        })
        .map_err(|e| tracing::error!(error = %e, "the retro-hunt worker did not start"))
        .ok(),
        None => None,
    };

    let listener = bind(settings.listen, hooks.listen_fallback).await?;
    let addr = listener.local_addr().map_err(|source| ServiceError::Bind {
        addr: settings.listen,
        source,
    })?;
    if !hooks.json_stderr {
        eprintln!("listening on http://{addr}");
    }
    tracing::info!(%addr, "listening");
    if let Some(f) = hooks.on_listening.take() {
        f(addr);
    }
    let api_task = {
        let stop = phases.api.clone();
        tokio::spawn(api::serve(listener, state.clone(), async move {
            stop.stopped().await
        }))
    };

    // The pipeline thread.
    let (sink, rx) = QueueSink::bounded(OBS_CHANNEL_CAPACITY);
    let importing = Arc::new(AtomicUsize::new(usize::from(!settings.import.is_empty())));
    let pipeline = {
        let engine = Engine::new(engine_config(&settings), lists.clone());
        let mut p = Pipeline::new(engine, Some(store.clone()))
            .map_err(|source| ServiceError::Pipeline { source })?
            .with_events(events_tx.clone());
        if let Some(s) = &alert_sink {
            p = p.with_sink(Box::new(s.clone()));
        }
        let t = pipeline::PipelineThread {
            rx,
            store: store.clone(),
            importing: importing.clone(),
            retention: retention(&settings),
            rt: tokio::runtime::Handle::current(),
            history: history.clone(),
        };
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline::pipeline_loop(p, t))
            .map_err(|source| ServiceError::Thread {
                name: "pipeline".into(),
                source,
            })?
    };

    // Inputs. A start-up failure stops what was started and reports the error.
    let mut running = inputs::Inputs::default();
    if let Err(e) = inputs::start_inputs(
        &settings,
        &store,
        &sink,
        &phases.inputs,
        &importing,
        &mut running,
    ) {
        phases.inputs.stop();
        running.join();
        drop(sink);
        let _ = pipeline.join();
        phases.outputs.stop();
        for t in output_tasks {
            let _ = t.await;
        }
        phases.api.stop();
        let _ = api_task.await;
        phases.lists.stop();
        let _ = lists_task.await;
        let _ = store.flush();
        return Err(e);
    }
    drop(sink);
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
    let _reload = reload::on_ready(&mut hooks, &settings, &manager);

    let maintenance = tokio::spawn(maintenance::maintenance(
        store.clone(),
        phases.inputs.clone(),
    ));

    shutdown.await;
    state.set_ready(false);
    // Phase 1: inputs (their last offsets and held observations go into the queue), then the
    // pipeline drains the queue and flushes; the API answers until the data is durable.
    phases.inputs.stop();
    let _ = maintenance.await;
    let joined = tokio::task::spawn_blocking(move || running.join()).await;
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
    phases.outputs.stop();
    for t in output_tasks {
        let _ = t.await;
    }
    phases.api.stop();
    let _ = api_task.await;
    phases.lists.stop();
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
        Err(source) => Err(ServiceError::Task { source }),
    }
}

/// Opens the list manager: shipped or `--blocklist` lists, persisted user lists and feed
/// copies (the running set), with the manager that the list routes, the `--blocklist` watcher
/// and the feed refresher use. The one place that knows how lists are managed.
pub fn start_blocklists(
    settings: &Settings,
) -> Result<(SharedBlocklists, Arc<ListManager>), ServiceError> {
    let (manager, shared) = ListManager::open(ListManagerConfig::from_settings(settings))
        .map_err(|source| ServiceError::Lists { source })?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
