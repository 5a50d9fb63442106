//! Filters of the history and audit queries, parsed from `name=value` pairs and validated once.
//!
//! The HTTP endpoints pass their query string's pairs; the CLI turns its flags into the same
//! pairs. One parser, so both accept exactly the same filters and refuse them with the same
//! reasons. Unknown names are refused too: a misspelt filter silently matching everything is
//! the worst answer an audit query can give.

use super::cursor::{self, Cursor};
use crate::codes::ErrorCode;
use crate::echo::echo;
use crate::frame::names;
use crate::store::audit::{EventFilter, InputFilter, SessionFilter, SessionStatus, TimeKey};
use crate::text;
use serde_json::Value;
use std::time::SystemTime;
use uuid::Uuid;

/// Rows per page when `limit` is not given, and the most a page may hold.
pub const DEFAULT_LIMIT: i64 = 100;
pub const MAX_LIMIT: i64 = 1000;

pub use super::ParamError;

fn err(code: ErrorCode, message: impl Into<String>) -> ParamError {
    ParamError {
        code,
        message: message.into(),
    }
}

/// The inbound message types recorded in `inputs`.
pub const INPUT_TYPES: &[&str] = &[
    "user_message",
    "interrupt",
    "permission_response",
    "question_response",
    "set_permission_mode",
    "set_model",
    "stop_task",
];

/// Pairs by name, each at most once, every name known.
struct Pairs<'a> {
    pairs: &'a [(String, String)],
}

impl<'a> Pairs<'a> {
    fn new(pairs: &'a [(String, String)], known: &[&str]) -> Result<Pairs<'a>, ParamError> {
        for (i, (name, _)) in pairs.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(err(
                    ErrorCode::UnknownParameter,
                    format!(
                        "unknown parameter {name:?}; expected one of {}",
                        known.join(", "),
                        name = echo(name)
                    ),
                ));
            }
            if pairs[i].1.contains('\0') {
                // Postgres' text cannot hold U+0000 (`text`): a 400, not a failed query.
                return Err(err(
                    ErrorCode::InvalidParameter,
                    format!("{name:?} must not contain U+0000 (NUL)"),
                ));
            }
            if pairs[..i].iter().any(|(n, _)| n == name) {
                return Err(err(
                    ErrorCode::DuplicateParameter,
                    format!("{name:?} is given twice", name = echo(name)),
                ));
            }
        }
        Ok(Pairs { pairs })
    }

    /// The value of `name`; an empty value counts as absent (`?event=` from a form).
    fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// A filter on an indexed text column: bounded like the values stored there
    /// (`text`), so a filter can never miss a value the index cut short.
    fn string(&self, name: &str) -> Result<Option<String>, ParamError> {
        self.get(name)
            .map(|v| match text::indexed_text_problem(v) {
                None => Ok(v.to_owned()),
                Some(problem) => Err(err(
                    ErrorCode::InvalidParameter,
                    format!("{name} {problem}"),
                )),
            })
            .transpose()
    }

    fn session_id(&self) -> Result<Option<Uuid>, ParamError> {
        self.get("session_id")
            .map(|v| {
                Uuid::parse_str(v).map_err(|_| {
                    err(
                        ErrorCode::InvalidSessionId,
                        format!("session_id {v:?} is not a UUID", v = echo(v)),
                    )
                })
            })
            .transpose()
    }

    fn time(&self, name: &str, now: SystemTime) -> Result<Option<SystemTime>, ParamError> {
        self.get(name).map(|v| parse_time(v, now)).transpose()
    }

    fn limit(&self) -> Result<i64, ParamError> {
        let Some(v) = self.get("limit") else {
            return Ok(DEFAULT_LIMIT);
        };
        match v.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(err(
                ErrorCode::InvalidLimit,
                format!(
                    "limit must be an integer from 1 to {MAX_LIMIT}, got {v:?}",
                    v = echo(v)
                ),
            )),
        }
    }
}

