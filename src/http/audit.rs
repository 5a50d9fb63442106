//! The audit log over HTTP, for admins: `GET /audit/events` and `GET /audit/inputs`, across
//! sessions in time order (oldest first), with keyset cursors. The filters and the SQL are the
//! CLI's (`audit::params`, `store::audit`).

use super::history::next_cursor;
use super::query_pairs;
use crate::app::AppState;
use crate::audit::cursor::Cursor;
use crate::audit::params;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::store::audit;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::time::SystemTime;

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// `GET /audit/events?session_id=&event=&tool_name=&correlation_id=&since=&until=&contains=`
pub async fn events(
    State(app): State<AppState>,
    _: Admin,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let page = params::events(&query_pairs(query)?, SystemTime::now())?;
    let store = &app.registry.deps.store;
    let rows = audit::events(store, &page.filter, page.after, page.limit).await?;
    let next = next_cursor(&rows, page.limit, |r| Cursor::Events(r.key()));
    Ok(Json(json!({"events": rows, "next_cursor": next})))
}

/// `GET /audit/inputs?session_id=&principal=&type=&status=&correlation_id=&since=&until=`
pub async fn inputs(
    State(app): State<AppState>,
    _: Admin,
    query: Pairs,
) -> Result<Json<Value>, ApiError> {
    let page = params::inputs(&query_pairs(query)?, SystemTime::now())?;
    let store = &app.registry.deps.store;
    let rows = audit::inputs(store, &page.filter, page.after, page.limit).await?;
    let next = next_cursor(&rows, page.limit, |r| Cursor::Inputs(r.key()));
    Ok(Json(json!({"inputs": rows, "next_cursor": next})))
}
