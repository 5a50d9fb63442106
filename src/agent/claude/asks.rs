//! The CLI's requests to us that wait for a person (docs/claude-cli.md §5): `can_use_tool`
//! (a permission, or an AskUserQuestion) and `hook_callback` for a hook the session registered.
//!
//! Each is *parked*: its receiver waits in a map under the CLI's request id while the session
//! holds the sender and shows the client the request. The driver polls all receivers in its
//! own loop, so nothing blocks the stdout reader, interrupts or other control calls. A
//! `control_cancel_request` removes the entry, which drops the receiver: the session then sees
//! its sender closed and answers a late reply with `409`.
//!
//! Decisions are encoded here: an allow always carries `updatedInput` (the original input when
//! unchanged, as older CLIs require), suggested permission updates are kept only when
//! well-formed and are rewritten to `destination: "session"` (a client must not make the CLI
//! write settings files into the project), and AskUserQuestion answers go into
//! `updatedInput.answers` keyed by the full question text, next to the original `questions`.

use crate::agent::Decision;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;
use tokio::sync::oneshot;

use super::protocol::str_at;

/// What a parked request needs to turn a decision into the CLI's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `can_use_tool`; `input` is the tool input as the CLI sent it.
    Tool { input: Value },
    /// `hook_callback` for the hook event `event`.
    Hook { event: String },
}

#[derive(Debug, Default)]
pub struct Parked {
    entries: HashMap<String, (Answer, oneshot::Receiver<Decision>)>,
}

impl Parked {
    /// Parks the CLI's request `request_id`; the session answers through the returned sender.
    pub fn park(&mut self, request_id: &str, answer: Answer) -> oneshot::Sender<Decision> {
        let (reply, decision) = oneshot::channel();
        self.entries
            .insert(request_id.to_owned(), (answer, decision));
        reply
    }

    /// Withdraws a request (the CLI no longer needs the answer).
    pub fn cancel(&mut self, request_id: &str) -> bool {
        self.entries.remove(request_id).is_some()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The next request that got its decision, or whose sender the session dropped (`None`).
    /// Pending forever while nothing is parked.
    pub async fn next(&mut self) -> (String, Answer, Option<Decision>) {
        poll_fn(|cx| {
            let ready = self.entries.iter_mut().find_map(|(id, (_, decision))| {
                match Pin::new(decision).poll(cx) {
                    Poll::Ready(outcome) => Some((id.clone(), outcome.ok())),
                    Poll::Pending => None,
                }
            });
            match ready.and_then(|(id, decision)| {
                let (answer, _) = self.entries.remove(&id)?;
                Some((id, answer, decision))
            }) {
                Some(done) => Poll::Ready(done),
                None => Poll::Pending,
            }
        })
        .await
    }
}

/// The `context` of a `permission_request`: what the CLI says about why it asks, under the
/// wire's names (docs/claude-cli.md §5.1).
pub fn permission_context(request: &Value) -> Value {
    const FIELDS: [(&str, &str); 10] = [
        ("tool_use_id", "tool_use_id"),
        ("permission_suggestions", "suggestions"),
        ("blocked_path", "blocked_path"),
        ("decision_reason", "decision_reason"),
        ("decision_reason_type", "decision_reason_type"),
        ("title", "title"),
        ("display_name", "display_name"),
        ("description", "description"),
        ("agent_id", "agent_id"),
        ("mcp_server", "mcp_server"),
    ];
    let context: Map<String, Value> = FIELDS
        .iter()
        .filter_map(|(from, to)| {
            let value = request.get(*from).filter(|v| !v.is_null())?;
            Some(((*to).to_owned(), value.clone()))
        })
        .collect();
    Value::Object(context)
}

/// The `response` payload answering a parked request.
pub fn response(answer: &Answer, decision: Decision) -> Value {
    match answer {
        Answer::Tool { input } => tool_response(input, decision),
        Answer::Hook { event } => hook_response(event, decision),
    }
}

const DENIED: &str = "The user denied this tool use.";

fn tool_response(input: &Value, decision: Decision) -> Value {
    match decision {
        Decision::Allow {
            updated_input,
            updated_permissions,
        } => {
            let mut allow = json!({
                "behavior": "allow",
                "updatedInput": updated_input.unwrap_or_else(|| input.clone()),
            });
            let updates = updated_permissions.map(session_scoped).unwrap_or_default();
            if !updates.is_empty() {
                allow["updatedPermissions"] = Value::Array(updates);
            }
            allow
        }
        Decision::Deny { message, interrupt } => {
            let mut deny =
                json!({"behavior": "deny", "message": message.as_deref().unwrap_or(DENIED)});
            if interrupt {
                deny["interrupt"] = Value::Bool(true);
            }
            deny
        }
        Decision::Answer { answers } => {
            let mut updated = input.as_object().cloned().unwrap_or_default();
            updated.insert(
                "answers".into(),
                Value::Object(keyed_answers(input, &answers)),
            );
            json!({"behavior": "allow", "updatedInput": updated})
        }
    }
}

/// Well-formed permission updates with every destination set to `session`.
fn session_scoped(updates: Value) -> Vec<Value> {
    let Value::Array(updates) = updates else {
        return Vec::new();
    };
    updates
        .into_iter()
        .filter_map(|update| {
            let Value::Object(mut update) = update else {
                return None;
            };
            update.get("type").and_then(Value::as_str)?;
            update.insert("destination".into(), "session".into());
            if let Some(Value::Array(rules)) = update.get_mut("rules") {
                for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                    if rule.get("ruleContent").is_some_and(Value::is_null) {
                        rule.remove("ruleContent");
                    }
                }
            }
            Some(Value::Object(update))
        })
        .collect()
}

