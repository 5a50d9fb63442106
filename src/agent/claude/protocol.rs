//! stream-json framing and the frames we write (docs/claude-cli.md §2).
//!
//! Frames stay `serde_json::Value`s: the CLI adds fields with every release, so we read only the
//! fields we use and never fail on the rest. Lines are read with a hard length cap (a tool
//! result can be megabytes, but an unbounded line would be unbounded memory); a longer line is
//! skipped without being buffered.

use serde_json::{json, Value};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line of the CLI's stdout.
#[derive(Debug, PartialEq)]
pub enum Line {
    /// A JSON object.
    Frame(Value),
    /// Anything else (diagnostics such as `[SandboxDebug] …`, or a broken object): skipped.
    Garbage(String),
    /// A line longer than the cap, skipped; its length.
    TooLong(usize),
}

/// Reads the next line, or `None` at EOF. `buf` is reused between calls.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<Line>> {
    buf.clear();
    let mut skipped = 0usize;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            if buf.is_empty() && skipped == 0 {
                return Ok(None);
            }
            break;
        }
        let (part, done) = match memchr(chunk) {
            Some(i) => (&chunk[..i], i + 1),
            None => (chunk, chunk.len()),
        };
        let found = done > part.len();
        if skipped > 0 || buf.len() + part.len() > max {
            skipped += buf.len() + part.len();
            buf.clear();
        } else {
            buf.extend_from_slice(part);
        }
        reader.consume(done);
        if found {
            break;
        }
    }
    if skipped > 0 {
        return Ok(Some(Line::TooLong(skipped)));
    }
    Ok(Some(parse(buf)))
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

fn parse(line: &[u8]) -> Line {
    let trimmed = line.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        if let Ok(value @ Value::Object(_)) = serde_json::from_slice(trimmed) {
            return Line::Frame(value);
        }
    }
    let text = String::from_utf8_lossy(trimmed);
    Line::Garbage(text.chars().take(200).collect())
}

/// The frame's `type`, `""` when absent.
pub fn kind(frame: &Value) -> &str {
    str_at(frame, "type").unwrap_or("")
}

pub fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// A user message starting a turn (docs/claude-cli.md §6.1). The uuid makes the CLI tag the
/// turn's frames.
pub fn user_message(content: &Value) -> Value {
    json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
        "session_id": "",
        "uuid": uuid::Uuid::new_v4().to_string(),
    })
}

/// A host → CLI control request (docs/claude-cli.md §4).
pub fn control_request(request_id: &str, request: Value) -> Value {
    json!({"type": "control_request", "request_id": request_id, "request": request})
}

/// A successful answer to one of the CLI's control requests (docs/claude-cli.md §5).
pub fn control_success(request_id: &str, response: Value) -> Value {
    json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    })
}

/// An error answer to one of the CLI's control requests (docs/claude-cli.md §5).
pub fn control_error(request_id: &str, error: &str) -> Value {
    json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": error},
    })
}

/// One line of stdin: serializing a `Value` escapes every newline, so it is exactly one line.
pub fn line(frame: &Value) -> String {
    let mut line = frame.to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn lines(input: &[u8], max: usize, capacity: usize) -> Vec<Line> {
        let mut reader = BufReader::with_capacity(capacity, input);
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        while let Some(line) = read_line(&mut reader, &mut buf, max).await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn frames_garbage_and_long_lines_across_small_reads() {
        let long = format!("{{\"type\":\"x\",\"pad\":\"{}\"}}", "a".repeat(100));
        let input = format!(
            "{{\"type\":\"a\"}}\r\n[SandboxDebug] hello\n\n{long}\n{{broken\n[1,2]\n{{\"type\":\"b\"}}"
        );
        for capacity in [1, 7, 64, 4096] {
            let got = lines(input.as_bytes(), 64, capacity).await;
            assert_eq!(
                got,
                vec![
                    Line::Frame(json!({"type":"a"})),
                    Line::Garbage("[SandboxDebug] hello".into()),
                    Line::Garbage(String::new()),
                    Line::TooLong(long.len()),
                    Line::Garbage("{broken".into()),
                    Line::Garbage("[1,2]".into()),
                    Line::Frame(json!({"type":"b"})),
                ],
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn written_frames_are_one_line() {
        let frame = user_message(&json!("two\nlines"));
        let line = line(&frame);
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with('\n'));
        assert_eq!(frame["message"]["content"], "two\nlines");
    }
}
