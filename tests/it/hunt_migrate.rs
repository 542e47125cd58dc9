//! Schema 3 (`migrations/0003_history_blocks.md`): a database at schema 2 holding history rows
//! of the per-client layout opens at schema 3 with an empty history and its detections intact,
//! and the new history works on it. Real sled on disk.

use std::sync::Arc;

use poolwatch::hunt::{HistoryConfig, Hunter, Recorder};
use poolwatch::model::*;
use poolwatch::ports::{HistoryKv, HistoryTree, HuntRequest};
use poolwatch::store::{Store, CURRENT_SCHEMA};

use crate::support::api::detection;
use crate::support::obs;

#[test]
fn schema2_history_is_cleared_and_detections_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let det = detection(1, "10.0.0.7", "supportxmr.com", Stage::Connection, 80);
    {
        let old = Store::open_at(&db, 2).unwrap();
        assert_eq!(old.schema_version(), 2);
        old.upsert_detection(&det).unwrap();
        // Rows as the schema-2 recorder wrote them: a v1 client row and an 8-byte day value.
        let day = 20_000u32.to_be_bytes();
        let mut key = day.to_vec();
        key.extend_from_slice(b"com.supportxmr.pool.\x00\x01\x04\x0a\x00\x00\x07");
        old.put(
            HistoryTree::Names,
            &[(key, vec![1, 0, 0, 0, 5, 0, 1, 1, 1])],
        )
        .unwrap();
        old.put(
            HistoryTree::Days,
            &[(day.to_vec(), 60u64.to_be_bytes().to_vec())],
        )
        .unwrap();
        old.flush().unwrap();
    }
    let store = reopen(&db);
    assert_eq!(store.schema_version(), CURRENT_SCHEMA);
    assert_eq!(CURRENT_SCHEMA, 3);
    for t in HistoryTree::ALL {
        assert!(
            store.scan(t, &[], &[0xff; 8], 10).unwrap().is_empty(),
            "{} cleared",
            t.as_str()
        );
    }
    assert_eq!(store.get_detection(&det.id).unwrap().unwrap().id, det.id);
    // The new layout records and hunts on the upgraded database.
    let rec = Recorder::new(Arc::new(store.clone()), HistoryConfig::default());
    let ts = Timestamp::from_secs(1_795_000_000);
    rec.record(
        &obs::dns(ts, "10.0.0.8", "pool.supportxmr.com")
            .records(&[("pool.supportxmr.com", "203.0.113.9")], 60)
            .build(),
    );
    rec.flush().unwrap();
    let rep = Hunter::new(Arc::new(store.clone()), None)
        .hunt_target(&HuntRequest {
            target: "supportxmr.com".into(),
            since: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(rep.lookups.len(), 1, "{rep:?}");
}

/// sled releases its directory lock when its last background thread lets go of the dropped
/// database, which can lag the drop on a loaded machine: retry the lock error only.
fn reopen(db: &std::path::Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match Store::open(db) {
            Ok(s) => return s,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("reopen {}: {e}", db.display()),
        }
    }
}
