//! Service configuration for `poolwatch serve`: a TOML file, command-line flags and `POOLWATCH_*`
//! environment variables, merged with the precedence **flags > env > file > defaults** and
//! validated into [`Settings`].
//!
//! Two phases, so that every error names what the user typed:
//! 1. raw input: [`FileConfig`] (serde, unknown keys rejected so a typo is an error, not a silently
//!    ignored setting) and [`CliOptions`] (clap; clap itself applies "flag beats env");
//! 2. [`Settings::resolve`] merges them and checks every value, reporting the key or flag.
//!
//! Tokens are [`Secret`]s: their `Debug`/`Display`/`Serialize` never show the value.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Default API address: loopback only, so a fresh install exposes nothing to the network.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default database directory (relative to the working directory).
pub const DEFAULT_DB: &str = "poolwatch.db";
/// Sub-directory of the database directory where API-uploaded lists persist by default.
pub const DEFAULT_USER_LISTS_SUBDIR: &str = "lists";
/// Look-back for `is_new` (issue 6: 30 days).
pub const DEFAULT_LOOKBACK_DAYS: u32 = 30;
/// Retention of stored detections and flows; 0 keeps everything.
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// Longest look-back / retention accepted: ten years; anything longer is a typo.
pub const MAX_DAYS: u32 = 3650;
/// Default request-body limit: big enough for a large user list upload (the wave-2 list routes),
/// small enough that a flood of bodies cannot exhaust memory.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Largest configurable body limit.
pub const MAX_MAX_BODY: usize = 256 * 1024 * 1024;
/// Smallest configurable body limit: below this not even a suppression fits.
pub const MIN_MAX_BODY: usize = 1024;
/// Default per-request deadline (slow clients and slow backends time out).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest configurable per-request deadline.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Shortest accepted token: shorter ones are guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest accepted token (a header-size sanity bound).
pub const MAX_TOKEN_LEN: usize = 1024;
/// Feed refresh interval when none is given.
pub const DEFAULT_FEED_INTERVAL_SECS: u64 = 6 * 3600;
/// Shortest feed interval: list publishers should not be polled more often than this.
pub const MIN_FEED_INTERVAL_SECS: u64 = 60;
/// Longest feed interval: one week.
pub const MAX_FEED_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// Default size limit of one feed download.
pub const DEFAULT_FEED_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Largest configurable feed size limit.
pub const MAX_FEED_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Longest binding grace accepted (30 days).
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
/// Largest configuration file read: a config is a few KiB; anything huge is a mistake.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
/// Longest list/feed name (also a file name under the user-lists directory).
pub const MAX_LIST_NAME_LEN: usize = 64;
/// Longest BPF filter expression accepted.
pub const MAX_BPF_LEN: usize = 4096;
/// Longest Unix socket path (sun_path is 108 bytes including the NUL).
pub const MAX_UNIX_PATH_LEN: usize = 107;
/// Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
pub const MAX_INTERFACE_LEN: usize = 15;

/// Errors found while loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is larger than {MAX_CONFIG_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is out of range or malformed; `key` names the flag/env var or the file key.
    #[error("invalid {key}: {message}")]
    Invalid { key: String, message: String },
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// A bearer token. Never printed: `Debug`, `Display` and `Serialize` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The token itself, for the one place that compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(String::deserialize(d)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw input: the file
// ---------------------------------------------------------------------------------------------

/// A duration in the file: seconds as an integer, or text with a unit (`90s`, `30m`, `6h`, `2d`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum DurationSpec {
    Secs(u64),
    Text(String),
}

/// One `[[feeds]]` table.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    pub url: String,
    /// List name the feed's entries appear under (default: derived from the URL).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub interval: Option<DurationSpec>,
    #[serde(default)]
    pub max_bytes: Option<u64>,
}

/// `feeds` in the file: either the plain array of `[[feeds]]` subscriptions, or a `[feeds]`
/// table with the fetch policy and its subscriptions in `[[feeds.list]]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FeedsSection {
    List(Vec<FeedConfig>),
    Table(FeedsTable),
}

/// The `[feeds]` table.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeedsTable {
    /// Allow feed downloads from loopback, link-local, private and reserved addresses.
    pub allow_private: Option<bool>,
    /// Directories `file://` feeds may read; none by default.
    pub file_roots: Option<Vec<PathBuf>>,
    /// Hosts that may be private although `allow_private` is off.
    pub allow_hosts: Option<Vec<String>>,
    /// The subscriptions (`[[feeds.list]]`).
    pub list: Option<Vec<FeedConfig>>,
}

impl FeedsSection {
    fn into_parts(self) -> (Vec<FeedConfig>, FeedsTable) {
        match self {
            FeedsSection::List(l) => (l, FeedsTable::default()),
            FeedsSection::Table(mut t) => (t.list.take().unwrap_or_default(), t),
        }
    }
}

impl<'de> Deserialize<'de> for FeedsSection {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FeedsSection;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[[feeds]] tables or a [feeds] table")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                Vec::<FeedConfig>::deserialize(serde::de::value::SeqAccessDeserializer::new(a))
                    .map(FeedsSection::List)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                a: A,
            ) -> Result<Self::Value, A::Error> {
                FeedsTable::deserialize(serde::de::value::MapAccessDeserializer::new(a))
                    .map(FeedsSection::Table)
            }
        }
        d.deserialize_any(V)
    }
}

/// The `[api]` table: connection limits of the REST API (see `docs/security.md`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiFileConfig {
    pub max_connections: Option<u64>,
    pub max_connections_per_client: Option<u64>,
    pub probe_connections: Option<u64>,
    pub header_read_timeout: Option<DurationSpec>,
    pub write_timeout: Option<DurationSpec>,
    pub idle_timeout: Option<DurationSpec>,
    pub max_requests_per_connection: Option<u64>,
    pub max_uri_len: Option<u64>,
    pub max_header_bytes: Option<u64>,
}

