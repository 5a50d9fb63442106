//! The OpenAPI 3.1 document, generated from the code with `utoipa`.
//!
//! Each handler carries its `#[utoipa::path]` (method, path, parameters, every status and the
//! error codes it can carry); `http::api_routes` registers the handlers through
//! `utoipa_axum`, so the router and the document come from one list and no route can be
//! served undocumented. This module holds what is only for the document: the types of bodies
//! the handlers build as ad-hoc JSON (`bodies`, `inbound`, `events`, `params`; each says so),
//! the security schemes, and `GET /openapi.json`.
//!
//! `docs/openapi.json` is this document committed; `tests/it/openapi.rs` fails when they
//! differ (`AGENT_WEBKIT_WRITE_OPENAPI=1` rewrites it).

pub mod bodies;
pub mod errors;
pub mod events;
mod fixes;
pub mod inbound;
pub mod params;

use axum::http::header;
use axum::response::IntoResponse;
use std::sync::OnceLock;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;
use utoipa::Modify;

/// The security requirement of every authenticated operation: either scheme.
pub const BEARER: &str = "bearerToken";
pub const JWT: &str = "jwt";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "agent-webkit-server",
        description = "Durable Claude agent sessions over HTTP and Server-Sent Events (wire \
            protocol 1.0), Postgres as the source of truth. Every error is JSON \
            `{code, message}` with a stable `code`; each response lists the codes it can carry.",
        license(name = "MIT", identifier = "MIT"),
    ),
    components(schemas(events::SseEvent, inbound::InboundMessage)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "sessions", description = "Create, drive, stream and delete sessions."),
        (name = "history", description = "What sessions did: metadata, stored events, transcripts."),
        (name = "audit", description = "Admins: the audit log across sessions, and the hosts."),
        (name = "operations", description = "Health, readiness, metrics and this document."),
        (name = "console", description = "The operator console (a browser page)."),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The static token (`AGENT_WEBKIT_AUTH_TOKEN`, principal `token`) or the \
                         admin token (`AGENT_WEBKIT_ADMIN_TOKEN`, principal `admin`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            JWT,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT (HS256 with `AGENT_WEBKIT_JWT_SECRET`, RS256/ES256 with \
                         `--jwt-public-key-file`): `sub` is the principal, `exp` required, \
                         `iss`/`aud` checked when configured; `--jwt-admin-claim` makes admins.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document, built from the routes (`http::api_routes`).
pub fn document() -> OpenApi {
    let mut doc = super::api_routes().split_for_parts().1;
    fixes::optional_create_body(&mut doc);
    doc
}

/// The document as served and committed: pretty JSON and a final newline.
pub fn json() -> String {
    let mut value = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    fixes::link_field_names(&mut value);
    fixes::sse_data_as_json_text(&mut value);
    let mut text = serde_json::to_string_pretty(&value).expect("JSON serializes");
    text.push('\n');
    text
}

/// `GET /openapi.json`: this document (no authentication).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", body = Object,
            content_type = "application/json"),
    )
)]
pub async fn serve() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    (
        [(header::CONTENT_TYPE, "application/json")],
        JSON.get_or_init(json).as_str(),
    )
}
