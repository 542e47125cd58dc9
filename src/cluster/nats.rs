//! The one place that knows the JetStream layout: connecting, and the streams and KV buckets
//! with their retention and limits (docs/cluster.md, "Streams and buckets").

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream, ErrorCode};

use super::wire::{DETECTION_SUBJECT_PREFIX, MAX_MESSAGE_BYTES, OBS_SUBJECT_PREFIX};
use super::ClusterError;

/// Observations from every sensor, subjects `poolwatch.obs.<partition>`.
pub const OBS_STREAM: &str = "POOLWATCH_OBS";
/// Observations are kept a day (replay for a partition's new owner, catch-up after outages)…
pub const OBS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// …and at most this many bytes (oldest discarded first): the default of
/// `[cluster] obs_max_bytes`.
pub const OBS_MAX_BYTES: i64 = 8 * 1024 * 1024 * 1024;
/// Re-published observations (a sensor retrying after a lost ack, or re-reading log lines
/// after a restart) with the same `Nats-Msg-Id` within this window are stored once.
pub const OBS_DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Detection updates, subjects `poolwatch.detections.<id>`: the latest state per detection is
/// kept (one message per subject), so a new API node rebuilds the whole view from the stream.
pub const DETECTION_STREAM: &str = "POOLWATCH_DETECTIONS";
/// Detections are kept as long as the single box keeps them by default (90 days).
pub const DETECTION_MAX_AGE: Duration = Duration::from_secs(90 * 86_400);
/// The detection stream's size: the default of `[cluster] detections_max_bytes`.
pub const DETECTION_MAX_BYTES: i64 = 4 * 1024 * 1024 * 1024;
/// Smallest `obs_max_bytes` / `detections_max_bytes` accepted (64 MiB): below it a burst of
/// observations (1 MiB messages at most) or a fleet's detections would be discarded within
/// minutes. nats-server reserves a file stream's `max_bytes` against its `max_file_store`
/// when the stream is created, so this is also the least storage each stream asks for.
pub const MIN_STREAM_MAX_BYTES: i64 = 64 * 1024 * 1024;
/// The file storage the KV buckets reserve together (fixed sizes): five small buckets and the
/// list bucket (room for 300 lists at their largest). A server needs this much on top of the
/// two streams.
pub const BUCKETS_RESERVED_BYTES: i64 = 5 * SMALL_BUCKET_BYTES + LIST_BUCKET_BYTES;
/// The list bucket's size: every user list at its largest ([`MAX_LIST_MESSAGE`] × 300).
pub const LIST_BUCKET_BYTES: i64 = MAX_LIST_MESSAGE as i64 * 300;
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

/// The sizes of the two streams, used when a node creates them (`[cluster] obs_max_bytes`,
/// `detections_max_bytes`; validated by the configuration, at least
/// [`MIN_STREAM_MAX_BYTES`]). An existing stream keeps its size: the first node's wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StreamSizes {
    pub obs_max_bytes: i64,
    pub detections_max_bytes: i64,
}

impl Default for StreamSizes {
    fn default() -> Self {
        StreamSizes {
            obs_max_bytes: OBS_MAX_BYTES,
            detections_max_bytes: DETECTION_MAX_BYTES,
        }
    }
}

/// The config key and flag that set a stream's size, for messages.
pub type SizeKey = (&'static str, &'static str);
pub const OBS_MAX_BYTES_KEY: SizeKey = ("[cluster] obs_max_bytes", "--obs-max-bytes");
pub const DETECTIONS_MAX_BYTES_KEY: SizeKey =
    ("[cluster] detections_max_bytes", "--detections-max-bytes");

