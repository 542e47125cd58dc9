//! Periodic store statistics for `/metrics` (table sizes and size on disk). Read-only: the
//! retention pruning runs on the pipeline thread (`pipeline.rs`), the one writer of detection
//! data.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{self, Gauge};
use crate::ports::StopToken;
use crate::store::Store;

/// How often store statistics (table sizes, size on disk) are refreshed for `/metrics`. Counting
/// walks the trees, so not per scrape.
pub const STATS_INTERVAL: Duration = Duration::from_secs(15);

struct StoreGauges {
    trees: Vec<(&'static str, Gauge)>,
    size: Gauge,
}

impl StoreGauges {
    fn new() -> Self {
        let trees = [
            "detections",
            "bindings",
            "pool_flows",
            "hosts",
            "suppressions",
            "offsets",
        ]
        .into_iter()
        .map(|t| {
            (
                t,
                metrics::gauge(
                    "poolwatch_store_entries",
                    "Records per store tree (refreshed every 15 s).",
                    &[("tree", t)],
                ),
            )
        })
        .collect();
        StoreGauges {
            trees,
            size: metrics::gauge(
                "poolwatch_store_size_bytes",
                "Size of the database on disk (refreshed every 15 s).",
                &[],
            ),
        }
    }

    fn update(&self, st: &crate::store::StoreStats) {
        for (t, g) in &self.trees {
            let v = match *t {
                "detections" => st.detections,
                "bindings" => st.bindings,
                "pool_flows" => st.pool_flows,
                "hosts" => st.hosts,
                "suppressions" => st.suppressions,
                _ => st.offsets,
            };
            g.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
        self.size
            .set(i64::try_from(st.size_on_disk).unwrap_or(i64::MAX));
    }
}

/// Refreshes the store gauges every [`STATS_INTERVAL`] until `stop`.
pub(super) async fn maintenance(store: Store, stop: StopToken) {
    let gauges = Arc::new(StoreGauges::new());
    let mut stats_every = tokio::time::interval(STATS_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.stopped() => return,
            _ = stats_every.tick() => {
                let (s, g) = (store.clone(), gauges.clone());
                let _ = tokio::task::spawn_blocking(move || match s.stats() {
                    Ok(st) => g.update(&st),
                    Err(e) => tracing::warn!(error = %e, "store statistics"),
                }).await;
            }
        }
    }
}
