//! Conversation frames → [`AgentEvent`]s (docs/claude-cli.md §6; the mapping: §6.8).
//!
//! The CLI writes one `assistant` frame per content block, all sharing the API message id, and
//! the stop reason only in the `message_delta` stream event that follows. So blocks accumulate
//! by message id and the message is completed (one `Assistant` event) when the API message ends
//! (`message_stop`), or earlier when something must follow it on the wire: a frame of another
//! message, tool results, the turn's result, or a permission / hook request about one of its
//! tools (the CLI may ask before `message_stop`; the stop reason is then `tool_use`, the only
//! way an API response ends with a tool call the CLI runs).
//!
//! Text deltas become `Delta`s under the same API message id (`api_message_id` on the frame),
//! so `message_delta` and the later `message_complete` agree. Frames of subagents
//! (`parent_tool_use_id` set) and `system/*` frames other than `init` have no wire event yet and
//! are dropped here on purpose (logged at debug); `init` carries the conversation id (the resume
//! token) and the MCP servers' status (`mcp_status_change` on change).

use crate::agent::AgentEvent;
use serde_json::{Map, Value};
use std::collections::HashMap;

use super::protocol::{kind, str_at};

#[derive(Debug, Default)]
pub struct Mapper {
    /// The assistant message whose blocks are arriving.
    open: Option<Message>,
    /// The API message being streamed (from `message_start`), for frames without
    /// `api_message_id`.
    streaming: Option<String>,
    /// Stop reasons seen in `message_delta` before the message's last block arrived.
    stop_reasons: HashMap<String, String>,
    /// Id of the last message completed, so late stream events about it are ignored.
    completed: Option<String>,
    /// The conversation id last reported as the resume token.
    token: Option<String>,
    /// MCP server name → last status reported.
    mcp: HashMap<String, String>,
}

#[derive(Debug)]
struct Message {
    id: String,
    content: Vec<Value>,
    model: Option<String>,
    stop_reason: Option<String>,
}

impl Mapper {
    /// `token`: the resume token the session already has, so it is not reported again.
    pub fn new(token: Option<String>) -> Mapper {
        Mapper {
            token,
            ..Mapper::default()
        }
    }

    /// Maps one conversation frame (not control traffic).
    pub fn frame(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        let subagent = frame
            .get("parent_tool_use_id")
            .is_some_and(|p| !p.is_null());
        if subagent {
            tracing::debug!(kind = kind(frame), "claude: subagent frame dropped");
            return;
        }
        match kind(frame) {
            "stream_event" => self.stream_event(frame, out),
            "assistant" => self.assistant(frame, out),
            "user" => self.user(frame, out),
            "result" => self.result(frame, out),
            "system" => self.system(frame, out),
            other => tracing::debug!(kind = other, "claude: frame without a wire event dropped"),
        }
    }

    /// Completes the open message before a permission or hook request about `tool_use_id`.
    pub fn before_request(&mut self, tool_use_id: Option<&str>, out: &mut Vec<AgentEvent>) {
        if let (Some(open), Some(id)) = (&mut self.open, tool_use_id) {
            let asks_about_it = open.content.iter().any(|b| str_at(b, "id") == Some(id));
            if asks_about_it && open.stop_reason.is_none() {
                open.stop_reason = Some("tool_use".into());
            }
        }
        self.complete(out);
    }

    /// Completes the open message, if any.
    pub fn complete(&mut self, out: &mut Vec<AgentEvent>) {
        if let Some(message) = self.open.take() {
            let stop_reason = message
                .stop_reason
                .or_else(|| self.stop_reasons.remove(&message.id));
            self.stop_reasons.clear();
            self.completed = Some(message.id.clone());
            out.push(AgentEvent::Assistant {
                id: message.id,
                content: message.content,
                model: message.model,
                stop_reason,
            });
        }
    }

