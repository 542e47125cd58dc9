//! One capture file decoded by several threads (`scan --threads N`: N − 1 decoder workers
//! beside the consumer's thread, which correlates), with the observations coming out in the
//! order one decoder gives them.
//!
//! ```text
//!  dispatcher thread   Savefile → frames, in rounds of ROUND_FRAMES; each frame goes to the
//!                      worker of its outer IP address pair (shard_of), and every worker gets
//!                      every round (maybe empty) plus the timeout ticks one decoder would run
//!  N - 1 workers       a Decoder each (its 1/N share of the table caps, ticks from the
//!                      dispatcher); per round: the observations, each keyed by the capture
//!                      sequence number of the packet (or tick) that produced it
//!  caller's thread     Iterator::next: one round from every worker, merged by that key
//! ```
//!
//! The shard key is the *unordered* pair of outer addresses, so both directions of a flow, a
//! DNS query and its response (even when fragmented: fragments carry no ports) and every
//! fragment of a datagram meet on one worker; a client talking to several servers may be
//! decoded on several workers, but the merge puts every observation back at its packet's place
//! in the capture, so the correlation stage sees each client's lookups and flows in capture
//! order — the same stream as one decoder, except for what depends on the table sizes (each
//! worker's share of the caps, and the flow table's incremental idle sweep, whose slice is a
//! share of its own table). Results are deterministic for a given N: nothing depends on thread
//! timing. `tests/it/capture_parallel.rs` compares one thread with 1, 2 and 3 workers on the
//! lab and fixture captures.
//!
//! Memory is bounded: [`ROUNDS_IN_FLIGHT`] rounds per worker at most between the threads.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rustc_hash::FxHasher;

use super::decode::tick_due;
use super::link::{self, L3};
use super::savefile::{Savefile, SavefileError, SavefileErrorKind};
use super::{CaptureConfig, CaptureStats, Decoder};
use crate::model::{Observation, Source};

/// Most decoder threads per capture file.
pub const MAX_THREADS: usize = 64;
/// Frames read per round (all workers together): large enough that the hand-over costs little
/// per packet, small enough that a round's frames stay in cache.
pub const ROUND_FRAMES: usize = 2048;
/// Rounds of frames queued per worker before the dispatcher waits.
pub const ROUNDS_IN_FLIGHT: usize = 4;
/// Rounds of decoded observations (also the fast path's skips, `parallel_fast`) queued per
/// worker before it waits: the workers keep
/// decoding while the consumer is busy (`scan` compiles its lists meanwhile), at ~1 MiB of
/// observations a round at most. 64 measured 141 MB peak RSS instead of 82 on the 1M-packet
/// bench file (the consumer is the slower side): kept small.
pub const OUTPUT_ROUNDS_IN_FLIGHT: usize = 8;
/// Emptied rounds (frame buffers) kept for the dispatcher to fill again, all workers together,
/// so a round's buffer is not allocated and grown again every round (the growth was ≈ 22 % of
/// the dispatcher's instructions, docs/performance.md).
pub const RECYCLED_ROUNDS: usize = 2 * ROUNDS_IN_FLIGHT;
/// Largest frame buffer kept for reuse: a round of unusually large frames is freed, not kept.
pub const RECYCLE_MAX_BYTES: usize = 1 << 20;

/// Every core: the thread count the issue asks `scan` to default to (not yet: on two cores it
/// measured slower than one thread, docs/performance.md).
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS)
}

/// What a worker does, in capture order.
#[derive(Clone, Copy)]
pub(super) enum Step {
    /// Run the timeouts at capture time `ts` (before the packet `seq`, as one decoder would).
    Tick { seq: u64, ts: i64 },
    /// Decode the frame `data[start..end]` of the round.
    Frame {
        seq: u64,
        ts: i64,
        linktype: i32,
        start: usize,
        end: usize,
    },
}

pub(super) struct Round {
    pub(super) data: Vec<u8>,
    pub(super) steps: Vec<Step>,
}

impl Round {
    /// Hands an emptied round back to the dispatcher (unless its buffer grew too large).
    pub(super) fn recycle(mut self, pool: &Pool<Round>) {
        if self.data.capacity() <= RECYCLE_MAX_BYTES {
            self.data.clear();
            self.steps.clear();
            pool.give(self);
        }
    }
}

/// Emptied buffers handed back between the threads for reuse: at most `max` are kept (past
/// that a buffer is freed), so it bounds nothing but what is already in flight.
pub(super) struct Pool<T> {
    items: Mutex<Vec<T>>,
    max: usize,
}

