//! Fleet-wide state in KV buckets: user lists (`poolwatch_lists`, key = list name) and
//! suppressions (`poolwatch_suppressions`, key = rule id). Every node — correlator or API —
//! runs the same two pieces (docs/cluster.md, "Lists and suppressions"):
//!
//! * **Publishing.** A change made through this node's API is validated here once, then
//!   written to the bucket and only then kept locally: user lists through the list manager's
//!   replication hook ([`crate::matcher::ListReplicator`]), suppressions through
//!   [`FleetBackend`], the API backend of a cluster node. If NATS does not acknowledge the write
//!   the change is refused (503 / 500) and nothing changes anywhere.
//! * **Following.** A watcher applies every bucket entry in revision order — the whole bucket
//!   at start-up (latest value per key), then each change as it is written: lists are
//!   re-validated and hot-swapped by the list manager ([`ListManager::apply_replicated`]; the
//!   engine reads the swapped set at once), suppressions are stored in this node's sled (the
//!   pipeline reloads them on the next tick). A node's own change comes back identical and is
//!   left alone.
//!
//! The **list version** a node runs is the bucket revision of the newest list entry its watcher
//! has processed (`/readyz` `list_version`, metric `poolwatch_cluster_list_version`): nodes
//! that report the same version run the same user lists. Concurrent edits of one list through
//! two nodes: the last write wins on every node (the bucket orders them).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::nats;
use crate::api::{Backend, BackendError};
use crate::matcher::{ListManager, ListReplicator, UserListRecord};
use crate::metrics::{self, Counter, Gauge};
use crate::model::{Detection, Timestamp};
use crate::query::{
    DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary, Suppression,
};
use crate::store::Store;

/// Largest replicated user list, as JSON: under NATS's default 1 MiB message payload. Larger
/// lists belong in a feed or a `--blocklist` file (each node reads its own).
pub const MAX_LIST_VALUE: usize = 1000 * 1024;
/// Largest suppression rule as JSON (a reason of at most 1 000 characters, a CIDR, a name).
pub const MAX_SUPPRESSION_VALUE: usize = 16 * 1024;
/// How long a correlator waits at start-up for the buckets' current content before it claims
/// partitions anyway (it keeps following; a late list is swapped in when it arrives).
pub const SYNC_WAIT: Duration = Duration::from_secs(10);
/// Pause before a watch that ended (NATS restart) is opened again.
const REWATCH_PAUSE: Duration = Duration::from_secs(1);

/// What this node runs of the fleet's state.
#[derive(Clone)]
pub struct FleetState {
    /// The list version (see the module docs), shared with `/readyz`.
    pub list_version: Arc<AtomicU64>,
    version_gauge: Gauge,
    applied: Counter,
    failed: Counter,
    lists_synced: watch::Sender<bool>,
    suppressions_synced: watch::Sender<bool>,
}

impl FleetState {
    pub fn new() -> Self {
        FleetState {
            list_version: Arc::new(AtomicU64::new(0)),
            version_gauge: metrics::gauge(
                "poolwatch_cluster_list_version",
                "Revision of the newest fleet list change this node runs (equal on nodes that run the same user lists).",
                &[],
            ),
            applied: metrics::counter(
                "poolwatch_cluster_fleet_changes_applied_total",
                "List and suppression changes of other nodes applied here.",
                &[],
            ),
            failed: metrics::counter(
                "poolwatch_cluster_fleet_changes_failed_total",
                "Fleet list or suppression entries this node could not apply (logged; the rest continue).",
                &[],
            ),
            lists_synced: watch::channel(false).0,
            suppressions_synced: watch::channel(false).0,
        }
    }

    fn set_version(&self, v: u64) {
        self.list_version.store(v, Ordering::Release);
        self.version_gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
    }

    /// Resolves once both buckets' start-up content was applied, or after `limit`.
    pub async fn synced(&self, limit: Duration) -> bool {
        let mut a = self.lists_synced.subscribe();
        let mut b = self.suppressions_synced.subscribe();
        let both = async {
            let _ = a.wait_for(|v| *v).await;
            let _ = b.wait_for(|v| *v).await;
        };
        tokio::time::timeout(limit, both).await.is_ok()
    }
}

impl Default for FleetState {
    fn default() -> Self {
        FleetState::new()
    }
}

