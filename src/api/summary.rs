//! Read-only aggregates for dashboards (the web UI's overview): `GET /api/v1/summary`, and
//! `GET /api/v1/session`, which tells a client what its token may do.
//!
//! The summary is computed from the same [`Backend::list_detections`] pages any client could
//! read (so it never shows what the token would not), bounded by [`MAX_SUMMARY_DETECTIONS`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::handlers::{call, params, parse_filter, quote};
use super::{constant_time_eq, ApiError, AppState, Backend, BackendError, ReadAccess};
use crate::model::{Detection, Stage, Timestamp};
use crate::query::{DetectionEvent, DetectionFilter};
use tokio::sync::broadcast;

/// Most detections one summary looks at: bounds the time and memory of one request (100 pages
/// of the largest size, ~0.5 s on a laptop). Beyond it the answer says `truncated: true` and
/// covers the newest detections.
pub const MAX_SUMMARY_DETECTIONS: usize = 100_000;
/// Most timeline buckets: a chart wider than this has more bars than pixels.
pub const MAX_TIMELINE_BUCKETS: i64 = 500;
/// The timeline's target number of buckets when `bucket` is not given.
const TARGET_BUCKETS: i64 = 48;
/// Bucket sizes chosen automatically (seconds): human steps from 10 s to 1 week.
const NICE_BUCKETS: [i64; 14] = [
    10,
    30,
    60,
    300,
    600,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
];
/// Default / largest length of the top-pools and top-hosts lists.
const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 50;
/// "New hosts" counts hosts whose new-host incident started in this window before now.
const NEW_HOSTS_WINDOW_SECS: i64 = 86_400;

const SUMMARY_PARAMS: &[&str] = &["since", "until", "suppressed", "bucket", "top"];

fn truncated_counter() -> &'static crate::metrics::Counter {
    static C: std::sync::OnceLock<crate::metrics::Counter> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        crate::metrics::counter(
            "poolwatch_api_summary_truncated_total",
            "Summaries that reached MAX_SUMMARY_DETECTIONS and covered only the newest detections.",
            &[],
        )
    })
}

/// The answer of `GET /api/v1/summary`.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub generated: Timestamp,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Detections in the range.
    pub total: u64,
    /// Of which suppressed.
    pub suppressed: u64,
    /// Distinct client addresses.
    pub hosts: u64,
    /// Distinct hosts whose first incident (`is_new`) started in the last 24 h.
    pub new_hosts_24h: u64,
    /// Distinct hosts with an `is_new` incident in the range.
    pub new_hosts: u64,
    /// Every stage, weakest first, with its count (zeros included).
    pub by_stage: BTreeMap<&'static str, u64>,
    /// Risk bands: `critical` ≥ 90, `high` 80–89, `medium` 60–79, `low` < 60.
    pub by_risk: BTreeMap<&'static str, u64>,
    pub timeline: Timeline,
    pub top_pools: Vec<TopPool>,
    pub top_hosts: Vec<TopHost>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    /// True when more than `MAX_SUMMARY_DETECTIONS` matched: the newest were counted.
    pub truncated: bool,
}

/// Detections per time bucket (by `first_seen`), split by current stage.
#[derive(Debug, Serialize)]
pub struct Timeline {
    pub bucket_secs: i64,
    /// Start of the first bucket.
    pub start: Option<Timestamp>,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Serialize)]
pub struct Bucket {
    pub ts: Timestamp,
    pub total: u64,
    /// Non-zero stages only.
    pub stages: BTreeMap<&'static str, u64>,
}

#[derive(Debug, Serialize)]
pub struct TopPool {
    pub pool_domain: String,
    pub detections: u64,
    pub clients: u64,
    pub max_risk: u8,
    pub strongest_stage: Stage,
    pub last_seen: Timestamp,
}

#[derive(Debug, Serialize)]
pub struct TopHost {
    pub client_ip: IpAddr,
    pub detections: u64,
    pub pools: u64,
    pub max_risk: u8,
    pub strongest_stage: Stage,
    pub is_new: bool,
    pub last_seen: Timestamp,
}

