//! The audit log over HTTP, for admins: `GET /audit/events` and `GET /audit/inputs`, across
//! sessions in time order (oldest first), with keyset cursors. The filters and the SQL are the
//! CLI's (`audit::params`, `store::audit`).

use super::auth::Admin;
use super::error::ApiError;
use super::extract::QueryPairs;
use super::history::next_cursor;
use super::openapi::bodies::{EventPage, InputPage};
use super::openapi::errors::{self, ErrorBody};
use super::openapi::params::{AuditEventsQuery, AuditInputsQuery};
use super::AppState;
use crate::audit::cursor::Cursor;
use crate::audit::params;
use crate::store::audit;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use std::time::SystemTime;

/// `GET /audit/events?session_id=&event=&tool_name=&correlation_id=&since=&until=&contains=`
#[utoipa::path(
    get,
    path = "/audit/events",
    operation_id = "list_audit_events",
    tag = "audit",
    security(("bearerToken" = []), ("jwt" = [])),
    params(AuditEventsQuery),
    responses(
        (status = 200, description = "Events across sessions, oldest first.", body = EventPage),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = errors::ADMIN_REQUIRED, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    _: Admin,
    QueryPairs(query): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let page = params::events(&query, SystemTime::now())?;
    let store = &app.store;
    let rows = audit::events(store, &page.filter, page.after, page.limit).await?;
    let next = next_cursor(&rows, page.limit, |r| Cursor::Events(r.key()));
    Ok(Json(json!({"events": rows, "next_cursor": next})))
}

/// `GET /audit/inputs?session_id=&principal=&type=&status=&correlation_id=&since=&until=`
#[utoipa::path(
    get,
    path = "/audit/inputs",
    operation_id = "list_audit_inputs",
    tag = "audit",
    security(("bearerToken" = []), ("jwt" = [])),
    params(AuditInputsQuery),
    responses(
        (status = 200, description = "Inbound messages with principal and outcome, oldest \
            first.", body = InputPage),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = errors::ADMIN_REQUIRED, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn inputs(
    State(app): State<AppState>,
    _: Admin,
    QueryPairs(query): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let page = params::inputs(&query, SystemTime::now())?;
    let store = &app.store;
    let rows = audit::inputs(store, &page.filter, page.after, page.limit).await?;
    let next = next_cursor(&rows, page.limit, |r| Cursor::Inputs(r.key()));
    Ok(Json(json!({"inputs": rows, "next_cursor": next})))
}