/// The TOML configuration file, as written. Every key is optional; see
/// `poolwatch.example.toml` for each one's meaning and default.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub db: Option<PathBuf>,
    pub interfaces: Option<Vec<String>>,
    pub bpf: Option<String>,
    pub follow: Option<Vec<String>>,
    pub import: Option<Vec<PathBuf>>,
    pub dnstap: Option<Vec<String>>,
    pub blocklists: Option<Vec<PathBuf>>,
    pub user_lists: Option<PathBuf>,
    pub feeds: Option<FeedsSection>,
    pub admin_token: Option<Secret>,
    pub read_token: Option<Secret>,
    pub admin_token_file: Option<PathBuf>,
    pub read_token_file: Option<PathBuf>,
    pub resolvers: Option<Vec<String>>,
    pub sinkholes: Option<Vec<String>>,
    pub grace: Option<DurationSpec>,
    pub lookback_days: Option<u32>,
    pub retention_days: Option<u32>,
    pub max_body: Option<u64>,
    pub request_timeout: Option<DurationSpec>,
    pub log_json: Option<bool>,
    pub log_level: Option<String>,
    /// `[api]`: connection limits.
    pub api: Option<ApiFileConfig>,
    /// Alert sinks (`[[output]]` tables; `crate::output::config`).
    pub output: Option<Vec<crate::output::OutputConfig>>,
    /// `[history]`: the DNS and flow history of the retro-hunt (docs/hunt.md).
    pub history: Option<HistoryFileConfig>,
}

/// `[history]` as written: `enabled` (default true), `retention_days` (default 30),
/// `max_bytes` (default 1 GiB). See `crate::hunt::HistoryConfig`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryFileConfig {
    pub enabled: Option<bool>,
    pub retention_days: Option<u32>,
    pub max_bytes: Option<u64>,
}

fn resolve_history(
    file: Option<HistoryFileConfig>,
) -> Result<Option<crate::hunt::HistoryConfig>, ConfigError> {
    let f = file.unwrap_or_default();
    if f.enabled == Some(false) {
        return Ok(None);
    }
    let d = crate::hunt::HistoryConfig::default();
    let retention_days = f.retention_days.unwrap_or(d.retention_days);
    if retention_days == 0 || retention_days > 3_650 {
        return Err(ConfigError::Invalid {
            key: "history.retention_days".into(),
            message: format!("{retention_days} is not between 1 and 3650 days"),
        });
    }
    let max_bytes = f.max_bytes.unwrap_or(d.max_bytes);
    if max_bytes < 1 << 20 {
        return Err(ConfigError::Invalid {
            key: "history.max_bytes".into(),
            message: format!("{max_bytes} is below the 1 MiB minimum"),
        });
    }
    Ok(Some(crate::hunt::HistoryConfig {
        retention_days,
        max_bytes,
    }))
}

