//! Every scenario the replay runtime plays (`fixtures/`), played by the fake CLI
//! through the Claude runtime: the same conversation yields the same wire events, plus what
//! the real CLI adds (streamed deltas, and the tool results the CLI reports).

use super::{open, say, shape, tool, turn, FakeCli};
use crate::support::sse::{assert_contiguous, Event};
use crate::support::{Api, TestDb};
use serde_json::{json, Value};

/// The AskUserQuestion input the fake CLI asks with; the wire event carries it whole.
fn ask_input() -> Value {
    json!({"questions": [{"question": "Pick a color", "header": "Color",
        "multiSelect": false, "options": [{"label": "red"}, {"label": "blue"}]}]})
}

fn reference_scenario() -> Value {
    let ask_input = ask_input();
    json!({"turns": [
        turn("plain_qa", vec![say("hello world")]),
        turn("read_allow", vec![
            tool("tu_1", "Read", json!({"path": "./README.md"}), json!({"output": "first line"})),
            say("The README starts with: first line")]),
        turn("ask_user_question", vec![
            tool("tu_q", "AskUserQuestion", ask_input, json!({})),
            say("Red it is.")]),
        turn("deny_with_interrupt", vec![
            tool("tu_1", "Bash", json!({"command": "rm -rf /"}), json!({})),
            say("never reached")]),
        turn("genui_render", vec![
            tool("tu_1", "mcp__genui__render_weather_card",
                 json!({"location": "Boston, MA", "temperature_f": 72, "condition": "sunny"}),
                 json!({"output": [{"type": "text", "text": "rendered"}]})),
            say("Here is the weather card.")]),
        json!({"when": "mcp_status_change",
               "mcp_servers": [{"name": "notion", "status": "connected"}],
               "steps": [say("MCP ready")]}),
        turn("multi_tool", vec![
            json!({"assistant": [
                {"type": "tool_use", "id": "tu_1", "name": "Read", "input": {"path": "a.txt"},
                 "fake": {"output": "A"}},
                {"type": "tool_use", "id": "tu_2", "name": "Read", "input": {"path": "b.txt"},
                 "fake": {"output": "B"}}]}),
            say("Both read.")]),
        turn("streaming_long", vec![json!({"assistant": [
            {"type": "text", "text": "part one. "}, {"type": "text", "text": "part two. "},
            {"type": "text", "text": "part three."}]})]),
        turn("tool_error", vec![
            tool("tu_1", "Read", json!({"path": "/missing"}),
                 json!({"output": "File does not exist.", "is_error": true})),
            say("The file is missing.")]),
        turn("what is this", vec![say("I see a red square.")]),
        turn("I'm Ada", vec![say("Nice to meet you, Ada.")]),
        turn("hi", vec![say("Hi! What's your name?")]),
    ]})
}

/// Sends `message`, answers each request as the reference scenario expects, and returns the
/// events through the turn's `result`.
async fn play(api: &Api, message: Value) -> (String, Vec<Event>) {
    let (id, mut stream) = open(api, json!({})).await;
    assert_eq!(api.input(&id, message.clone()).await, 204);
    let mut events = Vec::new();
    let deny = message["content"] == "deny_with_interrupt";
    loop {
        let e = stream.next().await.expect("stream ended early");
        events.push(e.clone());
        let cid = e.data["correlation_id"].clone();
        let reply = match e.event.as_str() {
            "permission_request" if deny => {
                json!({"type":"permission_response","correlation_id":cid,"behavior":"deny","interrupt":true})
            }
            "permission_request" => {
                json!({"type":"permission_response","correlation_id":cid,"behavior":"allow"})
            }
            "ask_user_question" => {
                json!({"type":"question_response","correlation_id":cid,"answers":{"Pick a color":"red"}})
            }
            "result" => break,
            _ => continue,
        };
        assert_eq!(api.input(&id, reply).await, 204);
    }
    assert_contiguous(&events, 2);
    (id, events)
}

fn user(text: &str) -> Value {
    json!({"type": "user_message", "content": text})
}

#[tokio::test]
async fn every_reference_scenario_plays_through_the_cli() {
    let fake = FakeCli::new(reference_scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let complete_then_tool = ["message_complete", "tool_use"];
    let answer = ["message_delta", "message_complete", "result"];
    let cat = |parts: &[&[&'static str]]| -> Vec<&'static str> { parts.concat() };
    // Each answered request is followed by its `*_resolved` event (the first reply won).
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("plain_qa", answer.to_vec()),
        (
            "read_allow",
            cat(&[
                &complete_then_tool,
                &["permission_request", "permission_resolved", "tool_result"],
                &answer,
            ]),
        ),
        (
            "ask_user_question",
            cat(&[
                &complete_then_tool,
                &["ask_user_question", "question_resolved", "tool_result"],
                &answer,
            ]),
        ),
        (
            "deny_with_interrupt",
            cat(&[
                &complete_then_tool,
                &[
                    "permission_request",
                    "permission_resolved",
                    "tool_result",
                    "result",
                ],
            ]),
        ),
        (
            "genui_render",
            cat(&[
                &complete_then_tool,
                &["permission_request", "permission_resolved", "tool_result"],
                &answer,
            ]),
        ),
        ("mcp_status_change", cat(&[&["mcp_status_change"], &answer])),
        (
            "multi_tool",
            cat(&[
                &["message_complete", "tool_use", "tool_use"],
                &[
                    "permission_request",
                    "permission_resolved",
                    "tool_result",
                    "permission_request",
                    "permission_resolved",
                    "tool_result",
                ],
                &answer,
            ]),
        ),
        ("streaming_long", answer.to_vec()),
        (
            "tool_error",
            cat(&[
                &complete_then_tool,
                &["permission_request", "permission_resolved", "tool_result"],
                &answer,
            ]),
        ),
    ];
    for (name, expected) in &cases {
        let (_, events) = play(api, user(name)).await;
        assert_eq!(&shape(&events), expected, "scenario {name}");
        check_payloads(name, &events);
    }

    let image = json!({"type":"user_message","content":[
        {"type":"text","text":"what is this?"},
        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}}]});
    let (_, events) = play(api, image).await;
    assert_eq!(shape(&events), answer);
    // The image reached the CLI as sent.
    let sent = fake.stdin();
    let prompt = sent
        .iter()
        .find(|l| l["type"] == "user" && l["message"]["content"][0]["text"] == "what is this?")
        .expect("the image message reached the CLI");
    assert_eq!(
        prompt["message"]["content"][1]["source"]["data"],
        "iVBORw0KGgo="
    );
    server.stop().await;
}