/// A time filter: an RFC 3339 timestamp (`2026-11-21T10:00:00Z`) or a duration before `now`
/// (`90s`, `15m`, `1h`, `7d`).
pub fn parse_time(v: &str, now: SystemTime) -> Result<SystemTime, ParamError> {
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t);
    }
    let ago = crate::config::parse_duration(v).map_err(|_| {
        err(
            ErrorCode::InvalidTime,
            format!(
                "{v:?} is neither an RFC 3339 time nor a duration like 1h",
                v = echo(v)
            ),
        )
    })?;
    // Postgres' timestamps end in 4713 BC; anything before 1970 is no audit filter anyway.
    now.checked_sub(ago)
        .filter(|t| *t >= SystemTime::UNIX_EPOCH)
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidTime,
                format!("{v:?} reaches before 1970", v = echo(v)),
            )
        })
}

/// An event name this server emits.
pub fn parse_event(v: &str) -> Result<&'static str, ParamError> {
    names::ALL.iter().copied().find(|n| *n == v).ok_or_else(|| {
        err(
            ErrorCode::InvalidEvent,
            format!(
                "unknown event {v:?}; expected one of {}",
                names::ALL.join(", "),
                v = echo(v)
            ),
        )
    })
}

fn parse_input_type(v: &str) -> Result<&'static str, ParamError> {
    INPUT_TYPES
        .iter()
        .copied()
        .find(|n| *n == v)
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidType,
                format!(
                    "unknown input type {v:?}; expected one of {}",
                    INPUT_TYPES.join(", "),
                    v = echo(v)
                ),
            )
        })
}

/// A page request of the time-ordered audit lists.
#[derive(Debug, Clone)]
pub struct Page<F, K> {
    pub filter: F,
    pub after: Option<K>,
    pub limit: i64,
}

pub fn events(
    pairs: &[(String, String)],
    now: SystemTime,
) -> Result<Page<EventFilter, TimeKey>, ParamError> {
    let p = Pairs::new(
        pairs,
        &[
            "session_id",
            "event",
            "tool_name",
            "correlation_id",
            "since",
            "until",
            "contains",
            "cursor",
            "limit",
        ],
    )?;
    let contains = p
        .get("contains")
        .map(|v| match serde_json::from_str::<Value>(v) {
            Ok(json @ (Value::Object(_) | Value::Array(_))) if !text::has_nul(&json) => Ok(json),
            _ => Err(err(
                ErrorCode::InvalidContains,
                "contains must be a JSON object or array, e.g. {\"tool_name\":\"Bash\"}",
            )),
        })
        .transpose()?;
    let filter = EventFilter {
        session_id: p.session_id()?,
        event: p.get("event").map(parse_event).transpose()?,
        tool_name: p.string("tool_name")?,
        correlation_id: p.string("correlation_id")?,
        since: p.time("since", now)?,
        until: p.time("until", now)?,
        contains,
        settled: None,
    };
    let after = p
        .get("cursor")
        .map(|c| match cursor::decode(c)? {
            Cursor::Events(k) => Ok(k),
            _ => Err(cursor::wrong_kind()),
        })
        .transpose()?;
    Ok(Page {
        filter,
        after,
        limit: p.limit()?,
    })
}

pub fn inputs(
    pairs: &[(String, String)],
    now: SystemTime,
) -> Result<Page<InputFilter, TimeKey>, ParamError> {
    let p = Pairs::new(
        pairs,
        &[
            "session_id",
            "principal",
            "type",
            "status",
            "correlation_id",
            "since",
            "until",
            "cursor",
            "limit",
        ],
    )?;
    let status = p
        .get("status")
        .map(|v| match v.parse::<i16>() {
            Ok(s) if (100..=599).contains(&s) => Ok(s),
            _ => Err(err(
                ErrorCode::InvalidStatus,
                format!("status must be an HTTP status code, got {v:?}", v = echo(v)),
            )),
        })
        .transpose()?;
    let filter = InputFilter {
        session_id: p.session_id()?,
        principal: p.string("principal")?,
        kind: p.get("type").map(parse_input_type).transpose()?,
        status,
        correlation_id: p.string("correlation_id")?,
        since: p.time("since", now)?,
        until: p.time("until", now)?,
        settled: None,
    };
    let after = p
        .get("cursor")
        .map(|c| match cursor::decode(c)? {
            Cursor::Inputs(k) => Ok(k),
            _ => Err(cursor::wrong_kind()),
        })
        .transpose()?;
    Ok(Page {
        filter,
        after,
        limit: p.limit()?,
    })
}

