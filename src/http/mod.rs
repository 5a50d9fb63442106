//! The HTTP surface: routes and the extractors shared by handlers. Handlers stay thin: extract,
//! call into `session`, map the result.

mod audit;
pub mod conn;
mod health;
mod history;
mod hyper_conn;
mod input;
pub mod limits;
pub mod listener;
mod metrics;
mod sessions;
mod sse_conn;
mod stream;
mod trace;

use crate::app::AppState;
use crate::error::ApiError;
use axum::extract::rejection::BytesRejection;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/sessions", post(sessions::create).get(history::list))
        .route(
            "/sessions/{id}",
            axum::routing::delete(sessions::delete).get(history::show),
        )
        .route("/sessions/{id}/events", get(history::events))
        .route("/audit/events", get(audit::events))
        .route("/audit/inputs", get(audit::inputs))
        .route("/sessions/{id}/stream", get(stream::stream))
        .route("/sessions/{id}/input", post(input::input))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline,
        ))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(trace::request_span(state.registry.deps.host_id))
                .on_response(trace::record_status)
                .on_failure(trace::on_failure),
        )
        .with_state(state)
}

/// The router of `--metrics-listen`: `/metrics` without authentication, nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape_open))
        .with_state(state)
}

/// Every request is answered within `--request-timeout`: past it, `503 request_timeout` with
/// `Retry-After`. Work a handler started that must not be cut in half (recording an input and
/// queueing it) runs in its own task, so dropping the handler here only drops the wait.
async fn deadline(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(app.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(
            "request_timeout",
            "the request took too long (the server is overloaded); retry",
        )
        .into_response(),
    }
}

/// A session id from the path. Anything that is not a UUID cannot name a session: `404`.
fn session_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found())
}

/// The query string as `name=value` pairs, for `audit::params`.
fn query_pairs(
    query: Result<
        axum::extract::Query<Vec<(String, String)>>,
        axum::extract::rejection::QueryRejection,
    >,
) -> Result<Vec<(String, String)>, ApiError> {
    query
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

/// Maps body read failures: over the limit is `413`, anything else `400`.
fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "request body is over the size limit",
        )
    } else {
        ApiError::bad_request("bad_body", rejection.body_text())
    }
}
