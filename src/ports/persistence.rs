//! The persistence port: what the correlation pipeline needs from a detection store, and the
//! write-behind [`Batch`] it hands over at each flush.
//!
//! The pipeline (`correlate::Pipeline`) consumes [`DetectionStore`]; the engine reads stored
//! state only through [`History`]. Both are implemented by `store::Store` (sled: `serve`,
//! `scan --db`) and `store::MemoryStore` (`scan` without `--db`). Only `service` and `cli`
//! pick the concrete store; neither `correlate` nor `store` names the other.

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use crate::model::{Detection, PoolFlow, Proto, Timestamp};
use crate::query::{Binding, Suppression};

/// Live (client, answer IP) bindings the engine tracks, and so the most a store is asked to
/// keep and hand back on start. One mining client binds a handful; 200k covers a /16 of busy
/// clients while staying ~40 MB worst case.
pub const MAX_BINDINGS: usize = 200_000;

/// Why a store operation failed. Keeps the store's own error (`store::StoreError`) as its
/// source, so callers can still tell a damaged database from a full disk.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct PersistenceError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl PersistenceError {
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        PersistenceError(Box::new(e))
    }

    /// The store's own error, if it is an `E`.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

/// Identity of a pool flow report: later reports of the same flow replace earlier ones.
pub type FlowId = (String, Timestamp, u16, IpAddr, u16, Proto);

/// Updates waiting for the next flush, coalesced: one row per detection id, per (client, pool
/// address) binding and per flow, holding the latest state. Many updates of the same row within
/// a flush cost one write.
#[derive(Debug, Default)]
pub struct Batch {
    pub detections: HashMap<String, Detection>,
    pub bindings: HashMap<(IpAddr, IpAddr), Binding>,
    pub flows: HashMap<FlowId, PoolFlow>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.detections.is_empty() && self.bindings.is_empty() && self.flows.is_empty()
    }

    /// Binding and flow rows waiting.
    pub fn rows(&self) -> usize {
        self.bindings.len() + self.flows.len()
    }

    pub fn add_detection(&mut self, d: Detection) {
        self.detections.insert(d.id.clone(), d);
    }

    pub fn add_binding(&mut self, b: Binding) {
        self.bindings.insert((b.client, b.ip), b);
    }

    pub fn add_flow(&mut self, f: PoolFlow) {
        let id = (
            f.detection_id.clone(),
            f.start,
            f.src_port,
            f.dst,
            f.dst_port,
            f.proto,
        );
        self.flows.insert(id, f);
    }

    pub fn clear(&mut self) {
        self.detections.clear();
        self.bindings.clear();
        self.flows.clear();
    }
}

/// Durable knowledge the engine consults when its bounded memory does not have the answer
/// (implemented by `store::Store`, so `is_new` and incident continuity survive restarts).
pub trait History: Send {
    /// Latest `last_seen` of any detection of `client`, if one is recorded.
    fn last_detection(&self, client: IpAddr) -> Option<Timestamp>;
    /// The newest recorded detection of (`client`, `pool_domain`), to continue an incident.
    fn open_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection>;
    /// Like `open_incident`, for the engine to continue it. A store that [`History::hands_over`]
    /// gives up its copy (moves it out), and gets it back written by the pipeline.
    fn take_incident(&self, client: IpAddr, pool_domain: &str) -> Option<Detection> {
        self.open_incident(client, pool_domain)
    }
    /// [`History::take_incident`], boxed (the engine keeps incidents boxed): a store that holds
    /// its detections boxed hands the box over without copying the detection.
    fn take_incident_boxed(&self, client: IpAddr, pool_domain: &str) -> Option<Box<Detection>> {
        self.take_incident(client, pool_domain).map(Box::new)
    }
    /// True when `take_incident` moves the detection out of the store (the in-memory store:
    /// one copy of an incident, never two).
    fn hands_over(&self) -> bool {
        false
    }
}

/// What the pipeline persists to and reads back from.
pub trait DetectionStore: Send {
    /// Writes every row of `batch` and makes them durable (fsync for a disk store) before
    /// returning; the batch is left empty. Rows already written stay written on error.
    fn write_batch(&self, batch: &mut Batch) -> Result<(), PersistenceError>;
    /// Stored bindings (at most `limit`), oldest `last_seen` first, for preloading the engine.
    fn preload_bindings(&self, limit: usize) -> Result<Vec<Binding>, PersistenceError>;
    /// Changes whenever the suppression rules change.
    fn suppression_generation(&self) -> u64;
    fn list_suppressions(&self) -> Result<Vec<Suppression>, PersistenceError>;
    /// The engine's view of what is stored (`is_new`, incident continuity): a handle on the same
    /// data.
    fn history(&self) -> Box<dyn History>;
    /// Every detection, oldest first (`scan` output).
    fn all_detections(&self) -> Result<Vec<Detection>, PersistenceError>;
    /// Like `all_detections`, at the end of a run: a store that is not kept (memory) may move
    /// its detections out instead of copying them.
    fn take_detections(&self) -> Result<Vec<Detection>, PersistenceError> {
        self.all_detections()
    }
    /// Whether a flush makes data survive the process. A store that is not durable (memory)
    /// only needs evicted incidents and, at the end, everything: the pipeline skips copying
    /// live incidents at each flush.
    fn durable(&self) -> bool {
        true
    }
    /// Whether the store keeps binding and pool-flow rows (`Batch::bindings`, `Batch::flows`).
    /// One that keeps only detections (the in-memory store of `scan` without `--db`) says no,
    /// and the pipeline neither builds nor batches those rows (issue #11: a flood binds a row
    /// per lookup).
    fn keeps_rows(&self) -> bool {
        true
    }
    /// Another handle on the same data (both stores are shared handles).
    fn clone_handle(&self) -> Box<dyn DetectionStore>;
    /// Writes detections handed over boxed, leaving `dets` empty: the end of input of a
    /// pipeline whose store is not durable and that has no sink (`Pipeline::finish`), where no
    /// batch needs to coalesce them. A store may keep the boxes as they are (the in-memory
    /// store does: a flood's result is not unboxed, re-keyed and boxed again, issue #11); by
    /// default they go through a [`Batch`].
    fn write_boxed(&self, dets: &mut Vec<Box<Detection>>) -> Result<(), PersistenceError> {
        let mut batch = Batch::default();
        for d in dets.drain(..) {
            batch.add_detection(*d);
        }
        self.write_batch(&mut batch)
    }
}