/// `GET /sessions` and `audit sessions`. `principal` narrows an admin's list.
pub fn sessions(
    pairs: &[(String, String)],
    now: SystemTime,
) -> Result<Page<SessionFilter, crate::store::audit::SessionKey>, ParamError> {
    let p = Pairs::new(
        pairs,
        &["status", "principal", "since", "until", "cursor", "limit"],
    )?;
    let status = p
        .get("status")
        .map(|v| {
            SessionStatus::ALL
                .into_iter()
                .find(|s| s.as_str() == v)
                .ok_or_else(|| {
                    err(
                        ErrorCode::InvalidStatus,
                        format!(
                            "status must be active, dormant or closed, got {v:?}",
                            v = echo(v)
                        ),
                    )
                })
        })
        .transpose()?;
    let filter = SessionFilter {
        principal: p.string("principal")?,
        status,
        since: p.time("since", now)?,
        until: p.time("until", now)?,
        ..SessionFilter::default()
    };
    let after = p
        .get("cursor")
        .map(|c| match cursor::decode(c)? {
            Cursor::Sessions(k) => Ok(k),
            _ => Err(cursor::wrong_kind()),
        })
        .transpose()?;
    Ok(Page {
        filter,
        after,
        limit: p.limit()?,
    })
}

/// `GET /sessions/{id}/transcript`: `cursor`, `limit`, and `file` (the NDJSON form's file).
/// Returns (after, limit, file).
pub fn transcript(pairs: &[(String, String)]) -> Result<(i64, i64, Option<String>), ParamError> {
    let p = Pairs::new(pairs, &["cursor", "limit", "file"])?;
    let after = match p.get("cursor") {
        None => 0,
        Some(c) => match cursor::decode(c)? {
            Cursor::Transcript(seq) => seq,
            _ => return Err(cursor::wrong_kind()),
        },
    };
    Ok((after, p.limit()?, p.string("file")?))
}

/// `GET /hosts`: only `limit`.
pub fn hosts(pairs: &[(String, String)]) -> Result<i64, ParamError> {
    Pairs::new(pairs, &["limit"])?.limit()
}

