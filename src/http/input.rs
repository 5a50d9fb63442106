use super::auth::Principal;
use super::error::ApiError;
use super::extract::{JsonBody, SessionId};
use super::openapi::errors::{self, ErrorBody};
use super::openapi::inbound::InboundMessage;
use super::AppState;
use crate::codes::ErrorCode;
use crate::session::inbound::Inbound;
use crate::session::registry::Lookup;
use crate::session::{inbound, SessionError};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;
use tracing::Instrument;

/// `POST /sessions/{id}/input`: `204` once the message is recorded in Postgres.
#[utoipa::path(
    post,
    path = "/sessions/{id}/input",
    operation_id = "post_input",
    tag = "sessions",
    security(("bearerToken" = []), ("jwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session.")),
    request_body(content = InboundMessage, content_type = "application/json"),
    responses(
        (status = 204, description = "Recorded in Postgres (and queued: user messages run one \
            turn at a time)."),
        (status = 400, description = errors::BAD_INPUT, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 409, description = errors::NO_PENDING_DECISION, body = ErrorBody),
        (status = 410, description = errors::SESSION_CLOSED, body = ErrorBody),
        (status = 413, description = errors::BODY_TOO_LARGE, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE_INPUT, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn input(
    State(app): State<AppState>,
    Principal(principal): Principal,
    SessionId(id): SessionId,
    JsonBody(value): JsonBody<Value>,
) -> Result<StatusCode, ApiError> {
    let (message, value) =
        inbound::from_value(value).map_err(|e| ApiError::new(e.code, e.message))?;
    if let Inbound::PermissionResponse { correlation_id, .. }
    | Inbound::QuestionResponse { correlation_id, .. } = &message
    {
        tracing::Span::current().record("correlation_id", correlation_id.as_str());
    }
    let registry = app.registry.clone();
    // Recording the input and queueing it happen together or not at all: in a task of their
    // own, so a request timeout or a client that hangs up cannot cut between the two. On a
    // host that does not own the session it is recorded for the owner (`session::forward`).
    let accept = async move {
        match registry.lookup(id, &principal).await? {
            Lookup::Live(session) => session.input(message, &value, &principal).await,
            Lookup::Closed { .. } => Err(SessionError::Closed),
            Lookup::Elsewhere { .. } => registry.forward(id, &principal, message, &value).await,
        }
    };
    tokio::spawn(accept.instrument(tracing::Span::current()))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "input task failed");
            ApiError::new(ErrorCode::Internal, "internal error")
        })??;
    Ok(StatusCode::NO_CONTENT)
}
