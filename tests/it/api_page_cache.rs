//! `GET /detections` pages cached under the store's generation (issue #16, `api::page_cache`),
//! over a real sled store and a real server on loopback: a repeated page is answered from the
//! cache, and every write that changes a page — a new detection, an update in place, a pruned
//! one — is seen by the very next request.

use poolwatch::model::{Stage, Timestamp};
use poolwatch::store::{Retention, Store};
use reqwest::blocking::Client;
use serde_json::Value;

use crate::support::api::{client, detection, serve_store};
use crate::support::http::Serving;

fn page(c: &Client, http: &Serving, q: &str) -> (String, Vec<(String, u64)>) {
    let resp = c
        .get(http.url(&format!("/api/v1/detections?{q}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.text().unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let items = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["risk_score"].as_u64().unwrap(),
            )
        })
        .collect();
    (body, items)
}

fn cache_counter(c: &Client, http: &Serving, name: &str) -> u64 {
    let text = c.get(http.url("/metrics")).send().unwrap().text().unwrap();
    let line = format!("poolwatch_api_page_cache_{name}_total ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("{line} missing from /metrics"))
        .parse()
        .unwrap()
}

#[test]
fn a_cached_page_never_outlives_a_write() {
    let store = Store::open_temporary().unwrap();
    for n in 0..5 {
        store
            .upsert_detection(&detection(
                n,
                "192.0.2.1",
                "supportxmr.com",
                Stage::Lookup,
                60,
            ))
            .unwrap();
    }
    let http = serve_store(&store);
    let c = client();

    let (first, items) = page(&c, &http, "limit=50");
    assert_eq!(items.len(), 5);
    let hits = cache_counter(&c, &http, "hits");
    // Same query, other parameter order: one entry, byte-identical.
    let (again, _) = page(&c, &http, "limit=50");
    assert_eq!(again, first);
    assert_eq!(page(&c, &http, "limit=50&stage=lookup").1.len(), 5);
    assert_eq!(
        page(&c, &http, "stage=lookup&limit=50").0,
        page(&c, &http, "limit=50&stage=lookup").0
    );
    assert!(
        cache_counter(&c, &http, "hits") >= hits + 3,
        "repeated pages are answered from the cache"
    );

    // A new detection is on the next page served.
    store
        .upsert_detection(&detection(
            9,
            "192.0.2.2",
            "nanopool.org",
            Stage::Stratum,
            95,
        ))
        .unwrap();
    let (_, items) = page(&c, &http, "limit=50");
    assert_eq!(items.len(), 6);
    assert_eq!(items[0], ("det-00009".to_string(), 95));
    assert_eq!(page(&c, &http, "stage=lookup&limit=50").1.len(), 5);
    assert_eq!(page(&c, &http, "stage=stratum&limit=50").1.len(), 1);

    // An update in place (same id, same index position) too.
    store
        .upsert_detection(&detection(
            9,
            "192.0.2.2",
            "nanopool.org",
            Stage::Stratum,
            84,
        ))
        .unwrap();
    assert_eq!(
        page(&c, &http, "limit=50").1[0],
        ("det-00009".to_string(), 84)
    );

    // And a pruned detection is gone.
    let now = Timestamp::from_secs(1_795_723_200 + 9 + 1_000);
    let pruned = store
        .prune(
            now,
            &Retention {
                detections_secs: 1_000,
                hosts_secs: 1_000_000,
            },
        )
        .unwrap();
    assert_eq!(pruned.detections, 5);
    let (_, items) = page(&c, &http, "limit=50");
    assert_eq!(items, [("det-00009".to_string(), 84)]);
    assert_eq!(page(&c, &http, "stage=lookup&limit=50").1.len(), 0);
}

/// Pages read while a writer inserts: every page served is one the store held at some moment
/// (its items are a prefix-closed, newest-first run of what was inserted), and the last read
/// after the writer stops sees everything.
#[test]
fn pages_under_concurrent_writes_are_never_stale_after_the_write() {
    let store = Store::open_temporary().unwrap();
    let http = serve_store(&store);
    let c = client();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for n in 0..200 {
                store
                    .upsert_detection(&detection(
                        n,
                        "192.0.2.3",
                        "supportxmr.com",
                        Stage::Lookup,
                        60,
                    ))
                    .unwrap();
            }
        })
    };
    let mut last = 0;
    while !writer.is_finished() {
        let (_, items) = page(&c, &http, "limit=1000");
        // Newest first: det-(k-1) … det-00000, with no gap.
        for (i, (id, _)) in items.iter().enumerate() {
            assert_eq!(id, &format!("det-{:05}", items.len() - 1 - i));
        }
        assert!(items.len() >= last, "a page went back in time");
        last = items.len();
    }
    writer.join().unwrap();
    assert_eq!(page(&c, &http, "limit=1000").1.len(), 200);
}