impl FileConfig {
    /// Reads and parses a config file. Relative paths inside it are taken relative to the file's
    /// directory (so a config works whatever the service's working directory is).
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = read_bounded(path, MAX_CONFIG_FILE_BYTES)
            .map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?
            .ok_or_else(|| ConfigError::TooLarge {
                path: path.to_path_buf(),
            })?;
        let mut cfg = FileConfig::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        })?;
        if let Some(dir) = path.parent() {
            cfg.rebase(dir);
        }
        Ok(cfg)
    }

    /// Parses TOML text (the error message carries line and column).
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn rebase(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        if let Some(FeedsSection::Table(t)) = self.feeds.as_mut() {
            for p in t.file_roots.iter_mut().flatten() {
                fix(p);
            }
        }
        for p in [
            self.db.as_mut(),
            self.user_lists.as_mut(),
            self.admin_token_file.as_mut(),
            self.read_token_file.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for list in [self.import.as_mut(), self.blocklists.as_mut()]
            .into_iter()
            .flatten()
        {
            list.iter_mut().for_each(fix);
        }
        for o in self.output.iter_mut().flatten() {
            o.rebase(dir);
        }
        if let Some(follow) = self.follow.as_mut() {
            for f in follow.iter_mut() {
                if Path::new(f.as_str()).is_relative() {
                    *f = dir.join(f.as_str()).to_string_lossy().into_owned();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw input: flags and environment
// ---------------------------------------------------------------------------------------------

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

/// Validated `[api]` connection limits (see [`crate::api::ApiOptions`] for their meaning).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiSettings {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub probe_connections: usize,
    #[serde(serialize_with = "ser_secs")]
    pub header_read_timeout: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub write_timeout: Duration,
    #[serde(serialize_with = "ser_secs")]
    pub idle_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_uri_len: usize,
    pub max_header_bytes: usize,
}

impl Default for ApiSettings {
    fn default() -> Self {
        use crate::api as a;
        ApiSettings {
            max_connections: a::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: a::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            probe_connections: a::DEFAULT_PROBE_CONNECTIONS,
            header_read_timeout: a::DEFAULT_HEADER_READ_TIMEOUT,
            write_timeout: a::DEFAULT_WRITE_TIMEOUT,
            idle_timeout: a::DEFAULT_IDLE_TIMEOUT,
            max_requests_per_connection: a::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_uri_len: a::DEFAULT_MAX_URI_LEN,
            max_header_bytes: a::DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Smallest `max_uri_len` / `max_header_bytes` accepted: a real request needs this much.
pub const MIN_HEAD_LIMIT: u64 = 1024;
/// Largest `max_uri_len` / `max_header_bytes` accepted (hyper's own head limit is 400 KiB).
pub const MAX_HEAD_LIMIT: u64 = 256 * 1024;
/// Largest `max_requests_per_connection` accepted.
pub const MAX_REQUESTS_PER_CONNECTION: u64 = 1_000_000;

/// A number from flag/env or the `[api]` table, within `lo..=hi`.
fn api_num(
    cli: Option<u64>,
    file: Option<u64>,
    names: Names<'_>,
    default: u64,
    (lo, hi): (u64, u64),
) -> Result<u64, ConfigError> {
    match pick(cli, file, names) {
        Some((v, o)) if v < lo || v > hi => Err(o.err(format!("must be {lo} to {hi}"))),
        Some((v, _)) => Ok(v),
        None => Ok(default),
    }
}

/// A duration from flag/env or the `[api]` table, 1 s to [`crate::api::MAX_CONN_TIMEOUT_SECS`].
fn api_secs(
    cli: Option<String>,
    file: Option<DurationSpec>,
    names: Names<'_>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    let max = crate::api::MAX_CONN_TIMEOUT_SECS;
    match pick(cli.map(DurationSpec::Text), file, names) {
        Some((d, o)) => {
            let secs = duration_secs(&d).map_err(|m| o.err(m))?;
            if secs == 0 || secs > max {
                return Err(o.err(format!("must be 1 to {max} seconds")));
            }
            Ok(Duration::from_secs(secs))
        }
        None => Ok(default),
    }
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

fn resolve_api(cli: &CliOptions, file: Option<ApiFileConfig>) -> Result<ApiSettings, ConfigError> {
    use crate::api as a;
    let f = file.unwrap_or_default();
    let d = ApiSettings::default();
    Ok(ApiSettings {
        max_connections: usize_of(api_num(
            cli.max_connections,
            f.max_connections,
            (
                "max-connections",
                "POOLWATCH_MAX_CONNECTIONS",
                "api.max_connections",
            ),
            d.max_connections as u64,
            (1, a::MAX_MAX_CONNECTIONS as u64),
        )?),
        max_connections_per_client: usize_of(api_num(
            cli.max_connections_per_client,
            f.max_connections_per_client,
            (
                "max-connections-per-client",
                "POOLWATCH_MAX_CONNECTIONS_PER_CLIENT",
                "api.max_connections_per_client",
            ),
            d.max_connections_per_client as u64,
            (0, a::MAX_MAX_CONNECTIONS as u64),
        )?),
        probe_connections: usize_of(api_num(
            cli.probe_connections,
            f.probe_connections,
            (
                "probe-connections",
                "POOLWATCH_PROBE_CONNECTIONS",
                "api.probe_connections",
            ),
            d.probe_connections as u64,
            (0, a::MAX_PROBE_CONNECTIONS as u64),
        )?),
        header_read_timeout: api_secs(
            cli.header_read_timeout.clone(),
            f.header_read_timeout,
            (
                "header-read-timeout",
                "POOLWATCH_HEADER_READ_TIMEOUT",
                "api.header_read_timeout",
            ),
            d.header_read_timeout,
        )?,
        write_timeout: api_secs(
            cli.write_timeout.clone(),
            f.write_timeout,
            (
                "write-timeout",
                "POOLWATCH_WRITE_TIMEOUT",
                "api.write_timeout",
            ),
            d.write_timeout,
        )?,
        idle_timeout: api_secs(
            cli.idle_timeout.clone(),
            f.idle_timeout,
            ("idle-timeout", "POOLWATCH_IDLE_TIMEOUT", "api.idle_timeout"),
            d.idle_timeout,
        )?,
        max_requests_per_connection: api_num(
            cli.max_requests_per_connection,
            f.max_requests_per_connection,
            (
                "max-requests-per-connection",
                "POOLWATCH_MAX_REQUESTS_PER_CONNECTION",
                "api.max_requests_per_connection",
            ),
            d.max_requests_per_connection,
            (1, MAX_REQUESTS_PER_CONNECTION),
        )?,
        max_uri_len: usize_of(api_num(
            cli.max_uri_len,
            f.max_uri_len,
            ("max-uri-len", "POOLWATCH_MAX_URI_LEN", "api.max_uri_len"),
            d.max_uri_len as u64,
            (MIN_HEAD_LIMIT, MAX_HEAD_LIMIT),
        )?),
        max_header_bytes: usize_of(api_num(
            cli.max_header_bytes,
            f.max_header_bytes,
            (
                "max-header-bytes",
                "POOLWATCH_MAX_HEADER_BYTES",
                "api.max_header_bytes",
            ),
            d.max_header_bytes as u64,
            (MIN_HEAD_LIMIT, MAX_HEAD_LIMIT),
        )?),
    })
}

// ---------------------------------------------------------------------------------------------
// Validated settings
// ---------------------------------------------------------------------------------------------

/// One remote list subscription.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedSettings {
    pub url: String,
    /// List name (safe as a file name: `[a-z0-9._-]`, at most [`MAX_LIST_NAME_LEN`]).
    pub name: String,
    #[serde(serialize_with = "ser_secs")]
    pub interval: Duration,
    pub max_bytes: u64,
}

/// The validated service configuration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub interfaces: Vec<String>,
    pub bpf: Option<String>,
    /// Files or glob patterns to follow.
    pub follow: Vec<String>,
    /// Files read once at start-up (they exist: checked).
    pub import: Vec<PathBuf>,
    /// dnstap sockets to listen on (`unix:PATH` / `tcp:ADDR`, validated).
    pub dnstap: Vec<String>,
    /// List files/directories (they exist: checked); empty means the built-in lists.
    pub blocklists: Vec<PathBuf>,
    pub user_lists: PathBuf,
    pub feeds: Vec<FeedSettings>,
    /// `feeds.allow_private`.
    pub feed_allow_private: bool,
    /// `feeds.file_roots` (existing directories).
    pub feed_file_roots: Vec<PathBuf>,
    /// `feeds.allow_hosts`.
    pub feed_allow_hosts: Vec<String>,
    pub admin_token: Option<Secret>,
    pub read_token: Option<Secret>,
    pub resolvers: Vec<IpAddr>,
    pub sinkholes: Vec<IpAddr>,
    /// `None`: the correlation stage's default.
    #[serde(serialize_with = "ser_opt_secs")]
    pub grace: Option<Duration>,
    pub lookback_days: u32,
    /// 0 keeps everything.
    pub retention_days: u32,
    pub max_body: usize,
    #[serde(serialize_with = "ser_secs")]
    pub request_timeout: Duration,
    /// `[api]` connection limits.
    pub api: ApiSettings,
    /// From the file only; the global `--log-json`/`POOLWATCH_LOG_JSON` flag also turns it on.
    pub log_json: bool,
    /// From the file only; the global `--log-level` flag governs when given.
    pub log_level: Option<String>,
    /// Alert sinks (validated `[[output]]` tables or `--output` flags).
    pub outputs: Vec<crate::output::OutputSettings>,
    /// `[history]`; `None`: no history is kept (and no retro-hunt runs).
    pub history: Option<crate::hunt::HistoryConfig>,
}

impl Default for Settings {
    fn default() -> Self {
        // Resolving empty input cannot fail: every default is valid.
        Settings::resolve(&CliOptions::default(), FileConfig::default()).unwrap_or_else(|_| {
            Settings {
                listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
                db: PathBuf::from(DEFAULT_DB),
                interfaces: Vec::new(),
                bpf: None,
                follow: Vec::new(),
                import: Vec::new(),
                dnstap: Vec::new(),
                blocklists: Vec::new(),
                user_lists: Path::new(DEFAULT_DB).join(DEFAULT_USER_LISTS_SUBDIR),
                feeds: Vec::new(),
                feed_allow_private: false,
                feed_file_roots: Vec::new(),
                feed_allow_hosts: Vec::new(),
                admin_token: None,
                read_token: None,
                resolvers: Vec::new(),
                sinkholes: Vec::new(),
                grace: None,
                lookback_days: DEFAULT_LOOKBACK_DAYS,
                retention_days: DEFAULT_RETENTION_DAYS,
                max_body: DEFAULT_MAX_BODY,
                request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
                api: ApiSettings::default(),
                log_json: false,
                log_level: None,
                outputs: Vec::new(),
                history: Some(crate::hunt::HistoryConfig::default()),
            }
        })
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
enum Origin<'a> {
    Cli { flag: &'a str, env: &'a str },
    File { key: &'a str },
}

impl Origin<'_> {
    fn name(self) -> String {
        match self {
            Origin::Cli { flag, env } => format!("--{flag} (or {env})"),
            Origin::File { key } => format!("`{key}` in the config file"),
        }
    }
    fn err(self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.name(),
            message: message.into(),
        }
    }
}

/// A setting's names: (flag without `--`, environment variable, config-file key).
type Names<'a> = (&'a str, &'a str, &'a str);

/// Picks the CLI value when present, else the file's, remembering which.
fn pick<'a, T>(cli: Option<T>, file: Option<T>, names: Names<'a>) -> Option<(T, Origin<'a>)> {
    let (flag, env, key) = names;
    match (cli, file) {
        (Some(v), _) => Some((v, Origin::Cli { flag, env })),
        (None, Some(v)) => Some((v, Origin::File { key })),
        (None, None) => None,
    }
}

/// The CLI list when it has items, else the file's (empty when absent), remembering which.
fn pick_list<'a, T>(cli: Vec<T>, file: Option<Vec<T>>, names: Names<'a>) -> (Vec<T>, Origin<'a>) {
    let (flag, env, key) = names;
    if !cli.is_empty() {
        return (cli, Origin::Cli { flag, env });
    }
    (file.unwrap_or_default(), Origin::File { key })
}

/// A path that must not be empty.
fn nonempty_path(p: PathBuf, o: Origin<'_>) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(o.err("empty path"));
    }
    Ok(p)
}

impl Settings {
    /// Loads the file named by `--config` (if any) and merges it with the flags.
    pub fn load(cli: &CliOptions) -> Result<Settings, ConfigError> {
        let file = match &cli.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Settings::resolve(cli, file)
    }

    /// Merges flags/env (already combined by clap) over the file over the defaults, and
    /// validates every value.
    pub fn resolve(cli: &CliOptions, file: FileConfig) -> Result<Settings, ConfigError> {
        let listen = match pick(
            cli.listen.clone(),
            file.listen,
            ("listen", "POOLWATCH_LISTEN", "listen"),
        ) {
            Some((s, o)) => parse_listen(&s).map_err(|m| o.err(m))?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let db = match pick(cli.db.clone(), file.db, ("db", "POOLWATCH_DB", "db")) {
            Some((p, o)) => nonempty_path(p, o)?,
            None => PathBuf::from(DEFAULT_DB),
        };

        let (interfaces, o) = pick_list(
            cli.interfaces.clone(),
            file.interfaces,
            ("interface", "POOLWATCH_INTERFACE", "interfaces"),
        );
        for i in &interfaces {
            validate_interface(i).map_err(|m| o.err(m))?;
        }

        let bpf = match pick(cli.bpf.clone(), file.bpf, ("bpf", "POOLWATCH_BPF", "bpf")) {
            Some((b, o)) => {
                let b = b.trim().to_string();
                if b.is_empty() || b.len() > MAX_BPF_LEN {
                    return Err(o.err(format!(
                        "a BPF filter must be 1 to {MAX_BPF_LEN} characters"
                    )));
                }
                Some(b)
            }
            None => None,
        };

        let (follow, o) = pick_list(
            cli.follow.clone(),
            file.follow,
            ("follow", "POOLWATCH_FOLLOW", "follow"),
        );
        for f in &follow {
            if f.is_empty() {
                return Err(o.err("empty path"));
            }
            glob::Pattern::new(f).map_err(|e| o.err(format!("bad glob {f:?}: {e}")))?;
        }

        let (import, o) = pick_list(
            cli.import.clone(),
            file.import,
            ("import", "POOLWATCH_IMPORT", "import"),
        );
        for p in &import {
            if !p.is_file() {
                return Err(o.err(format!("{} is not a readable file", p.display())));
            }
        }

        let (dnstap, o) = pick_list(
            cli.dnstap.clone(),
            file.dnstap,
            ("dnstap", "POOLWATCH_DNSTAP", "dnstap"),
        );
        for d in &dnstap {
            validate_dnstap(d).map_err(|m| o.err(m))?;
        }

        let (blocklists, o) = pick_list(
            cli.blocklists.clone(),
            file.blocklists,
            ("blocklist", "POOLWATCH_BLOCKLIST", "blocklists"),
        );
        for p in &blocklists {
            if !p.exists() {
                return Err(o.err(format!("{} does not exist", p.display())));
            }
        }

        let user_lists = match pick(
            cli.user_lists.clone(),
            file.user_lists,
            ("user-lists", "POOLWATCH_USER_LISTS", "user_lists"),
        ) {
            Some((p, o)) => nonempty_path(p, o)?,
            None => db.join(DEFAULT_USER_LISTS_SUBDIR),
        };

        let (file_feeds, feed_table) = file.feeds.map(FeedsSection::into_parts).unwrap_or_default();
        let feed_allow_private =
            cli.feeds_allow_private || feed_table.allow_private.unwrap_or(false);
        let (feed_file_roots, o) = pick_list(
            cli.feeds_file_roots.clone(),
            feed_table.file_roots,
            (
                "feeds-file-root",
                "POOLWATCH_FEEDS_FILE_ROOT",
                "feeds.file_roots",
            ),
        );
        if feed_file_roots.len() > crate::matcher::MAX_FEED_POLICY_ENTRIES {
            return Err(o.err(format!(
                "at most {} directories",
                crate::matcher::MAX_FEED_POLICY_ENTRIES
            )));
        }
        for p in &feed_file_roots {
            if !p.is_absolute() || !p.is_dir() {
                return Err(o.err(format!(
                    "{} is not an existing absolute directory",
                    p.display()
                )));
            }
        }
        let (feed_allow_hosts, o) = pick_list(
            cli.feeds_allow_hosts.clone(),
            feed_table.allow_hosts,
            (
                "feeds-allow-host",
                "POOLWATCH_FEEDS_ALLOW_HOST",
                "feeds.allow_hosts",
            ),
        );
        if feed_allow_hosts.len() > crate::matcher::MAX_FEED_POLICY_ENTRIES
            || feed_allow_hosts.iter().any(|h| {
                h.is_empty() || h.len() > 255 || h.contains(['/', ' ', ':']) && !h.starts_with('[')
            })
        {
            return Err(o.err(format!(
                "at most {} host names or literal addresses (IPv6 in brackets), no ports",
                crate::matcher::MAX_FEED_POLICY_ENTRIES
            )));
        }
        let mut feeds = Vec::new();
        if !cli.feeds.is_empty() {
            let o = Origin::Cli {
                flag: "feed",
                env: "POOLWATCH_FEED",
            };
            for spec in &cli.feeds {
                let (url, interval) = match spec.split_once(',') {
                    Some((u, i)) => (u, Some(DurationSpec::Text(i.to_string()))),
                    None => (spec.as_str(), None),
                };
                let fc = FeedConfig {
                    url: url.to_string(),
                    interval,
                    ..FeedConfig::default()
                };
                feeds.push(validate_feed(&fc).map_err(|m| o.err(m))?);
            }
        } else {
            let o = Origin::File { key: "feeds" };
            for fc in file_feeds {
                feeds.push(validate_feed(&fc).map_err(|m| o.err(m))?);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for f in &feeds {
            if !seen.insert(f.name.clone()) {
                return Err(ConfigError::Invalid {
                    key: "feeds".into(),
                    message: format!("two feeds share the list name {:?}", f.name),
                });
            }
        }

        let admin_token = token(
            cli.admin_token.clone(),
            cli.admin_token_file.clone(),
            file.admin_token,
            file.admin_token_file,
            ("admin-token", "POOLWATCH_ADMIN_TOKEN", "admin_token"),
        )?;
        let read_token = token(
            cli.read_token.clone(),
            cli.read_token_file.clone(),
            file.read_token,
            file.read_token_file,
            ("read-token", "POOLWATCH_READ_TOKEN", "read_token"),
        )?;
        if let (Some(a), Some(r)) = (&admin_token, &read_token) {
            if a == r {
                return Err(ConfigError::Invalid {
                    key: "read-token".into(),
                    message: "the read token must differ from the admin token".into(),
                });
            }
        }

        let (resolvers, o) = pick_list(
            cli.resolvers.clone(),
            file.resolvers,
            ("resolver", "POOLWATCH_RESOLVER", "resolvers"),
        );
        let resolvers = parse_ips(&resolvers).map_err(|m| o.err(m))?;
        let (sinkholes, o) = pick_list(
            cli.sinkholes.clone(),
            file.sinkholes,
            ("sinkhole", "POOLWATCH_SINKHOLE", "sinkholes"),
        );
        let sinkholes = parse_ips(&sinkholes).map_err(|m| o.err(m))?;

        let grace = match pick(
            cli.grace.clone().map(DurationSpec::Text),
            file.grace,
            ("grace", "POOLWATCH_GRACE", "grace"),
        ) {
            Some((d, o)) => {
                let secs = duration_secs(&d).map_err(|m| o.err(m))?;
                if secs > MAX_GRACE_SECS {
                    return Err(o.err(format!("at most {MAX_GRACE_SECS} seconds (30 days)")));
                }
                Some(Duration::from_secs(secs))
            }
            None => None,
        };

        let lookback_days = match pick(
            cli.lookback_days,
            file.lookback_days,
            ("lookback-days", "POOLWATCH_LOOKBACK_DAYS", "lookback_days"),
        ) {
            Some((d, o)) if d == 0 || d > MAX_DAYS => {
                return Err(o.err(format!("must be 1 to {MAX_DAYS} days")));
            }
            Some((d, _)) => d,
            None => DEFAULT_LOOKBACK_DAYS,
        };
        let retention_days = match pick(
            cli.retention_days,
            file.retention_days,
            (
                "retention-days",
                "POOLWATCH_RETENTION_DAYS",
                "retention_days",
            ),
        ) {
            Some((d, o)) if d > MAX_DAYS => {
                return Err(o.err(format!("must be 0 (keep all) to {MAX_DAYS} days")));
            }
            Some((d, _)) => d,
            None => DEFAULT_RETENTION_DAYS,
        };

        let max_body = match pick(
            cli.max_body,
            file.max_body,
            ("max-body", "POOLWATCH_MAX_BODY", "max_body"),
        ) {
            Some((b, o)) => {
                if b < MIN_MAX_BODY as u64 || b > MAX_MAX_BODY as u64 {
                    return Err(o.err(format!("must be {MIN_MAX_BODY} to {MAX_MAX_BODY} bytes")));
                }
                usize::try_from(b).map_err(|_| o.err("too large for this platform"))?
            }
            None => DEFAULT_MAX_BODY,
        };

        let request_timeout = match pick(
            cli.request_timeout.clone().map(DurationSpec::Text),
            file.request_timeout,
            (
                "request-timeout",
                "POOLWATCH_REQUEST_TIMEOUT",
                "request_timeout",
            ),
        ) {
            Some((d, o)) => {
                let secs = duration_secs(&d).map_err(|m| o.err(m))?;
                if secs == 0 || secs > MAX_REQUEST_TIMEOUT_SECS {
                    return Err(o.err(format!("must be 1 to {MAX_REQUEST_TIMEOUT_SECS} seconds")));
                }
                Duration::from_secs(secs)
            }
            None => Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
        };

        let api = resolve_api(cli, file.api)?;

        let log_level = match file.log_level {
            Some(l) => {
                if tracing_subscriber::EnvFilter::try_new(&l).is_err() {
                    return Err(Origin::File { key: "log_level" }
                        .err(format!("{l:?} is not a log filter (try `info`)")));
                }
                Some(l)
            }
            None => None,
        };

        let outputs = if !cli.outputs.is_empty() {
            let o = Origin::Cli {
                flag: "output",
                env: "POOLWATCH_OUTPUT",
            };
            let mut cfgs = Vec::with_capacity(cli.outputs.len());
            for spec in &cli.outputs {
                cfgs.push(crate::output::config::parse_flag(spec).map_err(|m| o.err(m))?);
            }
            crate::output::config::validate_all(&cfgs).map_err(|(i, m)| {
                o.err(format!(
                    "{:?}: {m}",
                    cli.outputs.get(i).map_or("", |s| s.as_str())
                ))
            })?
        } else {
            let cfgs = file.output.unwrap_or_default();
            crate::output::config::validate_all(&cfgs).map_err(|(i, m)| ConfigError::Invalid {
                key: format!("[[output]] #{} in the config file", i + 1),
                message: m,
            })?
        };

        Ok(Settings {
            history: resolve_history(file.history.clone())?,
            outputs,
            listen,
            db,
            interfaces,
            bpf,
            follow,
            import,
            dnstap,
            blocklists,
            user_lists,
            feeds,
            feed_allow_private,
            feed_file_roots,
            feed_allow_hosts,
            admin_token,
            read_token,
            resolvers,
            sinkholes,
            grace,
            lookback_days,
            retention_days,
            max_body,
            request_timeout,
            api,
            log_json: file.log_json.unwrap_or(false),
            log_level,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Value parsers
// ---------------------------------------------------------------------------------------------

fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    // A bare address means the default port; a bare `:port` means loopback.
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 8080));
    }
    if let Some(port) = s.strip_prefix(':') {
        if let Ok(p) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], p)));
        }
    }
    Err(format!(
        "{s:?} is not an address like 127.0.0.1:8080 or [::1]:8080"
    ))
}

