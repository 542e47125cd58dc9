//! Scale-out on NATS JetStream (`poolwatch serve --cluster nats://HOST:PORT --role …`): sensors
//! publish observations to partitioned subjects, correlators claim partitions through leases
//! in a KV bucket and run the usual pipeline on them, API nodes serve a materialised view of
//! every correlator's detections. The single-box `serve` is untouched; this module wires the
//! same stages (capture, ingest, input, correlate, store, api) around NATS instead of one
//! in-process queue.
//!
//! ```text
//!  sensor (capture/follow/dnstap/import) ──publish, acked──▶ POOLWATCH_OBS  poolwatch.obs.<p>
//!                                                               │ durable pull consumer per p
//!                   poolwatch_leases (KV, TTL) ── lease p ──▶ correlator (matcher, engine, sled)
//!                                                               │ after the flush
//!                                                               ▼
//!                                            POOLWATCH_DETECTIONS  poolwatch.detections.<id>
//!                                                               │
//!                                                       api node (own sled, REST + SSE)
//! ```
//!
//! * [`wire`] — encodings, partition hash, subjects.
//! * [`nats`] — connection, streams and buckets (retention, limits) in one place.
//! * [`sensor`] — the bounded publish buffer and the acked publisher; follower offsets in KV.
//! * [`lease`] — partition leases (CAS create/update, TTL, renewal, fair share).
//! * [`correlator`] — consumers, the pipeline thread, ack-after-flush, detection publishing.
//! * [`updates`] — detection updates read back after each flush and published.
//! * [`apinode`] — the materialised view and the API.
//! * [`fleet`] — user lists and suppressions shared through KV buckets (every node).
//!
//! Operation and failure behaviour: docs/cluster.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::api::ApiOptions;
use crate::correlate::EngineConfig;
use crate::matcher::ListManagerConfig;

pub mod apinode;
pub mod correlator;
pub mod fleet;
pub mod lease;
pub mod nats;
pub mod sensor;
pub mod updates;
pub mod wire;

/// Partitions of a new cluster: enough for 16 correlators; a client's partition never moves.
pub const DEFAULT_PARTITIONS: u16 = 16;
/// Lease TTL: a dead correlator's partitions are free this long after its last renewal; the
/// survivors claim them within [`lease::takeover_bound`] of its death (TTL + 2 polls + one
/// request timeout: 30 s by default).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(15);
/// Shortest lease TTL accepted (renewals every TTL/3 must fit between JetStream round trips).
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(3);
/// Observations a sensor holds while NATS is slow or unreachable (~300 B each: ~30 MiB).
pub const DEFAULT_PUBLISH_BUFFER: usize = 100_000;

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Sensor,
    Correlator,
    Api,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sensor => "sensor",
            Role::Correlator => "correlator",
            Role::Api => "api",
        }
    }
}

/// The inputs of a sensor (serve's flags).
#[derive(Clone, Debug, Default)]
pub struct SensorInputs {
    pub interfaces: Vec<String>,
    pub bpf: Option<String>,
    pub follow: Vec<String>,
    pub dnstap: Vec<String>,
    pub import: Vec<PathBuf>,
}

/// Everything a node needs, assembled by `cli::serve` from the settings and flags.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub url: String,
    pub role: Role,
    /// Unique per node (leases, durable names, offsets).
    pub node: String,
    pub partitions: u16,
    pub lease_ttl: Duration,
    pub publish_buffer: usize,
    pub inputs: SensorInputs,
    pub db: PathBuf,
    pub listen: SocketAddr,
    pub api: ApiOptions,
    pub engine: EngineConfig,
    pub lists: ListManagerConfig,
    /// Sizes of the observation and detection streams when this node creates them.
    pub streams: nats::StreamSizes,
}

