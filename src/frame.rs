//! SSE frames, encoded once.
//!
//! An event is encoded to its wire form (`id: <seq>\nevent: <name>\ndata: <json>\n\n`) exactly
//! once, when the session appends it. The same [`Bytes`] then serve the group-commit writer (the
//! `data` slice is what Postgres stores), the ring, and every subscriber (a refcount bump each),
//! so fan-out to N subscribers costs no encoding and no copy.
//!
//! A live session encodes through an [`Encoder`], which packs consecutive frames into shared
//! blocks instead of one allocation per frame. Per ~350-byte frame that saves the allocator's
//! header and rounding and the 24-byte shared-buffer record that `Bytes` allocates on a frame's
//! first clone (together ~12% of the frame), and two `malloc`s. A block is freed when its last
//! frame leaves the ring (and every subscriber); the ring evicts oldest first, so at most the
//! oldest and the newest block of a session are partly dead or unfilled. Blocks start small and
//! double, so a quiet session holds about as much as its frames.

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

/// The constant bytes of a frame: `id: `, `\nevent: `, `\ndata: ` and the closing `\n\n`.
const FIXED: usize = b"id: \nevent: \ndata: \n\n".len();

impl Frame {
    /// Encodes an event in a buffer of its own. `data` must be one line of JSON (serde_json's
    /// compact output is).
    pub fn encode(seq: u64, event: &'static str, data: &str) -> Frame {
        let mut seq_buf = itoa::Buffer::new();
        let seq_str = seq_buf.format(seq);
        // Exactly the frame's size: one more byte would make the last `put_slice` reallocate,
        // which copies the frame and doubles its buffer (measured: 2x the ring's memory).
        let mut buf = BytesMut::with_capacity(FIXED + seq_str.len() + event.len() + data.len());
        let frame = Frame::write(&mut buf, seq_str, seq, event, data);
        debug_assert_eq!(buf.capacity(), 0);
        frame
    }

    /// Appends the frame to `buf` and splits it off.
    fn write(
        buf: &mut BytesMut,
        seq_str: &str,
        seq: u64,
        event: &'static str,
        data: &str,
    ) -> Frame {
        buf.put_slice(b"id: ");
        buf.put_slice(seq_str.as_bytes());
        buf.put_slice(b"\nevent: ");
        buf.put_slice(event.as_bytes());
        buf.put_slice(b"\ndata: ");
        let start = buf.len();
        buf.put_slice(data.as_bytes());
        let end = buf.len();
        buf.put_slice(b"\n\n");
        Frame {
            seq,
            event,
            bytes: buf.split().freeze(),
            data: start..end,
        }
    }

    /// A frame from its wire bytes (the ring keeps only bytes): what the writer re-appends
    /// when a failover lost events it had published (`store::writer`, repair).
    pub fn from_wire(seq: u64, bytes: Bytes) -> Option<Frame> {
        let (event, start, end) = {
            let text = std::str::from_utf8(&bytes).ok()?;
            let after_id = text.strip_prefix("id: ")?.split_once('\n')?.1;
            let event = after_id.strip_prefix("event: ")?.split_once('\n')?.0;
            let start = text.find("\ndata: ")? + "\ndata: ".len();
            let end = text.strip_suffix("\n\n")?.len();
            (names::intern(event), start, end)
        };
        (start <= end).then(|| Frame {
            seq,
            event,
            data: start..end,
            bytes,
        })
    }

    /// The event's JSON payload, as stored in `events.data`.
    pub fn data(&self) -> &str {
        // The range was cut from a `&str` in `encode`, so it is valid UTF-8 on char bounds.
        std::str::from_utf8(&self.bytes[self.data.clone()]).unwrap_or_default()
    }
}

/// Encodes a session's frames into shared blocks (see the module docs).
#[derive(Debug, Default)]
pub struct Encoder {
    block: BytesMut,
    next_block: usize,
}

impl Encoder {
    const FIRST_BLOCK: usize = 1024;
    const MAX_BLOCK: usize = 8 * 1024;

    pub fn encode(&mut self, seq: u64, event: &'static str, data: &str) -> Frame {
        let mut seq_buf = itoa::Buffer::new();
        let seq_str = seq_buf.format(seq);
        let len = FIXED + seq_str.len() + event.len() + data.len();
        if self.block.capacity() < len {
            let size = self.next_block.max(Self::FIRST_BLOCK);
            self.next_block = (size * 2).min(Self::MAX_BLOCK);
            // The rest of the old block stays with its frames; a frame bigger than a block
            // gets a buffer of its own.
            self.block = BytesMut::with_capacity(size.max(len));
        }
        Frame::write(&mut self.block, seq_str, seq, event, data)
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
    /// (ours) A permission / hook request got its first answer: `{correlation_id, behavior}`.
    pub const PERMISSION_RESOLVED: &str = "permission_resolved";
    /// (ours) A question got its first answer: `{correlation_id}`.
    pub const QUESTION_RESOLVED: &str = "question_resolved";

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
        PERMISSION_RESOLVED,
        QUESTION_RESOLVED,
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
    fn a_frame_comes_back_from_its_wire_bytes() {
        let frame = Frame::encode(42, names::TOOL_RESULT, r#"{"output":"a\nb"}"#);
        let back = Frame::from_wire(42, frame.bytes.clone()).unwrap();
        assert_eq!(back.event, names::TOOL_RESULT);
        assert_eq!(back.data(), frame.data());
        assert!(Frame::from_wire(1, Bytes::from_static(b"garbage")).is_none());
    }

    #[test]
    fn encodes_the_wire_form_and_keeps_the_data_slice() {
        let f = Frame::encode(42, names::RESULT, r#"{"subtype":"success"}"#);
        assert_eq!(
            &f.bytes[..],
            b"id: 42\nevent: result\ndata: {\"subtype\":\"success\"}\n\n"
        );
        assert_eq!(f.data(), r#"{"subtype":"success"}"#);
    }

    #[test]
    fn the_encoder_packs_frames_into_shared_blocks_with_the_same_bytes() {
        let mut enc = Encoder::default();
        let frames: Vec<Frame> = (1..=100)
            .map(|seq| enc.encode(seq, names::RESULT, r#"{"subtype":"success"}"#))
            .collect();
        for f in &frames {
            let alone = Frame::encode(f.seq, names::RESULT, r#"{"subtype":"success"}"#);
            assert_eq!(f.bytes, alone.bytes);
            assert_eq!(f.data(), alone.data());
        }
        // Consecutive frames of one block are adjacent in memory.
        let (a, b) = (&frames[1].bytes, &frames[2].bytes);
        assert_eq!(a.as_ptr().wrapping_add(a.len()), b.as_ptr());
        let big = "x".repeat(40_000);
        assert_eq!(enc.encode(101, names::RESULT, &big).data(), big);
    }
}
