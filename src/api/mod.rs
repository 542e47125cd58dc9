//! Stage `api`: the REST service (axum 0.8 on tokio). The only module that knows HTTP.
//!
//! * [`router`] builds the versioned routes (`/api/v1/…`) plus `/healthz`, `/readyz`, `/metrics`;
//!   [`serve`] runs them on a listener with connection limits, header-read deadlines and
//!   graceful shutdown.
//! * Detections come from a [`Backend`] (the sled store implements it); the API calls it on the
//!   blocking pool, never on the async workers.
//! * Lists come from the shared [`SharedBlocklists`]; the live feed from a broadcast channel of
//!   [`DetectionEvent`]s.
//! * Access: [`auth::ReadAccess`] / [`auth::AdminAccess`] extractors, constant-time token checks.
//! * Every error is `{"error":{"code":…,"message":…}}` ([`ApiError`]).
//!
//! Every route is registered through one table ([`route_table`]) that the OpenAPI document is
//! tested against, so the two cannot drift apart.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter};
use axum::Router;
use tokio::sync::{broadcast, watch};

use crate::matcher::{ListManager, SharedBlocklists};
use crate::model::{Detection, Timestamp};
use crate::query::{
    DetectionEvent, DetectionFilter, HostTimeline, NewSuppression, Page, PoolIp, PoolSummary,
    Suppression,
};

mod auth;
mod error;
mod handlers;
mod hunt;
mod lists;
mod observe;
mod openapi;
mod outputs;
mod page_cache;
mod params;
mod pool_ips;
mod server;
mod stream;
mod summary;
mod ui;

pub use auth::{constant_time_eq, AdminAccess, ReadAccess, Tokens, MAX_TOKEN_LEN, MIN_TOKEN_LEN};
pub use error::ApiError;
pub use handlers::{parse_detection_query, CheckResult, DetectionQuery};
pub use openapi::openapi_document;
pub use server::serve;
pub use summary::{MAX_SUMMARY_DETECTIONS, MAX_TIMELINE_BUCKETS};
pub use ui::CONTENT_SECURITY_POLICY;

