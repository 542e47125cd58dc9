//! The producer contract: how every input (live capture, `--import`, the log follower, dnstap
//! listeners) hands what it reads to the correlation pipeline, and how it is told to stop.
//!
//! * [`ObservationSink`] — what a producer pushes observations (and follower offset commits)
//!   into. The service's sink is [`QueueSink`]: a **bounded** queue, so a producer that outruns
//!   the pipeline blocks (back-pressure) instead of growing memory.
//! * [`StopToken`] — one shutdown mechanism (in the style of mini-redis's `Shutdown`):
//!   cloneable, usable from std threads ([`StopToken::is_stopped`], [`StopToken::wait_timeout`])
//!   and tokio tasks ([`StopToken::stopped`]).
//! * [`Producer`] — `run(sink, stop)`: blocking, on a thread of its own; returns when `stop` is
//!   set, the sink refuses, or the input ends.
//!
//! Plain data and traits only: the producers (`capture::live`, `input::Import`,
//! `ingest::follow`, `ingest::dnstap`) implement [`Producer`]; only `service` wires them to the
//! pipeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::model::{Observation, SourcePos};
use crate::ports::FileOffset;

/// Longest a waiter sleeps between two looks at the stop flag. The flag can also be set
/// directly (a token made [`StopToken::from_flag`] of an `AtomicBool` others store into), which
/// wakes nobody; this bounds how late such a stop is noticed.
pub const STOP_POLL: Duration = Duration::from_millis(50);

/// Where a producer's output goes. Blocking: called from the producer's own thread.
pub trait ObservationSink {
    /// Hands over one observation; blocks while the receiver is full. `false`: the receiver is
    /// gone and the producer should stop (the observation was not taken).
    fn send(&mut self, obs: Observation) -> bool;

    /// Like [`send`](Self::send), for an observation read at `pos` of an input that can be read
    /// again (a followed log): the pipeline uses the position to count it once whatever the
    /// re-reads (`correlate::replay`). A sink that has no use for it just sends.
    fn send_at(&mut self, obs: Observation, pos: SourcePos) -> bool {
        let _ = pos;
        self.send(obs)
    }

    /// Hands over several observations in order (a live capture's burst). A sink that has no
    /// batch of its own sends them one by one; `false`: the receiver is gone (the rest of the
    /// batch was not taken).
    fn send_batch(&mut self, obs: Vec<Observation>) -> bool {
        obs.into_iter().all(|o| self.send(o))
    }

    /// Whether this sink orders follower offset commits behind the observations read before
    /// them ([`commit_offset`](Self::commit_offset)). A sink that does not (a test closure,
    /// `scan`) leaves the follower to write its offsets to its `OffsetStore` directly.
    fn takes_offsets(&self) -> bool {
        false
    }

    /// Queues a follower read position behind every observation sent before it (only called
    /// when [`takes_offsets`](Self::takes_offsets)). `false`: the receiver is gone.
    fn commit_offset(&mut self, key: &str, offset: &FileOffset) -> bool {
        let _ = (key, offset);
        false
    }
}

/// Any `FnMut(Observation) -> bool` is a sink (tests, `scan`, benchmarks).
impl<F: FnMut(Observation) -> bool> ObservationSink for F {
    fn send(&mut self, obs: Observation) -> bool {
        self(obs)
    }
}

/// What travels through a [`QueueSink`].
#[derive(Debug)]
pub enum Produced {
    Observation(Box<Observation>),
    /// An observation and where it was read ([`ObservationSink::send_at`]).
    Positioned(Box<(Observation, SourcePos)>),
    /// Observations in order, one queue slot for all ([`ObservationSink::send_batch`]; the
    /// live capture sends at most `capture::live::SEND_BATCH` at a time).
    Batch(Vec<Observation>),
    /// A follower's read position: every observation read before it was queued before it.
    Offset {
        key: String,
        offset: FileOffset,
    },
}

/// The service's sink: a clone of the sending half of one bounded queue. Every producer gets
/// its own clone; the queue's capacity is its only buffer.
#[derive(Clone, Debug)]
pub struct QueueSink {
    tx: tokio::sync::mpsc::Sender<Produced>,
}

impl QueueSink {
    /// A queue of `capacity` items (at least 1) and its receiving half.
    pub fn bounded(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<Produced>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (QueueSink { tx }, rx)
    }

    /// For async producers: waits for room without blocking the runtime.
    pub async fn send_async(&self, obs: Observation) -> bool {
        self.tx
            .send(Produced::Observation(Box::new(obs)))
            .await
            .is_ok()
    }

