//! Agent runtimes behind one trait.
//!
//! A runtime is started per session and talks to the session task through two channels:
//! [`AgentCommand`]s in (user messages, control calls) and [`AgentEvent`]s out (SDK-level
//! messages). Translation to wire events happens once, in `session::translate`, never in a
//! runtime, so the replay runtime and the Claude CLI runtime cannot drift apart.
//!
//! The shape follows what the Claude Code CLI needs (`docs/claude-cli.md`):
//! - messages stream out while a turn runs, independent of any HTTP request;
//! - a permission / question / hook callback is *parked*: the runtime hands the session a
//!   [`oneshot::Sender<Decision>`] and keeps reading its own output; the first HTTP reply
//!   completes it. Nothing blocks the runtime's reader while a callback waits;
//! - control calls (interrupt, mode, model, stop task) answer through their own oneshot, so a
//!   runtime error becomes an `error` event instead of a hang;
//! - a resume token, stored in Postgres by the session, lets a later process (on any host)
//!   continue the conversation.

pub mod claude;
pub mod replay;

use futures::future::BoxFuture;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Per-session configuration given at `POST /sessions` (stored in Postgres as JSON).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SessionConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Replay runtime only: the scenario file name (without `.jsonl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixture: Option<String>,
    /// Claude runtime only: hook callbacks to register, answered by the client through
    /// `hook_decision_request`: `{"PreToolUse": [{"matcher": "Bash", "timeout": 30}], ...}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<Value>,
}

/// Permission modes the Claude CLI accepts (docs/claude-cli.md §1.2).
pub const PERMISSION_MODES: &[&str] = &[
    "default",
    "manual",
    "acceptEdits",
    "plan",
    "bypassPermissions",
    "dontAsk",
    "auto",
];

/// What a runtime needs to start (or restart, on rehydration) a session's agent.
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub session_id: Uuid,
    pub config: SessionConfig,
    /// The token the runtime last reported through [`AgentEvent::ResumeToken`], if any.
    pub resume_token: Option<String>,
    /// The conversation's stored transcript files (`(file, entries)`), loaded when resuming
    /// with a runtime that [`mirrors`](AgentRuntime::mirrors) its transcript.
    pub transcript: Vec<(String, Vec<String>)>,
}

