//! The HTTP surface: routes and the extractors shared by handlers. Handlers stay thin: extract,
//! call into `session`, map the result.

mod audit;
pub mod conn;
pub mod console;
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

use crate::app::AppState;
use crate::error::{echo, ApiError};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

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
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        // After every route: it applies to the routes registered before it. axum adds `Allow`.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
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
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
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
    match tokio::time::timeout(app.config.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::unavailable(
            "request_timeout",
            "the request took too long (the server is overloaded); retry",
        )
        .into_response(),
    }
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
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
    let limit = u64::try_from(app.config.max_body_bytes).unwrap_or(u64::MAX);
    if declared.is_some_and(|n| n > limit) {
        let mut response = body_too_large().into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    next.run(request).await
}

/// A session id from the path. A path that does not decode (`%FF`) is `400 invalid_path`;
/// anything that is not a UUID cannot name a session: `404`.
pub struct SessionId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Uuid::parse_str(&raw)
            .map(SessionId)
            .map_err(|_| ApiError::not_found())
    }
}

fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", rejection.body_text())
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
        body_too_large()
    } else {
        ApiError::bad_request("bad_body", rejection.body_text())
    }
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        "request body is over the size limit",
    )
}
