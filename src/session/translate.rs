//! SDK-level agent messages → wire events. The only place this mapping lives, so every runtime
//! produces the same events (`docs/wire-protocol.md`, "Outbound events").

use crate::agent::{AgentEvent, Ask, AskKind, Decision};
use crate::frame::names;
use serde::Serialize;
use serde_json::{Map, Value};

/// One wire event, its data already serialized to one line of JSON.
#[derive(Debug)]
pub struct WireEvent {
    pub name: &'static str,
    pub data: String,
}

fn wire(name: &'static str, data: &impl Serialize) -> WireEvent {
    WireEvent {
        name,
        // Serializing plain structs and `Value`s cannot fail.
        data: serde_json::to_string(data).unwrap_or_else(|_| "{}".into()),
    }
}

#[derive(Serialize)]
struct MessageDelta<'a> {
    message_id: &'a str,
    delta: &'a Value,
}

#[derive(Serialize)]
struct MessageComplete<'a> {
    message_id: &'a str,
    message: AssistantMessage<'a>,
}

#[derive(Serialize)]
struct AssistantMessage<'a> {
    id: &'a str,
    role: &'static str,
    content: &'a [Value],
    model: Option<&'a str>,
    stop_reason: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolUse<'a> {
    message_id: &'a str,
    tool_use_id: &'a Value,
    tool_name: &'a Value,
    input: &'a Value,
}

#[derive(Serialize)]
struct ToolResult<'a> {
    tool_use_id: &'a Value,
    output: &'a Value,
    is_error: bool,
}

pub fn error(code: &str, message: &str) -> WireEvent {
    wire(
        names::ERROR,
        &serde_json::json!({"code": code, "message": message}),
    )
}

/// A `result` that makes every UI leave its streaming state after a turn died.
pub fn failed_result(session_id: &str, subtype: &str) -> WireEvent {
    wire(
        names::RESULT,
        &serde_json::json!({"session_id": session_id, "subtype": subtype, "is_error": true}),
    )
}

/// Wire events for a result payload; adds our `session_id` when the runtime gave none.
pub fn result(mut payload: Map<String, Value>, session_id: &str) -> WireEvent {
    payload
        .entry("session_id")
        .or_insert_with(|| Value::String(session_id.to_owned()));
    wire(names::RESULT, &payload)
}

/// The wire event announcing a parked callback.
pub fn ask(ask: &Ask) -> WireEvent {
    match ask.kind {
        AskKind::Permission => wire(
            names::PERMISSION_REQUEST,
            &serde_json::json!({
                "correlation_id": ask.correlation_id,
                "tool_name": ask.tool_name,
                "input": ask.input,
                "context": ask.context,
            }),
        ),
        // `questions` is the AskUserQuestion tool's whole input object (its own `questions`
        // array and any other field, key order kept), as the original server sends it and the
        // published React hook reads it (`data.questions.questions`). Up to 0.1.0 this server
        // sent the bare array; events stored then keep that shape (docs: README, "Changes").
        AskKind::Question => wire(
            names::ASK_USER_QUESTION,
            &serde_json::json!({
                "correlation_id": ask.correlation_id,
                "questions": ask.input,
            }),
        ),
        AskKind::Hook => wire(
            names::HOOK_DECISION_REQUEST,
            &serde_json::json!({
                "correlation_id": ask.correlation_id,
                "hook_event": ask.tool_name,
                "hook_input": ask.input,
            }),
        ),
    }
}

/// The event telling every subscriber that a parked callback got its (first) answer, so other
/// tabs clear their prompts: `question_resolved` for answers, else `permission_resolved`.
pub fn resolved(correlation_id: &str, decision: &Decision) -> WireEvent {
    let behavior = match decision {
        Decision::Allow { .. } => "allow",
        Decision::Deny { .. } => "deny",
        Decision::Answer { .. } => {
            return wire(
                names::QUESTION_RESOLVED,
                &serde_json::json!({"correlation_id": correlation_id}),
            )
        }
    };
    wire(
        names::PERMISSION_RESOLVED,
        &serde_json::json!({"correlation_id": correlation_id, "behavior": behavior}),
    )
}

/// Wire events for the agent events that map one-to-many without session state. `Ask`,
/// `Result`, `ResumeToken` and `Error` need the session and are handled by the actor.
pub fn message(event: &AgentEvent) -> Vec<WireEvent> {
    match event {
        AgentEvent::Delta { message_id, delta } => {
            vec![wire(
                names::MESSAGE_DELTA,
                &MessageDelta { message_id, delta },
            )]
        }
        AgentEvent::Assistant {
            id,
            content,
            model,
            stop_reason,
        } => {
            let mut out = Vec::with_capacity(1 + content.len());
            out.push(wire(
                names::MESSAGE_COMPLETE,
                &MessageComplete {
                    message_id: id,
                    message: AssistantMessage {
                        id,
                        role: "assistant",
                        content,
                        model: model.as_deref(),
                        stop_reason: stop_reason.as_deref(),
                    },
                },
            ));
            for block in content.iter().filter(|b| b["type"] == "tool_use") {
                out.push(wire(
                    names::TOOL_USE,
                    &ToolUse {
                        message_id: id,
                        tool_use_id: &block["id"],
                        tool_name: &block["name"],
                        input: &block["input"],
                    },
                ));
            }
            out
        }
        AgentEvent::ToolResults { blocks } => blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| {
                wire(
                    names::TOOL_RESULT,
                    &ToolResult {
                        tool_use_id: &b["tool_use_id"],
                        output: &b["content"],
                        is_error: b["is_error"].as_bool().unwrap_or(false),
                    },
                )
            })
            .collect(),
        AgentEvent::McpStatus {
            server_name,
            status,
        } => vec![wire(
            names::MCP_STATUS_CHANGE,
            &serde_json::json!({"server_name": server_name, "status": status}),
        )],
        AgentEvent::Error { code, message } => vec![error(code, message)],
        AgentEvent::Result(_)
        | AgentEvent::Ask(_)
        | AgentEvent::ResumeToken(_)
        | AgentEvent::Transcript { .. } => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn assistant_message_yields_complete_then_one_tool_use_per_block() {
        let ev = AgentEvent::Assistant {
            id: "m_1".into(),
            content: vec![
                json!({"type":"text","text":"hi"}),
                json!({"type":"tool_use","id":"tu_1","name":"Read","input":{"path":"a"}}),
            ],
            model: Some("claude".into()),
            stop_reason: None,
        };
        let out = message(&ev);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].name, "message_complete");
        let complete: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(complete["message"]["role"], "assistant");
        assert_eq!(complete["message"]["stop_reason"], Value::Null);
        let tool_use: Value = serde_json::from_str(&out[1].data).unwrap();
        assert_eq!(
            tool_use,
            json!({"message_id":"m_1","tool_use_id":"tu_1","tool_name":"Read","input":{"path":"a"}})
        );
    }

    #[test]
    fn tool_results_default_is_error_to_false() {
        let ev = AgentEvent::ToolResults {
            blocks: vec![json!({"type":"tool_result","tool_use_id":"tu_1","content":"x"})],
        };
        let out = message(&ev);
        let data: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(
            data,
            json!({"tool_use_id":"tu_1","output":"x","is_error":false})
        );
    }
}
