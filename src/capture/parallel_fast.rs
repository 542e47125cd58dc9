//! `scan --threads N` with the packet fast path (issue #16): the decoder workers of
//! [`super::parallel`] run [`Decoder::packet_fast`], answering the fast path's questions
//! themselves, and the consumer checks each of their skips against its engine in stream order.
//!
//! ```text
//!  dispatcher thread   as in `parallel`: frames in rounds, sharded by the outer address pair,
//!                      the timeout ticks one decoder would run
//!  N workers           Decoder::packet_fast with a WorkerInterest: query and CNAME names
//!                      against the lists (pure), answer addresses against the lists and the
//!                      addresses the worker's own listed answers named ("bound"); a message
//!                      they cannot skip is decoded there with hickory, as on one thread
//!  caller's thread     one round from every worker, merged by capture sequence number:
//!                      observations are returned, skipped messages handed to the caller's
//!                      DnsInterest — each answered one after the caller confirmed, with its
//!                      own engine at that point of the stream, that its addresses do not matter
//! ```
//!
//! The fast path's rule (`txn::DnsInterest`) is that a response may be skipped only when the
//! consumer's state, after every earlier observation, says its answers cannot matter. A worker
//! cannot see that state; it guesses from what it saw: every address answered to one of its
//! listed lookups (the only way the engine binds an address in `scan`) is taken to matter.
//! One worker sees every DNS message of the capture, so with one worker the guess is a
//! superset of the engine's answer and never wrong. With several, a lookup bound on one worker
//! can make another worker's skip wrong (a pool address answered to an unlisted name of a
//! client decoded elsewhere). The consumer therefore asks its engine about every skipped
//! response ([`DnsInterest::answers_matter`], exactly the question one thread asks) before it
//! hands it over; on a "matters" the reader stops and reports [`ParallelFast::mispredicted`],
//! and `scan` runs the capture again on one thread (the result is never built from a wrong
//! skip). Nothing depends on thread timing: for a given N the same skips are made and checked.
//!
//! Skipped unanswered queries need no engine answer (an unlisted query left unanswered only
//! counts and moves the clock): the workers skip them without a check, except at timeouts,
//! which the dispatcher's ticks run through [`Decoder::tick`] (the reference path: reported).
//!
//! Memory is bounded: the pool of [`super::parallel`] (`ROUNDS_IN_FLIGHT` rounds of frames and
//! `OUTPUT_ROUNDS_IN_FLIGHT` rounds of results per worker; the channels block, nothing is
//! dropped), the end of input in batches of about `FINISH_BATCH` reports per worker (merged as
//! they arrive, never all held at once), and [`MAX_BOUND_IPS`] guessed addresses per worker; past it the worker decodes
//! every response that has an address (counted, [`ParallelFast::bound_overflows`]).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;

use rustc_hash::FxHashSet;

use super::flows::FINISH_BATCH;
use super::parallel::{start_pool, Pool, Pools, Step, Threads, ToWorker, OUTPUT_ROUNDS_IN_FLIGHT};
use super::savefile::{Savefile, SavefileError};
use super::tails::{Tail, Tails};
use super::txn::DnsInterest;
use super::{CaptureConfig, CaptureStats, Decoder};
use crate::model::{DnsObservation, DnsSkim, Observation, Source};

/// Addresses a worker remembers as answered to its listed lookups. Past it every response
/// with an address is decoded (never a wrong skip), and the overflow is counted.
pub const MAX_BOUND_IPS: usize = 1 << 18;
/// Emptied parts (result buffers) kept for the workers to fill again, all workers together:
/// without them every round's part was grown from empty (≈ 4 % of a worker's instructions).
pub const RECYCLED_PARTS: usize = OUTPUT_ROUNDS_IN_FLIGHT;
/// Largest part kept for reuse, in results (a tick that reported a whole table is freed).
pub const RECYCLE_MAX_RESULTS: usize = 4 * super::parallel::ROUND_FRAMES;

/// The pure half of the fast path's questions: the lists, which never change during a scan.
/// Shared by the workers (`scan` answers with the engine's own list snapshot).
pub trait ListedNames: Send + Sync {
    /// `DnsInterest::name_listed`: the engine's name test on a normalised name.
    fn name_listed(&self, name: &str) -> bool;
    /// Whether an address is listed (the engine's address lists, any port).
    fn ip_listed(&self, ip: IpAddr) -> bool;
}

