//! The accept loop: HTTP/1.1 via hyper with connection limits that a hostile client cannot
//! outlast, and graceful shutdown that also ends open event streams.
//!
//! Per connection (see [`ConnIo`] and [`ConnService`]):
//! * a **write timeout**: a client that accepts no bytes of a response for `write_timeout` is
//!   disconnected (a client that pipelines requests and never reads cannot hold its slot);
//! * a **header-read timeout** from the first byte of a request head (and, for a new
//!   connection, from accept) to the complete head (slow-loris);
//! * an **idle timeout** for keep-alive connections waiting for their next request;
//! * a **request cap**: after `max_requests_per_connection` requests the response carries
//!   `Connection: close` and pipelined requests beyond it are not read;
//! * hyper's own rejections of malformed heads (400, 414, 431) are rewritten into the API's
//!   JSON error shape on their way out.
//!
//! Per server: at most `max_connections` connections, at most `max_connections_per_client`
//! of them from one client address (an IPv6 client is its /64). A connection over either cap
//! gets one of `probe_connections` reserved slots when one is free: such a connection serves
//! one request, only `/healthz` and `/readyz`, with short deadlines, so probes answer while
//! the ordinary slots are taken. Over that too, the connection is answered with a JSON 503 /
//! 429 and closed at once. Every refusal and every forced close is counted.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use super::{router, ApiError, ApiOptions, AppState};
use crate::metrics::{self, Counter, Gauge};

/// How long shutdown waits for in-flight requests before giving up on them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again, so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Deadlines of a probe-only connection (head read and write). A health checker sends one
/// small request and reads one small answer; anything slower is not a probe and must give the
/// reserved slot back quickly.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Paths a probe-only connection may request.
const PROBE_PATHS: &[&str] = &["/healthz", "/readyz"];
/// Kernel send buffer of an API connection (Linux doubles the value for its bookkeeping).
/// Autotuning would grow it to `tcp_wmem` max (4 MiB by default) for a client that never
/// reads — 4 GiB of kernel memory for 1,024 such connections; 256 KiB each still moves
/// 25 MB/s at a 10 ms round trip, plenty for JSON pages and list exports.
pub const SEND_BUFFER_BYTES: usize = 128 * 1024;
/// IPv6 clients are counted per /64: one host usually holds a whole /64, so counting single
/// addresses would let one client open a connection from each of 2^64 addresses.
const V6_CLIENT_PREFIX: u8 = 64;

/// Serves the API on `listener` until `shutdown` resolves; then stops accepting, ends event
/// streams and waits (at most [`SHUTDOWN_GRACE`]) for in-flight requests.
pub async fn serve<F>(listener: TcpListener, state: AppState, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let opts = state.options().clone();
    let app = router(state.clone());
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Slots::new(&opts));
    let m = ConnMetrics::get();
    if let Ok(addr) = listener.local_addr() {
        state.set_listen_addr(addr);
        tracing::info!(%addr, "API listening");
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Accept always, even when every slot is taken: a connection over the caps is answered
        // (reserved probe slot or an immediate JSON refusal) instead of waiting unseen in the
        // kernel's accept queue behind connections that may never finish.
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER_BYTES);

        let (slot, mode) = match slots.admit(peer.ip()) {
            Ok(x) => x,
            Err(refusal) => {
                refuse(stream, refusal, &opts);
                continue;
            }
        };
        let limits = match mode {
            Mode::Normal => Limits::from_options(&opts),
            Mode::ProbeOnly => {
                m.probe.inc();
                Limits::probe(&opts)
            }
        };
        let conn = Arc::new(ConnState::default());
        let svc = ConnService {
            app: app.clone(),
            conn: conn.clone(),
            mode,
            max_requests: limits.max_requests,
        };
        let io = TokioIo::new(ConnIo::new(stream, conn, limits));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // Deadlines are [`ConnIo`]'s (it also knows when a connection is merely idle).
            .header_read_timeout(None)
            .keep_alive(true)
            // One flat buffer per write, so [`ConnIo`] can recognise hyper's own error answers.
            .writev(false)
            .max_buf_size(hyper_buf_size(&opts));
        let conn = graceful.watch(builder.serve_connection(io, svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    state.begin_shutdown();
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("shutdown: gave up waiting for open connections");
        }
    }
    Ok(())
}

