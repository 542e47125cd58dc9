//! The validated configuration (`Settings`) and the merge helpers that remember where a
//! value came from, so that every error names the flag, variable or key.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::*;

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
    /// `[cluster]`: the stream sizes a cluster node creates its streams with.
    pub cluster: crate::cluster::nats::StreamSizes,
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
                cluster: crate::cluster::nats::StreamSizes::default(),
            }
        })
    }
}

/// Where a value came from, for error messages.
#[derive(Clone, Copy)]
pub(super) enum Origin<'a> {
    Cli { flag: &'a str, env: &'a str },
    File { key: &'a str },
}

impl Origin<'_> {
    pub(super) fn name(self) -> String {
        match self {
            Origin::Cli { flag, env } => format!("--{flag} (or {env})"),
            Origin::File { key } => format!("`{key}` in the config file"),
        }
    }
    pub(super) fn err(self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.name(),
            message: message.into(),
        }
    }
}

/// A setting's names: (flag without `--`, environment variable, config-file key).
pub(super) type Names<'a> = (&'a str, &'a str, &'a str);

/// Picks the CLI value when present, else the file's, remembering which.
pub(super) fn pick<'a, T>(
    cli: Option<T>,
    file: Option<T>,
    names: Names<'a>,
) -> Option<(T, Origin<'a>)> {
    let (flag, env, key) = names;
    match (cli, file) {
        (Some(v), _) => Some((v, Origin::Cli { flag, env })),
        (None, Some(v)) => Some((v, Origin::File { key })),
        (None, None) => None,
    }
}

/// The CLI list when it has items, else the file's (empty when absent), remembering which.
pub(super) fn pick_list<'a, T>(
    cli: Vec<T>,
    file: Option<Vec<T>>,
    names: Names<'a>,
) -> (Vec<T>, Origin<'a>) {
    let (flag, env, key) = names;
    if !cli.is_empty() {
        return (cli, Origin::Cli { flag, env });
    }
    (file.unwrap_or_default(), Origin::File { key })
}

/// A path that must not be empty.
pub(super) fn nonempty_path(p: PathBuf, o: Origin<'_>) -> Result<PathBuf, ConfigError> {
    if p.as_os_str().is_empty() {
        return Err(o.err("empty path"));
    }
    Ok(p)
}
