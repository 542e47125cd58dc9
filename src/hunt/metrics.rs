//! The history's and retro-hunt's counters (`poolwatch_history_*`, `poolwatch_retro_*`).

use crate::metrics::{counter, gauge, seconds_counter, Counter, Gauge, SecondsCounter};

#[derive(Clone)]
pub(crate) struct HistoryMetrics {
    pub rows_written: Counter,
    pub refused_cap: Counter,
    pub skipped_bad_name: Counter,
    pub folded: Counter,
    pub evicted_retention: Counter,
    pub evicted_cap: Counter,
    /// Days evicted because the database's size on disk exceeded the cap.
    pub evicted_disk: Counter,
    pub flush_errors: Counter,
    /// Due flushes that waited for the background writer (`MAX_QUEUED_FLUSHES` were queued).
    pub flush_waits: Counter,
    /// Time spent flushing (exposed in seconds).
    pub flush_seconds: SecondsCounter,
    pub bytes: Gauge,
    pub days: Gauge,
    /// The store's size on disk (the whole sled database), after each flush.
    pub disk_bytes: Gauge,
    pub compactions: Counter,
    pub compact_seconds: SecondsCounter,
}

impl HistoryMetrics {
    pub fn get() -> Self {
        const ROWS: &str = "poolwatch_history_rows_total";
        const ROWS_HELP: &str = "History rows written, or not written (by reason)";
        const EV: &str = "poolwatch_history_buckets_evicted_total";
        const EV_HELP: &str =
            "History day buckets removed, by reason (retention, byte_cap, disk_cap)";
        HistoryMetrics {
            rows_written: counter(ROWS, ROWS_HELP, &[("result", "written")]),
            refused_cap: counter(ROWS, ROWS_HELP, &[("result", "refused_byte_cap")]),
            skipped_bad_name: counter(ROWS, ROWS_HELP, &[("result", "skipped_bad_name")]),
            folded: counter(
                "poolwatch_history_names_folded_total",
                "Lookups kept under their zone (*.zone) because the zone had too many distinct names that day",
                &[],
            ),
            evicted_retention: counter(EV, EV_HELP, &[("reason", "retention")]),
            evicted_cap: counter(EV, EV_HELP, &[("reason", "byte_cap")]),
            evicted_disk: counter(EV, EV_HELP, &[("reason", "disk_cap")]),
            flush_errors: counter(
                "poolwatch_history_flush_errors_total",
                "History flushes that failed (rows of that flush are lost)",
                &[],
            ),
            flush_waits: counter(
                "poolwatch_history_flush_waits_total",
                "Due history flushes that waited because the background writer had a full queue (back-pressure; nothing is dropped)",
                &[],
            ),
            flush_seconds: seconds_counter(
                "poolwatch_history_flush_seconds_total",
                "Time spent merging history rows into the store",
                &[],
            ),
            bytes: gauge(
                "poolwatch_history_bytes",
                "Bytes of history rows stored (keys + values; the byte cap applies to this)",
                &[],
            ),
            days: gauge("poolwatch_history_buckets", "Day buckets the history holds (one per day)", &[]),
            disk_bytes: gauge(
                "poolwatch_history_store_disk_bytes",
                "Size on disk of the database holding the history (sled's own figure, whole database)",
                &[],
            ),
            compactions: counter(
                "poolwatch_history_compactions_total",
                "Finished history days rewritten as one block per name and destination",
                &[],
            ),
            compact_seconds: seconds_counter(
                "poolwatch_history_compact_seconds_total",
                "Time spent compacting finished history days",
                &[],
            ),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RetroMetrics {
    pub runs: Counter,
    /// Retro-hunts of the worker that are over (merged, or failed): what a waiter waits for.
    pub finished: Counter,
    /// List-set changes the worker has looked at (with or without added entries).
    pub list_changes: Counter,
    pub entries: Counter,
    pub entries_skipped: Counter,
    pub observations: Counter,
    pub created: Counter,
    pub upgraded: Counter,
    pub errors: Counter,
}

impl RetroMetrics {
    pub fn get() -> Self {
        const DET: &str = "poolwatch_retro_detections_total";
        const DET_HELP: &str = "Detections a retro-hunt merged into the store, by result";
        RetroMetrics {
            runs: counter(
                "poolwatch_retro_runs_total",
                "Retro-hunts run (one per list change that added entries)",
                &[],
            ),
            list_changes: counter(
                "poolwatch_retro_list_changes_total",
                "List-set changes the retro-hunt worker has diffed (with or without added entries)",
                &[],
            ),
            finished: counter(
                "poolwatch_retro_runs_finished_total",
                "Retro-hunts of the service's worker that are over (detections merged, or failed)",
                &[],
            ),
            entries: counter(
                "poolwatch_retro_entries_total",
                "Added list entries searched in the history",
                &[],
            ),
            entries_skipped: counter(
                "poolwatch_retro_entries_skipped_total",
                "Added list entries not searched (more than MAX_RETRO_ENTRIES in one change)",
                &[],
            ),
            observations: counter(
                "poolwatch_retro_observations_total",
                "Observations synthesised from history and replayed through the engine",
                &[],
            ),
            created: counter(DET, DET_HELP, &[("result", "created")]),
            upgraded: counter(DET, DET_HELP, &[("result", "upgraded")]),
            errors: counter(
                "poolwatch_retro_errors_total",
                "Retro-hunts that failed (history or store error)",
                &[],
            ),
        }
    }
}
