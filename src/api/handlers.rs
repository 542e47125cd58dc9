//! Request handlers: parse and check every input, call the backend on the blocking pool, shape
//! the JSON. Nothing a client sends reaches the backend unchecked.

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    AdminAccess, ApiError, AppState, Backend, BackendError, ReadAccess, DEFAULT_HOST_LIMIT,
    DEFAULT_PAGE_LIMIT, MAX_CURSOR_LEN, MAX_HOST_LIMIT, MAX_ID_LEN, MAX_PAGE_LIMIT, MAX_REASON_LEN,
};
use crate::model::{Category, Timestamp};
use crate::query::{DetectionFilter, NewSuppression};

use super::params::{check_time_range, domain_name, parse_limit, parse_net, pool_entry};
pub(super) use super::params::{params, parse_filter, quote};

// ---------------------------------------------------------------------------------------------
// Probes, metrics, description
// ---------------------------------------------------------------------------------------------

pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.is_ready() {
        match state.list_version() {
            Some(v) => Json(json!({"status": "ready", "list_version": v})).into_response(),
            None => Json(json!({"status": "ready"})).into_response(),
        }
    } else {
        ApiError::Unavailable {
            code: "not_ready",
            message: "starting: inputs and store are not ready yet".into(),
        }
        .into_response()
    }
}

pub async fn metrics(_: ReadAccess, State(state): State<AppState>) -> Response {
    let mut text = crate::metrics::render();
    state.0.http.render(&mut text);
    state.0.pages.render(&mut text);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        text,
    )
        .into_response()
}

pub async fn openapi(State(state): State<AppState>) -> Response {
    match state.openapi_bytes() {
        Some(doc) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            doc,
        )
            .into_response(),
        None => ApiError::Internal.into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Detections, hosts, pools
// ---------------------------------------------------------------------------------------------

/// Every query parameter `GET /api/v1/detections` takes.
const LIST_PARAMS: &[&str] = &[
    "client",
    "pool",
    "stage",
    "min_risk",
    "since",
    "until",
    "suppressed",
    "limit",
    "cursor",
];

/// A checked `GET /api/v1/detections` request.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionQuery {
    pub filter: DetectionFilter,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Parses and checks a raw query string of `GET /api/v1/detections` exactly as the route does
/// (exposed for the fuzz target and tests).
pub fn parse_detection_query(raw: &str) -> Result<DetectionQuery, ApiError> {
    let uri: axum::http::Uri = format!("/?{raw}")
        .parse()
        .map_err(|_| ApiError::bad("invalid_parameter", "malformed query string"))?;
    let q = Query::<Vec<(String, String)>>::try_from_uri(&uri);
    detection_query(&params(q, LIST_PARAMS)?)
}

fn detection_query(p: &BTreeMap<String, String>) -> Result<DetectionQuery, ApiError> {
    let filter = parse_filter(p)?;
    let limit = parse_limit(p, "limit", DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT)?;
    let cursor = match p.get("cursor") {
        Some(c) if c.is_empty() => None,
        Some(c) if c.len() > MAX_CURSOR_LEN || !c.bytes().all(|b| b.is_ascii_graphic()) => {
            return Err(ApiError::bad(
                "bad_cursor",
                "cursor: not a cursor from this API",
            ));
        }
        Some(c) => Some(c.clone()),
        None => None,
    };
    Ok(DetectionQuery {
        filter,
        limit,
        cursor,
    })
}

pub async fn list_detections(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, LIST_PARAMS)?;
    let DetectionQuery {
        filter,
        limit,
        cursor,
    } = detection_query(&p)?;
    // Read before the page is fetched: see `page_cache`.
    let generation = state.backend().detections_generation();
    let key = generation.map(|g| (g, page_key(&p)));
    if let Some((g, k)) = &key {
        if let Some(body) = state.0.pages.get(k, *g) {
            return Ok(json_body(body));
        }
    }
    let page = call(&state, move |b| {
        b.list_detections_json(&filter, limit, cursor.as_deref())
    })
    .await?;
    let body = detection_page(page)?;
    if let Some((g, k)) = key {
        state.0.pages.insert(k, g, body.clone());
    }
    Ok(json_body(body))
}

/// The page cache's key: the checked parameters in their (sorted) order, so the same query
/// written in another order shares one entry.
fn page_key(p: &BTreeMap<String, String>) -> String {
    let mut k = String::new();
    for (name, value) in p {
        k.push_str(name);
        k.push('=');
        k.push_str(value);
        k.push('&');
    }
    k
}

