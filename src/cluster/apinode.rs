//! The API role: a materialised view of every correlator's detections. A durable consumer
//! `api-<node>` reads `POOLWATCH_DETECTIONS` (which keeps the latest update per detection, so
//! a new node starts with the whole fleet's state), writes each update into this node's own
//! sled store when it is at least as advanced as the stored copy ([`wire::supersedes`]), acks
//! after the write's fsync, and feeds new and upgraded detections to the SSE stream. The REST
//! API and the UI are the single box's, over that store.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use super::nats;
use super::wire::{self, DetectionUpdate};
use super::{ClusterError, ClusterOptions};
use crate::api::{self, AppState, Backend};
use crate::correlate::{Batch, DetectionStore};
use crate::metrics::{self, Counter};
use crate::ports::ChangeKind;
use crate::query::DetectionEvent;
use crate::store::Store;

/// Updates applied per write (one fsync).
pub const APPLY_BATCH: usize = 256;
/// A pull request waits this long for updates.
pub const FETCH_EXPIRES: Duration = Duration::from_secs(1);
/// The live feed's buffer (as the single box's).
pub const EVENTS_CAPACITY: usize = 1_024;
/// Unacked updates the server hands this node at once.
pub const MAX_ACK_PENDING: i64 = 4_096;

struct Metrics {
    applied: Counter,
    stale: Counter,
    bad: Counter,
}

/// Writes the decoded updates that advance the view; returns the SSE events to send.
fn apply(
    store: &Store,
    updates: Vec<DetectionUpdate>,
    m: &Metrics,
) -> Result<Vec<DetectionEvent>, String> {
    let mut batch = Batch::default();
    let mut events = Vec::new();
    for u in updates {
        let kind = u.change_kind();
        let newer = match batch.detections.get(&u.detection.id) {
            Some(b) => wire::supersedes(&u.detection, b),
            None => match store.get_detection(&u.detection.id) {
                Ok(Some(stored)) => wire::supersedes(&u.detection, &stored),
                Ok(None) => true,
                Err(e) => return Err(e.to_string()),
            },
        };
        if !newer {
            m.stale.inc();
            continue;
        }
        m.applied.inc();
        let ev = match kind {
            ChangeKind::New | ChangeKind::Upgraded => Some(kind),
            ChangeKind::Updated => None,
        };
        if let Some(kind) = ev {
            events.push(DetectionEvent {
                kind,
                detection: u.detection.clone(),
            });
        }
        batch.add_detection(u.detection);
    }
    if !batch.is_empty() {
        store.write_batch(&mut batch).map_err(|e| e.to_string())?;
    }
    Ok(events)
}

async fn follow_detections(
    stream: jetstream::stream::Stream,
    node: String,
    store: Store,
    events: broadcast::Sender<DetectionEvent>,
    mut stop: watch::Receiver<bool>,
    m: Arc<Metrics>,
) {
    let name = format!("api-{node}");
    let c: consumer::PullConsumer = loop {
        let r = stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: format!("{}.*", wire::DETECTION_SUBJECT_PREFIX),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: consumer::DeliverPolicy::All,
                    max_ack_pending: MAX_ACK_PENDING,
                    ..Default::default()
                },
            )
            .await;
        match r {
            Ok(c) => break c,
            Err(e) => {
                tracing::warn!(error = %e, "detection consumer; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = tokio::select! {
            b = c.fetch().max_messages(APPLY_BATCH).expires(FETCH_EXPIRES).messages() => b,
            _ = stop.changed() => return,
        };
        let Ok(mut batch) = batch else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut msgs = Vec::new();
        let mut updates = Vec::new();
        while let Some(msg) = batch.next().await {
            let Ok(msg) = msg else { break };
            match wire::decode_detection(&msg.payload) {
                Ok(u) => updates.push(u),
                Err(e) => {
                    m.bad.inc();
                    tracing::debug!(error = %e, "undecodable detection update");
                }
            }
            msgs.push(msg);
        }
        if msgs.is_empty() {
            continue;
        }
        let (s, m2) = (store.clone(), m.clone());
        let applied = tokio::task::spawn_blocking(move || apply(&s, updates, &m2)).await;
        match applied {
            Ok(Ok(evs)) => {
                for msg in msgs {
                    let _ = msg.ack().await;
                }
                for ev in evs {
                    let _ = events.send(ev);
                }
            }
            // Not acked: redelivered after the ack wait.
            Ok(Err(e)) => tracing::error!(error = %e, "writing detection updates"),
            Err(e) => tracing::error!(error = %e, "detection writer"),
        }
    }
}

/// Runs an API node until `shutdown`.
pub async fn run<F>(o: ClusterOptions, shutdown: F) -> Result<(), ClusterError>
where
    F: std::future::Future<Output = ()> + Send,
{
    let n = nats::connect(&o.url, &o.node).await?;
    let stream = nats::detection_stream(&n, &o.streams).await?;
    let base = super::fleet::NodeBase::open(&n, &o).await?;
    let (store, manager, lists) = (base.store.clone(), base.manager.clone(), base.lists.clone());
    let fleet = &base.fleet;
    let (events, _) = broadcast::channel::<DetectionEvent>(EVENTS_CAPACITY);
    let state = AppState::new(
        fleet.backend.clone() as Arc<dyn Backend>,
        lists,
        events.clone(),
        o.api.clone(),
    )
    .with_lists(manager.clone())
    .with_list_version(fleet.state.list_version.clone());
    let listener = super::bind(o.listen).await?;
    let (api_stop_tx, mut api_stop_rx) = watch::channel(false);
    let api_task = tokio::spawn(api::serve(listener, state.clone(), async move {
        let _ = api_stop_rx.wait_for(|v| *v).await;
    }));
    let m = Arc::new(Metrics {
        applied: metrics::counter(
            "poolwatch_cluster_view_updates_total",
            "Detection updates written into this API node's view.",
            &[],
        ),
        stale: metrics::counter(
            "poolwatch_cluster_view_stale_total",
            "Detection updates older than the stored copy (replays, a partition's old owner).",
            &[],
        ),
        bad: metrics::counter(
            "poolwatch_cluster_view_bad_total",
            "Detection updates that could not be decoded (acked and skipped).",
            &[],
        ),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(follow_detections(
        stream,
        o.node.clone(),
        store.clone(),
        events,
        stop_rx,
        m,
    ));
    if !fleet.state.synced(super::fleet::SYNC_WAIT).await {
        tracing::warn!("fleet lists/suppressions not synced yet; serving anyway");
    }
    state.set_ready(true);
    tracing::info!("api node ready");
    shutdown.await;
    state.set_ready(false);
    let _ = stop_tx.send(true);
    let _ = follower.await;
    let _ = api_stop_tx.send(true);
    let _ = api_task.await;
    base.close().await?;
    tracing::info!("api node stopped");
    Ok(())
}
