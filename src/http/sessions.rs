use super::{body_error, SessionId};
use crate::agent::SessionConfig;
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::{echo, ApiError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// `POST /sessions`: every body field is optional and unknown fields are ignored.
pub async fn create(
    State(app): State<AppState>,
    Principal(principal): Principal,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = body.map_err(body_error)?;
    let config = parse_config(&body)?;
    if app.draining.is_cancelled() {
        return Err(ApiError::unavailable(
            "draining",
            "this host is shutting down",
        ));
    }
    let id = app.registry.create(&principal, config).await?;
    Ok(Json(
        json!({"session_id": id, "protocol_version": crate::PROTOCOL_VERSION}),
    ))
}

fn parse_config(body: &[u8]) -> Result<SessionConfig, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(SessionConfig::default());
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "invalid_input",
            "body must be a JSON object",
        ));
    }
    // The config is stored as `jsonb`, which cannot hold U+0000 (`store::text`).
    if crate::store::text::has_nul(&value) {
        return Err(ApiError::bad_request(
            "invalid_config",
            "U+0000 (NUL) is not allowed in a session config",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "invalid_input",
            format!("invalid session config: {}", echo(&e.to_string())),
        )
    })
}

/// `DELETE /sessions/{id}`: `done` is committed when this answers.
pub async fn delete(
    State(app): State<AppState>,
    Principal(principal): Principal,
    SessionId(id): SessionId,
) -> Result<StatusCode, ApiError> {
    app.registry.close(id, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}
