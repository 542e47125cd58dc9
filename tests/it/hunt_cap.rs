//! The history's bounds under a random-subdomain flood: one zone's flood folds into `*.zone`
//! rows, a flood across zones is held by the byte cap (oldest day first), and a real pool
//! lookup recorded before the flood can still be hunted. Real sled (temporary database).

use std::net::IpAddr;
use std::sync::Arc;

use poolwatch::hunt::{HistoryConfig, Hunter, Recorder, MAX_NAMES_PER_ZONE_DAY};
use poolwatch::model::*;
use poolwatch::ports::HuntRequest;
use poolwatch::store::Store;

use crate::support::obs;

fn lookup(ts: Timestamp, client: &str, name: &str) -> Observation {
    obs::dns(ts, client, name)
        .client_port(None)
        .server(Some("10.0.0.53"), None)
        .id(None)
        .rtt_us(None)
        .records(&[(name, "203.0.113.9")], 60)
        .source(Source::new("test"))
        .build()
}

fn total(store: &Store) -> u64 {
    let r = Recorder::new(Arc::new(store.clone()), HistoryConfig::default());
    let d = r.days().unwrap();
    std::mem::forget(r);
    d.iter().map(|x| x.1).sum()
}

#[test]
fn flood_folds_and_byte_cap_holds() {
    let store = Store::open_temporary().unwrap();
    let cap: u64 = 2 << 20;
    let rec = Recorder::new(
        Arc::new(store.clone()),
        HistoryConfig {
            retention_days: 30,
            max_bytes: cap,
        },
    );
    let day0 = Timestamp::from_secs(1_795_000_000 - 1_795_000_000 % 86_400);
    // A real pool lookup on the last day, before its flood.
    rec.record(&lookup(
        day0.plus_secs(3 * 86_400 + 10),
        "10.1.0.1",
        "pool.newpool.example",
    ));
    // One zone, 20k random names: folded past MAX_NAMES_PER_ZONE_DAY.
    for i in 0..20_000u32 {
        rec.record(&lookup(
            day0.plus_secs(i64::from(i % 3600)),
            "10.2.0.1",
            &format!("r{i:x}.flood.example"),
        ));
    }
    rec.flush().unwrap();
    let one_zone = total(&store);
    assert!(
        one_zone < u64::from(MAX_NAMES_PER_ZONE_DAY) * 200,
        "one zone's flood is folded: {one_zone} bytes"
    );
    let hunter = Hunter::new(Arc::new(store.clone()), None);
    let rep = hunter
        .hunt_target(&HuntRequest {
            target: "r4e20.flood.example".into(),
            since: None,
            limit: 10,
        })
        .unwrap();
    assert!(rep.lookups.iter().any(|l| l.folded), "{rep:?}");
    // Four days of floods over distinct zones from many clients.
    for day in 0..4i64 {
        for i in 0..60_000u32 {
            let client: IpAddr = format!("10.3.{}.{}", (i >> 8) & 0xff, i & 0xff)
                .parse()
                .unwrap();
            rec.record(&lookup(
                day0.plus_secs(day * 86_400 + 20 + i64::from(i % 80_000)),
                &client.to_string(),
                &format!("x{i}.zone{i}.example{day}"),
            ));
        }
        rec.flush().unwrap();
        let t = total(&store);
        // The cap holds up to one flush of rows beyond it on the newest day.
        assert!(t <= cap + (cap / 2) * 3, "day {day}: {t} bytes (cap {cap})");
    }
    let days = rec.days().unwrap();
    assert!(days.len() < 4, "old days evicted: {days:?}");
    let rep = hunter
        .hunt_target(&HuntRequest {
            target: "newpool.example".into(),
            since: None,
            limit: 10,
        })
        .unwrap();
    assert_eq!(
        rep.lookups.len(),
        1,
        "the pool lookup survives the flood: {rep:?}"
    );
    assert!(poolwatch::metrics::render().contains("poolwatch_history_buckets_evicted_total"));
}