/// Default number of detections per page.
pub const DEFAULT_PAGE_LIMIT: usize = 50;
/// Largest page: bounds the work and the response size of one request.
pub const MAX_PAGE_LIMIT: usize = 1000;
/// Default / largest number of detections in a host timeline.
pub const DEFAULT_HOST_LIMIT: usize = 100;
pub const MAX_HOST_LIMIT: usize = 1000;
/// Longest opaque cursor accepted; the store's cursors are far shorter.
pub const MAX_CURSOR_LEN: usize = 512;
/// Longest detection / suppression id accepted before it is even looked up (the store's bound).
pub use crate::query::MAX_ID_LEN;
/// Most query parameters in one request (each is parsed and checked).
pub const MAX_QUERY_PARAMS: usize = 32;
/// Longest suppression reason, in characters (the store's bound).
pub use crate::query::MAX_REASON_LEN;
/// Default request-body limit: big enough for a large user list upload (the list routes),
/// small enough that a flood of bodies cannot exhaust memory.
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;
/// Largest configurable body limit.
pub const MAX_MAX_BODY: usize = 256 * 1024 * 1024;
/// Smallest configurable body limit: below this not even a suppression fits.
pub const MIN_MAX_BODY: usize = 1024;
/// Default per-request deadline (slow clients and slow backends time out).
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Longest configurable per-request deadline.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 3600;
/// Concurrent SSE clients; each holds a broadcast receiver and a connection.
pub const DEFAULT_MAX_STREAMS: usize = 256;
/// SSE keep-alive comment interval: below common proxy idle timeouts (60 s).
pub const DEFAULT_SSE_KEEPALIVE: Duration = Duration::from_secs(15);
/// Concurrent connections served; a connection over the cap gets a reserved probe slot or an
/// immediate JSON 503. Each costs a task, two socket buffers and hyper's buffers (≈ 100 KiB).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Largest `max_connections` accepted: beyond it the file-descriptor limit and memory, not the
/// cap, decide.
pub const MAX_MAX_CONNECTIONS: usize = 65_536;
/// Connections one client address (an IPv6 /64) may hold: an eighth of the slots, so one
/// client cannot take them all; 0 turns the per-client cap off (behind a reverse proxy every
/// connection comes from the proxy's address; the proxy limits clients itself).
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 128;
/// Slots reserved for `/healthz` and `/readyz` when the ordinary ones are taken: enough for a
/// few health checkers probing in parallel; each such connection serves one probe request.
pub const DEFAULT_PROBE_CONNECTIONS: usize = 32;
/// Largest `probe_connections` accepted.
pub const MAX_PROBE_CONNECTIONS: usize = 1024;
/// Deadline for a client to send a complete request head (slow-loris protection); a new
/// connection must also send its first byte within it.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A response write that makes no progress for this long ends the connection: a client that
/// stops reading (or pipelines requests and never reads) cannot hold its slot. A client on a
/// slow link still drains a socket buffer well within it.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a keep-alive connection may wait for its next request. Above common proxy and
/// client pools' own idle timeouts (nginx `keepalive_timeout` for upstreams: 60 s), so the
/// client side closes first and never reuses a connection the server has just closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Requests served on one connection (pipelined or not) before it is closed with
/// `Connection: close`: bounds the work one connection can queue without reading answers.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 1000;
/// Longest request target (path and query) accepted; 414 beyond. Real requests are far
/// shorter (at most [`MAX_QUERY_PARAMS`] short parameters).
pub const DEFAULT_MAX_URI_LEN: usize = 8192;
/// Largest total size of a request's header fields (names and values); 431 beyond. A bearer
/// token and the usual browser headers fit in a few KiB.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Bounds of the connection deadlines accepted by the configuration (seconds).
pub const MAX_CONN_TIMEOUT_SECS: u64 = 3600;
/// Earliest time a time parameter (`since`, `until`, `expires`) may name: the Unix epoch. No
/// observation predates it, and negative stamps only come from typos.
pub const MIN_API_TIME: Timestamp = Timestamp(0);
/// Latest time a time parameter may name: 9999-12-31T23:59:59.999999Z. RFC 3339 has four-digit
/// years, so a later stamp cannot be written back out (nor stored and read again).
pub const MAX_API_TIME: Timestamp = Timestamp(253_402_300_799_999_999);

/// A failure of the detection backend. `BadCursor` is the client's fault (400); `Other` is ours
/// (logged, generic 500).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    #[error("bad cursor: {0}")]
    BadCursor(String),
    #[error("{0}")]
    Other(String),
}

