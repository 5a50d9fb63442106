//! Inbound messages (`POST /sessions/{id}/input`), parsed and validated before anything else.
//!
//! Parsing goes through `serde_json::Value` first so each failure gets its own stable code
//! (`invalid_json`, `unknown_type`, `invalid_input`) and message, rather than serde's one error.

use crate::agent::{Control, Decision};
use crate::codes::ErrorCode;
use crate::echo::echo;
use crate::text;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    UserMessage {
        content: Value,
    },
    PermissionResponse {
        correlation_id: String,
        decision: Decision,
    },
    QuestionResponse {
        correlation_id: String,
        answers: Value,
    },
    Control(Control),
}

impl Inbound {
    /// The wire `type`, as recorded in the inputs table.
    pub fn kind(&self) -> &'static str {
        match self {
            Inbound::UserMessage { .. } => "user_message",
            Inbound::PermissionResponse { .. } => "permission_response",
            Inbound::QuestionResponse { .. } => "question_response",
            Inbound::Control(Control::Interrupt) => "interrupt",
            Inbound::Control(Control::SetPermissionMode(_)) => "set_permission_mode",
            Inbound::Control(Control::SetModel(_)) => "set_model",
            Inbound::Control(Control::StopTask(_)) => "stop_task",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct InboundError {
    pub code: ErrorCode,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> InboundError {
    InboundError {
        code: ErrorCode::InvalidInput,
        message: message.into(),
    }
}

/// Permission modes the Claude CLI accepts.
pub use crate::agent::PERMISSION_MODES;

#[derive(Deserialize)]
struct PermissionResponse {
    correlation_id: String,
    behavior: String,
    #[serde(default)]
    updated_input: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    updated_permissions: Option<Vec<Value>>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    interrupt: Option<bool>,
}

#[derive(Deserialize)]
struct QuestionResponse {
    correlation_id: String,
    answers: Value,
}

pub fn parse(body: &[u8]) -> Result<(Inbound, Value), InboundError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| InboundError {
        code: ErrorCode::InvalidJson,
        message: format!("body is not valid JSON: {e}"),
    })?;
    from_value(value)
}

/// An input already parsed as JSON (`http::extract::JsonBody`), with the value to record.
pub fn from_value(value: Value) -> Result<(Inbound, Value), InboundError> {
    // The record of every input is `jsonb`, which cannot hold U+0000 (`text`).
    if text::has_nul(&value) {
        return Err(invalid("U+0000 (NUL) is not allowed in an input"));
    }
    let inbound = parse_value(&value)?;
    Ok((inbound, value))
}

fn parse_value(value: &Value) -> Result<Inbound, InboundError> {
    let obj = value
        .as_object()
        .ok_or_else(|| invalid("body must be a JSON object"))?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return Err(invalid("`type` must be a string")),
        None => return Err(invalid("missing field `type`")),
    };
    let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
    let string_field = |name: &str| -> Result<String, InboundError> {
        match field(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(invalid(format!("`{name}` must be a string"))),
            None => Err(invalid(format!("missing field `{name}`"))),
        }
    };
    match kind {
        "user_message" => {
            let content = field("content")
                .ok_or_else(|| invalid("missing field `content`"))?
                .clone();
            validate_content(&content)?;
            Ok(Inbound::UserMessage { content })
        }
        "interrupt" => Ok(Inbound::Control(Control::Interrupt)),
        "permission_response" => {
            let r: PermissionResponse = typed("permission_response", value)?;
            let decision = match r.behavior.as_str() {
                "allow" => {
                    if r.interrupt.is_some() || r.message.is_some() {
                        return Err(invalid(
                            "`interrupt` and `message` are only allowed with behavior \"deny\"",
                        ));
                    }
                    Decision::Allow {
                        updated_input: r.updated_input.map(Value::Object),
                        updated_permissions: r.updated_permissions.map(Value::Array),
                    }
                }
                "deny" => Decision::Deny {
                    message: r.message,
                    interrupt: r.interrupt.unwrap_or(false),
                },
                other => {
                    return Err(invalid(format!(
                        "`behavior` must be \"allow\" or \"deny\", got {other:?}",
                        other = echo(other)
                    )))
                }
            };
            non_empty("correlation_id", &r.correlation_id)?;
            Ok(Inbound::PermissionResponse {
                correlation_id: r.correlation_id,
                decision,
            })
        }
        "question_response" => {
            let r: QuestionResponse = typed("question_response", value)?;
            non_empty("correlation_id", &r.correlation_id)?;
            Ok(Inbound::QuestionResponse {
                correlation_id: r.correlation_id,
                answers: r.answers,
            })
        }
        "set_permission_mode" => {
            let mode = string_field("mode")?;
            if !PERMISSION_MODES.contains(&mode.as_str()) {
                return Err(InboundError {
                    code: ErrorCode::InvalidPermissionMode,
                    message: format!(
                        "unknown permission mode {mode:?}; expected one of {}",
                        PERMISSION_MODES.join(", "),
                        mode = echo(&mode)
                    ),
                });
            }
            Ok(Inbound::Control(Control::SetPermissionMode(mode)))
        }
        "set_model" => match obj.get("model") {
            Some(Value::String(m)) => Ok(Inbound::Control(Control::SetModel(Some(m.clone())))),
            Some(Value::Null) => Ok(Inbound::Control(Control::SetModel(None))),
            Some(_) => Err(invalid("`model` must be a string or null")),
            None => Err(invalid("missing field `model`")),
        },
        "stop_task" => {
            let task_id = string_field("task_id")?;
            non_empty("task_id", &task_id)?;
            Ok(Inbound::Control(Control::StopTask(task_id)))
        }
        other => Err(InboundError {
            code: ErrorCode::UnknownType,
            message: format!("unknown message type {other:?}", other = echo(other)),
        }),
    }
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, value: &Value) -> Result<T, InboundError> {
    T::deserialize(value).map_err(|e| invalid(format!("invalid {what}: {}", echo(&e.to_string()))))
}