/// `GET /sessions/{id}/events`: `after` (a seq, like `Last-Event-ID`) or `cursor`, `event`,
/// `limit`. Returns (after, event, limit).
pub fn session_events(
    pairs: &[(String, String)],
) -> Result<(i64, Option<&'static str>, i64), ParamError> {
    let p = Pairs::new(pairs, &["after", "cursor", "event", "limit"])?;
    let after = match (p.get("after"), p.get("cursor")) {
        (Some(_), Some(_)) => {
            return Err(err(
                ErrorCode::InvalidCursor,
                "give either after or cursor, not both",
            ))
        }
        (Some(v), None) => v
            .parse::<u64>()
            .ok()
            .and_then(|n| i64::try_from(n).ok())
            .ok_or_else(|| {
                err(
                    ErrorCode::InvalidAfter,
                    format!(
                        "after must be a non-negative integer, got {v:?}",
                        v = echo(v)
                    ),
                )
            })?,
        (None, Some(c)) => match cursor::decode(c)? {
            Cursor::SessionEvents(seq) => seq,
            _ => return Err(cursor::wrong_kind()),
        },
        (None, None) => 0,
    };
    let event = p.get("event").map(parse_event).transpose()?;
    Ok((after, event, p.limit()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn code<T: std::fmt::Debug>(r: Result<T, ParamError>) -> &'static str {
        r.unwrap_err().code.as_str()
    }

    #[test]
    fn refuses_each_bad_filter_with_its_code() {
        let now = SystemTime::now();
        assert_eq!(
            code(events(&pairs(&[("event", "nope")]), now)),
            "invalid_event"
        );
        assert_eq!(
            code(events(&pairs(&[("since", "yesterday")]), now)),
            "invalid_time"
        );
        assert_eq!(
            code(events(&pairs(&[("cursor", "!!")]), now)),
            "invalid_cursor"
        );
        assert_eq!(
            code(events(&pairs(&[("limit", "0")]), now)),
            "invalid_limit"
        );
        assert_eq!(
            code(events(&pairs(&[("limit", "1001")]), now)),
            "invalid_limit"
        );
        assert_eq!(
            code(events(&pairs(&[("contains", "3")]), now)),
            "invalid_contains"
        );
        assert_eq!(
            code(events(&pairs(&[("session_id", "x")]), now)),
            "invalid_session_id"
        );
        assert_eq!(
            code(events(&pairs(&[("sesion_id", "x")]), now)),
            "unknown_parameter"
        );
        assert_eq!(
            code(events(&pairs(&[("event", "done"), ("event", "done")]), now)),
            "duplicate_parameter"
        );
        assert_eq!(
            code(inputs(&pairs(&[("status", "abc")]), now)),
            "invalid_status"
        );
        assert_eq!(
            code(inputs(&pairs(&[("type", "hello")]), now)),
            "invalid_type"
        );
        assert_eq!(
            code(sessions(&pairs(&[("status", "asleep")]), now)),
            "invalid_status"
        );
        assert_eq!(
            code(session_events(&pairs(&[("after", "-1")]))),
            "invalid_after"
        );
        // What Postgres' text, jsonb and timestamps cannot hold is a 400, not a failed query.
        assert_eq!(
            code(events(&pairs(&[("tool_name", "Ba\0sh")]), now)),
            "invalid_parameter"
        );
        assert_eq!(
            code(events(
                &pairs(&[("correlation_id", &"x".repeat(3001))]),
                now
            )),
            "invalid_parameter"
        );
        assert_eq!(
            code(events(&pairs(&[("contains", r#"{"a":"\u0000"}"#)]), now)),
            "invalid_contains"
        );
        assert_eq!(
            code(sessions(&pairs(&[("since", "100000000d")]), now)),
            "invalid_time"
        );
        // A cursor of another list is refused, not reinterpreted.
        let c = cursor::encode(&Cursor::SessionEvents(5));
        assert_eq!(
            code(events(&pairs(&[("cursor", &c)]), now)),
            "invalid_cursor"
        );
    }

    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(
            parse_time("1h", now).unwrap(),
            now - Duration::from_secs(3600)
        );
        assert_eq!(
            parse_time("7d", now).unwrap(),
            now - Duration::from_secs(7 * 86400)
        );
        assert_eq!(
            parse_time("1970-01-02T00:00:00Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(86400)
        );
    }

    #[test]
    fn accepts_every_filter() {
        let now = SystemTime::now();
        let page = events(
            &pairs(&[
                ("session_id", "6f1c1f0e-8d3a-4a8e-9d7e-0c1f2a3b4c5d"),
                ("event", "tool_use"),
                ("tool_name", "Read"),
                ("correlation_id", "tu_1"),
                ("since", "1h"),
                ("until", "2999-01-01T00:00:00Z"),
                ("contains", r#"{"input":{"path":"a"}}"#),
                ("limit", "5"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(page.limit, 5);
        assert_eq!(page.filter.event, Some("tool_use"));
        assert!(page.filter.contains.is_some());
        assert_eq!(
            session_events(&pairs(&[])).unwrap(),
            (0, None, DEFAULT_LIMIT)
        );
    }
}
