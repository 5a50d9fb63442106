//! One span per request, named by its route template (low cardinality), continuing the
//! caller's trace when it sends a W3C `traceparent`.
//!
//! Health and metrics probes get debug-level spans, so the default `info` filter neither logs
//! nor exports them. Handlers fill in what only they know (`correlation_id`, `event_seq`) with
//! `Span::current().record(..)`; the status is recorded when the response head is ready.

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use std::time::Duration;
use tower_http::classify::ServerErrorsFailureClass;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const PROBES: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The `make_span` of the router's `TraceLayer`.
pub fn request_span<B>(host_id: i32) -> impl Fn(&Request<B>) -> Span + Clone {
    move |req: &Request<B>| {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str);
        let method = req.method().as_str();
        let name = format!("{method} {route}");
        // `/sessions/{id}/...`: the id is the path's second segment.
        let session_id = route
            .starts_with("/sessions/{id}")
            .then(|| req.uri().path().split('/').nth(2))
            .flatten();
        macro_rules! span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "http.request",
                    otel.name = name,
                    otel.kind = "server",
                    otel.status_code = Empty,
                    http.request.method = method,
                    http.route = route,
                    http.response.status_code = Empty,
                    session_id,
                    host_id,
                    protocol_version = crate::PROTOCOL_VERSION,
                    correlation_id = Empty,
                    event_seq = Empty,
                )
            };
        }
        let span = if PROBES.contains(&route) {
            span!(tracing::Level::DEBUG)
        } else {
            span!(tracing::Level::INFO)
        };
        if req.headers().contains_key("traceparent") {
            // Fails only when no OpenTelemetry layer is installed: nothing to continue then.
            let _ = span.set_parent(crate::telemetry::parent_from_headers(req.headers()));
        }
        span
    }
}

/// The `on_response` of the router's `TraceLayer`: records the status on the span.
pub fn record_status<B>(response: &Response<B>, _latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The `on_failure` of the router's `TraceLayer`: 5xx answers are already recorded on the span
/// and logged where they arise; under load a log line per `503` would only add to the load.
pub fn on_failure(_class: ServerErrorsFailureClass, _latency: Duration, _span: &Span) {}