/// A skipped message as a worker hands it over: `len` answer addresses from `start` in its
/// part's address buffer, the ones the skip was judged on (none for an unanswered query).
#[derive(Clone, Copy)]
struct Skip {
    skim: DnsSkim,
    start: u32,
    len: u32,
}

/// A worker's results for one round, in capture order: `order` keys each one by `2·seq` (a
/// tick before packet `seq`) or `2·seq + 1` (the packet) and says whether it is the next
/// skip or the next observation (kept apart: a skip is a few dozen bytes, an observation
/// ≈ 300).
#[derive(Default)]
struct Part {
    order: VecDeque<(u64, bool)>,
    obs: VecDeque<Observation>,
    skips: VecDeque<Skip>,
    ips: Vec<IpAddr>,
}

impl Part {
    fn push_obs(&mut self, key: u64, o: Observation) {
        self.order.push_back((key, false));
        self.obs.push_back(o);
    }

    fn push_skip(&mut self, key: u64, s: Skip) {
        self.order.push_back((key, true));
        self.skips.push_back(s);
    }

    /// Hands an emptied part back to the workers (unless it grew too large).
    fn recycle(mut self, pool: &Pool<Part>) {
        if self.order.capacity() <= RECYCLE_MAX_RESULTS
            && self.ips.capacity() <= RECYCLE_MAX_RESULTS
        {
            self.order.clear();
            self.obs.clear();
            self.skips.clear();
            self.ips.clear();
            pool.give(self);
        }
    }

    /// The end-of-input order of the next result: (flow, time) — a worker's pending queries
    /// (and their skips) first, then its open flows, each oldest first.
    fn head_key(&self) -> Option<(bool, i64)> {
        let &(_, skip) = self.order.front()?;
        if skip {
            return self.skips.front().map(|s| (false, s.skim.ts.0));
        }
        self.obs
            .front()
            .map(|o| (matches!(o, Observation::Flow(_)), o.ts().0))
    }

    /// The next result: an observation, or a skip with its addresses.
    fn pop(&mut self) -> Option<Next<'_>> {
        let (_, skip) = self.order.pop_front()?;
        if !skip {
            return self.obs.pop_front().map(Next::Obs);
        }
        let s = self.skips.pop_front()?;
        let from = s.start as usize;
        let ips = self
            .ips
            .get(from..from + s.len as usize)
            .unwrap_or_default();
        Some(Next::Skip(s.skim, ips))
    }
}

/// What [`Part::pop`] hands out (moved once, never stored).
#[allow(clippy::large_enum_variant)]
enum Next<'a> {
    Obs(Observation),
    Skip(DnsSkim, &'a [IpAddr]),
}

enum FromWorker {
    Round(Part),
    /// A batch of the end-of-input reports (one `Decoder::finish_some` step or a few: about
    /// [`FINISH_BATCH`] results); more follow.
    Tail(Part),
    /// The last batch, and the worker's counters.
    Final(Part, Box<(CaptureStats, u64)>),
}

/// The observations and skips of one capture file from N fast-path decoder threads, in
/// capture order.
pub(crate) struct ParallelFast {
    from: Vec<Receiver<FromWorker>>,
    threads: Threads,
    parts: Vec<Part>,
    /// Drained parts on their way back to the workers.
    spare: Arc<Pool<Part>>,
    /// End of input: each worker's current batch of reports.
    tails: Tails<Part>,
    finished: bool,
    stats: CaptureStats,
    error: Option<SavefileError>,
    mispredicted: bool,
    bound_overflows: u64,
}

impl ParallelFast {
    /// Starts the dispatcher over `file` and `workers` fast-path decoder threads (at least 1).
    pub(crate) fn start(
        file: Savefile,
        cfg: &CaptureConfig,
        source: Source,
        workers: usize,
        names: Arc<dyn ListedNames>,
        name: String,
    ) -> std::io::Result<Self> {
        let spare = Arc::new(Pool::new(RECYCLED_PARTS));
        let parts = Arc::clone(&spare);
        let body = move |decoder, rx, tx, rounds| {
            let interest = WorkerInterest::new(Arc::clone(&names));
            worker(decoder, interest, rx, tx, rounds, &parts);
        };
        let (from, threads) = start_pool(file, cfg, source, workers, name, "pw-fast", body)?;
        Ok(ParallelFast {
            from,
            threads,
            parts: Vec::new(),
            spare,
            tails: Tails::default(),
            finished: false,
            stats: CaptureStats::default(),
            error: None,
            mispredicted: false,
            bound_overflows: 0,
        })
    }

