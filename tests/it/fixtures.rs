//! Every reference scenario played end to end, with the event sequence a client sees.

use crate::support::sse::{assert_contiguous, names, Event};
use crate::support::{TestDb, TestServer};
use serde_json::json;

/// Plays `fixture`: sends `message`, answers each request as the scenario expects, and returns
/// every event through the last `result`.
async fn play(server: &TestServer, fixture: &str, message: serde_json::Value) -> Vec<Event> {
    let api = &server.api;
    let id = api.create(fixture).await;
    let mut stream = api.stream(&id, None).await.unwrap();
    let mut events = stream.until("session_ready").await;
    assert_eq!(api.input(&id, message).await, 204);
    loop {
        let e = stream.next().await.expect("stream ended early");
        events.push(e.clone());
        let cid = e.data["correlation_id"].clone();
        match e.event.as_str() {
            "permission_request" if fixture == "deny_with_interrupt" => {
                let deny = json!({"type":"permission_response","correlation_id":cid,"behavior":"deny","interrupt":true});
                assert_eq!(api.input(&id, deny).await, 204);
            }
            "permission_request" => {
                let allow =
                    json!({"type":"permission_response","correlation_id":cid,"behavior":"allow"});
                assert_eq!(api.input(&id, allow).await, 204);
            }
            "ask_user_question" => {
                let answer = json!({"type":"question_response","correlation_id":cid,"answers":{"Pick a color":"red"}});
                assert_eq!(api.input(&id, answer).await, 204);
            }
            "result" => break,
            _ => {}
        }
    }
    assert_contiguous(&events, 1);
    events
}

/// The `input` of the tool_use block `tool_use_id` in a reference fixture, as written there.
fn fixture_tool_input(fixture: &str, tool_use_id: &str) -> serde_json::Value {
    let path = format!("{}/fixtures/{fixture}.jsonl", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| l["message"]["content"].as_array().cloned())
        .flatten()
        .find(|block| block["id"] == tool_use_id)
        .map(|block| block["input"].clone())
        .unwrap_or_else(|| panic!("{path} has no tool_use {tool_use_id}"))
}

fn say(text: &str) -> serde_json::Value {
    json!({"type": "user_message", "content": text})
}

#[tokio::test]
async fn every_reference_fixture_plays_end_to_end() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let cases: &[(&str, &[&str])] = &[
        ("plain_qa", &["session_ready", "message_complete", "result"]),
        (
            "read_allow",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "permission_request",
                "permission_resolved",
                "tool_result",
                "message_complete",
                "result",
            ],
        ),
        (
            "ask_user_question",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "ask_user_question",
                "question_resolved",
                "message_complete",
                "result",
            ],
        ),
        (
            "deny_with_interrupt",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "permission_request",
                "permission_resolved",
                "result",
            ],
        ),
        (
            "genui_render",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "permission_request",
                "permission_resolved",
                "tool_result",
                "message_complete",
                "result",
            ],
        ),
        (
            "interrupt_mid_stream",
            &["session_ready", "message_complete", "result"],
        ),
        (
            "mcp_status_change",
            &[
                "session_ready",
                "mcp_status_change",
                "message_complete",
                "result",
            ],
        ),
        (
            "multi_tool",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "tool_use",
                "permission_request",
                "permission_resolved",
                "permission_request",
                "permission_resolved",
                "tool_result",
                "tool_result",
                "message_complete",
                "result",
            ],
        ),
        (
            "streaming_long",
            &["session_ready", "message_complete", "result"],
        ),
        (
            "tool_error",
            &[
                "session_ready",
                "message_complete",
                "tool_use",
                "permission_request",
                "permission_resolved",
                "tool_result",
                "message_complete",
                "result",
            ],
        ),
    ];
    for (fixture, expected) in cases {
        let events = play(&server, fixture, say("hello")).await;
        assert_eq!(&names(&events), expected, "fixture {fixture}");
    }

    let image = json!({"type":"user_message","content":[
        {"type":"text","text":"what is this?"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]});
    let events = play(&server, "image_attachment", image).await;
    assert_eq!(
        names(&events),
        ["session_ready", "message_complete", "result"]
    );
    server.stop().await;
}

#[tokio::test]
async fn event_payloads_match_the_wire_protocol() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;

    let events = play(&server, "read_allow", say("read it")).await;
    let id = events[0].data["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        events[0].data,
        json!({"session_id": id, "protocol_version": "1.0"})
    );
    assert_eq!(events[1].data["message_id"], "m_1");
    assert_eq!(events[1].data["message"]["role"], "assistant");
    assert_eq!(events[1].data["message"]["model"], "claude-opus-4-7");
    assert_eq!(
        events[2].data,
        json!({"message_id":"m_1","tool_use_id":"tu_1","tool_name":"Read","input":{"path":"./README.md"}})
    );
    assert_eq!(
        events[3].data,
        json!({"correlation_id":"tu_1","tool_name":"Read","input":{"path":"./README.md"},"context":{"tool_use_id":"tu_1"}})
    );
    // (ours) The winning reply is announced, so other tabs clear their prompt.
    assert_eq!(
        events[4].data,
        json!({"correlation_id":"tu_1","behavior":"allow"})
    );
    assert_eq!(
        events[5].data,
        json!({"tool_use_id":"tu_1","output":"first line","is_error":false})
    );
    assert_eq!(events[6].data["message"]["stop_reason"], "end_turn");
    assert_eq!(events[7].data["subtype"], "success");
    assert_eq!(events[7].data["total_cost_usd"], 0.002);

    let events = play(&server, "ask_user_question", say("ask")).await;
    assert_eq!(events[3].data["correlation_id"], "tu_q");
    // `questions` is the tool's whole input object, as the original sends it (issue 11): the
    // fixture's AskUserQuestion input, byte for byte in key order.
    assert_eq!(
        serde_json::to_string(&events[3].data["questions"]).unwrap(),
        serde_json::to_string(&fixture_tool_input("ask_user_question", "tu_q")).unwrap()
    );
    assert_eq!(events[4].data, json!({"correlation_id":"tu_q"}));

    let events = play(&server, "mcp_status_change", say("mcp")).await;
    assert_eq!(
        events[1].data,
        json!({"server_name":"notion","status":"connected"})
    );

    let events = play(&server, "tool_error", say("x")).await;
    assert_eq!(events[5].data["is_error"], true);

    let events = play(&server, "deny_with_interrupt", say("x")).await;
    assert_eq!(
        events[4].data,
        json!({"correlation_id":"tu_1","behavior":"deny"})
    );
    assert_eq!(events.last().unwrap().data["subtype"], "interrupted");
    server.stop().await;
}

#[tokio::test]
async fn multi_turn_runs_one_turn_at_a_time_in_order() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("multi_turn").await;
    // Both messages queued before the first turn ends: the second waits for the first result.
    api.say(&id, "hi").await;
    api.say(&id, "I'm Ada").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    let mut events = stream.until("result").await;
    events.extend(stream.until("result").await);
    assert_eq!(
        names(&events),
        [
            "session_ready",
            "message_complete",
            "result",
            "message_complete",
            "result"
        ]
    );
    assert_eq!(events[1].data["message_id"], "m_1");
    assert_eq!(events[3].data["message_id"], "m_2");

    // The script has no third turn: the client gets an error and a result, never a hang.
    api.say(&id, "more?").await;
    let events = stream.until("result").await;
    assert_eq!(names(&events), ["error", "result"]);
    assert_eq!(events[0].data["code"], "fixture_exhausted");
    assert_eq!(events[1].data["subtype"], "error_during_execution");
    server.stop().await;
}
