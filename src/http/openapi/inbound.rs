//! `POST /sessions/{id}/input`: each inbound message type as its own schema, and the body as
//! their `oneOf` discriminated on `type`.
//!
//! Doc-only: `session::inbound` parses the body through `serde_json::Value` to give each
//! failure its own code, so there is no serde type to annotate. These mirror its rules.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;

/// A single-value enum: the `type` of one message.
macro_rules! tag {
    // `tt`, not `literal`: utoipa does not see a `literal` fragment's string in `rename`.
    ($name:ident, $value:tt) => {
        #[derive(ToSchema)]
        pub enum $name {
            #[serde(rename = $value)]
            Tag,
        }
    };
}

tag!(UserMessageType, "user_message");
tag!(InterruptType, "interrupt");
tag!(PermissionResponseType, "permission_response");
tag!(QuestionResponseType, "question_response");
tag!(SetPermissionModeType, "set_permission_mode");
tag!(SetModelType, "set_model");
tag!(StopTaskType, "stop_task");

/// An inbound message, by `type`.
#[derive(ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("user_message" = "#/components/schemas/UserMessage"),
    ("interrupt" = "#/components/schemas/Interrupt"),
    ("permission_response" = "#/components/schemas/PermissionResponse"),
    ("question_response" = "#/components/schemas/QuestionResponse"),
    ("set_permission_mode" = "#/components/schemas/SetPermissionMode"),
    ("set_model" = "#/components/schemas/SetModel"),
    ("stop_task" = "#/components/schemas/StopTask"),
)))]
pub enum InboundMessage {
    UserMessage(UserMessage),
    Interrupt(Interrupt),
    PermissionResponse(PermissionResponse),
    QuestionResponse(QuestionResponse),
    SetPermissionMode(SetPermissionMode),
    SetModel(SetModel),
    StopTask(StopTask),
}

/// Queues a turn; turns run one at a time.
#[derive(ToSchema)]
pub struct UserMessage {
    #[schema(inline)]
    pub r#type: UserMessageType,
    pub content: UserContent,
}

/// Text, or content blocks (each an object with a string `type`, as the Messages API takes).
#[derive(ToSchema)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

#[derive(ToSchema)]
pub struct ContentBlock {
    /// `text`, `image`, ...; the block's other fields as the Messages API defines them.
    pub r#type: String,
}

/// Interrupts the running turn (it ends with its `result`).
#[derive(ToSchema)]
pub struct Interrupt {
    #[schema(inline)]
    pub r#type: InterruptType,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum Behavior {
    Allow,
    Deny,
}

tag!(AllowBehavior, "allow");
tag!(DenyBehavior, "deny");

/// Answers a `permission_request` or `hook_decision_request`: the first reply wins, a later
/// one is `409 no_pending_decision`. `message` and `interrupt` go only with `deny`.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum PermissionResponse {
    Allow(PermissionAllow),
    Deny(PermissionDeny),
}

#[derive(ToSchema)]
pub struct PermissionAllow {
    #[schema(inline)]
    pub r#type: PermissionResponseType,
    /// The request's `correlation_id`.
    #[schema(min_length = 1)]
    pub correlation_id: String,
    #[schema(inline)]
    pub behavior: AllowBehavior,
    /// The tool input to run with instead.
    #[schema(value_type = Option<Object>)]
    pub updated_input: Option<Value>,
    /// Permission rule updates, as the Claude CLI takes them.
    #[schema(value_type = Option<Vec<Object>>)]
    pub updated_permissions: Option<Vec<Value>>,
}

#[derive(ToSchema)]
pub struct PermissionDeny {
    #[schema(inline)]
    pub r#type: PermissionResponseType,
    /// The request's `correlation_id`.
    #[schema(min_length = 1)]
    pub correlation_id: String,
    #[schema(inline)]
    pub behavior: DenyBehavior,
    /// What the agent is told.
    pub message: Option<String>,
    /// Also interrupt the turn.
    pub interrupt: Option<bool>,
}

/// Answers an `ask_user_question`.
#[derive(ToSchema)]
pub struct QuestionResponse {
    #[schema(inline)]
    pub r#type: QuestionResponseType,
    #[schema(min_length = 1)]
    pub correlation_id: String,
    /// The answers, by question text: `{"Which color?": "Blue"}`.
    pub answers: Value,
}

/// One of the modes the Claude CLI accepts.
#[derive(ToSchema)]
pub enum PermissionMode {
    #[serde(rename = "default")]
    Default,
    #[serde(rename = "manual")]
    Manual,
    #[serde(rename = "acceptEdits")]
    AcceptEdits,
    #[serde(rename = "plan")]
    Plan,
    #[serde(rename = "bypassPermissions")]
    BypassPermissions,
    #[serde(rename = "dontAsk")]
    DontAsk,
    #[serde(rename = "auto")]
    Auto,
}

/// Changes the permission mode of the running agent and of every later start.
#[derive(ToSchema)]
pub struct SetPermissionMode {
    #[schema(inline)]
    pub r#type: SetPermissionModeType,
    pub mode: PermissionMode,
}

/// Changes the model (`null`: the default) of the running agent and of every later start.
#[derive(ToSchema)]
pub struct SetModel {
    #[schema(inline)]
    pub r#type: SetModelType,
    #[schema(required = true)]
    pub model: Option<String>,
}

/// Stops a background task of the agent.
#[derive(ToSchema)]
pub struct StopTask {
    #[schema(inline)]
    pub r#type: StopTaskType,
    #[schema(min_length = 1)]
    pub task_id: String,
}

/// The inbound message types, as recorded in the audit log.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum InputType {
    UserMessage,
    Interrupt,
    PermissionResponse,
    QuestionResponse,
    SetPermissionMode,
    SetModel,
    StopTask,
}

#[cfg(test)]
mod tests {
    /// The mapping above names each schema by hand; keep it to the schemas that exist.
    #[test]
    fn the_discriminator_maps_every_type_to_its_schema() {
        let doc = super::super::document();
        let schemas = &doc.components.as_ref().unwrap().schemas;
        for kind in crate::audit::params::INPUT_TYPES {
            let name: String = kind
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            assert!(schemas.contains_key(&name), "{name}");
        }
    }
}
