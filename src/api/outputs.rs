//! `GET /api/v1/outputs`: the state of every alert sink (backlog, delivered, dropped, last
//! success and error), from the output stage's in-memory status and the outbox counters.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::{AppState, ReadAccess};

pub async fn list(_: ReadAccess, State(state): State<AppState>) -> Json<Value> {
    let items = state
        .0
        .outputs
        .get()
        .map(|o| o.status())
        .unwrap_or_default();
    Json(json!({ "items": items }))
}