fn non_empty(name: &str, s: &str) -> Result<(), InboundError> {
    if s.is_empty() {
        return Err(invalid(format!("`{name}` must not be empty")));
    }
    Ok(())
}

/// `content` is a string or an array of content blocks, each an object with a string `type`.
fn validate_content(content: &Value) -> Result<(), InboundError> {
    match content {
        Value::String(_) => Ok(()),
        Value::Array(blocks) => {
            for (i, b) in blocks.iter().enumerate() {
                if !b.get("type").is_some_and(Value::is_string) {
                    return Err(invalid(format!(
                        "content block {i} must be an object with a string `type`"
                    )));
                }
            }
            Ok(())
        }
        _ => Err(invalid(
            "`content` must be a string or an array of content blocks",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(body: &str) -> &'static str {
        parse(body.as_bytes()).unwrap_err().code.as_str()
    }

    #[test]
    fn rejects_each_kind_of_bad_input_with_its_code() {
        assert_eq!(code("{"), "invalid_json");
        assert_eq!(code("[]"), "invalid_input");
        assert_eq!(code(r#"{"type":"nope"}"#), "unknown_type");
        assert_eq!(code(r#"{"type":"user_message"}"#), "invalid_input");
        assert_eq!(
            code(r#"{"type":"user_message","content":5}"#),
            "invalid_input"
        );
        assert_eq!(
            code(
                r#"{"type":"permission_response","correlation_id":"a","behavior":"allow","interrupt":true}"#
            ),
            "invalid_input"
        );
        assert_eq!(
            code(r#"{"type":"permission_response","correlation_id":7,"behavior":"allow"}"#),
            "invalid_input"
        );
        assert_eq!(
            code(r#"{"type":"set_permission_mode","mode":"yolo"}"#),
            "invalid_permission_mode"
        );
        assert_eq!(code(r#"{"type":"set_model"}"#), "invalid_input");
        assert_eq!(
            code(r#"{"type":"stop_task","task_id":""}"#),
            "invalid_input"
        );
        // What Postgres' jsonb and btree entries cannot hold is refused at the door.
        assert_eq!(
            code(r#"{"type":"user_message","content":"a\u0000b"}"#),
            "invalid_input"
        );
    }

    #[test]
    fn accepts_the_spec_shapes() {
        let (m, _) = parse(br#"{"type":"permission_response","correlation_id":"tu_1","behavior":"deny","message":"no","interrupt":true}"#).unwrap();
        assert_eq!(
            m,
            Inbound::PermissionResponse {
                correlation_id: "tu_1".into(),
                decision: Decision::Deny {
                    message: Some("no".into()),
                    interrupt: true
                }
            }
        );
        let (m, _) = parse(br#"{"type":"set_model","model":null}"#).unwrap();
        assert_eq!(m, Inbound::Control(Control::SetModel(None)));
        let (m, _) =
            parse(br#"{"type":"user_message","content":[{"type":"text","text":"hi"}]}"#).unwrap();
        assert!(matches!(m, Inbound::UserMessage { .. }));
    }
}
