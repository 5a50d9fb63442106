//! Our control requests to the CLI (docs/claude-cli.md §3.1, §4): `initialize`, and the
//! session's interrupt / set_permission_mode / set_model / stop_task.
//!
//! Each waits in a map under its request id until the CLI's `control_response`; every entry has
//! a deadline, so a CLI that never answers becomes an error rather than a hang. A CLI error is
//! reported with its `error_code` (`invalid_mode`, `bypass_not_launched`, ...), which becomes
//! the `code` of the client's `error` event.

use crate::agent::{AgentError, Control};
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::protocol::str_at;

pub type Reply = oneshot::Sender<Result<(), AgentError>>;

/// Who waits for a response.
#[derive(Debug)]
pub enum Waiter {
    Initialize,
    Session { control: Control, reply: Reply },
}

#[derive(Debug, Default)]
pub struct Outstanding {
    next: u64,
    waiting: HashMap<String, (Waiter, Instant)>,
}

impl Outstanding {
    /// Registers a request and returns its frame's `request_id`.
    pub fn start(&mut self, waiter: Waiter, deadline: Instant) -> String {
        self.next += 1;
        let id = format!(
            "req_{}_{}",
            self.next,
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        self.waiting.insert(id.clone(), (waiter, deadline));
        id
    }

    /// Takes the waiter a `control_response` frame answers, with the outcome. Responses to
    /// unknown (or timed-out) ids are ignored (`None`).
    pub fn resolve(&mut self, frame: &Value) -> Option<(Waiter, Result<Value, AgentError>)> {
        let response = &frame["response"];
        let id = str_at(response, "request_id")?;
        let (waiter, _) = self.waiting.remove(id)?;
        let outcome = match str_at(response, "subtype") {
            Some("success") => Ok(response.get("response").cloned().unwrap_or(Value::Null)),
            _ => Err(AgentError::Rejected {
                code: str_at(response, "error_code")
                    .unwrap_or("agent_error")
                    .to_owned(),
                message: str_at(response, "error")
                    .unwrap_or("the Claude CLI refused the request")
                    .to_owned(),
            }),
        };
        Some((waiter, outcome))
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.values().map(|(_, deadline)| *deadline).min()
    }

    /// Takes every waiter whose deadline has passed.
    pub fn expired(&mut self, now: Instant) -> Vec<Waiter> {
        let ids: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| self.waiting.remove(&id).map(|(waiter, _)| waiter))
            .collect()
    }

    /// Fails every session waiter (the CLI is gone).
    pub fn fail_all(&mut self) {
        for (_, (waiter, _)) in self.waiting.drain() {
            if let Waiter::Session { reply, .. } = waiter {
                let _ = reply.send(Err(AgentError::Exited));
            }
        }
    }
}

/// The `request` object of a session control.
pub fn request(control: &Control) -> Value {
    match control {
        Control::Interrupt => json!({"subtype": "interrupt"}),
        Control::SetPermissionMode(mode) => json!({"subtype": "set_permission_mode", "mode": mode}),
        Control::SetModel(model) => json!({"subtype": "set_model", "model": model}),
        Control::StopTask(task_id) => json!({"subtype": "stop_task", "task_id": task_id}),
    }
}

/// The `initialize` request, registering the session's hooks (docs/claude-cli.md §3).
pub fn initialize(hooks: Option<Value>) -> Value {
    json!({"subtype": "initialize", "hooks": hooks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn responses_resolve_their_request_once_and_errors_keep_the_cli_code() {
        let mut out = Outstanding::default();
        let far = Instant::now() + Duration::from_secs(60);
        let (reply, _rx) = oneshot::channel();
        let control = Control::SetPermissionMode("bogus".into());
        let id = out.start(Waiter::Session { control, reply }, far);
        let error = json!({"type":"control_response","response":{"subtype":"error","request_id":id,
            "error":"Cannot set permission mode","error_code":"invalid_mode"}});
        let (_, outcome) = out.resolve(&error).unwrap();
        match outcome {
            Err(AgentError::Rejected { code, message }) => {
                assert_eq!(code, "invalid_mode");
                assert_eq!(message, "Cannot set permission mode");
            }
            other => panic!("{other:?}"),
        }
        assert!(out.resolve(&error).is_none(), "answered once");
        let id = out.start(Waiter::Initialize, far);
        let ok =
            json!({"type":"control_response","response":{"subtype":"success","request_id":id}});
        assert!(matches!(
            out.resolve(&ok),
            Some((Waiter::Initialize, Ok(Value::Null)))
        ));
    }

    #[tokio::test]
    async fn expired_requests_are_taken_and_the_rest_fail_when_the_cli_goes() {
        let mut out = Outstanding::default();
        let now = Instant::now();
        let (reply, rx) = oneshot::channel();
        out.start(Waiter::Initialize, now);
        let control = Control::Interrupt;
        out.start(
            Waiter::Session { control, reply },
            now + Duration::from_secs(5),
        );
        assert_eq!(out.next_deadline(), Some(now));
        assert!(matches!(out.expired(now)[..], [Waiter::Initialize]));
        out.fail_all();
        assert!(matches!(rx.await, Ok(Err(AgentError::Exited))));
        assert_eq!(out.next_deadline(), None);
    }
}
