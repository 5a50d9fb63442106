use super::auth::Principal;
use super::error::{echo, ApiError};
use super::extract::SessionId;
use super::openapi::errors::{self, ErrorBody};
use super::openapi::events::SseEvent;
use super::sse_conn::Handoff;
use super::AppState;
use crate::codes::ErrorCode;
use crate::session::registry::Lookup;
use crate::session::subscription::Subscription;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use axum::Extension;
use std::convert::Infallible;

/// `GET /sessions/{id}/stream`: SSE from `Last-Event-ID` (exclusive) onwards.
#[utoipa::path(
    get,
    path = "/sessions/{id}/stream",
    operation_id = "stream_session",
    tag = "sessions",
    security(("bearerToken" = []), ("jwt" = [])),
    params(
        ("id" = uuid::Uuid, Path, description = "The session."),
        ("Last-Event-ID" = Option<String>, Header, nullable = false, pattern = "^[0-9]*$",
            description = "Resume after this event id (exclusive); absent or empty: from the \
            start."),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: `id: <seq>\\nevent: <name>\\ndata: \
            <json>\\n\\n` per event (`SseEvent` gives each name's `data`), `session_ready` \
            first, a `: keepalive` comment while idle. Endless while the session lives; ends \
            after `done`. The connection closes with the stream.",
            content_type = "text/event-stream", body = SseEvent),
        (status = 400, description = errors::BAD_STREAM, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 412, description = errors::PRECONDITION, body = ErrorBody),
        (status = 429, description = errors::TOO_MANY_SUBSCRIBERS, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE_SESSION, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn stream(
    State(app): State<AppState>,
    Principal(principal): Principal,
    SessionId(id): SessionId,
    handoff: Option<Extension<Handoff>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let after = last_event_id(&headers)?;
    tracing::Span::current().record("event_seq", after);
    let (log, closed_last) = match app.registry.lookup(id, &principal).await? {
        Lookup::Live(session) => (Some(session.log.clone()), 0),
        Lookup::Closed { last_seq } => (None, last_seq),
        // Another live host owns it: followed from the table (`session::follow`).
        Lookup::Elsewhere { .. } => (Some(app.registry.follow(id, &principal).await?), 0),
    };
    let subscription = Subscription::open(&app.registry.deps, id, log, closed_last, after).await?;
    let body = match handoff {
        // Served by `sse_conn`, which writes the subscription's chunks to the socket itself.
        Some(Extension(handoff)) => {
            handoff.put(subscription);
            Body::empty()
        }
        None => Body::from_stream(futures::stream::unfold(
            subscription,
            |mut sub| async move {
                let chunk = sub.next_chunk().await?;
                Some((Ok::<_, Infallible>(chunk), sub))
            },
        )),
    };
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    // A stream is the last response its connection carries (`sse_conn` says so itself): hyper
    // closes after it and runs nothing pipelined behind it.
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

/// Absent or empty: from the start. Otherwise a non-negative integer, or `400`.
fn last_event_id(headers: &HeaderMap) -> Result<u64, ApiError> {
    let Some(raw) = headers.get("last-event-id") else {
        return Ok(0);
    };
    let text = raw.to_str().unwrap_or("?").trim();
    if text.is_empty() {
        return Ok(0);
    }
    text.parse::<u64>().map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidLastEventId,
            format!(
                "Last-Event-ID must be a non-negative integer, got {:?}",
                echo(text)
            ),
        )
    })
}
