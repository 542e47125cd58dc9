//! Webhook sinks against a real HTTPS receiver on loopback (hyper + rustls, a private CA made
//! by rcgen): generic JSON signed with HMAC-SHA256, Slack-compatible text, a Splunk-HEC style
//! template, ECS; custom headers; 429 with `Retry-After` and 5xx retried; records refused with
//! 400 dropped after `max_retries` and counted.

use crate::support::output as output_support;
use crate::support::service as service_support;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use output_support::*;
use poolwatch::output::hmac_sha256;
use serde_json::Value;
use service_support::{self as ss, Svc};

const SECRET: &str = "shared-secret-0123456789";

#[derive(Clone, Debug)]
struct Req {
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    at: Instant,
    status: u16,
}

#[derive(Default)]
struct HookState {
    received: Vec<Req>,
    /// Per path: responses (status, Retry-After) for the next requests; then 200.
    plan: BTreeMap<String, VecDeque<(u16, Option<&'static str>)>>,
    /// Paths that always answer this status.
    always: BTreeMap<String, u16>,
}

/// An HTTPS receiver on 127.0.0.1 running on its own thread.
struct Hook {
    port: u16,
    state: Arc<Mutex<HookState>>,
}

impl Hook {
    fn start(tls: &TlsFiles) -> Hook {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_file(&tls.key).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(HookState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(l).unwrap();
                loop {
                    let Ok((s, _)) = l.accept().await else {
                        continue;
                    };
                    let (acceptor, st) = (acceptor.clone(), st.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(s).await else {
                            return;
                        };
                        let svc = hyper::service::service_fn(move |req| {
                            let st = st.clone();
                            async move { handle(req, st).await }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                            .await;
                    });
                }
            });
        });
        Hook { port, state }
    }

    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port)
    }

    fn requests(&self, path: &str) -> Vec<Req> {
        let st = self.state.lock().unwrap();
        st.received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Bodies of the 2xx-answered requests of `path`, once there are at least `n`.
    fn wait_ok(&self, path: &str, n: usize) -> Vec<Req> {
        eventually(&format!("{n} deliveries to {path}"), || {
            let ok: Vec<Req> = self
                .requests(path)
                .into_iter()
                .filter(|r| r.status == 200)
                .collect();
            (ok.len() >= n).then_some(ok)
        })
    }
}

async fn handle(
    req: hyper::Request<hyper::body::Incoming>,
    st: Arc<Mutex<HookState>>,
) -> Result<hyper::Response<String>, std::convert::Infallible> {
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let body = axum::body::to_bytes(axum::body::Body::new(req.into_body()), 1 << 20)
        .await
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut st = st.lock().unwrap();
    let (status, retry) = match st.always.get(&path) {
        Some(s) => (*s, None),
        None => st
            .plan
            .get_mut(&path)
            .and_then(VecDeque::pop_front)
            .unwrap_or((200, None)),
    };
    st.received.push(Req {
        path,
        headers,
        body,
        at: Instant::now(),
        status,
    });
    let mut resp = hyper::Response::builder().status(status);
    if let Some(r) = retry {
        resp = resp.header("Retry-After", r);
    }
    Ok(resp
        .body(if status == 200 {
            "{}".into()
        } else {
            "no".into()
        })
        .unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn serve(dir: &Path, config: &str) -> Svc {
    let cfg = dir.join("poolwatch.toml");
    std::fs::write(&cfg, config).unwrap();
    let db = dir.join("db");
    let pcap = ss::sample("sample.pcap");
    let log = ss::sample("sample-dnsmasq.log");
    Svc::start(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--db",
            db.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
            "--import",
            pcap.to_str().unwrap(),
            "--import",
            log.to_str().unwrap(),
        ],
        Some(dir),
    )
}

#[test]
fn https_webhooks_get_every_detection_signed_and_shaped() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let hook = Hook::start(&tls);
    let ca = tls.ca.display();
    let config = format!(
        r#"
[[output]]
type = "file"
path = "pw.json"

[[output]]
type = "webhook"
name = "generic"
url = "{generic}"
secret = "{SECRET}"
ca_file = "{ca}"
headers = {{ "X-Tenant" = "soc-1" }}

[[output]]
type = "webhook"
name = "slack"
url = "{slack}"
format = "slack"
ca_file = "{ca}"

[[output]]
type = "webhook"
name = "splunk"
url = "{hec}"
template = '{{"event": {{{{record}}}}, "sourcetype": "poolwatch", "time": {{{{time}}}}, "host": "{{{{observer}}}}"}}'
headers = {{ Authorization = "Splunk 00000000-0000-0000-0000-000000000000" }}
ca_file = "{ca}"

[[output]]
type = "webhook"
name = "elastic"
url = "{ecs}"
format = "ecs"
ca_file = "{ca}"
"#,
        generic = hook.url("127.0.0.1", "/generic"),
        slack = hook.url("localhost", "/slack"),
        hec = hook.url("127.0.0.1", "/services/collector/event"),
        ecs = hook.url("127.0.0.1", "/ecs"),
    );
    let s = serve(dir.path(), &config);
    let c = ss::client();
    settle(&c, &s, &["file", "generic", "slack", "splunk", "elastic"]);
    let pw = read_jsonl(&dir.path().join("pw.json"));
    let ids = event_ids(&pw);
    let by_id: BTreeMap<String, &Value> = pw
        .iter()
        .map(|r| (r["event"]["id"].as_str().unwrap().to_string(), r))
        .collect();

    let generic = hook.wait_ok("/generic", ids.len());
    let mut got = Vec::new();
    for r in &generic {
        let want = format!("sha256={}", hex(&hmac_sha256(SECRET.as_bytes(), &r.body)));
        assert_eq!(r.headers["x-poolwatch-signature"], want);
        assert_eq!(r.headers["x-tenant"], "soc-1");
        assert_eq!(r.headers["content-type"], "application/json");
        assert!(r.headers["user-agent"].starts_with("poolwatch/"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let id = v["event"]["id"].as_str().unwrap();
        assert_eq!(r.headers["x-poolwatch-event-id"], id);
        assert_eq!(r.headers["idempotency-key"], id);
        assert_eq!(&v, by_id[id]);
        got.push(id.to_string());
    }
    got.sort();
    assert_eq!(got, ids);

    let slack = hook.wait_ok("/slack", ids.len());
    for r in &slack {
        assert!(!r.headers.contains_key("x-poolwatch-signature"));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let text = v["text"].as_str().unwrap();
        let rec = by_id[&r.headers["x-poolwatch-event-id"]];
        assert!(text.contains(rec["client_ip"].as_str().unwrap()), "{text}");
        assert!(
            text.contains(rec["pool_domain"].as_str().unwrap()),
            "{text}"
        );
    }

    let hec = hook.wait_ok("/services/collector/event", ids.len());
    let mut got = Vec::new();
    for r in &hec {
        assert_eq!(
            r.headers["authorization"],
            "Splunk 00000000-0000-0000-0000-000000000000"
        );
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&r.body)));
        assert_eq!(v["sourcetype"], "poolwatch");
        assert!(v["time"].as_f64().unwrap() > 1.0e9);
        assert!(v["host"].is_string());
        got.push(v["event"]["event"]["id"].as_str().unwrap().to_string());
    }
    got.sort();
    assert_eq!(got, ids);

    for r in hook.wait_ok("/ecs", ids.len()) {
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let p = ecs_problems(&v);
        assert!(p.is_empty(), "{p:?}");
    }
    let outs = outputs(&c, &s);
    for n in ["generic", "slack", "splunk", "elastic"] {
        assert_eq!(outs[n]["type"], "webhook");
        assert_eq!(outs[n]["state"], "ok");
        assert_eq!(outs[n]["delivered"].as_u64().unwrap() as usize, ids.len());
    }
    // The URL and the secret never show in the effective config or the status.
    let st = serde_json::to_string(&outs).unwrap();
    assert!(!st.contains(SECRET) && !st.contains("/generic"));
}

