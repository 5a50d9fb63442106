//! History and audit over HTTP: decision events, each filter, cursors, bad filters.

use crate::support::sse::{assert_contiguous, names};
use crate::support::ADMIN_TOKEN;
use crate::support::{fixtures_with, jwt, jwt_config, many_messages, Api, TestDb, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;

fn list<'a>(body: &'a Value, key: &str) -> &'a Vec<Value> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {body}"))
}

fn field<'a>(rows: &'a [Value], name: &str) -> Vec<&'a Value> {
    rows.iter().map(|r| &r[name]).collect()
}

/// Every page of `path` (which has no `?cursor`) with `limit`, following `next_cursor`.
async fn all_pages(api: &Api, path: &str, key: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let (status, body) = api.get_json(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let rows = list(&body, key);
        assert!(rows.len() <= limit);
        out.extend(rows.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn decisions_are_logged_once_with_who_won_and_who_lost() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let alice = server.api.with_token(&jwt("alice", json!({})));
    let admin = server.api.with_token(ADMIN_TOKEN);
    let id = alice.create("read_allow").await;
    let mut tab_a = alice.stream(&id, None).await.unwrap();
    let mut tab_b = alice.stream(&id, None).await.unwrap();
    alice.say(&id, "read").await;
    tab_a.until("permission_request").await;

    let replies = (0..30).map(|i| {
        let (api, id) = (alice.clone(), id.clone());
        let behavior = if i % 3 == 0 { "deny" } else { "allow" };
        let body =
            json!({"type":"permission_response","correlation_id":"tu_1","behavior":behavior});
        tokio::spawn(async move { (behavior, api.input(&id, body).await.as_u16()) })
    });
    let outcomes: Vec<(&str, u16)> = futures::future::join_all(replies)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let winners: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.1 == 204)
        .map(|o| o.0)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| o.1 == 409).count(), 29);

    // Both tabs hear the one decision, right after the request and before what it caused.
    for tab in [&mut tab_a, &mut tab_b] {
        let events = tab.until("result").await;
        let resolved: Vec<_> = events
            .iter()
            .filter(|e| e.event == "permission_resolved")
            .collect();
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            resolved[0].data,
            json!({"correlation_id": "tu_1", "behavior": winners[0]})
        );
    }
    let (_, history) = alice.get_json(&format!("/sessions/{id}/events")).await;
    let history = list(&history, "events");
    let order: Vec<&str> = history
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    let at = order
        .iter()
        .position(|e| *e == "permission_resolved")
        .unwrap();
    assert_eq!(order[at - 1], "permission_request");

    // The input log: one accepted decision and 29 refusals, each with its principal.
    let (_, inputs) = admin
        .get_json(&format!(
            "/audit/inputs?correlation_id=tu_1&session_id={id}"
        ))
        .await;
    let inputs = list(&inputs, "inputs");
    assert_eq!(inputs.len(), 30);
    assert!(inputs
        .iter()
        .all(|i| i["principal"] == "alice" && i["type"] == "permission_response"));
    let accepted: Vec<&Value> = inputs.iter().filter(|i| i["status"] == 204).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["body"]["behavior"], winners[0]);
    let (_, lost) = admin
        .get_json(&format!("/audit/inputs?session_id={id}&status=409"))
        .await;
    assert_eq!(list(&lost, "inputs").len(), 29);

    // The tool call's whole story under its correlation id.
    let (_, story) = admin.get_json("/audit/events?correlation_id=tu_1").await;
    let story = list(&story, "events");
    assert_eq!(
        story
            .iter()
            .map(|e| e["event"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "tool_use",
            "permission_request",
            "permission_resolved",
            "tool_result"
        ]
    );

    // Questions: question_resolved, once.
    let q = alice.create("ask_user_question").await;
    let mut stream = alice.stream(&q, None).await.unwrap();
    alice.say(&q, "ask").await;
    stream.until("ask_user_question").await;
    let answer = json!({"type":"question_response","correlation_id":"tu_q","answers":{"Pick a color":"red"}});
    assert_eq!(alice.input(&q, answer.clone()).await, 204);
    assert_eq!(alice.input(&q, answer).await, 409);
    let events = stream.until("result").await;
    assert_eq!(
        names(&events),
        ["question_resolved", "message_complete", "result"]
    );
    assert_eq!(events[0].data, json!({"correlation_id": "tu_q"}));
    server.stop().await;
}

