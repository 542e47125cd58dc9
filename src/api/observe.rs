//! Per-request middleware: the deadline, security headers, request counters and latency
//! histograms. Labels are the route *template* (`/api/v1/hosts/{ip}`), the method and the
//! status — fixed vocabularies; never an address, a name or a raw path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Latency histogram bucket bounds, seconds (Prometheus `le`).
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Route label for requests no route matched (404s of unknown paths).
const UNMATCHED: &str = "unmatched";

#[derive(Default)]
struct Hist {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// Request counters and latency, rendered after `metrics::render()` on `/metrics`.
#[derive(Default)]
pub(super) struct HttpMetrics {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (route, method, status) → count.
    requests: BTreeMap<(String, &'static str, u16), u64>,
    latency: BTreeMap<String, Hist>,
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl HttpMetrics {
    fn record(&self, route: &str, method: &'static str, status: u16, secs: f64) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *g.requests
            .entry((route.to_string(), method, status))
            .or_insert(0) += 1;
        let h = g.latency.entry(route.to_string()).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                if let Some(b) = h.buckets.get_mut(i) {
                    *b += 1;
                }
            }
        }
    }

    pub(super) fn render(&self, out: &mut String) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP poolwatch_http_requests_total HTTP requests by route template, method and status."
        );
        let _ = writeln!(out, "# TYPE poolwatch_http_requests_total counter");
        for ((route, method, status), n) in &g.requests {
            let _ = writeln!(
                out,
                "poolwatch_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP poolwatch_http_request_duration_seconds Time to produce the response head, by route template."
        );
        let _ = writeln!(
            out,
            "# TYPE poolwatch_http_request_duration_seconds histogram"
        );
        for (route, h) in &g.latency {
            for (bound, n) in BUCKETS.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "poolwatch_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "poolwatch_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "poolwatch_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "poolwatch_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
    }
}

/// Applies the request deadline, adds `nosniff`, and records the request.
pub(super) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Route templates are registered by us, so they are a fixed set; raw paths never are.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| UNMATCHED.to_string());
    let method = method_label(req.method());
    let limit = state.options().request_timeout;
    let mut resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout(limit.as_secs()).into_response(),
    };
    resp.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    state.0.http.record(&route, method, status, secs);
    tracing::debug!(method, route = %route, status, ms = secs * 1000.0, "request");
    resp
}

/// Refuses, before any handler or body read: a request target longer than `max_uri_len` (414),
/// header fields larger than `max_header_bytes` in total (431), and a declared
/// `Content-Length` over `max_body` (413 at once — no `100 Continue` is sent, and the
/// connection closes so the unread body cannot be taken for the next request).
pub(super) async fn head_limits(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let o = state.options();
    let uri_len = req
        .uri()
        .path_and_query()
        .map_or(req.uri().path().len(), |pq| pq.as_str().len());
    if uri_len > o.max_uri_len {
        return ApiError::UriTooLong(Some(o.max_uri_len)).into_response();
    }
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_bytes > o.max_header_bytes {
        return ApiError::HeadersTooLarge(Some(o.max_header_bytes)).into_response();
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > o.max_body as u64) {
        let mut resp = ApiError::PayloadTooLarge(o.max_body).into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    next.run(req).await
}
