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
use std::sync::Arc;
use std::thread::JoinHandle;

use rustc_hash::FxHasher;

use super::decode::tick_due;
use super::flows::FINISH_BATCH;
use super::link::{self, L3};
pub(super) use super::pool::Pool;
use super::savefile::{Savefile, SavefileError, SavefileErrorKind};
use super::tails::{Tail, Tails};
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
/// Emptied rounds kept for the dispatcher to fill again, all workers together, so a round's
/// step list is not allocated and grown again every round.
pub const RECYCLED_ROUNDS: usize = 2 * ROUNDS_IN_FLIGHT;
/// Read buffers (1 MiB each) kept for the savefile reader to fill again once every worker is
/// done with the frames in them: the workers read their frames in place, nothing is copied
/// (the copies and their growth were ≈ 50 % of the dispatcher's instructions).
pub const RECYCLED_BUFFERS: usize = 8;
/// Largest read buffer kept for reuse (a larger one is freed).
pub const RECYCLE_MAX_BYTES: usize = 2 << 20;

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
    /// Decode the frame `buffers[buffer][start..end]` of the round.
    Frame {
        seq: u64,
        ts: i64,
        linktype: i32,
        buffer: u32,
        start: u32,
        end: u32,
    },
}

/// One worker's share of a round: its steps, and the read buffers its frames are in (shared
/// with the savefile reader and the other workers, read in place).
pub(super) struct Round {
    pub(super) buffers: Vec<Arc<Vec<u8>>>,
    pub(super) steps: Vec<Step>,
}

impl Round {
    /// The bytes of a frame step.
    pub(super) fn frame(&self, buffer: u32, start: u32, end: u32) -> &[u8] {
        self.buffers
            .get(buffer as usize)
            .and_then(|b| b.get(start as usize..end as usize))
            .unwrap_or_default()
    }

    /// Hands an emptied round back to the dispatcher, and each read buffer nobody else reads
    /// any more back to the savefile reader.
    pub(super) fn recycle(mut self, pools: &Pools) {
        for b in self.buffers.drain(..) {
            if let Some(b) = Arc::into_inner(b) {
                if b.capacity() <= RECYCLE_MAX_BYTES {
                    pools.buffers.give(b);
                }
            }
        }
        self.steps.clear();
        pools.rounds.give(self);
    }
}

/// The buffers the dispatcher and the workers hand back and forth.
pub(super) struct Pools {
    rounds: Pool<Round>,
    buffers: Arc<Pool<Vec<u8>>>,
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
    /// A batch of the end-of-input reports (about `FINISH_BATCH`); more follow.
    Tail(Vec<Observation>),
    /// The last batch, and the worker's counters.
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
    threads: Threads,
    /// The current round, one part per worker, each in key order.
    parts: Vec<std::iter::Peekable<std::vec::IntoIter<(u64, Observation)>>>,
    /// End of input: each worker's current batch of reports.
    tails: Tails<std::vec::IntoIter<Observation>>,
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
        let (from, threads) = start_pool(file, cfg, source, workers, name, "pw-decode", worker)?;
        Ok(Parallel {
            from,
            threads,
            parts: Vec::new(),
            tails: Tails::default(),
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
        let mut tails = Tails::default();
        let mut ended = false;
        for rx in &self.from {
            match rx.recv() {
                Ok(FromWorker::Round(v)) => {
                    self.parts.push(v.into_iter().peekable());
                    // Every worker ends in the same round: one still in its rounds beside
                    // one that ended is a lost one (unused otherwise).
                    tails.lose_one();
                }
                Ok(m) => {
                    ended = true;
                    tails.start(tail(m), |s| self.stats.merge(&s));
                }
                Err(_) => {
                    ended = true;
                    tails.lose_one();
                }
            }
        }
        if !ended {
            return true;
        }
        self.parts.clear();
        self.tails = tails;
        self.finished = true;
        self.refill_tails();
        true
    }

    /// The next end-of-input report, merged as `tails` describes.
    fn pop_tail(&mut self) -> Option<Observation> {
        if !self.finished {
            return None;
        }
        self.refill_tails();
        let head = |b: &std::vec::IntoIter<Observation>| {
            let o = b.as_slice().first()?;
            Some((matches!(o, Observation::Flow(_)), o.ts().0))
        };
        self.tails.next_batch(head)?.next()
    }

    fn refill_tails(&mut self) {
        let stats = &mut self.stats;
        self.tails.refill(
            &mut self.from,
            &mut self.threads,
            &mut self.error,
            |b| b.len() == 0,
            tail,
            |s| stats.merge(&s),
        );
    }
}

/// A worker's end-of-input message for [`Tails`].
fn tail(m: FromWorker) -> Tail<std::vec::IntoIter<Observation>, Box<CaptureStats>> {
    match m {
        FromWorker::Tail(v) => Tail::More(v.into_iter()),
        FromWorker::Final(v, stats) => Tail::Last(v.into_iter(), stats),
        FromWorker::Round(_) => Tail::Other,
    }
}

impl Iterator for Parallel {
    type Item = Observation;