    fn stream_event(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        let event = &frame["event"];
        let id = str_at(frame, "api_message_id")
            .map(str::to_owned)
            .or_else(|| self.streaming.clone());
        match kind(event) {
            "message_start" => self.streaming = str_at(&event["message"], "id").map(Into::into),
            "content_block_delta" if kind(&event["delta"]) == "text_delta" => {
                if let (Some(id), Some(text)) = (id, str_at(&event["delta"], "text")) {
                    let delta = serde_json::json!({"type": "text", "text": text});
                    out.push(AgentEvent::Delta {
                        message_id: id,
                        delta,
                    });
                }
            }
            "message_delta" => {
                if let (Some(id), Some(reason)) = (id, str_at(&event["delta"], "stop_reason")) {
                    match &mut self.open {
                        Some(open) if open.id == id => open.stop_reason = Some(reason.into()),
                        _ if self.completed.as_deref() == Some(&id) => {}
                        _ => drop(self.stop_reasons.insert(id, reason.into())),
                    }
                }
            }
            "message_stop" if id.is_some() && self.open.as_ref().map(|m| &m.id) == id.as_ref() => {
                self.complete(out);
            }
            _ => {}
        }
    }

    fn assistant(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        let message = &frame["message"];
        let id = str_at(message, "id")
            .or_else(|| str_at(frame, "uuid"))
            .unwrap_or("")
            .to_owned();
        if self.open.as_ref().is_some_and(|open| open.id != id) {
            self.complete(out);
        }
        let open = self.open.get_or_insert_with(|| Message {
            id,
            content: Vec::new(),
            model: str_at(message, "model").map(Into::into),
            stop_reason: str_at(message, "stop_reason").map(Into::into),
        });
        if let Some(Value::Array(blocks)) = message.get("content") {
            open.content.extend(blocks.iter().cloned());
        }
    }

    fn user(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        self.complete(out);
        let blocks: Vec<Value> = match frame["message"].get("content") {
            Some(Value::Array(blocks)) => blocks
                .iter()
                .filter(|b| kind(b) == "tool_result")
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if blocks.is_empty() {
            // "[Request interrupted by user]", set_model's `isReplay` echo, ...
            tracing::debug!("claude: user frame without tool results dropped");
        } else {
            out.push(AgentEvent::ToolResults { blocks });
        }
    }

    fn result(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        if let (Some(open), Some(reason)) = (&mut self.open, str_at(frame, "stop_reason")) {
            open.stop_reason.get_or_insert_with(|| reason.into());
        }
        self.complete(out);
        out.push(AgentEvent::Result(result_payload(frame)));
    }

    fn system(&mut self, frame: &Value, out: &mut Vec<AgentEvent>) {
        let subtype = str_at(frame, "subtype").unwrap_or("");
        if subtype != "init" {
            tracing::debug!(subtype, "claude: system frame dropped");
            return;
        }
        if let Some(id) = str_at(frame, "session_id") {
            if self.token.as_deref() != Some(id) {
                self.token = Some(id.to_owned());
                out.push(AgentEvent::ResumeToken(id.to_owned()));
            }
        }
        let servers = frame.get("mcp_servers").and_then(Value::as_array);
        for server in servers.into_iter().flatten() {
            if let (Some(name), Some(status)) = (str_at(server, "name"), str_at(server, "status")) {
                if self.mcp.get(name).map(String::as_str) != Some(status) {
                    self.mcp.insert(name.to_owned(), status.to_owned());
                    out.push(AgentEvent::McpStatus {
                        server_name: name.to_owned(),
                        status: status.to_owned(),
                    });
                }
            }
        }
    }
}

/// Frame bookkeeping that means nothing to a client.
const RESULT_INTERNAL: &[&str] = &[
    "type",
    "uuid",
    "user_message_uuid",
    "user_message_uuids",
    "result_index",
];

/// The `result` payload: the frame minus its bookkeeping, everything else as the CLI wrote it
/// (subtype, is_error, result, errors, stop_reason, terminal_reason, num_turns, durations,
/// cumulative `total_cost_usd`, usage, modelUsage, permission_denials, session_id, ...). A turn
/// the CLI aborted on an interrupt (`terminal_reason: aborted_*`) gets subtype `interrupted`,
/// as every runtime reports an interrupted turn.
fn result_payload(frame: &Value) -> Map<String, Value> {
    let mut payload = frame.as_object().cloned().unwrap_or_default();
    payload.retain(|key, _| !RESULT_INTERNAL.contains(&key.as_str()));
    let aborted = str_at(frame, "terminal_reason").is_some_and(|r| r.starts_with("aborted"));
    if aborted {
        payload.insert("subtype".into(), "interrupted".into());
    }
    payload
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
