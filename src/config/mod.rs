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

use std::path::PathBuf;

// Rules and value types of the layers below, read here (the configuration sits above the
// stages); re-exported so that `config::Secret` and friends keep working.
pub use crate::api::{
    DEFAULT_MAX_BODY, DEFAULT_REQUEST_TIMEOUT_SECS, MAX_MAX_BODY, MAX_REQUEST_TIMEOUT_SECS,
    MAX_TOKEN_LEN, MIN_MAX_BODY, MIN_TOKEN_LEN,
};
pub use crate::matcher::{
    is_valid_list_name, DEFAULT_FEED_INTERVAL_SECS, DEFAULT_FEED_MAX_BYTES, MAX_FEED_INTERVAL_SECS,
    MAX_FEED_MAX_BYTES, MAX_LIST_NAME_LEN, MIN_FEED_INTERVAL_SECS,
};
use crate::util::duration_secs;
pub use crate::util::{parse_duration_secs, DurationSpec, Secret};

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
/// Longest binding grace accepted (30 days).
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;
/// Largest configuration file read: a config is a few KiB; anything huge is a mistake.
pub const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;
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

mod api_limits;
mod cluster;
mod file;
mod flags;
mod resolve;
mod settings;
#[cfg(test)]
mod tests;
mod values;
mod wiring;

pub use api_limits::{ApiSettings, MAX_HEAD_LIMIT, MAX_REQUESTS_PER_CONNECTION, MIN_HEAD_LIMIT};
pub use file::{
    ApiFileConfig, ClusterFileConfig, FeedConfig, FeedsSection, FeedsTable, FileConfig,
};
pub use flags::CliOptions;
pub use settings::{FeedSettings, Settings};

use api_limits::resolve_api;
use cluster::resolve_cluster;
use settings::{nonempty_path, pick, pick_list, Names, Origin};
use values::*;