/// `unix:PATH` or `tcp:IP:PORT`; a bare form is refused so that the intent is explicit.
fn validate_dnstap(s: &str) -> Result<(), String> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() || p.len() > MAX_UNIX_PATH_LEN {
            return Err(format!(
                "unix socket path must be 1 to {MAX_UNIX_PATH_LEN} bytes"
            ));
        }
        return Ok(());
    }
    if let Some(a) = s.strip_prefix("tcp:") {
        return a
            .parse::<SocketAddr>()
            .map(|_| ())
            .map_err(|_| format!("{a:?} is not an address like 127.0.0.1:6000"));
    }
    Err(format!("{s:?} must be unix:PATH or tcp:ADDR:PORT"))
}

fn validate_interface(i: &str) -> Result<(), String> {
    if i.is_empty() || i.len() > MAX_INTERFACE_LEN {
        return Err(format!(
            "interface name {i:?} must be 1 to {MAX_INTERFACE_LEN} characters"
        ));
    }
    if i.chars()
        .any(|c| c.is_whitespace() || c == '/' || c.is_control())
    {
        return Err(format!("interface name {i:?} contains invalid characters"));
    }
    Ok(())
}

fn parse_ips(v: &[String]) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::with_capacity(v.len());
    for s in v {
        let ip = s
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| format!("{s:?} is not an IP address"))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    Ok(out)
}

