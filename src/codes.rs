//! Every stable error code a client can get in an HTTP error body `{code, message}`, with its
//! status and what it means: the one catalogue every layer names codes from (`session` for
//! inputs, `audit` for filters, `http` for the rest). README "Error codes" lists the same
//! codes; a test checks the two agree (`tests/it/openapi.rs`).
//!
//! A leaf: it imports nothing from the crate. Codes are stable: a client may match on them, so
//! one is never renamed or given another status; new ones may be added.

macro_rules! catalogue {
    ($($variant:ident = $code:literal, $status:literal, $meaning:literal;)+) => {
        /// A stable error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the catalogue's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The code as it appears in a body: snake_case.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status it is answered with.
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// What it means, for a client (the README's wording).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)+
                }
            }
        }
    };
}

catalogue! {
    // 400: the request cannot be taken as sent.
    InvalidJson = "invalid_json", 400, "The body is not valid JSON.";
    InvalidInput = "invalid_input", 400, "An input or session body that is not an object, lacks a field or has one of the wrong type, or holds U+0000.";
    UnknownType = "unknown_type", 400, "An input whose `type` is none of the seven inbound types.";
    InvalidPermissionMode = "invalid_permission_mode", 400, "`set_permission_mode` to a mode the agent does not know.";
    WrongResponseType = "wrong_response_type", 400, "A `question_response` to a permission request, or the reverse.";
    InvalidLastEventId = "invalid_last_event_id", 400, "`Last-Event-ID` is not a non-negative integer.";
    InvalidPath = "invalid_path", 400, "The path does not percent-decode to UTF-8.";
    InvalidConfig = "invalid_config", 400, "A session config the runtime refuses: an unknown fixture, a `cwd` outside `--allowed-cwd`, `bypassPermissions`, bad `hooks`, U+0000.";
    BadBody = "bad_body", 400, "The body could not be read.";
    InvalidQuery = "invalid_query", 400, "The query string does not decode.";
    UnknownParameter = "unknown_parameter", 400, "A filter this list does not take.";
    DuplicateParameter = "duplicate_parameter", 400, "A filter given twice.";
    InvalidParameter = "invalid_parameter", 400, "A filter Postgres could not hold: U+0000, or a text filter over 256 characters.";
    InvalidLimit = "invalid_limit", 400, "`limit` is not between 1 and 1000.";
    InvalidCursor = "invalid_cursor", 400, "`cursor` is not a cursor of this list.";
    InvalidTime = "invalid_time", 400, "`since` or `until` is neither RFC 3339 nor a duration ago, or lies before 1970.";
    InvalidStatus = "invalid_status", 400, "`status` is not a session status or an HTTP status.";
    InvalidEvent = "invalid_event", 400, "`event` is not an event name.";
    InvalidType = "invalid_type", 400, "`type` is not an inbound message type.";
    InvalidSessionId = "invalid_session_id", 400, "`session_id` is not a UUID.";
    InvalidContains = "invalid_contains", 400, "`contains` is not a JSON object or array, or holds U+0000.";
    InvalidAfter = "invalid_after", 400, "`after` is not a non-negative integer.";
    // 401, 403, 404, 405: who and where.
    Unauthorized = "unauthorized", 401, "No bearer token, or one that is not valid (the message says why).";
    AdminRequired = "admin_required", 403, "The route is for admin principals only.";
    NotFound = "not_found", 404, "No such route (or console asset).";
    SessionNotFound = "session_not_found", 404, "No such session, or another principal's: both are answered alike.";
    MethodNotAllowed = "method_not_allowed", 405, "The route does not take this method (`Allow` lists those it does).";
    // 409, 410, 412: the session's state.
    NoPendingDecision = "no_pending_decision", 409, "A permission or question reply whose request was already answered (another reply won) or never existed.";
    SessionClosed = "session_closed", 410, "The session was deleted.";
    LastEventIdAhead = "last_event_id_ahead", 412, "`Last-Event-ID` is beyond the session's last event.";
    EventsExpired = "events_expired", 412, "Retention removed the events after `Last-Event-ID`: rebuild from the history.";
    EventsLost = "events_lost", 412, "A database failover lost events after `Last-Event-ID`: rebuild from the history.";
    // 413, 429: size and count limits.
    BodyTooLarge = "body_too_large", 413, "The body, or its declared `Content-Length`, is over `--max-body-bytes`.";
    TooManySubscribers = "too_many_subscribers", 429, "`--max-subscribers-per-session` streams of this session are open on this host.";
    // 500.
    Internal = "internal", 500, "A bug or an unexpected database error; the log has the cause.";
    // 503, always with `Retry-After`: try again (through the load balancer).
    QueueFull = "queue_full", 503, "The session's inbound queue is full (`--max-queued-inputs`).";
    AtCapacity = "at_capacity", 503, "This host holds `--max-sessions` sessions.";
    Overloaded = "overloaded", 503, "The writer is behind: new sessions and messages are shed; replies and controls still pass.";
    RequestTimeout = "request_timeout", 503, "No answer within `--request-timeout`.";
    DatabaseUnavailable = "database_unavailable", 503, "Postgres does not answer, or does not take writes (a standby).";
    LeaseExpired = "lease_expired", 503, "This host's lease ran out (its heartbeat did not reach Postgres): it takes no session until it is back.";
    TooManyConnections = "too_many_connections", 503, "The connection cap (`--max-connections`); the connection is closed.";
    SessionBusy = "session_busy", 503, "Another live host owns the session and this one cannot follow it now.";
    SessionMoved = "session_moved", 503, "The session moved to another host during the request.";
    SessionStopping = "session_stopping", 503, "The session is stopping on this host.";
    Draining = "draining", 503, "This host is shutting down.";
}

impl ErrorCode {
    /// Answers with this status carry `Retry-After`.
    pub const fn retry(self) -> bool {
        self.status() == 503
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_snake_case_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let s = code.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!((400..600).contains(&code.status()), "{s}");
            assert!(!code.meaning().is_empty(), "{s}");
        }
    }

    /// The README's table, as the catalogue prints it.
    fn table() -> String {
        let mut out = String::from("| code | status | meaning |\n| --- | --- | --- |\n");
        for code in ErrorCode::ALL {
            let (c, s, m) = (code.as_str(), code.status(), code.meaning());
            out.push_str(&format!("| `{c}` | {s} | {m} |\n"));
        }
        out
    }

    #[test]
    fn the_readme_lists_exactly_the_catalogue() {
        let readme = include_str!("../README.md");
        let start = "<!-- error-codes: generated from src/codes.rs -->\n";
        let listed = readme
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once("<!-- /error-codes -->"))
            .map(|(table, _)| table)
            .expect("README has the error-codes markers");
        assert_eq!(
            listed,
            table(),
            "README's error codes differ from src/codes.rs; the table should read:\n{}",
            table()
        );
    }
}