    /// Items waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

impl ObservationSink for QueueSink {
    fn send(&mut self, obs: Observation) -> bool {
        // Must not run on the async runtime: producers live on their own threads.
        self.tx
            .blocking_send(Produced::Observation(Box::new(obs)))
            .is_ok()
    }
    fn send_at(&mut self, obs: Observation, pos: SourcePos) -> bool {
        self.tx
            .blocking_send(Produced::Positioned(Box::new((obs, pos))))
            .is_ok()
    }
    fn send_batch(&mut self, obs: Vec<Observation>) -> bool {
        if obs.is_empty() {
            return true;
        }
        self.tx.blocking_send(Produced::Batch(obs)).is_ok()
    }
    fn takes_offsets(&self) -> bool {
        true
    }
    fn commit_offset(&mut self, key: &str, offset: &FileOffset) -> bool {
        self.tx
            .blocking_send(Produced::Offset {
                key: key.to_string(),
                offset: offset.clone(),
            })
            .is_ok()
    }
}

/// The one stop signal of the service: set once, seen by every clone.
#[derive(Clone, Debug)]
pub struct StopToken {
    inner: Arc<StopInner>,
}

#[derive(Debug)]
struct StopInner {
    flag: Arc<AtomicBool>,
    lock: Mutex<()>,
    cv: Condvar,
    notify: tokio::sync::Notify,
}

impl Default for StopToken {
    fn default() -> Self {
        Self::new()
    }
}

impl StopToken {
    pub fn new() -> Self {
        Self::from_flag(Arc::new(AtomicBool::new(false)))
    }

    /// A token over an existing flag (the older `Arc<AtomicBool>` APIs): storing `true` into
    /// the flag stops the token too (noticed within [`STOP_POLL`] by waiters).
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        StopToken {
            inner: Arc::new(StopInner {
                flag,
                lock: Mutex::new(()),
                cv: Condvar::new(),
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The flag itself, for code that polls an `&AtomicBool`.
    pub fn flag(&self) -> &AtomicBool {
        &self.inner.flag
    }

    /// Signals every clone; idempotent.
    pub fn stop(&self) {
        self.inner.flag.store(true, Ordering::Release);
        let _guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.cv.notify_all();
        self.inner.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Blocks the calling (std) thread until stopped or `timeout` passed; returns whether
    /// stopped.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut guard = self.inner.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if self.is_stopped() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let slice = (deadline - now).min(STOP_POLL);
            guard = match self.inner.cv.wait_timeout(guard, slice) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Resolves once stopped (for tokio tasks).
    pub async fn stopped(&self) {
        while !self.is_stopped() {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the second look, so a `stop` in between is not missed.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            let _ = tokio::time::timeout(STOP_POLL, notified).await;
        }
    }
}

/// Why a producer ended, as the service logs it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerReport {
    /// Observations handed to the sink.
    pub observations: u64,
    /// The input ended before `stop` (an import read to its end, stdin closed).
    pub finished: bool,
    /// A failure that ended the producer early (logged by the service).
    pub error: Option<String>,
}

/// One input of the service. `run` blocks (run it on a thread of its own) until `stop`, the
/// sink refusing, or the input's end; on return every observation it produced was sent.
pub trait Producer: Send {
    /// A short name for thread names and logs (`follow`, `dnstap tcp:…`, `capture-eth0`).
    fn name(&self) -> String;
    fn run(self: Box<Self>, sink: QueueSink, stop: StopToken) -> ProducerReport;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_wakes_std_waiters_and_flag_tokens() {
        let t = StopToken::new();
        assert!(!t.wait_timeout(Duration::from_millis(10)));
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.wait_timeout(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(20));
        t.stop();
        assert!(h.join().unwrap());
        let flag = Arc::new(AtomicBool::new(false));
        let ft = StopToken::from_flag(flag.clone());
        flag.store(true, Ordering::Relaxed);
        assert!(ft.is_stopped() && ft.wait_timeout(Duration::from_secs(30)));
    }

    #[test]
    fn stop_wakes_async_waiters() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let t = StopToken::new();
        let t2 = t.clone();
        rt.block_on(async move {
            let w = tokio::spawn(async move { t2.stopped().await });
            tokio::time::sleep(Duration::from_millis(10)).await;
            t.stop();
            tokio::time::timeout(Duration::from_secs(5), w)
                .await
                .unwrap()
                .unwrap();
        });
    }

    #[test]
    fn queue_sink_is_bounded_and_ordered() {
        let (mut s, mut rx) = QueueSink::bounded(2);
        let off = FileOffset {
            dev: 1,
            inode: 2,
            offset: 3,
            fingerprint: 0,
            fingerprint_len: 0,
        };
        assert!(s.commit_offset("k", &off));
        assert_eq!(s.queued(), 1);
        assert!(matches!(rx.try_recv(), Ok(Produced::Offset { .. })));
        drop(rx);
        assert!(!s.commit_offset("k", &off));
    }
}