/// Messages from the session task to the runtime.
#[derive(Debug)]
pub enum AgentCommand {
    /// Starts a turn. The session sends the next one only after the previous turn's `Result`.
    UserMessage { content: Value },
    /// A control call; the runtime answers once it has been carried out (or failed).
    Control {
        control: Control,
        reply: oneshot::Sender<Result<(), AgentError>>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Stop the current turn; the runtime ends it with a `Result` of subtype `interrupted`.
    Interrupt,
    SetPermissionMode(String),
    SetModel(Option<String>),
    StopTask(String),
}

/// SDK-level messages from a runtime. `session::translate` turns them into wire events.
#[derive(Debug)]
pub enum AgentEvent {
    /// A streamed piece of an assistant message (same `message_id` as its later `Assistant`).
    Delta { message_id: String, delta: Value },
    /// A completed assistant message: `message_complete`, then one `tool_use` per tool_use block.
    Assistant {
        id: String,
        content: Vec<Value>,
        model: Option<String>,
        stop_reason: Option<String>,
    },
    /// Tool results (the content blocks of an SDK `UserMessage`): one `tool_result` each.
    ToolResults { blocks: Vec<Value> },
    /// End of a turn. The object is the result payload (`subtype`, `total_cost_usd`, ...).
    Result(serde_json::Map<String, Value>),
    /// `mcp_status_change`.
    McpStatus { server_name: String, status: String },
    /// A parked callback: permission request, AskUserQuestion, or hook decision.
    Ask(Ask),
    /// The runtime's current resume token; the session stores it in Postgres.
    ResumeToken(String),
    /// A runtime failure worth telling the client about (`error {code, message}`).
    Error { code: String, message: String },
    /// Entries the agent wrote to one file of its transcript (`file` relative to the project
    /// directory, already checked), each its `uuid` (if a plain one) and one line of JSON: the
    /// session stores them with its events, fenced, before anything the agent says after them
    /// (invariant 7).
    Transcript {
        file: String,
        entries: Vec<(Option<String>, String)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskKind {
    /// `permission_request`, answered by `permission_response`.
    Permission,
    /// `ask_user_question`, answered by `question_response`.
    Question,
    /// `hook_decision_request`, answered by `permission_response`.
    Hook,
}

/// A callback the agent is waiting on. The runtime keeps running while it is parked.
#[derive(Debug)]
pub struct Ask {
    pub kind: AskKind,
    pub correlation_id: String,
    /// Permission / question: the tool name. Hook: the hook event name.
    pub tool_name: String,
    /// Permission / question: the tool input. Hook: the hook input.
    pub input: Value,
    /// Permission only: suggestions, blocked path, decision reason, ...
    pub context: Value,
    pub reply: oneshot::Sender<Decision>,
}

/// A client's answer to an [`Ask`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Allow {
        updated_input: Option<Value>,
        updated_permissions: Option<Value>,
    },
    Deny {
        message: Option<String>,
        interrupt: bool,
    },
    Answer {
        answers: Value,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("agent runtime is not available: {0}")]
    Unavailable(String),
    #[error("fixture {0:?} not found")]
    FixtureNotFound(String),
    #[error("invalid fixture {name:?}: {reason}")]
    BadFixture { name: String, reason: String },
    #[error("agent rejected the control request: {code}: {message}")]
    Rejected { code: String, message: String },
    #[error("agent has exited")]
    Exited,
    #[error("invalid session config: {0}")]
    InvalidConfig(String),
}

impl AgentError {
    /// Stable snake_case code for `error` events and API errors.
    pub fn code(&self) -> &str {
        match self {
            AgentError::Unavailable(_) => "agent_unavailable",
            AgentError::FixtureNotFound(_) => "fixture_not_found",
            AgentError::BadFixture { .. } => "bad_fixture",
            AgentError::Rejected { code, .. } => code,
            AgentError::Exited => "agent_exited",
            AgentError::InvalidConfig(_) => "invalid_config",
        }
    }
}

/// A running agent for one session.
pub struct AgentHandle {
    pub commands: mpsc::Sender<AgentCommand>,
    pub events: mpsc::Receiver<AgentEvent>,
    /// The runtime's driving task. Dropping `commands` asks it to stop; the session awaits this
    /// (bounded) so no process outlives its session.
    pub task: JoinHandle<()>,
}

/// A factory of per-session agents.
pub trait AgentRuntime: Send + Sync + 'static {
    /// Checks the config before the session is created (unknown fixture, bad cwd, ...), so a
    /// bad `POST /sessions` is a `400` rather than a session that fails later. Async so that a
    /// runtime can do file I/O off the async workers (the replay runtime parses its script).
    fn validate<'a>(&'a self, config: &'a SessionConfig) -> BoxFuture<'a, Result<(), AgentError>>;

    /// Whether the runtime mirrors its conversation ([`AgentEvent::Transcript`]) and needs it
    /// back in [`StartSpec::transcript`] to resume.
    fn mirrors(&self) -> bool {
        false
    }

    /// Starts (or, with `spec.resume_token`, resumes) the agent of one session.
    fn start(&self, spec: StartSpec) -> BoxFuture<'_, Result<AgentHandle, AgentError>>;

    /// The session was closed by `DELETE` (committed) and its agent told to stop: it will never
    /// start again, so the runtime may let go of what it keeps for it on this host, once that
    /// agent is gone. Must not block.
    fn closed(&self, _session_id: Uuid, _config: &SessionConfig) {}

    /// Completes once the agents stopped so far are fully gone (processes reaped). The host
    /// awaits it after releasing its sessions at shutdown, so exiting does not cut a stop short.
    fn drain(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}
