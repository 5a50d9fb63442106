//! The HTTP surface: its state, routes, the extractors shared by handlers, authentication
//! ([`auth`]) and the error type ([`error`]). Handlers stay thin: extract, call into `session`
//! (live sessions) or `store` (history, audit, hosts), map the result.

mod audit;
pub mod auth;
pub mod conn;
pub mod console;
pub mod error;
pub mod extract;
mod health;
mod history;
mod hosts;
mod hyper_conn;
mod input;
pub mod limits;
pub mod listener;
mod metrics;
pub mod openapi;
mod sessions;
mod sse_conn;
mod stream;
mod trace;

use crate::codes::ErrorCode;
use crate::config::HttpSettings;
use crate::session::registry::Registry;
use crate::store::Store;
use auth::Auth;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue, Method};
use axum::routing::get;
use axum::Router;
use error::{echo, ApiError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

/// What every handler may reach.
#[derive(Clone)]
pub struct AppState {
    /// The sessions this host serves, owns or follows.
    pub registry: Arc<Registry>,
    /// History, audit and hosts are read from the database directly.
    pub store: Store,
    pub auth: Arc<Auth>,
    pub settings: Arc<HttpSettings>,
    /// The hosts' lease: an `active` session whose owner is silent longer shows as dormant.
    pub lease: Duration,
    /// Cancelled when the host starts shutting down: `/readyz` fails, creation is refused.
    pub draining: CancellationToken,
}

impl axum::extract::FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Arc<Auth> {
        state.auth.clone()
    }
}

/// Every documented route, each handler with its `#[utoipa::path]`: the router and the
/// OpenAPI document (`openapi::document`) are both built from this list.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(sessions::create, history::list))
        .routes(routes!(sessions::delete, history::show))
        .routes(routes!(history::events))
        .routes(routes!(history::transcript))
        .routes(routes!(audit::events))
        .routes(routes!(audit::inputs))
        .routes(routes!(stream::stream))
        .routes(routes!(input::input))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::scrape))
        .routes(routes!(hosts::list))
        .routes(routes!(console::index))
        .routes(routes!(console::asset))
        .routes(routes!(openapi::serve))
}

pub fn router(state: AppState) -> Router {
    let (routes, _) = api_routes().split_for_parts();
    routes
        // The same page as `/console`, undocumented.
        .route("/console/", get(console::index))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        // After every route: it applies to the routes registered before it. axum adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            declared_length,
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
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(method_not_allowed)
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
    match tokio::time::timeout(app.settings.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            "the request took too long (the server is overloaded); retry",
        )
        .into_response(),
    }
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{} is not allowed on this route", echo(method.as_str())),
    )
}

/// A body declared (`Content-Length`) over `--max-body-bytes` is refused at once from the
/// header, before any of it is read (a client need not send it, and nobody waits for it),
/// and the answer closes the connection, so none of the body is ever read as a request.
async fn declared_length(
    axum::extract::State(app): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let limit = u64::try_from(app.settings.max_body_bytes).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit) {
        let mut response = extract::body_too_large().into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}