/// Where detections, hosts, pools and suppressions come from: implemented by `store::Store`.
/// Methods block (sled); the API calls them through `tokio::task::spawn_blocking`.
pub trait Backend: Send + Sync + 'static {
    fn list_detections(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Detection>, BackendError>;
    /// The same page with each detection as its JSON encoding (what `GET /detections` sends).
    /// A backend that stores detections encoded hands out the stored bytes (`store::Store`:
    /// nothing decoded or encoded per request); the default encodes [`Backend::list_detections`].
    fn list_detections_json(
        &self,
        f: &DetectionFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<Vec<u8>>, BackendError> {
        let page = self.list_detections(f, limit, cursor)?;
        let mut items = Vec::with_capacity(page.items.len());
        for d in &page.items {
            items.push(serde_json::to_vec(d).map_err(|e| BackendError::Other(e.to_string()))?);
        }
        Ok(Page {
            items,
            next_cursor: page.next_cursor,
        })
    }
    /// A counter that changes whenever a detection page could change, read without blocking;
    /// the API caches encoded pages under it ([`page_cache`]). `None` (the default): the
    /// backend cannot tell, and every request is answered afresh.
    fn detections_generation(&self) -> Option<u64> {
        None
    }
    fn get_detection(&self, id: &str) -> Result<Option<Detection>, BackendError>;
    fn host_timeline(&self, ip: IpAddr, limit: usize) -> Result<HostTimeline, BackendError>;
    fn pools(&self) -> Result<Vec<PoolSummary>, BackendError>;
    fn add_suppression(&self, s: NewSuppression) -> Result<Suppression, BackendError>;
    fn list_suppressions(&self) -> Result<Vec<Suppression>, BackendError>;
    fn delete_suppression(&self, id: &str) -> Result<bool, BackendError>;
    fn pool_ips(&self, now: Timestamp) -> Result<Vec<PoolIp>, BackendError>;
}

/// Limits and tokens of the HTTP service.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    pub tokens: Tokens,
    /// Largest request body (413 beyond).
    pub max_body: usize,
    /// Deadline for producing a response (408 beyond); streams are exempt once started.
    pub request_timeout: Duration,
    pub sse_keepalive: Duration,
    pub max_streams: usize,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// Per client address (IPv6: per /64); 0 = no per-client cap.
    pub max_connections_per_client: usize,
    /// Reserved probe-only slots beyond `max_connections`.
    pub probe_connections: usize,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_requests_per_connection: u64,
    pub max_uri_len: usize,
    pub max_header_bytes: usize,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            tokens: Tokens::default(),
            max_body: DEFAULT_MAX_BODY,
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            sse_keepalive: DEFAULT_SSE_KEEPALIVE,
            max_streams: DEFAULT_MAX_STREAMS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            probe_connections: DEFAULT_PROBE_CONNECTIONS,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_requests_per_connection: DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            max_uri_len: DEFAULT_MAX_URI_LEN,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Everything the handlers share. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    backend: Arc<dyn Backend>,
    blocklists: SharedBlocklists,
    events: broadcast::Sender<DetectionEvent>,
    options: ApiOptions,
    ready: AtomicBool,
    /// Flipped to `true` when shutdown starts: open event streams end so that connections drain.
    closing: watch::Sender<bool>,
    streams: AtomicUsize,
    http: observe::HttpMetrics,
    /// Encoded `GET /detections` pages of the current store generation.
    pages: page_cache::PageCache,
    /// The list manager behind the list-write and feed routes (set by [`AppState::with_lists`]).
    lists: OnceLock<Arc<ListManager>>,
    /// The alert sinks behind `GET /api/v1/outputs` (set by [`AppState::with_outputs`]).
    outputs: OnceLock<crate::output::Outputs>,
    hunter: OnceLock<Arc<dyn crate::ports::HuntQuery>>,
    /// The address [`serve`] listens on, for the OpenAPI `servers` entry.
    listen: OnceLock<std::net::SocketAddr>,
    /// The OpenAPI document as served (with `servers` set), rendered once.
    openapi: OnceLock<Option<bytes::Bytes>>,
    /// The fleet-wide list version this node runs (a cluster node; `/readyz` reports it).
    list_version: OnceLock<Arc<std::sync::atomic::AtomicU64>>,
}

impl AppState {
    /// A new state, **not ready** (`/readyz` answers 503) until [`AppState::set_ready`].
    pub fn new(
        backend: Arc<dyn Backend>,
        blocklists: SharedBlocklists,
        events: broadcast::Sender<DetectionEvent>,
        options: ApiOptions,
    ) -> Self {
        let (closing, _) = watch::channel(false);
        AppState(Arc::new(Shared {
            backend,
            blocklists,
            events,
            options,
            ready: AtomicBool::new(false),
            closing,
            streams: AtomicUsize::new(0),
            http: observe::HttpMetrics::default(),
            pages: page_cache::PageCache::default(),
            lists: OnceLock::new(),
            outputs: OnceLock::new(),
            hunter: OnceLock::new(),
            listen: OnceLock::new(),
            openapi: OnceLock::new(),
            list_version: OnceLock::new(),
        }))
    }

