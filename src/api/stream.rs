//! `GET /api/v1/detections/stream`: Server-Sent Events of new and upgraded detections.
//!
//! Event name = `new` | `upgraded`, data = the detection JSON. A subscriber that falls behind the
//! broadcast buffer gets a `lagged` event with the number of events it missed (the feed is
//! lossy by design: the store is the record; a client re-syncs with `GET /detections?since=`).

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::handlers::{params, parse_filter};
use super::{ApiError, AppState, ReadAccess};
use crate::model::Detection;
use crate::query::DetectionFilter;

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

pub async fn detections_stream(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, STREAM_PARAMS)?;
    let filter = parse_filter(&p)?;
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
    let rx = state.events().subscribe();
    let mut closing = state.0.closing.subscribe();
    let shutdown = async move {
        // Ends when shutdown starts (or the state is gone).
        let _ = closing.wait_for(|c| *c).await;
    };
    let events = BroadcastStream::new(rx)
        .filter_map(move |item| {
            let out = match item {
                Ok(ev) => {
                    if !filter_matches(&filter, &ev.detection) {
                        None
                    } else {
                        Event::default()
                            .event(ev.kind.as_str())
                            .json_data(&ev.detection)
                            .ok()
                    }
                }
                Err(BroadcastStreamRecvError::Lagged(n)) => Some(
                    Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}")),
                ),
            };
            std::future::ready(out.map(Ok::<Event, std::convert::Infallible>))
        })
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
