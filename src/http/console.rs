//! The operator console (`GET /console`): a single page of hand-written ES modules and CSS from
//! `console/`, compiled into the binary so a deployment is still one file with no build step
//! and no CDN. The assets hold no data, so they need no token; the page asks for one and then
//! is only a client of the same API, with the same isolation as any other.
//!
//! Every console response carries a strict Content-Security-Policy: scripts, styles and
//! connections from this origin only, no inline script or style, no framing, no form posts.
//! The console renders event content as text, and the policy is the second wall should a
//! bug ever let markup through.

use super::error::ApiError;
use super::openapi::errors::{self, ErrorBody};
use crate::codes::ErrorCode;
use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The console's Content-Security-Policy (`img-src data:` for the empty favicon).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const JS: &str = "text/javascript; charset=utf-8";

/// `console/<name>` served at `/console/assets/<name>`, with its content type.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../console/app.js")),
    ("api.js", JS, include_str!("../../console/api.js")),
    ("sse.js", JS, include_str!("../../console/sse.js")),
    ("dom.js", JS, include_str!("../../console/dom.js")),
    ("export.js", JS, include_str!("../../console/export.js")),
    ("sessions.js", JS, include_str!("../../console/sessions.js")),
    ("session.js", JS, include_str!("../../console/session.js")),
    ("timeline.js", JS, include_str!("../../console/timeline.js")),
    ("audit.js", JS, include_str!("../../console/audit.js")),
    ("hosts.js", JS, include_str!("../../console/hosts.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../console/style.css"),
    ),
];

const INDEX: &str = include_str!("../../console/index.html");

/// `GET /console` (and `/console/`): the page.
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "console",
    tag = "console",
    responses(
        (status = 200, description = "The console's page (no authentication: it asks for a \
            token and keeps it in the tab's memory).", body = String,
            content_type = "text/html; charset=utf-8"),
    )
)]
pub async fn index() -> Response {
    serve("text/html; charset=utf-8", INDEX)
}

/// `GET /console/assets/{name}`: a module or the stylesheet; anything else `404`.
#[utoipa::path(
    get,
    path = "/console/assets/{name}",
    operation_id = "console_asset",
    tag = "console",
    params(("name" = String, Path, example = "app.js",
        description = "An asset: `app.js`, `style.css`, ...")),
    responses(
        (status = 200, description = "A module or the stylesheet (no authentication).",
            content(
                (String = "text/javascript; charset=utf-8"),
                (String = "text/css; charset=utf-8"),
            )),
        (status = 400, description = errors::BAD_PATH, body = ErrorBody),
        (status = 404, description = errors::NO_SUCH_ASSET, body = ErrorBody),
    )
)]
pub async fn asset(name: Result<Path<String>, PathRejection>) -> Response {
    let Path(name) = match name {
        Ok(name) => name,
        Err(rejection) => return super::extract::path_error(rejection).into_response(),
    };
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, body)) => serve(content_type, body),
        None => ApiError::new(ErrorCode::NotFound, "no such route").into_response(),
    }
}

fn serve(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        // Small, and a new binary must never run with an old tab's modules.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (headers, body).into_response()
}
