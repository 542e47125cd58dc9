//! The correlator role: claims partitions ([`super::lease`]), reads each through the durable
//! pull consumer `corr-p<N>` (shared by all correlators, so a new owner resumes where the old
//! one's acks end), and runs today's pipeline (matcher, engine, sled store) on one thread.
//!
//! Acknowledgement (at least once): an observation is acked only when
//! 1. the engine's reorder hold has released any incident it opened: the engine's clock
//!    (observation time) has passed its time + the reorder window + [`ACK_MARGIN_SECS`], or — for
//!    a quiet partition whose clock does not move — [`ACK_HOLD`] of wall time has passed since
//!    it was pushed (as for the single box's follower offsets),
//! 2. the partition's position (`cluster/partition/<N>` in the store's offsets) and the
//!    pipeline's batch were flushed (fsync), and
//! 3. the detection updates of that flush were acknowledged by `POOLWATCH_DETECTIONS`.
//!
//! A new owner first replays the stream between its own stored position and the consumer's
//! last delivery (what other owners handled, acked or — a dead owner's — not yet), so the
//! partition's bindings and incidents are rebuilt before new messages arrive; the server's
//! later redelivery of the unacked ones is acked without being pushed twice; detection ids are deterministic (client, entry, first seen), so
//! the rebuilt incidents are the same detections and the API view keeps the most advanced copy.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::Acker};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::lease::{self, Leases};
use super::nats::{self, Nats};
use super::updates::{publish_updates, ChangedIds, UpdateSink};
use super::wire;
use super::{ClusterError, ClusterOptions};
use crate::api::{self, AppState, Backend};
use crate::correlate::{Engine, Pipeline};
use crate::metrics::{self, Counter, Gauge};
use crate::model::{Observation, Timestamp};
use crate::ports::{FileOffset, OffsetStore};
use crate::query::DetectionEvent;
use crate::store::Store;

/// How long after its push an observation is acked (see the module docs): longer than the
/// engine's reorder hold (5 s of observation time) plus a flush.
pub const ACK_HOLD: Duration = Duration::from_secs(10);
/// Added to the reorder window when the engine's clock decides an observation is released.
pub const ACK_MARGIN_SECS: i64 = 1;
/// Ack cycles (flush + publish + acks) released by the engine's clock come at most this often;
/// a replay at full speed would otherwise fsync after every batch.
pub const ACK_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// JetStream redelivers an unacked message after this (must exceed `ACK_HOLD` + a flush).
pub const ACK_WAIT: Duration = Duration::from_secs(60);
/// Unacked messages per partition consumer; the server stops delivering beyond (back-pressure).
pub const MAX_ACK_PENDING: i64 = 8_192;
/// Messages per pull request.
pub const FETCH_BATCH: usize = 256;
/// A pull request waits this long for messages.
pub const FETCH_EXPIRES: Duration = Duration::from_secs(1);
/// Deliveries queued between the consumers and the pipeline thread.
pub const DELIVERY_CAPACITY: usize = 8_192;
/// After its first heartbeat a correlator waits this long before claiming, so nodes that start
/// together see each other and split the partitions instead of racing for all of them.
pub const STARTUP_GRACE: Duration = Duration::from_secs(2);
/// How often the pipeline thread wakes up without deliveries.
const TICK: Duration = Duration::from_millis(100);
/// Observations pushed per wake-up before the clock is looked at again.
const BATCH: usize = 512;

/// Wall-clock milliseconds since the Unix epoch (claim log lines: takeover timing).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn marker_key(p: u16) -> String {
    format!("cluster/partition/{p}")
}

/// One message for the pipeline thread.
struct Delivery {
    partition: u16,
    seq: u64,
    /// `None`: a redelivery of a message this node already pushed (only its ack is due).
    obs: Option<Observation>,
    /// `None` for replayed messages (they belong to another owner's acks).
    acker: Option<Acker>,
}

/// A pushed delivery waiting for its ack.
struct Pending {
    pushed: Instant,
    /// Its observation's time (`Timestamp::MIN` without one).
    ts: Timestamp,
    partition: u16,
    seq: u64,
    acker: Acker,
}

