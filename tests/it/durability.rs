//! Commit before publish (invariant 2), nothing acknowledged lost (3), sessions outliving
//! memory: idle eviction, full restarts, and turns lost with their host.

use crate::support::sse::{assert_contiguous, names};
use crate::support::{fixtures_with, many_messages, Api, TestDb, TestServer};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn every_event_is_in_the_table_when_a_subscriber_receives_it() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let fixtures = fixtures_with(&[("many", many_messages(300, 50))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let client = db.client().await;
    let check = client
        .prepare("SELECT count(*) FROM events WHERE session_id = $1::text::uuid AND seq = $2")
        .await
        .unwrap();
    for fixture in ["many", "read_allow"] {
        let id = api.create(fixture).await;
        let mut stream = api.stream(&id, None).await.unwrap();
        api.say(&id, "go").await;
        loop {
            let e = stream.next().await.unwrap();
            // Checked the moment the event arrives, before reading the next one.
            let n: i64 = client
                .query_one(&check, &[&id, &(e.id as i64)])
                .await
                .unwrap()
                .get(0);
            assert_eq!(
                n, 1,
                "event {} reached a subscriber before its commit",
                e.id
            );
            if e.event == "permission_request" {
                let allow = json!({"type":"permission_response","correlation_id":e.data["correlation_id"],"behavior":"allow"});
                assert_eq!(api.input(&id, allow).await, 204);
            }
            if e.event == "result" {
                break;
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn accepted_inputs_are_recorded_before_the_204() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    api.say(&id, "remember me").await;
    assert_eq!(
        api.input(&id, json!({"type":"stop_task","task_id":"t9"}))
            .await,
        204
    );
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT type, body, principal, status FROM inputs WHERE session_id = $1::text::uuid ORDER BY id",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let body: serde_json::Value = rows[0].get(1);
    assert_eq!(rows[0].get::<_, &str>(0), "user_message");
    assert_eq!(body["content"], "remember me");
    assert_eq!(rows[0].get::<_, &str>(2), "token");
    assert_eq!(rows[0].get::<_, i16>(3), 204);
    assert_eq!(rows[1].get::<_, &str>(0), "stop_task");
    server.stop().await;
}

async fn wait_until_no_live_sessions(server: &TestServer) {
    for _ in 0..200 {
        let (_, health) = server.api.get_json("/healthz").await;
        if health["live_sessions"] == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("session was never evicted");
}

#[tokio::test]
async fn an_idle_session_is_evicted_and_rehydrated_with_ids_continuing() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.idle_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("multi_turn").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    let first = stream.until("result").await;
    drop(stream);

    wait_until_no_live_sessions(&server).await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT status, owner FROM sessions WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "dormant");
    assert_eq!(row.get::<_, Option<i32>>(1), None);

    // Any request brings it back: here an input, then the stream resumes where it was.
    api.say(&id, "I'm Ada").await;
    let last = first.last().unwrap().id;
    let mut stream = api.stream(&id, Some(&last.to_string())).await.unwrap();
    let second = stream.until("result").await;
    assert_contiguous(&second, last + 1);
    assert_eq!(names(&second), ["message_complete", "result"]);
    // The replay agent continued after its completed turn.
    assert_eq!(second[0].data["message_id"], "m_2");
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_keeps_a_session_in_memory() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.idle_timeout = Duration::from_millis(100);
    let server = TestServer::start_with(config).await;
    let id = server.api.create("plain_qa").await;
    let mut stream = server.api.stream(&id, None).await.unwrap();
    stream.next().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, health) = server.api.get_json("/healthz").await;
    assert_eq!(health["live_sessions"], 1);
    server.stop().await;
}

#[tokio::test]
async fn a_dormant_session_is_deleted_by_rehydrating_it() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = server.api.create("plain_qa").await; // never streamed: unowned
    assert_eq!(server.api.delete(&id).await, 204);
    let mut stream = server.api.stream(&id, None).await.unwrap();
    assert_eq!(names(&stream.rest().await), ["session_ready", "done"]);
    server.stop().await;
}

#[tokio::test]
async fn a_full_restart_keeps_every_session_usable() {
    let db = TestDb::new().await;
    let config = TestServer::config(&db);
    let server = TestServer::start_with(config.clone()).await;
    let mut ids = Vec::new();
    for fixture in ["multi_turn", "plain_qa", "read_allow"] {
        ids.push(server.api.create(fixture).await);
    }
    // The first has a finished turn, the others never ran.
    server.api.say(&ids[0], "hi").await;
    let mut s = server.api.stream(&ids[0], None).await.unwrap();
    s.until("result").await;
    server.stop().await;

    let server = TestServer::start_with(config).await;
    let api = &server.api;
    api.say(&ids[0], "again").await;
    let mut s = api.stream(&ids[0], Some("3")).await.unwrap();
    let events = s.until("result").await;
    assert_contiguous(&events, 4);
    assert_eq!(events[0].data["message_id"], "m_2");
    for id in &ids[1..] {
        api.say(id, "hello").await;
        let mut s = api.stream(id, None).await.unwrap();
        let events = s.until("message_complete").await;
        assert_contiguous(&events, 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_turn_in_flight_when_its_host_stops_is_reported_lost() {
    let db = TestDb::new().await;
    let config = TestServer::config(&db);
    let server = TestServer::start_with(config.clone()).await;
    let id = server.api.create("read_allow").await;
    let mut stream = server.api.stream(&id, None).await.unwrap();
    server.api.say(&id, "read").await;
    let request = stream.until("permission_request").await.pop().unwrap();
    server.stop().await;

    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let mut stream = api
        .stream(&id, Some(&request.id.to_string()))
        .await
        .unwrap();
    let events = stream.until("result").await;
    assert_eq!(names(&events), ["error", "result"]);
    assert_contiguous(&events, request.id + 1);
    assert_eq!(events[0].data["code"], "turn_lost");
    assert_eq!(events[1].data["subtype"], "error_during_execution");
    // The lost turn's permission can no longer be answered.
    let reply = json!({"type":"permission_response","correlation_id":request.data["correlation_id"],"behavior":"allow"});
    let (status, _, body) = api.input_raw(&id, &reply.to_string()).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (409, Some("no_pending_decision"))
    );
    server.stop().await;
}

#[tokio::test]
async fn queued_messages_survive_their_host() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let fixtures = fixtures_with(&[]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config.clone()).await;
    let id = server.api.create("slow").await;
    let mut stream = server.api.stream(&id, None).await.unwrap();
    server.api.say(&id, "first").await;
    stream.until("message_complete").await;
    server.api.say(&id, "second").await; // accepted (204), waiting behind the slow turn
    server.stop().await;

    let server = TestServer::start_with(config).await;
    let mut stream = server.api.stream(&id, Some("2")).await.unwrap();
    // The first turn is lost; the second, accepted before the stop, runs on the new host.
    let events = stream.until("message_complete").await;
    assert_eq!(names(&events), ["error", "result", "message_complete"]);
    assert_contiguous(&events, 3);
    server.stop().await;
}

#[tokio::test]
async fn nothing_is_published_while_its_commit_is_blocked() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    // Both ways a stream is served: on the keep-alive connection the create used (hyper), and
    // on a connection of its own (a new client: `http::sse_conn`).
    let fresh = Api::new(api.base.clone(), &api.token);
    let mut streams = [
        api.stream(&id, None).await.unwrap(),
        fresh.stream(&id, None).await.unwrap(),
    ];
    for stream in &mut streams {
        assert_eq!(stream.next().await.unwrap().event, "session_ready");
    }

    // Hold a lock that makes every append wait: the turn runs, its events cannot commit.
    let mut blocker = db.client().await;
    let tx = blocker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE events IN EXCLUSIVE MODE")
        .await
        .unwrap();
    api.say(&id, "hi").await; // inputs are not blocked: the 204 still comes
    for stream in &mut streams {
        assert!(
            stream
                .next_within(Duration::from_millis(700))
                .await
                .is_err(),
            "an event reached a subscriber before it was committed"
        );
    }
    // Nor does the turn count as done while its `result` is not in the table: a host dying
    // now would leave a finished turn without a result, which no new owner re-runs or reports.
    let state: String = db
        .client()
        .await
        .query_one(
            "SELECT turn_state FROM inputs WHERE session_id = $1::text::uuid \
             AND type = 'user_message'",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "running");
    tx.rollback().await.unwrap();

    // Once the commit goes through, the events arrive, in order, nothing skipped.
    for stream in &mut streams {
        let events = stream.until("result").await;
        assert_eq!(names(&events), ["message_complete", "result"]);
        assert_contiguous(&events, 2);
    }
    server.stop().await;
}

/// Postgres refusing writes, as a primary being demoted does (`default_transaction_read_only`,
/// here for the test's database, with its connections reset so they pick it up): inputs get
/// `503`, `/readyz` fails, nothing uncommitted is published, and everything continues once
/// writes are allowed again (issue 15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_primary_is_unavailable_not_an_error_and_nothing_is_lost() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("multi_turn").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    let mut events = stream.until("result").await;
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let admin_url = db.url.replace(&format!("/{name}"), "/postgres");
    let (admin, conn) = tokio_postgres::connect(&admin_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let reset = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    admin.batch_execute(&reset).await.unwrap();
    // Refused: a 503 with a code, never a 5xx without one, never an accepted input.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, body) = api
            .input_raw(
                &id,
                &json!({"type": "user_message", "content": "I'm Ada"}).to_string(),
            )
            .await;
        if status == 503 {
            assert_eq!(body["code"], "database_unavailable", "{body}");
            break;
        }
        assert!(
            status == 204 || std::time::Instant::now() < deadline,
            "{status} {body}"
        );
        if status == 204 {
            // Accepted before the reset reached the pool: let its turn run.
            events.extend(stream.until("result").await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(api.get_status("/readyz").await, Some(503));
    // Writes allowed again: the host goes on by itself.
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} RESET default_transaction_read_only"
        ))
        .await
        .unwrap();
    admin.batch_execute(&reset).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while api.get_status("/readyz").await != Some(200) {
        assert!(std::time::Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut stream = match stream.next_within(Duration::from_millis(10)).await {
        Ok(None) => api
            .stream(&id, Some(&events.last().unwrap().id.to_string()))
            .await
            .unwrap(),
        _ => stream,
    };
    assert_eq!(
        api.input(&id, json!({"type": "user_message", "content": "again"}))
            .await,
        204
    );
    events.extend(stream.until("result").await);
    assert_contiguous(&events, 1);
    let stored: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM events WHERE session_id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored as usize, events.len());
    server.stop().await;
}