    fn next(&mut self) -> Option<Observation> {
        loop {
            if let Some(o) = self.pop_round() {
                return Some(o);
            }
            if let Some(o) = self.pop_tail() {
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
    body: impl Fn(Decoder, Receiver<ToWorker>, SyncSender<R>, Arc<Pools>) + Clone + Send + 'static,
) -> std::io::Result<(Vec<Receiver<R>>, Threads)> {
    let n = workers.clamp(1, MAX_THREADS);
    let pools = Arc::new(Pools {
        rounds: Pool::new(RECYCLED_ROUNDS),
        buffers: Arc::new(Pool::new(RECYCLED_BUFFERS)),
    });
    let mut file = file;
    file.share_buffers(Arc::clone(&pools.buffers));
    let share = worker_config(cfg, n);
    let mut to = Vec::with_capacity(n);
    let mut from = Vec::with_capacity(n);
    let mut workers = Vec::with_capacity(n);
    for i in 0..n {
        let (tx_in, rx_in) = sync_channel::<ToWorker>(ROUNDS_IN_FLIGHT);
        let (tx_out, rx_out) = sync_channel::<R>(OUTPUT_ROUNDS_IN_FLIGHT);
        let mut decoder = Decoder::new(&share, source.clone());
        decoder.set_external_ticks();
        let body = body.clone();
        let pool = Arc::clone(&pools);
        workers.push(
            std::thread::Builder::new()
                .name(format!("{prefix}-{i}"))
                .spawn(move || body(decoder, rx_in, tx_out, pool))?,
        );
        to.push(tx_in);
        from.push(rx_out);
    }
    let dispatcher = std::thread::Builder::new()
        .name("pw-dispatch".into())
        .spawn(move || dispatch(file, to, name, &pools))?;
    let threads = Threads {
        dispatcher: Some(dispatcher),
        workers,
    };
    Ok((from, threads))
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

/// The threads of a pool, joined at the end of input: after a complete read none is left
/// running or holding memory. A reader dropped before its end closes the result channels
/// (its first field), so every worker's next send fails and then the dispatcher's; those
/// threads end on their own (a join there could wait on a stalled input).
pub(super) struct Threads {
    dispatcher: Option<JoinHandle<Dispatched>>,
    workers: Vec<JoinHandle<()>>,
}

impl Threads {
    /// Joins the dispatcher and the workers (each has sent its end of input, or its result
    /// channel is closed) and says why reading stopped early, if it did (`lost`: a worker's
    /// channel closed, which it cannot short of a bug: never a silent partial result). A
    /// second call returns `None`.
    pub(super) fn join(&mut self, lost: bool) -> Option<SavefileError> {
        let dispatcher = self.dispatcher.take()?;
        let dispatched = dispatcher.join().unwrap_or_default();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        match dispatched.error {
            None if lost => Some(SavefileError {
                offset: 0,
                kind: SavefileErrorKind::Io("a decoder thread stopped".into()),
            }),
            e => e,
        }
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
    pools: &Pools,
) -> Dispatched {
    let n = to.len();
    let mut seq = 0u64;
    let mut last_expire = i64::MIN;
    let mut warned: Vec<i32> = Vec::new();
    let mut error = None;
    loop {
        let mut rounds: Vec<Round> = (0..n)
            .map(|_| {
                pools.rounds.take().unwrap_or_else(|| Round {
                    buffers: Vec::with_capacity(4),
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
                    let (ts, linktype, len) = (f.ts_us, f.linktype, f.data.len());
                    // The frame stays where the reader put it: the worker reads it there.
                    let (at, buf) = (file.last_at(), file.buffer());
                    if let Some(r) = rounds.get_mut(w) {
                        if !r.buffers.last().is_some_and(|b| Arc::ptr_eq(b, buf)) {
                            r.buffers.push(Arc::clone(buf));
                        }
                        // A buffer is at most MAX_BLOCK_LEN past READ_BUF_LEN: offsets fit.
                        let buffer = u32::try_from(r.buffers.len() - 1).unwrap_or(u32::MAX);
                        let start = u32::try_from(at).unwrap_or(u32::MAX);
                        let end = u32::try_from(at + len).unwrap_or(u32::MAX);
                        r.steps.push(Step::Frame {
                            seq,
                            ts,
                            linktype,
                            buffer,
                            start,
                            end,
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

fn worker(mut d: Decoder, rx: Receiver<ToWorker>, tx: SyncSender<FromWorker>, pools: Arc<Pools>) {
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
                            buffer,
                            start,
                            end,
                        } => {
                            let frame = r.frame(buffer, start, end);
                            d.packet(ts, linktype, frame, &mut q);
                            out.extend(q.drain(..).map(|o| (2 * seq + 1, o)));
                        }
                    }
                }
                r.recycle(&pools);
                if tx.send(FromWorker::Round(out)).is_err() {
                    return;
                }
            }
            ToWorker::End { read_error } => {
                if read_error {
                    d.stats_error("capture_read_error");
                }
                // In batches (issue #11), as `parallel_fast`'s workers.
                while !d.finish_some(&mut q, None, FINISH_BATCH) {
                    if q.len() >= FINISH_BATCH
                        && tx.send(FromWorker::Tail(q.drain(..).collect())).is_err()
                    {
                        return;
                    }
                }
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
    fn a_read_buffer_goes_back_once_nobody_reads_it() {
        let pools = Pools {
            rounds: Pool::new(RECYCLED_ROUNDS),
            buffers: Arc::new(Pool::new(RECYCLED_BUFFERS)),
        };
        let buf = Arc::new(vec![7u8; 64]);
        let big = Arc::new(Vec::with_capacity(RECYCLE_MAX_BYTES + 1));
        let round = |b: &Arc<Vec<u8>>| Round {
            buffers: vec![Arc::clone(b)],
            steps: vec![Step::Frame {
                seq: 0,
                ts: 0,
                linktype: 1,
                buffer: 0,
                start: 2,
                end: 5,
            }],
        };
        let (a, b) = (round(&buf), round(&buf));
        assert_eq!(a.frame(0, 2, 5), &[7, 7, 7]);
        assert_eq!(a.frame(1, 2, 5), b"", "no such buffer");
        assert_eq!(a.frame(0, 60, 70), b"", "past its end");
        drop(buf);
        // The first worker done leaves it to the second; the second gives it back.
        a.recycle(&pools);
        assert!(pools.buffers.take().is_none());
        b.recycle(&pools);
        assert_eq!(pools.buffers.take().map(|v| v.len()), Some(64));
        // A buffer larger than the cap is freed, not kept.
        let c = round(&big);
        drop(big);
        c.recycle(&pools);
        assert!(pools.buffers.take().is_none());
        let r = pools.rounds.take().expect("the emptied rounds are kept");
        assert!(r.buffers.is_empty() && r.steps.is_empty());
    }

    /// A pcap header (Ethernet) and one 34-byte IPv4 frame per address pair.
    fn savefile(frames: usize) -> Savefile {
        let mut b = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for i in 0..frames {
            let f = frame_v4([10, 0, 0, i as u8], [192, 0, 2, 53]);
            b.extend_from_slice(&(i as u32).to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b.extend_from_slice(&(f.len() as u32).to_le_bytes());
            b.extend_from_slice(&(f.len() as u32).to_le_bytes());
            b.extend_from_slice(&f);
        }
        Savefile::new(Box::new(std::io::Cursor::new(b))).expect("a pcap header")
    }

    #[test]
    fn the_end_of_input_joins_every_thread() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        // Each worker, after its end of input, still holds its state for a while (as a real
        // worker drops its decoder): `join` must wait for it, so nothing of the run is left
        // running or allocated once the reader has returned its last observation.
        static DONE: AtomicUsize = AtomicUsize::new(0);
        struct Late;
        impl Drop for Late {
            fn drop(&mut self) {
                std::thread::sleep(std::time::Duration::from_millis(50));
                DONE.fetch_add(1, Ordering::SeqCst);
            }
        }
        let body = |_d: Decoder, rx: Receiver<ToWorker>, tx: SyncSender<u32>, p: Arc<Pools>| {
            let _late = Late;
            let mut frames = 0u32;
            while let Ok(msg) = rx.recv() {
                match msg {
                    ToWorker::Round(r) => {
                        frames += r.steps.len() as u32;
                        r.recycle(&p);
                    }
                    ToWorker::End { .. } => {
                        let _ = tx.send(frames);
                        return;
                    }
                }
            }
        };
        let cfg = CaptureConfig::default();
        let (from, mut threads) = start_pool(
            savefile(40),
            &cfg,
            Source::pcap("t"),
            3,
            "t".into(),
            "pw-t",
            body,
        )
        .expect("threads start");
        let steps: u32 = from.iter().filter_map(|rx| rx.recv().ok()).sum();
        assert!(steps >= 40, "every frame reached a worker ({steps} steps)");
        assert!(threads.join(false).is_none());
        assert_eq!(
            DONE.load(Ordering::SeqCst),
            3,
            "joined after every worker ended"
        );
        assert!(threads.join(false).is_none(), "a second join is a no-op");
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
