//! The correlator's detection publishing: the pipeline's [`DetectionSink`] collects the ids
//! (and strongest kind) of every flush's changes; after the flush each is read back from the
//! store (the durable, latest state) and published to `poolwatch.detections.<id>`, coalesced
//! per id and bounded ([`MAX_PENDING_UPDATES`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_nats::jetstream;

use super::correlator::Metrics;
use super::nats;
use super::wire::{self, DetectionUpdate};
use crate::metrics::Counter;
use crate::ports::{ChangeKind, DetectionChange, DetectionSink};
use crate::store::Store;

/// Detection updates waiting for their publish (coalesced per id); beyond, the oldest is
/// dropped and counted (it is re-published with its next change).
pub const MAX_PENDING_UPDATES: usize = 100_000;

/// Collects the ids (and strongest kind) of every change of a flush; after the flush they are
/// read back from the store (the durable, latest state) and published.
#[derive(Clone, Default)]
pub(crate) struct ChangedIds(Arc<Mutex<ChangedInner>>);

#[derive(Default)]
struct ChangedInner {
    staged: Vec<(String, ChangeKind)>,
    pending: HashMap<String, ChangeKind>,
    order: VecDeque<String>,
}

fn strength(k: ChangeKind) -> u8 {
    match k {
        ChangeKind::New => 2,
        ChangeKind::Upgraded => 1,
        ChangeKind::Updated => 0,
    }
}

impl ChangedIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChangedInner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn take(&self) -> Vec<(String, ChangeKind)> {
        let mut g = self.lock();
        let order: Vec<String> = g.order.drain(..).collect();
        let mut out = Vec::with_capacity(order.len());
        for id in order {
            if let Some(k) = g.pending.remove(&id) {
                out.push((id, k));
            }
        }
        out
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().pending.is_empty()
    }
    /// Puts back what could not be published.
    fn restore(&self, items: Vec<(String, ChangeKind)>, dropped: &Counter) {
        let mut g = self.lock();
        for (id, k) in items.into_iter().rev() {
            if g.pending.len() >= MAX_PENDING_UPDATES {
                dropped.inc();
                continue;
            }
            match g.pending.get_mut(&id) {
                Some(old) => {
                    if strength(k) > strength(*old) {
                        *old = k;
                    }
                }
                None => {
                    g.pending.insert(id.clone(), k);
                    g.order.push_front(id);
                }
            }
        }
    }
}

pub(crate) struct UpdateSink {
    pub(crate) ids: ChangedIds,
    pub(crate) dropped: Counter,
}

impl DetectionSink for UpdateSink {
    fn wants_updates(&self) -> bool {
        true
    }
    fn persist(&mut self, changes: &[DetectionChange<'_>]) -> Result<(), String> {
        let mut g = self.ids.lock();
        g.staged.clear();
        g.staged
            .extend(changes.iter().map(|c| (c.detection.id.clone(), c.kind)));
        Ok(())
    }
    fn durable(&mut self) {
        let mut g = self.ids.lock();
        let staged = std::mem::take(&mut g.staged);
        for (id, k) in staged {
            match g.pending.get_mut(&id) {
                Some(old) => {
                    if strength(k) > strength(*old) {
                        *old = k;
                    }
                }
                None => {
                    if g.pending.len() >= MAX_PENDING_UPDATES {
                        if let Some(oldest) = g.order.pop_front() {
                            g.pending.remove(&oldest);
                            self.dropped.inc();
                        }
                    }
                    g.pending.insert(id.clone(), k);
                    g.order.push_back(id);
                }
            }
        }
    }
}

/// Publishes the pending detection updates (latest stored state of each); `false` when NATS
/// did not acknowledge them (they stay pending).
pub(crate) fn publish_updates(
    rt: &tokio::runtime::Handle,
    js: &jetstream::Context,
    store: &Store,
    ids: &ChangedIds,
    m: &Metrics,
) -> bool {
    let items = ids.take();
    if items.is_empty() {
        return true;
    }
    let mut msgs = Vec::with_capacity(items.len());
    for (id, kind) in &items {
        match store.get_detection(id) {
            Ok(Some(d)) => match wire::encode_detection(&DetectionUpdate::new(*kind, d)) {
                Ok(b) => msgs.push((wire::detection_subject(id), b)),
                Err(e) => tracing::warn!(error = %e, "detection not encodable"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading a detection to publish"),
        }
    }
    let ok = rt.block_on(async {
        let mut acks = Vec::with_capacity(msgs.len());
        for (subject, body) in msgs {
            match tokio::time::timeout(nats::REQUEST_TIMEOUT, js.publish(subject, body.into()))
                .await
            {
                Ok(Ok(f)) => acks.push(f),
                _ => return false,
            }
        }
        for f in acks {
            if f.await.is_err() {
                return false;
            }
            m.published.inc();
        }
        true
    });
    if !ok {
        m.publish_errors.inc();
        ids.restore(items, &m.updates_dropped);
    }
    ok
}