/// hyper's read buffer: room for the largest head we accept (so the JSON 414/431 of the
/// router's own checks answer it) and a little more; a head that overflows it is refused by
/// hyper with 431, which [`ConnIo`] turns into JSON. Pipelined requests beyond the buffer are
/// not read until the ones before are answered.
fn hyper_buf_size(o: &ApiOptions) -> usize {
    /// hyper refuses buffers below 8 KiB.
    const HYPER_MIN_BUF: usize = 8192;
    /// Request line and header framing beyond the URI and the header bytes counted.
    const HEAD_SLACK: usize = 4096;
    (o.max_uri_len + o.max_header_bytes + HEAD_SLACK).max(HYPER_MIN_BUF)
}

// ---------------------------------------------------------------------------------------------
// Admission: connection slots, per-client counts, reserved probe slots
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Normal,
    /// A reserved slot: one request, probe paths only, short deadlines.
    ProbeOnly,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// Every ordinary and reserved slot is taken.
    Capacity,
    /// This client holds its share and the reserved slots are taken.
    PerClient,
}

/// The client key a connection is counted under.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => ipnet::Ipv6Net::new(v6, V6_CLIENT_PREFIX)
            .map(|n| IpAddr::V6(n.network()))
            .unwrap_or(IpAddr::V6(v6)),
    }
}

struct Slots {
    max: usize,
    per_client: usize,
    probe_max: usize,
    inner: Mutex<SlotCounts>,
}

#[derive(Default)]
struct SlotCounts {
    normal: usize,
    probe: usize,
    /// Open connections per client key. Entries exist only while a connection is open, so the
    /// map holds at most `max + probe_max` keys.
    clients: HashMap<IpAddr, usize>,
}

/// A held slot; dropping it (the connection ended) gives the slot back.
struct Slot {
    slots: Arc<Slots>,
    client: IpAddr,
    mode: Mode,
}

impl Slots {
    fn new(o: &ApiOptions) -> Self {
        Slots {
            max: o.max_connections.max(1),
            per_client: o.max_connections_per_client,
            probe_max: o.probe_connections,
            inner: Mutex::new(SlotCounts::default()),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Slot, Mode), Refusal> {
        let client = client_key(ip);
        let m = ConnMetrics::get();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let held = g.clients.get(&client).copied().unwrap_or(0);
        let client_ok = self.per_client == 0 || held < self.per_client;
        let mode = if client_ok && g.normal < self.max {
            g.normal += 1;
            Mode::Normal
        } else if g.probe < self.probe_max {
            g.probe += 1;
            Mode::ProbeOnly
        } else if client_ok {
            m.refused_capacity.inc();
            return Err(Refusal::Capacity);
        } else {
            m.refused_per_client.inc();
            return Err(Refusal::PerClient);
        };
        *g.clients.entry(client).or_insert(0) += 1;
        m.open
            .set(i64::try_from(g.normal + g.probe).unwrap_or(i64::MAX));
        drop(g);
        Ok((
            Slot {
                slots: self.clone(),
                client,
                mode,
            },
            mode,
        ))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut g = self.slots.inner.lock().unwrap_or_else(|e| e.into_inner());
        match self.mode {
            Mode::Normal => g.normal = g.normal.saturating_sub(1),
            Mode::ProbeOnly => g.probe = g.probe.saturating_sub(1),
        }
        if let Some(n) = g.clients.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                g.clients.remove(&self.client);
            }
        }
        ConnMetrics::get()
            .open
            .set(i64::try_from(g.normal + g.probe).unwrap_or(i64::MAX));
    }
}

