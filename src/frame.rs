//! SSE frames, encoded once.
//!
//! An event is encoded to its wire form (`id: <seq>\nevent: <name>\ndata: <json>\n\n`) exactly
//! once, when the session appends it. The same [`Bytes`] then serve the group-commit writer (the
//! `data` slice is what Postgres stores), the ring, and every subscriber (a refcount bump each),
//! so fan-out to N subscribers costs no encoding and no copy.

use bytes::{BufMut, Bytes, BytesMut};
use std::ops::Range;

/// One committed-or-pending event in wire form.
#[derive(Debug, Clone)]
pub struct Frame {
    pub seq: u64,
    pub event: &'static str,
    pub bytes: Bytes,
    data: Range<usize>,
}

impl Frame {
    /// Encodes an event. `data` must be one line of JSON (serde_json's compact output is).
    pub fn encode(seq: u64, event: &'static str, data: &str) -> Frame {
        let mut seq_buf = itoa::Buffer::new();
        let seq_str = seq_buf.format(seq);
        // Exactly the frame's size: one more byte would make the last `put_slice` reallocate,
        // which copies the frame and doubles its buffer (measured: 2x the ring's memory).
        let fixed = b"id: \nevent: \ndata: \n\n".len();
        let mut buf = BytesMut::with_capacity(fixed + seq_str.len() + event.len() + data.len());
        buf.put_slice(b"id: ");
        buf.put_slice(seq_str.as_bytes());
        buf.put_slice(b"\nevent: ");
        buf.put_slice(event.as_bytes());
        buf.put_slice(b"\ndata: ");
        let start = buf.len();
        buf.put_slice(data.as_bytes());
        let end = buf.len();
        buf.put_slice(b"\n\n");
        debug_assert_eq!(buf.len(), buf.capacity());
        Frame {
            seq,
            event,
            bytes: buf.freeze(),
            data: start..end,
        }
    }

    /// The event's JSON payload, as stored in `events.data`.
    pub fn data(&self) -> &str {
        // The range was cut from a `&str` in `encode`, so it is valid UTF-8 on char bounds.
        std::str::from_utf8(&self.bytes[self.data.clone()]).unwrap_or_default()
    }
}

/// The comment frame sent while a stream is idle, so proxies keep the connection open.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// Event names, as `&'static str` so frames need no allocation for them.
pub mod names {
    pub const SESSION_READY: &str = "session_ready";
    pub const MESSAGE_DELTA: &str = "message_delta";
    pub const MESSAGE_COMPLETE: &str = "message_complete";
    pub const TOOL_USE: &str = "tool_use";
    pub const TOOL_RESULT: &str = "tool_result";
    pub const PERMISSION_REQUEST: &str = "permission_request";
    pub const ASK_USER_QUESTION: &str = "ask_user_question";
    pub const HOOK_DECISION_REQUEST: &str = "hook_decision_request";
    pub const RESULT: &str = "result";
    pub const ERROR: &str = "error";
    pub const MCP_STATUS_CHANGE: &str = "mcp_status_change";
    pub const DONE: &str = "done";

    pub const ALL: &[&str] = &[
        SESSION_READY,
        MESSAGE_DELTA,
        MESSAGE_COMPLETE,
        TOOL_USE,
        TOOL_RESULT,
        PERMISSION_REQUEST,
        ASK_USER_QUESTION,
        HOOK_DECISION_REQUEST,
        RESULT,
        ERROR,
        MCP_STATUS_CHANGE,
        DONE,
    ];

    /// Maps a stored name back to its static string (names in the table came from `ALL`).
    pub fn intern(name: &str) -> &'static str {
        ALL.iter()
            .copied()
            .find(|n| *n == name)
            .unwrap_or("unknown")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_wire_form_and_keeps_the_data_slice() {
        let f = Frame::encode(42, names::RESULT, r#"{"subtype":"success"}"#);
        assert_eq!(
            &f.bytes[..],
            b"id: 42\nevent: result\ndata: {\"subtype\":\"success\"}\n\n"
        );
        assert_eq!(f.data(), r#"{"subtype":"success"}"#);
    }
}
