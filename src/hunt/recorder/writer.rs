//! Background writes ([`super::Recorder::with_background_writes`]): a thread of its own writes
//! the batches the recorder takes out at each due flush, in the order they were taken, so that
//! the thread that records (the service's pipeline thread) does not wait for the store.
//!
//! Memory: the entries being recorded (at most `MAX_PENDING_ROWS`), one batch being written and
//! at most [`MAX_QUEUED_FLUSHES`] waiting; when that many wait, recording waits for the writer
//! (back-pressure, counted in `poolwatch_history_flush_waits_total`), never drops.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::super::HuntError;
use super::{Batch, Core};

/// Batches waiting for the writer thread beyond the one it writes.
pub const MAX_QUEUED_FLUSHES: usize = 1;

enum Job {
    Write(Batch),
    /// [`super::Recorder::flush`]: the result goes back to the caller, who waits for it.
    WriteAndAck(Batch, SyncSender<Result<(), HuntError>>),
}

/// The handle of the writer thread (dropping it writes what is queued and joins the thread).
pub(super) struct Writer {
    core: Arc<Core>,
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// The result of a flush handed to the writer.
pub(super) enum Done {
    Wait(Receiver<Result<(), HuntError>>),
    Now(Result<(), HuntError>),
}

impl Done {
    pub(super) fn wait(self) -> Result<(), HuntError> {
        match self {
            Done::Now(r) => r,
            Done::Wait(rx) => rx.recv().unwrap_or_else(|_| {
                Err(HuntError::Store(
                    "the history writer stopped before writing the flush".into(),
                ))
            }),
        }
    }
}

impl Writer {
    pub(super) fn spawn(core: Arc<Core>) -> std::io::Result<Writer> {
        let (tx, rx) = sync_channel::<Job>(MAX_QUEUED_FLUSHES);
        let c = core.clone();
        let thread = std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || run(&c, &rx))?;
        Ok(Writer {
            core,
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Sends `job`, waiting (counted) while [`MAX_QUEUED_FLUSHES`] batches wait; gives it back
    /// when the thread is gone (`None`: sent).
    fn send(&self, job: Job) -> Option<Job> {
        let Some(tx) = &self.tx else {
            return Some(job);
        };
        match tx.try_send(job) {
            Ok(()) => None,
            Err(TrySendError::Full(job)) => {
                self.core.metrics.flush_waits.inc();
                tx.send(job).err().map(|e| e.0)
            }
            Err(TrySendError::Disconnected(job)) => Some(job),
        }
    }

    /// Queues a due flush; written in place if the writer thread is gone (it panicked).
    pub(super) fn queue(&self, b: Batch) -> Result<(), HuntError> {
        match self.send(Job::Write(b)) {
            None => Ok(()),
            Some(job) => self.core.write(job.into_batch()),
        }
    }

    /// Queues a flush whose result the caller waits for ([`Done::wait`], after releasing the
    /// pending lock so that recording goes on meanwhile).
    pub(super) fn queue_and_wait(&self, b: Batch) -> Done {
        let (ack, rx) = sync_channel(1);
        match self.send(Job::WriteAndAck(b, ack)) {
            None => Done::Wait(rx),
            Some(job) => Done::Now(self.core.write(job.into_batch())),
        }
    }
}

impl Job {
    fn into_batch(self) -> Batch {
        match self {
            Job::Write(b) | Job::WriteAndAck(b, _) => b,
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the queued batches are written.
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the history writer thread panicked");
            }
        }
    }
}

fn run(core: &Core, rx: &Receiver<Job>) {
    for job in rx {
        match job {
            Job::Write(b) => {
                if let Err(e) = core.write(b) {
                    core.metrics.flush_errors.inc();
                    tracing::warn!(error = %e, "history flush failed");
                }
            }
            Job::WriteAndAck(b, ack) => {
                // The error goes to the caller, as a flush in place returns it. The caller
                // may have given up waiting; the rows are written either way.
                let _ = ack.send(core.write(b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::super::{HistoryConfig, Recorder};
    use crate::hunt::encode::{day_value, parse_day_value, BLOCK_NO_LEN};
    use crate::model::*;
    use crate::ports::{HistoryKv, HistoryTree};
    // Test code only (the architecture test does not read it): the real sled store.
    use crate::store::Store;

    const TREES: [HistoryTree; 4] = [
        HistoryTree::Names,
        HistoryTree::Flows,
        HistoryTree::Servers,
        HistoryTree::Days,
    ];

    fn tree_no(t: HistoryTree) -> u8 {
        match t {
            HistoryTree::Names => 0,
            HistoryTree::Flows => 1,
            HistoryTree::Servers => 2,
            HistoryTree::Days => 3,
        }
    }

    /// Rows with the clock taken out (the block number ending block keys, a day's `covered`
    /// block): per tree and key prefix, the values in block order.
    fn rows(kv: &Store) -> BTreeMap<(u8, Vec<u8>), Vec<Vec<u8>>> {
        let mut out: BTreeMap<(u8, Vec<u8>), Vec<Vec<u8>>> = BTreeMap::new();
        for tree in TREES {
            let t = tree_no(tree);
            for (mut key, v) in kv.scan(tree, &[], &[0xff; 64], usize::MAX).unwrap() {
                if t <= 1 {
                    key.truncate(key.len() - BLOCK_NO_LEN);
                }
                let value = match parse_day_value(&v) {
                    Some(mut d) if t == 3 => {
                        d.covered = 0;
                        day_value(&d)
                    }
                    _ => v,
                };
                out.entry((t, key)).or_default().push(value);
            }
        }
        out
    }

    fn lookup(i: u32, day: i64) -> Observation {
        let name = format!("n{}.zone{}.example", i % 700, i % 7);
        Observation::Dns(DnsObservation::test_lookup(
            Timestamp::from_secs(1_795_000_000 - 1_795_000_000 % 86_400 + day * 86_400)
                .plus_secs(i64::from(i % 80_000)),
            format!("10.0.{}.{}", i % 5, i % 200).parse().unwrap(),
            &name,
            &format!("203.0.113.{}", i % 40),
        ))
    }

    /// Background writes keep the rows of writes in place: the same observations, flushed at
    /// the same points (every 64 pending entries, and explicitly), give the same rows, block
    /// for block, over three days (so finished days are compacted in between).
    #[test]
    fn background_writes_give_the_rows_of_writes_in_place() {
        // Two real (temporary) sled databases.
        let (a, b) = (
            Arc::new(Store::open_temporary().unwrap()),
            Arc::new(Store::open_temporary().unwrap()),
        );
        let cfg = HistoryConfig::default();
        let in_place = Recorder::build(a.clone(), cfg.clone(), false, 64);
        let background = Recorder::build(b.clone(), cfg, true, 64);
        assert!(background.writer.is_some());
        for day in 0..3 {
            for i in 0..5_000u32 {
                let o = lookup(i, day);
                in_place.record(&o);
                background.record(&o);
                if i % 1_777 == 0 {
                    in_place.flush().unwrap();
                    background.flush().unwrap();
                }
            }
        }
        drop(in_place);
        drop(background);
        let (ra, rb) = (rows(&a), rows(&b));
        assert!(ra.len() > 700, "{}", ra.len());
        // Many flushes: names have several blocks each.
        assert!(ra.values().any(|v| v.len() > 3));
        assert_eq!(ra, rb);
    }
}