/// Answers a connection that got no slot with a JSON error and closes it, without waiting: the
/// answer fits an empty socket buffer, and a client that cannot take it gets nothing.
fn refuse(stream: TcpStream, why: Refusal, o: &ApiOptions) {
    let err = match why {
        Refusal::Capacity => ApiError::Unavailable {
            code: "overloaded",
            message: format!(
                "the server is at its connection limit ({}); retry shortly",
                o.max_connections
            ),
        },
        Refusal::PerClient => ApiError::TooManyConnections(o.max_connections_per_client),
    };
    let _ = stream.try_write(&err.to_http_bytes());
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// Per-connection state shared by the IO wrapper and the service
// ---------------------------------------------------------------------------------------------

/// What the service tells the IO layer: whether a request is being served (from its head to the
/// end of its response body) and how many have finished.
#[derive(Default)]
struct ConnState {
    in_flight: AtomicUsize,
    completed: AtomicU64,
    started: AtomicU64,
    /// The connection task, woken when a request ends so that the idle deadline starts even
    /// if hyper is already waiting for the socket.
    waker: futures_util::task::AtomicWaker,
}

/// Held by a response body; dropping it (hyper wrote or abandoned the body) ends the request.
struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.completed.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.waker.wake();
    }
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    write_timeout: Duration,
    header_timeout: Duration,
    idle_timeout: Duration,
    max_requests: u64,
}

impl Limits {
    fn from_options(o: &ApiOptions) -> Self {
        Limits {
            write_timeout: o.write_timeout,
            header_timeout: o.header_read_timeout,
            idle_timeout: o.idle_timeout,
            max_requests: o.max_requests_per_connection.max(1),
        }
    }
    fn probe(o: &ApiOptions) -> Self {
        Limits {
            write_timeout: o.write_timeout.min(PROBE_TIMEOUT),
            header_timeout: o.header_read_timeout.min(PROBE_TIMEOUT),
            idle_timeout: o.idle_timeout.min(PROBE_TIMEOUT),
            max_requests: 1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The service: request cap, probe-only mode, in-flight tracking
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct ConnService {
    app: axum::Router,
    conn: Arc<ConnState>,
    mode: Mode,
    max_requests: u64,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<GuardedBody>;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.conn.in_flight.fetch_add(1, Ordering::AcqRel);
        let guard = InFlight(self.conn.clone());
        let n = self.conn.started.fetch_add(1, Ordering::AcqRel) + 1;
        let last = n >= self.max_requests;
        let app = self.app.clone();
        let mode = self.mode;
        Box::pin(async move {
            let probe_ok = PROBE_PATHS.contains(&req.uri().path());
            let mut resp = if mode == Mode::ProbeOnly && !probe_ok {
                axum::response::IntoResponse::into_response(ApiError::Unavailable {
                    code: "overloaded",
                    message: "the server is at its connection limit; only /healthz and /readyz \
                              are answered on this connection; retry shortly"
                        .into(),
                })
            } else {
                match app.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            };
            if last {
                if mode == Mode::Normal {
                    ConnMetrics::get().closed_request_cap.inc();
                }
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(resp.map(|body| GuardedBody {
                inner: body,
                _guard: guard,
            }))
        })
    }
}

/// A response body that ends its request's in-flight mark when hyper drops it.
struct GuardedBody {
    inner: Body,
    _guard: InFlight,
}

impl hyper::body::Body for GuardedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The IO wrapper: deadlines and JSON for hyper's own error answers
// ---------------------------------------------------------------------------------------------

/// Why the connection layer closed a connection (the metric's `reason` label).
#[derive(Clone, Copy)]
enum Closed {
    Write,
    Header,
    Idle,
}

/// The TCP stream as hyper sees it, with the connection's read and write deadlines.
struct ConnIo {
    inner: TcpStream,
    conn: Arc<ConnState>,
    limits: Limits,
    /// `completed` when last looked at: a change means a request finished (the connection is
    /// idle now, until the next head starts).
    seen_completed: u64,
    /// No request has been completed yet (a fresh connection gets the head deadline for its
    /// first byte too).
    fresh: bool,
    /// When the connection last became idle (accept, or the end of a response).
    idle_since: Instant,
    /// First byte of the current request head, read while nothing was in flight.
    head_since: Option<Instant>,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_deadline: Option<Instant>,
    /// Our replacement for an error answer hyper wrote itself, still to send (bytes, sent).
    replacement: Option<(Vec<u8>, usize)>,
    /// hyper's own error answer is being swallowed (it was replaced).
    swallowing: bool,
    /// `started` at the last write: writes after a new service call belong to its response.
    written_for: u64,
}

impl ConnIo {
    fn new(inner: TcpStream, conn: Arc<ConnState>, limits: Limits) -> Self {
        let now = Instant::now();
        ConnIo {
            inner,
            conn,
            limits,
            seen_completed: 0,
            fresh: true,
            idle_since: now,
            head_since: None,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_deadline: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_deadline: None,
            replacement: None,
            swallowing: false,
            written_for: 0,
        }
    }

    fn idle(&self) -> bool {
        self.conn.in_flight.load(Ordering::Acquire) == 0
    }

    fn sync_requests(&mut self) {
        let c = self.conn.completed.load(Ordering::Acquire);
        if c != self.seen_completed {
            self.seen_completed = c;
            self.fresh = false;
            self.head_since = None;
            self.idle_since = Instant::now();
        }
    }

    /// The read deadline that applies now, and what it is.
    fn read_deadline_now(&self) -> Option<(Instant, Closed)> {
        if !self.idle() || self.write_deadline.is_some() {
            // A request is being served (its handler has the request deadline), or an answer
            // is stuck in the socket (the write timeout governs).
            return None;
        }
        match self.head_since {
            Some(t) => Some((t + self.limits.header_timeout, Closed::Header)),
            None if self.fresh => {
                Some((self.idle_since + self.limits.header_timeout, Closed::Header))
            }
            None => Some((self.idle_since + self.limits.idle_timeout, Closed::Idle)),
        }
    }

    /// A write made progress: the write deadline is off, and an idle period starts from here
    /// (an answer the client was slow to take does not count as idle time).
    fn wrote(&mut self) {
        self.write_deadline = None;
        if self.idle() && self.head_since.is_none() {
            self.idle_since = Instant::now();
        }
    }

    fn poll_write_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.write_deadline.is_none() {
            let d = Instant::now() + self.limits.write_timeout;
            self.write_deadline = Some(d);
            self.write_timer.as_mut().reset(d);
        }
        if self.write_timer.as_mut().poll(cx).is_ready() {
            return Err(timed_out(Closed::Write));
        }
        Ok(())
    }

    /// Sends what is left of a replacement answer.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = self.replacement.as_mut() {
            let Some(rest) = bytes.get(*sent..).filter(|r| !r.is_empty()) else {
                self.replacement = None;
                break;
            };
            match Pin::new(&mut self.inner).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *sent += n;
                    self.write_deadline = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    self.poll_write_deadline(cx)?;
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(()))
    }
}