impl<T> Pool<T> {
    pub(super) fn new(max: usize) -> Self {
        Pool {
            items: Mutex::new(Vec::with_capacity(max)),
            max,
        }
    }

    /// A buffer to fill, if one was given back (a poisoned lock just means none).
    pub(super) fn take(&self) -> Option<T> {
        self.items.lock().ok()?.pop()
    }

    pub(super) fn give(&self, t: T) {
        if let Ok(mut items) = self.items.lock() {
            if items.len() < self.max {
                items.push(t);
            }
        }
    }
}

pub(super) enum ToWorker {
    Round(Round),
    /// End of input (`read_error`: it stopped early, counted like the one-thread reader does).
    End {
        read_error: bool,
    },
}

enum FromWorker {
    Round(Vec<(u64, Observation)>),
    Final(Vec<Observation>, Box<CaptureStats>),
}

/// What the dispatcher learned of the file.
#[derive(Default)]
pub(super) struct Dispatched {
    error: Option<SavefileError>,
}

/// The observations of one capture file from N decoder threads, in capture order.
pub(crate) struct Parallel {
    from: Vec<Receiver<FromWorker>>,
    dispatcher: Option<JoinHandle<Dispatched>>,
    /// The current round, one part per worker, each in key order.
    parts: Vec<std::iter::Peekable<std::vec::IntoIter<(u64, Observation)>>>,
    /// The end-of-input reports, merged.
    merged: std::vec::IntoIter<Observation>,
    finished: bool,
    stats: CaptureStats,
    error: Option<SavefileError>,
}

impl Parallel {
    /// Starts the dispatcher over `file` and `workers` decoder threads (at least 1; the
    /// consumer's thread is the other one of `CaptureConfig::threads`).
    pub(crate) fn start(
        file: Savefile,
        cfg: &CaptureConfig,
        source: Source,
        workers: usize,
        name: String,
    ) -> std::io::Result<Self> {
        let (from, dispatcher) = start_pool(file, cfg, source, workers, name, "pw-decode", worker)?;
        Ok(Parallel {
            from,
            dispatcher: Some(dispatcher),
            parts: Vec::new(),
            merged: Vec::new().into_iter(),
            finished: false,
            stats: CaptureStats::default(),
            error: None,
        })
    }

    /// The workers' counters together (complete once the iterator has returned `None`).
    pub(crate) fn stats(&self) -> CaptureStats {
        self.stats.clone()
    }

    pub(crate) fn error(&self) -> Option<&SavefileError> {
        self.error.as_ref()
    }

    /// The next observation of the current round: the smallest key at the head of a worker's
    /// part, the lowest worker on a tie (a tick's reports), so the order never depends on
    /// timing.
    fn pop_round(&mut self) -> Option<Observation> {
        let mut best: Option<(usize, u64)> = None;
        for (i, p) in self.parts.iter_mut().enumerate() {
            if let Some((k, _)) = p.peek() {
                if best.is_none_or(|(_, b)| *k < b) {
                    best = Some((i, *k));
                }
            }
        }
        let (i, _) = best?;
        self.parts.get_mut(i)?.next().map(|(_, o)| o)
    }

    /// Receives one round from every worker; `false` at the end.
    fn next_round(&mut self) -> bool {
        self.parts.clear();
        let mut finals: Vec<Observation> = Vec::new();
        let mut ended = 0usize;
        let mut lost = false;
        for rx in &self.from {
            match rx.recv() {
                Ok(FromWorker::Round(v)) => self.parts.push(v.into_iter().peekable()),
                Ok(FromWorker::Final(v, stats)) => {
                    ended += 1;
                    finals.extend(v);
                    self.stats.merge(&stats);
                }
                Err(_) => lost = true,
            }
        }
        if ended == 0 && !lost {
            return true;
        }
        self.parts.clear();
        // End of input: one decoder reports its pending queries (oldest first), then its open
        // flows (oldest first); the workers' reports are merged the same way.
        finals.sort_by_key(|o| (matches!(o, Observation::Flow(_)), o.ts()));
        self.merged = finals.into_iter();
        self.finished = true;
        self.error = end_of_input(self.dispatcher.take(), lost);
        true
    }
}

impl Iterator for Parallel {
    type Item = Observation;

    fn next(&mut self) -> Option<Observation> {
        loop {
            if let Some(o) = self.pop_round() {
                return Some(o);
            }
            if let Some(o) = self.merged.next() {
                return Some(o);
            }
            if self.finished || !self.next_round() {
                return None;
            }
        }
    }
}

