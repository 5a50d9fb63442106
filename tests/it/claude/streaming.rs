//! Streaming, interrupts, control calls, and a CLI that writes garbage.

use super::{argv, open, say, shape, tool, turn, FakeCli};
use crate::support::TestDb;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test]
async fn deltas_stream_under_the_id_of_the_completed_message() {
    let text = "The quick brown fox jumps over the lazy dog.";
    let step = json!({"assistant": [{"type": "text", "text": text}], "chunk": 5, "delay_ms": 20});
    let fake = FakeCli::new(json!({"turns": [turn("go", vec![step])]}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "go").await;
    let events = stream.until("result").await;
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|e| e.event == "message_delta")
        .map(|e| &e.data)
        .collect();
    assert_eq!(deltas.len(), text.len().div_ceil(5));
    let complete = events
        .iter()
        .find(|e| e.event == "message_complete")
        .unwrap();
    let message_id = &complete.data["message_id"];
    assert!(message_id.as_str().unwrap().starts_with("msg_"));
    assert!(deltas.iter().all(|d| &d["message_id"] == message_id));
    assert!(deltas.iter().all(|d| d["delta"]["type"] == "text"));
    let streamed: String = deltas
        .iter()
        .map(|d| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(complete.data["message"]["content"][0]["text"], text);
    assert_eq!(complete.data["message"]["stop_reason"], "end_turn");
    // Every delta precedes its completed message.
    let last_delta = events
        .iter()
        .rposition(|e| e.event == "message_delta")
        .unwrap();
    let complete_at = events
        .iter()
        .position(|e| e.event == "message_complete")
        .unwrap();
    assert!(last_delta < complete_at);
    server.stop().await;
}

#[tokio::test]
async fn interrupt_mid_stream_ends_the_turn_and_the_process_carries_on() {
    let full = "This is a slow answer ".repeat(20);
    let slow = json!({"assistant": [{"type": "text", "text": full}], "chunk": 10, "delay_ms": 100});
    let fake = FakeCli::new(
        json!({"turns": [turn("SLOW", vec![slow]), turn("quick", vec![say("fast")])]}),
    );
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "SLOW story").await;
    stream.until("message_delta").await;
    assert_eq!(api.input(&id, json!({"type": "interrupt"})).await, 204);
    let events = stream.until("result").await;
    let result = &events.last().unwrap().data;
    assert_eq!(result["subtype"], "interrupted");
    assert_eq!(result["terminal_reason"], "aborted_streaming");
    assert_eq!(result["is_error"], true);
    // The cut-off message is completed with what was streamed.
    let cut = events
        .iter()
        .find(|e| e.event == "message_complete")
        .expect("partial message");
    let text = cut.data["message"]["content"][0]["text"].as_str().unwrap();
    assert!(
        !text.is_empty() && text.len() < full.len() && full.starts_with(text),
        "{text}"
    );
    assert!(!events.iter().any(|e| e.event == "error"));
    assert_eq!(fake.control_requests("interrupt").len(), 1);

    api.say(&id, "quick").await;
    let events = stream.until("result").await;
    assert_eq!(
        shape(&events),
        ["message_delta", "message_complete", "result"]
    );
    assert_eq!(events[2].data["subtype"], "success");
    assert_eq!(fake.starts().len(), 1, "the same process served both turns");
    server.stop().await;
}

