//! Raw input, phase one: the flags of `poolwatch serve`, each also a `POOLWATCH_*` variable
//! (clap applies "flag beats env").

use std::path::PathBuf;

use super::*;

/// Flags of `poolwatch serve` (each also an environment variable). Flattened into the CLI's
/// `ServeArgs`; a flag or variable that is given replaces the file's value (lists included).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CliOptions {
    /// TOML configuration file (see poolwatch.example.toml). Flags and env vars override it.
    #[arg(long, short = 'c', env = "POOLWATCH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// API listen address [default: 127.0.0.1:8080].
    #[arg(long, env = "POOLWATCH_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Database directory (sled) [default: ./poolwatch.db].
    #[arg(long, env = "POOLWATCH_DB", value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// Capture live from this interface (repeatable; env: comma-separated).
    #[arg(
        long = "interface",
        short = 'i',
        env = "POOLWATCH_INTERFACE",
        value_name = "IF",
        value_delimiter = ','
    )]
    pub interfaces: Vec<String>,
    /// BPF filter for live capture (default: capture's own DNS + TCP/UDP filter).
    #[arg(long, env = "POOLWATCH_BPF", value_name = "FILTER")]
    pub bpf: Option<String>,
    /// Follow a resolver/flow log like `tail -F` (repeatable; globs allowed; env: colon-separated).
    #[arg(
        long,
        env = "POOLWATCH_FOLLOW",
        value_name = "FILE|GLOB",
        value_delimiter = ':'
    )]
    pub follow: Vec<String>,
    /// Read a pcap or log once, in the background, while the API serves (repeatable; env: colon-separated).
    #[arg(
        long,
        env = "POOLWATCH_IMPORT",
        value_name = "FILE",
        value_delimiter = ':'
    )]
    pub import: Vec<PathBuf>,
    /// Accept dnstap from resolvers on a socket: `unix:PATH` or `tcp:ADDR:PORT` (repeatable;
    /// env: comma-separated).
    #[arg(
        long,
        env = "POOLWATCH_DNSTAP",
        value_name = "unix:PATH|tcp:ADDR",
        value_delimiter = ','
    )]
    pub dnstap: Vec<String>,
    /// Pool list file or directory (repeatable; default: the built-in lists; env: colon-separated).
    #[arg(
        long = "blocklist",
        env = "POOLWATCH_BLOCKLIST",
        value_name = "PATH",
        value_delimiter = ':'
    )]
    pub blocklists: Vec<PathBuf>,
    /// Where lists uploaded through the API persist [default: <db>/lists].
    #[arg(long, env = "POOLWATCH_USER_LISTS", value_name = "DIR")]
    pub user_lists: Option<PathBuf>,
    /// Subscribe to a remote list: URL (http, https, file) with an optional refresh interval,
    /// e.g. `https://example.org/pools.txt,6h` (repeatable; env: space-separated).
    #[arg(
        long = "feed",
        env = "POOLWATCH_FEED",
        value_name = "URL[,INTERVAL]",
        value_delimiter = ' '
    )]
    pub feeds: Vec<String>,
    /// Let feeds download from loopback, link-local, private and reserved addresses (refused
    /// by default: see docs/security.md).
    #[arg(long, env = "POOLWATCH_FEEDS_ALLOW_PRIVATE")]
    pub feeds_allow_private: bool,
    /// A directory `file://` feeds may read from (repeatable; none by default; env:
    /// colon-separated).
    #[arg(
        long = "feeds-file-root",
        env = "POOLWATCH_FEEDS_FILE_ROOT",
        value_name = "DIR",
        value_delimiter = ':'
    )]
    pub feeds_file_roots: Vec<PathBuf>,
    /// A feed host allowed to be private although --feeds-allow-private is off (repeatable;
    /// env: comma-separated).
    #[arg(
        long = "feeds-allow-host",
        env = "POOLWATCH_FEEDS_ALLOW_HOST",
        value_name = "HOST",
        value_delimiter = ','
    )]
    pub feeds_allow_hosts: Vec<String>,
    /// Bearer token for writes (and reads). Without one, every write is refused.
    #[arg(
        long,
        env = "POOLWATCH_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<Secret>,
    /// Bearer token required for reads. Without one, reads are open.
    #[arg(
        long,
        env = "POOLWATCH_READ_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub read_token: Option<Secret>,
    /// Read the admin token from a file (keeps it out of `ps` and shell history).
    #[arg(
        long,
        env = "POOLWATCH_ADMIN_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "admin_token"
    )]
    pub admin_token_file: Option<PathBuf>,
    /// Read the read token from a file.
    #[arg(
        long,
        env = "POOLWATCH_READ_TOKEN_FILE",
        value_name = "FILE",
        conflicts_with = "read_token"
    )]
    pub read_token_file: Option<PathBuf>,
    /// A known resolver: its own upstream lookups are never reported (repeatable; env: comma-separated).
    #[arg(
        long = "resolver",
        env = "POOLWATCH_RESOLVER",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub resolvers: Vec<String>,
    /// An address your DNS firewall answers for blocked names: such answers are `blocked_lookup`
    /// (repeatable; env: comma-separated).
    #[arg(
        long = "sinkhole",
        env = "POOLWATCH_SINKHOLE",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub sinkholes: Vec<String>,
    /// Extra time a pool answer keeps attributing flows after its TTL (seconds, or 30m/6h/2d)
    /// [default: the correlation stage's].
    #[arg(long, env = "POOLWATCH_GRACE", value_name = "SECS")]
    pub grace: Option<String>,
    /// A client is `is_new` when it had no mining detection in this many days [default: 30].
    #[arg(long, env = "POOLWATCH_LOOKBACK_DAYS", value_name = "N")]
    pub lookback_days: Option<u32>,
    /// Delete detections and flows older than this many days; 0 keeps everything [default: 90].
    #[arg(long, env = "POOLWATCH_RETENTION_DAYS", value_name = "N")]
    pub retention_days: Option<u32>,
    /// Largest accepted request body in bytes [default: 4194304].
    #[arg(long, env = "POOLWATCH_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<u64>,
    /// Deadline for one API request, seconds (or 30s/2m) [default: 30].
    #[arg(long, env = "POOLWATCH_REQUEST_TIMEOUT", value_name = "SECS")]
    pub request_timeout: Option<String>,
    /// Most API connections served at once [default: 1024].
    #[arg(long, env = "POOLWATCH_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u64>,
    /// Most API connections from one client address (IPv6: one /64); 0 = no cap [default: 128].
    #[arg(long, env = "POOLWATCH_MAX_CONNECTIONS_PER_CLIENT", value_name = "N")]
    pub max_connections_per_client: Option<u64>,
    /// Connections reserved for /healthz and /readyz when the others are taken [default: 32].
    #[arg(long, env = "POOLWATCH_PROBE_CONNECTIONS", value_name = "N")]
    pub probe_connections: Option<u64>,
    /// Deadline for a complete request head, seconds [default: 10].
    #[arg(long, env = "POOLWATCH_HEADER_READ_TIMEOUT", value_name = "SECS")]
    pub header_read_timeout: Option<String>,
    /// Close a connection whose client accepts no response data for this long [default: 10].
    #[arg(long, env = "POOLWATCH_WRITE_TIMEOUT", value_name = "SECS")]
    pub write_timeout: Option<String>,
    /// Close a keep-alive connection idle for this long [default: 75].
    #[arg(long, env = "POOLWATCH_IDLE_TIMEOUT", value_name = "SECS")]
    pub idle_timeout: Option<String>,
    /// Requests served on one connection before it closes [default: 1000].
    #[arg(long, env = "POOLWATCH_MAX_REQUESTS_PER_CONNECTION", value_name = "N")]
    pub max_requests_per_connection: Option<u64>,
    /// Longest request target (path and query) in bytes; 414 beyond [default: 8192].
    #[arg(long, env = "POOLWATCH_MAX_URI_LEN", value_name = "BYTES")]
    pub max_uri_len: Option<u64>,
    /// Largest total of a request's header fields in bytes; 431 beyond [default: 16384].
    #[arg(long, env = "POOLWATCH_MAX_HEADER_BYTES", value_name = "BYTES")]
    pub max_header_bytes: Option<u64>,
    /// Cluster: size of the observation stream when this node creates it, in bytes (at least
    /// 64 MiB; an existing stream keeps its size) [default: 8589934592 = 8 GiB].
    #[arg(long, env = "POOLWATCH_OBS_MAX_BYTES", value_name = "BYTES")]
    pub obs_max_bytes: Option<u64>,
    /// Cluster: size of the detection stream when this node creates it, in bytes (at least
    /// 64 MiB) [default: 4294967296 = 4 GiB].
    #[arg(long, env = "POOLWATCH_DETECTIONS_MAX_BYTES", value_name = "BYTES")]
    pub detections_max_bytes: Option<u64>,
    /// Push detections to a sink: `file:PATH[,format=ecs]`, `syslog:tcp://HOST:PORT[,format=cef]`,
    /// `webhook:URL` (repeatable; replaces the file's `[[output]]` tables; see docs/outputs.md).
    #[arg(
        long = "output",
        env = "POOLWATCH_OUTPUT",
        value_name = "TYPE:TARGET[,KEY=VALUE…]",
        value_delimiter = ' '
    )]
    pub outputs: Vec<String>,
}