fn risk_band(r: u8) -> &'static str {
    match r {
        90.. => "critical",
        80..=89 => "high",
        60..=79 => "medium",
        _ => "low",
    }
}

/// Every detection matching `f`, newest first, at most `cap`; `true` when more existed.
fn collect(
    b: &dyn Backend,
    f: &DetectionFilter,
    cap: usize,
) -> Result<(Vec<Detection>, bool), BackendError> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = b.list_detections(f, super::MAX_PAGE_LIMIT, cursor.as_deref())?;
        for d in page.items {
            if out.len() == cap {
                return Ok((out, true));
            }
            out.push(d);
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok((out, false)),
        }
    }
}

/// The bucket size: the caller's (raised so that at most [`MAX_TIMELINE_BUCKETS`] fit), or
/// the smallest nice size giving at most [`TARGET_BUCKETS`].
fn bucket_size(span_secs: i64, asked: Option<i64>) -> i64 {
    let span = span_secs.max(1);
    let floor = (span + MAX_TIMELINE_BUCKETS - 1) / MAX_TIMELINE_BUCKETS;
    match asked {
        Some(b) => b.max(floor).max(1),
        None => NICE_BUCKETS
            .iter()
            .copied()
            .find(|b| span / b <= TARGET_BUCKETS)
            .unwrap_or_else(|| span / TARGET_BUCKETS + 1),
    }
}

/// What a summary covers and how it is shaped.
#[derive(Clone, Copy, Debug)]
pub struct SummaryShape {
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    /// Timeline bucket asked for (seconds); `None` picks one.
    pub bucket: Option<i64>,
    /// Length of the top lists.
    pub top: usize,
    pub now: Timestamp,
}

