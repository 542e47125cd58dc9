//! The pipeline thread: drains the producers' bounded queue into `correlate::Pipeline`, commits
//! follower offsets behind the detections their lines made, ticks the engine's clock, and runs
//! retention pruning — so it is the one writer of detection data (the API writes suppressions
//! only).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::correlate::{Pipeline, PipelineError, PipelineSummary};
use crate::metrics;
use crate::model::Timestamp;
use crate::ports::{FileOffset, OffsetStore, Produced};
use crate::store::{Retention, Store};

use super::OBS_CHANNEL_CAPACITY;

/// How often the pipeline thread ticks (flushes due writes, advances the clock when idle, picks
/// up suppression changes) when no observation arrives.
pub const TICK_INTERVAL: Duration = Duration::from_millis(100);
/// A follower offset is committed at the first durable flush after it has waited this long in
/// the pipeline: by then the incidents its lines opened have left the engine's reorder hold
/// (5 s of observation time, which for a live log is about wall time, plus the 1 s idle tick)
/// and are in that flush, so a crash re-reads lines instead of losing a held lookup. A re-read
/// line does not count twice: detections keep per-source marks (`correlate::replay`). A clean stop commits at once.
pub const OFFSET_COMMIT_DELAY: Duration = Duration::from_secs(6);
/// Offsets waiting for their commit (saves come every second or 1000 lines per file); beyond
/// this the oldest is dropped (a newer one for that file follows).
const MAX_PENDING_OFFSETS: usize = 65_536;
/// Items handled per wake-up before the pipeline looks at the clock again.
const BATCH: usize = 512;
/// How often retention pruning runs (`retention_days`; 0 disables it). The first run is at
/// start-up.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// What the pipeline thread needs besides the pipeline.
pub(super) struct PipelineThread {
    pub rx: mpsc::Receiver<Produced>,
    pub store: Store,
    /// Non-zero while an `--import` runs: its own time stamps drive the engine's clock.
    pub importing: Arc<AtomicUsize>,
    pub retention: Option<Retention>,
    pub rt: tokio::runtime::Handle,
    /// The retro-hunt's history recorder: every observation is recorded before the engine sees it.
    pub history: Option<Arc<crate::hunt::Recorder>>,
}

struct Report {
    errors: metrics::Counter,
    last_err: Option<Instant>,
}

impl Report {
    fn error(&mut self, e: &dyn std::fmt::Display) {
        self.errors.inc();
        // Rate-limited: a full disk would otherwise log once per observation.
        if self
            .last_err
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::error!(error = %e, "pipeline: store error");
            self.last_err = Some(Instant::now());
        }
    }
}

pub(super) fn pipeline_loop(
    mut p: Pipeline,
    t: PipelineThread,
) -> Result<PipelineSummary, PipelineError> {
    let PipelineThread {
        mut rx,
        store,
        importing,
        retention,
        rt,
        history,
    } = t;
    let depth = metrics::gauge(
        "poolwatch_service_queue_depth",
        "Observations waiting between the inputs and the correlation pipeline.",
        &[],
    );
    let capacity_g = metrics::gauge(
        "poolwatch_service_queue_capacity",
        "Capacity of the queue between the inputs and the correlation pipeline.",
        &[],
    );
    capacity_g.set(OBS_CHANNEL_CAPACITY as i64);
    let mut report = Report {
        errors: metrics::counter(
            "poolwatch_service_pipeline_errors_total",
            "Store errors met by the correlation pipeline (the observation is skipped).",
            &[],
        ),
        last_err: None,
    };
    let mut last_tick = Instant::now();
    let mut last_prune: Option<Instant> = None;
    // Follower offsets waiting for their commit (see OFFSET_COMMIT_DELAY).
    let mut offsets: VecDeque<(Instant, String, FileOffset)> = VecDeque::new();
    loop {
        super::notify::watchdog();
        let first = rt.block_on(async { tokio::time::timeout(TICK_INTERVAL, rx.recv()).await });
        let mut closed = false;
        match first {
            Ok(Some(m)) => {
                handle(&mut p, &mut offsets, m, &mut report, history.as_deref());
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(m) => handle(&mut p, &mut offsets, m, &mut report, history.as_deref()),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            Ok(None) => closed = true,
            Err(_) => {}
        }
        depth.set(rx.len() as i64);
        if closed {
            break;
        }
        commit_due(&mut p, &store, &mut offsets, &mut report);
        // While an import of old data runs, its own timestamps drive the engine's clock; the
        // wall clock would release held incidents early. `push` flushes what is due meanwhile.
        if last_tick.elapsed() >= TICK_INTERVAL && importing.load(Ordering::Acquire) == 0 {
            last_tick = Instant::now();
            if let Err(e) = p.tick(Timestamp::now()) {
                report.error(&e);
            }
        }
        if let Some(r) = &retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_INTERVAL) {
                last_prune = Some(Instant::now());
                match store.prune(Timestamp::now(), r) {
                    Ok(st) => tracing::info!(stats = ?st, "retention: pruned"),
                    Err(e) => tracing::error!(error = %e, "retention pruning failed"),
                }
            }
        }
    }
    depth.set(0);
    // Clean stop: every observation was pushed; `finish` reports what is held and its flush
    // makes these offsets durable together with the detections.
    for (_, key, off) in offsets.drain(..) {
        if let Err(e) = store.save_offset(&key, &off) {
            report.error(&e);
        }
    }
    p.finish().inspect_err(|e| {
        tracing::error!(error = %e, "pipeline: final flush failed");
    })
}

/// Commits the offsets that waited [`OFFSET_COMMIT_DELAY`], right after a flush made the
/// detections of their lines durable (nothing is committed when that flush fails).
fn commit_due(
    p: &mut Pipeline,
    store: &Store,
    offsets: &mut VecDeque<(Instant, String, FileOffset)>,
    report: &mut Report,
) {
    let due = offsets
        .iter()
        .take_while(|(t, _, _)| t.elapsed() >= OFFSET_COMMIT_DELAY)
        .count();
    if due == 0 {
        return;
    }
    if let Err(e) = p.flush() {
        report.error(&e);
        return;
    }
    for (_, key, off) in offsets.drain(..due) {
        if let Err(e) = store.save_offset(&key, &off) {
            report.error(&e);
        }
    }
}

fn handle(
    p: &mut Pipeline,
    offsets: &mut VecDeque<(Instant, String, FileOffset)>,
    m: Produced,
    report: &mut Report,
    history: Option<&crate::hunt::Recorder>,
) {
    match m {
        Produced::Observation(o) => {
            if let Some(h) = history {
                h.record(&o);
            }
            if let Err(e) = p.push(*o) {
                report.error(&e);
            }
        }
        Produced::Batch(batch) => {
            for o in batch {
                if let Some(h) = history {
                    h.record(&o);
                }
                if let Err(e) = p.push(o) {
                    report.error(&e);
                }
            }
        }
        Produced::Positioned(op) => {
            let (o, pos) = *op;
            if let Some(h) = history {
                h.record(&o);
            }
            if let Err(e) = p.push_at(o, Some(pos)) {
                report.error(&e);
            }
        }
        Produced::Offset { key, offset } => {
            // Only the newest position per file matters; bounded by the followed-file cap.
            if offsets.len() >= MAX_PENDING_OFFSETS {
                offsets.pop_front();
            }
            offsets.push_back((Instant::now(), key, offset));
        }
    }
}
