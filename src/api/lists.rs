//! Blocklist, feed and export routes. The work is the [`ListManager`]'s (blocking: it compiles
//! lists), so every call runs on the blocking pool; this module checks input and shapes HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::handlers::{conditional, etag_of, json_rejection, params, quote};
use super::{AdminAccess, ApiError, AppState, ReadAccess};
use crate::matcher::{ExportFormat, FeedRequest, ListFormat, ListManager, MatcherError, Origin};
use crate::model::Category;

/// Entries per page of `GET /blocklists/{name}` by default.
pub const DEFAULT_ENTRIES_LIMIT: usize = 1000;
/// Largest page of entries: bounds one response (use `?format=text` for the whole list).
pub const MAX_ENTRIES_LIMIT: usize = 10_000;
/// How long `POST /feeds` and `POST /feeds/{name}/refresh` wait for a download before
/// answering (well inside the default 30 s request deadline); the download goes on regardless.
pub const FIRST_DOWNLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Blocklists
// ---------------------------------------------------------------------------------------------

pub async fn list_all(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let set = state.blocklists().load_full();
    let stats = set.stats();
    let summary = json!({
        "entries": stats.entries,
        "domains": stats.domains,
        "addresses": stats.addresses,
        "categories": stats.categories,
        "compile_ms": stats.compile_ms,
        "engine": stats.engine,
    });
    let items = match state.lists() {
        Some(m) => {
            let m = m.clone();
            let items = blocking(move || Ok(m.lists())).await?;
            serde_json::to_value(items).map_err(internal)?
        }
        // Without a manager the running set still describes itself.
        None => serde_json::Value::Array(
            stats
                .lists
                .iter()
                .map(|l| {
                    json!({
                        "name": l.name,
                        "kind": match l.origin { Origin::Builtin(_) => "shipped", Origin::File(_) => "file", Origin::Memory => "user" },
                        "category": l.category,
                        "format": l.format,
                        "entries": l.parsed,
                        "kept": l.kept,
                        "duplicates": l.duplicates,
                        "invalid": l.invalid,
                        "skipped": l.skipped,
                        "source": l.source,
                        "license": l.license,
                        "refreshed": l.refreshed,
                        "active": true,
                    })
                })
                .collect(),
        ),
    };
    Ok(Json(json!({"items": items, "set": summary})).into_response())
}

pub async fn get_one(
    _: ReadAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let name = list_name(name)?;
    let p = params(q, &["offset", "limit", "format"])?;
    let offset = number(&p, "offset", 0, usize::MAX)?;
    let limit = number(&p, "limit", DEFAULT_ENTRIES_LIMIT, MAX_ENTRIES_LIMIT)?;
    let text = match p.get("format").map(String::as_str) {
        None | Some("json") => false,
        Some("text") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "format",
                format!("{} is not one of json, text", quote(other)),
            ))
        }
    };
    let m = manager(&state)?;
    let detail = blocking(move || m.list(&name, offset, if text { 0 } else { limit })).await?;
    if text {
        let mut resp = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            detail.text.to_string(),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        return Ok(resp);
    }
    Ok(Json(detail).into_response())
}

pub async fn put_one(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let name = list_name(name)?;
    let p = params(q, &["format", "category"])?;
    let format = match p.get("format").map(String::as_str) {
        None | Some("") | Some("auto") => None,
        Some(f) => Some(
            f.parse::<ListFormat>()
                .map_err(|m| ApiError::invalid("format", m))?,
        ),
    };
    let category = category_param(&p)?;
    let body = body.map_err(|e| body_rejection(e.status(), state.options().max_body))?;
    let m = manager(&state)?;
    let report = blocking(move || {
        let text = utf8_body(&body)?;
        m.put_user_list(&name, text, format, category)
    })
    .await?;
    Ok(Json(report).into_response())
}