/// Creates the observation stream, or checks that it exists.
pub async fn obs_stream(n: &Nats, sizes: &StreamSizes) -> Result<stream::Stream, ClusterError> {
    let config = stream::Config {
        name: OBS_STREAM.into(),
        subjects: vec![format!("{OBS_SUBJECT_PREFIX}.*")],
        retention: stream::RetentionPolicy::Limits,
        max_age: OBS_MAX_AGE,
        max_bytes: sizes.obs_max_bytes,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: OBS_DUPLICATE_WINDOW,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    sized_stream(n, config, "observation stream", Some(OBS_MAX_BYTES_KEY)).await
}

/// Creates the detection stream, or checks that it exists.
pub async fn detection_stream(
    n: &Nats,
    sizes: &StreamSizes,
) -> Result<stream::Stream, ClusterError> {
    let config = stream::Config {
        name: DETECTION_STREAM.into(),
        subjects: vec![format!("{DETECTION_SUBJECT_PREFIX}.*")],
        retention: stream::RetentionPolicy::Limits,
        max_messages_per_subject: 1,
        max_age: DETECTION_MAX_AGE,
        max_bytes: sizes.detections_max_bytes,
        discard: stream::DiscardPolicy::Old,
        max_message_size: MAX_MESSAGE_BYTES as i32,
        storage: stream::StorageType::File,
        ..Default::default()
    };
    sized_stream(
        n,
        config,
        "detection stream",
        Some(DETECTIONS_MAX_BYTES_KEY),
    )
    .await
}

/// Opens the stream `config` names, creating it when absent. An existing stream is left as it
/// is (re-creating it would lose its messages): when its size differs from the configured one,
/// a warning says which is in force. A creation that nats-server refuses for lack of storage
/// becomes [`ClusterError::Storage`], naming the stream, the size and `key`.
async fn sized_stream(
    n: &Nats,
    config: stream::Config,
    what: &str,
    key: Option<SizeKey>,
) -> Result<stream::Stream, ClusterError> {
    let (name, asked) = (config.name.clone(), config.max_bytes);
    let s = match n.js.get_or_create_stream(config).await {
        Ok(s) => s,
        Err(e) => return Err(create_error(what, &name, asked, key, &e)),
    };
    let in_force = s.cached_info().config.max_bytes;
    if in_force != asked {
        tracing::warn!(
            stream = %name,
            configured_max_bytes = asked,
            stream_max_bytes = in_force,
            key = key.map_or("(fixed)", |k| k.0),
            "the existing stream keeps its size (set by the first node); the configured size \
             applies only to a new stream (resize it with `nats stream edit`, or delete it to \
             have it re-created, losing its messages)"
        );
    }
    Ok(s)
}

/// The JetStream error codes of a refusal for lack of storage: the server's file store is
/// full or reserved (10047), resources are insufficient (10023), the account's limit (10002).
const NO_STORAGE_CODES: [ErrorCode; 3] = [
    ErrorCode::STORAGE_RESOURCES_EXCEEDED,
    ErrorCode::INSUFFICIENT_RESOURCES,
    ErrorCode::ACCOUNT_RESOURCES_EXCEEDED,
];

fn create_error(
    what: &str,
    name: &str,
    asked: i64,
    key: Option<SizeKey>,
    e: &jetstream::context::CreateStreamError,
) -> ClusterError {
    match e.kind() {
        jetstream::context::CreateStreamErrorKind::JetStream(js)
            if NO_STORAGE_CODES.contains(&js.error_code()) =>
        {
            ClusterError::Storage {
                stream: name.to_string(),
                max_bytes: asked,
                key,
                server: js.to_string(),
            }
        }
        _ => err(what, e),
    }
}

/// `n` bytes for people: `8 GiB`, `300 MiB`, or the byte count.
pub fn human_bytes(n: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB")];
    for (size, unit) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if tenth == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenth} {unit}")
            };
        }
    }
    format!("{n} bytes")
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
    let what = format!("KV bucket {name}");
    sized_stream(
        n,
        stream::Config {
            name: format!("KV_{name}"),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: 1,
            max_age,
            // Room for every user list at its largest (the list bucket), else the small default.
            max_bytes: bucket_bytes(max_message),
            max_message_size: max_message,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        },
        &what,
        None,
    )
    .await?;
    n.js.get_key_value(name).await.map_err(|e| err(&what, e))
}

/// A bucket's size: room for every user list at its largest (the list bucket), else
/// [`SMALL_BUCKET_BYTES`].
fn bucket_bytes(max_message: i32) -> i64 {
    SMALL_BUCKET_BYTES.max(i64::from(max_message) * 300)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_bytes(OBS_MAX_BYTES), "8 GiB");
        assert_eq!(human_bytes(MIN_STREAM_MAX_BYTES), "64 MiB");
        assert_eq!(human_bytes(BUCKETS_RESERVED_BYTES), "620 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }

    #[test]
    fn the_buckets_reserve_what_the_docs_say() {
        // Five buckets with small values, the list bucket with whole lists.
        let buckets = [
            LEASE_BUCKET,
            NODE_BUCKET,
            OFFSET_BUCKET,
            CLUSTER_BUCKET,
            SUPPRESSION_BUCKET,
        ];
        let small: i64 = buckets.iter().map(|_| bucket_bytes(MAX_KV_VALUE)).sum();
        assert_eq!(
            small + bucket_bytes(MAX_LIST_MESSAGE),
            BUCKETS_RESERVED_BYTES
        );
        assert_eq!(bucket_bytes(MAX_LIST_MESSAGE), LIST_BUCKET_BYTES);
    }

    #[test]
    fn the_storage_error_names_stream_size_key_and_server_setting() {
        let e = ClusterError::Storage {
            stream: OBS_STREAM.into(),
            max_bytes: OBS_MAX_BYTES,
            key: Some(OBS_MAX_BYTES_KEY),
            server: "insufficient storage resources available".into(),
        }
        .to_string();
        for want in [
            "POOLWATCH_OBS",
            "8589934592 = 8 GiB",
            "`[cluster] obs_max_bytes` (or --obs-max-bytes; at least 64 MiB)",
            "max_file_store",
            "insufficient storage",
        ] {
            assert!(e.contains(want), "{want:?} missing from {e}");
        }
        let e = ClusterError::Storage {
            stream: format!("KV_{LIST_BUCKET}"),
            max_bytes: LIST_BUCKET_BYTES,
            key: None,
            server: String::new(),
        }
        .to_string();
        assert!(
            e.contains("its size is fixed: raise nats-server's max_file_store"),
            "{e}"
        );
    }
}
