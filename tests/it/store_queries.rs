//! The query API the REST API uses, on a real sled database.

use std::collections::HashSet;
use std::net::IpAddr;

use poolwatch::correlate::detection_id;
use poolwatch::model::*;
use poolwatch::query::{Binding, DetectionFilter, NewSuppression};
use poolwatch::store::{Retention, Store, StoreError};

fn det(client: &str, pool: &str, first: i64, stage: Stage, risk: u8) -> Detection {
    let client: IpAddr = client.parse().unwrap();
    let ts = Timestamp::from_secs(first);
    let mut d = Detection::new(detection_id(client, pool, ts), client, pool, ts);
    d.stage = stage;
    d.risk_score = risk;
    d.query_names = vec![format!("pool.{pool}")];
    d.last_seen = ts.plus_secs(60);
    d.sources = vec![Source::new("pcap:x")];
    d.lists = vec![ListHit {
        list: "pools".into(),
        entry: pool.into(),
        category: Category::Pool,
        line: 1,
    }];
    d
}

#[test]
fn pagination_is_newest_first_and_stable_under_inserts() {
    let s = Store::open_temporary().unwrap();
    for i in 0..25 {
        let d = det(
            &format!("10.0.1.{i}"),
            "supportxmr.com",
            1_000 + i,
            Stage::Lookup,
            60,
        );
        assert!(s.upsert_detection(&d).unwrap());
    }
    let f = DetectionFilter::default();
    let p1 = s.list_detections(&f, 10, None).unwrap();
    assert_eq!(p1.items.len(), 10);
    assert_eq!(
        p1.items[0].client_ip.to_string(),
        "10.0.1.24",
        "newest first"
    );
    // Concurrent inserts (newer and older) must not shift the pages already cursored past.
    s.upsert_detection(&det("10.9.9.9", "supportxmr.com", 5_000, Stage::Lookup, 60))
        .unwrap();
    s.upsert_detection(&det("10.9.9.8", "supportxmr.com", 1_012, Stage::Lookup, 60))
        .unwrap();
    let mut seen: HashSet<String> = p1.items.iter().map(|d| d.id.clone()).collect();
    let mut cursor = p1.next_cursor;
    let mut pages = 1;
    while let Some(c) = cursor {
        let p = s.list_detections(&f, 10, Some(&c)).unwrap();
        for d in &p.items {
            assert!(seen.insert(d.id.clone()), "no repeats");
        }
        cursor = p.next_cursor;
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert!(seen.len() >= 25);
    // Updating a detection keeps its place and does not duplicate it.
    let mut again = det("10.0.1.3", "supportxmr.com", 1_003, Stage::Stratum, 95);
    again.last_seen = Timestamp::from_secs(9_999);
    assert!(!s.upsert_detection(&again).unwrap());
    let all = s.list_detections(&f, 1000, None).unwrap();
    assert_eq!(all.items.len(), 27);
    assert!(all.next_cursor.is_none());
}

#[test]
fn filters_and_bad_cursors() {
    let s = Store::open_temporary().unwrap();
    s.upsert_detection(&det("10.0.0.1", "supportxmr.com", 100, Stage::Stratum, 97))
        .unwrap();
    s.upsert_detection(&det("10.0.0.1", "nanopool.org", 200, Stage::Lookup, 60))
        .unwrap();
    s.upsert_detection(&det(
        "10.0.0.2",
        "nanopool.org",
        300,
        Stage::BlockedLookup,
        45,
    ))
    .unwrap();
    s.upsert_detection(&det("2001:db8::5", "nanopool.org", 400, Stage::Lookup, 60))
        .unwrap();
    let q = |f: DetectionFilter| s.list_detections(&f, 100, None).unwrap().items.len();
    assert_eq!(
        q(DetectionFilter {
            client: Some("10.0.0.1/32".parse().unwrap()),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        q(DetectionFilter {
            client: Some("10.0.0.0/24".parse().unwrap()),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        q(DetectionFilter {
            client: Some("2001:db8::/32".parse().unwrap()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        q(DetectionFilter {
            pool: Some("NANOPOOL.org".into()),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        q(DetectionFilter {
            stage: Some(Stage::Stratum),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        q(DetectionFilter {
            min_risk: Some(61),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        q(DetectionFilter {
            since: Some(Timestamp::from_secs(300)),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        q(DetectionFilter {
            until: Some(Timestamp::from_secs(200)),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        q(DetectionFilter {
            suppressed: Some(true),
            ..Default::default()
        }),
        0
    );
    // Client-index pagination.
    let f = DetectionFilter {
        client: Some("10.0.0.1/32".parse().unwrap()),
        ..Default::default()
    };
    let p = s.list_detections(&f, 1, None).unwrap();
    assert_eq!(p.items[0].pool_domain, "nanopool.org");
    let p2 = s.list_detections(&f, 1, p.next_cursor.as_deref()).unwrap();
    assert_eq!(p2.items[0].pool_domain, "supportxmr.com");
    for bad in [
        "",
        "zz",
        "t",
        "tzz",
        "c00",
        "t00",
        &"t".repeat(40),
        "x0000000000000000000000000000000000",
    ] {
        assert!(
            matches!(
                s.list_detections(&DetectionFilter::default(), 10, Some(bad)),
                Err(StoreError::BadCursor)
            ),
            "{bad:?}"
        );
    }
    // A time-index cursor is not valid for a client-index listing.
    let tc = s
        .list_detections(&DetectionFilter::default(), 1, None)
        .unwrap()
        .next_cursor
        .unwrap();
    assert!(matches!(
        s.list_detections(&f, 1, Some(&tc)),
        Err(StoreError::BadCursor)
    ));
    assert!(s.get_detection("nope").unwrap().is_none());
    assert!(s.get_detection(&"x".repeat(10_000)).unwrap().is_none());
}

#[test]
fn pools_pool_ips_and_timeline() {
    let s = Store::open_temporary().unwrap();
    s.upsert_detection(&det("10.0.0.1", "supportxmr.com", 100, Stage::Stratum, 97))
        .unwrap();
    s.upsert_detection(&det("10.0.0.2", "supportxmr.com", 150, Stage::Lookup, 60))
        .unwrap();
    s.upsert_detection(&det("10.0.0.2", "nanopool.org", 200, Stage::Lookup, 60))
        .unwrap();
    let pools = s.pools().unwrap();
    assert_eq!(pools[0].pool_domain, "supportxmr.com");
    assert_eq!(
        (pools[0].clients, pools[0].strongest_stage),
        (2, Stage::Stratum)
    );
    assert_eq!(pools[0].category, Some(Category::Pool));
    let b = |client: &str, ip: &str, expires: i64| Binding {
        client: client.parse().unwrap(),
        ip: ip.parse().unwrap(),
        pool_domain: "supportxmr.com".into(),
        qname: "pool.supportxmr.com".into(),
        list: "pools".into(),
        first_seen: Timestamp::from_secs(100),
        last_seen: Timestamp::from_secs(100),
        ttl: 60,
        expires: Timestamp::from_secs(expires),
        shared: false,
    };
    s.put_binding(&b("10.0.0.1", "198.51.100.17", 1_000))
        .unwrap();
    s.put_binding(&b("10.0.0.2", "198.51.100.17", 2_000))
        .unwrap();
    s.put_binding(&b("10.0.0.2", "198.51.100.18", 150)).unwrap();
    let ips = s.pool_ips(Timestamp::from_secs(500)).unwrap();
    assert_eq!(ips.len(), 1, "expired binding excluded");
    assert_eq!(
        (ips[0].clients, ips[0].expires),
        (2, Timestamp::from_secs(2_000))
    );
    let tl = s.host_timeline("10.0.0.2".parse().unwrap(), 10).unwrap();
    assert_eq!(tl.detections.len(), 2);
    assert_eq!(tl.detections[0].pool_domain, "nanopool.org", "newest first");
    assert_eq!(tl.bindings.len(), 2);
    assert_eq!(tl.first_seen, Some(Timestamp::from_secs(150)));
}

#[test]
fn suppressions_validate_and_delete() {
    let s = Store::open_temporary().unwrap();
    let bad = |client: Option<&str>, pool: Option<&str>, reason: &str| {
        s.add_suppression(NewSuppression {
            client: client.map(|c| c.parse().unwrap()),
            pool: pool.map(str::to_string),
            expires: None,
            reason: reason.into(),
        })
    };
    assert!(matches!(bad(None, None, "x"), Err(StoreError::Invalid(_))));
    assert!(matches!(
        bad(Some("10.0.0.0/8"), None, "  "),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        bad(None, Some("a b"), "x"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        bad(None, Some("."), "x"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        bad(None, Some("nanopool.org"), &"r".repeat(5000)),
        Err(StoreError::Invalid(_))
    ));
    let gen = s.suppression_generation();
    let r = bad(Some("10.1.2.3/16"), Some("NanoPool.org."), "lab").unwrap();
    assert_eq!(
        r.client.unwrap().to_string(),
        "10.1.0.0/16",
        "CIDR normalised"
    );
    assert_eq!(r.pool.as_deref(), Some("nanopool.org"));
    assert!(s.suppression_generation() > gen);
    assert_eq!(s.list_suppressions().unwrap(), vec![r.clone()]);
    assert!(s.delete_suppression(&r.id).unwrap());
    assert!(!s.delete_suppression(&r.id).unwrap());
    assert!(!s.delete_suppression("").unwrap());
}

#[test]
fn retention_prunes_old_data_only() {
    let s = Store::open_temporary().unwrap();
    let old = det("10.0.0.1", "supportxmr.com", 1_000, Stage::Lookup, 60);
    let new = det("10.0.0.2", "supportxmr.com", 100_000, Stage::Lookup, 60);
    s.upsert_detection(&old).unwrap();
    s.upsert_detection(&new).unwrap();
    let st = s
        .prune(
            Timestamp::from_secs(100_500),
            &Retention {
                detections_secs: 10_000,
                hosts_secs: 10_000,
            },
        )
        .unwrap();
    assert_eq!((st.detections, st.hosts), (1, 1));
    assert!(s.get_detection(&old.id).unwrap().is_none());
    assert!(s.get_detection(&new.id).unwrap().is_some());
    assert_eq!(
        s.list_detections(&DetectionFilter::default(), 10, None)
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(s
        .host_timeline("10.0.0.1".parse().unwrap(), 10)
        .unwrap()
        .detections
        .is_empty());
}
