//! Stage `output`: pushes detections to SIEMs, log pipelines and chat/ticketing hooks.
//!
//! ```text
//!  Pipeline::flush ──(ports::DetectionSink)──> OutboxWriter: policy, rate limit
//!        │                                         │ one sled outbox per sink (store::outbox),
//!        └── store.flush() (detections + outbox entries durable together)
//!                                                  ▼
//!                      per-sink delivery task (tokio): peek → render → Sink::deliver → ack
//!                      file (JSON lines) · syslog (UDP/TCP/TLS; JSON/CEF/LEEF) · webhook (HTTPS)
//! ```
//!
//! * Delivery is at least once: an entry leaves its outbox only when the sink acknowledged it
//!   (file written and, by default, fsynced; TCP/TLS written and flushed; HTTP 2xx). A crash
//!   re-delivers what was not acknowledged (a receiver may see a duplicate, never a gap); every
//!   record carries a stable event id (`<detection id>-<sequence>`) to dedupe on.
//! * A sink that is down delays only itself: the pipeline writes to the outbox and moves on. The
//!   outbox is bounded ([`DEFAULT_MAX_BACKLOG`], [`DEFAULT_MAX_BACKLOG_BYTES`]); what overflows is
//!   counted (`dropped`), logged and shown in `/metrics` and `GET /api/v1/outputs`.
//! * Record shapes are pure functions in [`format`], shared with `scan --output ecs|eve`.
//! * New transports (NATS, Kafka) implement [`Sink`]; nothing else changes.
//!
//! Configuration: [`config`]; operation and SIEM recipes: `docs/outputs.md`.

pub mod config;
pub mod detection_json;
mod file;
pub mod format;
mod status;
mod syslog;
mod webhook;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Notify};

pub use config::{OutputConfig, OutputSettings, SinkKind, Target};
pub use format::{Format, Observer};
pub use status::OutputStatus;
use status::{SinkMetrics, SinkShared, StatusInner};
pub use webhook::hmac_sha256;

use crate::metrics::{self, Counter, Gauge};
use crate::model::{Detection, Timestamp};
use crate::ports::{ChangeKind, DetectionChange, DetectionSink};
use crate::store::{Outbox, Store};

/// Default outbox cap in records per sink: a day of a busy site's new incidents and upgrades
/// many times over, while a receiver is down.
pub const DEFAULT_MAX_BACKLOG: u64 = 100_000;
/// Default outbox cap in bytes per sink (records are a few KiB of JSON each).
pub const DEFAULT_MAX_BACKLOG_BYTES: u64 = 256 << 20;
/// Records handed to a sink per delivery attempt.
pub const DELIVERY_BATCH: usize = 256;
/// First retry delay after a failed delivery; doubles per failure up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between two delivery attempts (also the cap on a receiver's `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often an idle sink looks at its outbox even without a wake-up (entries written by an
/// earlier run, missed notifications).
pub const IDLE_POLL: Duration = Duration::from_secs(1);
/// On a clean stop, how long the sinks may keep delivering what is queued; the rest stays in
/// the outbox for the next start.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);
/// Least time between two "outbox full" warnings of one sink (the count is exact regardless).
const OVERFLOW_LOG_EVERY: Duration = Duration::from_secs(10);

/// Errors of the output stage (start-up; delivery errors are retried and reported in status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("output {name}: {message}")]
    Open { name: String, message: String },
    #[error("output store: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// What an outbox entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    New,
    Upgrade,
    Update,
    /// A sink's rate limit kicked in (or a window with suppressed records ended).
    RateLimited,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Upgrade => "upgrade",
            EventKind::Update => "update",
            EventKind::RateLimited => "rate_limited",
        }
    }
}

impl From<ChangeKind> for EventKind {
    fn from(k: ChangeKind) -> Self {
        match k {
            ChangeKind::New => EventKind::New,
            ChangeKind::Upgraded => EventKind::Upgrade,
            ChangeKind::Updated => EventKind::Update,
        }
    }
}

