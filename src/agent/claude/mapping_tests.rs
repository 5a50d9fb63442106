use super::*;
use serde_json::json;

const TRANSCRIPTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/claude-transcripts"
);

/// A compact view of one event, for sequence assertions.
fn summary(event: &AgentEvent) -> String {
    match event {
        AgentEvent::Delta { message_id, .. } => format!("delta {message_id}"),
        AgentEvent::Assistant {
            id,
            content,
            stop_reason,
            ..
        } => {
            let kinds: Vec<&str> = content.iter().map(kind).collect();
            format!(
                "assistant {id} [{}] {}",
                kinds.join(","),
                stop_reason.as_deref().unwrap_or("-")
            )
        }
        AgentEvent::ToolResults { blocks } => format!("tool_results {}", blocks.len()),
        AgentEvent::Result(r) => format!("result {}", r["subtype"].as_str().unwrap_or("?")),
        AgentEvent::McpStatus {
            server_name,
            status,
        } => format!("mcp {server_name} {status}"),
        AgentEvent::ResumeToken(t) => format!("token {t}"),
        AgentEvent::Error { code, .. } => format!("error {code}"),
        AgentEvent::Ask(ask) => format!("ask {}", ask.correlation_id),
        AgentEvent::Transcript { file, entries } => format!("transcript {file} {}", entries.len()),
    }
}

/// Plays the stdout frames of a recorded run through a mapper, the way the driver does:
/// control requests complete the open message and show as `request <tool_use_id>`.
fn play(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(format!("{TRANSCRIPTS}/{file}")).unwrap();
    let mut mapper = Mapper::new(None);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        if entry["dir"] != "out" {
            continue;
        }
        let frame = &entry["msg"];
        match kind(frame) {
            "control_request" => {
                let request = &frame["request"];
                let tool_use_id = str_at(request, "tool_use_id");
                mapper.before_request(tool_use_id, &mut out);
                seen.extend(out.drain(..).map(|e| summary(&e)));
                seen.push(format!("request {}", tool_use_id.unwrap_or("-")));
            }
            "control_response" | "control_cancel_request" => {}
            _ => {
                mapper.frame(frame, &mut out);
                seen.extend(out.drain(..).map(|e| summary(&e)));
            }
        }
    }
    seen
}

fn collapse_deltas(seen: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in seen {
        if s.starts_with("delta") && out.last() == Some(&s) {
            continue;
        }
        out.push(s);
    }
    out
}

#[test]
fn recorded_permission_run_maps_to_the_wire_sequence() {
    let seen = collapse_deltas(play("s2_perms.jsonl"));
    let first_turn: Vec<&str> = seen.iter().take(9).map(String::as_str).collect();
    assert_eq!(
        first_turn,
        [
            "token b624d537-380d-48ea-898c-682ac692667c",
            // Streamed text, then one message with both blocks, completed before the request.
            "delta msg_bb2af93c25f44a81a577",
            "assistant msg_bb2af93c25f44a81a577 [text,tool_use] tool_use",
            "request toolu_595c6fcd213247b987ae",
            "tool_results 1",
            "delta msg_b2d4912410214228b7ef",
            "assistant msg_b2d4912410214228b7ef [text] end_turn",
            "result success",
            // Second turn: the token is not reported again.
            "delta msg_f911966d24a34abe9fed",
        ]
    );
    // The AskUserQuestion request comes before its message's `message_stop`: the message is
    // completed first, with the stop reason a tool call implies.
    let ask = seen
        .iter()
        .position(|s| s == "request toolu_f24cd11722a8475f99e9")
        .unwrap();
    assert_eq!(
        seen[ask - 1],
        "assistant msg_e80cb7d32c2c42c58713 [tool_use] tool_use"
    );
    // Deny with interrupt ends its turn as interrupted.
    assert!(seen.iter().any(|s| s == "result interrupted"));
    assert_eq!(seen.iter().filter(|s| s.starts_with("token")).count(), 1);
}

