//! Claude conversations in Postgres (issue 13): the CLI's transcript is mirrored into the
//! database as it is written, fenced and before the turn's `result`, and written back where
//! the CLI looks before `--resume` on any host that shares only the database.

use super::{argv, open, say, tool, turn, FakeCli};
use crate::support::sse::SseStream;
use crate::support::{Api, TestDb, TestServer, ADMIN_TOKEN};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

/// The stored entries of a session: (seq, file, uuid, entry text).
async fn stored(db: &TestDb, id: &str) -> Vec<(i64, String, Option<String>, String)> {
    let id: uuid::Uuid = id.parse().unwrap();
    db.client()
        .await
        .query(
            "SELECT seq, file, uuid, entry::text FROM transcript_entries \
             WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn two_turns() -> Value {
    json!({"turns": [
        turn("one", vec![tool("tu_1", "Read", json!({"path": "a.txt"}), json!({"output": "alpha"})),
                         say("read alpha")]),
        turn("two", vec![say("still here")]),
    ]})
}

async fn allow_and_finish(
    api: &Api,
    id: &str,
    stream: &mut SseStream,
) -> Vec<crate::support::sse::Event> {
    let mut events = stream.until("permission_request").await;
    let cid = events.last().unwrap().data["correlation_id"].clone();
    let allow = json!({"type": "permission_response", "behavior": "allow", "correlation_id": cid});
    assert_eq!(api.input(id, allow).await, 204);
    events.extend(stream.until("result").await);
    events
}

#[tokio::test]
async fn a_conversation_moves_to_a_host_that_shares_only_the_database() {
    let db = TestDb::new().await;
    let host_a = FakeCli::new(two_turns());
    let server = host_a.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "one").await;
    let events = allow_and_finish(&server.api, &id, &mut stream).await;
    let last = events.last().unwrap().id.to_string();
    assert!(argv(&host_a.starts()[0]).contains(&"--session-mirror".to_owned()));
    server.stop().await;
    // What host A mirrored: the user's entry, the assistant's, and the cost entry (no uuid).
    let rows = stored(&db, &id).await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == format!("{id}.jsonl")));
    assert_eq!((rows[0].0, rows[1].0, rows[2].0), (1, 2, 3));
    assert!(rows[0].3.contains("\"one\"") && rows[1].3.contains("read alpha"));
    assert!(rows[2].2.is_none());

    // Host B: its own data dir and config dir, nothing of A's on disk.
    let host_b = FakeCli::new(two_turns());
    let server = host_b.server(&db).await;
    let mut stream = server.api.stream(&id, Some(&last)).await.unwrap();
    server.api.say(&id, "two").await;
    let events = stream.until("result").await;
    assert_eq!(
        events.last().unwrap().data["subtype"],
        "success",
        "{events:?}"
    );
    let start = &host_b.starts()[0];
    assert!(argv(start).contains(&format!("--resume={id}")));
    // The CLI on B read turn 1 from the file the server wrote back.
    let resumed = host_b.records_of("resumed");
    assert_eq!(resumed.len(), 1);
    let texts = resumed[0]["entries"].to_string();
    assert!(
        texts.contains("\"one\"") && texts.contains("read alpha"),
        "{texts}"
    );
    // Written where the CLI looks, byte for byte what was stored, mode 0600.
    let cwd = start["cwd"].as_str().unwrap();
    let key: String = cwd
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let config = host_b.dir.join("data/claude").join(&id);
    let file = std::fs::canonicalize(&config)
        .unwrap()
        .join("projects")
        .join(key)
        .join(format!("{id}.jsonl"));
    let text = std::fs::read_to_string(&file).unwrap();
    let expected: String = rows.iter().map(|r| format!("{}\n", r.3)).collect();
    assert!(text.starts_with(&expected), "{text}");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Turn 2's entries follow turn 1's in the table.
    let rows = stored(&db, &id).await;
    assert_eq!(rows.len(), 6);
    assert!(rows[3].3.contains("\"two\""));
    server.stop().await;
}

