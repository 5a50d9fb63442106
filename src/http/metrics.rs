use super::auth::Admin;
use super::openapi::errors::{self, ErrorBody};
use super::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// `GET /metrics` on the main listener: admins only (the admin token or a JWT with the admin
/// claim; `403 admin_required` for anyone else), like the audit log. The numbers describe the
/// whole host, every principal's sessions included, so any API user is too many; a scraper
/// without an admin credential uses `--metrics-listen`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    security(("bearerToken" = []), ("jwt" = [])),
    responses(
        (status = 200, description = "Prometheus text format 0.0.4 (README, \
            \"Operating it\", lists every metric).", body = String,
            content_type = "text/plain; version=0.0.4; charset=utf-8"),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = errors::ADMIN_REQUIRED, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn scrape(State(app): State<AppState>, _admin: Admin) -> impl IntoResponse {
    render(&app)
}

/// `GET /metrics` on `--metrics-listen`: no authentication (the address is the guard).
pub async fn scrape_open(State(app): State<AppState>) -> impl IntoResponse {
    render(&app)
}

fn render(app: &AppState) -> impl IntoResponse {
    let deps = &app.registry.deps;
    // Numbers the server keeps anyway are read now rather than mirrored on every change.
    deps.metrics
        .sessions_live
        .set(app.registry.live_count() as f64);
    deps.metrics.writer_queue.set(deps.writer.queued() as f64);
    deps.metrics
        .writer_queue_bytes
        .set(deps.writer.queued_bytes() as f64);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        deps.metrics.render(),
    )
}
