//! The sensor role: today's producers (live capture, `--follow`, `--dnstap`, `--import`) feed a
//! bounded in-memory publish buffer; one task publishes it in order to `poolwatch.obs.<p>` and
//! waits for JetStream's acks. Nothing is matched or stored here.
//!
//! * Live capture and dnstap never wait: when the buffer is full (NATS down longer than the
//!   buffer lasts) their observations are dropped and counted
//!   (`poolwatch_cluster_dropped_total{reason="buffer_full"}`). Followed logs and imports wait
//!   instead (their data stays in the file), so they lose nothing.
//! * Every message carries a `Nats-Msg-Id` derived from the node, the observation's bytes and
//!   how often those bytes were seen: a batch re-sent after a lost ack, or log lines re-read
//!   after a crash, are stored once by the stream's duplicate window.
//! * A follower's offset travels through the same buffer behind the observations read before
//!   it and is written to the `poolwatch_offsets` bucket only once all of them were acked: a
//!   restarted sensor resumes where acknowledged data ends.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Notify};

use super::nats;
use super::wire;
use super::{ClusterError, ClusterOptions};
use crate::api::{self, AppState, Backend, BackendError};
use crate::capture::{self, CaptureConfig};
use crate::ingest::dnstap::{DnstapListener, ListenAddr};
use crate::ingest::follow::{auto_parser_factory, FollowConfig, Follower};
use crate::ingest::IngestConfig;
use crate::input::{self, InputFormat};
use crate::metrics::{self, Counter, Gauge};
use crate::model::{Detection, Observation, Timestamp};
use crate::ports::{FileOffset, OffsetStore};
use crate::query::{
    DetectionEvent, DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary,
    Suppression,
};

/// Observations published before the task waits for their acks.
pub const PUBLISH_BATCH: usize = 512;
/// Offsets queued behind observations; beyond, an offset is dropped (a later one for the
/// file supersedes it; the restart position is merely older) and counted.
pub const MAX_QUEUED_OFFSETS: usize = 65_536;
/// Distinct observation digests remembered for message ids; at the cap the table is reset.
pub const MAX_ID_DIGESTS: usize = 262_144;
/// Longest pause between publish retries while NATS is unreachable.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);
/// On shutdown, how long the buffer may take to drain before the sensor exits anyway.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(15);
/// Per-interface queue between a live capture thread and the buffer.
const LIVE_CHANNEL_CAPACITY: usize = 1_024;

enum Item {
    Obs {
        subject: String,
        payload: Bytes,
        id: String,
    },
    Offset {
        key: String,
        offset: FileOffset,
    },
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Item>,
    observations: usize,
    offsets: usize,
}

struct Metrics {
    buffered: Gauge,
    published: Counter,
    duplicates: Counter,
    dropped_full: Counter,
    dropped_encode: Counter,
    dropped_offsets: Counter,
    errors: Counter,
    offsets: Counter,
}

impl Metrics {
    fn new(cap: usize) -> Self {
        metrics::gauge(
            "poolwatch_cluster_buffer_capacity",
            "Observations the sensor's publish buffer holds at most.",
            &[],
        )
        .set(i64::try_from(cap).unwrap_or(i64::MAX));
        let dropped = |reason| {
            metrics::counter(
                "poolwatch_cluster_dropped_total",
                "Observations (or offsets) the sensor dropped, by reason.",
                &[("reason", reason)],
            )
        };
        Metrics {
            buffered: metrics::gauge(
                "poolwatch_cluster_buffer_observations",
                "Observations waiting in the sensor's publish buffer.",
                &[],
            ),
            published: metrics::counter(
                "poolwatch_cluster_published_total",
                "Observations acknowledged by JetStream.",
                &[],
            ),
            duplicates: metrics::counter(
                "poolwatch_cluster_publish_duplicates_total",
                "Publishes JetStream recognised as duplicates (retries, re-read log lines).",
                &[],
            ),
            dropped_full: dropped("buffer_full"),
            dropped_encode: dropped("encode"),
            dropped_offsets: dropped("offset_queue_full"),
            errors: metrics::counter(
                "poolwatch_cluster_publish_errors_total",
                "Failed publish rounds (NATS unreachable or slow); the batch is retried.",
                &[],
            ),
            offsets: metrics::counter(
                "poolwatch_cluster_offsets_committed_total",
                "Follower offsets written after their observations were acknowledged.",
                &[],
            ),
        }
    }
}

