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
    let store = Store::open(&db).expect("reopen after the drop");
    assert_eq!(store.schema_version(), CURRENT_SCHEMA);
    assert_eq!(CURRENT_SCHEMA, 4);
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

/// Schema 4 (`migrations/0004_history_pages.md`): schema-3 history blocks are kept and read,
/// the day is re-marked for compaction, and the next flush with a newer day pages it.
#[test]
fn schema3_history_is_kept_and_paged() {
    use poolwatch::hunt::encode::{self as enc, ClientEntry, ClientRow, NameBlock, NameSummary};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let det = detection(1, "10.0.0.7", "supportxmr.com", Stage::Connection, 80);
    let ts = Timestamp::from_secs(1_795_000_000);
    let day = enc::day_of(ts);
    {
        let old = Store::open_at(&db, 3).unwrap();
        assert_eq!(old.schema_version(), 3);
        old.upsert_detection(&det).unwrap();
        // A compacted schema-3 day: one block numbered 0, a 9-byte day value (compacted).
        let block = NameBlock {
            summary: Some(NameSummary {
                first_ms: 1_000,
                last_ms: 2_000,
                count: 2,
                clients: 1,
                answered: true,
                rcode: Some(0),
                answers: vec!["203.0.113.9".parse().unwrap()],
                ..NameSummary::default()
            }),
            clients: vec![ClientEntry {
                kind: enc::KIND_LOOKUP,
                client: "10.0.0.9".parse().unwrap(),
                row: ClientRow {
                    first_ms: 1_000,
                    last_ms: 2_000,
                    count: 2,
                    rcode: Some(0),
                    qtypes: enc::QTYPE_A,
                    ..ClientRow::default()
                },
            }],
        };
        let key = enc::name_key(day, "com.supportxmr.pool.", 0);
        old.put(HistoryTree::Names, &[(key, block.encode())])
            .unwrap();
        let mut dv = 80u64.to_be_bytes().to_vec();
        dv.push(1);
        old.put(HistoryTree::Days, &[(day.to_be_bytes().to_vec(), dv)])
            .unwrap();
        old.flush().unwrap();
    }
    let store = Store::open(&db).expect("reopen after the drop");
    assert_eq!(store.schema_version(), 4);
    let hunt = |store: &Store| {
        Hunter::new(Arc::new(store.clone()), None)
            .hunt_target(&HuntRequest {
                target: "supportxmr.com".into(),
                since: None,
                limit: 10,
            })
            .unwrap()
    };
    assert_eq!(hunt(&store).lookups.len(), 1, "schema-3 block read");
    let rec = Recorder::new(Arc::new(store.clone()), HistoryConfig::default());
    rec.record(
        &obs::dns(ts.plus_secs(86_400), "10.0.0.8", "pool.supportxmr.com")
            .records(&[("pool.supportxmr.com", "203.0.113.9")], 60)
            .build(),
    );
    rec.flush().unwrap();
    let rows = store
        .scan(
            HistoryTree::Names,
            &day.to_be_bytes(),
            &(day + 1).to_be_bytes(),
            100,
        )
        .unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|(k, _)| k.get(4) == Some(&enc::PAGE_MARK)),
        "the old day was paged"
    );
    let rep = hunt(&store);
    assert_eq!(rep.lookups.len(), 2, "{rep:?}");
    assert_eq!(rep.lookups[0].count, 2);
    assert_eq!(store.get_detection(&det.id).unwrap().unwrap().id, det.id);
}