/// Starts `workers` (1 to [`MAX_THREADS`]) threads running `body` on a decoder each (its
/// share of `cfg`'s caps, ticks from the dispatcher) with bounded channels in and out, then
/// the dispatcher over `file`: the workers' result channels and the dispatcher.
pub(super) fn start_pool<R: Send + 'static>(
    file: Savefile,
    cfg: &CaptureConfig,
    source: Source,
    workers: usize,
    name: String,
    prefix: &str,
    body: impl Fn(Decoder, Receiver<ToWorker>, SyncSender<R>, Arc<Pool<Round>>) + Clone + Send + 'static,
) -> std::io::Result<(Vec<Receiver<R>>, JoinHandle<Dispatched>)> {
    let n = workers.clamp(1, MAX_THREADS);
    let rounds = Arc::new(Pool::new(RECYCLED_ROUNDS));
    let share = worker_config(cfg, n);
    let mut to = Vec::with_capacity(n);
    let mut from = Vec::with_capacity(n);
    for i in 0..n {
        let (tx_in, rx_in) = sync_channel::<ToWorker>(ROUNDS_IN_FLIGHT);
        let (tx_out, rx_out) = sync_channel::<R>(OUTPUT_ROUNDS_IN_FLIGHT);
        let mut decoder = Decoder::new(&share, source.clone());
        decoder.set_external_ticks();
        let body = body.clone();
        let pool = Arc::clone(&rounds);
        std::thread::Builder::new()
            .name(format!("{prefix}-{i}"))
            .spawn(move || body(decoder, rx_in, tx_out, pool))?;
        to.push(tx_in);
        from.push(rx_out);
    }
    let dispatcher = std::thread::Builder::new()
        .name("pw-dispatch".into())
        .spawn(move || dispatch(file, to, name, &rounds))?;
    Ok((from, dispatcher))
}

/// The caps of one of `n` workers: an equal share of the file's (one decoder each).
fn worker_config(cfg: &CaptureConfig, n: usize) -> CaptureConfig {
    CaptureConfig {
        threads: 1,
        max_pending_dns: cfg.max_pending_dns.div_ceil(n).max(1),
        max_flows: cfg.max_flows.div_ceil(n).max(1),
        ..cfg.clone()
    }
}

/// At the end of input: joins the dispatcher and says why reading stopped early, if it did
/// (`lost`: a worker's channel closed, which it cannot short of a bug: never a silent
/// partial result).
pub(super) fn end_of_input(
    dispatcher: Option<JoinHandle<Dispatched>>,
    lost: bool,
) -> Option<SavefileError> {
    let dispatched = dispatcher.and_then(|h| h.join().ok()).unwrap_or_default();
    match dispatched.error {
        None if lost => Some(SavefileError {
            offset: 0,
            kind: SavefileErrorKind::Io("a decoder thread stopped".into()),
        }),
        e => e,
    }
}

/// The worker of a frame: a hash of its outer IP address pair, unordered (see the module
/// docs). Frames without IP go to worker 0, which counts them.
pub(crate) fn shard_of(linktype: i32, frame: &[u8], n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let Ok((l3, ip)) = link::decode(linktype, frame) else {
        return 0;
    };
    let (a, b) = match l3 {
        L3::Ipv4 => (ip.get(12..16), ip.get(16..20)),
        L3::Ipv6 => (ip.get(8..24), ip.get(24..40)),
    };
    let (Some(a), Some(b)) = (a, b) else {
        return 0;
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = FxHasher::default();
    lo.hash(&mut h);
    hi.hash(&mut h);
    // The high bits of an Fx hash are the well-mixed ones.
    let x = h.finish();
    usize::try_from((x >> 32) % n as u64).unwrap_or(0)
}

/// Reads the file and deals its frames out in rounds.
fn dispatch(
    mut file: Savefile,
    to: Vec<SyncSender<ToWorker>>,
    name: String,
    pool: &Pool<Round>,
) -> Dispatched {
    let n = to.len();
    let mut seq = 0u64;
    let mut last_expire = i64::MIN;
    let mut warned: Vec<i32> = Vec::new();
    let mut error = None;
    loop {
        let mut rounds: Vec<Round> = (0..n)
            .map(|_| {
                pool.take().unwrap_or_else(|| Round {
                    data: Vec::with_capacity(ROUND_FRAMES * 160 / n),
                    steps: Vec::with_capacity(ROUND_FRAMES / n + 8),
                })
            })
            .collect();
        let mut frames = 0usize;
        let mut end = false;
        while frames < ROUND_FRAMES {
            match file.next_frame() {
                Ok(Some(f)) => {
                    if tick_due(last_expire, f.ts_us) {
                        last_expire = f.ts_us;
                        for r in &mut rounds {
                            r.steps.push(Step::Tick { seq, ts: f.ts_us });
                        }
                    }
                    if !link::supported(f.linktype)
                        && !warned.contains(&f.linktype)
                        && warned.len() < 64
                    {
                        warned.push(f.linktype);
                        tracing::warn!(path = %name, linktype = f.linktype, "unsupported link type: packets will be counted, not decoded");
                    }
                    let w = shard_of(f.linktype, f.data, n);
                    if let Some(r) = rounds.get_mut(w) {
                        let start = r.data.len();
                        r.data.extend_from_slice(f.data);
                        r.steps.push(Step::Frame {
                            seq,
                            ts: f.ts_us,
                            linktype: f.linktype,
                            start,
                            end: r.data.len(),
                        });
                    }
                    seq += 1;
                    frames += 1;
                }
                Ok(None) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(path = %name, error = %e, "capture file ended early");
                    error = Some(e);
                    end = true;
                    break;
                }
            }
        }
        for (tx, r) in to.iter().zip(rounds) {
            if tx.send(ToWorker::Round(r)).is_err() {
                // The reader was dropped: nobody wants the rest.
                return Dispatched { error };
            }
        }
        if end {
            for (i, tx) in to.iter().enumerate() {
                let read_error = i == 0 && error.is_some();
                let _ = tx.send(ToWorker::End { read_error });
            }
            return Dispatched { error };
        }
    }
}