fn timed_out(why: Closed) -> io::Error {
    let m = ConnMetrics::get();
    let what = match why {
        Closed::Write => {
            m.closed_write.inc();
            "write timeout: the client accepts no data"
        }
        Closed::Header => {
            m.closed_header.inc();
            "header-read timeout"
        }
        Closed::Idle => {
            m.closed_idle.inc();
            "idle timeout"
        }
    };
    io::Error::new(io::ErrorKind::TimedOut, what)
}

/// The JSON answer that replaces hyper's own (empty-bodied) error answer with `status`.
fn replacement_for(status: u16) -> Vec<u8> {
    let err = match status {
        414 => ApiError::UriTooLong(None),
        431 => ApiError::HeadersTooLarge(None),
        _ => ApiError::bad(
            "malformed_request",
            "the request is not valid HTTP/1.1 (request line or a header is malformed)",
        ),
    };
    err.to_http_bytes()
}

/// The status of an answer hyper wrote itself: a 4xx head with `content-length: 0` and no
/// `content-type` (every answer of the router carries a type and, for errors, a JSON body).
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    if !(400..500).contains(&status) {
        return None;
    }
    let end = memchr::memmem::find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(buf.get(..end)?).to_ascii_lowercase();
    (head.contains("\r\ncontent-length: 0") && !head.contains("\r\ncontent-type:"))
        .then_some(status)
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = &mut *self;
        me.sync_requests();
        let before = buf.filled().len();
        match Pin::new(&mut me.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && me.idle() && me.head_since.is_none() {
                    me.head_since = Some(Instant::now());
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                me.conn.waker.register(cx.waker());
                let Some((deadline, why)) = me.read_deadline_now() else {
                    me.read_deadline = None;
                    return Poll::Pending;
                };
                if me.read_deadline != Some(deadline) {
                    me.read_deadline = Some(deadline);
                    me.read_timer.as_mut().reset(deadline);
                }
                if me.read_timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(timed_out(why)));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = &mut *self;
        if me.swallowing {
            return Poll::Ready(Ok(buf.len()));
        }
        // No service call since the last response and nothing in flight, yet a response head
        // without a body: that is hyper's own answer to a head it could not parse. Replace it
        // with the API's JSON error of the same status.
        let started = me.conn.started.load(Ordering::Acquire);
        let new_call = started != me.written_for;
        me.written_for = started;
        if !new_call && me.idle() && me.replacement.is_none() {
            if let Some(status) = hyper_error_status(buf) {
                me.replacement = Some((replacement_for(status), 0));
                me.swallowing = true;
                return match me.poll_replacement(cx) {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Ready(Ok(buf.len())),
                };
            }
        }
        match Pin::new(&mut me.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                me.wrote();
                Poll::Ready(r)
            }
            Poll::Pending => {
                me.poll_write_deadline(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        std::task::ready!(me.poll_replacement(cx))?;
        match Pin::new(&mut me.inner).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                me.poll_write_deadline(cx)?;
                Poll::Pending
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let me = &mut *self;
        std::task::ready!(me.poll_replacement(cx))?;
        match Pin::new(&mut me.inner).poll_shutdown(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => {
                me.poll_write_deadline(cx)?;
                Poll::Pending
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

struct ConnMetrics {
    open: Gauge,
    probe: Counter,
    refused_capacity: Counter,
    refused_per_client: Counter,
    closed_write: Counter,
    closed_header: Counter,
    closed_idle: Counter,
    closed_request_cap: Counter,
}

impl ConnMetrics {
    fn get() -> &'static ConnMetrics {
        static M: OnceLock<ConnMetrics> = OnceLock::new();
        M.get_or_init(|| {
            const REFUSED: &str = "poolwatch_api_connections_refused_total";
            const REFUSED_HELP: &str =
                "API connections answered with an error at once, by cap (capacity, per_client).";
            const CLOSED: &str = "poolwatch_api_connections_closed_total";
            const CLOSED_HELP: &str = "API connections closed by a connection limit, by reason \
                 (write_timeout, header_timeout, idle_timeout, request_cap).";
            ConnMetrics {
                open: metrics::gauge(
                    "poolwatch_api_connections_open",
                    "API connections open (ordinary and reserved probe slots).",
                    &[],
                ),
                probe: metrics::counter(
                    "poolwatch_api_probe_connections_total",
                    "API connections over a cap served on a reserved probe-only slot.",
                    &[],
                ),
                refused_capacity: metrics::counter(REFUSED, REFUSED_HELP, &[("cap", "capacity")]),
                refused_per_client: metrics::counter(
                    REFUSED,
                    REFUSED_HELP,
                    &[("cap", "per_client")],
                ),
                closed_write: metrics::counter(CLOSED, CLOSED_HELP, &[("reason", "write_timeout")]),
                closed_header: metrics::counter(
                    CLOSED,
                    CLOSED_HELP,
                    &[("reason", "header_timeout")],
                ),
                closed_idle: metrics::counter(CLOSED, CLOSED_HELP, &[("reason", "idle_timeout")]),
                closed_request_cap: metrics::counter(
                    CLOSED,
                    CLOSED_HELP,
                    &[("reason", "request_cap")],
                ),
            }
        })
    }
}

/// Registers the connection metrics so `/metrics` lists them from the start.
pub(super) fn register_metrics() {
    let _ = ConnMetrics::get();
}

#[cfg(test)]
mod tests;
