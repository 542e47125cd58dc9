//! The REST API over real HTTP: a real server on 127.0.0.1:0, a real client (reqwest), a
//! real broadcast feed. Detections come from `MemBackend`, an in-memory implementation of the
//! `api::Backend` seam (the sled store implements the same trait; after the merge the same
//! checks run against it — see `check_pagination_stable`).

use crate::support::http as http_support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poolwatch::api::{self, Access, ApiOptions, AppState, Backend, BackendError, Tokens};
use poolwatch::config::Secret;
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{Detection, Stage, Timestamp};
use poolwatch::query::{
    ChangeKind, DetectionEvent, DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp,
    PoolSummary, Suppression,
};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

use http_support::Serving;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// The in-memory backend (test double for the store seam)
// ---------------------------------------------------------------------------------------------

/// Detections kept in insertion order with a sequence number; pages go newest first and a
/// cursor is "everything older than sequence N", so inserts never shift later pages.
#[derive(Default)]
struct MemBackend {
    detections: Mutex<BTreeMap<u64, Detection>>,
    seq: AtomicU64,
    suppressions: Mutex<Vec<Suppression>>,
    pool_ips: Mutex<Vec<PoolIp>>,
}

impl MemBackend {
    fn insert(&self, d: Detection) {
        let s = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        self.detections.lock().unwrap().insert(s, d);
    }
}

fn matches(f: &DetectionFilter, d: &Detection) -> bool {
    f.client.is_none_or(|n| n.contains(&d.client_ip))
        && f.pool.as_deref().is_none_or(|p| p == d.pool_domain)
        && f.stage.is_none_or(|s| s == d.stage)
        && f.min_risk.is_none_or(|r| d.risk_score >= r)
        && f.suppressed.is_none_or(|s| s == d.suppressed)
        && f.since.is_none_or(|t| d.last_seen >= t)
        && f.until.is_none_or(|t| d.first_seen <= t)
}

impl Backend for MemBackend {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        let before = match cursor {
            None => u64::MAX,
            Some(c) => c
                .strip_prefix("s")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| BackendError::BadCursor("malformed".into()))?,
        };
        let all = self.detections.lock().unwrap();
        let mut items = Vec::new();
        let mut next = None;
        for (seq, d) in all.range(..before).rev() {
            if !matches(f, d) {
                continue;
            }
            if items.len() == limit {
                next = Some(format!("s{}", seq + 1));
                break;
            }
            items.push(d.clone());
        }
        Ok(Page {
            items,
            next_cursor: next,
        })
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError> {
        if id == "explode" {
            return Err(BackendError::Other(
                "sled: IO error at /secret/path/db".into(),
            ));
        }
        Ok(self
            .detections
            .lock()
            .unwrap()
            .values()
            .find(|d| d.id == id)
            .cloned())
    }
    fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, BackendError> {
        if ip == "192.0.2.254".parse::<IpAddr>().unwrap() {
            // A slow backend, for the request deadline.
            std::thread::sleep(Duration::from_secs(3));
        }
        let dets: Vec<Detection> = self
            .detections
            .lock()
            .unwrap()
            .values()
            .rev()
            .filter(|d| d.client_ip == ip)
            .take(limit)
            .cloned()
            .collect();
        Ok(HostTimeline {
            ip,
            first_seen: dets.iter().map(|d| d.first_seen).min(),
            timeline: dets.iter().flat_map(|d| d.evidence.clone()).collect(),
            detections: dets,
            bindings: Vec::new(),
        })
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        let all = self.detections.lock().unwrap();
        let mut by: BTreeMap<String, PoolSummary> = BTreeMap::new();
        for d in all.values() {
            let e = by.entry(d.pool_domain.clone()).or_insert(PoolSummary {
                pool_domain: d.pool_domain.clone(),
                category: None,
                list: None,
                clients: 0,
                detections: 0,
                strongest_stage: d.stage,
                first_seen: d.first_seen,
                last_seen: d.last_seen,
            });
            e.clients += 1;
            e.detections += 1;
            e.strongest_stage = e.strongest_stage.max(d.stage);
        }
        Ok(by.into_values().collect())
    }
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError> {
        let mut v = self.suppressions.lock().unwrap();
        let sup = Suppression {
            id: format!("sup-{}", v.len() + 1),
            client: s.client,
            pool: s.pool,
            expires: s.expires,
            reason: s.reason,
            created: Timestamp::now(),
        };
        v.push(sup.clone());
        Ok(sup)
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Ok(self.suppressions.lock().unwrap().clone())
    }
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError> {
        let mut v = self.suppressions.lock().unwrap();
        let before = v.len();
        v.retain(|s| s.id != id);
        Ok(v.len() != before)
    }
    fn pool_ips(&self, _now: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Ok(self.pool_ips.lock().unwrap().clone())
    }
}