#[tokio::test]
async fn a_conversation_that_was_never_mirrored_is_a_clear_error_elsewhere() {
    let db = TestDb::new().await;
    let mut scenario = two_turns();
    scenario["silent_session_mirror"] = json!(true);
    let host_a = FakeCli::new(scenario);
    let server = host_a.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "one").await;
    let last = allow_and_finish(&server.api, &id, &mut stream)
        .await
        .last()
        .unwrap()
        .id
        .to_string();
    server.stop().await;
    assert!(stored(&db, &id).await.is_empty());

    let host_b = FakeCli::new(two_turns());
    let server = host_b.server(&db).await;
    let mut stream = server.api.stream(&id, Some(&last)).await.unwrap();
    server.api.say(&id, "two").await;
    let events = stream.until("result").await;
    let error = events.iter().find(|e| e.event == "error").unwrap();
    assert_eq!(error.data["code"], "agent_exited");
    let message = error.data["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("No conversation found with session ID: {id}")),
        "{message}"
    );
    server.stop().await;
}

#[tokio::test]
async fn entries_are_stored_once_and_committed_before_the_result_is_seen() {
    let db = TestDb::new().await;
    let mut scenario = json!({"turns": [turn("", vec![say("hello")])]});
    scenario["mirror_twice"] = json!(true);
    let fake = FakeCli::new(scenario);
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "first").await;
    stream.until("result").await;
    // Each frame came twice: entries with a uuid are stored once, the cost entry (no uuid)
    // as often as it came.
    let rows = stored(&db, &id).await;
    let uuids: Vec<_> = rows.iter().filter_map(|r| r.2.clone()).collect();
    assert_eq!(uuids.len(), 2, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r.2.is_none()).count(), 2);

    // Block every transcript write: the turn's `result` must not reach the subscriber while
    // its entries are not committed.
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE transcript_entries IN EXCLUSIVE MODE")
        .await
        .unwrap();
    api.say(&id, "second").await;
    let mut seen = Vec::new();
    while let Ok(Some(e)) = stream.next_within(Duration::from_millis(1500)).await {
        assert_ne!(
            e.event, "result",
            "a result was published before its transcript commit"
        );
        seen.push(e.event);
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let events = stream.until("result").await;
    assert_eq!(events.last().unwrap().event, "result");
    let rows = stored(&db, &id).await;
    assert!(rows.iter().any(|r| r.3.contains("\"second\"")), "{rows:?}");
    server.stop().await;
}

#[tokio::test]
async fn a_mirror_path_outside_the_projects_dir_is_refused_and_nothing_is_written() {
    let db = TestDb::new().await;
    let fake = FakeCli::new(json!({}));
    let outside = fake.dir.join("outside").join("evil.jsonl");
    fake.set_scenario(json!({"mirror_path": outside.display().to_string(),
        "turns": [turn("", vec![say("hi")])]}));
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "go").await;
    let events = stream.until("result").await;
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.event == "error")
        .map(|e| e.data["code"].clone())
        .collect();
    assert!(!refused.is_empty() && refused.iter().all(|c| c == "transcript_refused"));
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    assert!(stored(&db, &id).await.is_empty());
    assert!(!outside.exists());
    server.stop().await;
}

#[tokio::test]
async fn a_cli_without_session_mirror_still_runs() {
    let db = TestDb::new().await;
    let fake = FakeCli::new(json!({"refuse_session_mirror": true,
        "turns": [turn("", vec![say("old but fine")])]}));
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "go").await;
    let events = stream.until("result").await;
    assert!(!events.iter().any(|e| e.event == "error"), "{events:?}");
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    let starts = fake.starts();
    assert_eq!(starts.len(), 2, "one refused start, one without the flag");
    assert!(!argv(&starts[1]).contains(&"--session-mirror".to_owned()));
    server.stop().await;
}

