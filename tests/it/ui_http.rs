//! The UI's HTTP side against the real binary: embedded assets with their content types, the
//! security headers, ETag revalidation, unknown files, and the two API routes the UI added
//! (`/api/v1/summary`, `/api/v1/session`) with their token rules and parameter checks.

use crate::support::service as service_support;

use std::collections::BTreeMap;

use serde_json::Value;
use service_support::*;

/// The UI's page weight budget (issue #14): everything the overview loads, uncompressed.
const PAGE_BUDGET: usize = 200 * 1024;

fn sample_service(dir: &std::path::Path) -> Svc {
    let (pcap, log) = (sample("sample.pcap"), sample("sample-dnsmasq.log"));
    let db = dir.join("db");
    Svc::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--retention-days",
            "0",
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
            "--admin-token",
            ADMIN,
            "--read-token",
            READ,
        ],
        None,
    )
}

#[test]
fn assets_headers_and_revalidation() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_service(dir.path());
    let c = client();
    let mut total = 0;
    for (path, ctype) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/", "text/html; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/lib.js", "text/javascript; charset=utf-8"),
        ("/ui/pages.js", "text/javascript; charset=utf-8"),
        ("/ui/chart.js", "text/javascript; charset=utf-8"),
        ("/ui/favicon.svg", "image/svg+xml"),
    ] {
        // No token needed for the page itself (it holds no data), even with a read token set.
        let r = c.get(s.url(path)).send().unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], ctype, "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert_eq!(csp, poolwatch::api::CONTENT_SECURITY_POLICY);
        for d in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(d), "{csp} lacks {d}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(h.get("set-cookie").is_none());
        let etag = h["etag"].to_str().unwrap().to_string();
        let body = r.bytes().unwrap();
        if path != "/ui/" {
            total += body.len();
        }
        let r = c
            .get(s.url(path))
            .header("If-None-Match", &etag)
            .send()
            .unwrap();
        assert_eq!(r.status(), 304, "{path}");
        assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    }
    assert!(total < PAGE_BUDGET, "UI assets weigh {total} B");

    // Nothing but the embedded files: traversal and unknown names are JSON 404s.
    for bad in [
        "/ui/nope.js",
        "/ui/..%2FCargo.toml",
        "/ui/%2e%2e%2fsrc%2fmain.rs",
        "/ui/index.html%00",
        &format!("/ui/{}", "a".repeat(5000)),
    ] {
        let r = c.get(s.url(bad)).send().unwrap();
        assert_eq!(r.status(), 404, "{bad}");
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{bad}");
        let v: Value = r.json().unwrap();
        assert_eq!(v["error"]["code"], "route_not_found", "{bad}");
    }
    // The page never carries inline script (the CSP would block it anyway).
    let html = c.get(s.url("/")).send().unwrap().text().unwrap();
    assert!(html.contains(r#"<script type="module" src="/ui/app.js"></script>"#));
    assert!(!html.contains("<script>"));
}

#[test]
fn summary_and_session_follow_the_token_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample_service(dir.path());
    let c = client();
    let want = expected_stages(&expected_sample(), "stage");
    let dets = wait_for(&c, &s, Some(READ), "the sample verdicts", |d| {
        served_stages(d) == want
    });

    // Session: what each token may do (public route; it never echoes the token).
    let session = |t: Option<&str>| -> Value {
        let mut rq = c.get(s.url("/api/v1/session"));
        if let Some(t) = t {
            rq = rq.bearer_auth(t);
        }
        let r = rq.send().unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    let none = session(None);
    assert_eq!(none["token"], "none");
    assert_eq!(none["can_read"], false);
    assert_eq!(none["read_token_required"], true);
    assert_eq!(none["writes_enabled"], true);
    let read = session(Some(READ));
    assert_eq!(
        (
            read["token"].as_str(),
            read["can_read"].as_bool(),
            read["can_write"].as_bool()
        ),
        (Some("read"), Some(true), Some(false))
    );
    let admin = session(Some(ADMIN));
    assert_eq!(
        (
            admin["token"].as_str(),
            admin["can_read"].as_bool(),
            admin["can_write"].as_bool()
        ),
        (Some("admin"), Some(true), Some(true))
    );
    let wrong = session(Some("not-a-valid-token-at-all"));
    assert_eq!(wrong["token"], "invalid");
    assert_eq!(wrong["can_read"], false);
    assert!(!wrong.to_string().contains("not-a-valid"));

    // Summary: needs the read token; its counts are the detections'.
    let r = c.get(s.url("/api/v1/summary")).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(s.url("/api/v1/summary"))
        .bearer_auth("not-a-valid-token-at-all")
        .send()
        .unwrap();
    assert_eq!(r.status(), 403);
    let get = |q: &str| -> (u16, Value) {
        let r = c
            .get(s.url(&format!("/api/v1/summary{q}")))
            .bearer_auth(READ)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap())
    };
    let (st, sum) = get("");
    assert_eq!(st, 200);
    assert_eq!(sum["total"], dets.len());
    let mut per_stage: BTreeMap<String, u64> = BTreeMap::new();
    for d in &dets {
        *per_stage
            .entry(d["stage"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (stage, n) in sum["by_stage"].as_object().unwrap() {
        assert_eq!(
            n.as_u64().unwrap(),
            per_stage.get(stage).copied().unwrap_or(0),
            "{stage}"
        );
    }
    assert_eq!(sum["by_stage"].as_object().unwrap().len(), 6);
    assert_eq!(sum["hosts"], want.len());
    let bucket_total: u64 = sum["timeline"]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["total"].as_u64().unwrap())
        .sum();
    assert_eq!(bucket_total, dets.len() as u64);
    assert_eq!(sum["top_pools"][0]["pool_domain"], "supportxmr.com");
    assert_eq!(sum["top_hosts"][0]["max_risk"], 97);
    assert_eq!(sum["truncated"], false);
    // The sample is days old: nothing is new in the last 24 h, everything is new in range.
    assert_eq!(sum["new_hosts_24h"], 0);
    assert_eq!(sum["new_hosts"], want.len());

    // Parameters narrow or are rejected clearly.
    let (st, future) = get("?since=2100-01-01T00:00:00Z");
    assert_eq!(st, 200);
    assert_eq!(future["total"], 0);
    let (_, top1) = get("?top=1&bucket=60");
    assert_eq!(top1["top_pools"].as_array().unwrap().len(), 1);
    assert_eq!(top1["timeline"]["bucket_secs"], 60);
    for (q, code) in [
        ("?bucket=5", "invalid_parameter"),
        ("?bucket=abc", "invalid_parameter"),
        ("?top=0", "invalid_parameter"),
        ("?top=51", "invalid_parameter"),
        ("?since=yesterday", "invalid_parameter"),
        ("?stage=stratum", "unknown_parameter"),
        ("?top=1&top=2", "invalid_parameter"),
    ] {
        let (st, v) = get(q);
        assert_eq!(st, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], code, "{q}");
    }
}
