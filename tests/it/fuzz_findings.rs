//! Regression tests for what schemathesis (`tests/it/schemathesis.rs`) found, one per finding,
//! so each stays fixed even if a later fuzzing run does not happen to generate it again.

use crate::support::{TestDb, TestServer, ADMIN_TOKEN};
use serde_json::json;

/// Postgres' `jsonb` prints a stored `1.7976931348623157e308` as 309 digits; read back with
/// serde_json's fast float parser those overflowed, and `GET /audit/inputs` (the input's
/// `body`) and `GET /sessions/{id}` (the session's `config`) panicked, closing the connection
/// without an answer. Found by schemathesis in a `question_response`'s `answers`.
#[tokio::test]
async fn the_largest_floats_read_back_from_jsonb() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let big = 1.797_693_134_862_315_7e308_f64;
    let (status, _, body) = api
        .create_raw(&json!({"fixture": "plain_qa", "hooks": {"n": big}}).to_string())
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["session_id"].as_str().unwrap().to_owned();
    let status = api
        .input(
            &id,
            json!({"type": "user_message", "content": "hi", "extra": [big, -big, 5e-324]}),
        )
        .await;
    assert_eq!(status, 204);

    let (status, session) = api.get_json(&format!("/sessions/{id}")).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["config"]["hooks"]["n"], big);

    let admin = api.with_token(ADMIN_TOKEN);
    let (status, page) = admin
        .get_json(&format!("/audit/inputs?session_id={id}"))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["inputs"][0]["body"]["extra"],
        json!([big, -big, 5e-324])
    );
    server.stop().await;
}

/// A console asset name that does not percent-decode to UTF-8 got axum's plain-text `400`,
/// the one answer outside `{code, message}` and outside the document. Found by probing the
/// content types schemathesis checks (its own generator sends only valid UTF-8 here).
#[tokio::test]
async fn an_undecodable_console_asset_name_is_a_json_400() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let r = reqwest::get(format!("{}/console/assets/%FF.js", server.api.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_path", "{body}");
    server.stop().await;
}
