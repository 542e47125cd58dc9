//! Schema 4's pages (`docs/hunt.md`): a finished day rewritten as compressed pages of many
//! names and destinations answers every hunt exactly as its blocks did, takes rows that arrive
//! late, the byte cap holds against sled's real size on disk under a random-subdomain flood,
//! and the on-disk trigger (`reason="disk_cap"`) fires when the file outgrows the cap. Real
//! sled on disk.

use std::net::IpAddr;
use std::sync::Arc;

use poolwatch::hunt::{HistoryConfig, Hunter, Recorder, DISK_SLACK_BYTES};
use poolwatch::model::*;
use poolwatch::ports::{HistoryKv, HistoryTree, HuntReport, HuntRequest};
use poolwatch::store::Store;

use crate::support::obs;

fn day0() -> Timestamp {
    Timestamp::from_secs(1_795_000_000 - 1_795_000_000 % 86_400)
}

fn lookup(ts: Timestamp, client: &str, name: &str, addr: &str) -> Observation {
    obs::dns(ts, client, name)
        .records(&[(name, addr)], 120)
        .source(Source::new("test"))
        .build()
}

fn tls(ts: Timestamp, client: &str, dst: &str, sni: &str) -> Observation {
    obs::flow(ts.plus_secs(1), client, dst, 443)
        .state(FlowState::Closed)
        .bytes(900, 4_000)
        .app(AppInfo {
            tls: true,
            sni: Some(sni.to_string()),
            ..AppInfo::default()
        })
        .build()
}

fn report(h: &Hunter, target: &str) -> HuntReport {
    let mut r = h
        .hunt_target(&HuntRequest {
            target: target.into(),
            since: None,
            limit: 10_000,
        })
        .unwrap();
    r.lookups
        .sort_by(|a, b| (&a.day, &a.name, a.client).cmp(&(&b.day, &b.name, b.client)));
    r.flows.sort_by(|a, b| {
        (&a.day, a.dst, a.dst_port, a.client).cmp(&(&b.day, b.dst, b.dst_port, b.client))
    });
    r.to_day = None;
    r
}

fn day_rows(store: &Store, tree: HistoryTree, day: u32) -> Vec<Vec<u8>> {
    store
        .scan(
            tree,
            &day.to_be_bytes(),
            &(day + 1).to_be_bytes(),
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .map(|r| r.0)
        .collect()
}

const TARGETS: &[&str] = &[
    "z7.example",
    "h7.z7.example",
    "example",
    "198.51.100.7",
    "198.51.100.0/24",
    "198.51.100.9:443",
    "2001:db8::/32",
];

#[test]
fn a_paged_day_answers_like_its_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("db")).unwrap();
    let rec = Recorder::new(Arc::new(store.clone()), HistoryConfig::default());
    let t = day0();
    // Enough names and destinations for several pages; every third lookup is followed by TLS.
    for i in 0..6_000u32 {
        let client = format!("10.5.{}.{}", i % 7, i % 200);
        let name = format!("h{}.z{}.example", i % 1_500, i % 300);
        let addr = if i % 11 == 0 {
            format!("2001:db8::{:x}", i % 97)
        } else {
            format!("198.51.100.{}", i % 250)
        };
        let ts = t.plus_secs(i64::from(i) * 10);
        rec.record(&lookup(ts, &client, &name, &addr));
        if i % 3 == 0 {
            rec.record(&tls(ts, &client, &addr, &name));
        }
    }
    rec.flush().unwrap();
    let day = poolwatch::hunt::encode::day_of(t);
    let hunter = Hunter::new(Arc::new(store.clone()), Some(rec.clone()));
    let before: Vec<HuntReport> = TARGETS.iter().map(|x| report(&hunter, x)).collect();
    assert!(before
        .iter()
        .all(|r| !r.lookups.is_empty() || !r.flows.is_empty()));
    let blocks = day_rows(&store, HistoryTree::Names, day).len();

    // A newer day starts: the finished day becomes pages.
    rec.record(&lookup(
        t.plus_secs(86_400 + 5),
        "10.5.0.1",
        "other.test",
        "192.0.2.1",
    ));
    rec.flush().unwrap();
    let rows = day_rows(&store, HistoryTree::Names, day);
    assert!(
        rows.iter()
            .all(|k| k.get(4) == Some(&poolwatch::hunt::encode::PAGE_MARK)),
        "only pages left"
    );
    assert!(
        rows.len() > 1 && rows.len() * 50 < blocks,
        "{} pages for {blocks} blocks",
        rows.len()
    );
    assert!(day_rows(&store, HistoryTree::Flows, day)
        .iter()
        .all(|k| k.get(4) == Some(&poolwatch::hunt::encode::PAGE_MARK)));
    let after: Vec<HuntReport> = TARGETS.iter().map(|x| report(&hunter, x)).collect();
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a, b, "{}", a.target);
    }

    // A late lookup of the finished day (a back-fill): merged into a new page generation.
    rec.record(&lookup(
        t.plus_secs(7),
        "10.6.6.6",
        "h7.z7.example",
        "198.51.100.9",
    ));
    rec.flush().unwrap();
    let late = report(&hunter, "h7.z7.example");
    assert_eq!(late.lookups.len(), before[1].lookups.len() + 1);
    let c6: IpAddr = "10.6.6.6".parse().unwrap();
    assert!(late.lookups.iter().any(|l| l.client == c6));
    assert!(day_rows(&store, HistoryTree::Names, day)
        .iter()
        .all(|k| k.get(4) == Some(&poolwatch::hunt::encode::PAGE_MARK)));
    let again: Vec<HuntReport> = TARGETS.iter().map(|x| report(&hunter, x)).collect();
    assert_eq!(again[3], before[3], "flows unchanged");
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                dir_bytes(&e.path())
            } else {
                m.len()
            }
        })
        .sum()
}