/// Parses `90`, `90s`, `30m`, `6h`, `2d` into seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (t.get(..i).unwrap_or(""), 1u64),
        Some((i, 'm')) => (t.get(..i).unwrap_or(""), 60),
        Some((i, 'h')) => (t.get(..i).unwrap_or(""), 3600),
        Some((i, 'd')) => (t.get(..i).unwrap_or(""), 86_400),
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a duration (seconds, or a number with s/m/h/d)"))
}

fn duration_secs(d: &DurationSpec) -> Result<u64, String> {
    match d {
        DurationSpec::Secs(n) => Ok(*n),
        DurationSpec::Text(t) => parse_duration_secs(t),
    }
}

/// Whether `name` is a safe list name: `[a-z0-9._-]`, starting with an alphanumeric, at most
/// [`MAX_LIST_NAME_LEN`] bytes. Such a name cannot escape a directory when used as a file name.
pub fn is_valid_list_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LIST_NAME_LEN
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn validate_feed(fc: &FeedConfig) -> Result<FeedSettings, String> {
    let url = fc.url.trim();
    let rest = ["http://", "https://", "file://"]
        .iter()
        .find_map(|p| {
            url.get(..p.len())
                .filter(|h| h.eq_ignore_ascii_case(p))
                .and_then(|_| url.get(p.len()..))
        })
        .ok_or_else(|| format!("feed URL {url:?} must start with http://, https:// or file://"))?;
    if rest.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace()) {
        return Err(format!("feed URL {url:?} is malformed"));
    }
    let interval = match &fc.interval {
        Some(d) => duration_secs(d)?,
        None => DEFAULT_FEED_INTERVAL_SECS,
    };
    if !(MIN_FEED_INTERVAL_SECS..=MAX_FEED_INTERVAL_SECS).contains(&interval) {
        return Err(format!(
            "feed interval must be {MIN_FEED_INTERVAL_SECS} s to {MAX_FEED_INTERVAL_SECS} s (got {interval} s)"
        ));
    }
    let max_bytes = fc.max_bytes.unwrap_or(DEFAULT_FEED_MAX_BYTES);
    if max_bytes == 0 || max_bytes > MAX_FEED_MAX_BYTES {
        return Err(format!("feed max_bytes must be 1 to {MAX_FEED_MAX_BYTES}"));
    }
    let name = match &fc.name {
        Some(n) => {
            if !is_valid_list_name(n) {
                return Err(format!(
                    "feed name {n:?} must be [a-z0-9._-], start alphanumeric, at most {MAX_LIST_NAME_LEN} bytes"
                ));
            }
            n.clone()
        }
        None => feed_name_from_url(rest),
    };
    Ok(FeedSettings {
        url: url.to_string(),
        name,
        interval: Duration::from_secs(interval),
        max_bytes,
    })
}