fn json_body(body: bytes::Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// What a stored detection written by this binary carries (older records lack the field and
/// are decoded and encoded again, so every page has today's shape).
const STORED_SCHEMA_MARK: &str = "\"schema_version\":";

/// The `Page<Detection>` JSON (`{"items":[…],"next_cursor":…}`) from encoded detections,
/// byte for byte what serialising the decoded page gives (`tests/it/api_detections.rs`).
fn detection_page(page: crate::query::Page<Vec<u8>>) -> Result<bytes::Bytes, ApiError> {
    let current = format!(
        "{STORED_SCHEMA_MARK}{}",
        crate::model::DETECTION_SCHEMA_VERSION
    );
    let finder = memchr::memmem::Finder::new(current.as_bytes());
    let len: usize = page.items.iter().map(|i| i.len() + 1).sum();
    let mut body = Vec::with_capacity(len + 64);
    body.extend_from_slice(b"{\"items\":[");
    for (n, item) in page.items.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        let current_shape = finder
            .find(item)
            .is_some_and(|i| !item.get(i + current.len()).is_some_and(u8::is_ascii_digit));
        if current_shape {
            body.extend_from_slice(item);
            continue;
        }
        match serde_json::from_slice::<crate::model::Detection>(item)
            .and_then(|d| serde_json::to_writer(&mut body, &d))
        {
            Ok(()) => {}
            Err(e) => {
                tracing::error!(error = %e, "stored detection does not decode");
                return Err(ApiError::Internal);
            }
        }
    }
    body.extend_from_slice(b"],\"next_cursor\":");
    match serde_json::to_writer(&mut body, &page.next_cursor) {
        Ok(()) => {}
        Err(_) => return Err(ApiError::Internal),
    }
    body.push(b'}');
    Ok(body.into())
}

pub async fn get_detection(
    _: ReadAccess,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id, "detection")?;
    let missing = format!("no detection with id {id:?}");
    match call(&state, move |b| b.get_detection(&id)).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::not_found(missing)),
    }
}

pub async fn host(
    _: ReadAccess,
    State(state): State<AppState>,
    ip: Result<Path<String>, PathRejection>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(raw) = ip.map_err(|e| ApiError::invalid("ip", e.body_text()))?;
    // IPv4-mapped IPv6 (`::ffff:192.0.2.10`) names the IPv4 host the store knows.
    let ip: IpAddr = raw
        .parse::<IpAddr>()
        .map(|ip| ip.to_canonical())
        .map_err(|_| ApiError::invalid("ip", format!("{} is not an IP address", quote(&raw))))?;
    let p = params(q, &["limit"])?;
    let limit = parse_limit(&p, "limit", DEFAULT_HOST_LIMIT, MAX_HOST_LIMIT)?;
    let t = call(&state, move |b| b.host_timeline(ip, limit)).await?;
    if t.first_seen.is_none()
        && t.detections.is_empty()
        && t.bindings.is_empty()
        && t.timeline.is_empty()
    {
        return Err(ApiError::not_found(format!(
            "nothing recorded for host {ip}"
        )));
    }
    Ok(Json(t).into_response())
}

pub async fn pools(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let items = call(&state, |b| b.pools()).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

// ---------------------------------------------------------------------------------------------
// /check
// ---------------------------------------------------------------------------------------------

/// The answer of `GET /check` (and `blocklist match --output json`).
#[derive(Debug, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub matched: bool,
    pub entry: Option<String>,
    pub list: Option<String>,
    pub category: Option<Category>,
}

pub async fn check(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, &["name"])?;
    let raw = p
        .get("name")
        .ok_or_else(|| ApiError::invalid("name", "required (e.g. ?name=pool.supportxmr.com)"))?;
    let name = domain_name(raw).map_err(|m| ApiError::invalid("name", m))?;
    let lists = state.blocklists().load();
    // `explain_name`, not `match_name`: an allow entry is the answer too (docs/api.md).
    let hit = lists.explain_name(&name).cloned();
    drop(lists);
    let result = match hit {
        Some(h) => CheckResult {
            name,
            // An allowlist hit explains why the name is not reported; it is not a match.
            matched: h.category != Category::Allow,
            entry: Some(h.entry),
            list: Some(h.list),
            category: Some(h.category),
        },
        None => CheckResult {
            name,
            matched: false,
            entry: None,
            list: None,
            category: None,
        },
    };
    Ok(Json(result).into_response())
}

