//! The wire protocol, row by row (`docs/wire-protocol.md`).

use crate::support::sse::{assert_contiguous, names};
use crate::support::{fixtures_with, TestDb, TestServer};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn create_then_stream_starts_with_session_ready_and_sse_headers() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let (status, _, body) = api.create_raw("{}").await;
    assert_eq!(status, 200);
    assert_eq!(body["protocol_version"], "1.0");
    let id = body["session_id"].as_str().unwrap();
    // Unknown fields are ignored; an empty body is a default config.
    assert_eq!(api.create_raw(r#"{"model":"x","whatever":1}"#).await.0, 200);
    assert_eq!(api.create_raw("").await.0, 200);

    let mut stream = api.stream(id, None).await.unwrap();
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-accel-buffering"], "no");
    let first = stream.next().await.unwrap();
    assert_eq!((first.id, first.event.as_str()), (1, "session_ready"));
    assert_eq!(first.raw, format!("id: 1\nevent: session_ready\ndata: {{\"session_id\":\"{id}\",\"protocol_version\":\"1.0\"}}\n\n"));
    // An empty Last-Event-ID means from the start.
    let mut again = api.stream(id, Some("")).await.unwrap();
    assert_eq!(again.next().await.unwrap().id, 1);
    server.stop().await;
}

#[tokio::test]
async fn auth_is_required_and_checked() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let wrong = api.with_token("nope");
    let (status, _, body) = wrong.create_raw("{}").await;
    assert_eq!(status, 401);
    assert_eq!(body["code"], "unauthorized");
    assert_eq!(wrong.stream(&id, None).await.err().unwrap().0, 401);
    assert_eq!(wrong.input(&id, json!({"type":"interrupt"})).await, 401);
    assert_eq!(wrong.delete(&id).await, 401);
    let none = reqwest::Client::new()
        .post(format!("{}/sessions", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    // Health checks are open, for load balancers.
    let (status, health) = wrong.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(health["ok"], true);
    assert!(health["live_sessions"].is_u64());
    assert_eq!(wrong.get_status("/readyz").await, Some(200));
    server.stop().await;
}

#[tokio::test]
async fn first_reply_wins_under_fifty_concurrent_replies() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("read_allow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "read").await;
    let request = stream.until("permission_request").await.pop().unwrap();
    let cid = request.data["correlation_id"].clone();

    let replies = (0..50).map(|i| {
        let (api, id) = (api.clone(), id.clone());
        let behavior = if i % 2 == 0 { "allow" } else { "deny" };
        let body = json!({"type":"permission_response","correlation_id":cid,"behavior":behavior});
        tokio::spawn(async move { api.input_raw(&id, &body.to_string()).await })
    });
    let mut statuses = Vec::new();
    for r in futures::future::join_all(replies).await {
        let (status, _, body) = r.unwrap();
        if status == 409 {
            assert_eq!(body["code"], "no_pending_decision");
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    stream.until("result").await;

    // Postgres holds exactly one accepted decision and the 49 refusals.
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT status, count(*) FROM inputs WHERE session_id = $1::text::uuid \
             AND type = 'permission_response' GROUP BY status ORDER BY status",
            &[&id],
        )
        .await
        .unwrap();
    let counts: Vec<(i16, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(counts, [(204, 1), (409, 49)]);
    server.stop().await;
}

#[tokio::test]
async fn questions_are_answered_once_and_the_wrong_reply_type_is_refused() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("ask_user_question").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "ask me").await;
    let ask = stream.until("ask_user_question").await.pop().unwrap();
    let cid = ask.data["correlation_id"].clone();
    let (status, _, body) = api
        .input_raw(
            &id,
            &json!({"type":"permission_response","correlation_id":cid,"behavior":"allow"})
                .to_string(),
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("wrong_response_type"))
    );
    let answer =
        json!({"type":"question_response","correlation_id":cid,"answers":{"Pick a color":"blue"}});
    assert_eq!(api.input(&id, answer.clone()).await, 204);
    assert_eq!(api.input(&id, answer).await, 409);
    assert_eq!(
        names(&stream.until("result").await),
        ["question_resolved", "message_complete", "result"]
    );
    server.stop().await;
}

#[tokio::test]
async fn interrupt_ends_the_turn_with_an_interrupted_result() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let fixtures = fixtures_with(&[]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;

    // Mid-stream: the scenario sleeps 30 s; the interrupt must not wait for it.
    let id = api.create("slow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;
    stream.until("message_complete").await;
    let started = std::time::Instant::now();
    assert_eq!(api.input(&id, json!({"type":"interrupt"})).await, 204);
    let result = stream.until("result").await.pop().unwrap();
    assert_eq!(result.data["subtype"], "interrupted");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "interrupt waited for the delay"
    );

    // Mid-permission: the parked request is withdrawn; a late reply gets 409.
    let id = api.create("read_allow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;
    let request = stream.until("permission_request").await.pop().unwrap();
    assert_eq!(api.input(&id, json!({"type":"interrupt"})).await, 204);
    assert_eq!(
        stream.until("result").await.pop().unwrap().data["subtype"],
        "interrupted"
    );
    let late = json!({"type":"permission_response","correlation_id":request.data["correlation_id"],"behavior":"allow"});
    assert_eq!(api.input(&id, late).await, 409);

    // Interrupt with no turn running is harmless.
    assert_eq!(api.input(&id, json!({"type":"interrupt"})).await, 204);
    server.stop().await;
}

#[tokio::test]
async fn control_messages_are_accepted_and_remembered() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    assert_eq!(
        api.input(
            &id,
            json!({"type":"set_permission_mode","mode":"acceptEdits"})
        )
        .await,
        204
    );
    assert_eq!(
        api.input(&id, json!({"type":"set_model","model":"claude-x"}))
            .await,
        204
    );
    assert_eq!(
        api.input(&id, json!({"type":"stop_task","task_id":"t1"}))
            .await,
        204
    );
    // Applied in order by the session task; the stored config follows.
    let client = db.client().await;
    let mut config = Value::Null;
    for _ in 0..100 {
        let row = client
            .query_one(
                "SELECT config FROM sessions WHERE id = $1::text::uuid",
                &[&id],
            )
            .await
            .unwrap();
        config = row.get(0);
        if config["model"] == "claude-x" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(config["model"], "claude-x");
    assert_eq!(config["permission_mode"], "acceptEdits");
    assert_eq!(
        api.input(&id, json!({"type":"set_model","model":null}))
            .await,
        204
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_sends_done_ends_every_stream_and_keeps_history() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut a = api.stream(&id, None).await.unwrap();
    let mut b = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    a.until("result").await;
    assert_eq!(api.delete(&id).await, 204);
    for s in [&mut a, &mut b] {
        let rest = s.rest().await;
        assert_eq!(rest.last().unwrap().event, "done");
    }
    // (ours) History stays readable through done; then the stream ends.
    let mut replay = api.stream(&id, Some("1")).await.unwrap();
    let events = replay.rest().await;
    assert_eq!(names(&events), ["message_complete", "result", "done"]);
    assert_contiguous(&events, 2);
    // A second delete is harmless; inputs to a closed session are refused with a code.
    assert_eq!(api.delete(&id).await, 204);
    let (status, _, body) = api.input_raw(&id, r#"{"type":"interrupt"}"#).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (410, Some("session_closed"))
    );
    // Unknown session: 404 (the JS client treats it as success).
    assert_eq!(api.delete(&uuid::Uuid::new_v4().to_string()).await, 404);
    server.stop().await;
}

#[tokio::test]
async fn idle_streams_get_keepalive_comments() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.keepalive = Duration::from_millis(100);
    let server = TestServer::start_with(config).await;
    let id = server.api.create("plain_qa").await;
    let mut stream = server.api.stream(&id, None).await.unwrap();
    stream.next().await.unwrap();
    // No event comes; keepalives do, and the stream stays open.
    assert!(stream
        .next_within(Duration::from_millis(800))
        .await
        .is_err());
    assert!(stream.keepalives >= 2, "keepalives: {}", stream.keepalives);
    server.stop().await;
}

#[tokio::test]
async fn a_full_inbound_queue_is_503_with_retry_after() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let fixtures = fixtures_with(&[]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    config.sessions.max_queued_inputs = 1;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("slow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "one").await;
    stream.until("message_complete").await; // the first turn is running
    api.say(&id, "two").await; // waits in the queue
    let (status, headers, body) = api
        .input_raw(&id, r#"{"type":"user_message","content":"three"}"#)
        .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "1");
    assert_eq!(body["code"], "queue_full");
    // A refused message is not recorded.
    let client = db.client().await;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM inputs WHERE type = 'user_message'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    server.stop().await;
}

#[tokio::test]
async fn max_sessions_is_503_on_create() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.max_sessions = Some(1);
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let _stream = api.stream(&id, None).await.unwrap(); // now live on this host
    let (status, headers, body) = api.create_raw("{}").await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    assert_eq!(body["code"], "at_capacity");
    server.stop().await;
}