fn worker(
    mut d: Decoder,
    rx: Receiver<ToWorker>,
    tx: SyncSender<FromWorker>,
    pool: Arc<Pool<Round>>,
) {
    let mut q: VecDeque<Observation> = VecDeque::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Round(r) => {
                let mut out = Vec::with_capacity(r.steps.len() / 2 + 4);
                for &step in &r.steps {
                    match step {
                        Step::Tick { seq, ts } => {
                            d.tick(ts, &mut q);
                            // Before the packet's own observations (2·seq + 1).
                            out.extend(q.drain(..).map(|o| (2 * seq, o)));
                        }
                        Step::Frame {
                            seq,
                            ts,
                            linktype,
                            start,
                            end,
                        } => {
                            let frame = r.data.get(start..end).unwrap_or_default();
                            d.packet(ts, linktype, frame, &mut q);
                            out.extend(q.drain(..).map(|o| (2 * seq + 1, o)));
                        }
                    }
                }
                r.recycle(&pool);
                if tx.send(FromWorker::Round(out)).is_err() {
                    return;
                }
            }
            ToWorker::End { read_error } => {
                if read_error {
                    d.stats_error("capture_read_error");
                }
                d.finish(&mut q);
                let stats = Box::new(d.stats());
                let _ = tx.send(FromWorker::Final(q.drain(..).collect(), stats));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_v4(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f
    }

    #[test]
    fn the_pool_keeps_at_most_its_cap_and_no_oversized_round() {
        let pool = Pool::new(2);
        for _ in 0..3 {
            let mut r = Round {
                data: Vec::with_capacity(64),
                steps: Vec::new(),
            };
            r.data.extend_from_slice(b"frame");
            r.steps.push(Step::Tick { seq: 1, ts: 2 });
            r.recycle(&pool);
        }
        let big = Round {
            data: Vec::with_capacity(RECYCLE_MAX_BYTES + 1),
            steps: Vec::new(),
        };
        big.recycle(&pool);
        let mut kept = 0;
        while let Some(r) = pool.take() {
            assert!(r.data.is_empty() && r.steps.is_empty());
            assert!(r.data.capacity() >= 64 && r.data.capacity() <= RECYCLE_MAX_BYTES);
            kept += 1;
        }
        assert_eq!(kept, 2);
    }

    #[test]
    fn both_directions_share_a_worker() {
        let mut seen = [false; 4];
        for i in 0..64u8 {
            let a = [10, 0, 0, i];
            let b = [192, 0, 2, 53];
            let x = shard_of(link::LINKTYPE_ETHERNET, &frame_v4(a, b), 4);
            let y = shard_of(link::LINKTYPE_ETHERNET, &frame_v4(b, a), 4);
            assert_eq!(x, y);
            seen[x] = true;
        }
        // 64 clients of one resolver spread over every worker.
        assert!(seen.iter().all(|s| *s), "{seen:?}");
        assert_eq!(shard_of(link::LINKTYPE_ETHERNET, b"\x00\x01", 4), 0);
    }
}