/// Aggregates `dets` (already filtered to the range).
pub fn summarise(
    dets: &[Detection],
    truncated: bool,
    shape: SummaryShape,
    new_hosts_24h: u64,
) -> Summary {
    let SummaryShape {
        since,
        until,
        bucket,
        top,
        now,
    } = shape;
    let mut by_stage: BTreeMap<&'static str, u64> =
        Stage::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let mut by_risk: BTreeMap<&'static str, u64> = ["critical", "high", "medium", "low"]
        .into_iter()
        .map(|k| (k, 0))
        .collect();
    let mut suppressed = 0;
    let mut hosts: HashSet<IpAddr> = HashSet::new();
    let mut new_hosts: HashSet<IpAddr> = HashSet::new();
    let mut pools: HashMap<&str, (TopPool, HashSet<IpAddr>)> = HashMap::new();
    let mut per_host: HashMap<IpAddr, (TopHost, HashSet<&str>)> = HashMap::new();
    let mut first: Option<Timestamp> = None;
    let mut last: Option<Timestamp> = None;
    for d in dets {
        *by_stage.entry(d.stage.as_str()).or_insert(0) += 1;
        *by_risk.entry(risk_band(d.risk_score)).or_insert(0) += 1;
        suppressed += u64::from(d.suppressed);
        hosts.insert(d.client_ip);
        if d.is_new {
            new_hosts.insert(d.client_ip);
        }
        first = Some(first.map_or(d.first_seen, |f| f.min(d.first_seen)));
        last = Some(last.map_or(d.last_seen, |l| l.max(d.last_seen)));
        let (p, clients) = pools.entry(d.pool_domain.as_str()).or_insert_with(|| {
            (
                TopPool {
                    pool_domain: d.pool_domain.clone(),
                    detections: 0,
                    clients: 0,
                    max_risk: 0,
                    strongest_stage: d.stage,
                    last_seen: d.last_seen,
                },
                HashSet::new(),
            )
        });
        p.detections += 1;
        p.max_risk = p.max_risk.max(d.risk_score);
        p.strongest_stage = p.strongest_stage.max(d.stage);
        p.last_seen = p.last_seen.max(d.last_seen);
        clients.insert(d.client_ip);
        let (h, hp) = per_host.entry(d.client_ip).or_insert_with(|| {
            (
                TopHost {
                    client_ip: d.client_ip,
                    detections: 0,
                    pools: 0,
                    max_risk: 0,
                    strongest_stage: d.stage,
                    is_new: false,
                    last_seen: d.last_seen,
                },
                HashSet::new(),
            )
        });
        h.detections += 1;
        h.max_risk = h.max_risk.max(d.risk_score);
        h.strongest_stage = h.strongest_stage.max(d.stage);
        h.is_new |= d.is_new;
        h.last_seen = h.last_seen.max(d.last_seen);
        hp.insert(d.pool_domain.as_str());
    }

    // Timeline over [since or first, until or max(last, now when a since was given)].
    let start = since.or(first);
    let end = until.or(match since {
        Some(_) => Some(now),
        None => last,
    });
    let timeline = match (start, end) {
        (Some(s), Some(e)) if e >= s => {
            let span = (e.as_secs() - s.as_secs()).max(1);
            let size = bucket_size(span, bucket);
            let s0 = s.as_secs().div_euclid(size) * size;
            let n = ((e.as_secs() - s0) / size + 1).clamp(1, MAX_TIMELINE_BUCKETS);
            let mut buckets: Vec<Bucket> = (0..n)
                .map(|i| Bucket {
                    ts: Timestamp::from_secs(s0 + i * size),
                    total: 0,
                    stages: BTreeMap::new(),
                })
                .collect();
            for d in dets {
                let i = (d.first_seen.as_secs() - s0)
                    .div_euclid(size)
                    .clamp(0, n - 1);
                if let Some(b) = usize::try_from(i).ok().and_then(|i| buckets.get_mut(i)) {
                    b.total += 1;
                    *b.stages.entry(d.stage.as_str()).or_insert(0) += 1;
                }
            }
            Timeline {
                bucket_secs: size,
                start: Some(Timestamp::from_secs(s0)),
                buckets,
            }
        }
        _ => Timeline {
            bucket_secs: bucket.unwrap_or(3600),
            start: None,
            buckets: Vec::new(),
        },
    };

    let mut top_pools: Vec<TopPool> = pools
        .into_values()
        .map(|(mut p, c)| {
            p.clients = c.len() as u64;
            p
        })
        .collect();
    top_pools.sort_by(|a, b| {
        (b.detections, b.clients, b.max_risk)
            .cmp(&(a.detections, a.clients, a.max_risk))
            .then_with(|| a.pool_domain.cmp(&b.pool_domain))
    });
    top_pools.truncate(top);
    let mut top_hosts: Vec<TopHost> = per_host
        .into_values()
        .map(|(mut h, p)| {
            h.pools = p.len() as u64;
            h
        })
        .collect();
    top_hosts.sort_by(|a, b| {
        (b.max_risk, b.strongest_stage, b.detections, b.last_seen)
            .cmp(&(a.max_risk, a.strongest_stage, a.detections, a.last_seen))
            .then_with(|| a.client_ip.cmp(&b.client_ip))
    });
    top_hosts.truncate(top);

    Summary {
        generated: now,
        since,
        until,
        total: dets.len() as u64,
        suppressed,
        hosts: hosts.len() as u64,
        new_hosts_24h,
        new_hosts: new_hosts.len() as u64,
        by_stage,
        by_risk,
        timeline,
        top_pools,
        top_hosts,
        first_seen: first,
        last_seen: last,
        truncated,
    }
}