#[test]
fn recorded_interrupts_end_turns_as_interrupted() {
    let seen = collapse_deltas(play("s3_interrupt.jsonl"));
    let results: Vec<&str> = seen
        .iter()
        .filter(|s| s.starts_with("result"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        results,
        [
            "result success",     // deny without interrupt: the turn goes on
            "result interrupted", // interrupt mid-stream
            "result interrupted", // interrupt while a permission was pending
            "result success",
            "result success",
            "result success",
        ]
    );
    // The cut-off message of the interrupted stream is still completed before the result.
    let cut = seen
        .iter()
        .position(|s| s == "assistant msg_4c26bae030c44677b64c [text] -")
        .expect("aborted message completed");
    assert_eq!(seen[cut + 1], "result interrupted");
}

#[test]
fn text_deltas_share_the_message_id_of_the_completed_message() {
    let mut m = Mapper::new(None);
    let mut out = Vec::new();
    let ev = |event: Value| json!({"type":"stream_event","event":event,"parent_tool_use_id":null});
    m.frame(
        &ev(json!({"type":"message_start","message":{"id":"msg_1"}})),
        &mut out,
    );
    m.frame(
        &ev(json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}})),
        &mut out,
    );
    m.frame(
        &ev(json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"x"}})),
        &mut out,
    );
    m.frame(
        &json!({"type":"assistant","message":{"id":"msg_1","model":"m","content":[{"type":"text","text":"Hello"}],"stop_reason":null}}),
        &mut out,
    );
    m.frame(
        &ev(json!({"type":"message_delta","delta":{"stop_reason":"end_turn"}})),
        &mut out,
    );
    assert_eq!(out.len(), 1, "nothing completes before message_stop");
    m.frame(&ev(json!({"type":"message_stop"})), &mut out);
    match &out[..] {
        [AgentEvent::Delta { message_id, delta }, AgentEvent::Assistant {
            id,
            stop_reason,
            model,
            ..
        }] => {
            assert_eq!(message_id, "msg_1");
            assert_eq!(delta, &json!({"type":"text","text":"Hel"}));
            assert_eq!(id, "msg_1");
            assert_eq!(stop_reason.as_deref(), Some("end_turn"));
            assert_eq!(model.as_deref(), Some("m"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn subagent_frames_and_unknown_frames_are_dropped() {
    let mut m = Mapper::new(Some("s".into()));
    let mut out = Vec::new();
    m.frame(
        &json!({"type":"assistant","parent_tool_use_id":"toolu_1","message":{"id":"x","content":[{"type":"text","text":"sub"}]}}),
        &mut out,
    );
    m.frame(&json!({"type":"rate_limit_event"}), &mut out);
    m.frame(&json!({"type":"system","subtype":"task_started"}), &mut out);
    m.frame(&json!({"no_type": true}), &mut out);
    m.frame(
        &json!({"type":"system","subtype":"init","session_id":"s"}),
        &mut out,
    );
    m.complete(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn mcp_status_is_reported_on_change_only() {
    let mut m = Mapper::new(None);
    let mut out = Vec::new();
    let init = |status: &str| {
        json!({"type":"system","subtype":"init","session_id":"s",
               "mcp_servers":[{"name":"calc","status":status},{"name":"web","status":"connected"}]})
    };
    m.frame(&init("pending"), &mut out);
    m.frame(&init("pending"), &mut out);
    m.frame(&init("connected"), &mut out);
    let seen: Vec<String> = out.iter().map(summary).collect();
    assert_eq!(
        seen,
        [
            "token s",
            "mcp calc pending",
            "mcp web connected",
            "mcp calc connected"
        ]
    );
}

#[test]
fn result_payload_keeps_the_cli_fields_and_drops_bookkeeping() {
    let mut m = Mapper::new(None);
    let mut out = Vec::new();
    let frame = json!({"type":"result","subtype":"success","is_error":false,"result":"hi",
        "stop_reason":"end_turn","terminal_reason":"completed","num_turns":1,"duration_ms":101,
        "duration_api_ms":25,"total_cost_usd":0.000255,"usage":{"input_tokens":25},
        "modelUsage":{"m":{"costUSD":0.000255}},"permission_denials":[],"session_id":"s",
        "uuid":"u","user_message_uuid":"x","user_message_uuids":["x"],"result_index":0});
    m.frame(&frame, &mut out);
    let [AgentEvent::Result(payload)] = &out[..] else {
        panic!("{out:?}")
    };
    let mut expected = frame.as_object().unwrap().clone();
    for key in RESULT_INTERNAL {
        expected.remove(*key);
    }
    assert_eq!(payload, &expected);
}