/// The rate-limit summary carried by an [`EventKind::RateLimited`] event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimitNote {
    pub sink: String,
    pub limit: u32,
    pub window_secs: u64,
    /// Records not sent in the window that ended (0: the limit just kicked in).
    pub suppressed: u64,
    /// Start of the window.
    pub since: Timestamp,
}

/// One outbox entry: a detection change (or a rate-limit note) with its sequence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputEvent {
    pub kind: EventKind,
    /// Unique, increasing across restarts (`Store::next_event_seq`).
    pub seq: u64,
    /// When poolwatch made the record (stable across re-deliveries).
    pub created: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitNote>,
}

impl OutputEvent {
    /// A detection change as a record (what `scan --output ecs|eve` renders, with `seq` 0).
    pub fn detection(kind: EventKind, seq: u64, created: Timestamp, d: Detection) -> Self {
        OutputEvent {
            kind,
            seq,
            created,
            detection: Some(d),
            rate_limit: None,
        }
    }

    /// The stable id receivers dedupe on: `<detection id>-<sequence>`.
    pub fn event_id(&self) -> String {
        match &self.detection {
            Some(d) => format!("{}-{}", d.id, self.seq),
            None => format!("poolwatch-{}-{}", self.kind.as_str(), self.seq),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The sink interface
// ---------------------------------------------------------------------------------------------

/// Why a delivery stopped short.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The receiver is unreachable or failing: retry later (after `retry_after` when it said so).
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The receiver refused the first unacknowledged record for good (HTTP 400/413/422): retried
    /// a few times, then dropped and counted.
    Rejected { message: String },
}

impl SinkError {
    pub fn transient(m: impl Into<String>) -> Self {
        SinkError::Transient {
            message: m.into(),
            retry_after: None,
        }
    }
    fn message(&self) -> &str {
        match self {
            SinkError::Transient { message, .. } | SinkError::Rejected { message } => message,
        }
    }
}

/// What one delivery attempt achieved: the first `acked` records are acknowledged.
#[derive(Debug)]
pub struct Delivery {
    pub acked: usize,
    pub error: Option<SinkError>,
}

impl Delivery {
    pub fn all(n: usize) -> Self {
        Delivery {
            acked: n,
            error: None,
        }
    }
}

/// A transport. The delivery task hands it batches in outbox order; it renders and sends them
/// and reports how many (a prefix) the receiver acknowledged.
pub trait Sink: Send {
    fn deliver<'a>(&'a mut self, events: &'a [OutputEvent]) -> BoxFuture<'a, Delivery>;
    /// SIGHUP: reopen files / reconnect.
    fn reopen(&mut self) {}
}

// ---------------------------------------------------------------------------------------------
// Policy and rate limit
// ---------------------------------------------------------------------------------------------

/// Which changes a sink receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub min_stage: crate::model::Stage,
    pub min_risk: u8,
    pub include_suppressed: bool,
    pub on_new: bool,
    pub on_upgrade: bool,
    pub on_update: bool,
}

impl Default for Policy {
    /// New incidents and stage upgrades of every stage and risk, unsuppressed only.
    fn default() -> Self {
        Policy {
            min_stage: crate::model::Stage::Lookup,
            min_risk: 0,
            include_suppressed: false,
            on_new: true,
            on_upgrade: true,
            on_update: false,
        }
    }
}

impl Policy {
    pub fn accepts(&self, kind: ChangeKind, d: &Detection) -> bool {
        let on = match kind {
            ChangeKind::New => self.on_new,
            ChangeKind::Upgraded => self.on_upgrade,
            ChangeKind::Updated => self.on_update,
        };
        on && d.stage >= self.min_stage
            && d.risk_score >= self.min_risk
            && (self.include_suppressed || !d.suppressed)
    }
}

/// `limit` records per `window` per sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: u32,
    #[serde(serialize_with = "ser_secs")]
    pub window: Duration,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

struct Limiter {
    cfg: RateLimit,
    start: Instant,
    start_ts: Timestamp,
    sent: u32,
    suppressed: u64,
}

enum Admit {
    Yes,
    /// Over the limit; `true` the first time in this window (announce it).
    No(bool),
}

impl Limiter {
    fn new(cfg: RateLimit) -> Self {
        Limiter {
            cfg,
            start: Instant::now(),
            start_ts: Timestamp::now(),
            sent: 0,
            suppressed: 0,
        }
    }

