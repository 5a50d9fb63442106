//! Hostile and unusual content (issue 12): what agents print (NUL and other control
//! characters, values the database refuses), what clients send (NUL, huge ids, absurd times,
//! oversized JWT subjects), concurrent `DELETE`s, capacity, and bursts.
//!
//! Every session's table must equal what its subscribers got, gap-free (invariants 1, 3, 8).

use crate::support::sse::{assert_contiguous, Event};
use crate::support::{
    fixtures_with, jwt, jwt_config, many_messages, Api, TestDb, TestServer, ADMIN_TOKEN,
};
use serde_json::{json, Value};

/// Text, tool input and tool result carrying NUL and other control characters, a literal
/// backslash-u0000 (escaped backslash), and a lone-looking escape sequence in plain text.
const BINARY_TEXT: &str = "bin\u{0}ary \u{1}\u{1f}\u{7f} \\u0000 literal";
const BINARY_RESULT: &str = "\u{0}ELF\u{2}\u{1}\u{1}\u{0}\u{0} tail\u{0}";

fn binary_scenario() -> String {
    let input = json!({"path": "a\u{0}b", "mode": "\u{0}\u{1b}[31m"});
    [
        json!({"kind": "expect_user_query"}),
        json!({"kind": "outbound", "message": {"type": "AssistantMessage", "id": "m_1",
            "content": [{"type": "text", "text": BINARY_TEXT},
                        {"type": "tool_use", "id": "tu_b", "name": "Read", "input": input}],
            "model": "m"}}),
        json!({"kind": "callback_expect", "tool_name": "Read", "tool_input": input,
            "context": {"tool_use_id": "tu_b"}, "respond": {"behavior": "allow"}}),
        json!({"kind": "outbound", "message": {"type": "UserMessage", "content": [
            {"type": "tool_result", "tool_use_id": "tu_b", "content": BINARY_RESULT,
             "is_error": false}]}}),
        json!({"kind": "outbound", "message": {"type": "AssistantMessage", "id": "m_2",
            "content": [{"type": "text", "text": "read \u{0} done"}], "model": "m",
            "stop_reason": "end_turn"}}),
        json!({"kind": "outbound", "message": {"type": "ResultMessage", "subtype": "success"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
}

/// The stored events of a session: (seq, event, data as stored).
async fn table(db: &TestDb, id: &str) -> Vec<(u64, String, String)> {
    let client = db.client().await;
    let id: uuid::Uuid = id.parse().unwrap();
    client
        .query(
            "SELECT seq, event, data::text FROM events WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1), r.get(2)))
        .collect()
}

/// The `data:` line of a received frame, exactly as sent.
fn data_line(e: &Event) -> &str {
    e.raw
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("a data line")
}

/// Asserts that `events` (from 1) are exactly the session's table, byte for byte.
async fn assert_table_equals(db: &TestDb, id: &str, events: &[Event]) {
    assert_contiguous(events, 1);
    let stored = table(db, id).await;
    let got: Vec<(u64, String, String)> = events
        .iter()
        .map(|e| (e.id, e.event.clone(), data_line(e).to_owned()))
        .collect();
    assert_eq!(got, stored, "session {id}: subscriber and table differ");
}

/// Streams a session through `message`, collecting every event through the last `result`
/// (or the end of the stream), answering permission requests with allow.
async fn run_turn(api: &Api, id: &str, message: &str) -> Vec<Event> {
    let mut stream = api.stream(id, None).await.unwrap();
    assert_eq!(
        api.input(id, json!({"type": "user_message", "content": message}))
            .await,
        204
    );
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        let done = e.event == "result";
        if e.event == "permission_request" {
            let allow = json!({"type": "permission_response", "behavior": "allow",
                "correlation_id": e.data["correlation_id"]});
            assert_eq!(api.input(id, allow).await, 204);
        }
        events.push(e);
        if done {
            break;
        }
    }
    events
}

fn spawn_bystanders(api: &Api, ids: &[String]) -> Vec<tokio::task::JoinHandle<Vec<Event>>> {
    ids.iter()
        .map(|id| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move { run_turn(&api, &id, "go").await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_output_is_stored_and_delivered_exactly_beside_busy_sessions() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[
        ("binary", binary_scenario()),
        ("bulk", many_messages(2000, 80)),
    ]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    // A small ring: resumes below read the table, not memory.
    config.sessions.ring_size = 4;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let bystanders: Vec<String> =
        futures::future::join_all((0..5).map(|_| api.create("bulk"))).await;
    let running = spawn_bystanders(api, &bystanders);
    let id = api.create("binary").await;
    let events = run_turn(api, &id, "read it").await;

    assert_table_equals(&db, &id, &events).await;
    let text = events
        .iter()
        .find(|e| e.event == "message_complete")
        .unwrap();
    assert_eq!(text.data["message"]["content"][0]["text"], BINARY_TEXT);
    // NUL stays an escape in the frame: the JSON text carries `\u0000`, never a raw byte.
    assert!(data_line(text).contains(r"\u0000"), "{}", text.raw);
    assert!(!text.raw.contains('\0'));
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(result.data["output"], BINARY_RESULT);
    let request = events
        .iter()
        .find(|e| e.event == "permission_request")
        .unwrap();
    assert_eq!(request.data["input"]["path"], "a\u{0}b");

    // Resumed from Postgres (the ring holds 4): the same bytes.
    let mut resumed = api.stream(&id, Some("1")).await.unwrap();
    for live in &events[1..] {
        let again = resumed.next().await.unwrap();
        assert_eq!(again.raw, live.raw, "resumed frame differs");
    }

    for (id, task) in bystanders.iter().zip(running) {
        let got = task.await.unwrap();
        assert_eq!(got.len(), 2002, "session {id} stopped early");
        assert_table_equals(&db, id, &got).await;
    }

    // The audit projection holds it too: the tool call's whole story, and containment.
    let admin = api.with_token(ADMIN_TOKEN);
    let (status, page) = admin.get_json("/audit/events?correlation_id=tu_b").await;
    assert_eq!(status, 200, "{page}");
    let names: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "tool_use",
            "permission_request",
            "permission_resolved",
            "tool_result"
        ]
    );
    let contains = r#"{"tool_use_id":"tu_b","is_error":false}"#;
    let (status, page) = admin
        .get_json(&format!("/audit/events?contains={}", urlencode(contains)))
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    // Even asking for the assistant's text (not indexed) reads NUL events without failing.
    let (status, page) = admin
        .get_json(&format!(
            "/audit/events?event=message_complete&contains={}",
            urlencode(r#"{"message_id":"m_2"}"#)
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A trigger that refuses any event whose data mentions POISON, as Postgres refuses a value
/// no column or index can take: the net under the audit projection.
const REFUSE_POISON: &str = "
    CREATE FUNCTION awk_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.data::text LIKE '%POISON%' THEN
            RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER awk_test_refuse BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION awk_test_refuse();";

fn poison_scenario() -> String {
    let mut lines = vec![json!({"kind": "expect_user_query"})];
    for i in 0..12 {
        let text = if i == 5 {
            "POISON".to_owned()
        } else {
            format!("ok {i}")
        };
        lines.push(
            json!({"kind": "outbound", "message": {"type": "AssistantMessage",
            "id": format!("m_{i}"), "content": [{"type": "text", "text": text}], "model": "m"}}),
        );
    }
    lines.push(
        json!({"kind": "outbound", "message": {"type": "ResultMessage", "subtype": "success"}}),
    );
    lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_the_database_refuses_costs_only_its_own_session() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[
        ("poison", poison_scenario()),
        ("bulk", many_messages(2000, 80)),
    ]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    let server = TestServer::start_with(config).await;
    db.client()
        .await
        .batch_execute(REFUSE_POISON)
        .await
        .unwrap();
    let api = &server.api;
    let bystanders: Vec<String> =
        futures::future::join_all((0..5).map(|_| api.create("bulk"))).await;
    let running = spawn_bystanders(api, &bystanders);

    let id = api.create("poison").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;
    let mut events = Vec::new();
    while let Some(e) = stream.next().await {
        events.push(e);
    }
    // The refused message's seq holds an error instead; the stream then ends (without done)
    // and nothing after the refused seq was committed at that epoch.
    assert_table_equals(&db, &id, &events).await;
    let last = events.last().unwrap();
    assert_eq!(last.event, "error", "{events:?}");
    assert_eq!(last.data["code"], "event_rejected");
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "message_complete")
        .map(|e| e.data["message"]["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["ok 0", "ok 1", "ok 2", "ok 3", "ok 4"]);

    // The next request rehydrates it: ids continue after the error, the turn is reported lost.
    // One that comes while the session is still stopping here (its task waits for the writer
    // to settle the turn's last events, up to ~100 ms after the refusal) is served the ended
    // life, whose stream ends at once with nothing new; a client reconnects, and so does this.
    let mut lost = Vec::new();
    for _ in 0..100 {
        if let Ok(mut again) = api.stream(&id, Some(&last.id.to_string())).await {
            while let Some(e) = again.next().await {
                let end = e.event == "result";
                lost.push(e);
                if end {
                    break;
                }
            }
        }
        if !lost.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        lost.last().map(|e| e.event.as_str()),
        Some("result"),
        "{lost:?}"
    );
    assert_eq!(lost[0].id, last.id + 1);
    assert_eq!(lost[0].data["code"], "turn_lost");
    let mut all = events.clone();
    all.extend(lost);
    assert_table_equals(&db, &id, &all).await;

    for (id, task) in bystanders.iter().zip(running) {
        let got = task.await.unwrap();
        assert_eq!(got.len(), 2002, "session {id} stopped early");
        assert_table_equals(&db, id, &got).await;
    }
    let metrics = crate::support::metrics::scrape(api).await;
    assert!(
        metrics.value("agent_webkit_rejected_events_total", &[]) >= 1.0,
        "the refusal is counted"
    );
    server.stop().await;
}

#[tokio::test]
async fn content_postgres_cannot_hold_is_a_4xx_with_a_code() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let api = &server.api;
    let id = api.create("ask_user_question").await;

    let nul_message = r#"{"type":"user_message","content":"a\u0000b"}"#;
    let (status, _, body) = api.input_raw(&id, nul_message).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_input"))
    );
    // A reply to an id longer than the index holds is recorded (no pending request: 409).
    let long_id = "x".repeat(3001);
    let reply =
        json!({"type": "permission_response", "correlation_id": long_id, "behavior": "allow"});
    let (status, _, body) = api.input_raw(&id, &reply.to_string()).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (409, Some("no_pending_decision"))
    );

    let (status, _, body) = api.create_raw(r#"{"model":"opus\u0000"}"#).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_config"))
    );

    let (status, body) = api.get_json("/sessions?since=100000000d").await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_time"))
    );
    let admin = api.with_token(ADMIN_TOKEN);
    for (query, code) in [
        ("/audit/events?tool_name=Ba%00sh", "invalid_parameter"),
        ("/audit/inputs?principal=a%00", "invalid_parameter"),
        (
            &format!("/audit/events?correlation_id={long_id}"),
            "invalid_parameter",
        ),
        (
            "/audit/events?contains=%7B%22a%22%3A%22%5Cu0000%22%7D",
            "invalid_contains",
        ),
        ("/audit/events?until=100000000d", "invalid_time"),
    ] {
        let (status, body) = admin.get_json(query).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some(code)),
            "{query}"
        );
    }

    // JWT subjects that the principal columns cannot hold are refused like any bad token.
    for sub in ["a".repeat(3001), "ali\u{0}ce".to_owned()] {
        let (status, body) = api
            .with_token(&jwt(&sub, json!({})))
            .get_json("/sessions")
            .await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (401, Some("unauthorized"))
        );
    }
    // Nothing above was a 5xx, and the session still works.
    let answer = json!({"type": "user_message", "content": "ask me"});
    assert_eq!(api.input(&id, answer).await, 204);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deletes_of_one_live_session_all_get_204() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    for _ in 0..3 {
        let id = api.create("plain_qa").await;
        let mut stream = api.stream(&id, None).await.unwrap();
        stream.until("session_ready").await;
        let deletes = futures::future::join_all((0..8).map(|_| api.delete(&id))).await;
        assert!(deletes.iter().all(|s| *s == 204), "{deletes:?}");
        let events = stream.until("done").await;
        assert_eq!(events.iter().filter(|e| e.event == "done").count(), 1);
        assert_eq!(api.delete(&id).await, 204);
    }
    server.stop().await;
}

#[tokio::test]
async fn at_capacity_another_principals_session_answers_like_an_unknown_id() {
    let db = TestDb::new().await;
    let mut config = jwt_config(&db);
    config.sessions.max_sessions = Some(1);
    let server = TestServer::start_with(config).await;
    let alice = server.api.with_token(&jwt("alice", json!({})));
    let bob = server.api.with_token(&jwt("bob", json!({})));
    let bobs = bob.create("plain_qa").await;
    let other_dormant = bob.create("plain_qa").await;
    let dormant = alice.create("plain_qa").await;
    let mut stream = bob.stream(&bobs, None).await.unwrap();
    stream.until("session_ready").await;
    // The host is full (bob's live session); alice's own dormant one is a 503 at_capacity.
    let unknown = uuid::Uuid::new_v4().to_string();
    let say = json!({"type": "user_message", "content": "hi"});
    let (status, _, body) = alice.input_raw(&dormant, &say.to_string()).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (503, Some("at_capacity"))
    );
    // Bob's sessions (live and dormant) and an id nobody has answer alike: 404.
    for id in [&bobs, &other_dormant, &unknown] {
        let (status, _, body) = alice.input_raw(id, &say.to_string()).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (404, Some("session_not_found")),
            "{id}"
        );
        let (status, body) = alice.get_json(&format!("/sessions/{id}/stream")).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (404, Some("session_not_found"))
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_the_writer_absorbs_refuse_no_message() {
    // Ten sessions replaying 1000-message turns, five turns each, as fast as replay goes: the
    // queue fills in bursts, but the writer drains each in well under the shedding interval.
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[("burst", many_messages(1000, 60))]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let ids: Vec<String> = futures::future::join_all((0..10).map(|_| api.create("burst"))).await;
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move {
                let mut stream = api.stream(&id, None).await.unwrap();
                let mut statuses = Vec::new();
                for turn in 0..5 {
                    let say = json!({"type": "user_message", "content": format!("turn {turn}")});
                    statuses.push(api.input(&id, say).await.as_u16());
                    stream.until("result").await;
                }
                statuses
            })
        })
        .collect();
    let mut refused = 0;
    for task in tasks {
        refused += task.await.unwrap().iter().filter(|s| **s != 204).count();
    }
    assert_eq!(refused, 0, "messages refused during bursts");
    let metrics = crate::support::metrics::scrape(api).await;
    assert_eq!(
        metrics.value("agent_webkit_overload_rejections_total", &[]),
        0.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_near_its_baseline_after_large_inputs() {
    use crate::support::process::ServerProcess;
    let db = TestDb::new().await;
    let server = ServerProcess::start(&db.url, None, &[], &[]).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    stream.until("session_ready").await;
    // Warm up every pooled connection with small work, then measure.
    for _ in 0..4 {
        api.say(&id, "hi").await;
        stream.until("result").await;
    }
    let (before, _) = server.memory();
    let big = json!({"type": "user_message", "content": "x".repeat(9_500_000)}).to_string();
    // Four at a time: the pool of 8 connections stays available for the session's own writes.
    let mut sent = Vec::new();
    for _ in 0..8 {
        sent.extend(futures::future::join_all((0..4).map(|_| api.input_raw(&id, &big))).await);
    }
    let statuses: Vec<_> = sent
        .iter()
        .map(|(s, _, b)| (s.as_u16(), b.clone()))
        .collect();
    assert!(statuses.iter().all(|(s, _)| *s == 204), "{statuses:?}");
    for _ in 0..32 {
        stream.until("result").await;
    }
    let (after, peak) = server.memory();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    eprintln!(
        "RSS before {:.1} MiB, after 32 x 9.5 MiB inputs {:.1} MiB (peak {:.1} MiB)",
        mib(before),
        mib(after),
        mib(peak)
    );
    // Before the fix, pooled connections kept their buffers: +750 MiB for good.
    assert!(
        after < before + (128 << 20),
        "RSS stayed {:.1} MiB above its baseline",
        mib(after - before)
    );
    server.stop().await;
}

#[tokio::test]
async fn huge_ids_and_deep_nesting_from_an_agent_are_stored_and_delivered() {
    // A tool name and id far over btree's entry limit, and input nested 100 deep: the audit
    // columns keep a 256-character prefix, the event keeps everything.
    let name = "T".repeat(5000);
    let tool_id = format!("tu_{}", "9".repeat(5000));
    let mut input = json!("leaf");
    for _ in 0..100 {
        input = json!({"n": input});
    }
    let scenario = [
        json!({"kind": "expect_user_query"}),
        json!({"kind": "outbound", "message": {"type": "AssistantMessage", "id": "m_1",
            "content": [{"type": "tool_use", "id": tool_id, "name": name, "input": input}],
            "model": "m"}}),
        json!({"kind": "callback_expect", "tool_name": name, "tool_input": input,
            "context": {"tool_use_id": tool_id}, "respond": {"behavior": "allow"}}),
        json!({"kind": "outbound", "message": {"type": "UserMessage", "content": [
            {"type": "tool_result", "tool_use_id": tool_id, "content": "ok", "is_error": false}]}}),
        json!({"kind": "outbound", "message": {"type": "ResultMessage", "subtype": "success"}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n");
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[("huge", scenario)]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("huge").await;
    let events = run_turn(api, &id, "go").await;
    assert_table_equals(&db, &id, &events).await;
    let tool_use = events.iter().find(|e| e.event == "tool_use").unwrap();
    assert_eq!(tool_use.data["tool_name"], name.as_str());
    assert_eq!(tool_use.data["input"], input);
    // The permission was answered with the whole 5004-character id (`run_turn`).
    assert!(events.iter().any(|e| e.event == "permission_resolved"));
    let stored: Vec<(Option<String>, Option<String>)> = db
        .client()
        .await
        .query(
            "SELECT tool_name, correlation_id FROM events WHERE session_id = $1 \
             AND event = 'tool_use'",
            &[&id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0.as_deref().map(str::len), Some(256));
    assert_eq!(stored[0].1.as_deref().map(str::len), Some(256));
    server.stop().await;
}
