//! Hot reload: rebuild from the configured sources on demand or when a list file changes, and
//! swap into the [`SharedBlocklists`] only when the new set builds and is non-empty.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::changes::ChangeNotifier;
use super::{sources_for, Blocklists, BuildReport, ListSource, MatcherError, SharedBlocklists};
use crate::metrics;

/// Shortest poll interval accepted: stat-ing every list more often buys nothing.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Rebuilds from file/directory `paths` (the shipped lists when empty) plus in-memory `extra`
/// lists, and swaps the result into `shared` on success. On failure the working set stays and
/// the error (with file and line) is returned and logged.
pub fn reload(
    shared: &SharedBlocklists,
    paths: &[PathBuf],
    extra: &[ListSource],
) -> Result<BuildReport, MatcherError> {
    let start = Instant::now();
    let result = sources_for(paths).and_then(|mut s| {
        s.extend(extra.iter().cloned());
        Blocklists::build(s)
    });
    let m = Metrics::get();
    m.duration.add(start.elapsed());
    match result {
        Ok((b, report)) => {
            m.ok.inc();
            m.entries.set(i64::try_from(b.len()).unwrap_or(i64::MAX));
            tracing::info!(
                entries = b.len(),
                ms = report.compile_ms,
                "blocklists reloaded"
            );
            shared.store(Arc::new(b));
            Ok(report)
        }
        Err(e) => {
            m.failed.inc();
            tracing::error!(error = %e, "blocklist reload failed; keeping the previous set");
            Err(e)
        }
    }
}

struct Metrics {
    ok: metrics::Counter,
    failed: metrics::Counter,
    duration: metrics::SecondsCounter,
    entries: metrics::Gauge,
}

impl Metrics {
    fn get() -> &'static Metrics {
        static M: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
        M.get_or_init(|| Metrics {
            ok: metrics::counter(
                "poolwatch_blocklist_reloads_total",
                "Blocklist reloads by result.",
                &[("result", "ok")],
            ),
            failed: metrics::counter(
                "poolwatch_blocklist_reloads_total",
                "Blocklist reloads by result.",
                &[("result", "error")],
            ),
            duration: metrics::seconds_counter(
                "poolwatch_blocklist_reload_duration_seconds_total",
                "Time spent reading and compiling blocklists on reload.",
                &[],
            ),
            entries: metrics::gauge(
                "poolwatch_blocklist_entries",
                "Unique entries (names and addresses) in the working blocklist set.",
                &[],
            ),
        })
    }
}

/// Publishes the entry count of an initially loaded set (reloads do it themselves).
pub fn record_entries(b: &Blocklists) {
    Metrics::get()
        .entries
        .set(i64::try_from(b.len()).unwrap_or(i64::MAX));
}

/// Holds what to reload from; shared by the watcher thread and on-demand callers (API).
#[derive(Clone)]
pub struct Reloader {
    shared: SharedBlocklists,
    paths: Arc<Vec<PathBuf>>,
    extra: Arc<Mutex<Vec<ListSource>>>,
    /// Told about every swap this reloader makes (entries added), when a sink is registered.
    changes: Arc<ChangeNotifier>,
}

impl Reloader {
    pub fn new(shared: SharedBlocklists, paths: Vec<PathBuf>) -> Self {
        Reloader {
            shared,
            paths: Arc::new(paths),
            extra: Arc::new(Mutex::new(Vec::new())),
            changes: Arc::new(ChangeNotifier::default()),
        }
    }

    /// Registers the port that hears which entries each swap added (API edits, feed
    /// refreshes, file reloads all swap through here); `None` removes it.
    pub fn set_change_sink(&self, sink: Option<Arc<dyn crate::ports::ListChangeSink>>) {
        self.changes.set_sink(sink);
    }

    /// [`reload`], then the change report (under the caller's lock, so versions follow the
    /// order of the swaps).
    fn reload_and_report(&self, extra: &[ListSource]) -> Result<BuildReport, MatcherError> {
        let old = self.shared.load_full();
        let report = reload(&self.shared, &self.paths, extra)?;
        self.changes.swapped(&old, &self.shared.load());
        Ok(report)
    }

    pub fn shared(&self) -> &SharedBlocklists {
        &self.shared
    }

    /// Rebuilds now (see [`reload`]). Holds the user-list lock while building, so a watcher
    /// reload can never finish after (and overwrite) a concurrent user-list update.
    pub fn reload_now(&self) -> Result<BuildReport, MatcherError> {
        let extra = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        self.reload_and_report(&extra)
    }

    /// The list files and directories this reloader reads.
    pub fn paths(&self) -> &[PathBuf] {
        &self.paths
    }

    /// Replaces the in-memory user lists and reloads; on failure the previous user lists are
    /// restored, so a bad upload leaves both the lists and the working set unchanged.
    pub fn set_user_lists(&self, lists: Vec<ListSource>) -> Result<BuildReport, MatcherError> {
        let mut guard = self.extra.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut *guard, lists);
        match self.reload_and_report(&guard) {
            Ok(r) => Ok(r),
            Err(e) => {
                *guard = old;
                Err(e)
            }
        }
    }

    /// Starts a thread that polls the list files' modification times and sizes every
    /// `interval` and reloads when they change. Stops when the handle is dropped.
    pub fn watch(&self, interval: Duration) -> std::io::Result<WatchHandle> {
        let stop = Arc::new(AtomicBool::new(false));
        let me = self.clone();
        let stop2 = stop.clone();
        let interval = interval.max(MIN_POLL_INTERVAL);
        let thread = std::thread::Builder::new()
            .name("blocklist-watch".into())
            .spawn(move || {
                let mut last = fingerprint(&me.paths);
                while !stop2.load(Ordering::Relaxed) {
                    sleep_unless_stopped(interval, &stop2);
                    let now = fingerprint(&me.paths);
                    if now != last {
                        last = now;
                        // Errors are logged and counted inside; the old set stays.
                        let _ = me.reload_now();
                    }
                }
            })?;
        Ok(WatchHandle {
            stop,
            thread: Some(thread),
        })
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        std::thread::sleep(step.min(deadline - now));
    }
}

/// (path, mtime, size) of every watched file, directories expanded one level.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for p in paths {
        stat_into(p, &mut out);
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.filter_map(Result::ok).take(super::MAX_DIR_FILES) {
                    stat_into(&e.path(), &mut out);
                }
            }
        }
    }
    out.sort();
    out
}

fn stat_into(p: &Path, out: &mut Vec<(PathBuf, Option<SystemTime>, u64)>) {
    let md = std::fs::metadata(p).ok();
    out.push((
        p.to_path_buf(),
        md.as_ref().and_then(|m| m.modified().ok()),
        md.map_or(0, |m| m.len()),
    ));
}

/// Stops the watcher thread when dropped.
pub struct WatchHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
