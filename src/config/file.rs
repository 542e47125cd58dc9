//! Raw input, phase one: the TOML file as written (`FileConfig`, unknown keys rejected).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::*;

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
    pub(super) fn into_parts(self) -> (Vec<FeedConfig>, FeedsTable) {
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
    /// `[cluster]`: the JetStream stream sizes of `serve --cluster` (docs/cluster.md).
    pub cluster: Option<ClusterFileConfig>,
}

/// `[cluster]` as written: `obs_max_bytes` (default 8 GiB) and `detections_max_bytes`
/// (default 4 GiB), byte counts of at least 64 MiB. See `crate::cluster::nats::StreamSizes`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFileConfig {
    pub obs_max_bytes: Option<u64>,
    pub detections_max_bytes: Option<u64>,
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