/// A client's answers keyed by full question text, as the CLI wants them (docs/claude-cli.md
/// §5.2). Clients may key by question text, header or index, or send a list (by index) or, for
/// one question, a bare answer; values become the label, labels joined with `", "`, or the free
/// text.
fn keyed_answers(input: &Value, answers: &Value) -> Map<String, Value> {
    let questions: Vec<&Value> = input["questions"]
        .as_array()
        .map(|q| q.iter().collect())
        .unwrap_or_default();
    let text_of = |q: &Value| str_at(q, "question").map(str::to_owned);
    let by_key = |key: &str| -> String {
        let found = questions
            .iter()
            .find(|q| str_at(q, "question") == Some(key))
            .or_else(|| questions.iter().find(|q| str_at(q, "header") == Some(key)))
            .or_else(|| key.parse::<usize>().ok().and_then(|i| questions.get(i)));
        found
            .and_then(|q| text_of(q))
            .unwrap_or_else(|| key.to_owned())
    };
    let mut keyed = Map::new();
    match answers {
        Value::Object(map) => {
            for (key, value) in map {
                keyed.insert(by_key(key), answer_text(value).into());
            }
        }
        Value::Array(list) => {
            for (question, value) in questions.iter().zip(list) {
                if let Some(text) = text_of(question) {
                    keyed.insert(text, answer_text(value).into());
                }
            }
        }
        Value::Null => {}
        single => {
            if let [question] = questions[..] {
                if let Some(text) = text_of(question) {
                    keyed.insert(text, answer_text(single).into());
                }
            }
        }
    }
    keyed
}

fn answer_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(answer_text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => match o.get("label").or_else(|| o.get("text")) {
            Some(v) => answer_text(v),
            None => value.to_string(),
        },
        other => other.to_string(),
    }
}

/// A hook's output for a client's decision (docs/claude-cli.md §5.3): allow lets the action
/// proceed (for tool events: approves the tool, with the updated input if any); deny blocks it
/// with the message; deny with interrupt also stops the turn.
fn hook_response(event: &str, decision: Decision) -> Value {
    let (allow, message, interrupt, updated_input) = match decision {
        Decision::Allow { updated_input, .. } => (true, None, false, updated_input),
        Decision::Deny { message, interrupt } => (false, message, interrupt, None),
        Decision::Answer { .. } => (true, None, false, None),
    };
    let reason = message.unwrap_or_else(|| "Blocked by the user".to_owned());
    let mut out = match (event, allow) {
        ("PreToolUse", _) => {
            let mut specific = json!({
                "hookEventName": "PreToolUse",
                "permissionDecision": if allow { "allow" } else { "deny" },
            });
            if !allow {
                specific["permissionDecisionReason"] = reason.clone().into();
            }
            if let Some(input) = updated_input {
                specific["updatedInput"] = input;
            }
            json!({"hookSpecificOutput": specific})
        }
        ("PermissionRequest", _) => {
            let mut decision = json!({"behavior": if allow { "allow" } else { "deny" }});
            if let Some(input) = updated_input {
                decision["updatedInput"] = input;
            }
            if !allow {
                decision["message"] = reason.clone().into();
                decision["interrupt"] = interrupt.into();
            }
            json!({"hookSpecificOutput": {"hookEventName": "PermissionRequest", "decision": decision}})
        }
        (_, true) => json!({}),
        (_, false) => json!({"decision": "block", "reason": reason}),
    };
    if interrupt {
        out["continue"] = false.into();
        out["stopReason"] = reason.into();
    }
    out
}

#[cfg(test)]
#[path = "asks_tests.rs"]
mod tests;
