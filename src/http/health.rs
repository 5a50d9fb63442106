use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

/// Liveness: the process answers.
pub async fn healthz(State(app): State<AppState>) -> Json<Value> {
    Json(json!({"ok": true, "live_sessions": app.registry.live_count()}))
}

/// Readiness: Postgres answers (and the host is not draining).
pub async fn readyz(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    if app.draining.is_cancelled() {
        return Err(ApiError::unavailable(
            "draining",
            "this host is shutting down",
        ));
    }
    app.registry.deps.store.ping().await.map_err(|_| {
        ApiError::unavailable("database_unavailable", "the database is unavailable")
    })?;
    Ok(Json(json!({"ok": true})))
}
