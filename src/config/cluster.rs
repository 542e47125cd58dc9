//! `[cluster]`: the sizes of the JetStream streams a cluster node creates
//! (`obs_max_bytes`, `detections_max_bytes`; flags `--obs-max-bytes`, `--detections-max-bytes`).
//! The rules are the cluster's (`crate::cluster::nats`): its defaults, and
//! [`MIN_STREAM_MAX_BYTES`] as the least accepted.

use crate::cluster::nats::{human_bytes, StreamSizes, MIN_STREAM_MAX_BYTES};

use super::*;

/// `[cluster]` and its flags validated: flag/env over the file over the defaults.
pub(super) fn resolve_cluster(
    cli: &CliOptions,
    file: Option<ClusterFileConfig>,
) -> Result<StreamSizes, ConfigError> {
    let f = file.unwrap_or_default();
    let d = StreamSizes::default();
    Ok(StreamSizes {
        obs_max_bytes: stream_size(
            pick(
                cli.obs_max_bytes,
                f.obs_max_bytes,
                (
                    "obs-max-bytes",
                    "POOLWATCH_OBS_MAX_BYTES",
                    "cluster.obs_max_bytes",
                ),
            ),
            d.obs_max_bytes,
        )?,
        detections_max_bytes: stream_size(
            pick(
                cli.detections_max_bytes,
                f.detections_max_bytes,
                (
                    "detections-max-bytes",
                    "POOLWATCH_DETECTIONS_MAX_BYTES",
                    "cluster.detections_max_bytes",
                ),
            ),
            d.detections_max_bytes,
        )?,
    })
}

/// A stream size in bytes: at least [`MIN_STREAM_MAX_BYTES`], at most what JetStream's
/// signed 64-bit `max_bytes` holds.
fn stream_size(picked: Option<(u64, Origin<'_>)>, default: i64) -> Result<i64, ConfigError> {
    let Some((b, o)) = picked else {
        return Ok(default);
    };
    let Ok(v) = i64::try_from(b) else {
        return Err(o.err(format!("{b} bytes is larger than JetStream accepts")));
    };
    if v < MIN_STREAM_MAX_BYTES {
        return Err(o.err(format!(
            "{b} bytes is below the minimum of {MIN_STREAM_MAX_BYTES} ({})",
            human_bytes(MIN_STREAM_MAX_BYTES)
        )));
    }
    Ok(v)
}
