//! The REST API over real HTTP (a real server on 127.0.0.1:0, a real client): probes and
//! metrics, the OpenAPI description, authentication, hostile and slow requests. Detections,
//! pagination and exports are in `api_detections`, the event stream in `api_events`; the server
//! and its in-memory backend in `support::api`.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use poolwatch::api::{self, Access, ApiOptions, Tokens};
use poolwatch::config::Secret;
use poolwatch::model::Stage;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::api::{client, detection, expect_error, Server, ADMIN, READ};

// ---------------------------------------------------------------------------------------------
// Probes, metrics, description
// ---------------------------------------------------------------------------------------------

#[test]
fn health_ready_metrics() {
    let s = Server::open();
    let c = client();
    let r = c.get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().unwrap()["status"], "ok");

    expect_error(c.get(s.url("/readyz")).send().unwrap(), 503, "not_ready");
    s.state.set_ready(true);
    assert_eq!(c.get(s.url("/readyz")).send().unwrap().status(), 200);

    s.backend.insert(detection(
        1,
        "192.0.2.10",
        "supportxmr.com",
        Stage::Stratum,
        95,
    ));
    assert_eq!(
        c.get(s.url("/api/v1/hosts/192.0.2.10"))
            .send()
            .unwrap()
            .status(),
        200
    );
    let _ = c.get(s.url("/no/such/place/192.0.2.77")).send().unwrap();
    let r = c.get(s.url("/metrics")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().unwrap();
    assert!(text.contains(
        "poolwatch_http_requests_total{route=\"/api/v1/hosts/{ip}\",method=\"GET\",status=\"200\"}"
    ));
    assert!(text.contains("route=\"unmatched\""));
    assert!(text.contains(
        "poolwatch_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"}"
    ));
    // Never an address or a raw path as a label.
    assert!(!text.contains("192.0.2.10"), "IP leaked into metrics");
    assert!(!text.contains("192.0.2.77"));
    assert!(!text.contains("/no/such/place"));
}

fn openapi_pairs(doc: &Value) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            out.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    out
}

