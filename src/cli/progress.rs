//! `scan`'s progress bar on a terminal (bytes read of the inputs' total, %, rate, ETA), and the
//! stderr writer that logs and messages go through so that they print above the bar instead
//! of breaking it.

use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::input::ByteCount;

/// How often the bar is redrawn (at most).
const REFRESH_HZ: u8 = 10;

/// The bar on screen, if any: the stderr writer suspends it around each line.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active() -> Option<ProgressBar> {
    ACTIVE.lock().ok().and_then(|g| g.clone())
}

/// Writes `buf` to stderr, above the progress bar when one is shown.
pub fn write_stderr(buf: &[u8]) {
    let write = || {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(buf);
        let _ = e.flush();
    };
    match active() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// A `tracing` writer: collects one event and writes it in one piece through [`write_stderr`].
#[derive(Default)]
pub struct StderrLine(Vec<u8>);

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrLine {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_stderr(&self.0);
        }
    }
}

/// The progress of a scan: bytes read (from `count`) of `total` (`None`: a stream, size
/// unknown, so bytes and rate only).
pub struct Progress {
    bar: ProgressBar,
    count: ByteCount,
}

impl Progress {
    /// A bar on stderr when it is a terminal, else `None` (nothing is drawn).
    pub fn start(count: ByteCount, total: Option<u64>) -> Option<Self> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = match total {
            Some(t) => ProgressBar::with_draw_target(
                Some(t),
                ProgressDrawTarget::stderr_with_hz(REFRESH_HZ),
            )
            .with_style(
                ProgressStyle::with_template(
                    "{spinner} [{bar:30}] {bytes}/{total_bytes} {percent:>3}% {binary_bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(REFRESH_HZ))
                .with_style(
                    ProgressStyle::with_template("{spinner} {bytes} read ({binary_bytes_per_sec}) {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
        };
        bar.enable_steady_tick(Duration::from_millis(1000 / u64::from(REFRESH_HZ)));
        if let Ok(mut g) = ACTIVE.lock() {
            *g = Some(bar.clone());
        }
        Some(Progress { bar, count })
    }

    /// Moves the bar to the bytes read so far (cheap: one atomic load).
    pub fn update(&self) {
        self.bar.set_position(self.position());
    }

    fn position(&self) -> u64 {
        self.count.read()
    }

    /// Draws the final state (it stays on screen, like curl's) and stops routing stderr.
    pub fn finish(self) {
        self.bar.set_position(self.position());
        self.bar.finish();
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
        // The finished bar stays on its line with the cursor at its end: what follows (the
        // closing log line, the shell prompt) starts on a line of its own.
        if !self.bar.is_hidden() {
            write_stderr(b"\n");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An error ended the scan: take the bar off the screen before the message.
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
        if let Ok(mut g) = ACTIVE.lock() {
            *g = None;
        }
    }
}
