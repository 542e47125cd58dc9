//! The sled trees of the DNS and flow history (`hist_*`), behind the [`HistoryKv`] port, and
//! the merge of retro-hunt detections ([`RetroSink`]).
//!
//! The store keeps bytes only: keys and values are encoded by `hunt::encode` (layout in
//! `docs/hunt.md`). Keys start with the day, so retention and the byte cap remove whole days
//! with one range each.

use crate::model::Detection;
use crate::ports::{
    ChangeKind, DetectionChange, DetectionEvent, HistoryKv, HistoryTree, RetroMerge, RetroSink, Row,
};

use super::{db_err, Store, StoreError};

pub(crate) const TREE_HIST_NAMES: &str = "hist_names";
pub(crate) const TREE_HIST_FLOWS: &str = "hist_flows";
pub(crate) const TREE_HIST_SERVERS: &str = "hist_servers";
pub(crate) const TREE_HIST_DAYS: &str = "hist_days";

/// The history's trees, opened with the database.
pub(crate) struct HistoryTrees {
    names: sled::Tree,
    flows: sled::Tree,
    servers: sled::Tree,
    days: sled::Tree,
}

impl HistoryTrees {
    pub(crate) fn open(db: &sled::Db) -> Result<HistoryTrees, StoreError> {
        Ok(HistoryTrees {
            names: db.open_tree(TREE_HIST_NAMES).map_err(db_err)?,
            flows: db.open_tree(TREE_HIST_FLOWS).map_err(db_err)?,
            servers: db.open_tree(TREE_HIST_SERVERS).map_err(db_err)?,
            days: db.open_tree(TREE_HIST_DAYS).map_err(db_err)?,
        })
    }

    fn tree(&self, t: HistoryTree) -> &sled::Tree {
        match t {
            HistoryTree::Names => &self.names,
            HistoryTree::Flows => &self.flows,
            HistoryTree::Servers => &self.servers,
            HistoryTree::Days => &self.days,
        }
    }
}

fn err(e: sled::Error) -> String {
    e.to_string()
}

impl HistoryKv for Store {
    fn get(&self, tree: HistoryTree, key: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(self
            .inner
            .history
            .tree(tree)
            .get(key)
            .map_err(err)?
            .map(|v| v.to_vec()))
    }

    fn put(&self, tree: HistoryTree, rows: &[Row]) -> Result<(), String> {
        let mut b = sled::Batch::default();
        for (k, v) in rows {
            b.insert(k.as_slice(), v.as_slice());
        }
        self.inner.history.tree(tree).apply_batch(b).map_err(err)
    }

    fn scan(
        &self,
        tree: HistoryTree,
        lo: &[u8],
        hi: &[u8],
        limit: usize,
    ) -> Result<Vec<Row>, String> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for kv in self.inner.history.tree(tree).range(lo..hi).take(limit) {
            let (k, v) = kv.map_err(err)?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    fn remove_range(&self, tree: HistoryTree, lo: &[u8], hi: &[u8]) -> Result<u64, String> {
        if lo >= hi {
            return Ok(0);
        }
        let t = self.inner.history.tree(tree);
        let mut n = 0u64;
        let mut b = sled::Batch::default();
        for k in t.range(lo..hi).keys() {
            b.remove(k.map_err(err)?);
            n += 1;
        }
        t.apply_batch(b).map_err(err)?;
        Ok(n)
    }

    fn replace(&self, tree: HistoryTree, remove: &[Vec<u8>], put: &[Row]) -> Result<(), String> {
        // A sled batch keeps the last operation per key: the inserts after the removes win.
        let mut b = sled::Batch::default();
        for k in remove {
            b.remove(k.as_slice());
        }
        for (k, v) in put {
            b.insert(k.as_slice(), v.as_slice());
        }
        self.inner.history.tree(tree).apply_batch(b).map_err(err)
    }

    fn disk_bytes(&self) -> Option<u64> {
        self.inner.db.size_on_disk().ok()
    }
}

impl Store {
    /// Merges retro-hunt detections (create, or raise the stage of the stored incident) and
    /// returns the changes as the pipeline reports live ones: [`ChangeKind::New`] for a created
    /// detection, [`ChangeKind::Upgraded`] for a raised one, each with the detection as stored.
    /// `before_flush` gets the changes before the store flush that makes them durable, as a
    /// `DetectionSink` does in the pipeline's flush (what it writes — outbox rows — becomes
    /// durable with the detections); an error from it is returned after the detections are
    /// stored (a sink must not keep detections out of the store).
    pub fn merge_retro_with(
        &self,
        dets: &[Detection],
        before_flush: &mut dyn FnMut(&[DetectionChange<'_>]) -> Result<(), String>,
    ) -> Result<(RetroMerge, Vec<DetectionEvent>), String> {
        let mut m = RetroMerge::default();
        let mut events = Vec::new();
        for d in dets {
            let existing = self.get_detection(&d.id).map_err(|e| e.to_string())?;
            match existing {
                None => {
                    self.upsert_detection(d).map_err(|e| e.to_string())?;
                    m.created += 1;
                    events.push(DetectionEvent {
                        kind: ChangeKind::New,
                        detection: d.clone(),
                    });
                }
                // Same incident already stored: the stage only rises; a live detection keeps
                // its live state and gains nothing but a stronger stage from history.
                Some(old) if d.stage > old.stage => {
                    let mut merged = d.clone();
                    merged.retro = old.retro;
                    merged.first_seen = old.first_seen.min(d.first_seen);
                    merged.last_seen = old.last_seen.max(d.last_seen);
                    merged.suppressed = old.suppressed || d.suppressed;
                    merged.suppression_id = old.suppression_id.clone().or(merged.suppression_id);
                    // The live copy's replay marks still describe what its lines counted.
                    merged.source_marks = old.source_marks.clone();
                    self.upsert_detection(&merged).map_err(|e| e.to_string())?;
                    m.upgraded += 1;
                    events.push(DetectionEvent {
                        kind: ChangeKind::Upgraded,
                        detection: merged,
                    });
                }
                Some(_) => m.unchanged += 1,
            }
        }
        if events.is_empty() {
            return Ok((m, events));
        }
        let changes: Vec<DetectionChange<'_>> = events.iter().map(DetectionEvent::as_ref).collect();
        let handed = before_flush(&changes);
        self.flush().map_err(|e| e.to_string())?;
        handed?;
        Ok((m, events))
    }
}

impl RetroSink for Store {
    fn merge_retro(&self, dets: &[Detection]) -> Result<RetroMerge, String> {
        Ok(self.merge_retro_with(dets, &mut |_| Ok(()))?.0)
    }
}