    /// Ends the window when it is over; returns the summary of a window that suppressed.
    fn roll(&mut self, sink: &str) -> Option<RateLimitNote> {
        if self.start.elapsed() < self.cfg.window {
            return None;
        }
        let note = (self.suppressed > 0).then(|| self.note(sink, self.suppressed));
        self.start = Instant::now();
        self.start_ts = Timestamp::now();
        self.sent = 0;
        self.suppressed = 0;
        note
    }

    fn admit(&mut self) -> Admit {
        if self.sent < self.cfg.limit {
            self.sent += 1;
            return Admit::Yes;
        }
        self.suppressed += 1;
        Admit::No(self.suppressed == 1)
    }

    fn note(&self, sink: &str, suppressed: u64) -> RateLimitNote {
        RateLimitNote {
            sink: sink.to_string(),
            limit: self.cfg.limit,
            window_secs: self.cfg.window.as_secs(),
            suppressed,
            since: self.start_ts,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The stage
// ---------------------------------------------------------------------------------------------

/// The configured sinks: their outboxes, status and delivery tasks. Cheap to clone.
#[derive(Clone, Default)]
pub struct Outputs {
    sinks: Vec<Arc<SinkShared>>,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.sinks.iter().map(|s| &s.settings.name))
            .finish()
    }
}

impl Outputs {
    /// Opens the outbox of every configured sink. Warns about outboxes in the database whose
    /// sink is no longer configured (their backlog is kept, not delivered).
    pub fn open(store: &Store, settings: &[OutputSettings]) -> Result<Outputs, OutputError> {
        let mut sinks = Vec::with_capacity(settings.len());
        for s in settings {
            let outbox = store.outbox(&s.name, s.limits)?;
            let sh = SinkShared {
                settings: s.clone(),
                outbox,
                notify: Notify::new(),
                status: Mutex::new(StatusInner::default()),
                rate_limited: AtomicU64::new(0),
                metrics: SinkMetrics::new(&s.name),
            };
            sh.gauges();
            if !sh.outbox.is_empty() {
                tracing::info!(sink = %s.name, backlog = sh.outbox.len(), "output: delivering the backlog of an earlier run");
            }
            sinks.push(Arc::new(sh));
        }
        for (name, len) in store.outbox_names() {
            if len > 0 && !settings.iter().any(|s| s.name == name) {
                tracing::warn!(sink = %name, backlog = len, "output: an outbox in the database has no configured sink; its records wait until a sink of that name is configured again");
            }
        }
        Ok(Outputs { sinks })
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }

    /// The pipeline hook: writes accepted changes to the outboxes (same flush as the store).
    pub fn writer(&self, store: Store) -> OutboxWriter {
        OutboxWriter {
            store,
            sinks: self
                .sinks
                .iter()
                .map(|s| WriterSink {
                    limiter: s.settings.rate_limit.map(Limiter::new),
                    shared: s.clone(),
                    last_overflow_log: None,
                    overflow_since_log: 0,
                })
                .collect(),
        }
    }

    /// Status of every sink, in configuration order.
    pub fn status(&self) -> Vec<OutputStatus> {
        self.sinks.iter().map(|s| s.status()).collect()
    }