    /// The workers' counters together (complete once `next_fast` has returned `None`).
    pub(crate) fn stats(&self) -> CaptureStats {
        self.stats.clone()
    }

    pub(crate) fn error(&self) -> Option<&SavefileError> {
        self.error.as_ref()
    }

    /// Whether reading stopped because the consumer's engine said a worker's skip was wrong
    /// (see the module docs): what was returned is not the capture's stream.
    pub(crate) fn mispredicted(&self) -> bool {
        self.mispredicted
    }

    /// Stops the reader as a refused skip does (a consumer that cannot take skips).
    pub(crate) fn refuse(&mut self) {
        self.mispredicted = true;
    }

    /// Workers that reached [`MAX_BOUND_IPS`] (and decoded every answered response after).
    pub(crate) fn bound_overflows(&self) -> u64 {
        self.bound_overflows
    }

    /// The next observation; skipped messages before it go to `interest` (see the module
    /// docs). `None` at the end, and when a skip was refused ([`Self::mispredicted`]).
    pub(crate) fn next_fast(&mut self, interest: &mut dyn DnsInterest) -> Option<Observation> {
        loop {
            if self.mispredicted {
                return None;
            }
            let Some(next) = self.pop() else {
                if self.finished || !self.next_round() {
                    return None;
                }
                continue;
            };
            match next {
                Next::Obs(o) => return Some(o),
                Next::Skip(skim, ips) => {
                    if skim.answered && interest.answers_matter(skim.client, ips) {
                        tracing::debug!(client = %skim.client, "a decoder thread's skip was refused");
                        self.mispredicted = true;
                        return None;
                    }
                    interest.skipped(skim);
                }
            }
        }
    }