/// The bounded, ordered buffer between the producers and the publisher.
pub struct PublishBuffer {
    q: Mutex<Queue>,
    not_full: Condvar,
    wake: Notify,
    cap: usize,
    node: String,
    partitions: u16,
    digests: Mutex<HashMap<[u8; 16], u32>>,
    m: Metrics,
}

impl PublishBuffer {
    pub fn new(cap: usize, node: &str, partitions: u16) -> Self {
        PublishBuffer {
            q: Mutex::new(Queue::default()),
            not_full: Condvar::new(),
            wake: Notify::new(),
            cap,
            node: node.to_string(),
            partitions,
            digests: Mutex::new(HashMap::new()),
            m: Metrics::new(cap),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Observations waiting.
    pub fn len(&self) -> usize {
        self.lock().observations
    }

    pub fn is_empty(&self) -> bool {
        self.lock().items.is_empty()
    }

    /// `Nats-Msg-Id`: node, digest of the bytes, occurrence of those bytes.
    fn message_id(&self, payload: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(self.node.as_bytes());
        h.update([0u8]);
        h.update(payload);
        let full = h.finalize();
        let mut d = [0u8; 16];
        d.copy_from_slice(full.get(..16).unwrap_or(&[0u8; 16]));
        let mut seen = self.digests.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= MAX_ID_DIGESTS {
            seen.clear();
        }
        let n = seen.entry(d).or_insert(0);
        let occurrence = *n;
        *n = n.saturating_add(1);
        let mut id = String::with_capacity(40);
        for b in d {
            id.push_str(&format!("{b:02x}"));
        }
        format!("{id}.{occurrence}")
    }

    fn encode(&self, obs: &Observation, kind: u8, partition: u16) -> Option<Item> {
        let payload = match wire::encode_observation(obs, kind) {
            Ok(p) => p,
            Err(e) => {
                self.m.dropped_encode.inc();
                tracing::debug!(error = %e, "observation not encodable");
                return None;
            }
        };
        Some(Item::Obs {
            subject: wire::obs_subject(partition),
            id: self.message_id(&payload),
            payload: Bytes::from(payload),
        })
    }

    /// The message for `obs`, and its context copy when it has one.
    fn items(&self, obs: &Observation) -> (Option<Item>, Option<Item>) {
        let p = wire::partition_of(wire::client_of(obs), self.partitions);
        let main = self.encode(obs, wire::KIND_PRIMARY, p);
        let ctx = wire::context_copy(obs, self.partitions)
            .and_then(|(cp, c)| self.encode(&c, wire::KIND_CONTEXT, cp));
        (main, ctx)
    }

    fn push_locked(&self, q: &mut Queue, it: Item) {
        q.items.push_back(it);
        q.observations += 1;
        self.m.buffered.set(q.observations as i64);
        self.wake.notify_one();
    }

    /// Never waits: a full buffer drops the observation (counted). For live inputs.
    pub fn try_push(&self, obs: &Observation) -> bool {
        let (main, ctx) = self.items(obs);
        let mut q = self.lock();
        if q.observations >= self.cap {
            self.m.dropped_full.inc();
            return true;
        }
        for it in [main, ctx].into_iter().flatten() {
            self.push_locked(&mut q, it);
        }
        true
    }

    /// Waits while the buffer is full; `false` once `stop` is set (the caller stops reading,
    /// and the line is not marked processed). For replayable inputs (files).
    pub fn push_wait(&self, obs: &Observation, stop: &AtomicBool) -> bool {
        let (main, ctx) = self.items(obs);
        let mut q = self.lock();
        while q.observations >= self.cap {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            q = match self.not_full.wait_timeout(q, Duration::from_millis(200)) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
        for it in [main, ctx].into_iter().flatten() {
            self.push_locked(&mut q, it);
        }
        true
    }

    fn push_offset(&self, key: &str, offset: &FileOffset) {
        let mut q = self.lock();
        if let Some(Item::Offset { key: k, offset: o }) = q.items.back_mut() {
            if k == key {
                *o = offset.clone();
                return;
            }
        }
        if q.offsets >= MAX_QUEUED_OFFSETS {
            self.m.dropped_offsets.inc();
            return;
        }
        q.items.push_back(Item::Offset {
            key: key.to_string(),
            offset: offset.clone(),
        });
        q.offsets += 1;
        self.wake.notify_one();
    }

    /// Copies of the first items: up to `PUBLISH_BATCH` observations and the offsets among
    /// them.
    fn peek(&self) -> Vec<Item> {
        let q = self.lock();
        let mut out = Vec::new();
        let mut obs = 0;
        for it in &q.items {
            match it {
                Item::Obs {
                    subject,
                    payload,
                    id,
                } => {
                    if obs == PUBLISH_BATCH {
                        break;
                    }
                    obs += 1;
                    out.push(Item::Obs {
                        subject: subject.clone(),
                        payload: payload.clone(),
                        id: id.clone(),
                    });
                }
                Item::Offset { key, offset } => out.push(Item::Offset {
                    key: key.clone(),
                    offset: offset.clone(),
                }),
            }
        }
        out
    }

    fn pop(&self, n: usize) {
        let mut q = self.lock();
        for _ in 0..n {
            match q.items.pop_front() {
                Some(Item::Obs { .. }) => q.observations = q.observations.saturating_sub(1),
                Some(Item::Offset { .. }) => q.offsets = q.offsets.saturating_sub(1),
                None => break,
            }
        }
        self.m.buffered.set(q.observations as i64);
        drop(q);
        self.not_full.notify_all();
    }
}

/// The KV key of a follower offset: node and followed path, hashed (KV keys are restricted).
fn offset_key(node: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(node.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut s = String::from("o_");
    for b in d.get(..20).unwrap_or(&[]) {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredOffset {
    key: String,
    offset: FileOffset,
}

/// The follower's offsets: loaded from the `poolwatch_offsets` bucket; a save joins the
/// publish buffer and is written by the publisher once what came before it was acked.
struct KvOffsets {
    kv: kv::Store,
    rt: tokio::runtime::Handle,
    node: String,
    buffer: Arc<PublishBuffer>,
    /// Saved but not yet committed: a load in between sees the newest position.
    pending: Mutex<HashMap<String, FileOffset>>,
}

impl OffsetStore for KvOffsets {
    fn load_offset(&self, key: &str) -> Option<FileOffset> {
        if let Some(o) = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
        {
            return Some(o.clone());
        }
        let k = offset_key(&self.node, key);
        let got = self
            .rt
            .block_on(async { tokio::time::timeout(nats::REQUEST_TIMEOUT, self.kv.get(k)).await });
        match got {
            Ok(Ok(Some(v))) => match serde_json::from_slice::<StoredOffset>(&v) {
                Ok(s) if s.key == key => Some(s.offset),
                _ => None,
            },
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, file = key, "cannot load the follower offset");
                None
            }
            Err(_) => {
                tracing::warn!(file = key, "loading the follower offset timed out");
                None
            }
        }
    }

    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String> {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if p.len() >= 4 * crate::ingest::follow::MAX_FOLLOWED_FILES {
                p.clear();
            }
            p.insert(key.to_string(), offset.clone());
        }
        self.buffer.push_offset(key, offset);
        Ok(())
    }
}

/// Publishes the buffer in order until `stop` is set and the buffer is empty (or the drain
/// deadline passed).
async fn publisher(
    js: jetstream::Context,
    offsets: kv::Store,
    node: String,
    buffer: Arc<PublishBuffer>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut delay = Duration::from_millis(100);
    let mut drain_deadline: Option<Instant> = None;
    loop {
        if *stop.borrow() && drain_deadline.is_none() {
            drain_deadline = Some(Instant::now() + SHUTDOWN_DRAIN);
        }
        let items = buffer.peek();
        if items.is_empty() {
            if drain_deadline.is_some() {
                return;
            }
            tokio::select! {
                _ = buffer.wake.notified() => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            continue;
        }
        if drain_deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::warn!(
                left = buffer.len(),
                "shutdown: observations not acknowledged in time (lost unless re-read from files)"
            );
            return;
        }
        // While draining, a round (and its retry pause) ends at the drain deadline.
        let round = publish_round(&js, &offsets, &node, &items, &buffer.m);
        let result = match drain_deadline {
            Some(d) => tokio::time::timeout_at(d.into(), round)
                .await
                .unwrap_or_else(|_| Err("drain deadline reached".to_string())),
            None => round.await,
        };
        match result {
            Ok(()) => {
                buffer.pop(items.len());
                delay = Duration::from_millis(100);
            }
            Err(e) => {
                buffer.m.errors.inc();
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "publish failed; retrying");
                let pause = drain_deadline.map_or(delay, |d| {
                    delay.min(d.saturating_duration_since(Instant::now()))
                });
                tokio::time::sleep(pause).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
}

async fn publish_round(
    js: &jetstream::Context,
    offsets: &kv::Store,
    node: &str,
    items: &[Item],
    m: &Metrics,
) -> Result<(), String> {
    let mut acks = Vec::with_capacity(items.len());
    for it in items {
        if let Item::Obs {
            subject,
            payload,
            id,
        } = it
        {
            let msg = jetstream::message::PublishMessage::build()
                .payload(payload.clone())
                .message_id(id);
            let f =
                tokio::time::timeout(nats::REQUEST_TIMEOUT, js.send_publish(subject.clone(), msg))
                    .await
                    .map_err(|_| "publish timed out".to_string())?
                    .map_err(|e| e.to_string())?;
            acks.push(f);
        }
    }
    for f in acks {
        let ack = f.await.map_err(|e| e.to_string())?;
        m.published.inc();
        if ack.duplicate {
            m.duplicates.inc();
        }
    }
    // Every observation before each offset is acknowledged: the offsets may be committed.
    for it in items {
        if let Item::Offset { key, offset } = it {
            let v = serde_json::to_vec(&StoredOffset {
                key: key.clone(),
                offset: offset.clone(),
            })
            .map_err(|e| e.to_string())?;
            tokio::time::timeout(
                nats::REQUEST_TIMEOUT,
                offsets.put(offset_key(node, key), v.into()),
            )
            .await
            .map_err(|_| "offset commit timed out".to_string())?
            .map_err(|e| e.to_string())?;
            m.offsets.inc();
        }
    }
    Ok(())
}

/// Serves health, readiness and metrics only: a sensor has no detections.
struct NoDetections;

impl Backend for NoDetections {
    fn list_detections(
        &self,
        _: &DetectionFilter,
        _: usize,
        _: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        })
    }
    fn get_detection(&self, _: &str) -> Result<Option<Detection>, BackendError> {
        Ok(None)
    }
    fn host_timeline(&self, _: std::net::IpAddr, _: usize) -> Result<HostTimeline, BackendError> {
        Err(BackendError::Other(
            "a sensor keeps no detections; ask an API node".into(),
        ))
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        Ok(Vec::new())
    }
    fn add_suppression(&self, _: NewSuppression) -> Result<Suppression, BackendError> {
        Err(BackendError::Other("suppressions live on API nodes".into()))
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Ok(Vec::new())
    }
    fn delete_suppression(&self, _: &str) -> Result<bool, BackendError> {
        Ok(false)
    }
    fn pool_ips(&self, _: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Ok(Vec::new())
    }
}

#[derive(Default)]
struct Inputs {
    threads: Vec<(String, JoinHandle<()>)>,
    live: Vec<capture::live::LiveHandle>,
}

fn spawn(
    name: String,
    f: Box<dyn FnOnce() + Send>,
) -> Result<(String, JoinHandle<()>), ClusterError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map(|h| (name, h))
        .map_err(|e| ClusterError::Internal(e.to_string()))
}

fn start_inputs(
    o: &ClusterOptions,
    buffer: &Arc<PublishBuffer>,
    offsets: &kv::Store,
    stop: &Arc<AtomicBool>,
    inputs: &mut Inputs,
) -> Result<(), ClusterError> {
    let input_err = |what: &str, e: &dyn std::fmt::Display| ClusterError::Input {
        what: what.to_string(),
        message: e.to_string(),
    };
    for iface in &o.inputs.interfaces {
        let mut cfg = capture::live::LiveConfig::new(iface.clone());
        cfg.bpf_filter = o.inputs.bpf.clone();
        let (ltx, mut lrx) = mpsc::channel::<Observation>(LIVE_CHANNEL_CAPACITY);
        let h = capture::live::spawn(cfg, ltx, stop.clone())
            .map_err(|e| input_err("live capture", &e))?;
        let b = buffer.clone();
        tokio::spawn(async move {
            while let Some(obs) = lrx.recv().await {
                b.try_push(&obs);
            }
        });
        tracing::info!(interface = %iface, "live capture started");
        inputs.live.push(h);
    }
    if !o.inputs.follow.is_empty() {
        let store = Arc::new(KvOffsets {
            kv: offsets.clone(),
            rt: tokio::runtime::Handle::current(),
            node: o.node.clone(),
            buffer: buffer.clone(),
            pending: Mutex::new(HashMap::new()),
        });
        let patterns = o.inputs.follow.clone();
        let (b, stop) = (buffer.clone(), stop.clone());
        // The follower loads its offsets (KV reads) while it is built: on its own thread.
        inputs.threads.push(spawn(
            "follow".into(),
            Box::new(move || {
                let follower = Follower::new(
                    &patterns,
                    FollowConfig::default(),
                    auto_parser_factory(None, IngestConfig::default()),
                    Some(store as Arc<dyn OffsetStore>),
                );
                let mut follower = match follower {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot follow logs");
                        return;
                    }
                };
                tracing::info!(patterns = ?patterns, files = follower.files().len(), "following logs");
                let stop2 = stop.clone();
                let mut sink = move |obs: Observation| b.push_wait(&obs, &stop2);
                let st = follower.run(&mut sink, &stop);
                tracing::info!(lines = st.lines, observations = st.observations, "follower stopped");
            }),
        )?);
    }
    for spec in &o.inputs.dnstap {
        let addr = ListenAddr::parse(spec).ok_or_else(|| {
            input_err("dnstap", &format!("{spec:?} is not unix:PATH or tcp:ADDR"))
        })?;
        let l = DnstapListener::bind(&addr).map_err(|e| input_err("dnstap", &e))?;
        tracing::info!(addr = %spec, "dnstap listening");
        let (b, stop) = (buffer.clone(), stop.clone());
        inputs.threads.push(spawn(
            format!("dnstap {spec}"),
            Box::new(move || {
                let sink = move |obs: Observation| b.try_push(&obs);
                if let Err(e) = l.run(sink, stop) {
                    tracing::error!(error = %e, "dnstap listener stopped");
                }
            }),
        )?);
    }
    if !o.inputs.import.is_empty() {
        let (ccfg, icfg) = (CaptureConfig::default(), IngestConfig::default());
        let mut readers = Vec::with_capacity(o.inputs.import.len());
        for p in &o.inputs.import {
            let r = input::open(p, InputFormat::Auto, &ccfg, &icfg)
                .map_err(|e| input_err(&format!("import {}", p.display()), &e))?;
            readers.push(r);
        }
        let (b, stop) = (buffer.clone(), stop.clone());
        inputs.threads.push(spawn(
            "import".into(),
            Box::new(move || {
                let started = Instant::now();
                let mut n = 0u64;
                for obs in input::merge_by_time(readers) {
                    if !b.push_wait(&obs, &stop) {
                        tracing::warn!(observations = n, "import interrupted by shutdown");
                        return;
                    }
                    n += 1;
                }
                metrics::counter(
                    "poolwatch_cluster_imports_finished_total",
                    "Imports a sensor has read to the end.",
                    &[],
                )
                .inc();
                tracing::info!(
                    observations = n,
                    secs = started.elapsed().as_secs_f64(),
                    "import finished"
                );
            }),
        )?);
    }
    Ok(())
}

/// Runs a sensor until `shutdown`, then stops the inputs and drains the buffer.
pub async fn run<F>(o: ClusterOptions, shutdown: F) -> Result<(), ClusterError>
where
    F: std::future::Future<Output = ()> + Send,
{
    let n = nats::connect(&o.url, &o.node).await?;
    nats::obs_stream(&n, &o.streams).await?;
    let partitions = nats::agree_partitions(&n, o.partitions).await?;
    let offsets = nats::bucket(&n, nats::OFFSET_BUCKET, Duration::ZERO).await?;
    let buffer = Arc::new(PublishBuffer::new(o.publish_buffer, &o.node, partitions));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let publisher = tokio::spawn(publisher(
        n.js.clone(),
        offsets.clone(),
        o.node.clone(),
        buffer.clone(),
        stop_rx,
    ));

    let (events, _) = tokio::sync::broadcast::channel::<DetectionEvent>(1);
    let state = AppState::new(
        Arc::new(NoDetections) as Arc<dyn Backend>,
        crate::matcher::shared(crate::matcher::Blocklists::empty()),
        events,
        o.api.clone(),
    );
    let listener = super::bind(o.listen).await?;
    let (api_stop_tx, mut api_stop_rx) = tokio::sync::watch::channel(false);
    let api_task = tokio::spawn(api::serve(listener, state.clone(), async move {
        let _ = api_stop_rx.wait_for(|v| *v).await;
    }));

    let stop = Arc::new(AtomicBool::new(false));
    let mut inputs = Inputs::default();
    let started = start_inputs(&o, &buffer, &offsets, &stop, &mut inputs);
    if started.is_ok() {
        state.set_ready(true);
        tracing::info!(partitions, "sensor ready");
        shutdown.await;
    }
    state.set_ready(false);
    stop.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        for h in inputs.live {
            let _ = h.join();
        }
        for (name, t) in inputs.threads {
            if t.join().is_err() {
                tracing::error!(input = %name, "input thread panicked");
            }
        }
    })
    .await;
    // The inputs' last observations and offsets are queued: publish them, then exit.
    let _ = stop_tx.send(true);
    let _ = publisher.await;
    let _ = api_stop_tx.send(true);
    let _ = api_task.await;
    nats::drain_step(&n.client, "flush", n.client.flush()).await;
    started?;
    tracing::info!("sensor stopped");
    Ok(())
}
