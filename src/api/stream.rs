//! `GET /api/v1/detections/stream`: Server-Sent Events of new and upgraded detections.
//!
//! Event name = `new` | `upgraded`, data = the detection JSON, `id` = the detection's
//! `last_seen` (Unix microseconds) and its id, `1764187201050000-00066133c2e0c24025476cb9`. A
//! subscriber that falls behind the broadcast buffer gets a `lagged` event with the number of
//! events it missed.
//!
//! **Reconnecting.** A client that sends `Last-Event-ID` (EventSource does so by itself) first
//! gets the detections the store holds whose `last_seen` is at or after that event's
//! `last_seen` minus [`REPLAY_SLACK_US`] (oldest first, the stream's filters applied, the event
//! it last saw left out), then the live feed. The replay reads at most [`MAX_REPLAY_SCAN`]
//! detections and sends at most [`MAX_REPLAY`]; beyond, a `lagged` event says how many were not
//! sent and the client re-syncs with `GET /detections?since=`. Delivery is at least once: a
//! detection updated while the client was away, or seen again in the slack, comes again with its
//! current state (consumers upsert by `id`). The replay follows the data clock: a back-fill of
//! captures older than the slack made while a client was away is not replayed; use `since=`.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::handlers::{call, params, parse_filter};
use super::{ApiError, AppState, ReadAccess};
use crate::model::{Detection, Timestamp};
use crate::query::{ChangeKind, DetectionFilter};

/// Most detections one reconnect replays; more come as a `lagged` count (re-sync with `since=`).
pub const MAX_REPLAY: usize = 1_000;
/// Most detections a replay reads from the store (pages of [`REPLAY_PAGE`]), so a reconnect
/// with an ancient `Last-Event-ID` costs a bounded scan.
pub const MAX_REPLAY_SCAN: usize = 10_000;
const REPLAY_PAGE: usize = 1_000;
/// How far before the last seen event's `last_seen` the replay starts: events of detections
/// from inputs whose clocks lag a little (a resolver log behind the capture) are not missed.
pub const REPLAY_SLACK_US: i64 = 60_000_000;
/// Longest `Last-Event-ID` read (the ids this server writes are under 64 bytes).
const MAX_LAST_EVENT_ID: usize = 128;

const STREAM_PARAMS: &[&str] = &["client", "pool", "stage", "min_risk", "suppressed"];

fn streams_gauge() -> &'static crate::metrics::Gauge {
    static G: std::sync::OnceLock<crate::metrics::Gauge> = std::sync::OnceLock::new();
    G.get_or_init(|| {
        crate::metrics::gauge(
            "poolwatch_api_event_streams",
            "Open Server-Sent Events streams (GET /api/v1/detections/stream).",
            &[],
        )
    })
}

/// The SSE `id` of a detection event: `<last_seen µs>-<detection id>`.
pub fn event_id(d: &Detection) -> String {
    format!("{}-{}", d.last_seen.as_micros(), d.id)
}

/// A parsed `Last-Event-ID`: where the client's view ends.
#[derive(Debug, PartialEq)]
struct Resume {
    last_seen: Timestamp,
    id: String,
}

fn parse_last_event_id(headers: &HeaderMap) -> Result<Option<Resume>, ApiError> {
    let Some(v) = headers.get("last-event-id") else {
        return Ok(None);
    };
    let bad = || {
        ApiError::invalid(
            "Last-Event-ID",
            "expected an id this stream sent (`<last_seen µs>-<detection id>`)",
        )
    };
    if v.len() > MAX_LAST_EVENT_ID {
        return Err(bad());
    }
    let text = v.to_str().map_err(|_| bad())?.trim();
    // An empty id is the spec's way of saying "no id": a fresh start.
    if text.is_empty() {
        return Ok(None);
    }
    let (micros, id) = text.split_once('-').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let valid_id = !id.is_empty() && id.bytes().all(|c| c.is_ascii_alphanumeric());
    if !valid_id
        || !(super::MIN_API_TIME.as_micros()..=super::MAX_API_TIME.as_micros()).contains(&micros)
    {
        return Err(bad());
    }
    Ok(Some(Resume {
        last_seen: Timestamp::from_micros(micros),
        id: id.to_owned(),
    }))
}

/// The replayed part of a reconnect: SSE events, oldest first, plus how many were left out.
fn replay_events(mut found: Vec<Detection>, resume: &Resume, truncated: bool) -> Vec<Event> {
    found.sort_by(|a, b| (a.last_seen, &a.id).cmp(&(b.last_seen, &b.id)));
    found.retain(|d| !(d.last_seen == resume.last_seen && d.id == resume.id));
    let total = found.len();
    let mut out: Vec<Event> = found
        .iter()
        .take(MAX_REPLAY)
        .filter_map(|d| detection_event(replayed_kind(d), d))
        .collect();
    let left = total.saturating_sub(MAX_REPLAY);
    if left > 0 || truncated {
        // `missed` counts what this replay knows it did not send; a truncated scan may have
        // left out more, which `truncated` says.
        out.push(Event::default().event("lagged").data(format!(
            "{{\"missed\":{left},\"replay_truncated\":{truncated}}}"
        )));
    }
    out
}