    /// Attaches the list manager that serves the list-write, feed and reload routes (without
    /// one they answer 503 `lists_unavailable`). Pass the `SharedBlocklists` that
    /// [`ListManager::open`] returned to [`AppState::new`], so `/check` sees every update.
    /// Call before serving; a second call is ignored.
    pub fn with_lists(self, manager: Arc<ListManager>) -> Self {
        if !Arc::ptr_eq(manager.shared(), &self.0.blocklists) {
            tracing::warn!("the list manager does not own the AppState's blocklists; /check will not see list updates");
        }
        let _ = self.0.lists.set(manager);
        self
    }

    /// Attaches the alert sinks whose status `GET /api/v1/outputs` reports. A second call is
    /// ignored.
    pub fn with_outputs(self, outputs: crate::output::Outputs) -> Self {
        let _ = self.0.outputs.set(outputs);
        self
    }

    /// The list manager, when one is attached.
    /// Answers `GET /api/v1/hunt` from the history (without it the route answers 503).
    pub fn with_hunter(self, hunter: Arc<dyn crate::ports::HuntQuery>) -> Self {
        let _ = self.0.hunter.set(hunter);
        self
    }

    /// Reports the list version this node runs in `/readyz` (`list_version`; a cluster node
    /// sets it). A second call is ignored.
    pub fn with_list_version(self, version: Arc<std::sync::atomic::AtomicU64>) -> Self {
        let _ = self.0.list_version.set(version);
        self
    }

    pub fn list_version(&self) -> Option<u64> {
        self.0.list_version.get().map(|v| v.load(Ordering::Acquire))
    }

    pub fn hunter(&self) -> Option<Arc<dyn crate::ports::HuntQuery>> {
        self.0.hunter.get().cloned()
    }

    pub fn lists(&self) -> Option<&Arc<ListManager>> {
        self.0.lists.get()
    }

    /// Marks the service ready (inputs opened, store loaded) or not.
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire)
    }
    /// The live feed's sender (the pipeline publishes new/upgraded detections here).
    pub fn events(&self) -> &broadcast::Sender<DetectionEvent> {
        &self.0.events
    }
    pub fn blocklists(&self) -> &SharedBlocklists {
        &self.0.blocklists
    }
    pub fn options(&self) -> &ApiOptions {
        &self.0.options
    }
    /// Records the address the API listens on (called by [`serve`]; a second call is ignored).
    pub fn set_listen_addr(&self, addr: std::net::SocketAddr) {
        let _ = self.0.listen.set(addr);
    }
    /// The address the API listens on, once [`serve`] runs.
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.0.listen.get().copied()
    }
    /// The served OpenAPI document (its `servers` names [`AppState::listen_addr`]).
    fn openapi_bytes(&self) -> Option<bytes::Bytes> {
        self.0
            .openapi
            .get_or_init(|| openapi::served_document(self.listen_addr()))
            .clone()
    }
    /// Ends open event streams (called by [`serve`] when shutdown starts).
    pub fn begin_shutdown(&self) {
        self.0.closing.send_replace(true);
    }

    fn tokens(&self) -> &Tokens {
        &self.0.options.tokens
    }
    fn backend(&self) -> Arc<dyn Backend> {
        self.0.backend.clone()
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token ever (health probes, the API description).
    Public,
    /// The read token when one is configured (the admin token also reads).
    Read,
    /// The admin token.
    Admin,
}

/// One registered route: method, path template (axum syntax, `{id}`), access.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
}

/// Builds the router and the table of what it registered, in one place.
struct Table {
    router: Router<AppState>,
    routes: Vec<RouteInfo>,
}

