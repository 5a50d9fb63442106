//! The CLI's control requests to us (docs/claude-cli.md §5): permission and AskUserQuestion
//! requests and the session's hook callbacks are parked and shown to the client (see
//! [`super::asks`]); an in-process MCP request is refused (we serve no SDK MCP server); anything
//! else gets the CLI's own "unsupported" error, so no request of the CLI ever goes unanswered.

use super::asks::{self, Answer};
use super::driver::{Driver, Step};
use super::protocol::{self, str_at};
use crate::agent::{AgentEvent, Ask, AskKind, Decision};
use serde_json::{json, Value};

impl Driver {
    /// A `control_request` from the CLI.
    pub(super) async fn cli_request(&mut self, frame: &Value) -> Step {
        let Some(id) = str_at(frame, "request_id") else {
            tracing::warn!(session_id = %self.session_id, "claude: control request without an id");
            return Ok(());
        };
        let request = &frame["request"];
        match str_at(request, "subtype") {
            Some("can_use_tool") => self.ask_permission(id, request).await,
            Some("hook_callback") => self.ask_hook(id, request).await,
            Some("mcp_message") => {
                // We serve no in-process MCP server; a notification still gets an answer.
                let message = &request["message"];
                let response = match message.get("id") {
                    Some(rpc_id) => json!({"jsonrpc": "2.0", "id": rpc_id,
                        "error": {"code": -32601, "message": "no such MCP server on this host"}}),
                    None => json!({"jsonrpc": "2.0", "result": {}}),
                };
                let answer = json!({"mcp_response": response});
                self.write(&protocol::control_success(id, answer));
                Ok(())
            }
            other => {
                let subtype = other.unwrap_or("(none)");
                let error = format!("Unsupported control request subtype: {subtype}");
                self.write(&protocol::control_error(id, &error));
                Ok(())
            }
        }
    }

    async fn ask_permission(&mut self, id: &str, request: &Value) -> Step {
        let tool_use_id = str_at(request, "tool_use_id");
        let mut out = Vec::new();
        self.mapper.before_request(tool_use_id, &mut out);
        let tool_name = str_at(request, "tool_name").unwrap_or_default().to_owned();
        let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
        let kind = match tool_name.as_str() {
            "AskUserQuestion" => AskKind::Question,
            _ => AskKind::Permission,
        };
        let reply = self.parked.park(
            id,
            Answer::Tool {
                input: input.clone(),
            },
        );
        out.push(AgentEvent::Ask(Ask {
            kind,
            correlation_id: tool_use_id.unwrap_or(id).to_owned(),
            tool_name,
            input,
            context: asks::permission_context(request),
            reply,
        }));
        self.emit(out).await
    }

    async fn ask_hook(&mut self, id: &str, request: &Value) -> Step {
        let callback = str_at(request, "callback_id").unwrap_or_default();
        let Some(registered) = self.hooks.get(callback).cloned() else {
            // Not one of the session's hooks: no opinion.
            self.write(&protocol::control_success(id, json!({})));
            return Ok(());
        };
        let input = request.get("input").cloned().unwrap_or_else(|| json!({}));
        let event = str_at(&input, "hook_event_name")
            .map(str::to_owned)
            .unwrap_or(registered);
        let mut out = Vec::new();
        self.mapper
            .before_request(str_at(request, "tool_use_id"), &mut out);
        let reply = self.parked.park(
            id,
            Answer::Hook {
                event: event.clone(),
            },
        );
        let mut context = json!({"callback_id": callback});
        if let Some(tool_use_id) = str_at(&input, "tool_use_id") {
            context["tool_use_id"] = tool_use_id.into();
        }
        out.push(AgentEvent::Ask(Ask {
            kind: AskKind::Hook,
            correlation_id: id.to_owned(),
            tool_name: event,
            input,
            context,
            reply,
        }));
        self.emit(out).await
    }

    /// Answers a parked request once its decision came, or the session dropped it.
    pub(super) fn answer(&mut self, id: &str, answer: &Answer, decision: Option<Decision>) {
        let frame = match decision {
            Some(decision) => protocol::control_success(id, asks::response(answer, decision)),
            None => protocol::control_error(id, "the request was withdrawn before an answer"),
        };
        self.write(&frame);
    }
}
