//! The retro-hunt's route to where live detections go. The worker (`hunt::RetroWorker`) merges
//! what it finds through `ports::RetroSink`; here that port is the store *plus* the two
//! consumers of the live pipeline's changes: the alert sinks' outboxes (the very
//! `ports::DetectionSink` the pipeline writes to, shared, so one rate limit and one sequence
//! serve both) and the SSE event feed. A retro change is handed to the outboxes before the
//! store flush that makes it durable and published on the feed after it, in the pipeline's
//! order (`correlate::Pipeline::flush`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use crate::model::Detection;
use crate::ports::{DetectionChange, DetectionSink, RetroMerge, RetroSink};
use crate::query::DetectionEvent;
use crate::store::Store;

/// One `DetectionSink` shared by the pipeline thread and the retro-hunt worker.
#[derive(Clone)]
pub(super) struct SharedSink {
    inner: Arc<Mutex<Box<dyn DetectionSink>>>,
    wants_updates: bool,
}

impl SharedSink {
    pub(super) fn new(sink: Box<dyn DetectionSink>) -> Self {
        // Fixed by the sinks' configuration: asked once, not per pipeline check.
        let wants_updates = sink.wants_updates();
        SharedSink {
            inner: Arc::new(Mutex::new(sink)),
            wants_updates,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn DetectionSink>> {
        // A panic inside a sink left nothing half-written that the next call cannot take.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DetectionSink for SharedSink {
    fn wants_updates(&self) -> bool {
        self.wants_updates
    }

    fn persist(&mut self, changes: &[DetectionChange<'_>]) -> Result<(), String> {
        self.lock().persist(changes)
    }

    fn durable(&mut self) {
        self.lock().durable();
    }
}

/// The retro-hunt's `RetroSink`: merge into the store, hand the changes to the alert sinks
/// before the flush, publish them on the event feed after it.
pub(super) struct RetroRoute {
    pub(super) store: Store,
    pub(super) sink: Option<SharedSink>,
    pub(super) events: broadcast::Sender<DetectionEvent>,
}

impl RetroSink for RetroRoute {
    fn merge_retro(&self, dets: &[Detection]) -> Result<RetroMerge, String> {
        let mut sink = self.sink.clone();
        let mut handed = false;
        let (merge, events) = self.store.merge_retro_with(dets, &mut |changes| {
            if let Some(s) = sink.as_mut() {
                s.persist(changes)?;
                handed = true;
            }
            Ok(())
        })?;
        if let (true, Some(s)) = (handed, sink.as_mut()) {
            s.durable();
        }
        for ev in events {
            // No subscriber is fine (nobody is watching the feed).
            let _ = self.events.send(ev);
        }
        Ok(merge)
    }
}