#[tokio::test]
async fn model_and_mode_changes_reach_the_cli_and_its_errors_reach_the_client() {
    let fake = FakeCli::new(json!({"turns": []}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let config = json!({"model": "claude-sonnet-4-5", "permission_mode": "default"});
    let (id, mut stream) = open(api, config).await;
    api.say(&id, "hello").await;
    stream.until("result").await;

    let send = |body: Value| api.input(&id, body);
    assert_eq!(
        send(json!({"type": "set_model", "model": "claude-opus-4-1"})).await,
        204
    );
    assert_eq!(
        send(json!({"type": "set_permission_mode", "mode": "acceptEdits"})).await,
        204
    );
    assert_eq!(
        send(json!({"type": "stop_task", "task_id": "task_9"})).await,
        204
    );
    assert_eq!(send(json!({"type": "set_model", "model": null})).await, 204);
    // Not a mode at all: refused at the door.
    let (status, _, body) = api
        .input_raw(&id, r#"{"type":"set_permission_mode","mode":"yolo"}"#)
        .await;
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (400, Some("invalid_permission_mode"))
    );
    // A mode the CLI refuses: its error code reaches the client as an `error` event.
    let bypass = json!({"type": "set_permission_mode", "mode": "bypassPermissions"});
    assert_eq!(send(bypass).await, 204);
    let error = stream.until("error").await.pop().unwrap();
    assert_eq!(error.data["code"], "bypass_not_launched");
    assert!(error.data["message"]
        .as_str()
        .unwrap()
        .contains("bypassPermissions"));

    let models: Vec<Value> = fake
        .control_requests("set_model")
        .iter()
        .map(|r| r["model"].clone())
        .collect();
    assert_eq!(models, [json!("claude-opus-4-1"), Value::Null]);
    let modes: Vec<Value> = fake
        .control_requests("set_permission_mode")
        .iter()
        .map(|r| r["mode"].clone())
        .collect();
    assert_eq!(modes, [json!("acceptEdits"), json!("bypassPermissions")]);
    assert_eq!(fake.control_requests("stop_task")[0]["task_id"], "task_9");

    // The new mode is the session's config: a new process starts with it.
    assert_eq!(
        send(json!({"type": "set_model", "model": "claude-opus-4-1"})).await,
        204
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.stop().await;
    let server = fake.server(&db).await;
    let mut stream = server.api.stream(&id, None).await.unwrap();
    server.api.say(&id, "again").await;
    let mut events = stream.until("result").await;
    events.extend(stream.until("result").await);
    let last = events.last().unwrap();
    assert_eq!(last.data["subtype"], "success", "{events:?}");
    let starts = fake.starts();
    assert_eq!(starts.len(), 2);
    let args = argv(&starts[1]);
    let flag = |name: &str| {
        let at = args.iter().position(|a| a == name).unwrap();
        args[at + 1].clone()
    };
    assert_eq!(flag("--model"), "claude-opus-4-1");
    assert_eq!(flag("--permission-mode"), "acceptEdits");
    server.stop().await;
}

#[tokio::test]
async fn garbage_unknown_and_over_long_stdout_lines_do_not_break_the_session() {
    let big = "y".repeat(3 * 1024 * 1024 / 2); // 1.5 MiB: over the SDKs' 1 MiB line cap
    let steps = vec![
        json!({"raw": "[SandboxDebug] not json"}),
        json!({"raw": "{broken json"}),
        json!({"frame": {"type": "keep_alive"}}),
        json!({"frame": {"type": "brand_new_frame_type", "x": 1}}),
        json!({"frame": {"type": "system", "subtype": "task_started", "task_id": "t1"}}),
        json!({"frame": {"type": "assistant", "parent_tool_use_id": "tu_parent",
            "message": {"id": "msg_sub", "content": [{"type": "text", "text": "subagent"}]}}}),
        json!({"raw_bytes": 5 * 1024 * 1024}),
        tool(
            "tu_big",
            "Read",
            json!({"path": "big"}),
            json!({"ask": false, "output": big}),
        ),
        say("still here"),
    ];
    let fake = FakeCli::new(json!({"turns": [turn("go", steps)]}));
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.max_frame_bytes = 4 * 1024 * 1024;
    let server = crate::support::TestServer::start_with(config).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "go").await;
    let events = stream.until("result").await;
    assert_eq!(
        shape(&events),
        [
            "error",
            "message_complete",
            "tool_use",
            "tool_result",
            "message_delta",
            "message_complete",
            "result"
        ]
    );
    assert_eq!(events[0].data["code"], "agent_frame_too_large");
    let output = events[3].data["output"].as_str().unwrap();
    assert_eq!(output.len(), big.len());
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    server.stop().await;
}

#[tokio::test]
async fn a_cli_that_stops_answering_is_an_error_not_a_hang() {
    let steps = vec![say("working"), json!({"hang": "ignore_interrupt"})];
    let scenario = json!({"silent_controls": ["stop_task"],
        "turns": [turn("STUCK", steps), turn("", vec![say("fine")])]});
    let fake = FakeCli::new(scenario);
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.control_timeout = Duration::from_millis(500);
    let server = crate::support::TestServer::start_with(config).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "hello").await;
    stream.until("result").await;

    // A control call the CLI never answers: an error after the control timeout.
    let stop = json!({"type": "stop_task", "task_id": "t1"});
    assert_eq!(api.input(&id, stop).await, 204);
    let error = stream.until("error").await.pop().unwrap();
    assert_eq!(error.data["code"], "control_timeout");

    // An interrupt the CLI acknowledges but never ends the turn for: the turn ends anyway,
    // the CLI is killed, and the next message starts a new one that resumes.
    api.say(&id, "STUCK").await;
    stream.until("message_complete").await;
    assert_eq!(api.input(&id, json!({"type": "interrupt"})).await, 204);
    let events = stream.until("result").await;
    assert_eq!(shape(&events), ["error", "result"]);
    assert_eq!(events[0].data["code"], "agent_unresponsive");
    assert_eq!(events[1].data["subtype"], "error_during_execution");
    let pid = fake.starts()[0]["pid"].as_u64().unwrap();
    assert!(super::eventually(Duration::from_secs(5), || super::reaped(pid)).await);
    api.say(&id, "again").await;
    assert_eq!(
        stream.until("result").await.pop().unwrap().data["subtype"],
        "success"
    );
    assert!(argv(&fake.starts()[1]).contains(&format!("--resume={id}")));
    server.stop().await;
}

/// What a real `Read` of a binary file or a command printing NUL gives (issue 12): NUL and
/// other control characters in streamed text, tool input and tool result, through the CLI's
/// stdout, stored and delivered exactly, and resumed from Postgres alike.
#[tokio::test]
async fn binary_tool_output_through_the_cli_is_stored_and_delivered_exactly() {
    let output = "\u{0}ELF\u{2}\u{1}\u{1}\u{0} \u{1b}[0m tail\u{0}";
    let input = json!({"command": "cat /bin/true\u{0}", "description": "\u{7}bell"});
    let text = "printed \u{0} and \u{1f}";
    let steps = vec![
        tool("tu_b", "Bash", input.clone(), json!({"output": output})),
        json!({"assistant": [{"type": "text", "text": text}], "chunk": 4}),
    ];
    let fake = FakeCli::new(json!({"turns": [turn("BIN", steps)]}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "BIN").await;
    let mut events = stream.until("permission_request").await;
    let request = events.last().unwrap().data.clone();
    assert_eq!(request["input"], input);
    let allow = json!({"type": "permission_response", "behavior": "allow",
        "correlation_id": request["correlation_id"]});
    assert_eq!(api.input(&id, allow).await, 204);
    events.extend(stream.until("result").await);
    let find = |name: &str| events.iter().find(|e| e.event == name).unwrap();
    assert_eq!(find("tool_use").data["input"], input);
    assert_eq!(find("tool_result").data["output"], output);
    let complete = events
        .iter()
        .rfind(|e| e.event == "message_complete")
        .unwrap();
    assert_eq!(complete.data["message"]["content"][0]["text"], text);
    assert!(!complete.raw.contains('\0') && complete.raw.contains(r"\u0000"));
    // Resumed from the table: every frame byte for byte.
    let before = (events[0].id - 1).to_string();
    let mut resumed = api.stream(&id, Some(&before)).await.unwrap();
    for live in &events {
        assert_eq!(resumed.next().await.unwrap().raw, live.raw);
    }
    server.stop().await;
}