// ---------------------------------------------------------------------------------------------
// Suppressions
// ---------------------------------------------------------------------------------------------

/// Body of `POST /api/v1/suppressions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionRequest {
    /// Client address or CIDR block.
    #[serde(default)]
    pub client: Option<String>,
    /// Pool entry (`supportxmr.com`).
    #[serde(default)]
    pub pool: Option<String>,
    /// RFC 3339 or Unix seconds; absent = never expires.
    #[serde(default)]
    pub expires: Option<Timestamp>,
    pub reason: String,
}

pub async fn list_suppressions(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let items = call(&state, |b| b.list_suppressions()).await?;
    Ok(Json(json!({ "items": items })).into_response())
}

pub async fn add_suppression(
    _: AdminAccess,
    State(state): State<AppState>,
    body: Result<Json<SuppressionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| json_rejection(e, state.options().max_body))?;
    let new = validate_suppression(req, Timestamp::now())?;
    let created = call(&state, move |b| b.add_suppression(new)).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn delete_suppression(
    _: AdminAccess,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id, "suppression")?;
    let missing = format!("no suppression with id {id:?}");
    if call(&state, move |b| b.delete_suppression(&id)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(missing))
    }
}

fn validate_suppression(
    req: SuppressionRequest,
    now: Timestamp,
) -> Result<NewSuppression, ApiError> {
    let client = match req.client.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(c) => Some(parse_net(c).map_err(|m| ApiError::invalid("client", m))?),
    };
    let pool = match req.pool.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(pool_entry(p).map_err(|m| ApiError::invalid("pool", m))?),
    };
    if client.is_none() && pool.is_none() {
        return Err(ApiError::bad(
            "invalid_body",
            "a suppression needs `client`, `pool`, or both",
        ));
    }
    let reason = req.reason.trim().to_string();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_LEN {
        return Err(ApiError::invalid(
            "reason",
            format!("must be 1 to {MAX_REASON_LEN} characters"),
        ));
    }
    if reason.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            "reason",
            "must not contain control characters",
        ));
    }
    if let Some(e) = req.expires {
        check_time_range("expires", e)?;
        if e <= now {
            return Err(ApiError::invalid("expires", "must be in the future"));
        }
    }
    Ok(NewSuppression {
        client,
        pool,
        expires: req.expires,
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------------------------

/// A cacheable download: 304 when `If-None-Match` names `etag`, else `body` as `ctype`; both
/// carry the ETag and `Cache-Control: no-cache` (clients revalidate every time).
pub(super) fn conditional(
    headers: &HeaderMap,
    etag: &str,
    ctype: &'static str,
    body: impl IntoResponse,
) -> Response {
    let mut resp = if if_none_match(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(ctype))],
            body,
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// A strong entity tag from the body's SHA-256 (128 bits are plenty to tell versions apart).
pub fn etag_of(body: &[u8]) -> String {
    let d = Sha256::digest(body);
    let mut s = String::with_capacity(34);
    s.push('"');
    for b in d.iter().take(16) {
        s.push_str(&format!("{b:02x}"));
    }
    s.push('"');
    s
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak tags compare by their opaque part.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

// ---------------------------------------------------------------------------------------------
// Input helpers
// ---------------------------------------------------------------------------------------------

/// Runs a backend call on the blocking pool and maps its errors: a bad cursor is the client's
/// (400); anything else is logged and becomes a generic 500.
pub(super) async fn call<T, F>(state: &AppState, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&dyn Backend) -> Result<T, BackendError> + Send + 'static,
{
    let backend = state.backend();
    match tokio::task::spawn_blocking(move || f(&*backend)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(BackendError::BadCursor(m))) => {
            Err(ApiError::bad("bad_cursor", format!("cursor: {m}")))
        }
        Ok(Err(BackendError::Other(m))) => {
            tracing::error!(error = %m, "backend error");
            Err(ApiError::Internal)
        }
        Err(e) => {
            tracing::error!(error = %e, "backend task failed");
            Err(ApiError::Internal)
        }
    }
}

/// An id from the path; ids that cannot exist are 404 without asking the backend.
fn path_id(id: Result<Path<String>, PathRejection>, what: &str) -> Result<String, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::not_found(format!("no such {what}")))?;
    if id.is_empty()
        || id.len() > MAX_ID_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        return Err(ApiError::not_found(format!(
            "no {what} with id {}",
            quote(&id)
        )));
    }
    Ok(id)
}

