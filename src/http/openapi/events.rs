//! The SSE event catalogue of `GET /sessions/{id}/stream`: every event name and its `data`.
//!
//! Doc-only mirrors of what `session::translate` (and `store::sessions` for `session_ready`)
//! serialize; they are never constructed. A frame on the wire is
//! `id: <seq>\nevent: <name>\ndata: <json>\n\n`; [`SseEvent`] describes its (`event`, `data`)
//! pair, one named schema per event's data.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// One frame: `id` (the event's seq, to resume from with `Last-Event-ID`), `event` (its name)
/// and `data` (JSON text; its schema is the named `*Data` schema of that event).
#[derive(ToSchema)]
#[serde(tag = "event", content = "data", rename_all = "snake_case")]
pub enum SseEvent {
    SessionReady(SessionReadyData),
    MessageDelta(MessageDeltaData),
    MessageComplete(MessageCompleteData),
    ToolUse(ToolUseData),
    ToolResult(ToolResultData),
    PermissionRequest(PermissionRequestData),
    PermissionResolved(PermissionResolvedData),
    AskUserQuestion(AskUserQuestionData),
    QuestionResolved(QuestionResolvedData),
    HookDecisionRequest(HookDecisionRequestData),
    Result(ResultData),
    Error(ErrorData),
    McpStatusChange(McpStatusChangeData),
    Done(DoneData),
}

/// Every event name (`crate::frame::names::ALL`).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum EventName {
    SessionReady,
    MessageDelta,
    MessageComplete,
    ToolUse,
    ToolResult,
    PermissionRequest,
    PermissionResolved,
    AskUserQuestion,
    QuestionResolved,
    HookDecisionRequest,
    Result,
    Error,
    McpStatusChange,
    Done,
}

/// The first event of every session (seq 1).
#[derive(ToSchema)]
pub struct SessionReadyData {
    pub session_id: Uuid,
    /// `1.0`.
    pub protocol_version: String,
}

/// A streamed fragment of an assistant message (the Messages API's stream event delta).
#[derive(ToSchema)]
pub struct MessageDeltaData {
    pub message_id: String,
    #[schema(value_type = Object)]
    pub delta: Value,
}

/// A whole assistant message (once per API message, under its id).
#[derive(ToSchema)]
pub struct MessageCompleteData {
    pub message_id: String,
    pub message: AssistantMessage,
}

#[derive(ToSchema)]
pub struct AssistantMessage {
    pub id: String,
    /// `assistant`.
    pub role: String,
    /// Content blocks as the Messages API gives them (`text`, `tool_use`, `thinking`, ...).
    #[schema(value_type = Vec<Object>)]
    pub content: Vec<Value>,
    #[schema(required = true)]
    pub model: Option<String>,
    #[schema(required = true)]
    pub stop_reason: Option<String>,
}

/// One per `tool_use` block of a `message_complete`.
#[derive(ToSchema)]
pub struct ToolUseData {
    pub message_id: String,
    pub tool_use_id: String,
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub input: Value,
}

#[derive(ToSchema)]
pub struct ToolResultData {
    pub tool_use_id: String,
    /// The tool's output: a string or content blocks.
    pub output: Value,
    pub is_error: bool,
}

/// A tool call waits for `permission_response` with this `correlation_id`.
#[derive(ToSchema)]
pub struct PermissionRequestData {
    pub correlation_id: String,
    pub tool_name: String,
    #[schema(value_type = Object)]
    pub input: Value,
    /// What the runtime knows about the request (suggestions, blocked path, ...).
    pub context: Value,
}

/// A permission or hook request got its first answer (other tabs clear their prompt).
#[derive(ToSchema)]
pub struct PermissionResolvedData {
    pub correlation_id: String,
    pub behavior: super::inbound::Behavior,
}

/// The agent asks the user; answer with `question_response`.
#[derive(ToSchema)]
pub struct AskUserQuestionData {
    pub correlation_id: String,
    /// The AskUserQuestion tool's whole input object, exactly as the agent gave it. (Events
    /// stored by 0.1.0 hold the bare `questions` array instead.)
    pub questions: AskUserQuestionInput,
}

/// The AskUserQuestion tool's input (other fields the agent adds are kept).
#[derive(ToSchema)]
pub struct AskUserQuestionInput {
    pub questions: Vec<Question>,
}

#[derive(ToSchema)]
pub struct Question {
    pub question: String,
    pub header: Option<String>,
    #[schema(rename = "multiSelect")]
    pub multi_select: Option<bool>,
    pub options: Vec<QuestionOption>,
}

#[derive(ToSchema)]
pub struct QuestionOption {
    pub label: String,
    pub description: Option<String>,
}

/// A question got its first answer.
#[derive(ToSchema)]
pub struct QuestionResolvedData {
    pub correlation_id: String,
}

/// A hook callback (`hooks` in the session config) waits for `permission_response`.
#[derive(ToSchema)]
pub struct HookDecisionRequestData {
    pub correlation_id: String,
    /// The hook's event, e.g. `PreToolUse`.
    pub hook_event: String,
    #[schema(value_type = Object)]
    pub hook_input: Value,
}

/// The end of a turn: the runtime's whole result (cost, usage, duration, ...), plus
/// `session_id`. A turn that died ends with subtype `error_during_execution`.
#[derive(ToSchema)]
pub struct ResultData {
    pub session_id: String,
    /// `success`, `error_during_execution`, `error_max_turns`, ...
    pub subtype: String,
    pub is_error: Option<bool>,
    pub total_cost_usd: Option<f64>,
}

/// Something went wrong in the session (`turn_lost`, `agent_exited`, `event_rejected`, ...).
#[derive(ToSchema)]
pub struct ErrorData {
    pub code: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct McpStatusChangeData {
    pub server_name: String,
    pub status: String,
}

/// The session was deleted: the last event; the stream ends after it.
#[derive(ToSchema)]
pub struct DoneData {}