    /// The next result of the current round — the smallest key at the head of a worker's
    /// part, the lowest worker on a tie — or of the end-of-input reports, with its addresses.
    fn pop(&mut self) -> Option<Next<'_>> {
        let mut best: Option<(usize, u64)> = None;
        for (i, p) in self.parts.iter().enumerate() {
            if let Some((k, _)) = p.order.front() {
                if best.is_none_or(|(_, b)| *k < b) {
                    best = Some((i, *k));
                }
            }
        }
        match best {
            Some((i, _)) => self.parts.get_mut(i)?.pop(),
            None => self.pop_tail(),
        }
    }

    /// The next end-of-input report, merged as `tails` describes.
    fn pop_tail(&mut self) -> Option<Next<'_>> {
        if !self.finished {
            return None; // still in the rounds
        }
        self.refill_tails();
        self.tails.next_batch(Part::head_key)?.pop()
    }

    fn refill_tails(&mut self) {
        let (stats, overflows) = (&mut self.stats, &mut self.bound_overflows);
        self.tails.refill(
            &mut self.from,
            &mut self.threads,
            &mut self.error,
            |p| p.order.is_empty(),
            tail,
            |st| {
                stats.merge(&st.0);
                *overflows += st.1;
            },
        );
    }

    /// Receives one round from every worker; `false` at the end.
    fn next_round(&mut self) -> bool {
        for p in self.parts.drain(..) {
            p.recycle(&self.spare);
        }
        let mut tails = Tails::default();
        let mut ended = false;
        for rx in &self.from {
            match rx.recv() {
                Ok(FromWorker::Round(p)) => {
                    self.parts.push(p);
                    // Every worker ends in the same round: one still in its rounds beside
                    // one that ended is a lost one (unused otherwise).
                    tails.lose_one();
                }
                Ok(m) => {
                    ended = true;
                    tails.start(tail(m), |st| {
                        self.stats.merge(&st.0);
                        self.bound_overflows += st.1;
                    });
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
}

/// A worker's end-of-input message for [`Tails`].
fn tail(m: FromWorker) -> Tail<Part, Box<(CaptureStats, u64)>> {
    match m {
        FromWorker::Tail(p) => Tail::More(p),
        FromWorker::Final(p, stats) => Tail::Last(p, stats),
        FromWorker::Round(_) => Tail::Other,
    }
}

/// A worker's answers to the fast path (see the module docs), and where its skips go.
struct WorkerInterest {
    names: Arc<dyn ListedNames>,
    /// Every A/AAAA address of the listed answers this worker decoded so far.
    bound: FxHashSet<IpAddr>,
    /// `bound` reached [`MAX_BOUND_IPS`]: every address matters from then on.
    overflowed: bool,
    /// The addresses of the last `answers_matter` question (the skip that follows it).
    asked: Vec<IpAddr>,
    /// The key of the current step and the part being filled.
    key: u64,
    part: Part,
}

impl WorkerInterest {
    fn new(names: Arc<dyn ListedNames>) -> Self {
        WorkerInterest {
            names,
            bound: FxHashSet::default(),
            overflowed: false,
            asked: Vec::new(),
            key: 0,
            part: Part::default(),
        }
    }

    /// Takes an observation of the current step: remembers the addresses of a listed answer.
    fn observed(&mut self, o: Observation) {
        if let Observation::Dns(d) = &o {
            if !self.overflowed && self.is_listed(d) {
                for ip in d.answers.iter().filter_map(|a| a.ip()) {
                    if self.bound.len() >= MAX_BOUND_IPS {
                        self.overflowed = true;
                        self.bound = FxHashSet::default();
                        break;
                    }
                    self.bound.insert(ip);
                }
            }
        }
        self.part.push_obs(self.key, o);
    }

    /// The engine binds addresses only for a lookup whose name or a CNAME target is listed
    /// (every target here, not only the engine's first 32: a superset).
    fn is_listed(&self, d: &DnsObservation) -> bool {
        self.names.name_listed(&d.qname) || d.cname_targets().any(|t| self.names.name_listed(t))
    }
}

impl DnsInterest for WorkerInterest {
    fn name_listed(&mut self, name: &str) -> bool {
        self.names.name_listed(name)
    }

    fn answers_matter(&mut self, _client: IpAddr, ips: &[IpAddr]) -> bool {
        self.asked.clear();
        if ips.is_empty() {
            return false;
        }
        if self.overflowed {
            return true;
        }
        if ips
            .iter()
            .any(|ip| self.bound.contains(ip) || self.names.ip_listed(*ip))
        {
            return true;
        }
        self.asked.extend_from_slice(ips);
        false
    }

    fn skipped(&mut self, skim: DnsSkim) {
        let (start, len) = if skim.answered {
            let start = u32::try_from(self.part.ips.len()).unwrap_or(u32::MAX);
            let len = u32::try_from(self.asked.len()).unwrap_or(0);
            self.part.ips.append(&mut self.asked);
            (start, len)
        } else {
            (0, 0)
        };
        self.part.push_skip(self.key, Skip { skim, start, len });
    }
}

fn worker(
    mut d: Decoder,
    mut f: WorkerInterest,
    rx: Receiver<ToWorker>,
    tx: SyncSender<FromWorker>,
    rounds: Arc<Pools>,
    parts: &Pool<Part>,
) {
    let mut q: VecDeque<Observation> = VecDeque::new();
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Round(r) => {
                for &step in &r.steps {
                    match step {
                        Step::Tick { seq, ts } => {
                            // Before the packet's own results (2·seq + 1).
                            f.key = 2 * seq;
                            d.tick(ts, &mut q);
                        }
                        Step::Frame {
                            seq,
                            ts,
                            linktype,
                            buffer,
                            start,
                            end,
                        } => {
                            f.key = 2 * seq + 1;
                            let frame = r.frame(buffer, start, end);
                            d.packet_fast(ts, linktype, frame, &mut q, &mut f);
                        }
                    }
                    // A step's skips are made while its queue is empty (`txn`): they come
                    // first, its observations after, as on one thread.
                    for o in q.drain(..) {
                        f.observed(o);
                    }
                }
                r.recycle(&rounds);
                let part = std::mem::replace(&mut f.part, parts.take().unwrap_or_default());
                if tx.send(FromWorker::Round(part)).is_err() {
                    return;
                }
            }
            ToWorker::End { read_error } => {
                if read_error {
                    d.stats_error("capture_read_error");
                }
                f.key = u64::MAX;
                // In batches, so neither this worker nor the consumer ever holds the whole
                // tables' reports (issue #11).
                loop {
                    let done = d.finish_some(&mut q, Some(&mut f), FINISH_BATCH);
                    for o in q.drain(..) {
                        f.observed(o);
                    }
                    if done {
                        break;
                    }
                    if f.part.order.len() >= FINISH_BATCH {
                        let next = parts.take().unwrap_or_default();
                        let batch = std::mem::replace(&mut f.part, next);
                        if tx.send(FromWorker::Tail(batch)).is_err() {
                            return;
                        }
                    }
                }
                let stats = Box::new((d.stats(), u64::from(f.overflowed)));
                let _ = tx.send(FromWorker::Final(std::mem::take(&mut f.part), stats));
                return;
            }
        }
    }
}