/// Two principals' sessions with tool calls, questions and a delete, for the filter tests.
async fn audit_fixture(server: &TestServer) -> (String, String) {
    let alice = server.api.with_token(&jwt("alice", json!({})));
    let bob = server.api.with_token(&jwt("bob", json!({})));
    let read = alice.create("read_allow").await;
    let mut s = alice.stream(&read, None).await.unwrap();
    alice.say(&read, "read").await;
    s.until("permission_request").await;
    let allow = json!({"type":"permission_response","correlation_id":"tu_1","behavior":"allow"});
    assert_eq!(alice.input(&read, allow.clone()).await, 204);
    assert_eq!(alice.input(&read, allow).await, 409);
    s.until("result").await;
    let deny = bob.create("deny_with_interrupt").await;
    let mut s = bob.stream(&deny, None).await.unwrap();
    bob.say(&deny, "rm").await;
    s.until("permission_request").await;
    let no = json!({"type":"permission_response","correlation_id":"tu_1","behavior":"deny","interrupt":true});
    assert_eq!(bob.input(&deny, no).await, 204);
    s.until("result").await;
    assert_eq!(bob.delete(&deny).await, 204);
    (read, deny)
}

#[tokio::test]
async fn each_audit_filter_narrows_the_log() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let (read, deny) = audit_fixture(&server).await;
    let admin = server.api.with_token(ADMIN_TOKEN);
    let events = |q: &'static str| {
        let admin = admin.clone();
        async move {
            let (status, body) = admin.get_json(&format!("/audit/events{q}")).await;
            assert_eq!(status, 200, "{q}: {body}");
            list(&body, "events").clone()
        }
    };
    let all = events("").await;
    // read_allow: 8 events; deny_with_interrupt: 6 and its `done`.
    assert_eq!(all.len(), 8 + 7);
    // Time ordered: keys never go backwards.
    let keys: Vec<(String, String, i64)> = all
        .iter()
        .map(|e| {
            (
                e["created_at"].as_str().unwrap().to_owned(),
                e["session_id"].as_str().unwrap().to_owned(),
                e["id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");

    let resolved = events("?event=permission_resolved").await;
    assert_eq!(
        field(&resolved, "data"),
        [
            &json!({"correlation_id":"tu_1","behavior":"allow"}),
            &json!({"correlation_id":"tu_1","behavior":"deny"})
        ]
    );
    let bash = events("?tool_name=Bash").await;
    assert_eq!(
        field(&bash, "event"),
        [&json!("tool_use"), &json!("permission_request")]
    );
    assert!(bash.iter().all(|e| e["session_id"] == json!(deny)));
    // correlation ids are per session: tu_1 names a call in each.
    assert_eq!(events("?correlation_id=tu_1").await.len(), 4 + 3);
    let denied = events("?contains=%7B%22behavior%22%3A%22deny%22%7D").await;
    assert_eq!(field(&denied, "event"), [&json!("permission_resolved")]);
    assert_eq!(denied[0]["session_id"], json!(deny));
    // The assistant's text is searched only when asked for by name (V3's partial indexes).
    let messages = all
        .iter()
        .filter(|e| e["event"] == "message_complete")
        .count();
    assert!(messages > 0);
    let role = "contains=%7B%22message%22%3A%7B%22role%22%3A%22assistant%22%7D%7D";
    let by_default = admin.get_json(&format!("/audit/events?{role}")).await.1;
    assert_eq!(list(&by_default, "events").len(), 0, "{by_default}");
    let named = admin
        .get_json(&format!("/audit/events?{role}&event=message_complete"))
        .await
        .1;
    assert_eq!(list(&named, "events").len(), messages, "{named}");
    let one: Vec<Value> = admin
        .get_json(&format!(
            "/audit/events?session_id={read}&event=tool_result"
        ))
        .await
        .1["events"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(
        field(&one, "data"),
        [&json!({"tool_use_id":"tu_1","output":"first line","is_error":false})]
    );
    assert_eq!(events("?since=1h").await.len(), all.len());
    assert_eq!(events("?since=2999-01-01T00:00:00Z").await.len(), 0);
    assert_eq!(events("?until=2000-01-01T00:00:00Z").await.len(), 0);
    let middle = all[5]["created_at"].as_str().unwrap();
    let (_, after_middle) = admin
        .get_json(&format!("/audit/events?since={middle}"))
        .await;
    let (_, before_middle) = admin
        .get_json(&format!("/audit/events?until={middle}"))
        .await;
    assert_eq!(
        list(&after_middle, "events").len() + list(&before_middle, "events").len(),
        all.len()
    );

    // Inputs: by principal, type, status, session, time.
    let inputs = |q: String| {
        let admin = admin.clone();
        async move {
            list(
                &admin.get_json(&format!("/audit/inputs{q}")).await.1,
                "inputs",
            )
            .clone()
        }
    };
    assert_eq!(inputs(String::new()).await.len(), 5);
    let bobs = inputs("?principal=bob".into()).await;
    assert_eq!(
        field(&bobs, "type"),
        [&json!("user_message"), &json!("permission_response")]
    );
    assert_eq!(inputs("?type=user_message".into()).await.len(), 2);
    let lost = inputs("?status=409".into()).await;
    assert_eq!(field(&lost, "principal"), [&json!("alice")]);
    assert_eq!(inputs(format!("?session_id={read}")).await.len(), 3);
    assert_eq!(
        inputs("?since=1h&correlation_id=tu_1".into()).await.len(),
        3
    );
    assert_eq!(inputs("?until=1h".into()).await.len(), 0);

    // Sessions: status and time filters, newest first.
    let (_, sessions) = admin.get_json("/sessions").await;
    assert_eq!(
        field(list(&sessions, "sessions"), "id"),
        [&json!(deny), &json!(read)]
    );
    let (_, closed) = admin.get_json("/sessions?status=closed").await;
    assert_eq!(field(list(&closed, "sessions"), "id"), [&json!(deny)]);
    let (_, active) = admin.get_json("/sessions?status=active").await;
    assert_eq!(field(list(&active, "sessions"), "id"), [&json!(read)]);
    let (_, none) = admin.get_json("/sessions?status=dormant").await;
    assert_eq!(list(&none, "sessions").len(), 0);
    let (_, none) = admin.get_json("/sessions?since=2999-01-01T00:00:00Z").await;
    assert_eq!(list(&none, "sessions").len(), 0);
    let (_, both) = admin
        .get_json("/sessions?since=1h&until=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(list(&both, "sessions").len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn session_metadata_and_history_follow_the_session() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api
        .create_raw(r#"{"fixture":"read_allow","model":"claude-x"}"#)
        .await
        .2["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, row) = api.get_json(&format!("/sessions/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(row["status"], "dormant"); // born unowned: nobody holds it yet
    assert_eq!(
        row["config"],
        json!({"model": "claude-x", "fixture": "read_allow"})
    );
    assert_eq!(
        (row["last_event_id"].as_i64(), row["turns"].as_i64()),
        (Some(1), Some(0))
    );

    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;
    let mut all = stream.until("permission_request").await;
    let allow = json!({"type":"permission_response","correlation_id":"tu_1","behavior":"allow"});
    assert_eq!(api.input(&id, allow).await, 204);
    all.extend(stream.until("result").await);
    // Turn bookkeeping is written by the session task just after the result.
    let mut row = Value::Null;
    for _ in 0..100 {
        row = api.get_json(&format!("/sessions/{id}")).await.1;
        if row["turns"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(row["status"], "active");
    assert!(row["owner_host_name"].is_string(), "{row}");
    assert_eq!(row["last_event_id"].as_u64(), Some(all.last().unwrap().id));
    assert_eq!(
        (row["turns"].as_i64(), row["total_cost_usd"].as_f64()),
        (Some(1), Some(0.002))
    );

    // History pages, `after` like Last-Event-ID, and an event filter.
    let pages = all_pages(api, &format!("/sessions/{id}/events"), "events", 3).await;
    assert_eq!(pages.len(), all.len());
    for (got, want) in pages.iter().zip(&all) {
        assert_eq!(
            (got["id"].as_u64(), &got["event"], &got["data"]),
            (Some(want.id), &json!(want.event), &want.data)
        );
    }
    let (_, tail) = api
        .get_json(&format!("/sessions/{id}/events?after=5"))
        .await;
    assert_eq!(list(&tail, "events")[0]["id"], 6);
    let (_, tools) = api
        .get_json(&format!("/sessions/{id}/events?event=tool_use"))
        .await;
    assert_eq!(list(&tools, "events").len(), 1);

    assert_eq!(api.delete(&id).await, 204);
    let (_, row) = api.get_json(&format!("/sessions/{id}")).await;
    assert_eq!(
        (row["status"].as_str(), row["owner_host"].is_null()),
        (Some("closed"), true)
    );
    let (_, done) = api
        .get_json(&format!("/sessions/{id}/events?event=done"))
        .await;
    assert_eq!(list(&done, "events").len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn cursors_stay_stable_while_new_events_arrive() {
    let db = TestDb::new().await;
    let mut config = jwt_config(&db);
    let fixtures = fixtures_with(&[("many", many_messages(400, 20))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let admin = api.with_token(ADMIN_TOKEN);
    let old: Vec<String> = futures::future::join_all((0..5).map(|_| api.create("plain_qa"))).await;
    let before = all_pages(&admin, "/audit/events", "events", 1000).await;
    assert_eq!(before.len(), 5);

    // A session appends ~400 events while we page through the log and through its history.
    let busy = api.create("many").await;
    api.say(&busy, "go").await;
    let mut seen = HashSet::new();
    let log = all_pages(&admin, "/audit/events", "events", 7).await;
    for e in &log {
        assert!(
            seen.insert((e["session_id"].to_string(), e["id"].as_i64())),
            "repeated {e}"
        );
    }
    for e in &before {
        assert!(
            seen.contains(&(e["session_id"].to_string(), e["id"].as_i64())),
            "lost {e}"
        );
    }
    let history = all_pages(api, &format!("/sessions/{busy}/events"), "events", 9).await;
    let ids: Vec<u64> = history.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "gap or repeat"
    );

    // New sessions while paging the newest-first list: every old one, once.
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let _ = api.create("plain_qa").await;
        let (_, page) = api.get_json(&format!("/sessions?limit=2{cursor}")).await;
        listed.extend(
            list(&page, "sessions")
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let unique: HashSet<&String> = listed.iter().collect();
    assert_eq!(unique.len(), listed.len(), "a session was listed twice");
    assert!(old.iter().all(|o| unique.contains(o)));
    let mut stream = api.stream(&busy, None).await.unwrap();
    assert_contiguous(&stream.until("result").await, 1);
    server.stop().await;
}

#[tokio::test]
async fn bad_filters_are_400_with_the_reason() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(jwt_config(&db)).await;
    let admin = server.api.with_token(ADMIN_TOKEN);
    let id = admin.create("plain_qa").await;
    let cases = [
        ("/audit/events?event=nope", "invalid_event"),
        ("/audit/events?since=last-tuesday", "invalid_time"),
        ("/audit/events?until=2026-13-45", "invalid_time"),
        ("/audit/events?cursor=bm9wZQ", "invalid_cursor"),
        ("/audit/events?limit=0", "invalid_limit"),
        ("/audit/events?limit=1001", "invalid_limit"),
        ("/audit/events?limit=ten", "invalid_limit"),
        ("/audit/events?contains=%7Bnope", "invalid_contains"),
        ("/audit/events?session_id=123", "invalid_session_id"),
        ("/audit/events?tool=Bash", "unknown_parameter"),
        ("/audit/inputs?status=ok", "invalid_status"),
        ("/audit/inputs?type=shout", "invalid_type"),
        ("/sessions?status=sleeping", "invalid_status"),
        ("/sessions?limit=-1", "invalid_limit"),
        ("/sessions?cursor=%%%", "invalid_cursor"),
    ];
    for (path, code) in cases {
        let (status, body) = admin.get_json(path).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some(code)),
            "{path}: {body}"
        );
        assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{path}");
    }
    let history = format!("/sessions/{id}/events");
    for (q, code) in [
        ("?after=-3", "invalid_after"),
        ("?event=nope", "invalid_event"),
        ("?after=1&cursor=x", "invalid_cursor"),
    ] {
        let (status, body) = admin.get_json(&format!("{history}{q}")).await;
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (400, Some(code)),
            "{q}: {body}"
        );
    }
    // A cursor from one list is not accepted by another.
    let (_, page) = admin.get_json("/audit/events?limit=1").await;
    let c = page["next_cursor"].as_str().unwrap();
    let (status, body) = admin.get_json(&format!("/audit/inputs?cursor={c}")).await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_cursor"))
    );
    server.stop().await;
}
