//! Session history for UIs: `GET /sessions`, `GET /sessions/{id}`, `GET /sessions/{id}/events`,
//! `GET /sessions/{id}/transcript`.
//!
//! A principal sees its own sessions only; someone else's session is `404` exactly like a
//! missing one, so not even its existence leaks. Admins see every session (read-only: live
//! interaction stays with the owner, see `auth`).

use super::auth::Caller;
use super::error::ApiError;
use super::extract::{QueryPairs, SessionId};
use super::openapi::bodies::{EventPage, Session, SessionPage, TranscriptPage};
use super::openapi::errors::{self, ErrorBody};
use super::openapi::params::{SessionEventsQuery, SessionsQuery, TranscriptQuery};
use super::AppState;
use crate::audit::cursor::{self, Cursor};
use crate::audit::params;
use crate::store::{audit, transcripts};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::time::SystemTime;

/// The principal whose sessions `caller` may read (`None`: all).
fn scope(caller: &Caller) -> Option<&str> {
    (!caller.admin).then_some(caller.principal.as_str())
}

/// `GET /sessions`: newest first; `?status=&since=&until=&cursor=&limit=` (admins also
/// `principal=`).
#[utoipa::path(
    get,
    path = "/sessions",
    operation_id = "list_sessions",
    tag = "history",
    security(("bearerToken" = []), ("jwt" = [])),
    params(SessionsQuery),
    responses(
        (status = 200, description = "The caller's sessions, newest first (admins: \
            everyone's).", body = SessionPage),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    QueryPairs(query): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let mut page = params::sessions(&query, SystemTime::now())?;
    page.filter.lease = app.lease;
    if let Some(me) = scope(&caller) {
        if page.filter.principal.as_deref().is_some_and(|p| p != me) {
            return Ok(Json(json!({"sessions": [], "next_cursor": null})));
        }
        page.filter.principal = Some(me.to_owned());
    }
    let store = &app.store;
    let rows = audit::sessions(store, &page.filter, page.after, page.limit).await?;
    let next = next_cursor(&rows, page.limit, |r| Cursor::Sessions(r.key()));
    Ok(Json(json!({"sessions": rows, "next_cursor": next})))
}

/// `GET /sessions/{id}`: metadata and config.
#[utoipa::path(
    get,
    path = "/sessions/{id}",
    operation_id = "get_session",
    tag = "history",
    security(("bearerToken" = []), ("jwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session.")),
    responses(
        (status = 200, description = "The session's metadata and config.", body = Session),
        (status = 400, description = errors::BAD_PATH, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn show(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
) -> Result<Json<Value>, ApiError> {
    let store = &app.store;
    match audit::session(store, id, scope(&caller), app.lease).await? {
        Some(row) => Ok(Json(json!(row))),
        None => Err(ApiError::not_found()),
    }
}

/// `GET /sessions/{id}/events?after=&event=&limit=`: the stored events in seq order, for UIs
/// rebuilding after a `412` or a reload. Each has the SSE `id` to resume the stream from.
#[utoipa::path(
    get,
    path = "/sessions/{id}/events",
    operation_id = "list_session_events",
    tag = "history",
    security(("bearerToken" = []), ("jwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session."), SessionEventsQuery),
    responses(
        (status = 200, description = "Stored events in seq order.", body = EventPage),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
    QueryPairs(query): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let (after, event, limit) = params::session_events(&query)?;
    let store = &app.store;
    if !audit::visible(store, id, scope(&caller)).await? {
        return Err(ApiError::not_found());
    }
    let rows = audit::session_events(store, id, after, event, limit).await?;
    let next = next_cursor(&rows, limit, |r| Cursor::SessionEvents(r.id));
    Ok(Json(json!({"events": rows, "next_cursor": next})))
}

/// `GET /sessions/{id}/transcript?cursor=&limit=`: what the model was given (the Claude CLI's
/// mirrored transcript, `store::transcripts`) in keyset pages of `{seq, file, uuid, entry}`;
/// with `Accept: application/x-ndjson`, one file whole (`?file=`, default the main
/// transcript), exactly the lines the CLI wrote.
#[utoipa::path(
    get,
    path = "/sessions/{id}/transcript",
    operation_id = "get_transcript",
    tag = "history",
    security(("bearerToken" = []), ("jwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session."), TranscriptQuery),
    responses(
        (status = 200, description = "`--agent claude`: what the model was given, in keyset \
            pages (empty for other runtimes); with `Accept: application/x-ndjson`, one file \
            whole, exactly the lines the CLI wrote.",
            content(
                (TranscriptPage = "application/json"),
                (String = "application/x-ndjson"),
            )),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn transcript(
    State(app): State<AppState>,
    caller: Caller,
    SessionId(id): SessionId,
    headers: HeaderMap,
    QueryPairs(query): QueryPairs,
) -> Result<Response, ApiError> {
    let (after, limit, file) = params::transcript(&query)?;
    let store = &app.store;
    if !audit::visible(store, id, scope(&caller)).await? {
        return Err(ApiError::not_found());
    }
    let ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if ndjson {
        let files = transcripts::load(store, id).await?;
        let chosen = match &file {
            Some(name) => files.into_iter().find(|(f, _)| f == name),
            None => files.into_iter().find(|(f, _)| !f.contains('/')),
        };
        let mut body = String::new();
        for line in chosen.map(|(_, entries)| entries).unwrap_or_default() {
            body.push_str(&line);
            body.push('\n');
        }
        return Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response());
    }
    let rows = transcripts::page(store, id, after as u64, limit).await?;
    let next = next_cursor(&rows, limit, |r| Cursor::Transcript(r.seq as i64));
    let entries: Vec<Value> = rows
        .iter()
        .map(|r| {
            let entry: Value = serde_json::from_str(&r.json).unwrap_or(Value::Null);
            json!({"seq": r.seq, "file": &*r.file, "uuid": r.uuid, "entry": entry})
        })
        .collect();
    Ok(Json(json!({"entries": entries, "next_cursor": next})).into_response())
}

/// The cursor after the last row of a full page; `None` when the page shows the end.
pub fn next_cursor<R>(rows: &[R], limit: i64, key: impl Fn(&R) -> Cursor) -> Option<String> {
    if (rows.len() as i64) < limit {
        return None;
    }
    rows.last().map(|r| cursor::encode(&key(r)))
}