/// `example.org/lists/pools.txt` → `feed-example.org-pools`.
fn feed_name_from_url(rest: &str) -> String {
    let host = rest.split('/').next().unwrap_or("");
    let last = rest
        .rsplit('/')
        .next()
        .unwrap_or("")
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let stem = last.split('.').next().unwrap_or("");
    let raw = format!("feed-{host}-{stem}").to_ascii_lowercase();
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(MAX_LIST_NAME_LEN);
    let trimmed = name.trim_end_matches(['-', '.']).to_string();
    if trimmed.is_empty() {
        "feed".into()
    } else {
        trimmed
    }
}

fn token(
    cli: Option<Secret>,
    cli_file: Option<PathBuf>,
    file: Option<Secret>,
    file_file: Option<PathBuf>,
    (flag, env, key): (&str, &str, &str),
) -> Result<Option<Secret>, ConfigError> {
    let flag_file = format!("{flag}-file");
    let env_file = format!("{env}_FILE");
    let key_file = format!("{key}_file");
    let (secret, origin) = if let Some(s) = cli {
        (s, Origin::Cli { flag, env })
    } else if let Some(p) = cli_file {
        let o = Origin::Cli {
            flag: &flag_file,
            env: &env_file,
        };
        (read_token_file(&p).map_err(|m| o.err(m))?, o)
    } else if let Some(s) = file {
        (s, Origin::File { key })
    } else if let Some(p) = file_file {
        let o = Origin::File { key: &key_file };
        (read_token_file(&p).map_err(|m| o.err(m))?, o)
    } else {
        return Ok(None);
    };
    let t = secret.expose();
    if t.len() < MIN_TOKEN_LEN || t.len() > MAX_TOKEN_LEN {
        return Err(origin.err(format!(
            "a token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters"
        )));
    }
    // Tokens travel in an HTTP header: printable ASCII without spaces only.
    if !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(origin.err("a token may contain only printable ASCII without spaces"));
    }
    Ok(Some(secret))
}

