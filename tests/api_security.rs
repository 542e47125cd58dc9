//! Security regressions of the API surface (issue #11), each against a real server on
//! 127.0.0.1 with real backends: times outside the representable range, stalled clients,
//! raw-TCP protocol errors, CIDR minimums.

#[path = "http_support/mod.rs"]
mod http_support;

use std::sync::Arc;
use std::time::Duration;

use poolwatch::api::{ApiOptions, AppState, Tokens};
use poolwatch::config::Secret;
use poolwatch::matcher::{self, Blocklists};
use poolwatch::store::Store;
use reqwest::blocking::Client;
use serde_json::{json, Value};

use http_support::Serving;

const ADMIN: &str = "admin-token-0123456789abcdef";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A real API over a real sled store in `dir`, with an admin token.
fn store_server(dir: &std::path::Path, opts: ApiOptions) -> (Serving, Store) {
    let store = Store::open(&dir.join("db")).unwrap();
    let (tx, _) = tokio::sync::broadcast::channel(16);
    let lists = matcher::shared(Blocklists::builtin().unwrap());
    let opts = ApiOptions {
        tokens: Tokens {
            admin: Some(Secret::new(ADMIN)),
            read: None,
        },
        ..opts
    };
    let state = AppState::new(Arc::new(store.clone()), lists, tx, opts);
    state.set_ready(true);
    (Serving::start(http_support::runtime(), state), store)
}

fn error_code(resp: reqwest::blocking::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let v: Value = resp.json().unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or("").to_string(),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

/// Issue #11: `expires` in year 10000 was answered 201 but never stored. Every time the API
/// accepts (`expires`, `since`, `until`) is checked against the representable range at the
/// edge; what is accepted is stored and read back unchanged.
#[test]
fn out_of_range_times_are_refused_at_the_edge() {
    let tmp = tempfile::tempdir().unwrap();
    let (s, _store) = store_server(tmp.path(), ApiOptions::default());
    let c = client();
    let post = |expires: Value| {
        c.post(s.url("/api/v1/suppressions"))
            .bearer_auth(ADMIN)
            .json(&json!({"client": "192.0.2.7", "reason": "lab", "expires": expires}))
            .send()
            .unwrap()
    };
    for bad in [
        json!(253_402_300_800u64), // 10000-01-01T00:00:00Z in Unix seconds
        json!(999_999_999_999.0),  // year 33658
        json!(1e300),              // saturates to i64::MAX microseconds
        json!("+10000-01-01T00:00:00Z"),
        json!("10000-01-01T00:00:00Z"),
        json!(-1),
    ] {
        let (status, code, msg) = error_code(post(bad.clone()));
        assert_eq!(status, 400, "{bad}: {msg}");
        assert!(
            code == "invalid_parameter" || code == "invalid_body",
            "{bad}: {code}"
        );
        assert!(msg.contains("expires"), "{bad}: {msg}");
    }
    let (_, _, msg) = error_code(post(json!(253_402_300_800u64)));
    assert!(
        msg.contains("9999-12-31T23:59:59"),
        "the range is named: {msg}"
    );
    let listed: Value = c
        .get(s.url("/api/v1/suppressions"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    // The last representable second is accepted, stored and read back as written.
    let ok = post(json!("9999-12-31T23:59:59Z"));
    assert_eq!(ok.status().as_u16(), 201);
    let listed: Value = c
        .get(s.url("/api/v1/suppressions"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert!(items[0]["expires"]
        .as_str()
        .unwrap()
        .starts_with("9999-12-31T23:59:59"));

    for q in [
        "since=253402300800",
        "until=999999999999",
        "since=-5",
        "until=-1",
    ] {
        let resp = c
            .get(s.url(&format!("/api/v1/detections?{q}")))
            .send()
            .unwrap();
        let (status, code, msg) = error_code(resp);
        assert_eq!((status, code.as_str()), (400, "invalid_parameter"), "{q}");
        assert!(msg.contains("out of range"), "{q}: {msg}");
    }
    let ok = c
        .get(s.url("/api/v1/detections?since=0&until=253402300799"))
        .send()
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}
