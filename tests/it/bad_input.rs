//! Each kind of bad input gets a 4xx with a JSON `{code, message}`, and changes nothing.

use crate::support::{TestDb, TestServer};
use serde_json::Value;

fn assert_error(status: reqwest::StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn bad_inputs_are_4xx_with_a_code() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.max_body_bytes = 64 * 1024;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("read_allow").await;

    let cases: &[(&str, u16, &str)] = &[
        ("{", 400, "invalid_json"),
        ("", 400, "invalid_json"),
        ("[1,2]", 400, "invalid_input"),
        (r#"{"content":"no type"}"#, 400, "invalid_input"),
        (r#"{"type":5}"#, 400, "invalid_input"),
        (r#"{"type":"shout"}"#, 400, "unknown_type"),
        (r#"{"type":"user_message"}"#, 400, "invalid_input"),
        (
            r#"{"type":"user_message","content":{"a":1}}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"user_message","content":[{"text":"no type"}]}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"permission_response","behavior":"allow"}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"permission_response","correlation_id":"tu_1","behavior":"maybe"}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"permission_response","correlation_id":"tu_1","behavior":"allow","interrupt":true}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"permission_response","correlation_id":"tu_1","behavior":"allow","updated_input":[1]}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"question_response","correlation_id":"tu_1"}"#,
            400,
            "invalid_input",
        ),
        (
            r#"{"type":"set_permission_mode","mode":"yolo"}"#,
            400,
            "invalid_permission_mode",
        ),
        (r#"{"type":"set_permission_mode"}"#, 400, "invalid_input"),
        (r#"{"type":"set_model","model":42}"#, 400, "invalid_input"),
        (r#"{"type":"stop_task"}"#, 400, "invalid_input"),
    ];
    for (body, status, code) in cases {
        let (s, _, b) = api.input_raw(&id, body).await;
        assert_error(s, &b, *status, code);
    }
    // Over the body limit: 413.
    let huge = format!(
        r#"{{"type":"user_message","content":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let (s, _, b) = api.input_raw(&id, &huge).await;
    assert_error(s, &b, 413, "body_too_large");
    let (s, _, b) = api.create_raw(&huge).await;
    assert_error(s, &b, 413, "body_too_large");

    // None of it was recorded or started a turn.
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM inputs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let n: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "only session_ready");
    server.stop().await;
}

#[tokio::test]
async fn bad_stream_requests_and_unknown_sessions() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    for bad in ["abc", "-1", "1.5", "99999999999999999999999"] {
        let (s, b) = api.stream(&id, Some(bad)).await.err().unwrap();
        assert_error(s, &b, 400, "invalid_last_event_id");
    }
    let unknown = uuid::Uuid::new_v4().to_string();
    let (s, b) = api.stream(&unknown, None).await.err().unwrap();
    assert_error(s, &b, 404, "session_not_found");
    let (s, _, b) = api.input_raw(&unknown, r#"{"type":"interrupt"}"#).await;
    assert_error(s, &b, 404, "session_not_found");
    assert_eq!(api.delete(&unknown).await, 404);
    // Not a UUID: cannot name a session.
    let (s, b) = api.stream("not-a-uuid", None).await.err().unwrap();
    assert_error(s, &b, 404, "session_not_found");
    let (s, b) = api.get_json("/nowhere").await;
    assert_error(s, &b, 404, "not_found");
    server.stop().await;
}

#[tokio::test]
async fn bad_session_configs_are_400() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let cases: &[(&str, &str)] = &[
        ("{", "invalid_json"),
        ("[]", "invalid_input"),
        (r#"{"model":5}"#, "invalid_input"),
        (r#"{"fixture":"no_such_scenario"}"#, "invalid_config"),
        (r#"{"fixture":"../../etc/passwd"}"#, "invalid_config"),
    ];
    for (body, code) in cases {
        let (s, _, b) = api.create_raw(body).await;
        assert_error(s, &b, 400, code);
    }
    let client = db.client().await;
    let n: i64 = client
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    server.stop().await;
}