pub(super) fn json_rejection(e: JsonRejection, max_body: usize) -> ApiError {
    match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(max_body),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(
            "the body must be JSON with `Content-Type: application/json`".into(),
        ),
        _ => ApiError::bad("invalid_body", e.body_text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stage;

    fn body(r: Result<bytes::Bytes, ApiError>) -> String {
        String::from_utf8(r.unwrap().to_vec()).unwrap()
    }

    #[test]
    fn pages_from_stored_bytes_keep_todays_shape() {
        let det: crate::model::Detection = serde_json::from_value(json!({
            "id": "det-1", "client_ip": "192.0.2.1", "stage": "lookup", "risk_score": 60,
            "pool_domain": "supportxmr.com", "query_names": ["supportxmr.com"], "pool_ips": [],
            "dst_ports": [], "first_seen": 1795723200, "last_seen": 1795723200, "is_new": true,
            "evidence": [], "sources": ["log:x"], "lists": [],
        }))
        .unwrap();
        let current = serde_json::to_vec(&det).unwrap();
        // A record written before the defaulted fields existed: decoded and encoded again.
        let mut old: serde_json::Value = serde_json::from_slice(&current).unwrap();
        for k in ["schema_version", "title", "kill_chain", "mitre", "counts"] {
            old.as_object_mut().unwrap().remove(k);
        }
        let old = serde_json::to_vec(&old).unwrap();
        assert_ne!(old, current);
        let page = crate::query::Page {
            items: vec![current.clone(), old],
            next_cursor: Some("t00".to_string()),
        };
        let want = crate::query::Page {
            items: vec![det.clone(), det],
            next_cursor: Some("t00".to_string()),
        };
        assert_eq!(
            body(detection_page(page)),
            serde_json::to_string(&want).unwrap()
        );
        let empty = crate::query::Page::<Vec<u8>> {
            items: vec![],
            next_cursor: None,
        };
        assert_eq!(
            body(detection_page(empty)),
            r#"{"items":[],"next_cursor":null}"#
        );
        // Undecodable bytes: a 500, never a broken body.
        let bad = crate::query::Page {
            items: vec![b"{nope".to_vec()],
            next_cursor: None,
        };
        assert_eq!(
            detection_page(bad).unwrap_err().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            domain_name("Pool.SupportXMR.com.").unwrap(),
            "pool.supportxmr.com"
        );
        assert_eq!(
            domain_name("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        for bad in ["", ".", "a..b", "a b.com", "x/y", &"a".repeat(64), "\u{0}"] {
            assert!(domain_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn nets() {
        assert_eq!(parse_net("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert_eq!(
            parse_net("192.0.2.7/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            parse_net("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(parse_net("192.0.2.0/33").is_err());
        assert!(parse_net("nope").is_err());
    }

    #[test]
    fn etags() {
        let mut h = HeaderMap::new();
        let tag = etag_of(b"x");
        assert!(!if_none_match(&h, &tag));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"zzz\", W/{tag}")).unwrap(),
        );
        assert!(if_none_match(&h, &tag));
    }

    #[test]
    fn detection_query_garbage_never_panics() {
        let ok = parse_detection_query("client=192.0.2.0/24&stage=stratum&limit=10").unwrap();
        assert_eq!(ok.limit, 10);
        assert_eq!(ok.filter.stage, Some(Stage::Stratum));
        let samples = [
            "",
            "&",
            "=",
            "%",
            "%zz",
            "%ff%00",
            "a=%ff",
            "limit=99999999999999999999999",
            "since=1e308",
            "since=-1e308",
            "since=NaN",
            "until=inf",
            "client=::ffff:1.2.3.4/129",
            "pool=%20",
            "cursor=%0a",
            "stage=Lookup",
            "min_risk=%2B5",
            "suppressed=",
        ];
        for s in samples {
            let _ = parse_detection_query(s);
        }
        // Deterministic pseudo-random byte soup, including truncations of a valid query.
        let valid = "client=192.0.2.10&pool=supportxmr.com&since=2026-11-26T20:00:00Z&limit=5";
        for cut in 0..valid.len() {
            let _ = parse_detection_query(&valid[..cut]);
        }
        let mut x: u32 = 0x1234_5678;
        for _ in 0..2000 {
            let len = (x % 40) as usize;
            let mut v = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                v.push((x % 128) as u8);
            }
            let _ = parse_detection_query(&String::from_utf8_lossy(&v));
        }
    }

    #[test]
    fn quote_is_bounded() {
        let q = quote(&"x".repeat(10_000));
        assert!(q.len() < 100);
    }
}