/// Errors that stop a cluster node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    #[error("cluster configuration: {0}")]
    Config(String),
    #[error("NATS: {0}")]
    Nats(String),
    /// nats-server refused to create a stream for lack of JetStream storage: it reserves a
    /// file stream's `max_bytes` against its `max_file_store` (docs/cluster.md, "Small disks").
    #[error("{}", storage_message(stream, *max_bytes, *key, server))]
    Storage {
        /// The stream (a KV bucket's stream is `KV_<bucket>`).
        stream: String,
        /// The size asked for.
        max_bytes: i64,
        /// The setting that sizes the stream, `None` for the buckets' fixed sizes.
        key: Option<nats::SizeKey>,
        /// nats-server's own words.
        server: String,
    },
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("pool lists: {0}")]
    Lists(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Input { what: String, message: String },
    #[error("{0}")]
    Internal(String),
}

fn storage_message(
    stream: &str,
    max_bytes: i64,
    key: Option<nats::SizeKey>,
    server: &str,
) -> String {
    let asked = nats::human_bytes(max_bytes);
    let lower = match key {
        Some((key, flag)) => format!(
            "lower `{key}` (or {flag}; at least {}), or raise",
            nats::human_bytes(nats::MIN_STREAM_MAX_BYTES)
        ),
        None => "its size is fixed: raise".to_string(),
    };
    format!(
        "NATS: nats-server has not enough JetStream file storage for stream {stream} \
         (max_bytes {max_bytes} = {asked}): {server}. nats-server reserves each file stream's \
         max_bytes against its `jetstream {{ max_file_store }}` (the KV buckets take {} more); \
         {lower} nats-server's max_file_store (docs/cluster.md, \"Small disks\")",
        nats::human_bytes(nats::BUCKETS_RESERVED_BYTES)
    )
}

/// Checks the options every role shares.
pub fn validate(o: &ClusterOptions) -> Result<(), ClusterError> {
    if o.partitions == 0 || o.partitions > wire::MAX_PARTITIONS {
        return Err(ClusterError::Config(format!(
            "--partitions must be 1..={}",
            wire::MAX_PARTITIONS
        )));
    }
    if o.lease_ttl < MIN_LEASE_TTL {
        return Err(ClusterError::Config(format!(
            "--lease-ttl must be at least {} s",
            MIN_LEASE_TTL.as_secs()
        )));
    }
    if o.node.is_empty()
        || o.node.len() > 64
        || !o
            .node
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ClusterError::Config(format!(
            "--node {:?}: 1-64 characters of A-Z a-z 0-9 - _",
            o.node
        )));
    }
    if o.publish_buffer == 0 {
        return Err(ClusterError::Config("--publish-buffer must be > 0".into()));
    }
    Ok(())
}

/// A node name for this host when `--node` is not given: `<hostname>-<pid>` made safe.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut s: String = host
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    if s.is_empty() {
        s.push_str("node");
    }
    format!("{s}-{}", std::process::id())
}

/// Runs the node until `shutdown` resolves.
pub async fn run<F>(opts: ClusterOptions, shutdown: F) -> Result<(), ClusterError>
where
    F: std::future::Future<Output = ()> + Send,
{
    validate(&opts)?;
    crate::metrics::gauge(
        "poolwatch_cluster_node_info",
        "1 for a cluster node, labelled by its role.",
        &[("role", opts.role.as_str())],
    )
    .set(1);
    tracing::info!(role = opts.role.as_str(), node = %opts.node, url = %opts.url, "cluster node starting");
    match opts.role {
        Role::Sensor => sensor::run(opts, shutdown).await,
        Role::Correlator => correlator::run(opts, shutdown).await,
        Role::Api => apinode::run(opts, shutdown).await,
    }
}

/// Binds the HTTP listener and prints `listening on http://ADDR` like `serve`.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ClusterError> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ClusterError::Bind { addr, source })?;
    let bound = l
        .local_addr()
        .map_err(|source| ClusterError::Bind { addr, source })?;
    eprintln!("listening on http://{bound}");
    tracing::info!(addr = %bound, "listening");
    Ok(l)
}