fn check_payloads(name: &str, events: &[Event]) {
    let by_name = |n: &str| events.iter().find(|e| e.event == n).unwrap().data.clone();
    let result = events.last().unwrap().data.clone();
    match name {
        "read_allow" => {
            let complete = by_name("message_complete");
            let message_id = complete["message_id"].clone();
            assert_eq!(complete["message"]["stop_reason"], "tool_use");
            assert_eq!(complete["message"]["role"], "assistant");
            assert_eq!(complete["message"]["model"], "claude-sonnet-4-5");
            assert_eq!(
                by_name("tool_use"),
                json!({"message_id": message_id, "tool_use_id": "tu_1", "tool_name": "Read",
                       "input": {"path": "./README.md"}})
            );
            let request = by_name("permission_request");
            assert_eq!(request["correlation_id"], "tu_1");
            assert_eq!(request["tool_name"], "Read");
            assert_eq!(request["input"], json!({"path": "./README.md"}));
            assert_eq!(request["context"]["tool_use_id"], "tu_1");
            assert_eq!(
                by_name("tool_result"),
                json!({"tool_use_id": "tu_1", "output": "first line", "is_error": false})
            );
            assert_eq!(result["subtype"], "success");
            assert_eq!(result["result"], "The README starts with: first line");
            assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);
            assert!(result["usage"].is_object() && result["modelUsage"].is_object());
            assert!(result["duration_ms"].is_u64() && result["num_turns"] == 2);
        }
        "ask_user_question" => {
            let ask = by_name("ask_user_question");
            assert_eq!(ask["correlation_id"], "tu_q");
            assert_eq!(
                serde_json::to_string(&ask["questions"]).unwrap(),
                serde_json::to_string(&ask_input()).unwrap()
            );
            let answer = by_name("tool_result")["output"].clone();
            assert_eq!(
                answer,
                "Your questions have been answered: \"Pick a color\"=\"red\". You can now continue with these answers in mind."
            );
        }
        "deny_with_interrupt" => {
            assert_eq!(by_name("tool_result")["is_error"], true);
            assert_eq!(result["subtype"], "interrupted");
            assert_eq!(result["terminal_reason"], "aborted_tools");
            assert_eq!(result["permission_denials"][0]["tool_use_id"], "tu_1");
        }
        "mcp_status_change" => assert_eq!(
            by_name("mcp_status_change"),
            json!({"server_name": "notion", "status": "connected"})
        ),
        "genui_render" => assert_eq!(
            by_name("tool_result")["output"],
            json!([{"type": "text", "text": "rendered"}])
        ),
        "streaming_long" => {
            let content = by_name("message_complete")["message"]["content"].clone();
            assert_eq!(content.as_array().unwrap().len(), 3);
            assert_eq!(content[2], json!({"type": "text", "text": "part three."}));
        }
        "tool_error" => assert_eq!(by_name("tool_result")["is_error"], true),
        _ => {}
    }
}

#[tokio::test]
async fn multi_turn_runs_one_turn_at_a_time_in_one_process() {
    let fake = FakeCli::new(reference_scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    // Both queued before the first turn ends: the second waits for the first result.
    api.say(&id, "hi").await;
    api.say(&id, "I'm Ada").await;
    let mut events = stream.until("result").await;
    events.extend(stream.until("result").await);
    assert_eq!(
        shape(&events),
        [
            "message_delta",
            "message_complete",
            "result",
            "message_delta",
            "message_complete",
            "result"
        ]
    );
    let texts: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "message_complete")
        .map(|e| &e.data["message"]["content"][0]["text"])
        .collect();
    assert_eq!(texts, ["Hi! What's your name?", "Nice to meet you, Ada."]);
    // Cost is the CLI's running total for the conversation.
    let costs: Vec<f64> = events
        .iter()
        .filter(|e| e.event == "result")
        .map(|e| e.data["total_cost_usd"].as_f64().unwrap())
        .collect();
    assert!(costs[1] > costs[0], "{costs:?}");
    assert_eq!(fake.starts().len(), 1, "one process for the session");
    server.stop().await;
}
