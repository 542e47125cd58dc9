//! The pipeline's port to persistence: what the [`super::Pipeline`] needs from a store, and the
//! write-behind [`Batch`] it hands over at each flush.
//!
//! Implemented by `store::Store` (sled: `serve`, `scan --db`) and `store::MemoryStore` (`scan`
//! without `--db`: no disk, no temporary directory). The pipeline does not know which.

use rustc_hash::FxHashMap as HashMap;
use std::net::IpAddr;

use super::engine::{History, PoolFlow};
use crate::model::{Detection, Proto, Timestamp};
use crate::query::{Binding, Suppression};
use crate::store::StoreError;

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

/// What the pipeline persists to and reads back from.
pub trait DetectionStore: Send {
    /// Writes every row of `batch` and makes them durable (fsync for a disk store) before
    /// returning; the batch is left empty. Rows already written stay written on error.
    fn write_batch(&self, batch: &mut Batch) -> Result<(), StoreError>;
    /// Stored bindings (at most `limit`), oldest `last_seen` first, for preloading the engine.
    fn preload_bindings(&self, limit: usize) -> Result<Vec<Binding>, StoreError>;
    /// Changes whenever the suppression rules change.
    fn suppression_generation(&self) -> u64;
    fn list_suppressions(&self) -> Result<Vec<Suppression>, StoreError>;
    /// The engine's view of what is stored (`is_new`, incident continuity): a handle on the same
    /// data.
    fn history(&self) -> Box<dyn History>;
    /// Every detection, oldest first (`scan` output).
    fn all_detections(&self) -> Result<Vec<Detection>, StoreError>;
    /// Like `all_detections`, at the end of a run: a store that is not kept (memory) may move
    /// its detections out instead of copying them.
    fn take_detections(&self) -> Result<Vec<Detection>, StoreError> {
        self.all_detections()
    }
    /// Whether a flush makes data survive the process. A store that is not durable (memory)
    /// only needs evicted incidents and, at the end, everything: the pipeline skips copying
    /// live incidents at each flush.
    fn durable(&self) -> bool {
        true
    }
    /// Another handle on the same data (both stores are shared handles).
    fn clone_handle(&self) -> Box<dyn DetectionStore>;
}