/// Observations before this time have left the engine's reorder hold.
fn released_before(p: &Pipeline) -> Timestamp {
    let e = p.engine();
    e.watermark().plus_secs(
        -(e.config()
            .reorder_window_secs
            .saturating_add(ACK_MARGIN_SECS)),
    )
}

pub(crate) struct Metrics {
    consumed: Counter,
    redelivered: Counter,
    context: Counter,
    replayed: Counter,
    bad: HashMap<&'static str, Counter>,
    acked: Counter,
    pub(crate) published: Counter,
    pub(crate) publish_errors: Counter,
    pub(crate) updates_dropped: Counter,
    owned: Gauge,
    pending_acks: Gauge,
    takeovers: Counter,
}

impl Metrics {
    fn new() -> Self {
        let bad = ["empty", "too_large", "version", "body", "subject"]
            .into_iter()
            .map(|r| {
                (
                    r,
                    metrics::counter(
                        "poolwatch_cluster_bad_messages_total",
                        "Stream messages that could not be decoded (acked and skipped), by reason.",
                        &[("reason", r)],
                    ),
                )
            })
            .collect();
        Metrics {
            consumed: metrics::counter(
                "poolwatch_cluster_consumed_total",
                "Observations a correlator took from its partitions.",
                &[],
            ),
            redelivered: metrics::counter(
                "poolwatch_cluster_redelivered_total",
                "Redeliveries of observations already processed (acked, not counted again).",
                &[],
            ),
            context: metrics::counter(
                "poolwatch_cluster_context_total",
                "Context copies (answers of this partition's DNS servers to other clients) read.",
                &[],
            ),
            replayed: metrics::counter(
                "poolwatch_cluster_replayed_total",
                "Observations replayed to rebuild a claimed partition's state.",
                &[],
            ),
            bad,
            acked: metrics::counter(
                "poolwatch_cluster_acked_total",
                "Observations acknowledged after the flush that made their effect durable.",
                &[],
            ),
            published: metrics::counter(
                "poolwatch_cluster_detection_updates_total",
                "Detection updates published to POOLWATCH_DETECTIONS.",
                &[],
            ),
            publish_errors: metrics::counter(
                "poolwatch_cluster_detection_publish_errors_total",
                "Failed rounds of detection publishing (retried).",
                &[],
            ),
            updates_dropped: metrics::counter(
                "poolwatch_cluster_detection_updates_dropped_total",
                "Detection updates dropped from a full publish queue.",
                &[],
            ),
            owned: metrics::gauge(
                "poolwatch_cluster_partitions_owned",
                "Partitions this correlator holds a lease for.",
                &[],
            ),
            pending_acks: metrics::gauge(
                "poolwatch_cluster_pending_acks",
                "Observations processed but not yet acknowledged (ack hold, flush).",
                &[],
            ),
            takeovers: metrics::counter(
                "poolwatch_cluster_partition_claims_total",
                "Partitions claimed (start-up, takeover, rebalance).",
                &[],
            ),
        }
    }

    fn bad(&self, reason: &str) {
        if let Some(c) = self.bad.get(reason) {
            c.inc();
        }
    }
}