pub async fn delete_one(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = list_name(name)?;
    let m = manager(&state)?;
    blocking(move || m.delete(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST`/`DELETE /api/v1/blocklists/{name}/entries`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntriesRequest {
    pub entries: Vec<String>,
    /// Category of a list created by this add (default `pool`); ignored on remove.
    #[serde(default)]
    pub category: Option<Category>,
}

pub async fn add_entries(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<EntriesRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let name = list_name(name)?;
    let Json(req) = body.map_err(|e| json_rejection(e, state.options().max_body))?;
    let m = manager(&state)?;
    let r = blocking(move || m.add_entries(&name, &req.entries, req.category)).await?;
    Ok(Json(r).into_response())
}

pub async fn remove_entries(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    body: Result<Json<EntriesRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let name = list_name(name)?;
    let Json(req) = body.map_err(|e| json_rejection(e, state.options().max_body))?;
    let m = manager(&state)?;
    let r = blocking(move || m.remove_entries(&name, &req.entries)).await?;
    Ok(Json(r).into_response())
}

pub async fn reload(
    _: AdminAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let m = manager(&state)?;
    let report = blocking(move || m.reload()).await?;
    Ok(Json(report).into_response())
}

// ---------------------------------------------------------------------------------------------
// Feeds
// ---------------------------------------------------------------------------------------------

pub async fn list_feeds(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    params(q, &[])?;
    let items = match state.lists() {
        Some(m) => m.feeds(),
        None => Vec::new(),
    };
    Ok(Json(json!({ "items": items })).into_response())
}

pub async fn add_feed(
    _: AdminAccess,
    State(state): State<AppState>,
    body: Result<Json<FeedRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| json_rejection(e, state.options().max_body))?;
    let m = manager(&state)?;
    let m2 = m.clone();
    let created = blocking(move || m2.add_feed(req)).await?;
    // First download now, so the answer shows whether the feed works — but not longer than
    // FIRST_DOWNLOAD_WAIT: a slow feed is then left to the background refresher.
    let (_, st) = refresh_bounded(m, created.name).await?;
    Ok((StatusCode::CREATED, Json(st)).into_response())
}

pub async fn delete_feed(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (m, name) = existing_feed(&state, name)?;
    blocking(move || m.delete_feed(&name)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn refresh_feed(
    _: AdminAccess,
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let (m, name) = existing_feed(&state, name)?;
    let (done, st) = refresh_bounded(m, name).await?;
    let status = if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(st)).into_response())
}

/// Refreshes a feed on its own task and waits at most [`FIRST_DOWNLOAD_WAIT`]: a slow download
/// then finishes in the background (and records its outcome) instead of being cut off by the
/// request deadline. Returns whether it finished, and the feed's state.
async fn refresh_bounded(
    m: Arc<ListManager>,
    name: String,
) -> Result<(bool, crate::matcher::FeedState), ApiError> {
    let task = {
        let m = m.clone();
        let name = name.clone();
        tokio::spawn(async move { m.refresh_feed(&name).await })
    };
    match tokio::time::timeout(FIRST_DOWNLOAD_WAIT, task).await {
        Ok(Ok(r)) => Ok((true, r.map_err(from_matcher)?)),
        Ok(Err(e)) => Err(internal(e)),
        Err(_) => m
            .feed(&name)
            .map(|st| (false, st))
            .ok_or_else(|| no_feed(&name)),
    }
}

// ---------------------------------------------------------------------------------------------
// Exports
// ---------------------------------------------------------------------------------------------

pub async fn export(
    _: ReadAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    format: Result<Path<String>, PathRejection>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let unknown = |raw: &str| ApiError::NotFound {
        code: "unknown_format",
        message: format!(
            "no export format {}; valid formats: {}, pool-ips",
            quote(raw),
            ExportFormat::ALL.map(|f| f.as_str()).join(", ")
        ),
    };
    let Path(raw) = format.map_err(|_| unknown(""))?;
    let fmt: ExportFormat = raw.parse().map_err(|_| unknown(&raw))?;
    params(q, &[])?;
    let set = state.blocklists().load_full();
    let (body, etag) = tokio::task::spawn_blocking(move || {
        let body = set.export(fmt);
        let etag = etag_of(body.as_bytes());
        (body, etag)
    })
    .await
    .map_err(internal)?;
    let (ctype, file) = export_meta(fmt);
    let mut resp = conditional(&headers, &etag, ctype, body);
    if resp.status() == StatusCode::OK {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(resp)
}

/// Content type and suggested file name of each export.
fn export_meta(f: ExportFormat) -> (&'static str, &'static str) {
    match f {
        // RFC 4027 registers text/dns for master files.
        ExportFormat::Rpz => ("text/dns; charset=utf-8", "poolwatch.rpz"),
        ExportFormat::Hosts => ("text/plain; charset=utf-8", "poolwatch.hosts"),
        ExportFormat::Dnsmasq => ("text/plain; charset=utf-8", "poolwatch-dnsmasq.conf"),
        ExportFormat::Unbound => ("text/plain; charset=utf-8", "poolwatch-unbound.conf"),
        ExportFormat::Adblock => ("text/plain; charset=utf-8", "poolwatch-adblock.txt"),
        ExportFormat::Nftables => ("text/plain; charset=utf-8", "poolwatch.nft"),
        ExportFormat::SuricataDataset => ("text/plain; charset=utf-8", "poolwatch-pools.lst"),
        ExportFormat::SuricataRules => ("text/plain; charset=utf-8", "poolwatch.rules"),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn manager(state: &AppState) -> Result<Arc<ListManager>, ApiError> {
    state.lists().cloned().ok_or_else(|| ApiError::Unavailable {
        code: "lists_unavailable",
        message: "list management is not enabled in this server (no list manager attached)".into(),
    })
}

/// The manager and the name of a feed that exists (404 otherwise).
fn existing_feed(
    state: &AppState,
    name: Result<Path<String>, PathRejection>,
) -> Result<(Arc<ListManager>, String), ApiError> {
    let name = list_name(name)?;
    let m = manager(state)?;
    if m.feed(&name).is_none() {
        return Err(no_feed(&name));
    }
    Ok((m, name))
}

fn no_feed(name: &str) -> ApiError {
    ApiError::not_found(format!("no feed named {}", quote(name)))
}

/// A list name from the path: decoded by axum, then checked by the manager; path-level
/// failures are 400 (never 500).
fn list_name(p: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = p.map_err(|e| ApiError::bad("invalid_name", e.body_text()))?;
    if !crate::matcher::is_usable_list_name(&name) {
        return Err(ApiError::bad(
            "invalid_name",
            format!(
                "list name {}: use [a-z0-9._-], start with a letter or digit, at most {} bytes",
                quote(&name),
                crate::matcher::MAX_LIST_NAME_LEN
            ),
        ));
    }
    Ok(name)
}

fn number(
    p: &BTreeMap<String, String>,
    key: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max && (key != "limit" || *n >= 1))
            .ok_or_else(|| {
                ApiError::invalid(key, format!("{} is not a number in range", quote(v)))
            }),
    }
}

fn category_param(p: &BTreeMap<String, String>) -> Result<Option<Category>, ApiError> {
    match p.get("category").map(String::as_str) {
        None | Some("") => Ok(None),
        Some(c) => Category::parse(c).map(Some).ok_or_else(|| {
            ApiError::invalid(
                "category",
                format!(
                    "{} is not one of pool, browser_miner, miner_proxy, allow",
                    quote(c)
                ),
            )
        }),
    }
}

fn body_rejection(status: StatusCode, max_body: usize) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge(max_body)
    } else {
        ApiError::bad("invalid_body", "cannot read the request body")
    }
}

/// The body as text; non-UTF-8 is a list problem with the line it starts on.
fn utf8_body(body: &[u8]) -> Result<&str, MatcherError> {
    std::str::from_utf8(body).map_err(|e| {
        let upto = body.get(..e.valid_up_to()).unwrap_or(&[]);
        let line = upto.iter().filter(|b| **b == b'\n').count() + 1;
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        MatcherError::Rejected {
            message: format!("the body is not UTF-8 text (line {line}); nothing was changed"),
            problems: vec![crate::matcher::Problem {
                line,
                severity: crate::matcher::Severity::Error,
                message: "not UTF-8 text".into(),
            }],
        }
    })
}

/// Runs a manager call on the blocking pool and maps its error.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, MatcherError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(from_matcher),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "list operation failed");
    ApiError::Internal
}

/// Matcher errors as API errors: the client's mistakes are 4xx with the matcher's message;
/// our own (disk, manifest) are logged and a generic 500.
fn from_matcher(e: MatcherError) -> ApiError {
    match e {
        MatcherError::InvalidName(_) => ApiError::bad("invalid_name", e.to_string()),
        MatcherError::UnknownList(_) => ApiError::not_found(e.to_string()),
        MatcherError::ReadOnly(m) => ApiError::Conflict {
            code: "read_only",
            message: m,
        },
        MatcherError::Conflict(m) => ApiError::Conflict {
            code: "conflict",
            message: m,
        },
        MatcherError::BadFeed(m) => ApiError::bad("invalid_feed", m),
        MatcherError::Unavailable(m) => ApiError::Unavailable {
            code: "lists_unavailable",
            message: m,
        },
        MatcherError::Rejected { message, problems } => ApiError::InvalidList { message, problems },
        MatcherError::Parse {
            ref path,
            line,
            ref message,
        } => ApiError::InvalidList {
            message: format!("{}:{line}: {message}; nothing was changed", path.display()),
            problems: vec![crate::matcher::Problem {
                line,
                severity: crate::matcher::Severity::Error,
                message: message.clone(),
            }],
        },
        MatcherError::Empty
        | MatcherError::TooManyEntries { .. }
        | MatcherError::TooLarge { .. } => ApiError::InvalidList {
            message: format!("{e}; nothing was changed"),
            problems: Vec::new(),
        },
        other => internal(other),
    }
}
