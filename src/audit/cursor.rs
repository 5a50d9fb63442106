//! Opaque page cursors: the key of the last row of a page, tagged with its list, as URL-safe
//! base64. Opaque so clients cannot build one (and so the key may change shape later); tagged
//! so a cursor of one list is refused by another instead of being misread.

use super::ParamError;
use crate::codes::ErrorCode;
use crate::store::audit::{SessionKey, TimeKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    Events(TimeKey),
    Inputs(TimeKey),
    Sessions(SessionKey),
    SessionEvents(i64),
    Transcript(i64),
}

pub fn encode(cursor: &Cursor) -> String {
    let text = match cursor {
        Cursor::Events(k) => format!("e.{}.{}.{}", micros(k.at), k.session_id, k.n),
        Cursor::Inputs(k) => format!("i.{}.{}.{}", micros(k.at), k.session_id, k.n),
        Cursor::Sessions(k) => format!("s.{}.{}", micros(k.created_at), k.id),
        Cursor::SessionEvents(seq) => format!("q.{seq}"),
        Cursor::Transcript(seq) => format!("t.{seq}"),
    };
    URL_SAFE_NO_PAD.encode(text)
}

pub fn decode(raw: &str) -> Result<Cursor, ParamError> {
    parse(raw).ok_or_else(|| ParamError {
        code: ErrorCode::InvalidCursor,
        message: format!("cursor {raw:?} is not a cursor this server issued"),
    })
}

pub fn wrong_kind() -> ParamError {
    ParamError {
        code: ErrorCode::InvalidCursor,
        message: "this cursor belongs to another list".into(),
    }
}

fn parse(raw: &str) -> Option<Cursor> {
    let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let parts: Vec<&str> = text.split('.').collect();
    let time_key = |p: &[&str]| -> Option<TimeKey> {
        Some(TimeKey {
            at: from_micros(p[1].parse().ok()?)?,
            session_id: Uuid::parse_str(p[2]).ok()?,
            n: p[3].parse().ok()?,
        })
    };
    match parts.as_slice() {
        ["e", _, _, _] => Some(Cursor::Events(time_key(&parts)?)),
        ["i", _, _, _] => Some(Cursor::Inputs(time_key(&parts)?)),
        ["s", at, id] => Some(Cursor::Sessions(SessionKey {
            created_at: from_micros(at.parse().ok()?)?,
            id: Uuid::parse_str(id).ok()?,
        })),
        ["q", seq] => Some(Cursor::SessionEvents(seq.parse().ok().filter(|s| *s >= 0)?)),
        ["t", seq] => Some(Cursor::Transcript(seq.parse().ok().filter(|s| *s >= 0)?)),
        _ => None,
    }
}

/// Postgres keeps microseconds, so the key round-trips exactly.
fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

fn from_micros(us: u64) -> Option<SystemTime> {
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let key = TimeKey {
            at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_763_700_000_123_456),
            session_id: Uuid::new_v4(),
            n: 42,
        };
        for c in [
            Cursor::Events(key),
            Cursor::Inputs(key),
            Cursor::Sessions(SessionKey {
                created_at: key.at,
                id: key.session_id,
            }),
            Cursor::SessionEvents(7),
        ] {
            assert_eq!(decode(&encode(&c)).unwrap(), c);
        }
        assert!(decode("").is_err());
        assert!(decode("e.1.2.3").is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("q.-1")).is_err());
        assert!(decode(&URL_SAFE_NO_PAD.encode("e.1.not-a-uuid.3")).is_err());
    }
}
