//! The end of input of `scan --threads N` (`parallel`, `parallel_fast`): every worker sends its
//! final reports in batches (`FINISH_BATCH` at a time) and the consumer merges them as they
//! arrive, never holding them all (issue #11).
//!
//! One decoder reports its pending queries (oldest first), then its open flows (oldest first).
//! The merge takes the smallest (flow, time) at the head of a worker's batch, the lowest worker
//! on a tie: the stable sort by (flow, time) of all the workers' reports in worker order, which
//! is what collecting them first and sorting gave. One worker's reports are one decoder's, in
//! its order.

use std::sync::mpsc::Receiver;

use super::parallel::Threads;
use super::SavefileError;

/// A worker's message at the end of input, as its module reads it.
pub(super) enum Tail<B, S> {
    /// A batch; more follow.
    More(B),
    /// The last batch, and the worker's counters.
    Last(B, S),
    /// Anything else: the worker is taken as lost.
    Other,
}

/// Each worker's current batch of final reports, and whether it was its last.
pub(super) struct Tails<B> {
    batches: Vec<(B, bool)>,
    lost: bool,
}

impl<B: Default> Default for Tails<B> {
    fn default() -> Self {
        Tails {
            batches: Vec::new(),
            lost: false,
        }
    }
}

impl<B: Default> Tails<B> {
    /// The next worker's message of the round in which the workers ended (in worker order).
    pub(super) fn start<S>(&mut self, msg: Tail<B, S>, on_last: impl FnOnce(S)) {
        match msg {
            Tail::More(b) => self.batches.push((b, false)),
            Tail::Last(b, s) => {
                on_last(s);
                self.batches.push((b, true));
            }
            Tail::Other => self.lose_one(),
        }
    }

    /// A worker with nothing more to send: lost (its channel closed, or it was still in its
    /// rounds while the others ended).
    pub(super) fn lose_one(&mut self) {
        self.lost = true;
        self.batches.push((B::default(), true));
    }

    /// Receives the next batch of every worker whose batch is `used_up` and that has more
    /// (blocking: a worker sends its batches in order). Once every worker has sent its last,
    /// the result channels are closed and the threads joined (why reading stopped early, if
    /// it did, into `error`).
    pub(super) fn refill<M, S>(
        &mut self,
        from: &mut Vec<Receiver<M>>,
        threads: &mut Threads,
        error: &mut Option<SavefileError>,
        used_up: impl Fn(&B) -> bool,
        read: impl Fn(M) -> Tail<B, S>,
        mut on_last: impl FnMut(S),
    ) {
        for (i, (batch, last)) in self.batches.iter_mut().enumerate() {
            if *last || !used_up(batch) {
                continue;
            }
            match from.get(i).map(Receiver::recv).map(|m| m.map(&read)) {
                Some(Ok(Tail::More(b))) => *batch = b,
                Some(Ok(Tail::Last(b, s))) => {
                    *batch = b;
                    *last = true;
                    on_last(s);
                }
                Some(Ok(Tail::Other) | Err(_)) | None => {
                    *last = true;
                    self.lost = true;
                }
            }
        }
        if !from.is_empty() && self.batches.iter().all(|(_, last)| *last) {
            // Closing the result channels first: should a worker have been lost, the others
            // (and the dispatcher behind them) end at their next send instead of blocking the
            // join.
            from.clear();
            *error = threads.join(self.lost);
        }
    }

    /// The batch whose head comes next: the smallest `key` (`None`: an empty batch), the
    /// lowest worker on a tie.
    pub(super) fn next_batch<K: Ord>(&mut self, key: impl Fn(&B) -> Option<K>) -> Option<&mut B> {
        let mut best: Option<(usize, K)> = None;
        for (i, (batch, _)) in self.batches.iter().enumerate() {
            if let Some(k) = key(batch) {
                if best.as_ref().is_none_or(|(_, b)| k < *b) {
                    best = Some((i, k));
                }
            }
        }
        let (i, _) = best?;
        self.batches.get_mut(i).map(|(b, _)| b)
    }
}
