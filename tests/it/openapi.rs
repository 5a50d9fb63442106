//! The OpenAPI document: served at `GET /openapi.json` without a token, and committed as
//! `docs/openapi.json` so clients can be generated without running the server. The two must
//! not differ: `AGENT_WEBKIT_WRITE_OPENAPI=1 cargo test --test it openapi` rewrites the file.

use crate::support::{TestDb, TestServer};
use serde_json::Value;
use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
}

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    // No token: the document is public.
    let r = reqwest::get(format!("{}/openapi.json", server.api.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let served = r.text().await.unwrap();
    server.stop().await;
    assert_eq!(served, agent_webkit_server::http::openapi::json());

    let path = committed_path();
    if std::env::var_os("AGENT_WEBKIT_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == served,
        "docs/openapi.json differs from the document the server serves; regenerate it with\n    \
         AGENT_WEBKIT_WRITE_OPENAPI=1 cargo test --test it the_served_document_is_the_committed_one\n\
         and commit it"
    );
}

/// Every route the router serves, and nothing else, is in the document (the router is built
/// from the same list, `http::api_routes`; this pins the list).
#[test]
fn every_route_is_documented_with_its_operation_id() {
    let doc: Value = serde_json::from_str(&agent_webkit_server::http::openapi::json()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push(format!(
                "{} {path} {}",
                method.to_uppercase(),
                op["operationId"].as_str().unwrap()
            ));
        }
    }
    ops.sort();
    let want = [
        "DELETE /sessions/{id} delete_session",
        "GET /audit/events list_audit_events",
        "GET /audit/inputs list_audit_inputs",
        "GET /console console",
        "GET /console/assets/{name} console_asset",
        "GET /healthz healthz",
        "GET /hosts list_hosts",
        "GET /metrics metrics",
        "GET /openapi.json openapi",
        "GET /readyz readyz",
        "GET /sessions list_sessions",
        "GET /sessions/{id} get_session",
        "GET /sessions/{id}/events list_session_events",
        "GET /sessions/{id}/stream stream_session",
        "GET /sessions/{id}/transcript get_transcript",
        "POST /sessions create_session",
        "POST /sessions/{id}/input post_input",
    ];
    assert_eq!(ops, want);
    // Each inbound type is a named schema of the body's oneOf, discriminated on `type`.
    let body = &doc["components"]["schemas"]["InboundMessage"];
    assert_eq!(body["discriminator"]["propertyName"], "type");
    assert_eq!(body["oneOf"].as_array().unwrap().len(), 7);
    // Each event of the catalogue.
    let events = doc["components"]["schemas"]["SseEvent"]["oneOf"]
        .as_array()
        .unwrap();
    assert_eq!(events.len(), agent_webkit_server::frame::names::ALL.len());
}