/// Runs `fut` on `rt` from a blocking thread and waits for it (one request timeout).
fn run_blocking<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    fut: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let r = tokio::time::timeout(nats::REQUEST_TIMEOUT, fut)
            .await
            .unwrap_or_else(|_| Err("NATS did not answer in time".to_string()));
        let _ = tx.send(r);
    });
    rx.recv_timeout(nats::REQUEST_TIMEOUT + Duration::from_secs(1))
        .map_err(|_| "NATS did not answer in time".to_string())?
}

/// The list manager's replication hook: a validated user-list change goes to the bucket.
pub struct KvListReplicator {
    kv: kv::Store,
    rt: tokio::runtime::Handle,
}

impl KvListReplicator {
    pub fn new(kv: kv::Store, rt: tokio::runtime::Handle) -> Self {
        KvListReplicator { kv, rt }
    }
}

impl ListReplicator for KvListReplicator {
    fn publish(&self, name: &str, list: Option<&UserListRecord>) -> Result<(), String> {
        let body = match list {
            Some(r) => {
                let b = serde_json::to_vec(r).map_err(|e| e.to_string())?;
                if b.len() > MAX_LIST_VALUE {
                    return Err(format!(
                        "a user list shared by the cluster is at most {} KiB; use a feed or a --blocklist file for larger lists",
                        MAX_LIST_VALUE / 1024
                    ));
                }
                Some(b)
            }
            None => None,
        };
        let (kv, key) = (self.kv.clone(), name.to_string());
        let rev = run_blocking(&self.rt, async move {
            match body {
                Some(b) => kv.put(key, b.into()).await.map_err(|e| e.to_string()),
                None => kv.delete(key).await.map(|_| 0).map_err(|e| e.to_string()),
            }
        })?;
        tracing::info!(
            list = name,
            revision = rev,
            "list change published to the fleet"
        );
        Ok(())
    }
}

/// Applies the list bucket to `manager` until `stop` flips (see the module docs).
pub async fn follow_lists(
    kv: kv::Store,
    manager: Arc<ListManager>,
    fleet: FleetState,
    stop: watch::Receiver<bool>,
) {
    let apply = move |e: kv::Entry| {
        let manager = manager.clone();
        async move {
            let list = match e.operation {
                kv::Operation::Put => Some(
                    serde_json::from_slice::<UserListRecord>(&e.value)
                        .map_err(|err| format!("undecodable list entry: {err}"))?,
                ),
                kv::Operation::Delete | kv::Operation::Purge => None,
            };
            let name = e.key.clone();
            tokio::task::spawn_blocking(move || manager.apply_replicated(&name, list))
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| err.to_string())
        }
    };
    follow(kv, "lists", fleet.clone(), true, stop, apply).await;
}

/// Applies the suppression bucket to `store` until `stop` flips.
pub async fn follow_suppressions(
    kv: kv::Store,
    store: Store,
    fleet: FleetState,
    stop: watch::Receiver<bool>,
) {
    let apply = move |e: kv::Entry| {
        let store = store.clone();
        async move {
            let rule = match e.operation {
                kv::Operation::Put => Some(
                    serde_json::from_slice::<Suppression>(&e.value)
                        .map_err(|err| format!("undecodable suppression: {err}"))?,
                ),
                kv::Operation::Delete | kv::Operation::Purge => None,
            };
            let id = e.key.clone();
            tokio::task::spawn_blocking(move || match rule {
                Some(r) if r.id != id => Err(format!("suppression {:?} under key {id:?}", r.id)),
                Some(r) => {
                    let stored = store.list_suppressions().map_err(|e| e.to_string())?;
                    if stored.contains(&r) {
                        return Ok(false);
                    }
                    store.put_suppression(&r).map_err(|e| e.to_string())?;
                    Ok(true)
                }
                None => store.delete_suppression(&id).map_err(|e| e.to_string()),
            })
            .await
            .map_err(|err| err.to_string())?
        }
    };
    follow(kv, "suppressions", fleet, false, stop, apply).await;
}