#[test]
fn openapi_matches_the_routes() {
    let table = api::route_table();
    let doc = api::openapi_document().expect("openapi.json parses");
    assert_eq!(doc["openapi"], "3.0.3");
    let routes: HashSet<(String, String)> = table
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    let documented = openapi_pairs(doc);
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let phantom: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(phantom.is_empty(), "documented but not served: {phantom:?}");

    // Documented security agrees with the access the route enforces.
    for r in &table {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        let sec = op["security"].to_string();
        match r.access {
            Access::Public => assert_eq!(sec, "[]", "{} {}", r.method, r.path),
            Access::Read => assert!(sec.contains("readToken"), "{} {}", r.method, r.path),
            Access::Admin => assert!(sec.contains("adminToken"), "{} {}", r.method, r.path),
        }
    }

    // Walk the live router: every table entry is routed (not the JSON 404/405 fallbacks) and
    // enforces its access; the served document is the same one.
    let s = Server::with_tokens();
    let c = client();
    let served: Value = c
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // The same document, except that `servers` names the address this server listens on.
    assert_eq!(
        served["servers"][0]["url"],
        s.url(""),
        "{}",
        served["servers"]
    );
    let (mut served, mut doc) = (served, doc.clone());
    served.as_object_mut().unwrap().remove("servers");
    doc.as_object_mut().unwrap().remove("servers");
    assert_eq!(served, doc);
    for r in &table {
        let path = r
            .path
            .replace("{id}", "det-00001")
            .replace("{ip}", "192.0.2.1");
        let resp = c
            .request(r.method.clone(), s.url(&path))
            .timeout(Duration::from_secs(5))
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        match r.access {
            Access::Public => assert!(status == 200 || status == 503, "{path}: {status}"),
            Access::Read | Access::Admin => {
                assert_eq!(status, 401, "{} {path} without a token", r.method);
                let v: Value = resp.json().unwrap();
                assert_eq!(v["error"]["code"], "unauthorized");
            }
        }
        // Every write route refuses the read token and a wrong token (before reading a body).
        if r.access == Access::Admin {
            for token in [READ, "not-the-admin-token"] {
                let resp = c
                    .request(r.method.clone(), s.url(&path))
                    .bearer_auth(token)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .unwrap();
                assert_eq!(
                    resp.status().as_u16(),
                    403,
                    "{} {path} with {token}",
                    r.method
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Auth
// ---------------------------------------------------------------------------------------------

#[test]
fn auth_rules() {
    let s = Server::with_tokens();
    let c = client();
    let list = s.url("/api/v1/detections");
    let sup = s.url("/api/v1/suppressions");
    let body = json!({"client": "192.0.2.10", "reason": "lab miner"});

    let r = c.get(&list).send().unwrap();
    assert!(r.headers().contains_key("www-authenticate"));
    expect_error(r, 401, "unauthorized");
    expect_error(
        c.get(&list)
            .header("authorization", "Basic Zm9vOmJhcg==")
            .send()
            .unwrap(),
        401,
        "unauthorized",
    );
    expect_error(
        c.get(&list)
            .bearer_auth("wrong-token-but-long-enough")
            .send()
            .unwrap(),
        403,
        "forbidden",
    );
    assert_eq!(c.get(&list).bearer_auth(READ).send().unwrap().status(), 200);
    assert_eq!(
        c.get(&list).bearer_auth(ADMIN).send().unwrap().status(),
        200
    );
    // Case-insensitive scheme.
    assert_eq!(
        c.get(&list)
            .header("authorization", format!("bearer {READ}"))
            .send()
            .unwrap()
            .status(),
        200
    );

    expect_error(
        c.post(&sup).json(&body).send().unwrap(),
        401,
        "unauthorized",
    );
    expect_error(
        c.post(&sup).bearer_auth(READ).json(&body).send().unwrap(),
        403,
        "forbidden",
    );
    let r = c.post(&sup).bearer_auth(ADMIN).json(&body).send().unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().unwrap();
    assert_eq!(created["client"], "192.0.2.10/32");
    let id = created["id"].as_str().unwrap();
    let del = s.url(&format!("/api/v1/suppressions/{id}"));
    expect_error(
        c.delete(&del).bearer_auth(READ).send().unwrap(),
        403,
        "forbidden",
    );
    assert_eq!(
        c.delete(&del).bearer_auth(ADMIN).send().unwrap().status(),
        204
    );
    expect_error(
        c.delete(&del).bearer_auth(ADMIN).send().unwrap(),
        404,
        "not_found",
    );

    // Public probes need nothing.
    assert_eq!(c.get(s.url("/healthz")).send().unwrap().status(), 200);
}

#[test]
fn open_reads_but_no_writes_without_admin_token() {
    let s = Server::open();
    let c = client();
    assert_eq!(
        c.get(s.url("/api/v1/detections")).send().unwrap().status(),
        200
    );
    expect_error(
        c.post(s.url("/api/v1/suppressions"))
            .json(&json!({"pool": "supportxmr.com", "reason": "x"}))
            .send()
            .unwrap(),
        403,
        "writes_disabled",
    );
    // Even a token cannot write when none is configured.
    expect_error(
        c.post(s.url("/api/v1/suppressions"))
            .bearer_auth("anything-anything-anything")
            .json(&json!({"pool": "supportxmr.com", "reason": "x"}))
            .send()
            .unwrap(),
        403,
        "writes_disabled",
    );
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[test]
fn bad_input_is_a_clear_400_404_413_never_500() {
    let s = Server::start(ApiOptions {
        tokens: Tokens {
            admin: Some(Secret::new(ADMIN)),
            read: None,
        },
        max_body: 2048,
        ..ApiOptions::default()
    });
    let c = client();
    let get = |p: &str| c.get(s.url(p)).send().unwrap();

    for (q, code) in [
        ("client=nope", "invalid_parameter"),
        ("client=192.0.2.0/33", "invalid_parameter"),
        ("stage=mining", "invalid_parameter"),
        ("min_risk=101", "invalid_parameter"),
        ("min_risk=-1", "invalid_parameter"),
        ("since=yesterday", "invalid_parameter"),
        (
            "since=2026-11-27T00:00:00Z&until=2026-11-26T00:00:00Z",
            "invalid_parameter",
        ),
        ("suppressed=maybe", "invalid_parameter"),
        ("limit=0", "invalid_parameter"),
        ("limit=1001", "invalid_parameter"),
        ("limit=ten", "invalid_parameter"),
        ("stage=lookup&stage=stratum", "invalid_parameter"),
        ("min_rsik=50", "unknown_parameter"),
        ("cursor=zzz", "bad_cursor"),
        ("cursor=%ff%fe", "bad_cursor"),
    ] {
        let msg = expect_error(get(&format!("/api/v1/detections?{q}")), 400, code);
        assert!(msg.len() < 400, "{q}: message too long");
    }
    let msg = expect_error(
        get("/api/v1/detections?stage=mining"),
        400,
        "invalid_parameter",
    );
    assert!(msg.contains("stage") && msg.contains("stratum"), "{msg}");

    expect_error(get("/api/v1/detections/det-99999"), 404, "not_found");
    expect_error(
        get(&format!("/api/v1/detections/{}", "x".repeat(5000))),
        404,
        "not_found",
    );
    expect_error(get("/api/v1/detections/%00%ff"), 404, "not_found");
    expect_error(get("/api/v1/hosts/not-an-ip"), 400, "invalid_parameter");
    expect_error(get("/api/v1/hosts/192.0.2.99"), 404, "not_found");
    expect_error(
        get("/api/v1/hosts/192.0.2.99?limit=0"),
        400,
        "invalid_parameter",
    );
    expect_error(get("/api/v1/check"), 400, "invalid_parameter");
    expect_error(get("/api/v1/check?name="), 400, "invalid_parameter");
    expect_error(get("/api/v1/check?name=a..b"), 400, "invalid_parameter");
    expect_error(
        get(&format!("/api/v1/check?name={}", "a".repeat(300))),
        400,
        "invalid_parameter",
    );
    expect_error(
        get("/api/v1/export/pool-ips?format=xml"),
        400,
        "invalid_parameter",
    );
    expect_error(get("/api/v1/pools?x=1"), 400, "unknown_parameter");
    expect_error(get("/nope"), 404, "route_not_found");
    expect_error(get("/api/v2/detections"), 404, "route_not_found");
    expect_error(
        c.put(s.url("/api/v1/detections")).send().unwrap(),
        405,
        "method_not_allowed",
    );

    // A backend failure is a logged, generic 500 that leaks nothing.
    let r = get("/api/v1/detections/explode");
    assert_eq!(r.status(), 500);
    let text = r.text().unwrap();
    assert!(!text.contains("secret") && !text.contains("sled"), "{text}");

    // Bodies.
    let sup = s.url("/api/v1/suppressions");
    let post = |b: reqwest::blocking::RequestBuilder| b.bearer_auth(ADMIN).send().unwrap();
    let big = json!({"pool": "supportxmr.com", "reason": "x".repeat(10_000)});
    expect_error(post(c.post(&sup).json(&big)), 413, "payload_too_large");
    expect_error(
        post(c.post(&sup).header("content-type", "text/plain").body("{}")),
        415,
        "unsupported_media_type",
    );
    expect_error(
        post(
            c.post(&sup)
                .header("content-type", "application/json")
                .body("{not json"),
        ),
        400,
        "invalid_body",
    );
    for (body, code) in [
        (json!({"reason": "nothing to suppress"}), "invalid_body"),
        (json!({"client": "192.0.2.10"}), "invalid_body"),
        (
            json!({"client": "192.0.2.10", "reason": ""}),
            "invalid_parameter",
        ),
        (
            json!({"client": "nope", "reason": "x"}),
            "invalid_parameter",
        ),
        (json!({"pool": "a b", "reason": "x"}), "invalid_parameter"),
        (
            json!({"pool": "supportxmr.com", "reason": "x", "expires": "2001-01-01T00:00:00Z"}),
            "invalid_parameter",
        ),
        (
            json!({"pool": "supportxmr.com", "reason": "x", "expires": "soon"}),
            "invalid_body",
        ),
        (
            json!({"pool": "supportxmr.com", "reason": "x", "colour": "red"}),
            "invalid_body",
        ),
        (json!(["not", "an", "object"]), "invalid_body"),
    ] {
        expect_error(post(c.post(&sup).json(&body)), 400, code);
    }
}

#[test]
fn hostile_requests_never_500() {
    let s = Server::open();
    s.backend.insert(detection(
        1,
        "192.0.2.10",
        "supportxmr.com",
        Stage::Stratum,
        95,
    ));
    let mut paths = vec![
        "/api/v1/detections?%ff=%fe".to_string(),
        "/api/v1/detections?client=%00".to_string(),
        "/api/v1/detections?&&&=&=".to_string(),
        "/api/v1/detections?since=1e300".to_string(),
        "/api/v1/detections?since=NaN".to_string(),
        "/api/v1/detections?until=-99999999999999999".to_string(),
        "/api/v1/hosts/%ff".to_string(),
        "/api/v1/hosts/fe80::1%25eth0".to_string(),
        "/api/v1/check?name=%E2%80%AE".to_string(),
        "/api/v1/check?name=xn--".to_string(),
        "/api/v1/check?name=*.*.*".to_string(),
        "/api/v1/detections/stream?stage=%ff".to_string(),
        "/api/v1//detections".to_string(),
        "/api/v1/detections/../../etc/passwd".to_string(),
        format!("/api/v1/detections?{}", "a=1&".repeat(100)),
        format!("/api/v1/check?name={}", "%C3%A9".repeat(400)),
    ];
    for i in 0..64u32 {
        // Deterministic junk bytes, percent-encoded.
        let junk: String = (0..(i * 7 % 50))
            .map(|k| format!("%{:02x}", (i * 31 + k * 17) % 256))
            .collect();
        paths.push(format!("/api/v1/detections?client={junk}&pool={junk}"));
        paths.push(format!("/api/v1/check?name={junk}"));
    }
    let c = client();
    for p in &paths {
        let r = c.get(s.url(p)).send().unwrap();
        let st = r.status().as_u16();
        assert!(st < 500, "{p}: {st}");
        if st >= 400 {
            let v: Value = r.json().unwrap_or_else(|_| panic!("{p}: non-JSON error"));
            assert!(v["error"]["code"].is_string(), "{p}");
        }
    }
}

#[test]
fn slow_handlers_time_out_with_json() {
    let s = Server::start(ApiOptions {
        request_timeout: Duration::from_secs(1),
        ..ApiOptions::default()
    });
    let c = client();
    let t = Instant::now();
    expect_error(
        c.get(s.url("/api/v1/hosts/192.0.2.254")).send().unwrap(),
        408,
        "timeout",
    );
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn slow_request_heads_are_cut_off() {
    let s = Server::start(ApiOptions {
        header_read_timeout: Duration::from_secs(1),
        ..ApiOptions::default()
    });
    let mut sock = TcpStream::connect(s.http.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    // The server closes the connection (possibly after a 408) instead of waiting forever.
    let _ = sock.read_to_end(&mut buf);
    assert!(t.elapsed() < Duration::from_secs(8), "connection held open");

    // A connection that never sends anything does not keep its slot either.
    let mut idle = TcpStream::connect(s.http.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let _ = idle.read_to_end(&mut buf);
    assert!(
        t.elapsed() < Duration::from_secs(8),
        "idle connection held open"
    );
}
