//! Limits: each answers with its status and code (`429` subscribers, `413` body, `503` +
//! `Retry-After` for sessions, a database that does not answer, a request past its deadline),
//! and a stalled subscriber is dropped by the write timeout without the server buffering what
//! it did not read. (`503 queue_full` and `at_capacity` on create: `protocol.rs`.)

use crate::support::metrics::scrape;
use crate::support::process::ServerProcess;
use crate::support::sse::assert_contiguous;
use crate::support::{TestDb, TestServer, TOKEN};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn subscribers_sessions_and_bodies_are_capped_with_their_codes() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.max_subscribers = 2;
    config.sessions.max_sessions = Some(1);
    config.http.max_body_bytes = 1024;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let s1 = api.stream(&id, None).await.unwrap();
    let _s2 = api.stream(&id, Some("1")).await.unwrap();
    let (status, body) = api.stream(&id, None).await.err().unwrap();
    assert_eq!(status, 429);
    assert_eq!(body["code"], "too_many_subscribers");
    assert!(body["message"].is_string());
    // The session is live: the host is at --max-sessions.
    let (status, headers, body) = api.create_raw("{}").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (503, Some("at_capacity"))
    );
    assert_eq!(headers["retry-after"], "1");
    // Over the body limit.
    let big = json!({"type": "user_message", "content": "x".repeat(2000)}).to_string();
    let (status, _, body) = api.input_raw(&id, &big).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (413, Some("body_too_large"))
    );
    // The gauge counts both streams; a closed one frees its place.
    assert_eq!(
        scrape(api).await.value("agent_webkit_sse_subscribers", &[]),
        2.0
    );
    assert_eq!(api.delete(&id).await, 204);
    drop(s1);
    server.stop().await;
}

/// Holds the session row locked in an open transaction, as a saturated or stuck database would.
async fn lock_session_row(db: &TestDb, id: &str) -> tokio_postgres::Client {
    let client = db.client().await;
    client.batch_execute("BEGIN").await.unwrap();
    client
        .execute(
            "SELECT 1 FROM sessions WHERE id = $1::text::uuid FOR UPDATE",
            &[&id],
        )
        .await
        .unwrap();
    client
}

#[tokio::test]
async fn an_input_the_database_cannot_record_in_time_is_503_and_not_recorded() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.store.statement_timeout = Some(Duration::from_millis(300));
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    stream.until("session_ready").await;

    let blocker = lock_session_row(&db, &id).await;
    let (status, headers, body) = api
        .input_raw(&id, r#"{"type":"user_message","content":"hi"}"#)
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (503, Some("database_unavailable"))
    );
    assert_eq!(headers["retry-after"], "1");
    blocker.batch_execute("COMMIT").await.unwrap();

    // Postgres cancelled the statement: nothing was recorded, so the retry is the only turn.
    let client = db.client().await;
    let count = "SELECT count(*) FROM inputs WHERE session_id = $1::text::uuid";
    let n: i64 = client.query_one(count, &[&id]).await.unwrap().get(0);
    assert_eq!(n, 0);
    api.say(&id, "hi").await;
    stream.until("result").await;
    let n: i64 = client.query_one(count, &[&id]).await.unwrap().get(0);
    assert_eq!(n, 1);
    server.stop().await;
}

#[tokio::test]
async fn a_request_past_its_deadline_is_503_request_timeout() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.http.request_timeout = Duration::from_millis(300);
    config.store.statement_timeout = None;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    // Claiming the (unowned) session waits for the row lock, past the deadline.
    let blocker = lock_session_row(&db, &id).await;
    let (status, body) = api.stream(&id, None).await.err().unwrap();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (503, Some("request_timeout"))
    );
    // /healthz never touches the database and answers meanwhile.
    assert_eq!(api.get_status("/healthz").await, Some(200));
    blocker.batch_execute("COMMIT").await.unwrap();
    let mut stream = api.stream(&id, None).await.unwrap();
    stream.until("session_ready").await;
    server.stop().await;
}

/// Opens a stream and then reads nothing, with a small receive buffer so the kernel cannot
/// absorb much on the client's behalf.
async fn stalled_stream(base: &str, id: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = base.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET /sessions/{id}/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    stalled
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_is_dropped_and_the_server_does_not_buffer_for_it() {
    const EVENTS: i32 = 30_000;
    const BYTES: i32 = 2_000;
    let db = TestDb::new().await;
    let server = ServerProcess::start(
        &db.url,
        None,
        &["--sse-write-timeout", "2s", "--ring-size", "100"],
        &[],
    )
    .await;
    let api = &server.api;
    // A session with ~57 MB of history, written straight into the table: no agent and no
    // writer run in the server, so its memory only moves with what the subscribers hold.
    let id = api.create("plain_qa").await;
    let client = db.client().await;
    client
        .execute(
            "INSERT INTO events (session_id, seq, event, data) \
             SELECT $1::text::uuid, g, 'message_delta', json_build_object('text', repeat('x', $2)) \
             FROM generate_series(2, $3 + 1) g",
            &[&id, &BYTES, &EVENTS],
        )
        .await
        .unwrap();
    let (rss_before, _) = server.memory();

    let stalled = stalled_stream(&api.base, &id).await;
    let mut reader = api.stream(&id, None).await.unwrap();
    let mut got = Vec::new();
    while got.len() < EVENTS as usize + 1 {
        got.push(reader.next().await.expect("every event"));
    }
    assert_contiguous(&got, 1);
    drop(reader);
    let (_, peak) = server.memory();

    // The stalled client accepted nothing for 2 s: its connection is gone, and so its stream.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = scrape(api).await;
        if m.value("agent_webkit_sse_write_timeouts_total", &[]) >= 1.0
            && m.value("agent_webkit_sse_subscribers", &[]) == 0.0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled subscriber was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unread = (EVENTS as u64) * (BYTES as u64);
    eprintln!(
        "stalled subscriber left {} MB unread; RSS before {} MB, peak {} MB",
        unread >> 20,
        rss_before >> 20,
        peak >> 20,
    );
    // It held a chunk and hyper's bounded write buffer, not the events it did not read.
    let grew = peak.saturating_sub(rss_before);
    assert!(grew < unread / 4, "memory grew by {} MB", grew >> 20);
    drop(stalled);
    server.stop().await;
}