/// Slack the test allows on top of the cap and `DISK_SLACK_BYTES`: sled's segments being
/// written when the size is read (a few 512 KiB segments).
const TEST_SLACK: u64 = 4 << 20;

/// A sled store at `dir` and a history recorder over it with a 30-day retention and `cap`.
fn recorder(dir: &std::path::Path, cap: u64) -> (Store, Arc<Recorder>) {
    let store = Store::open(dir).unwrap();
    let rec = Recorder::new(
        Arc::new(store.clone()),
        HistoryConfig {
            retention_days: 30,
            max_bytes: cap,
        },
    );
    (store, rec)
}

#[test]
fn byte_cap_holds_on_disk_under_a_random_subdomain_flood() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let cap: u64 = 512 << 10;
    let (store, rec) = recorder(&dir, cap);
    let t = day0();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut worst = 0u64;
    for day in 0..10i64 {
        // Random names under thousands of zones (each zone stays under the folding limit):
        // every lookup a new name.
        for i in 0..60_000u32 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let client = format!("10.9.{}.{}", (i >> 8) & 0x3f, i & 0xff);
            let name = format!("{:x}.f{}.flood{day}.example", rng, i % 4_000);
            rec.record(&lookup(
                t.plus_secs(day * 86_400 + i64::from(i)),
                &client,
                &name,
                "203.0.113.77",
            ));
        }
        rec.flush().unwrap();
        store.flush().unwrap();
        let disk = store.disk_bytes().unwrap();
        worst = worst.max(disk).max(dir_bytes(&dir));
        assert!(
            disk <= cap + DISK_SLACK_BYTES + TEST_SLACK,
            "day {day}: sled size on disk {disk} over cap {cap} + slack"
        );
    }
    let days = rec.days().unwrap();
    assert!(days.len() < 10, "old days evicted: {days:?}");
    assert!(
        dir_bytes(&dir) <= cap + DISK_SLACK_BYTES + TEST_SLACK,
        "directory {} bytes (worst {worst})",
        dir_bytes(&dir)
    );
    let m = poolwatch::metrics::render();
    assert!(m.contains("poolwatch_history_store_disk_bytes"));
    assert!(m.contains("reason=\"byte_cap\""));
    println!("worst on-disk size {worst} bytes for a {cap}-byte cap");
}

fn disk_cap_evictions() -> u64 {
    poolwatch::metrics::counter_value(
        "poolwatch_history_buckets_evicted_total",
        &[("reason", "disk_cap")],
    )
    .unwrap_or(0)
}

/// The on-disk trigger on its own: the history's rows stay far under the byte cap, but the
/// database file outgrows the cap plus `DISK_SLACK_BYTES` (here because detections share the
/// database, as in `serve`). The next flush evicts the oldest day for the file
/// (`reason="disk_cap"`), keeps the newest, and does not evict again while the file has not
/// grown (evicting more would lose history without shrinking the file).
#[test]
fn disk_cap_evicts_the_oldest_day_when_the_file_outgrows_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let cap: u64 = 256 << 10;
    let (store, rec) = recorder(&tmp.path().join("db"), cap);
    let t = day0();
    let record_day = |day: i64| {
        for i in 0..40i64 {
            rec.record(&lookup(
                t.plus_secs(day * 86_400 + i),
                &format!("10.7.0.{}", i + 1),
                &format!("h{i}.zone{day}.example"),
                "203.0.113.9",
            ));
        }
        rec.flush().unwrap();
        store.flush().unwrap();
    };
    for day in 0..3 {
        record_day(day);
    }
    let days = rec.days().unwrap();
    assert_eq!(days.len(), 3, "{days:?}");
    let logical: u64 = days.iter().map(|d| d.1).sum();
    assert!(
        logical < cap / 4,
        "history rows {logical} bytes: the byte cap must not bite"
    );
    assert!(store.disk_bytes().unwrap() <= cap + DISK_SLACK_BYTES);

    // Grow the file with real detections in the same database.
    let pad = "x".repeat(900);
    let mut n = 0u32;
    while store.disk_bytes().unwrap() <= cap + DISK_SLACK_BYTES + (1 << 20) {
        for _ in 0..2_000 {
            let mut d =
                crate::support::api::detection(n, "10.8.0.1", "pool.example", Stage::Lookup, 60);
            d.query_names.push(format!("{pad}.{n}"));
            store.upsert_detection(&d).unwrap();
            n += 1;
        }
        store.flush().unwrap();
        assert!(n < 200_000, "the database did not grow past the cap");
    }

    let before = disk_cap_evictions();
    record_day(3);
    let after = rec.days().unwrap();
    let kept: Vec<u32> = after.iter().map(|d| d.0).collect();
    assert_eq!(
        kept,
        [days[1].0, days[2].0, days[2].0 + 1],
        "the oldest day goes, the other two and the new one stay"
    );
    assert!(
        disk_cap_evictions() > before,
        "counted as reason=\"disk_cap\""
    );

    // The file has not grown since that eviction: the next flush evicts nothing more.
    rec.flush().unwrap();
    assert_eq!(rec.days().unwrap(), after);
}
