//! The one place that knows the JetStream layout: connecting, and the streams and KV buckets
//! with their retention and limits (docs/cluster.md, "Streams and buckets").

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::wire::{DETECTION_SUBJECT_PREFIX, MAX_MESSAGE_BYTES, OBS_SUBJECT_PREFIX};
use super::ClusterError;

/// Observations from every sensor, subjects `poolwatch.obs.<partition>`.
pub const OBS_STREAM: &str = "POOLWATCH_OBS";
/// Observations are kept a day (replay for a partition's new owner, catch-up after outages)…
pub const OBS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// …and at most this many bytes (oldest discarded first).
pub const OBS_MAX_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// Re-published observations (a sensor retrying after a lost ack, or re-reading log lines
/// after a restart) with the same `Nats-Msg-Id` within this window are stored once.
pub const OBS_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Detection updates, subjects `poolwatch.detections.<id>`: the latest state per detection is
/// kept (one message per subject), so a new API node rebuilds the whole view from the stream.
pub const DETECTION_STREAM: &str = "POOLWATCH_DETECTIONS";
/// Detections are kept as long as the single box keeps them by default (90 days).
pub const DETECTION_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
pub const DETECTION_MAX_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// Partition leases: key `p<N>`, value = owner; the bucket's max age is the lease TTL.
pub const LEASE_BUCKET: &str = "poolwatch_leases";
/// Correlator heartbeats: key = node name; max age = lease TTL.
pub const NODE_BUCKET: &str = "poolwatch_nodes";
/// Follower offsets of sensors (key = hash of node and file); kept until overwritten.
pub const OFFSET_BUCKET: &str = "poolwatch_offsets";
/// Cluster-wide settings (the partition count), written once by the first node.
pub const CLUSTER_BUCKET: &str = "poolwatch_cluster";
/// User lists shared by the fleet: key = list name, value = the list (`fleet.rs`); kept until
/// changed or deleted (history 1, delete markers stay so a new node learns of deletions).
pub const LIST_BUCKET: &str = "poolwatch_lists";
/// Suppression rules shared by the fleet: key = rule id; kept until deleted.
pub const SUPPRESSION_BUCKET: &str = "poolwatch_suppressions";
/// Largest message of the list bucket: NATS's default payload limit (1 MiB).
pub const MAX_LIST_MESSAGE: i32 = 1024 * 1024;
/// Largest KV value (leases, offsets and settings are a few hundred bytes).
pub const MAX_KV_VALUE: i32 = 64 * 1024;
/// Leases and heartbeats of a fleet fit in far less than this.
pub const SMALL_BUCKET_BYTES: i64 = 64 * 1024 * 1024;
/// How long a JetStream API request (publish ack, KV write) may take before it is retried.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the client is connected now (a shutdown skips its NATS steps when it is not).
pub fn connected(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// One NATS step of a node's shutdown: skipped at once when the client is not connected, else
/// awaited for at most [`REQUEST_TIMEOUT`] (with NATS gone, a flush or a burst of acks would
/// otherwise wait for a reconnect that never comes). What a skipped step would have sent is
/// redelivered or re-sent later (at least once).
pub async fn drain_step<F: std::future::Future>(
    client: &async_nats::Client,
    what: &str,
    f: F,
) -> Option<F::Output> {
    if !connected(client) {
        tracing::warn!(step = what, "shutdown step skipped: NATS not connected");
        return None;
    }
    bounded(what, f).await
}

/// Awaits `f` for at most [`REQUEST_TIMEOUT`] (`None` and a warning when it did not finish).
pub async fn bounded<F: std::future::Future>(what: &str, f: F) -> Option<F::Output> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!(step = what, "timed out (NATS unreachable?)");
            None
        }
    }
}

/// Joins a task within [`REQUEST_TIMEOUT`], aborting it when it does not end in time.
pub async fn join_bounded(what: &str, mut task: tokio::task::JoinHandle<()>) {
    if bounded(what, &mut task).await.is_none() {
        task.abort();
    }
}
/// Largest number of publishes waiting for their ack on one connection.
pub const MAX_ACK_INFLIGHT: usize = 4_096;

/// A connected JetStream context with the cluster's streams and buckets in place.
#[derive(Clone)]
pub struct Nats {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
}

