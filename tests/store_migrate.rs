//! Schema upgrades: a database written by the schema-1 code (committed fixture) opens with the
//! current binary, is upgraded in place, and keeps its data; a newer database is refused.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use poolwatch::capture::CaptureConfig;
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::ingest::IngestConfig;
use poolwatch::input::{self, InputFormat};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::ports::{FileOffset, OffsetStore};
use poolwatch::query::{DetectionFilter, NewSuppression};
use poolwatch::store::{Store, StoreError, CURRENT_SCHEMA};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Regenerates `tests/data/store/schema1` with the schema-1 write path:
/// `cargo test --test store_migrate -- --ignored make_schema1_fixture`.
#[test]
#[ignore = "regenerates the committed fixture"]
fn make_schema1_fixture() {
    let dir = data("store/schema1");
    let _ = std::fs::remove_dir_all(&dir);
    let store = Store::open_at(&dir, 1).unwrap();
    assert_eq!(store.schema_version(), 1);
    let obs = input::open(
        &data("observations/mini.jsonl"),
        InputFormat::Observations,
        &CaptureConfig::default(),
        &IngestConfig::default(),
    )
    .unwrap();
    let mut engine = Engine::new(
        EngineConfig::default(),
        matcher::shared(Blocklists::builtin().unwrap()),
    );
    let mut dets = std::collections::BTreeMap::new();
    for o in obs {
        let ch = engine.observe(&o);
        for b in &ch.bindings {
            store.put_binding(b).unwrap();
        }
        for f in &ch.flows {
            store.put_flow(f).unwrap();
        }
        for u in ch.detections {
            dets.insert(u.detection.id.clone(), u.detection);
        }
    }
    for u in engine.drain().detections {
        dets.insert(u.detection.id.clone(), u.detection);
    }
    for d in dets.values() {
        store.upsert_detection(d).unwrap();
    }
    store
        .add_suppression(NewSuppression {
            client: None,
            pool: Some("nanopool.org".into()),
            expires: None,
            reason: "fixture rule".into(),
        })
        .unwrap();
    store
        .save_offset(
            "/var/log/named/query.log",
            &FileOffset {
                dev: 1,
                inode: 2,
                offset: 3,
                fingerprint: 4,
                fingerprint_len: 5,
            },
        )
        .unwrap();
    store.flush().unwrap();
}

#[test]
fn schema1_fixture_upgrades_in_place_with_data_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    copy_dir(&data("store/schema1"), &db);
    {
        // Before the upgrade: the schema-1 layout has no client index.
        let old = Store::open_at(&db, 1).unwrap();
        assert_eq!(old.schema_version(), 1);
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.schema_version(), CURRENT_SCHEMA);
    let all = store.all_detections().unwrap();
    assert_eq!(all.len(), 7, "every detection survived");
    // The new client index was backfilled: host queries and the client filter use it.
    let a: IpAddr = "10.0.0.11".parse().unwrap();
    let tl = store.host_timeline(a, 50).unwrap();
    assert_eq!(tl.detections.len(), 1);
    assert_eq!(tl.detections[0].pool_domain, "supportxmr.com");
    assert!(!tl.bindings.is_empty());
    assert!(tl
        .timeline
        .iter()
        .any(|e| e.method.as_deref() == Some("login")));
    let page = store
        .list_detections(
            &DetectionFilter {
                client: Some("10.0.0.11/32".parse().unwrap()),
                ..Default::default()
            },
            10,
            None,
        )
        .unwrap();
    assert_eq!(page.items.len(), 1);
    // The new hosts tree was backfilled.
    let rec = store
        .host_record(a)
        .unwrap()
        .expect("host record backfilled");
    assert_eq!(rec.detections, 1);
    // Other trees are untouched.
    assert_eq!(store.list_suppressions().unwrap().len(), 1);
    assert_eq!(
        store
            .load_offset("/var/log/named/query.log")
            .unwrap()
            .offset,
        3
    );
    drop(store);
    // Opening again is a no-op.
    let again = Store::open(&db).unwrap();
    assert_eq!(again.all_detections().unwrap().len(), 7);
}

#[test]
fn newer_database_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    {
        let s = Store::open(&db).unwrap();
        s.flush().unwrap();
    }
    {
        // Pretend a future poolwatch wrote it.
        let raw = sled::open(&db).unwrap();
        raw.open_tree("meta")
            .unwrap()
            .insert("schema_version", &(CURRENT_SCHEMA + 1).to_be_bytes())
            .unwrap();
        raw.flush().unwrap();
    }
    match Store::open(&db) {
        Err(e @ StoreError::TooNew { .. }) => {
            assert!(e.to_string().contains("newer than this poolwatch supports"));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
}
