//! Shared by `tests/api_lists.rs` and `tests/feeds.rs`: a real API server on 127.0.0.1:0 with
//! a real `ListManager` over a temporary user-lists directory, and a real local HTTP list
//! server that feeds are downloaded from.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use poolwatch::api::{ApiOptions, AppState, Backend, BackendError, Tokens};
use poolwatch::config::Secret;
use poolwatch::matcher::{ListManager, ListManagerConfig};
use poolwatch::model::{Detection, Timestamp};
use poolwatch::query::{
    DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary, Suppression,
};
use reqwest::blocking::Client;
use serde_json::Value;

use crate::support::http::Serving;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const READ: &str = "read-token-0123456789abcdef";

/// The detection side is not under test here: a backend with nothing in it.
pub struct NoDetections;

impl Backend for NoDetections {
    fn list_detections(
        &self,
        _: &DetectionFilter,
        _: usize,
        _: Option<&str>,
    ) -> Result<Page<Detection>, BackendError> {
        Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        })
    }
    fn get_detection(&self, _: &str) -> Result<Option<Detection>, BackendError> {
        Ok(None)
    }
    fn host_timeline(&self, ip: IpAddr, _: usize) -> Result<HostTimeline, BackendError> {
        Ok(HostTimeline {
            ip,
            first_seen: None,
            detections: Vec::new(),
            bindings: Vec::new(),
            timeline: Vec::new(),
        })
    }
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError> {
        Ok(Vec::new())
    }
    fn add_suppression(&self, _: NewSuppression) -> Result<Suppression, BackendError> {
        Err(BackendError::Other("not in this test".into()))
    }
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError> {
        Ok(Vec::new())
    }
    fn delete_suppression(&self, _: &str) -> Result<bool, BackendError> {
        Ok(false)
    }
    fn pool_ips(&self, _: Timestamp) -> Result<Vec<PoolIp>, BackendError> {
        Ok(Vec::new())
    }
}

/// A running API server with a list manager.
pub struct Server {
    pub http: Serving,
    pub manager: Option<Arc<ListManager>>,
}

pub use crate::support::http::runtime;

pub fn tokens() -> Tokens {
    Tokens {
        admin: Some(Secret::new(ADMIN)),
        read: Some(Secret::new(READ)),
    }
}

/// The tests' usual options: both tokens, default limits.
pub fn options() -> ApiOptions {
    ApiOptions {
        tokens: tokens(),
        ..ApiOptions::default()
    }
}

impl Server {
    /// A server whose lists are managed over `cfg` (`None`: no manager attached).
    pub fn start(cfg: Option<ListManagerConfig>, opts: ApiOptions) -> Server {
        let (manager, shared) = match cfg {
            Some(cfg) => {
                let (m, s) = ListManager::open(cfg).unwrap();
                (Some(m), s)
            }
            None => (
                None,
                poolwatch::matcher::shared(poolwatch::matcher::Blocklists::builtin().unwrap()),
            ),
        };
        let (tx, _) = tokio::sync::broadcast::channel(16);
        let mut state = AppState::new(Arc::new(NoDetections), shared, tx, opts);
        if let Some(m) = &manager {
            state = state.with_lists(m.clone());
        }
        Server {
            http: Serving::start(runtime(), state),
            manager,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.http.url(path)
    }

    pub fn stop(mut self) {
        let _ = self.http.shutdown();
    }
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Asserts the JSON error shape with this status and code; returns the whole body.
pub fn expect_error(resp: reqwest::blocking::Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let v: Value = resp.json().unwrap();
    assert_eq!(got, status, "status; body {v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    v
}

/// GET with the read token; the body as JSON.
pub fn get_json(c: &Client, s: &Server, path: &str) -> Value {
    c.get(s.url(path))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

pub fn check(c: &Client, s: &Server, name: &str) -> Value {
    c.get(s.url(&format!("/api/v1/check?name={name}")))
        .bearer_auth(READ)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// A real list server for feeds
// ---------------------------------------------------------------------------------------------

/// What the list server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with this body (and an ETag derived from it); 304 when If-None-Match matches.
    Serve(String),
    /// 200 with bytes that are not a list.
    Garbage(Vec<u8>),
    /// 500.
    Down,
    /// 200 with this body sent in chunks, without a Content-Length (the size limit must hold
    /// while streaming too).
    Chunked(String),
    /// Waits this long before answering (for timeouts).
    Slow(Duration, String),
    /// 302 to this location.
    Redirect(String),
}

#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub conditional: AtomicU64,
    pub not_modified: AtomicU64,
    /// Requests that carried the `Last-Modified` we sent back as `If-Modified-Since`.
    pub if_modified_since: AtomicU64,
}

#[derive(Clone)]
struct ListState {
    mode: Arc<Mutex<Mode>>,
    counters: Arc<Counters>,
}

/// A tiny axum server on 127.0.0.1:0 serving `/list.txt`.
pub struct ListServer {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    pub counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// The `Last-Modified` the list server sends (fixed: only its echo is checked).
pub const LAST_MODIFIED: &str = "Wed, 25 Nov 2026 10:00:00 GMT";

fn etag(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

async fn serve_list(State(st): State<ListState>, headers: HeaderMap) -> Response {
    st.counters.requests.fetch_add(1, Ordering::SeqCst);
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if inm.is_some() {
        st.counters.conditional.fetch_add(1, Ordering::SeqCst);
    }
    if headers
        .get(header::IF_MODIFIED_SINCE)
        .is_some_and(|v| v.as_bytes() == LAST_MODIFIED.as_bytes())
    {
        st.counters.if_modified_since.fetch_add(1, Ordering::SeqCst);
    }
    let mode = st.mode.lock().unwrap().clone();
    match mode {
        Mode::Serve(body) => {
            let tag = etag(&body);
            if inm.as_deref() == Some(tag.as_str()) {
                st.counters.not_modified.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response();
            }
            (
                StatusCode::OK,
                [
                    (header::ETAG, tag),
                    (header::LAST_MODIFIED, LAST_MODIFIED.into()),
                ],
                body,
            )
                .into_response()
        }
        Mode::Garbage(bytes) => (StatusCode::OK, bytes).into_response(),
        Mode::Down => (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response(),
        Mode::Chunked(body) => {
            let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                body.as_bytes().chunks(64).map(|c| Ok(c.to_vec())).collect();
            let stream = futures_util::stream::iter(chunks);
            (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
        }
        Mode::Slow(d, body) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, body).into_response()
        }
        Mode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
    }
}

impl ListServer {
    pub fn start(rt: &tokio::runtime::Runtime, mode: Mode) -> ListServer {
        let mode = Arc::new(Mutex::new(mode));
        let counters = Arc::new(Counters::default());
        let st = ListState {
            mode: mode.clone(),
            counters: counters.clone(),
        };
        let app = axum::Router::new()
            .route("/list.txt", axum::routing::get(serve_list))
            .with_state(st);
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        ListServer {
            addr,
            mode,
            counters,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/list.txt", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }
    pub fn not_modified(&self) -> u64 {
        self.counters.not_modified.load(Ordering::SeqCst)
    }
    pub fn if_modified_since(&self) -> u64 {
        self.counters.if_modified_since.load(Ordering::SeqCst)
    }
    pub fn conditional(&self) -> u64 {
        self.counters.conditional.load(Ordering::SeqCst)
    }

    /// Stops listening (the feed becomes unreachable).
    pub fn shut(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