/// Connects to `url`, retrying the first connection (a node may start before NATS) and
/// reconnecting for ever afterwards.
pub async fn connect(url: &str, node: &str) -> Result<Nats, ClusterError> {
    let client = async_nats::ConnectOptions::new()
        .name(format!("poolwatch {node}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(REQUEST_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .event_callback(|ev| async move {
            tracing::info!(event = %ev, "nats connection");
        })
        .connect(url)
        .await
        .map_err(|e| ClusterError::Nats(format!("connecting to {url}: {e}")))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .max_ack_inflight(MAX_ACK_INFLIGHT)
        .backpressure_on_inflight(true)
        .build(client.clone());
    Ok(Nats { client, js })
}

fn err(what: &str, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Nats(format!("{what}: {e}"))
}

/// Creates the observation stream, or checks that it exists.
pub async fn obs_stream(n: &Nats) -> Result<stream::Stream, ClusterError> {
    n.js.get_or_create_stream(stream::Config {
        name: OBS_STREAM.into(),
        subjects: vec![format!("{OBS_SUBJECT_PREFIX}.*")],
        retention: stream::RetentionPolicy::Limits,
        max_age: OBS_MAX_AGE,
        max_bytes: OBS_MAX_BYTES,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: OBS_DUPLICATE_WINDOW,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| err("observation stream", e))
}

/// Creates the detection stream, or checks that it exists.
pub async fn detection_stream(n: &Nats) -> Result<stream::Stream, ClusterError> {
    n.js.get_or_create_stream(stream::Config {
        name: DETECTION_STREAM.into(),
        subjects: vec![format!("{DETECTION_SUBJECT_PREFIX}.*")],
        retention: stream::RetentionPolicy::Limits,
        max_messages_per_subject: 1,
        max_age: DETECTION_MAX_AGE,
        max_bytes: DETECTION_MAX_BYTES,
        discard: stream::DiscardPolicy::Old,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| err("detection stream", e))
}

/// Opens the bucket `name`, creating it with `max_age` (zero: no expiry) when absent. An
/// existing bucket keeps its configuration (the first node's TTL wins; see docs/cluster.md).
///
/// The bucket's stream is created here with the KV conventions (`KV_<bucket>`, subjects
/// `$KV.<bucket>.>`, rollups, direct get, discard new) rather than through the client's
/// `create_key_value`, whose account-info request does not parse nats-server 2.9's answer.
pub async fn bucket(n: &Nats, name: &str, max_age: Duration) -> Result<kv::Store, ClusterError> {
    bucket_sized(n, name, max_age, MAX_KV_VALUE).await
}

/// [`bucket`] with its own largest message (the list bucket's values are whole lists).
pub async fn bucket_sized(
    n: &Nats,
    name: &str,
    max_age: Duration,
    max_message: i32,
) -> Result<kv::Store, ClusterError> {
    if let Ok(kv) = n.js.get_key_value(name).await {
        return Ok(kv);
    }
    n.js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        // Room for every user list at its largest (the list bucket), else the small default.
        max_bytes: SMALL_BUCKET_BYTES.max(i64::from(max_message) * 300),
        max_message_size: max_message,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    })
    .await
    .map_err(|e| err(&format!("KV bucket {name}"), e))?;
    n.js.get_key_value(name)
        .await
        .map_err(|e| err(&format!("KV bucket {name}"), e))
}

/// Agrees on the partition count: the first node writes it, every later one must match.
pub async fn agree_partitions(n: &Nats, partitions: u16) -> Result<u16, ClusterError> {
    let kv = bucket(n, CLUSTER_BUCKET, Duration::ZERO).await?;
    let _ = kv
        .create("partitions", partitions.to_string().into_bytes().into())
        .await;
    let stored = kv
        .get("partitions")
        .await
        .map_err(|e| err("reading the partition count", e))?
        .ok_or_else(|| ClusterError::Nats("the partition count is missing".into()))?;
    let stored: u16 = std::str::from_utf8(&stored)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| ClusterError::Nats("the stored partition count is not a number".into()))?;
    if stored != partitions {
        return Err(ClusterError::Config(format!(
            "this cluster has {stored} partitions, --partitions says {partitions} \
             (every node must use the same count)"
        )));
    }
    Ok(stored)
}
