use super::auth::Principal;
use super::error::{echo, ApiError};
use super::extract::{JsonBody, SessionId};
use super::openapi::bodies::{SessionConfig, SessionCreated};
use super::openapi::errors::{self, ErrorBody};
use super::AppState;
use crate::agent;
use crate::codes::ErrorCode;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// `POST /sessions`: every body field is optional and unknown fields are ignored.
#[utoipa::path(
    post,
    path = "/sessions",
    operation_id = "create_session",
    tag = "sessions",
    security(("bearerToken" = []), ("jwt" = [])),
    request_body(content = SessionConfig, content_type = "application/json",
        description = "Optional; an empty body is the default config."),
    responses(
        (status = 200, description = "Created, and owned by the caller; its first event \
            (`session_ready`) is committed.", body = SessionCreated,
            links(
                ("GetSession" = (operation_id = "get_session",
                    parameters(("id" = "$response.body#/session_id")))),
                ("PostInput" = (operation_id = "post_input",
                    parameters(("id" = "$response.body#/session_id")))),
                ("ListSessionEvents" = (operation_id = "list_session_events",
                    parameters(("id" = "$response.body#/session_id")))),
                ("GetTranscript" = (operation_id = "get_transcript",
                    parameters(("id" = "$response.body#/session_id")))),
                ("DeleteSession" = (operation_id = "delete_session",
                    parameters(("id" = "$response.body#/session_id")))),
            )),
        (status = 400, description = errors::BAD_CREATE, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 413, description = errors::BODY_TOO_LARGE, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE_CREATE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    Principal(principal): Principal,
    body: Option<JsonBody<Value>>,
) -> Result<Json<Value>, ApiError> {
    let config = match body {
        Some(JsonBody(value)) => session_config(value)?,
        None => agent::SessionConfig::default(),
    };
    if app.draining.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::Draining,
            "this host is shutting down",
        ));
    }
    let id = app.registry.create(&principal, config).await?;
    Ok(Json(
        json!({"session_id": id, "protocol_version": crate::PROTOCOL_VERSION}),
    ))
}

fn session_config(value: Value) -> Result<agent::SessionConfig, ApiError> {
    // The config is stored as `jsonb`, which cannot hold U+0000 (`text`).
    if crate::text::has_nul(&value) {
        return Err(ApiError::new(
            ErrorCode::InvalidConfig,
            "U+0000 (NUL) is not allowed in a session config",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("invalid session config: {}", echo(&e.to_string())),
        )
    })
}

/// `DELETE /sessions/{id}`: `done` is committed when this answers.
#[utoipa::path(
    delete,
    path = "/sessions/{id}",
    operation_id = "delete_session",
    tag = "sessions",
    security(("bearerToken" = []), ("jwt" = [])),
    params(("id" = uuid::Uuid, Path, description = "The session.")),
    responses(
        (status = 204, description = "Closed: `done` is committed (every stream ends after \
            it) and inputs now get `410`. Deleting a closed session is `204` too.",
            links(
                // A closed session's stream replays through `done` and ends.
                ("StreamClosed" = (operation_id = "stream_session",
                    parameters(("id" = "$request.path.id")))),
            )),
        (status = 400, description = errors::BAD_PATH, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 404, description = errors::SESSION_NOT_FOUND, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE_SESSION, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    Principal(principal): Principal,
    SessionId(id): SessionId,
) -> Result<StatusCode, ApiError> {
    app.registry.close(id, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}
