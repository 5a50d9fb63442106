//! Request and response bodies of the JSON endpoints, as the document describes them.
//!
//! Doc-only: the handlers build these bodies with `serde_json::json!` from store rows
//! (`store::audit`, `store::hosts_view`), so these types mirror the wire shapes for the
//! document and are never constructed. Schemathesis (`tests/it/schemathesis.rs`) checks every
//! answer against them, so a drift between a handler and its schema fails the suite.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /sessions`: every field optional, unknown fields ignored; an empty body is `{}`.
#[derive(ToSchema)]
pub struct SessionConfig {
    /// The model (`--model` of the Claude CLI: an alias such as `sonnet`, or a model id).
    pub model: Option<String>,
    /// `default`, `manual`, `acceptEdits`, `plan`, `dontAsk` or `auto` (`bypassPermissions` is
    /// refused with `invalid_config` by the Claude runtime).
    pub permission_mode: Option<String>,
    /// Claude runtime: the CLI's working directory, under an `--allowed-cwd` root.
    pub cwd: Option<String>,
    /// Claude runtime: hook callbacks answered through `hook_decision_request`, e.g.
    /// `{"PreToolUse": [{"matcher": "Bash", "timeout": 30}]}`.
    #[schema(value_type = Option<Object>)]
    pub hooks: Option<Value>,
    /// Replay runtime: the scenario to play (a file name in `--fixtures`, without `.jsonl`).
    #[schema(pattern = "^[A-Za-z0-9_.-]+$")]
    pub fixture: Option<String>,
}

#[derive(ToSchema)]
pub struct SessionCreated {
    pub session_id: Uuid,
    /// Always `1.0`.
    pub protocol_version: String,
}

/// `active` (its owner host is alive), `dormant` (in Postgres only; the next request brings it
/// back) or `closed` (deleted).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Dormant,
    Closed,
}

/// A session's metadata (`GET /sessions/{id}` adds `config`).
#[derive(ToSchema)]
pub struct Session {
    pub id: Uuid,
    pub principal: String,
    pub status: SessionStatus,
    pub owner_host: Option<i32>,
    pub owner_host_name: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The SSE id of its newest event.
    pub last_event_id: i64,
    pub turns: i32,
    pub total_cost_usd: f64,
    /// The config it was created with (and any accepted `set_model` / `set_permission_mode`):
    /// only in `GET /sessions/{id}`.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
}

/// A keyset page: pass `next_cursor` as `cursor` for the next one (`null`: the end).
#[derive(ToSchema)]
pub struct SessionPage {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<String>,
}

/// A stored event. `data` is the event's payload as streamed (see the `*Data` schemas of the
/// event catalogue, `SseEvent`).
#[derive(ToSchema)]
pub struct StoredEvent {
    pub session_id: Uuid,
    /// The SSE id (seq): stream from it with `Last-Event-ID`.
    pub id: i64,
    pub event: super::events::EventName,
    pub data: Value,
    #[schema(format = DateTime)]
    pub created_at: String,
}

#[derive(ToSchema)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    pub next_cursor: Option<String>,
}

/// A recorded inbound message.
#[derive(ToSchema)]
pub struct StoredInput {
    pub session_id: Uuid,
    pub id: i64,
    pub r#type: super::inbound::InputType,
    pub principal: String,
    /// The status it was answered with: `204` accepted, `409` lost the race.
    pub status: i16,
    pub correlation_id: Option<String>,
    /// The message as sent.
    pub body: Value,
    #[schema(format = DateTime)]
    pub received_at: String,
}

#[derive(ToSchema)]
pub struct InputPage {
    pub inputs: Vec<StoredInput>,
    pub next_cursor: Option<String>,
}

/// One transcript line the Claude CLI wrote (`--agent claude` with the mirror).
#[derive(ToSchema)]
pub struct TranscriptEntry {
    pub seq: i64,
    /// The file within the CLI's project dir (the main transcript has no `/`).
    pub file: String,
    pub uuid: Option<String>,
    /// The line as JSON (`null` if it was not JSON).
    pub entry: Value,
}

#[derive(ToSchema)]
pub struct TranscriptPage {
    pub entries: Vec<TranscriptEntry>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
pub struct Host {
    pub id: i32,
    pub name: String,
    /// Alive by the rule takeovers use: not released, lease fresh, advisory lock held.
    pub alive: bool,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub heartbeat_at: String,
    /// Seconds since its last heartbeat, by Postgres' clock.
    pub lease_age_secs: f64,
    #[schema(format = DateTime)]
    pub locked_at: String,
    #[schema(format = DateTime)]
    pub released_at: Option<String>,
    /// Sessions not `closed` that it owns.
    pub sessions_owned: i64,
}

#[derive(ToSchema)]
pub struct HostList {
    /// Live hosts first, then the newest.
    pub hosts: Vec<Host>,
    /// `--lease`, in seconds.
    pub lease_secs: f64,
}

#[derive(ToSchema)]
pub struct Health {
    pub ok: bool,
    /// Sessions held in memory on this host.
    pub live_sessions: i64,
}

#[derive(ToSchema)]
pub struct Ready {
    pub ok: bool,
}