fn read_token_file(p: &Path) -> Result<Secret, String> {
    let text = read_bounded(p, MAX_TOKEN_LEN as u64 + 2)
        .map_err(|e| format!("cannot read {}: {e}", p.display()))?
        .ok_or_else(|| format!("{} is too large for a token file", p.display()))?;
    Ok(Secret::new(text.trim_end_matches(['\n', '\r'])))
}

/// Reads at most `max` bytes of UTF-8 text; `Ok(None)` when the file is longer. Bounded by
/// reading, not by metadata, so that devices and FIFOs (`/dev/zero`) cannot make it read forever.
fn read_bounded(p: &Path, max: u64) -> std::io::Result<Option<String>> {
    use std::io::Read as _;
    let mut buf = Vec::new();
    std::fs::File::open(p)?
        .take(max.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Ok(None);
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

fn ser_opt_secs<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> CliOptions {
        CliOptions::default()
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(&cli(), FileConfig::default()).unwrap();
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.db, PathBuf::from(DEFAULT_DB));
        assert_eq!(s.user_lists, Path::new(DEFAULT_DB).join("lists"));
        assert_eq!(s.lookback_days, 30);
        assert_eq!(s.max_body, DEFAULT_MAX_BODY);
        assert!(s.admin_token.is_none());
        assert_eq!(Settings::default(), s);
    }

    #[test]
    fn flags_beat_file() {
        let file = FileConfig::parse(
            r#"
listen = "0.0.0.0:9000"
db = "/var/lib/poolwatch"
resolvers = ["192.0.2.53"]
grace = "2h"
lookback_days = 7
[[feeds]]
url = "https://example.org/lists/pools.txt"
interval = 3600
"#,
        )
        .unwrap();
        let mut c = cli();
        c.listen = Some("127.0.0.1:9999".into());
        c.resolvers = vec!["198.51.100.53".into(), "2001:db8::53".into()];
        let s = Settings::resolve(&c, file).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(s.db, PathBuf::from("/var/lib/poolwatch"));
        assert_eq!(s.user_lists, PathBuf::from("/var/lib/poolwatch/lists"));
        assert_eq!(s.resolvers.len(), 2);
        assert_eq!(s.grace, Some(Duration::from_secs(7200)));
        assert_eq!(s.lookback_days, 7);
        assert_eq!(s.feeds.len(), 1);
        assert_eq!(s.feeds[0].name, "feed-example.org-pools");
        assert_eq!(s.feeds[0].interval, Duration::from_secs(3600));
    }

    #[test]
    fn errors_name_the_key() {
        let file = FileConfig::parse("listen = \"nope\"\n").unwrap();
        let e = Settings::resolve(&cli(), file).unwrap_err().to_string();
        assert!(e.contains("`listen` in the config file"), "{e}");

        let mut c = cli();
        c.max_body = Some(5);
        let e = Settings::resolve(&c, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--max-body"), "{e}");

        let e = FileConfig::load(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("larger than"), "{e}");

        let e = FileConfig::parse("lisen = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(e.contains("lisen"), "{e}");

        let mut c = cli();
        c.feeds = vec!["ftp://example.org/x,1h".into()];
        let e = Settings::resolve(&c, FileConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--feed"), "{e}");

        let mut c = cli();
        c.feeds = vec!["https://example.org/x,5s".into()];
        assert!(Settings::resolve(&c, FileConfig::default()).is_err());
    }

    #[test]
    fn api_and_feeds_tables() {
        let dir = std::env::temp_dir();
        let text = format!(
            "[api]\nwrite_timeout = \"5s\"\nmax_connections_per_client = 0\nmax_uri_len = 4096\n\
             [feeds]\nallow_private = true\nfile_roots = [{:?}]\nallow_hosts = [\"lists.lan\"]\n\
             [[feeds.list]]\nurl = \"https://example.org/pools.txt\"\n",
            dir.display().to_string()
        );
        let f = FileConfig::parse(&text).unwrap();
        let s = Settings::resolve(&cli(), f).unwrap();
        assert_eq!(s.api.write_timeout, Duration::from_secs(5));
        assert_eq!(s.api.max_connections_per_client, 0);
        assert_eq!(s.api.max_uri_len, 4096);
        assert_eq!(s.api.idle_timeout, crate::api::DEFAULT_IDLE_TIMEOUT);
        assert!(s.feed_allow_private);
        assert_eq!(s.feed_file_roots, vec![dir.clone()]);
        assert_eq!(s.feed_allow_hosts, vec!["lists.lan".to_string()]);
        assert_eq!(s.feeds.len(), 1);
        // The array form still works and keeps the strict defaults.
        let f = FileConfig::parse("[[feeds]]\nurl = \"https://example.org/a.txt\"\n").unwrap();
        let s = Settings::resolve(&cli(), f).unwrap();
        assert_eq!(s.feeds.len(), 1);
        assert!(!s.feed_allow_private && s.feed_file_roots.is_empty());
        for (bad, key) in [
            ("[api]\nwrite_timeout = 0\n", "api.write_timeout"),
            ("[api]\nmax_uri_len = 10\n", "api.max_uri_len"),
            ("[api]\nmax_connections = 0\n", "api.max_connections"),
            ("[feeds]\nfile_roots = [\"relative\"]\n", "feeds.file_roots"),
        ] {
            let f = FileConfig::parse(bad).unwrap();
            let e = Settings::resolve(&cli(), f).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        assert!(FileConfig::parse("[api]\nwrite_timeot = 5\n").is_err());
        assert!(FileConfig::parse("[feeds]\nallow_privat = true\n").is_err());
    }

    #[test]
    fn tokens_validated_and_redacted() {
        let mut c = cli();
        c.admin_token = Some(Secret::new("short"));
        assert!(Settings::resolve(&c, FileConfig::default()).is_err());
        c.admin_token = Some(Secret::new("a-very-long-admin-token-123"));
        c.read_token = Some(Secret::new("a-very-long-admin-token-123"));
        assert!(Settings::resolve(&c, FileConfig::default()).is_err());
        c.read_token = Some(Secret::new("another-long-read-token-456"));
        let s = Settings::resolve(&c, FileConfig::default()).unwrap();
        let dbg = format!("{s:?}");
        assert!(!dbg.contains("a-very-long-admin-token"), "{dbg}");
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("another-long-read-token"), "{json}");
        assert!(json.contains("<redacted>"));
    }

    #[test]
    fn dnstap_addresses() {
        let mut c = cli();
        c.dnstap = vec![
            "unix:/run/poolwatch/dnstap.sock".into(),
            "tcp:127.0.0.1:6000".into(),
        ];
        let s = Settings::resolve(&c, FileConfig::default()).unwrap();
        assert_eq!(s.dnstap.len(), 2);
        for bad in [
            "",
            "unix:",
            "tcp:localhost",
            "/run/x.sock",
            &format!("unix:/{}", "a".repeat(200)),
        ] {
            c.dnstap = vec![bad.to_string()];
            let e = Settings::resolve(&c, FileConfig::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("--dnstap"), "{bad:?}: {e}");
        }
        let file = FileConfig::parse("dnstap = [\"tcp:[::1]:6000\"]\n").unwrap();
        let s = Settings::resolve(&cli(), file).unwrap();
        assert_eq!(s.dnstap, vec!["tcp:[::1]:6000".to_string()]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_secs("90"), Ok(90));
        assert_eq!(parse_duration_secs("30m"), Ok(1800));
        assert_eq!(parse_duration_secs("2d"), Ok(172_800));
        assert!(parse_duration_secs("").is_err());
        assert!(parse_duration_secs("h").is_err());
        assert!(parse_duration_secs("99999999999999999999d").is_err());
        assert!(parse_duration_secs("1é").is_err());
    }

    #[test]
    fn list_names() {
        assert!(is_valid_list_name("my-pools.v2"));
        for bad in [
            "",
            "../x",
            "a/b",
            "Upper",
            ".hidden",
            "x\0",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_list_name(bad), "{bad:?}");
        }
    }
}