    /// Starts one delivery task per sink (and a SIGHUP listener that makes file sinks reopen).
    /// The tasks run until `stop` turns true, then deliver what is queued for at most
    /// [`SHUTDOWN_DRAIN`].
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<tokio::task::JoinHandle<()>> {
        let (hup_tx, _) = tokio::sync::broadcast::channel::<()>(4);
        let mut tasks = Vec::new();
        if self
            .sinks
            .iter()
            .any(|s| s.settings.kind() == SinkKind::File)
        {
            let tx = hup_tx.clone();
            let mut stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    tracing::warn!("output: cannot listen for SIGHUP; file sinks still reopen when their file is moved");
                    return;
                };
                loop {
                    tokio::select! {
                        r = hup.recv() => {
                            if r.is_none() { return; }
                            tracing::info!("SIGHUP: reopening output files");
                            let _ = tx.send(());
                        }
                        _ = stop.wait_for(|v| *v) => return,
                    }
                }
            }));
        }
        for s in &self.sinks {
            let observer = Arc::new(Observer::local(s.settings.observer_name.as_deref()));
            let sink = build_sink(&s.settings, observer);
            tasks.push(tokio::spawn(run_sink(
                s.clone(),
                sink,
                stop.clone(),
                hup_tx.subscribe(),
            )));
        }
        tasks
    }
}

fn build_sink(s: &OutputSettings, observer: Arc<Observer>) -> Box<dyn Sink> {
    match &s.target {
        Target::File { path, fsync } => Box::new(file::FileSink::new(
            path.clone(),
            *fsync,
            s.format,
            observer,
        )),
        Target::Syslog(cfg) => Box::new(syslog::SyslogSink::new(cfg.clone(), s.format, observer)),
        Target::Webhook(cfg) => {
            Box::new(webhook::WebhookSink::new(cfg.clone(), s.format, observer))
        }
    }
}

struct WriterSink {
    shared: Arc<SinkShared>,
    limiter: Option<Limiter>,
    last_overflow_log: Option<Instant>,
    overflow_since_log: u64,
}

impl WriterSink {
    fn push(&mut self, seq: u64, bytes: &[u8]) -> Result<(), String> {
        let sh = &self.shared;
        let took = sh.outbox.push(seq, bytes).map_err(|e| e.to_string())?;
        if !took {
            sh.metrics.dropped_overflow.inc();
            self.overflow_since_log += 1;
            if self
                .last_overflow_log
                .is_none_or(|t| t.elapsed() >= OVERFLOW_LOG_EVERY)
            {
                tracing::warn!(
                    sink = %sh.settings.name,
                    backlog = sh.outbox.len(),
                    backlog_bytes = sh.outbox.bytes(),
                    dropped = self.overflow_since_log,
                    dropped_total = sh.outbox.dropped(),
                    "output: outbox full, records dropped (raise max_backlog or fix the receiver)"
                );
                self.last_overflow_log = Some(Instant::now());
                self.overflow_since_log = 0;
            }
        }
        Ok(())
    }
}

/// [`DetectionSink`] over the outboxes: applies each sink's policy and rate limit and writes
/// the accepted changes, before the store flush.
pub struct OutboxWriter {
    store: Store,
    sinks: Vec<WriterSink>,
}

impl OutboxWriter {
    /// Takes the store, not `self`, so that it can run while a sink is borrowed.
    fn note_event(store: &Store, note: RateLimitNote) -> Result<(u64, Vec<u8>), String> {
        let ev = OutputEvent {
            kind: EventKind::RateLimited,
            seq: store.next_event_seq().map_err(|e| e.to_string())?,
            created: Timestamp::now(),
            detection: None,
            rate_limit: Some(note),
        };
        let bytes = serde_json::to_vec(&ev).map_err(|e| e.to_string())?;
        Ok((ev.seq, bytes))
    }
}

impl DetectionSink for OutboxWriter {
    fn wants_updates(&self) -> bool {
        self.sinks
            .iter()
            .any(|s| s.shared.settings.policy.on_update)
    }