fn detection(n: u32, client: &str, pool: &str, stage: Stage, risk: u8) -> Detection {
    let t = Timestamp::from_secs(1_795_723_200 + i64::from(n));
    serde_json::from_value(json!({
        "id": format!("det-{n:05}"),
        "client_ip": client,
        "stage": stage,
        "risk_score": risk,
        "pool_domain": pool,
        "query_names": [format!("pool.{pool}")],
        "pool_ips": ["203.0.113.10"],
        "dst_ports": [3333],
        "first_seen": t,
        "last_seen": t,
        "is_new": true,
        "evidence": [],
        "sources": ["pcap:sample.pcap"],
        "lists": [],
    }))
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A real server
// ---------------------------------------------------------------------------------------------

struct Server {
    http: Serving,
    state: AppState,
    backend: Arc<MemBackend>,
}

impl Server {
    fn start(opts: ApiOptions) -> Server {
        let backend = Arc::new(MemBackend::default());
        let (tx, _) = tokio::sync::broadcast::channel(64);
        let lists = matcher::shared(Blocklists::builtin().unwrap());
        let state = AppState::new(backend.clone(), lists, tx, opts);
        Server {
            http: Serving::start(http_support::runtime(), state.clone()),
            state,
            backend,
        }
    }

    fn open() -> Server {
        Server::start(ApiOptions::default())
    }

    fn with_tokens() -> Server {
        Server::start(ApiOptions {
            tokens: Tokens {
                admin: Some(Secret::new(ADMIN)),
                read: Some(Secret::new(READ)),
            },
            ..ApiOptions::default()
        })
    }

    fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    /// Stops the server; returns how long the shutdown took.
    fn shutdown(&mut self) -> Duration {
        let t = Instant::now();
        self.http.shutdown().unwrap();
        t.elapsed()
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Asserts the response is the JSON error shape with this status and code; returns the message.
fn expect_error(resp: reqwest::blocking::Response, status: u16, code: &str) -> String {
    assert_eq!(resp.status().as_u16(), status, "status");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = resp.json().unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap().to_string();
    assert!(!msg.is_empty());
    msg
}

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

// ---------------------------------------------------------------------------------------------
// Detections, hosts, pools, check, export
// ---------------------------------------------------------------------------------------------

#[test]
fn detections_filters_and_lookup() {
    let s = Server::open();
    let b = &s.backend;
    b.insert(detection(
        1,
        "192.0.2.10",
        "supportxmr.com",
        Stage::Stratum,
        95,
    ));
    b.insert(detection(
        2,
        "192.0.2.11",
        "nanopool.org",
        Stage::Lookup,
        60,
    ));
    b.insert(detection(
        3,
        "198.51.100.7",
        "minexmr.com",
        Stage::BlockedLookup,
        50,
    ));
    let c = client();
    let ids = |q: &str| -> Vec<String> {
        let v: Value = c
            .get(s.url(&format!("/api/v1/detections?{q}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert!(
            v.get("next_cursor").is_some(),
            "next_cursor key always present"
        );
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(""), ["det-00003", "det-00002", "det-00001"]);
    assert_eq!(ids("client=192.0.2.0/24"), ["det-00002", "det-00001"]);
    assert_eq!(ids("client=192.0.2.10"), ["det-00001"]);
    assert_eq!(ids("pool=SupportXMR.com."), ["det-00001"]);
    assert_eq!(ids("stage=lookup"), ["det-00002"]);
    assert_eq!(ids("min_risk=60"), ["det-00002", "det-00001"]);
    assert_eq!(ids("since=1795723202"), ["det-00003", "det-00002"]);
    assert_eq!(ids("until=2026-11-26T20:00:01Z"), ["det-00001"]);
    assert_eq!(ids("suppressed=true"), Vec::<String>::new());

    let d: Value = c
        .get(s.url("/api/v1/detections/det-00001"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(d["client_ip"], "192.0.2.10");
    assert_eq!(d["stage"], "stratum");
    assert_eq!(d["mitre"]["technique"], "T1496");

    let h: Value = c
        .get(s.url("/api/v1/hosts/192.0.2.10"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(h["detections"].as_array().unwrap().len(), 1);

    let p: Value = c
        .get(s.url("/api/v1/pools"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(p["items"].as_array().unwrap().len(), 3);
}

/// Pages through `GET /detections` while new detections are inserted between pages: every
/// detection present at the start is seen exactly once, none twice. Written against the
/// `Backend` seam so the same check runs on the sled store after the merge.
fn check_pagination_stable(c: &Client, base: &str, insert: &dyn Fn(u32), initial: u32) {
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut round = 0u32;
    loop {
        let url = match &cursor {
            Some(cur) => format!("{base}/api/v1/detections?limit=7&cursor={cur}"),
            None => format!("{base}/api/v1/detections?limit=7"),
        };
        let v: Value = c.get(url).send().unwrap().json().unwrap();
        for d in v["items"].as_array().unwrap() {
            let id = d["id"].as_str().unwrap().to_string();
            assert!(seen.insert(id.clone()), "{id} returned twice");
        }
        // Concurrent writers: new incidents arrive while the client pages.
        insert(10_000 + round);
        insert(10_100 + round);
        round += 1;
        match v["next_cursor"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
        assert!(round < 1000, "pagination does not terminate");
    }
    for n in 1..=initial {
        assert!(
            seen.contains(&format!("det-{n:05}")),
            "det-{n:05} never returned"
        );
    }
}

#[test]
fn pagination_is_stable_under_concurrent_inserts() {
    let s = Server::open();
    for n in 1..=50 {
        s.backend.insert(detection(
            n,
            "192.0.2.10",
            "supportxmr.com",
            Stage::Lookup,
            60,
        ));
    }
    let b = s.backend.clone();
    let insert = move |n: u32| {
        b.insert(detection(
            n,
            "192.0.2.12",
            "nanopool.org",
            Stage::Lookup,
            60,
        ))
    };
    check_pagination_stable(&client(), &s.http.base, &insert, 50);
}

#[test]
fn check_names() {
    let s = Server::open();
    let c = client();
    let v: Value = c
        .get(s.url("/api/v1/check?name=Pool.SupportXMR.com."))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        v,
        json!({"name": "pool.supportxmr.com", "matched": true, "entry": "supportxmr.com",
               "list": "pools-monero", "category": "pool"})
    );
    for benign in [
        "notsupportxmr.com",
        "supportxmr.com.evil.example",
        "www.example.com",
    ] {
        let v: Value = c
            .get(s.url(&format!("/api/v1/check?name={benign}")))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            v,
            json!({"name": benign, "matched": false, "entry": null, "list": null, "category": null})
        );
    }
}

#[test]
fn export_pool_ips_with_etag() {
    let s = Server::open();
    let t = Timestamp::from_secs(1_795_723_200);
    *s.backend.pool_ips.lock().unwrap() = vec![
        PoolIp {
            ip: "203.0.113.10".parse().unwrap(),
            pool_domains: vec!["supportxmr.com".into()],
            clients: 2,
            last_seen: t,
            expires: t.plus_secs(3600),
        },
        PoolIp {
            ip: "2001:db8::10".parse().unwrap(),
            pool_domains: vec!["supportxmr.com".into()],
            clients: 1,
            last_seen: t,
            expires: t.plus_secs(3600),
        },
        PoolIp {
            ip: "198.51.100.20".parse().unwrap(),
            pool_domains: vec!["nanopool.org".into()],
            clients: 1,
            last_seen: t,
            expires: t.plus_secs(3600),
        },
    ];
    let c = client();
    let url = s.url("/api/v1/export/pool-ips");
    let r = c.get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(
        r.text().unwrap(),
        "198.51.100.20\n203.0.113.10\n2001:db8::10\n"
    );
    let r = c.get(&url).header("if-none-match", &etag).send().unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.text().unwrap().is_empty());

    let r = c.get(format!("{url}?format=json")).send().unwrap();
    let jtag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(jtag, etag);
    let v: Value = r.json().unwrap();
    assert_eq!(v["items"][0]["ip"], "198.51.100.20");

    // A change changes the tag.
    s.backend.pool_ips.lock().unwrap().pop();
    let r = c.get(&url).header("if-none-match", &etag).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "203.0.113.10\n2001:db8::10\n");
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events and shutdown
// ---------------------------------------------------------------------------------------------

/// Reads SSE events (name, data) from a blocking response until `n` arrived.
fn read_events(resp: reqwest::blocking::Response, n: usize) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut name = String::new();
    let mut reader = BufReader::new(resp);
    let mut line = String::new();
    while out.len() < n {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if let Some(v) = l.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = l.strip_prefix("data:") {
            out.push((name.clone(), serde_json::from_str(v.trim()).unwrap()));
        }
    }
    out
}

fn wait_for_subscribers(s: &Server, n: usize) {
    let t = Instant::now();
    while s.state.events().receiver_count() < n {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "stream never subscribed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sse_streams_new_and_upgraded_detections() {
    let mut s = Server::with_tokens();
    let c = client();
    let all = c
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    assert_eq!(all.status(), 200);
    assert!(all.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let high = c
        .get(s.url("/api/v1/detections/stream?min_risk=90"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    wait_for_subscribers(&s, 2);

    let tx = s.state.events().clone();
    tx.send(DetectionEvent {
        kind: ChangeKind::New,
        detection: detection(1, "192.0.2.11", "nanopool.org", Stage::Lookup, 60),
    })
    .unwrap();
    tx.send(DetectionEvent {
        kind: ChangeKind::Upgraded,
        detection: detection(2, "192.0.2.10", "supportxmr.com", Stage::Stratum, 95),
    })
    .unwrap();

    let got = read_events(all, 2);
    assert_eq!(got[0].0, "new");
    assert_eq!(got[0].1["id"], "det-00001");
    assert_eq!(got[1].0, "upgraded");
    assert_eq!(got[1].1["stage"], "stratum");
    let got = read_events(high, 1);
    assert_eq!(
        got[0].1["id"], "det-00002",
        "filter let a low-risk event through"
    );

    // An open stream must not hold up shutdown.
    let _open = c
        .get(s.url("/api/v1/detections/stream"))
        .bearer_auth(READ)
        .send()
        .unwrap();
    wait_for_subscribers(&s, 1);
    let took = s.shutdown();
    assert!(took < Duration::from_secs(8), "shutdown took {took:?}");
}

#[test]
fn sse_rejects_bad_filters_and_caps_clients() {
    let s = Server::start(ApiOptions {
        max_streams: 1,
        ..ApiOptions::default()
    });
    let c = client();
    expect_error(
        c.get(s.url("/api/v1/detections/stream?stage=x"))
            .send()
            .unwrap(),
        400,
        "invalid_parameter",
    );
    let first = c.get(s.url("/api/v1/detections/stream")).send().unwrap();
    assert_eq!(first.status(), 200);
    expect_error(
        c.get(s.url("/api/v1/detections/stream")).send().unwrap(),
        503,
        "too_many_streams",
    );
    drop(first);
    // The slot comes back once the client goes away.
    let t = Instant::now();
    loop {
        let r = c.get(s.url("/api/v1/detections/stream")).send().unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "slot never freed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Load (manual): HTTP-layer throughput and latency with wrk, 10k detections in the in-memory
// backend. No assertions; run with
//   cargo test --release --test api_server load_with_wrk -- --ignored --nocapture
// ---------------------------------------------------------------------------------------------

#[test]
#[ignore]
fn load_with_wrk() {
    if std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipping: wrk not installed (apt-get install wrk)");
        return;
    }
    let s = Server::open();
    for n in 0..10_000u32 {
        let client = format!("192.0.{}.{}", 2 + n / 250, n % 250 + 1);
        s.backend
            .insert(detection(n, &client, "supportxmr.com", Stage::Stratum, 95));
    }
    for path in [
        "/healthz",
        "/api/v1/check?name=pool.supportxmr.com",
        "/api/v1/detections?limit=50",
    ] {
        let out = std::process::Command::new("wrk")
            .args(["-t2", "-c32", "-d10s", "--latency"])
            .arg(s.url(path))
            .output()
            .unwrap();
        println!("=== {path}\n{}", String::from_utf8_lossy(&out.stdout));
    }
}
