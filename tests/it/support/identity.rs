//! The two halves of the "same result with and without a shortcut" tests (`scan_fastpath`,
//! `scan_logs`): a pipeline shaped like `scan`'s without `--db`, and its result in a form two
//! runs can be compared by.

use std::path::{Path, PathBuf};

use poolwatch::correlate::{DetectionStore, Engine, EngineConfig, EngineLimits, Pipeline};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::store::MemoryStore;

/// The lists at `list` (the built-in lists when `None`).
pub fn lists(list: Option<&Path>) -> Blocklists {
    let lists: Vec<PathBuf> = list.map(Path::to_path_buf).into_iter().collect();
    Blocklists::load(&lists).unwrap()
}

/// `scan`'s pipeline without `--db`: `scan`'s engine limits over a detections-only memory
/// store, whose handle is returned beside it.
pub fn pipeline(list: Option<&Path>) -> (Pipeline, MemoryStore) {
    let cfg = EngineConfig {
        limits: EngineLimits::in_memory(poolwatch::store::MAX_MEMORY_DETECTIONS),
        ..EngineConfig::default()
    };
    let store = MemoryStore::detections_only();
    let boxed: Box<dyn DetectionStore> = Box::new(store.clone());
    let engine = Engine::new(cfg, matcher::shared(lists(list)));
    let p = Pipeline::with_store(engine, Some(boxed)).unwrap();
    (p, store)
}

/// Finishes `p`: the detections as JSON lines, sorted as `scan` prints them, and the pipeline
/// summary (observations, engine counters, table sizes) as JSON.
pub fn finish(p: Pipeline, store: &MemoryStore) -> (Vec<String>, String) {
    let summary = p.finish().unwrap();
    let mut dets = store.take_detections().unwrap();
    dets.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
    let dets = dets
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    (dets, serde_json::to_string(&summary).unwrap())
}
