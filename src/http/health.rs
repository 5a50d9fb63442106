use super::error::ApiError;
use super::openapi::bodies::{Health, Ready};
use super::openapi::errors::{self, ErrorBody};
use super::AppState;
use crate::codes::ErrorCode;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    responses(
        (status = 200, description = "The process answers (no authentication).", body = Health),
    )
)]
pub async fn healthz(State(app): State<AppState>) -> Json<Value> {
    Json(json!({"ok": true, "live_sessions": app.registry.live_count()}))
}

/// Readiness: Postgres answers (and the host is not draining).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Postgres answers (no authentication).", body = Ready),
        (status = 503, description = errors::NOT_READY, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    if app.draining.is_cancelled() {
        return Err(ApiError::new(
            ErrorCode::Draining,
            "this host is shutting down",
        ));
    }
    app.store.ping().await.map_err(|_| {
        ApiError::new(
            ErrorCode::DatabaseUnavailable,
            "the database is unavailable",
        )
    })?;
    Ok(Json(json!({"ok": true})))
}