pub async fn summary(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, SUMMARY_PARAMS)?;
    let filter = parse_filter(&p)?;
    let bucket = match p.get("bucket") {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<i64>()
                .ok()
                .filter(|b| (10..=30 * 86_400).contains(b))
                .ok_or_else(|| {
                    ApiError::invalid(
                        "bucket",
                        format!("{} is not a number of seconds from 10 to 2592000", quote(v)),
                    )
                })?,
        ),
    };
    let top = match p.get("top") {
        None => DEFAULT_TOP,
        Some(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_TOP).contains(n))
            .ok_or_else(|| ApiError::invalid("top", format!("must be from 1 to {MAX_TOP}")))?,
    };
    // Reuse a summary computed moments ago for the same question (dashboards refresh on every
    // live event; several open dashboards must not each rescan the store).
    let key = format!("{:p}|{p:?}", Arc::as_ptr(&state.0));
    if let Some(body) = cached(&key) {
        return Ok(json_body(body));
    }
    // Subscribe before reading, so that a detection stored meanwhile invalidates the result.
    let rx = state.events().subscribe();
    let now = Timestamp::now();
    let s = call(&state, move |b| {
        let (dets, truncated) = collect(b, &filter, MAX_SUMMARY_DETECTIONS)?;
        if truncated {
            truncated_counter().inc();
        }
        let day_start = now.plus_secs(-NEW_HOSTS_WINDOW_SECS);
        // When the range covers the last 24 h, the detections in hand hold every new host of
        // that window; otherwise read the window itself.
        let covers_day = filter.since.is_none_or(|s| s <= day_start)
            && filter.until.is_none_or(|u| u >= now)
            && !truncated;
        let recent_owned;
        let recent: &[Detection] = if covers_day {
            &dets
        } else {
            let f = DetectionFilter {
                since: Some(day_start),
                suppressed: filter.suppressed,
                ..DetectionFilter::default()
            };
            recent_owned = collect(b, &f, MAX_SUMMARY_DETECTIONS)?.0;
            &recent_owned
        };
        let new_24h: HashSet<IpAddr> = recent
            .iter()
            .filter(|d| d.is_new && d.first_seen >= day_start)
            .map(|d| d.client_ip)
            .collect();
        let shape = SummaryShape {
            since: filter.since,
            until: filter.until,
            bucket,
            top,
            now,
        };
        Ok(summarise(&dets, truncated, shape, new_24h.len() as u64))
    })
    .await?;
    let body = Arc::new(serde_json::to_vec(&s).map_err(|e| {
        tracing::error!(error = %e, "cannot serialise a summary");
        ApiError::Internal
    })?);
    store_cached(key, body.clone(), rx);
    Ok(json_body(body))
}

/// How long a computed summary is reused at most; any detection event ends it sooner. Short, so
/// that updates without an event (a later `last_seen`, retention) show within seconds.
const SUMMARY_CACHE_TTL: Duration = Duration::from_secs(2);

struct CachedSummary {
    key: String,
    at: Instant,
    body: Arc<Vec<u8>>,
    events: broadcast::Receiver<DetectionEvent>,
}

/// One entry (the last question asked): bounded, and the common case is one dashboard view.
fn cache() -> &'static Mutex<Option<CachedSummary>> {
    static C: OnceLock<Mutex<Option<CachedSummary>>> = OnceLock::new();
    C.get_or_init(|| Mutex::new(None))
}

fn cached(key: &str) -> Option<Arc<Vec<u8>>> {
    let mut g = cache().lock().unwrap_or_else(|e| e.into_inner());
    let c = g.as_mut()?;
    let fresh = c.key == key
        && c.at.elapsed() < SUMMARY_CACHE_TTL
        && matches!(
            c.events.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        );
    if fresh {
        Some(c.body.clone())
    } else {
        *g = None;
        None
    }
}

fn store_cached(key: String, body: Arc<Vec<u8>>, events: broadcast::Receiver<DetectionEvent>) {
    let mut g = cache().lock().unwrap_or_else(|e| e.into_inner());
    *g = Some(CachedSummary {
        key,
        at: Instant::now(),
        body,
        events,
    });
}