#[tokio::test]
async fn delete_removes_the_transcript_and_the_config_dir() {
    let db = TestDb::new().await;
    let fake = FakeCli::new(json!({"turns": [turn("", vec![say("hi")])]}));
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "go").await;
    stream.until("result").await;
    assert!(!stored(&db, &id).await.is_empty());
    let config = fake.dir.join("data/claude").join(&id);
    assert!(config.is_dir());
    assert_eq!(server.api.delete(&id).await, 204);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while config.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !config.exists(),
        "the session's config dir stays after its CLI is reaped"
    );
    assert!(stored(&db, &id).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn the_transcript_endpoint_pages_streams_ndjson_and_isolates() {
    let db = TestDb::new().await;
    let fake = FakeCli::new(json!({"turns": [turn("", vec![say("hi")])]}));
    let mut config = fake.config(&db);
    config = {
        let mut jwt = crate::support::jwt_config(&db);
        jwt.agent = config.agent.clone();
        jwt
    };
    let server = TestServer::start_with(config).await;
    let alice = server
        .api
        .with_token(&crate::support::jwt("alice", json!({})));
    let bob = server
        .api
        .with_token(&crate::support::jwt("bob", json!({})));
    let (id, mut stream) = open(&alice, json!({})).await;
    for n in 0..2 {
        alice.say(&id, &format!("turn {n}")).await;
        stream.until("result").await;
    }
    let rows = stored(&db, &id).await;
    assert_eq!(rows.len(), 6);
    // Keyset pages.
    let (status, page) = alice
        .get_json(&format!("/sessions/{id}/transcript?limit=4"))
        .await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[0]["seq"], 1);
    assert_eq!(entries[0]["file"], format!("{id}.jsonl"));
    assert_eq!(
        entries[0]["entry"],
        serde_json::from_str::<Value>(&rows[0].3).unwrap()
    );
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = alice
        .get_json(&format!(
            "/sessions/{id}/transcript?limit=4&cursor={cursor}"
        ))
        .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    assert!(page["next_cursor"].is_null());
    // The whole main file as NDJSON: exactly the stored lines.
    let response = alice
        .http
        .get(format!("{}/sessions/{id}/transcript", alice.base))
        .bearer_auth(&alice.token)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let body = response.text().await.unwrap();
    let expected: String = rows.iter().map(|r| format!("{}\n", r.3)).collect();
    assert_eq!(body, expected);
    // The CLI prints the same lines.
    let out = crate::support::audit_cli(&db, &["transcript", &id])
        .await
        .unwrap();
    assert_eq!(out, expected);
    // Another principal: exactly as an unknown id. An admin reads it.
    let (status, body) = bob.get_json(&format!("/sessions/{id}/transcript")).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (404, Some("session_not_found"))
    );
    let admin = server.api.with_token(ADMIN_TOKEN);
    let (status, page) = admin.get_json(&format!("/sessions/{id}/transcript")).await;
    assert_eq!(
        (status.as_u16(), page["entries"].as_array().map(Vec::len)),
        (200, Some(6))
    );
    server.stop().await;
}

#[tokio::test]
async fn retention_removes_only_whole_transcripts_of_idle_sessions() {
    use agent_webkit_server::store::{retention, Store};
    let db = TestDb::new().await;
    let fake = FakeCli::new(json!({"turns": [turn("", vec![say("hi")])]}));
    let server = fake.server(&db).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (id, mut stream) = open(&server.api, json!({})).await;
        server.api.say(&id, "go").await;
        stream.until("result").await;
        ids.push(id);
    }
    // A live session is never touched, however old its rows look.
    let client = db.client().await;
    let (idle, busy) = (
        ids[0].parse::<uuid::Uuid>().unwrap(),
        ids[1].parse::<uuid::Uuid>().unwrap(),
    );
    client
        .execute(
            "UPDATE sessions SET updated_at = now() - interval '2 days' WHERE id = $1",
            &[&busy],
        )
        .await
        .unwrap();
    let store = Store::connect(&db.url, 2).unwrap();
    let day = Duration::from_secs(86_400);
    assert_eq!(
        retention::run_once(&store, day, 1000)
            .await
            .unwrap()
            .transcripts,
        0
    );
    server.stop().await;

    // Released: the idle one (no activity for two days) loses its transcript whole and will
    // start a new conversation; the other keeps everything.
    client
        .execute(
            "UPDATE sessions SET updated_at = now() - interval '2 days' WHERE id = $1",
            &[&idle],
        )
        .await
        .unwrap();
    client
        .execute(
            "UPDATE sessions SET updated_at = now() WHERE id = $1",
            &[&busy],
        )
        .await
        .unwrap();
    let before = stored(&db, &ids[1]).await;
    let batch = retention::run_once(&store, day, 1000).await.unwrap();
    assert_eq!(batch.transcripts, 1);
    assert!(stored(&db, &ids[0]).await.is_empty());
    assert_eq!(stored(&db, &ids[1]).await, before);
    let token: Option<String> = client
        .query_one("SELECT resume_token FROM sessions WHERE id = $1", &[&idle])
        .await
        .unwrap()
        .get(0);
    assert_eq!(token, None);
}