impl Table {
    fn get<H: Handler<T, AppState>, T: 'static>(self, p: &'static str, a: Access, h: H) -> Self {
        self.add(Method::GET, MethodFilter::GET, p, a, h)
    }
    fn post<H: Handler<T, AppState>, T: 'static>(self, p: &'static str, a: Access, h: H) -> Self {
        self.add(Method::POST, MethodFilter::POST, p, a, h)
    }
    fn put<H: Handler<T, AppState>, T: 'static>(self, p: &'static str, a: Access, h: H) -> Self {
        self.add(Method::PUT, MethodFilter::PUT, p, a, h)
    }
    fn delete<H: Handler<T, AppState>, T: 'static>(self, p: &'static str, a: Access, h: H) -> Self {
        self.add(Method::DELETE, MethodFilter::DELETE, p, a, h)
    }

    fn add<H, T>(
        mut self,
        method: Method,
        filter: MethodFilter,
        path: &'static str,
        access: Access,
        h: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.router = self.router.route(path, on(filter, h));
        self.routes.push(RouteInfo {
            method,
            path,
            access,
        });
        self
    }
}

fn build() -> Table {
    use handlers as h;
    use lists as l;
    use Access::*;
    let t = Table {
        router: Router::new(),
        routes: Vec::new(),
    };
    t.get("/healthz", Public, h::healthz)
        .get("/readyz", Public, h::readyz)
        .get("/metrics", Read, h::metrics)
        .get("/api/v1/openapi.json", Public, h::openapi)
        .get("/api/v1/detections", Read, h::list_detections)
        .get("/api/v1/detections/stream", Read, stream::detections_stream)
        .get("/api/v1/detections/{id}", Read, h::get_detection)
        .get("/api/v1/hosts/{ip}", Read, h::host)
        .get("/api/v1/pools", Read, h::pools)
        .get("/api/v1/check", Read, h::check)
        .get("/api/v1/suppressions", Read, h::list_suppressions)
        .post("/api/v1/suppressions", Admin, h::add_suppression)
        .delete("/api/v1/suppressions/{id}", Admin, h::delete_suppression)
        .get("/api/v1/export/pool-ips", Read, pool_ips::export_pool_ips)
        .get("/api/v1/export/{format}", Read, l::export)
        .get("/api/v1/blocklists", Read, l::list_all)
        .post("/api/v1/blocklists/reload", Admin, l::reload)
        .get("/api/v1/blocklists/{name}", Read, l::get_one)
        .put("/api/v1/blocklists/{name}", Admin, l::put_one)
        .delete("/api/v1/blocklists/{name}", Admin, l::delete_one)
        .post("/api/v1/blocklists/{name}/entries", Admin, l::add_entries)
        .delete(
            "/api/v1/blocklists/{name}/entries",
            Admin,
            l::remove_entries,
        )
        .get("/api/v1/feeds", Read, l::list_feeds)
        .post("/api/v1/feeds", Admin, l::add_feed)
        .delete("/api/v1/feeds/{name}", Admin, l::delete_feed)
        .post("/api/v1/feeds/{name}/refresh", Admin, l::refresh_feed)
        .get("/api/v1/summary", Read, summary::summary)
        .get("/api/v1/session", Public, summary::session)
        .get("/api/v1/outputs", Read, outputs::list)
        .get("/api/v1/hunt", Read, hunt::hunt)
}

/// Every route the router serves (method, path template, access), in registration order.
pub fn route_table() -> Vec<RouteInfo> {
    build().routes
}

/// The complete HTTP application: routes, JSON 404/405 fallbacks, head limits (URI length,
/// header size, declared body size), body limit, per-request deadline and request metrics.
pub fn router(state: AppState) -> Router {
    let max_body = state.options().max_body;
    server::register_metrics();
    build()
        .router
        .merge(ui::routes())
        .fallback(h_fallback)
        .method_not_allowed_fallback(h_method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::head_limits,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::observe,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn h_fallback() -> ApiError {
    ApiError::NotFound {
        code: "route_not_found",
        message: "no such route; see /api/v1/openapi.json".into(),
    }
}

async fn h_method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}