/// The watch loop shared by both buckets: start-up content, then changes; re-opened after
/// the revision last processed when it ends (a NATS restart).
async fn follow<F, Fut>(
    kv: kv::Store,
    what: &'static str,
    fleet: FleetState,
    versioned: bool,
    mut stop: watch::Receiver<bool>,
    apply: F,
) where
    F: Fn(kv::Entry) -> Fut,
    Fut: Future<Output = Result<bool, String>>,
{
    let synced = if versioned {
        fleet.lists_synced.clone()
    } else {
        fleet.suppressions_synced.clone()
    };
    let empty = kv
        .status()
        .await
        .map(|s| s.info.state.messages == 0)
        .unwrap_or(false);
    if empty {
        synced.send_replace(true);
    }
    let mut last = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        let w = if last == 0 {
            kv.watch_with_history(">").await
        } else {
            kv.watch_all_from_revision(last + 1).await
        };
        let mut w = match w {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(bucket = what, error = %e, "fleet watch; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(REWATCH_PAUSE) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                n = w.next() => n,
                _ = stop.changed() => return,
            };
            let Some(Ok(e)) = next else { break };
            if e.revision <= last {
                continue;
            }
            let (rev, caught_up, key) = (e.revision, e.delta == 0 || e.seen_current, e.key.clone());
            match apply(e).await {
                Ok(true) => {
                    fleet.applied.inc();
                    tracing::info!(bucket = what, key = %key, revision = rev, "fleet change applied");
                }
                Ok(false) => {}
                Err(err) => {
                    fleet.failed.inc();
                    tracing::warn!(bucket = what, key = %key, revision = rev, error = %err, "fleet change not applied");
                }
            }
            last = rev;
            if versioned {
                fleet.set_version(rev);
            }
            if caught_up {
                synced.send_replace(true);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(REWATCH_PAUSE) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The API backend of a cluster node: this node's store, with suppression writes going to the
/// fleet's bucket first (see the module docs).
pub struct FleetBackend {
    store: Store,
    kv: kv::Store,
    rt: tokio::runtime::Handle,
    node: String,
}

impl FleetBackend {
    pub fn new(store: Store, kv: kv::Store, rt: tokio::runtime::Handle, node: &str) -> Self {
        FleetBackend {
            store,
            kv,
            rt,
            node: node.to_string(),
        }
    }

    /// A rule id no other node picks: 60 bits from this node's name, the clock and a counter
    /// (the bucket's create refuses a taken one, and a second id is tried).
    fn new_id(&self, attempt: u64) -> String {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        for b in self
            .node
            .bytes()
            .chain(nanos.to_le_bytes())
            .chain(seq.to_le_bytes())
            .chain(attempt.to_le_bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("s{:015x}", h & 0x0fff_ffff_ffff_ffff)
    }
}

fn other(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

impl Backend for FleetBackend {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        Backend::list_detections(&self.store, f, limit, cursor)
    }
    fn list_detections_json(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Vec<u8>>, BackendError> {
        // The store's stored bytes, not the trait's decode-and-encode default.
        Backend::list_detections_json(&self.store, f, limit, cursor)
    }
    fn detections_generation(&self) -> Option<u64> {
        Backend::detections_generation(&self.store)
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError> {
        Backend::get_detection(&self.store, id)
    }
    fn host_timeline(
        &self,
        ip: std::net::IpAddr,
        limit: usize,
    ) -> Result<HostTimeline, BackendError> {
        Backend::host_timeline(&self.store, ip, limit)
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        Backend::pools(&self.store)
    }
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError> {
        let mut last_err = String::new();
        for attempt in 0..2 {
            let rule = Store::suppression_rule(s.clone(), self.new_id(attempt), Timestamp::now())
                .map_err(|e| BackendError::BadCursor(e.to_string()))?;
            let body = serde_json::to_vec(&rule).map_err(other)?;
            if body.len() > MAX_SUPPRESSION_VALUE {
                return Err(BackendError::BadCursor(
                    "the suppression rule is too large".into(),
                ));
            }
            let (kv, key) = (self.kv.clone(), rule.id.clone());
            match run_blocking(&self.rt, async move {
                kv.create(key, body.into()).await.map_err(|e| e.to_string())
            }) {
                Ok(rev) => {
                    self.store.put_suppression(&rule).map_err(other)?;
                    tracing::info!(id = %rule.id, revision = rev, "suppression published to the fleet");
                    return Ok(rule);
                }
                Err(e) => last_err = e,
            }
        }
        Err(BackendError::Other(format!(
            "the suppression could not be published to the cluster: {last_err}"
        )))
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Backend::list_suppressions(&self.store)
    }
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError> {
        let known = self
            .store
            .list_suppressions()
            .map_err(other)?
            .iter()
            .any(|s| s.id == id);
        if !known {
            return Ok(false);
        }
        let (kv, key) = (self.kv.clone(), id.to_string());
        run_blocking(&self.rt, async move {
            kv.delete(key).await.map_err(|e| e.to_string())
        })
        .map_err(|e| {
            BackendError::Other(format!(
                "the deletion could not be published to the cluster: {e}"
            ))
        })?;
        // This node's watcher may have applied the deletion already: it existed, it is gone.
        self.store.delete_suppression(id).map_err(other)?;
        Ok(true)
    }
    fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Backend::pool_ips(&self.store, now)
    }
}

/// A node's share in the fleet state: the buckets, the replication hook on its list manager,
/// the two watchers and the API backend.
pub struct Fleet {
    pub state: FleetState,
    pub backend: Arc<FleetBackend>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    /// Opens the buckets, hooks `manager` and starts following (on the current runtime).
    pub async fn start(
        n: &nats::Nats,
        node: &str,
        manager: &Arc<ListManager>,
        store: &Store,
    ) -> Result<Fleet, super::ClusterError> {
        let lists_kv =
            nats::bucket_sized(n, nats::LIST_BUCKET, Duration::ZERO, nats::MAX_LIST_MESSAGE)
                .await?;
        let supp_kv = nats::bucket(n, nats::SUPPRESSION_BUCKET, Duration::ZERO).await?;
        let rt = tokio::runtime::Handle::current();
        manager.set_replicator(Some(Arc::new(KvListReplicator::new(
            lists_kv.clone(),
            rt.clone(),
        ))));
        let state = FleetState::new();
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(follow_lists(
                lists_kv,
                manager.clone(),
                state.clone(),
                stop_rx.clone(),
            )),
            tokio::spawn(follow_suppressions(
                supp_kv.clone(),
                store.clone(),
                state.clone(),
                stop_rx,
            )),
        ];
        let backend = Arc::new(FleetBackend::new(store.clone(), supp_kv, rt, node));
        Ok(Fleet {
            state,
            backend,
            stop,
            tasks,
        })
    }

    /// Stops the watchers.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            nats::join_bounded("fleet watcher", t).await;
        }
    }
}

/// What every correlator and API node opens first and closes last: its store, its list manager
/// (with the background refresh task) and its share in the fleet state.
pub struct NodeBase {
    pub store: Store,
    pub manager: Arc<ListManager>,
    pub lists: crate::matcher::SharedBlocklists,
    pub fleet: Fleet,
    lists_stop: watch::Sender<bool>,
    lists_task: tokio::task::JoinHandle<()>,
}

impl NodeBase {
    /// Opens the store (off the runtime), the lists and the fleet buckets.
    pub async fn open(
        n: &nats::Nats,
        o: &super::ClusterOptions,
    ) -> Result<NodeBase, super::ClusterError> {
        let store = {
            let db = o.db.clone();
            tokio::task::spawn_blocking(move || Store::open(&db))
                .await
                .map_err(|e| super::ClusterError::Internal(e.to_string()))??
        };
        let (manager, lists) = ListManager::open(o.lists.clone())
            .map_err(|e| super::ClusterError::Lists(e.to_string()))?;
        let (lists_stop, mut lists_stop_rx) = watch::channel(false);
        let lists_task = manager.spawn_background(async move {
            let _ = lists_stop_rx.wait_for(|v| *v).await;
        });
        let fleet = Fleet::start(n, &o.node, &manager, &store).await?;
        Ok(NodeBase {
            store,
            manager,
            lists,
            fleet,
            lists_stop,
            lists_task,
        })
    }

    /// Stops the fleet watchers and the list task, then flushes the store (off the runtime).
    pub async fn close(self) -> Result<(), super::ClusterError> {
        self.fleet.stop().await;
        let _ = self.lists_stop.send(true);
        let _ = self.lists_task.await;
        let s = self.store;
        tokio::task::spawn_blocking(move || s.flush())
            .await
            .map_err(|e| super::ClusterError::Internal(e.to_string()))??;
        Ok(())
    }
}