/// The event name a replayed detection gets: `upgraded` when its stage rose after it was first
/// reported, else `new` (the replay sends current state, not the history of changes).
fn replayed_kind(d: &Detection) -> ChangeKind {
    match d.stage_changed {
        Some(t) if t > d.first_seen => ChangeKind::Upgraded,
        _ => ChangeKind::New,
    }
}

fn detection_event(kind: ChangeKind, d: &Detection) -> Option<Event> {
    Event::default()
        .event(kind.as_str())
        .id(event_id(d))
        .json_data(d)
        .ok()
}

/// Reads what a reconnecting client missed: detections with `last_seen` at or after the resume
/// point (minus the slack), bounded by [`MAX_REPLAY_SCAN`].
async fn read_replay(
    state: &AppState,
    filter: &DetectionFilter,
    resume: &Resume,
) -> Result<Vec<Event>, ApiError> {
    let mut f = filter.clone();
    let from = Timestamp::from_micros(resume.last_seen.as_micros().saturating_sub(REPLAY_SLACK_US));
    f.since = Some(f.since.map_or(from, |s| s.max(from)));
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    let truncated = loop {
        let (ff, c) = (f.clone(), cursor.take());
        let page = call(state, move |b| {
            b.list_detections(&ff, REPLAY_PAGE, c.as_deref())
        })
        .await?;
        found.extend(page.items);
        match page.next_cursor {
            Some(_) if found.len() >= MAX_REPLAY_SCAN => break true,
            Some(c) => cursor = Some(c),
            None => break false,
        }
    };
    Ok(replay_events(found, resume, truncated))
}

pub async fn detections_stream(
    _: ReadAccess,
    State(state): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, STREAM_PARAMS)?;
    let filter = parse_filter(&p)?;
    let resume = parse_last_event_id(&headers)?;
    let max = state.options().max_streams;
    let counter = &state.0.streams;
    // Reserve a slot; give it back if over the cap.
    if counter.fetch_add(1, Ordering::AcqRel) >= max {
        counter.fetch_sub(1, Ordering::AcqRel);
        return Err(ApiError::Unavailable {
            code: "too_many_streams",
            message: format!("at most {max} event streams at once; retry later"),
        });
    }
    streams_gauge().add(1);
    let guard = SlotGuard(state.clone());
    // Subscribe before reading the replay: an event published in between comes twice (at least
    // once), never not at all.
    let rx = state.events().subscribe();
    let replay = match &resume {
        Some(r) => read_replay(&state, &filter, r).await?,
        None => Vec::new(),
    };
    let mut closing = state.0.closing.subscribe();
    let shutdown = async move {
        // Ends when shutdown starts (or the state is gone).
        let _ = closing.wait_for(|c| *c).await;
    };
    let events = BroadcastStream::new(rx).filter_map(move |item| {
        let out = match item {
            Ok(ev) => {
                if !filter_matches(&filter, &ev.detection) {
                    None
                } else {
                    detection_event(ev.kind, &ev.detection)
                }
            }
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(
                Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
            ),
        };
        std::future::ready(out.map(Ok::<Event, std::convert::Infallible>))
    });
    let events = futures_util::stream::iter(replay.into_iter().map(Ok))
        .chain(events)
        .take_until(shutdown);
    let stream = Guarded {
        inner: Box::pin(events),
        _guard: guard,
    };
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.options().sse_keepalive))
        .into_response())
}

/// Whether a detection passes a stream filter (the stream's subset of the list filters).
pub fn filter_matches(f: &DetectionFilter, d: &Detection) -> bool {
    f.client.is_none_or(|n| n.contains(&d.client_ip))
        && f.pool
            .as_deref()
            .is_none_or(|p| p.eq_ignore_ascii_case(&d.pool_domain))
        && f.stage.is_none_or(|s| s == d.stage)
        && f.min_risk.is_none_or(|r| d.risk_score >= r)
        && f.suppressed.is_none_or(|s| s == d.suppressed)
        && f.since.is_none_or(|t| d.last_seen >= t)
        && f.until.is_none_or(|t| d.first_seen <= t)
}

struct SlotGuard(AppState);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0 .0.streams.fetch_sub(1, Ordering::AcqRel);
        streams_gauge().add(-1);
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, std::convert::Infallible>> + Send>>;

/// The event stream plus the slot it holds; the slot is freed when the client goes away.
struct Guarded {
    inner: EventStream,
    _guard: SlotGuard,
}

impl Stream for Guarded {
    type Item = Result<Event, std::convert::Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = v.parse() {
            h.insert("last-event-id", v);
        }
        h
    }

    #[test]
    fn last_event_id_parses_what_the_stream_writes() {
        let r = parse_last_event_id(&headers("1764187201050000-00066133c2e0c24025476cb9"));
        assert_eq!(
            r.ok().flatten(),
            Some(Resume {
                last_seen: Timestamp::from_micros(1_764_187_201_050_000),
                id: "00066133c2e0c24025476cb9".into()
            })
        );
        assert!(matches!(parse_last_event_id(&headers("")), Ok(None)));
        assert!(matches!(parse_last_event_id(&HeaderMap::new()), Ok(None)));
        for bad in [
            "x",
            "12-",
            "-ab",
            "12-a b",
            "99999999999999999999-ab",
            "-5-ab",
        ] {
            assert!(parse_last_event_id(&headers(bad)).is_err(), "{bad}");
        }
    }
}
