//! Per-sink status and metrics: what `GET /api/v1/outputs` and `/metrics` show, shared by
//! the pipeline thread (outbox writes) and the sink's delivery task.

use super::*;

/// One sink as `GET /api/v1/outputs` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputStatus {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// `starting` (outbox not read yet), `idle` (nothing sent yet, nothing waiting), `ok` (last
    /// attempt delivered), `failing` (retrying), `stopped`.
    pub state: String,
    /// Records waiting in the outbox.
    pub backlog: u64,
    pub delivered: u64,
    /// Records that never reached the receiver: outbox overflow plus records the receiver
    /// refused for good.
    pub dropped: u64,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    // --- additions ---
    pub format: String,
    pub backlog_bytes: u64,
    /// Records not sent because of the sink's rate limit (since start).
    pub rate_limited: u64,
    pub last_error_at: Option<Timestamp>,
}

#[derive(Default)]
pub(super) struct StatusInner {
    pub(super) state: &'static str,
    pub(super) last_success: Option<Timestamp>,
    pub(super) last_error: Option<String>,
    pub(super) last_error_at: Option<Timestamp>,
}

pub(super) struct SinkMetrics {
    pub(super) delivered: Counter,
    pub(super) dropped_overflow: Counter,
    pub(super) dropped_rejected: Counter,
    pub(super) rate_limited: Counter,
    pub(super) errors: Counter,
    pub(super) backlog: Gauge,
    pub(super) backlog_bytes: Gauge,
    pub(super) up: Gauge,
}

impl SinkMetrics {
    pub(super) fn new(name: &str) -> Self {
        let l = [("sink", name)];
        let dropped = |reason| {
            metrics::counter(
                "poolwatch_output_dropped_total",
                "Records that never reached a sink, by reason (overflow: outbox full; rejected: \
                 refused by the receiver for good).",
                &[("sink", name), ("reason", reason)],
            )
        };
        SinkMetrics {
            delivered: metrics::counter(
                "poolwatch_output_delivered_total",
                "Records acknowledged by a sink.",
                &l,
            ),
            dropped_overflow: dropped("overflow"),
            dropped_rejected: dropped("rejected"),
            rate_limited: metrics::counter(
                "poolwatch_output_rate_limited_total",
                "Records not sent because of the sink's rate limit.",
                &l,
            ),
            errors: metrics::counter(
                "poolwatch_output_errors_total",
                "Failed delivery attempts.",
                &l,
            ),
            backlog: metrics::gauge(
                "poolwatch_output_backlog_records",
                "Records waiting in a sink's outbox.",
                &l,
            ),
            backlog_bytes: metrics::gauge(
                "poolwatch_output_backlog_bytes",
                "Bytes waiting in a sink's outbox.",
                &l,
            ),
            up: metrics::gauge(
                "poolwatch_output_up",
                "1 when the sink's last delivery attempt succeeded.",
                &l,
            ),
        }
    }
}

/// What the pipeline thread and the delivery task of one sink share.
pub(super) struct SinkShared {
    pub(super) settings: OutputSettings,
    pub(super) outbox: Outbox,
    pub(super) notify: Notify,
    pub(super) status: Mutex<StatusInner>,
    pub(super) rate_limited: AtomicU64,
    pub(super) metrics: SinkMetrics,
}

impl SinkShared {
    pub(super) fn gauges(&self) {
        self.metrics
            .backlog
            .set(i64::try_from(self.outbox.len()).unwrap_or(i64::MAX));
        self.metrics
            .backlog_bytes
            .set(i64::try_from(self.outbox.bytes()).unwrap_or(i64::MAX));
    }

    pub(super) fn set_ok(&self) {
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.state = "ok";
        s.last_success = Some(Timestamp::now());
        self.metrics.up.set(1);
    }

    pub(super) fn set_error(&self, e: &SinkError) {
        self.metrics.errors.inc();
        self.metrics.up.set(0);
        let mut s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        s.state = "failing";
        s.last_error = Some(e.message().to_string());
        s.last_error_at = Some(Timestamp::now());
    }

    pub(super) fn status(&self) -> OutputStatus {
        let s = self.status.lock().unwrap_or_else(|e| e.into_inner());
        OutputStatus {
            name: self.settings.name.clone(),
            kind: self.settings.kind().as_str().into(),
            state: if s.state.is_empty() {
                "starting"
            } else {
                s.state
            }
            .into(),
            backlog: self.outbox.len(),
            delivered: self.outbox.delivered(),
            dropped: self.outbox.dropped(),
            last_success: s.last_success,
            last_error: s.last_error.clone(),
            format: self.settings.format_name().into(),
            backlog_bytes: self.outbox.bytes(),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            last_error_at: s.last_error_at,
        }
    }
}
