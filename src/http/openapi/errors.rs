//! The error body and, per status, the stable codes it can carry (as response descriptions,
//! so a generated client's docs list them). The codes are the ones `crate::error` and the
//! handlers produce; README "The API in brief" is the prose version.

use utoipa::ToSchema;

/// Every 4xx/5xx answer: a stable snake_case `code` and a human-readable `message` (which
/// quotes at most 100 characters of what the client sent).
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)] // Doc-only: `ApiError` builds this body as JSON.
pub struct ErrorBody {
    /// Stable, snake_case; see each response's description for the codes it can carry.
    pub code: String,
    pub message: String,
}

pub const UNAUTHORIZED: &str = "`unauthorized`: no bearer token, or one that is not valid \
    (an expired or badly signed JWT, a wrong issuer or audience: the message says which).";

pub const ADMIN_REQUIRED: &str = "`admin_required`: the caller is not an admin (the admin \
    token, or a JWT carrying `--jwt-admin-claim`).";

pub const SESSION_NOT_FOUND: &str = "`session_not_found`: no such session, or it belongs to \
    another principal (answered exactly alike, so not even its existence leaks). Any id that \
    is not a UUID is this too.";

pub const BAD_PATH: &str = "`invalid_path`: the path does not percent-decode to UTF-8.";

/// Every authenticated route can answer these.
pub const UNAVAILABLE: &str = "With `Retry-After`. `request_timeout` (no answer within \
    `--request-timeout`), `database_unavailable`, `too_many_connections` (the connection cap; \
    the connection is closed).";

pub const UNAVAILABLE_SESSION: &str = "With `Retry-After`. `at_capacity` (`--max-sessions`), \
    `session_busy` (another live host is handing the session over), `session_moved`, \
    `session_stopping`, `draining` (this host is shutting down), `request_timeout`, \
    `database_unavailable`, `too_many_connections`.";

pub const UNAVAILABLE_INPUT: &str = "With `Retry-After`. `queue_full` \
    (`--max-queued-inputs`), `overloaded` (the writer is behind: new messages are shed, \
    replies and controls still pass), `at_capacity`, `session_busy`, `session_moved`, \
    `session_stopping`, `draining`, `request_timeout`, `database_unavailable`, \
    `too_many_connections`.";

pub const UNAVAILABLE_CREATE: &str = "With `Retry-After`. `at_capacity` (`--max-sessions`), \
    `overloaded`, `draining`, `request_timeout`, `database_unavailable`, \
    `too_many_connections`.";

pub const BODY_TOO_LARGE: &str = "`body_too_large`: the body (or its declared \
    `Content-Length`, refused at once and the connection closed) is over `--max-body-bytes`.";

pub const BAD_CREATE: &str = "`invalid_json`, `invalid_input` (not an object, or a field of \
    the wrong type), `invalid_config` (refused by the runtime: an unknown fixture, a `cwd` \
    outside `--allowed-cwd`, `bypassPermissions`, bad `hooks`, U+0000 anywhere), `bad_body` \
    (the body could not be read).";

pub const BAD_INPUT: &str = "`invalid_json`, `invalid_input` (a missing or mistyped field, \
    U+0000 anywhere), `unknown_type`, `invalid_permission_mode`, `wrong_response_type` (a \
    `question_response` to a permission request or the reverse), `bad_body`, `invalid_path`.";

/// The list endpoints' filters (`audit::params`).
pub const BAD_FILTER: &str = "`unknown_parameter`, `duplicate_parameter`, `invalid_parameter` \
    (U+0000, or a text filter over 256 characters), `invalid_limit`, `invalid_cursor` (not a \
    cursor of this list), `invalid_time`, `invalid_status`, `invalid_event`, `invalid_type`, \
    `invalid_session_id`, `invalid_contains`, `invalid_after`, `invalid_query` (the query \
    string does not decode), `invalid_path`.";

pub const BAD_STREAM: &str = "`invalid_last_event_id` (not a non-negative integer), \
    `invalid_path`.";

pub const PRECONDITION: &str = "`last_event_id_ahead` (beyond the session's last event), \
    `events_expired` (retention removed the events after it) or `events_lost` (a database \
    failover lost events after it): rebuild from `GET /sessions/{id}/events`, then stream \
    from its last id.";

pub const TOO_MANY_SUBSCRIBERS: &str =
    "`too_many_subscribers`: `--max-subscribers-per-session` streams are open on this host.";

pub const NO_PENDING_DECISION: &str = "`no_pending_decision`: a permission or question reply \
    whose request was already answered (another reply won the race) or never existed.";

pub const SESSION_CLOSED: &str = "`session_closed`: the session was deleted.";

pub const NOT_READY: &str = "With `Retry-After`. `draining` (shutting down) or \
    `database_unavailable`.";

pub const NO_SUCH_ASSET: &str = "`not_found`: no such asset.";
