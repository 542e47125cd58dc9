//! The `[api]` table and its flags, validated against the API's own limits.

use std::time::Duration;

use serde::Serialize;

use super::*;

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
pub(super) fn api_num(
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
pub(super) fn api_secs(
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

pub(super) fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

pub(super) fn resolve_api(
    cli: &CliOptions,
    file: Option<ApiFileConfig>,
) -> Result<ApiSettings, ConfigError> {
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
