//! `Store` (sled) as the pipeline's [`DetectionStore`]: a batch is written row by row (each row
//! the latest state of a detection, binding or flow, already coalesced by the pipeline) and
//! fsynced once.

use super::Store;
use crate::model::Detection;
use crate::ports::{Batch, DetectionStore, History, PersistenceError};
use crate::query::{Binding, Suppression};

impl DetectionStore for Store {
    fn write_batch(&self, batch: &mut Batch) -> Result<(), PersistenceError> {
        for (_, b) in batch.bindings.drain() {
            self.put_binding(&b)?;
        }
        for (_, f) in batch.flows.drain() {
            self.put_flow(&f)?;
        }
        for (_, d) in batch.detections.drain() {
            self.upsert_detection(&d)?;
        }
        Ok(self.flush()?)
    }

    fn preload_bindings(&self, limit: usize) -> Result<Vec<Binding>, PersistenceError> {
        Ok(self.bindings(limit)?)
    }

    fn suppression_generation(&self) -> u64 {
        Store::suppression_generation(self)
    }

    fn list_suppressions(&self) -> Result<Vec<Suppression>, PersistenceError> {
        Ok(Store::list_suppressions(self)?)
    }

    fn history(&self) -> Box<dyn History> {
        Box::new(self.clone())
    }

    fn clone_handle(&self) -> Box<dyn DetectionStore> {
        Box::new(self.clone())
    }

    fn all_detections(&self) -> Result<Vec<Detection>, PersistenceError> {
        Ok(Store::all_detections(self)?)
    }
}