fn json_body(body: Arc<Vec<u8>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.as_ref().clone(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// /session
// ---------------------------------------------------------------------------------------------

/// The answer of `GET /api/v1/session`: what the presented token (if any) may do.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Session {
    /// `none` (no Authorization header), `read`, `admin`, or `invalid`.
    pub token: &'static str,
    pub can_read: bool,
    pub can_write: bool,
    /// Reads need a token on this server.
    pub read_token_required: bool,
    /// An admin token is configured (writes are possible at all).
    pub writes_enabled: bool,
}

/// Longest Authorization header looked at (tokens are at most 1024 characters).
const MAX_AUTH_LEN: usize = 2048;

pub async fn session(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let tokens = state.tokens();
    let presented = headers
        .get(header::AUTHORIZATION)
        .filter(|v| v.len() <= MAX_AUTH_LEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, t) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| t.trim().to_string())
        });
    let has_header = headers.contains_key(header::AUTHORIZATION);
    let eq = |t: &str, s: &Option<crate::util::Secret>| {
        s.as_ref()
            .is_some_and(|s| constant_time_eq(t.as_bytes(), s.expose().as_bytes()))
    };
    let (admin, read) = match &presented {
        Some(t) if !t.is_empty() => (eq(t, &tokens.admin), eq(t, &tokens.read)),
        _ => (false, false),
    };
    let token = if admin {
        "admin"
    } else if read {
        "read"
    } else if has_header {
        "invalid"
    } else {
        "none"
    };
    let read_token_required = tokens.read.is_some();
    Json(Session {
        token,
        can_read: admin || read || !read_token_required,
        can_write: admin,
        read_token_required,
        writes_enabled: tokens.admin.is_some(),
    })
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(ip: &str, pool: &str, stage: Stage, risk: u8, first: i64, is_new: bool) -> Detection {
        let client = ip.parse().unwrap();
        let id = format!("{ip}-{pool}");
        let mut d = crate::model::test_detection(&id, client, pool, (stage, risk), first);
        d.is_new = is_new;
        d
    }

    fn shape(top: usize, now: i64) -> SummaryShape {
        SummaryShape {
            since: None,
            until: None,
            bucket: None,
            top,
            now: Timestamp::from_secs(now),
        }
    }

    #[test]
    fn counts_buckets_and_tops() {
        let t0 = 1_800_000_000;
        let d = vec![
            det("192.0.2.10", "supportxmr.com", Stage::Stratum, 97, t0, true),
            det(
                "192.0.2.11",
                "nanopool.org",
                Stage::Lookup,
                60,
                t0 + 50,
                true,
            ),
            det(
                "192.0.2.10",
                "nanopool.org",
                Stage::Lookup,
                60,
                t0 + 95,
                false,
            ),
            det(
                "192.0.2.13",
                "minexmr.com",
                Stage::BlockedLookup,
                45,
                t0 + 20,
                true,
            ),
        ];
        let s = summarise(&d, false, shape(10, t0), 2);
        assert_eq!(s.total, 4);
        assert_eq!(s.hosts, 3);
        assert_eq!(s.new_hosts, 3);
        assert_eq!(s.by_stage["lookup"], 2);
        assert_eq!(s.by_stage["stratum"], 1);
        assert_eq!(s.by_stage["direct_ip"], 0);
        assert_eq!(s.by_risk["critical"], 1);
        assert_eq!(s.by_risk["medium"], 2);
        assert_eq!(s.by_risk["low"], 1);
        // 125 s span → 10 s buckets, aligned; every detection lands in one.
        assert_eq!(s.timeline.bucket_secs, 10);
        let sum: u64 = s.timeline.buckets.iter().map(|b| b.total).sum();
        assert_eq!(sum, 4);
        assert_eq!(s.top_pools[0].pool_domain, "nanopool.org");
        assert_eq!(s.top_pools[0].clients, 2);
        assert_eq!(s.top_hosts[0].client_ip.to_string(), "192.0.2.10");
        assert_eq!(s.top_hosts[0].pools, 2);
        let s = summarise(&d, false, shape(1, t0), 0);
        assert_eq!(s.top_pools.len(), 1);
        assert_eq!(s.top_hosts.len(), 1);
    }

    #[test]
    fn bucket_sizes_are_bounded() {
        assert_eq!(bucket_size(94, None), 10);
        assert_eq!(bucket_size(86_400, None), 1800);
        assert_eq!(bucket_size(30 * 86_400, None), 86_400);
        // A caller's tiny bucket over a long span is raised to fit MAX_TIMELINE_BUCKETS.
        let b = bucket_size(365 * 86_400, Some(10));
        assert!(365 * 86_400 / b <= MAX_TIMELINE_BUCKETS);
        // Huge spans never panic and stay bounded.
        let b = bucket_size(i64::MAX / 2, None);
        assert!((i64::MAX / 2) / b <= MAX_TIMELINE_BUCKETS);
        let empty = summarise(&[], false, shape(10, 0), 0);
        assert!(empty.timeline.buckets.is_empty());
        assert_eq!(empty.by_stage.len(), 6);
    }
}
