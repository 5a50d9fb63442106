//! The query parameters of the list endpoints, with their bounds.
//!
//! Doc-only: the handlers take the query string as pairs and `audit::params` validates them
//! (unknown names, duplicates and bad values are `400` with a code), so these structs only
//! describe what it accepts.
#![allow(dead_code)]

use super::bodies::SessionStatus;
use super::events::EventName;
use super::inbound::InputType;
use utoipa::IntoParams;
use uuid::Uuid;

/// `limit`: rows per page (`audit::params::{DEFAULT_LIMIT, MAX_LIMIT}`).
const _: () =
    assert!(crate::audit::params::DEFAULT_LIMIT == 100 && crate::audit::params::MAX_LIMIT == 1000);

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionsQuery {
    pub status: Option<SessionStatus>,
    /// Admins only: this principal's sessions (anyone else sees only their own).
    #[param(max_length = 256)]
    pub principal: Option<String>,
    /// Created at or after: RFC 3339 (`2026-11-21T10:00:00Z`) or a duration ago (`15m`,
    /// `1h`, `7d`).
    pub since: Option<String>,
    /// Created before; like `since`.
    pub until: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionEventsQuery {
    /// Events after this seq (like `Last-Event-ID`); not with `cursor`.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// `next_cursor` of the previous page; not with `after`.
    pub cursor: Option<String>,
    /// Only events of this name.
    pub event: Option<EventName>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TranscriptQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
    /// With `Accept: application/x-ndjson`: the file to return whole (default: the main
    /// transcript).
    #[param(max_length = 256)]
    pub file: Option<String>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditEventsQuery {
    pub session_id: Option<Uuid>,
    pub event: Option<EventName>,
    #[param(max_length = 256)]
    pub tool_name: Option<String>,
    /// Also matches `tool_use_id`: a tool call's whole story.
    #[param(max_length = 256)]
    pub correlation_id: Option<String>,
    /// RFC 3339 or a duration ago (`1h`).
    pub since: Option<String>,
    pub until: Option<String>,
    /// A JSON object or array that `data` must contain (`{"behavior":"deny"}`); the assistant's
    /// text events are searched only when `event` names them.
    pub contains: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditInputsQuery {
    pub session_id: Option<Uuid>,
    #[param(max_length = 256)]
    pub principal: Option<String>,
    pub r#type: Option<InputType>,
    /// The status the input was answered with (`204`, `409`).
    #[param(minimum = 100, maximum = 599)]
    pub status: Option<i16>,
    #[param(max_length = 256)]
    pub correlation_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub cursor: Option<String>,
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HostsQuery {
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<i64>,
}