    fn persist(&mut self, changes: &[DetectionChange<'_>]) -> Result<(), String> {
        let created = Timestamp::now();
        for c in changes {
            if !self
                .sinks
                .iter()
                .any(|s| s.shared.settings.policy.accepts(c.kind, c.detection))
            {
                continue;
            }
            let ev = OutputEvent::detection(
                c.kind.into(),
                self.store.next_event_seq().map_err(|e| e.to_string())?,
                created,
                c.detection.clone(),
            );
            let bytes = serde_json::to_vec(&ev).map_err(|e| e.to_string())?;
            for sink in &mut self.sinks {
                if !sink.shared.settings.policy.accepts(c.kind, c.detection) {
                    continue;
                }
                let name = sink.shared.settings.name.clone();
                let (ended, admit) = match sink.limiter.as_mut() {
                    Some(l) => (l.roll(&name), l.admit()),
                    None => (None, Admit::Yes),
                };
                if let Some(note) = ended {
                    let (seq, b) = Self::note_event(&self.store, note)?;
                    sink.push(seq, &b)?;
                }
                match admit {
                    Admit::Yes => sink.push(ev.seq, &bytes)?,
                    Admit::No(first) => {
                        let sh = &sink.shared;
                        sh.rate_limited.fetch_add(1, Ordering::Relaxed);
                        sh.metrics.rate_limited.inc();
                        if first {
                            tracing::warn!(sink = %name, "output: rate limit reached; records are counted, not sent, until the window ends");
                            let note = sink.limiter.as_ref().map(|l| l.note(&name, 0));
                            if let Some(note) = note {
                                let (seq, b) = Self::note_event(&self.store, note)?;
                                sink.push(seq, &b)?;
                            }
                        }
                    }
                }
            }
        }
        for s in &self.sinks {
            s.shared.gauges();
        }
        Ok(())
    }

    fn durable(&mut self) {
        for s in &self.sinks {
            s.shared.notify.notify_one();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The delivery task
// ---------------------------------------------------------------------------------------------

/// Exponential backoff with full jitter (0.5–1.0 × the current step).
struct Backoff {
    step: Duration,
    rng: u64,
}

impl Backoff {
    fn new() -> Self {
        let seed = Timestamp::now().as_micros() as u64 | 1;
        Backoff {
            step: INITIAL_BACKOFF,
            rng: seed,
        }
    }
    fn reset(&mut self) {
        self.step = INITIAL_BACKOFF;
    }
    fn next(&mut self) -> Duration {
        // xorshift64: jitter only, not security.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = 0.5 + (self.rng % 1000) as f64 / 2000.0;
        let d = self.step.mul_f64(frac);
        self.step = (self.step * 2).min(MAX_BACKOFF);
        d
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Waits for a SIGHUP broadcast (true: reopen). Without a sender (no file sinks, or the
/// listener ended) it never resolves, so an idle sink does not spin.
async fn next_hup(h: &mut Option<tokio::sync::broadcast::Receiver<()>>) -> bool {
    use tokio::sync::broadcast::error::RecvError;
    match h {
        Some(r) => match r.recv().await {
            Ok(()) | Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => {
                *h = None;
                false
            }
        },
        None => std::future::pending().await,
    }
}

async fn run_sink(
    sh: Arc<SinkShared>,
    mut sink: Box<dyn Sink>,
    mut stop: watch::Receiver<bool>,
    hup: tokio::sync::broadcast::Receiver<()>,
) {
    let mut hup = Some(hup);
    let name = sh.settings.name.clone();
    let max_rejects = sh.settings.max_retries;
    let mut backoff = Backoff::new();
    let mut head_rejects: (u64, u32) = (u64::MAX, 0);
    let mut drain_until: Option<Instant> = None;
    loop {
        // A dropped sender means the service is gone: stop as well.
        if drain_until.is_none() && (*stop.borrow() || stop.has_changed().is_err()) {
            drain_until = Some(Instant::now() + SHUTDOWN_DRAIN);
        }
        if drain_until.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        let ob = sh.outbox.clone();
        let Some(Ok(entries)) = blocking(move || ob.peek(DELIVERY_BATCH)).await else {
            tracing::error!(sink = %name, "output: cannot read the outbox");
            if drain_until.is_some() {
                break;
            }
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        };
        if entries.is_empty() {
            if drain_until.is_some() {
                break;
            }
            {
                let mut st = sh.status.lock().unwrap_or_else(|e| e.into_inner());
                if st.state.is_empty() {
                    st.state = "idle";
                }
            }
            tokio::select! {
                _ = sh.notify.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                reopen = next_hup(&mut hup) => if reopen { sink.reopen() },
                _ = stop.changed() => {}
            }
            continue;
        }
        let mut events = Vec::with_capacity(entries.len());
        let mut seqs = Vec::with_capacity(entries.len());
        let mut bad = Vec::new();
        for (seq, bytes) in entries {
            match serde_json::from_slice::<OutputEvent>(&bytes) {
                Ok(ev) => {
                    events.push(ev);
                    seqs.push(seq);
                }
                // Written by this module, so only a damaged entry lands here: count, skip.
                Err(e) => {
                    tracing::error!(sink = %name, seq, error = %e, "output: undecodable outbox entry dropped");
                    bad.push(seq);
                }
            }
        }
        if !bad.is_empty() {
            sh.metrics.dropped_rejected.add(bad.len() as u64);
            let ob = sh.outbox.clone();
            let _ = blocking(move || ob.reject(&bad)).await;
        }
        if events.is_empty() {
            continue;
        }
        let d = if drain_until.is_some() {
            sink.deliver(&events).await
        } else {
            tokio::select! {
                d = sink.deliver(&events) => d,
                // Stop: abandon the attempt (the records stay in the outbox), then drain.
                _ = stop.changed() => continue,
            }
        };
        let acked: Vec<u64> = seqs.iter().take(d.acked).copied().collect();
        if !acked.is_empty() {
            let n = acked.len() as u64;
            let ob = sh.outbox.clone();
            match blocking(move || ob.ack(&acked)).await {
                Some(Ok(())) => sh.metrics.delivered.add(n),
                _ => {
                    tracing::error!(sink = %name, "output: cannot remove delivered records (they may be sent again)")
                }
            }
        }
        match d.error {
            None => {
                sh.set_ok();
                backoff.reset();
            }
            Some(e) => {
                sh.set_error(&e);
                let wait = match &e {
                    SinkError::Transient { retry_after, .. } => {
                        tracing::warn!(sink = %name, error = e.message(), "output: delivery failed; retrying");
                        retry_after.map_or_else(|| backoff.next(), |r| r.min(MAX_BACKOFF))
                    }
                    SinkError::Rejected { message } => {
                        let head = seqs.get(d.acked).copied().unwrap_or(u64::MAX);
                        if head_rejects.0 == head {
                            head_rejects.1 += 1;
                        } else {
                            head_rejects = (head, 1);
                        }
                        if head_rejects.1 > max_rejects {
                            tracing::error!(sink = %name, seq = head, error = %message, "output: the receiver refused a record for good; dropped");
                            sh.metrics.dropped_rejected.inc();
                            let ob = sh.outbox.clone();
                            let _ = blocking(move || ob.reject(&[head])).await;
                            head_rejects = (u64::MAX, 0);
                            Duration::ZERO
                        } else {
                            tracing::warn!(sink = %name, error = %message, attempt = head_rejects.1, "output: the receiver refused a record; retrying");
                            backoff.next()
                        }
                    }
                };
                if drain_until.is_some() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        sh.gauges();
    }
    sh.gauges();
    let mut s = sh.status.lock().unwrap_or_else(|e| e.into_inner());
    s.state = "stopped";
    tracing::info!(sink = %name, backlog = sh.outbox.len(), "output stopped");
}

#[cfg(test)]
mod tests;