/// The pipeline thread: pushes deliveries, ticks, and runs the ack cycle.
#[allow(clippy::too_many_arguments)]
fn pipeline_loop(
    mut p: Pipeline,
    mut rx: mpsc::Receiver<Delivery>,
    store: Store,
    ids: ChangedIds,
    js: jetstream::Context,
    rt: tokio::runtime::Handle,
    m: Arc<Metrics>,
) -> Result<(), String> {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut last_ack_cycle = Instant::now();
    let mut last_tick = Instant::now();
    let mut errors = 0u64;
    let mut handle = |p: &mut Pipeline, d: Delivery, pending: &mut VecDeque<Pending>| {
        // A delivery without an observation (a redelivery already pushed) has no effect of its
        // own to wait for: only the engine's clock as it is now.
        let ts = d.obs.as_ref().map_or(Timestamp::MIN, Observation::ts);
        if let Some(obs) = d.obs {
            if let Err(e) = p.push(obs) {
                errors += 1;
                if errors.is_power_of_two() {
                    tracing::error!(error = %e, errors, "pipeline: store error");
                }
            }
        }
        if let Some(a) = d.acker {
            pending.push_back(Pending {
                pushed: Instant::now(),
                ts,
                partition: d.partition,
                seq: d.seq,
                acker: a,
            });
        }
    };
    loop {
        let first = rt.block_on(async { tokio::time::timeout(TICK, rx.recv()).await });
        let mut closed = false;
        match first {
            Ok(Some(d)) => {
                handle(&mut p, d, &mut pending);
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(d) => handle(&mut p, d, &mut pending),
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
        if closed {
            break;
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            if let Err(e) = p.tick(Timestamp::now()) {
                tracing::error!(error = %e, "pipeline: tick");
            }
        }
        m.pending_acks.set(pending.len() as i64);
        let released = released_before(&p);
        let due = |e: &Pending| e.pushed.elapsed() >= ACK_HOLD || e.ts < released;
        let n = if last_ack_cycle.elapsed() >= ACK_MIN_INTERVAL {
            pending.iter().take_while(|e| due(e)).count()
        } else {
            0
        };
        if n > 0 {
            last_ack_cycle = Instant::now();
            ack_cycle(&mut p, &mut pending, n, &store, &ids, &js, &rt, &m);
        } else if !ids.is_empty() {
            // New detections reach the API promptly, not only at the next ack cycle.
            publish_updates(&rt, &js, &store, &ids, &m);
        }
    }
    // Clean stop: report what is held, flush, publish, ack everything.
    let summary = p.finish().map_err(|e| e.to_string())?;
    let n = pending.len();
    let mut last: HashMap<u16, u64> = HashMap::new();
    for e in &pending {
        last.insert(e.partition, e.seq);
    }
    save_markers(&store, &last);
    let _ = store.flush();
    // Retried for a blip, within a bound. Acked only once the updates are published (rule 3
    // of the module docs): with NATS gone they are not, and the server redelivers the
    // messages to the partition's next owner. Another node rebuilds and publishes those
    // detections; this node, restarted, has them stored already (its position marker covers
    // them), so API nodes see them at their next change (docs/cluster.md, failures).
    let deadline = Instant::now() + 2 * nats::REQUEST_TIMEOUT;
    let mut published =
        nats::connected(&js.client()) && publish_updates(&rt, &js, &store, &ids, &m);
    while !published && Instant::now() < deadline && nats::connected(&js.client()) {
        std::thread::sleep(Duration::from_millis(500));
        published = publish_updates(&rt, &js, &store, &ids, &m);
    }
    let acked = if published {
        ack_all(&rt, pending.drain(..).map(|e| e.acker).collect(), &m);
        n
    } else {
        tracing::warn!(
            unacked = n,
            "detection updates not published before the stop; their messages are left for redelivery"
        );
        0
    };
    tracing::info!(
        observations = summary.observations,
        new = summary.new,
        acked,
        "correlator pipeline finished"
    );
    Ok(())
}

fn save_markers(store: &Store, last: &HashMap<u16, u64>) {
    for (part, seq) in last {
        let off = FileOffset {
            dev: 0,
            inode: 0,
            offset: *seq,
            fingerprint: 0,
            fingerprint_len: 0,
        };
        if let Err(e) = store.save_offset(&marker_key(*part), &off) {
            tracing::warn!(error = %e, partition = part, "saving the partition position");
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn ack_cycle(
    p: &mut Pipeline,
    pending: &mut VecDeque<Pending>,
    n: usize,
    store: &Store,
    ids: &ChangedIds,
    js: &jetstream::Context,
    rt: &tokio::runtime::Handle,
    m: &Metrics,
) {
    let mut last: HashMap<u16, u64> = HashMap::new();
    for e in pending.iter().take(n) {
        last.insert(e.partition, e.seq);
    }
    save_markers(store, &last);
    if let Err(e) = p.flush() {
        tracing::error!(error = %e, "pipeline: flush before ack");
        return;
    }
    if !publish_updates(rt, js, store, ids, m) {
        // Not acked: retried at the next cycle (JetStream redelivers only after ACK_WAIT).
        return;
    }
    let ackers: Vec<Acker> = pending.drain(..n).map(|e| e.acker).collect();
    ack_all(rt, ackers, m);
}

fn ack_all(rt: &tokio::runtime::Handle, ackers: Vec<Acker>, m: &Metrics) {
    if ackers.is_empty() {
        return;
    }
    // Bounded: with NATS unreachable the client's outbound buffer fills and an ack would wait
    // for the reconnect. The messages not acked are redelivered after the ack wait and acked
    // then without being pushed twice.
    rt.block_on(nats::bounded("acks", async {
        for a in ackers {
            if a.ack().await.is_ok() {
                m.acked.inc();
            }
        }
    }));
}

/// The durable consumer of partition `p`, created on first use.
async fn partition_consumer(
    stream: &jetstream::stream::Stream,
    p: u16,
) -> Result<consumer::PullConsumer, String> {
    let name = format!("corr-p{p}");
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: wire::obs_subject(p),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

fn decode(msg: &jetstream::Message, m: &Metrics) -> Option<(u16, u64, Observation)> {
    let Some(p) = wire::partition_of_subject(msg.subject.as_str()) else {
        m.bad("subject");
        return None;
    };
    let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
    match wire::decode_observation(&msg.payload) {
        Ok((kind, o)) => {
            if kind == wire::KIND_CONTEXT {
                m.context.inc();
            }
            Some((p, seq, o))
        }
        Err(e) => {
            m.bad(e.reason());
            None
        }
    }
}

/// Rebuilds partition `p`: replays stream messages in (`from`, `to`] without acking them.
async fn replay(
    stream: &jetstream::stream::Stream,
    p: u16,
    from: u64,
    to: u64,
    tx: &mpsc::Sender<Delivery>,
    m: &Metrics,
) -> Result<u64, String> {
    let c: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: wire::obs_subject(p),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from + 1,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    'outer: loop {
        let mut batch = c
            .fetch()
            .max_messages(FETCH_BATCH)
            .expires(FETCH_EXPIRES)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut got = 0;
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(|e| e.to_string())?;
            got += 1;
            let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
            if seq > to {
                break 'outer;
            }
            if let Some((partition, seq, obs)) = decode(&msg, m) {
                let d = Delivery {
                    partition,
                    seq,
                    obs: Some(obs),
                    acker: None,
                };
                if tx.send(d).await.is_err() {
                    break 'outer;
                }
                n += 1;
                m.replayed.inc();
            }
            if seq == to {
                break 'outer;
            }
        }
        if got == 0 {
            break;
        }
    }
    Ok(n)
}

/// Reads partition `p` until `stop` flips: first the replay, then the durable consumer.
async fn consume(
    stream: jetstream::stream::Stream,
    store: Store,
    p: u16,
    tx: mpsc::Sender<Delivery>,
    mut stop: watch::Receiver<bool>,
    m: Arc<Metrics>,
) {
    let mut c = loop {
        match partition_consumer(&stream, p).await {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "consumer; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    // What other owners acked since this store last saw the partition.
    let mine = {
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.load_offset(&marker_key(p)))
            .await
            .ok()
            .flatten()
            .map_or(0, |o| o.offset)
    };
    // The consumer's position: acked by earlier owners up to the floor, delivered (to an owner
    // that may have died holding them unacked) up to `delivered`. Everything up to the last
    // delivery is replayed now, so a dead owner's unacked work counts at takeover, not when the
    // server redelivers it after `ACK_WAIT`.
    let (floor, delivered) = match c.info().await {
        Ok(i) => (i.ack_floor.stream_sequence, i.delivered.stream_sequence),
        Err(_) => (0, 0),
    };
    let upto = floor.max(delivered);
    // Highest stream sequence pushed: a redelivery at or below it (an ack lost in a NATS
    // outage, or a dead owner's delivery replayed above) is acked without being counted twice.
    let mut pushed = upto.max(mine);
    if upto > mine {
        match replay(&stream, p, mine, upto, &tx, &m).await {
            Ok(n) => tracing::info!(
                partition = p,
                from = mine,
                to = upto,
                unacked = upto - floor.min(upto),
                replayed = n,
                "partition state rebuilt from the stream"
            ),
            Err(e) => tracing::warn!(partition = p, error = %e, "replay failed; continuing"),
        }
    }
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = tokio::select! {
            b = c.fetch().max_messages(FETCH_BATCH).expires(FETCH_EXPIRES).messages() => b,
            _ = stop.changed() => return,
        };
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(partition = p, error = %e, "fetch");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        while let Some(msg) = batch.next().await {
            let Ok(msg) = msg else { break };
            match decode(&msg, &m) {
                Some((partition, seq, obs)) => {
                    let (_, acker) = msg.split();
                    let obs = if seq > pushed {
                        pushed = seq;
                        m.consumed.inc();
                        Some(obs)
                    } else {
                        m.redelivered.inc();
                        None
                    };
                    let d = Delivery {
                        partition,
                        seq,
                        obs,
                        acker: Some(acker),
                    };
                    if tx.send(d).await.is_err() {
                        return;
                    }
                }
                None => {
                    // Undecodable: acked so it is not redelivered for ever (counted above).
                    let _ = msg.ack().await;
                }
            }
        }
    }
}

/// Runs a correlator until `shutdown`.
pub async fn run<F>(o: ClusterOptions, shutdown: F) -> Result<(), ClusterError>
where
    F: std::future::Future<Output = ()> + Send,
{
    let n: Nats = nats::connect(&o.url, &o.node).await?;
    let stream = nats::obs_stream(&n, &o.streams).await?;
    nats::detection_stream(&n, &o.streams).await?;
    let partitions = nats::agree_partitions(&n, o.partitions).await?;
    let leases_kv = nats::bucket(&n, nats::LEASE_BUCKET, o.lease_ttl).await?;
    let nodes_kv = nats::bucket(&n, nats::NODE_BUCKET, o.lease_ttl).await?;
    let base = super::fleet::NodeBase::open(&n, &o).await?;
    let (store, manager, lists) = (base.store.clone(), base.manager.clone(), base.lists.clone());
    let fleet = &base.fleet;
    let m = Arc::new(Metrics::new());

    // The pipeline thread.
    let ids = ChangedIds::default();
    let pipeline = Pipeline::new(
        Engine::new(o.engine.clone(), lists.clone()),
        Some(store.clone()),
    )
    .map_err(|e| ClusterError::Internal(e.to_string()))?
    .with_sink(Box::new(UpdateSink {
        ids: ids.clone(),
        dropped: m.updates_dropped.clone(),
    }));
    let (tx, rx) = mpsc::channel::<Delivery>(DELIVERY_CAPACITY);
    let thread = {
        let (store, ids, js, m) = (store.clone(), ids.clone(), n.js.clone(), m.clone());
        let rt = tokio::runtime::Handle::current();
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || pipeline_loop(pipeline, rx, store, ids, js, rt, m))
            .map_err(|e| ClusterError::Internal(e.to_string()))?
    };

    // The API over this correlator's own detections (debugging, probes, metrics).
    let (events, _) = tokio::sync::broadcast::channel::<DetectionEvent>(16);
    let state = AppState::new(
        fleet.backend.clone() as Arc<dyn Backend>,
        lists.clone(),
        events,
        o.api.clone(),
    )
    .with_lists(manager.clone())
    .with_list_version(fleet.state.list_version.clone());
    let listener = super::bind(o.listen).await?;
    let (api_stop_tx, mut api_stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(api::serve(listener, state.clone(), async move {
        let _ = api_stop_rx.wait_for(|v| *v).await;
    }));

    let poll = lease::poll_interval(o.lease_ttl);
    let mut leases = Leases::new(leases_kv, nodes_kv, &o.node, partitions, poll);
    let mut consumers: HashMap<u16, (watch::Sender<bool>, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    let _ = leases.heartbeat().await;
    state.set_ready(true);
    tokio::pin!(shutdown);
    let grace = async {
        tokio::time::sleep(STARTUP_GRACE).await;
        // The fleet's lists and suppressions first, so no partition is read with old ones.
        if !fleet.state.synced(super::fleet::SYNC_WAIT).await {
            tracing::warn!("fleet lists/suppressions not synced yet; claiming anyway");
        }
    };
    tokio::select! {
        _ = grace => {}
        _ = &mut shutdown => {}
    }
    let mut every = tokio::time::interval(poll);
    // The first tick completes at once; rounds are a poll interval apart from the start.
    every.tick().await;
    let mut stopping = false;
    let mut releasing: HashMap<u16, Instant> = HashMap::new();
    while !stopping {
        if let Err(e) = leases.heartbeat().await {
            tracing::warn!(error = %e, "heartbeat");
        }
        for p in leases.renew().await {
            if let Some((stop, task)) = consumers.remove(&p) {
                let _ = stop.send(true);
                let _ = task.await;
            }
        }
        let held = match leases.held().await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "lease listing");
                None
            }
        };
        let share = match leases.live_nodes().await {
            Ok(nodes) => lease::fair_share(partitions, nodes),
            Err(_) => leases.owned().len(),
        };
        let all_held = held
            .as_ref()
            .is_some_and(|h| h.len() >= usize::from(partitions));
        for p in leases.surplus(share, all_held) {
            // Stop reading; what was delivered is acked within ACK_HOLD, then the lease goes
            // (renewed meanwhile, so nobody reads the partition twice).
            if let Some((stop, task)) = consumers.remove(&p) {
                let _ = stop.send(true);
                let _ = task.await;
                releasing.insert(p, Instant::now() + ACK_HOLD + Duration::from_secs(1));
            }
        }
        let due: Vec<u16> = releasing
            .iter()
            .filter(|(_, t)| Instant::now() >= **t)
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            releasing.remove(&p);
            leases.release(p).await;
            tracing::info!(partition = p, "partition handed back (rebalance)");
        }
        // While handing partitions back, take nothing within the share (it would be theirs
        // again); orphans are still taken.
        let claimable = if releasing.is_empty() { share } else { 0 };
        for c in leases.claim(claimable, held.as_ref()).await {
            m.takeovers.inc();
            tracing::info!(
                partition = c.partition,
                orphan = c.orphan,
                at_ms = unix_ms(),
                "partition claimed"
            );
            let p = c.partition;
            let (stop_tx, stop_rx) = watch::channel(false);
            let task = tokio::spawn(consume(
                stream.clone(),
                store.clone(),
                p,
                tx.clone(),
                stop_rx,
                m.clone(),
            ));
            consumers.insert(p, (stop_tx, task));
        }
        m.owned.set(consumers.len() as i64);
        tokio::select! {
            _ = every.tick() => {}
            _ = &mut shutdown => stopping = true,
        }
    }

    // Stop reading, finish the pipeline (final flush, publish, acks), then free the leases so
    // the survivors take over at once instead of after the TTL.
    state.set_ready(false);
    let tasks: Vec<_> = consumers
        .drain()
        .map(|(_, (stop, task))| {
            let _ = stop.send(true);
            task
        })
        .collect();
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    if nats::drain_step(
        &n.client,
        "partition consumers",
        futures_util::future::join_all(tasks),
    )
    .await
    .is_none()
    {
        aborts.iter().for_each(|a| a.abort());
    }
    drop(tx);
    let finished = tokio::task::spawn_blocking(move || thread.join()).await;
    if !matches!(finished, Ok(Ok(Ok(())))) {
        tracing::error!("the correlator pipeline ended abnormally");
    }
    // One bound for all releases (each has its own request timeout, 16 of them would add up);
    // a lease not released expires after its TTL.
    nats::drain_step(&n.client, "lease release", async {
        for p in leases.owned() {
            leases.release(p).await;
        }
        leases.leave().await;
    })
    .await;
    let _ = api_stop_tx.send(true);
    let _ = api_task.await;
    nats::drain_step(&n.client, "flush", n.client.flush()).await;
    base.close().await?;
    tracing::info!("correlator stopped");
    Ok(())
}
