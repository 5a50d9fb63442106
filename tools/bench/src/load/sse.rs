//! Incremental HTTP chunked decoding and SSE frame parsing over raw bytes.
//!
//! The load tool must not be the bottleneck, so a subscriber never builds strings or parses
//! JSON: it de-chunks the body into one buffer and cuts frames at `\n\n` (the server's `data`
//! is one line of JSON, so a blank line only ever ends a frame), reading just the `id` and the
//! event name. Both steps are pure functions of the bytes so they can be tested without I/O.

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};

/// Body framing of an HTTP/1.1 response.
#[derive(Debug)]
pub enum Framing {
    Chunked(Chunked),
    Length(u64),
    /// Until the server closes the connection.
    Eof,
}

/// State of a `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Done,
}

impl Chunked {
    /// Moves whole or partial chunk payloads from `raw` into `out`. Returns `true` once the
    /// terminating zero-size chunk has been read.
    pub fn decode(&mut self, raw: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<bool> {
        loop {
            match self.state {
                ChunkState::Size => {
                    let Some(nl) = memchr::memchr(b'\n', raw) else {
                        return Ok(false);
                    };
                    let line = std::str::from_utf8(&raw[..nl]).context("chunk size line")?;
                    let hex = line.trim_end_matches('\r').split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(hex.trim(), 16)
                        .with_context(|| format!("bad chunk size {hex:?}"))?;
                    raw.advance(nl + 1);
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    if raw.is_empty() {
                        return Ok(false);
                    }
                    let take = (left as usize).min(raw.len());
                    out.extend_from_slice(&raw[..take]);
                    raw.advance(take);
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    if raw.len() < 2 {
                        return Ok(false);
                    }
                    if &raw[..2] != b"\r\n" {
                        bail!("chunk not followed by CRLF");
                    }
                    raw.advance(2);
                    self.state = ChunkState::Size;
                }
                // Trailers after the last chunk are ignored.
                ChunkState::Done => return Ok(true),
            }
        }
    }
}

/// The events the load tool tells apart; every other name is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ready,
    Result,
    Error,
    Done,
    Other,
}

impl Kind {
    fn of(name: &[u8]) -> Kind {
        match name {
            b"session_ready" => Kind::Ready,
            b"result" => Kind::Result,
            b"error" => Kind::Error,
            b"done" => Kind::Done,
            _ => Kind::Other,
        }
    }
}

/// One SSE frame, as far as the load tool cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Event {
        id: u64,
        kind: Kind,
        len: usize,
    },
    /// A comment (`: keepalive`) or a frame without id.
    Comment,
}

/// Cuts the first complete frame off `buf`: the frame and its length in bytes, or `None` when
/// `buf` holds no complete frame yet.
pub fn parse_frame(buf: &[u8]) -> anyhow::Result<Option<(Parsed, usize)>> {
    let Some(end) = memchr::memmem::find(buf, b"\n\n") else {
        return Ok(None);
    };
    let len = end + 2;
    let (mut id, mut kind) = (None, Kind::Other);
    for line in buf[..end].split(|b| *b == b'\n') {
        if let Some(v) = line.strip_prefix(b"id: ") {
            let text = std::str::from_utf8(v).context("id line")?;
            id = Some(text.parse::<u64>().context("id is not a number")?);
        } else if let Some(v) = line.strip_prefix(b"event: ") {
            kind = Kind::of(v);
        }
    }
    Ok(Some(match id {
        Some(id) => (Parsed::Event { id, kind, len }, len),
        None => (Parsed::Comment, len),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_decode_across_arbitrary_splits() {
        let wire = b"5\r\nhello\r\nb;ext=1\r\n world, sse\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            let (mut dec, mut raw, mut out) =
                (Chunked::default(), BytesMut::new(), BytesMut::new());
            raw.extend_from_slice(&wire[..split]);
            let mut done = dec.decode(&mut raw, &mut out).unwrap();
            raw.extend_from_slice(&wire[split..]);
            done |= dec.decode(&mut raw, &mut out).unwrap();
            assert!(done, "split at {split}");
            assert_eq!(&out[..], b"hello world, sse");
        }
    }

    #[test]
    fn frames_parse_ids_kinds_and_comments() {
        let buf = b": keepalive\n\nid: 7\nevent: result\ndata: {\"a\":1}\n\nid: 8\nevent: mess";
        let (first, n) = parse_frame(buf).unwrap().unwrap();
        assert_eq!(first, Parsed::Comment);
        let (second, m) = parse_frame(&buf[n..]).unwrap().unwrap();
        assert_eq!(
            second,
            Parsed::Event {
                id: 7,
                kind: Kind::Result,
                len: m
            }
        );
        assert!(parse_frame(&buf[n + m..]).unwrap().is_none());
    }
}
