//! Each kind of bad input gets a 4xx with a JSON `{code, message}`, and changes nothing.

use crate::support::{TestDb, TestServer, ADMIN_TOKEN, TOKEN};
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `request` on a new connection and reads until the server closes it (bounded).
async fn raw(server: &TestServer, request: &[u8]) -> String {
    let addr = server.api.base.trim_start_matches("http://");
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(closed.is_ok(), "the connection stayed open: {text}");
    text
}

/// The JSON body of a raw response with a `content-length`.
fn raw_json(response: &str) -> Value {
    let (_, body) = response.split_once("\r\n\r\n").expect("no end of head");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

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
    config.http.max_body_bytes = 64 * 1024;
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

#[tokio::test]
async fn wrong_methods_unknown_routes_and_undecodable_paths_are_json() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let call = |method: reqwest::Method, path: &str| {
        api.http
            .request(method, format!("{}{path}", api.base))
            .bearer_auth(TOKEN)
            .send()
    };
    for (method, path, allow) in [
        (reqwest::Method::PUT, "/sessions", "GET,HEAD,POST"),
        (reqwest::Method::DELETE, "/healthz", "GET,HEAD"),
        (reqwest::Method::POST, "/sessions/x/stream", "GET,HEAD"),
    ] {
        let r = call(method, path).await.unwrap();
        let status = r.status();
        let mut allowed: Vec<String> = r.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        allowed.sort();
        let mut want: Vec<&str> = allow.split(',').collect();
        want.sort();
        assert_eq!(allowed, want, "{path}");
        assert_error(status, &r.json().await.unwrap(), 405, "method_not_allowed");
    }
    let r = call(reqwest::Method::POST, "/nowhere").await.unwrap();
    assert_error(r.status(), &r.json().await.unwrap(), 404, "not_found");
    // An id that percent-decodes to invalid UTF-8, through hyper…
    for (method, path) in [
        (reqwest::Method::GET, "/sessions/%FF%FE"),
        (reqwest::Method::DELETE, "/sessions/%FF%FE"),
        (reqwest::Method::GET, "/sessions/%FF%FE/events"),
        (reqwest::Method::POST, "/sessions/%FF%FE/input"),
    ] {
        let r = call(method, path).await.unwrap();
        assert_error(r.status(), &r.json().await.unwrap(), 400, "invalid_path");
    }
    // …and as the first request of a connection (`sse_conn`).
    let response = raw(
        &server,
        format!("GET /sessions/%FF%FE/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    let json = raw_json(&response);
    assert_eq!(json["code"], "invalid_path", "{json}");
    server.stop().await;
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once_and_ends_the_connection() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.http.max_body_bytes = 64 * 1024;
    // Waiting for the body would end in `503 request_timeout` only after a minute, past the
    // bound of `raw`.
    config.http.request_timeout = Duration::from_secs(60);
    let server = TestServer::start_with(config).await;
    let id = server.api.create("plain_qa").await;
    let count = |sql: &'static str| {
        let db = &db;
        async move {
            let n: i64 = db.client().await.query_one(sql, &[]).await.unwrap().get(0);
            n
        }
    };
    let sessions = count("SELECT count(*) FROM sessions").await;
    // What follows the head is a request, but it is body bytes: it must never run.
    let smuggled = format!(
        "POST /sessions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         content-length: 2\r\n\r\n{{}}"
    );
    for path in [format!("/sessions/{id}/input"), "/sessions".to_string()] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: 1000000000\r\n\r\n{smuggled}"
        );
        let response = raw(&server, head.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 413 "), "{response}");
        assert!(
            response
                .to_lowercase()
                .contains("\r\nconnection: close\r\n"),
            "{response}"
        );
        assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
        assert_eq!(raw_json(&response)["code"], "body_too_large");
    }
    assert_eq!(count("SELECT count(*) FROM sessions").await, sessions);
    assert_eq!(count("SELECT count(*) FROM inputs").await, 0);
    server.stop().await;
}

#[tokio::test]
async fn error_messages_do_not_echo_long_input_whole() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let huge = "x".repeat(5 * 1024 * 1024);
    let short = |body: &Value| {
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.chars().count() <= 1001 && message.contains('…'),
            "{} chars: {}",
            message.len(),
            &message[..message.len().min(200)]
        );
    };
    for body in [
        serde_json::json!({"type": huge}),
        serde_json::json!({"type": "set_permission_mode", "mode": huge}),
        serde_json::json!({"type": "permission_response", "correlation_id": "c", "behavior": huge}),
        serde_json::json!({"type": "permission_response", "correlation_id": "c", "behavior": "allow", "updated_input": huge}),
    ] {
        let (s, _, b) = api.input_raw(&id, &body.to_string()).await;
        assert_eq!(s.as_u16(), 400, "{}", &b.to_string()[..200]);
        short(&b);
    }
    let (s, _, b) = api
        .create_raw(&serde_json::json!({"fixture": huge}).to_string())
        .await;
    assert_eq!(s.as_u16(), 400);
    short(&b);
    let long = "y".repeat(10_000);
    let admin = api.with_token(ADMIN_TOKEN);
    for path in [
        format!("/audit/events?event={long}"),
        format!("/audit/events?{long}=1"),
        format!("/sessions?status={long}"),
        format!("/sessions/{id}/events?after={long}"),
    ] {
        let (s, b) = admin.get_json(&path).await;
        assert_eq!(s.as_u16(), 400, "{b}");
        short(&b);
    }
    let (s, b) = api.stream(&id, Some(&long)).await.err().unwrap();
    assert_error(s, &b, 400, "invalid_last_event_id");
    short(&b);
    server.stop().await;
}
