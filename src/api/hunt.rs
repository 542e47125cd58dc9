//! `GET /api/v1/hunt?name=…&since=…&limit=…`: what the DNS and flow history holds for a
//! domain (suffix semantics, like a list entry), an IP address, a CIDR or an `ip:port`
//! endpoint. Reads only: no detection is created (the retro-hunt does that on list changes).
//! The work is the [`HuntQuery`] port's (blocking sled reads), run on the blocking pool.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::handlers::params;
use super::{ApiError, AppState, ReadAccess, MAX_API_TIME, MIN_API_TIME};
use crate::model::Timestamp;
use crate::ports::{HuntQueryError, HuntRequest};

/// Lookups and flows returned by default / at most.
pub const DEFAULT_HUNT_LIMIT: usize = 1_000;
pub const MAX_HUNT_LIMIT: usize = 10_000;
/// Longest accepted `name` (a DNS name is at most 253; a CIDR or endpoint far less).
pub const MAX_HUNT_TARGET_LEN: usize = 253;

pub async fn hunt(
    _: ReadAccess,
    State(state): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = params(q, &["name", "since", "limit"])?;
    let Some(name) = p.get("name").map(|s| s.trim().to_string()) else {
        return Err(ApiError::invalid(
            "name",
            "required: a domain, an IP address, a CIDR or ip:port",
        ));
    };
    if name.is_empty() || name.len() > MAX_HUNT_TARGET_LEN {
        return Err(ApiError::invalid(
            "name",
            format!("must be 1 to {MAX_HUNT_TARGET_LEN} characters"),
        ));
    }
    let since = match p.get("since") {
        None => None,
        Some(s) => {
            let t = Timestamp::parse(s)
                .ok_or_else(|| ApiError::invalid("since", "not RFC 3339 or Unix seconds"))?;
            if !(MIN_API_TIME..=MAX_API_TIME).contains(&t) {
                return Err(ApiError::invalid(
                    "since",
                    format!(
                        "out of range: times must be from {} to {}",
                        MIN_API_TIME.to_rfc3339(),
                        MAX_API_TIME.to_rfc3339()
                    ),
                ));
            }
            Some(t)
        }
    };
    let limit = match p.get("limit") {
        None => DEFAULT_HUNT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_HUNT_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("must be a number from 1 to {MAX_HUNT_LIMIT}"),
                ))
            }
        },
    };
    let Some(hunter) = state.hunter() else {
        return Err(ApiError::Unavailable {
            code: "history_disabled",
            message: "this service keeps no history ([history] enabled = false)".into(),
        });
    };
    let req = HuntRequest {
        target: name,
        since,
        limit,
    };
    let report = tokio::task::spawn_blocking(move || hunter.hunt(&req))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "hunt task failed");
            ApiError::Internal
        })?;
    match report {
        Ok(r) => Ok(Json(r).into_response()),
        Err(HuntQueryError::Invalid(m)) => Err(ApiError::invalid("name", m)),
        Err(e) => {
            tracing::error!(error = %e, "hunt failed");
            Err(ApiError::Internal)
        }
    }
}
