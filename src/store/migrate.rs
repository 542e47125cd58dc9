//! Schema migrations, applied in order when a database is opened. Each step is documented in
//! `migrations/NNNN_*.md`; the version reached is kept in the `meta` tree under
//! [`SCHEMA_KEY`] (u32, big-endian) and written (and flushed) after each step, so an interrupted
//! upgrade resumes at the step that did not finish. Steps must be idempotent for that reason.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use super::keys;
use super::{HostRecord, StoreError, TREE_BINDINGS, TREE_BY_CLIENT, TREE_BY_TIME, TREE_DETECTIONS};
use super::{TREE_FLOWS, TREE_HOSTS, TREE_META, TREE_OFFSETS, TREE_SUPPRESSIONS};
use crate::model::{Detection, Timestamp};

/// The schema this binary writes.
pub const CURRENT_SCHEMA: u32 = 4;
/// Key of the schema version in the `meta` tree.
pub const SCHEMA_KEY: &[u8] = b"schema_version";

/// One ordered schema step.
pub struct Migration {
    /// The version the database has after this step.
    pub version: u32,
    /// The doc file describing the step (under `migrations/`).
    pub doc: &'static str,
    apply: fn(&sled::Db) -> sled::Result<()>,
}

/// Every step, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        doc: "0001_initial.md",
        apply: initial,
    },
    Migration {
        version: 2,
        doc: "0002_client_index_and_hosts.md",
        apply: client_index_and_hosts,
    },
    Migration {
        version: 3,
        doc: "0003_history_blocks.md",
        apply: history_blocks,
    },
    Migration {
        version: 4,
        doc: "0004_history_pages.md",
        apply: history_pages,
    },
];

/// The schema version recorded in `db`, if any.
pub fn version(db: &sled::Db) -> sled::Result<Option<u32>> {
    let meta = db.open_tree(TREE_META)?;
    Ok(meta
        .get(SCHEMA_KEY)?
        .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
        .map(u32::from_be_bytes))
}

/// Brings `db` to `target` (≤ [`CURRENT_SCHEMA`]). Returns the version it had before.
pub fn migrate(db: &sled::Db, path: &Path, target: u32) -> Result<u32, StoreError> {
    let db_err = StoreError::Db;
    let found = version(db).map_err(db_err)?;
    let from = match found {
        Some(v) => v,
        None => {
            // No version: a fresh database, unless someone else's data is in it.
            let foreign = db
                .tree_names()
                .iter()
                .filter(|n| n.as_ref() != b"__sled__default" && n.as_ref() != TREE_META.as_bytes())
                .any(|n| db.open_tree(n).map(|t| !t.is_empty()).unwrap_or(true))
                || !db.is_empty();
            if foreign {
                return Err(StoreError::NotOurs {
                    path: path.to_path_buf(),
                    reason: "it holds data but no poolwatch schema version".into(),
                });
            }
            0
        }
    };
    if from > CURRENT_SCHEMA {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: from,
            supported: CURRENT_SCHEMA,
        });
    }
    let meta = db.open_tree(TREE_META).map_err(db_err)?;
    for m in MIGRATIONS
        .iter()
        .filter(|m| m.version > from && m.version <= target)
    {
        tracing::info!(version = m.version, doc = m.doc, "applying store migration");
        (m.apply)(db).map_err(db_err)?;
        meta.insert(SCHEMA_KEY, &m.version.to_be_bytes())
            .map_err(db_err)?;
        db.flush().map_err(db_err)?;
    }
    Ok(from)
}

/// 0001: the initial layout. Creates the trees; no data to convert.
fn initial(db: &sled::Db) -> sled::Result<()> {
    for t in [
        TREE_DETECTIONS,
        TREE_BY_TIME,
        TREE_BINDINGS,
        TREE_FLOWS,
        TREE_SUPPRESSIONS,
        TREE_OFFSETS,
        TREE_META,
    ] {
        db.open_tree(t)?;
    }
    Ok(())
}

/// 0002: adds `det_by_client` (client ‖ first_seen ‖ seq → id) and `hosts` (client → first and
/// last detection time, for `is_new`), both backfilled from the stored detections.
fn client_index_and_hosts(db: &sled::Db) -> sled::Result<()> {
    let dets = db.open_tree(TREE_DETECTIONS)?;
    let by_client = db.open_tree(TREE_BY_CLIENT)?;
    let hosts = db.open_tree(TREE_HOSTS)?;
    let mut seen: HashMap<IpAddr, HostRecord> = HashMap::new();
    for item in dets.iter() {
        let (id, v) = item?;
        let Some((seq, created, det)) = decode_detection(&v) else {
            tracing::warn!(id = %String::from_utf8_lossy(&id), "skipping undecodable detection during migration");
            continue;
        };
        by_client.insert(keys::by_client(det.client_ip, created, seq), id.as_ref())?;
        let rec = seen.entry(det.client_ip).or_insert(HostRecord {
            first_seen: det.first_seen,
            last_seen: det.last_seen,
            detections: 0,
        });
        rec.first_seen = rec.first_seen.min(det.first_seen);
        rec.last_seen = rec.last_seen.max(det.last_seen);
        rec.detections = rec.detections.saturating_add(1);
    }
    for (ip, rec) in seen {
        if let Ok(v) = serde_json::to_vec(&rec) {
            hosts.insert(keys::ip(ip), v)?;
        }
    }
    Ok(())
}

/// 0003: the retro-hunt history (`hist_*`) moves from one row per (day, name, client) and per
/// (day, destination, port, client) to blocks per (day, name) and (day, destination). The old
/// rows are removed (the history is rebuilt by recording, or by `scan --history`); detections
/// and everything else are untouched. Idempotent: clearing an empty tree does nothing.
fn history_blocks(db: &sled::Db) -> sled::Result<()> {
    use super::history::{TREE_HIST_DAYS, TREE_HIST_FLOWS, TREE_HIST_NAMES, TREE_HIST_SERVERS};
    for t in [
        TREE_HIST_NAMES,
        TREE_HIST_FLOWS,
        TREE_HIST_SERVERS,
        TREE_HIST_DAYS,
    ] {
        db.open_tree(t)?.clear()?;
    }
    Ok(())
}

/// 0004: finished history days are kept as compressed pages of many names / destinations
/// (`docs/hunt.md`). Schema-3 rows stay readable (a day without pages is all blocks), so the
/// history is kept: every day is marked "not compacted" so that the recorder's next flush
/// rewrites the finished ones as pages. The version step keeps an older poolwatch, which
/// cannot read pages, off the database. Idempotent: marking twice changes nothing.
fn history_pages(db: &sled::Db) -> sled::Result<()> {
    use super::history::TREE_HIST_DAYS;
    let days = db.open_tree(TREE_HIST_DAYS)?;
    let mut b = sled::Batch::default();
    for kv in days.iter() {
        let (k, v) = kv?;
        if let Some(bytes) = v.get(..8) {
            let mut nv = bytes.to_vec();
            nv.push(0);
            b.insert(k, nv);
        }
    }
    days.apply_batch(b)
}

/// Splits a stored detection value into (seq, indexed first_seen, detection).
pub(crate) fn decode_detection(v: &[u8]) -> Option<(u64, Timestamp, Detection)> {
    let seq = keys::seq_from(v)?;
    let created = keys::ts_from(v.get(keys::SEQ_LEN..)?)?;
    let det = serde_json::from_slice(v.get(keys::DET_HEADER_LEN..)?).ok()?;
    Some((seq, created, det))
}