#[test]
fn webhook_honours_retry_after_and_retries_server_errors() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let hook = Hook::start(&tls);
    {
        let mut st = hook.state.lock().unwrap();
        st.plan.insert(
            "/busy".into(),
            VecDeque::from([(429, Some("2")), (503, Some("1")), (500, None)]),
        );
    }
    let config = format!(
        r#"
[[output]]
type = "file"
path = "pw.json"

[[output]]
type = "webhook"
name = "busy"
url = "{}"
ca_file = "{}"
"#,
        hook.url("127.0.0.1", "/busy"),
        tls.ca.display()
    );
    let s = serve(dir.path(), &config);
    let c = ss::client();
    settle(&c, &s, &["file", "busy"]);
    let ids = event_ids(&read_jsonl(&dir.path().join("pw.json")));
    let reqs = hook.requests("/busy");
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(&statuses[..3], [429, 503, 500]);
    // Retry-After: 2 s after the 429, 1 s after the 503.
    let gap1 = reqs[1].at - reqs[0].at;
    let gap2 = reqs[2].at - reqs[1].at;
    assert!(gap1 >= Duration::from_millis(1900), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(900), "{gap2:?}");
    // The same record was retried: same event id on the failed attempts and the success.
    let first = &reqs[0].headers["x-poolwatch-event-id"];
    assert_eq!(&reqs[3].headers["x-poolwatch-event-id"], first);
    let mut got: Vec<String> = hook
        .wait_ok("/busy", ids.len())
        .iter()
        .map(|r| r.headers["x-poolwatch-event-id"].clone())
        .collect();
    got.sort();
    assert_eq!(got, ids);
    let o = &outputs(&c, &s)["busy"];
    assert_eq!(o["state"], "ok");
    assert_eq!(o["dropped"], 0);
    assert!(
        o["last_error"].as_str().unwrap().starts_with("HTTP 500"),
        "{o}"
    );
}

#[test]
fn webhook_drops_refused_records_after_max_retries() {
    let dir = tempfile::tempdir().unwrap();
    let tls = make_tls(dir.path());
    let hook = Hook::start(&tls);
    hook.state
        .lock()
        .unwrap()
        .always
        .insert("/refuse".into(), 400);
    let config = format!(
        r#"
[[output]]
type = "file"
path = "pw.json"

[[output]]
type = "webhook"
name = "refuse"
url = "{}"
ca_file = "{}"
min_stage = "stratum"
max_retries = 1
"#,
        hook.url("127.0.0.1", "/refuse"),
        tls.ca.display()
    );
    let s = serve(dir.path(), &config);
    let c = ss::client();
    settle(&c, &s, &["file", "refuse"]);
    let pw = read_jsonl(&dir.path().join("pw.json"));
    let n = pw.iter().filter(|r| r["stage"] == "stratum").count();
    assert!(n >= 2);
    let o = &outputs(&c, &s)["refuse"];
    assert_eq!(o["dropped"].as_u64().unwrap() as usize, n, "{o}");
    assert_eq!(o["delivered"], 0);
    assert!(o["last_error"].as_str().unwrap().starts_with("HTTP 400"));
    // One try plus one retry per record.
    assert_eq!(hook.requests("/refuse").len(), 2 * n);
    let m = c.get(s.url("/metrics")).send().unwrap().text().unwrap();
    assert!(m.contains(&format!(
        "poolwatch_output_dropped_total{{sink=\"refuse\",reason=\"rejected\"}} {n}"
    )));
}
