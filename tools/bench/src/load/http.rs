//! A minimal HTTP/1.1 client for the server's four endpoints, on raw tokio sockets.
//!
//! Why not a general client: the load tool opens thousands of SSE streams and parses millions
//! of frames, and what it measures must be the server. Each stream is one `TcpStream` and two
//! buffers; frames are parsed in place ([`super::sse`]). Control requests (create, input,
//! delete) use a fresh connection each with `Connection: close`; they are few.

use super::sse::{parse_frame, Chunked, Framing, Parsed};
use anyhow::{anyhow, bail, Context};
use bytes::{Buf, Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Socket read size; big enough that a burst of frames is one syscall.
const READ_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    host: String,
    token: Option<String>,
}

impl Client {
    /// `url` is `http://host:port` (no TLS, no path prefix: the load tool talks to loopback).
    pub async fn new(url: &str, token: Option<String>) -> anyhow::Result<Client> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("only http:// URLs are supported, got {url:?}"))?
            .trim_end_matches('/')
            .to_owned();
        let addr = tokio::net::lookup_host(&host)
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .ok_or_else(|| anyhow!("{host} resolves to nothing"))?;
        Ok(Client { addr, host, token })
    }

    fn head(&self, method: &str, path: &str, extra: &str) -> String {
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}{extra}",
            self.host
        )
    }

    /// One request on its own connection; returns the status and the body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut sock = TcpStream::connect(self.addr).await?;
        sock.set_nodelay(true)?;
        let body = body.unwrap_or("");
        let mut req = self.head(
            method,
            path,
            &format!(
                "Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
        );
        req.push_str(body);
        sock.write_all(req.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(4096);
        let (status, framing) = read_head(&mut sock, &mut raw).await?;
        let mut out = BytesMut::new();
        read_body(&mut sock, &mut raw, framing, &mut out).await?;
        Ok((status, out.freeze()))
    }

    /// `POST /sessions` for a replay fixture; returns the session id. A `503` (the host sheds
    /// new work while its writes queue up) is retried after a short pause, as clients should.
    pub async fn create(&self, fixture: &str) -> anyhow::Result<String> {
        let request = serde_json::json!({ "fixture": fixture }).to_string();
        let mut answer = self.request("POST", "/sessions", Some(&request)).await?;
        for _ in 0..600 {
            if answer.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            answer = self.request("POST", "/sessions", Some(&request)).await?;
        }
        let (status, body) = answer;
        if status != 200 && status != 201 {
            bail!("create: {status} {}", String::from_utf8_lossy(&body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        v["session_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("create: no session_id in {v}"))
    }

    /// Sends a user message; a full queue (`503`) is retried after a short pause.
    pub async fn say(&self, id: &str, text: &str) -> anyhow::Result<()> {
        let body = serde_json::json!({ "type": "user_message", "content": text }).to_string();
        let path = format!("/sessions/{id}/input");
        for _ in 0..600 {
            match self.request("POST", &path, Some(&body)).await? {
                (204, _) => return Ok(()),
                (503, _) => tokio::time::sleep(Duration::from_millis(50)).await,
                (s, b) => bail!("input: {s} {}", String::from_utf8_lossy(&b)),
            }
        }
        bail!("input: queue stayed full for 30 s")
    }

    pub async fn delete(&self, id: &str) -> anyhow::Result<()> {
        match self
            .request("DELETE", &format!("/sessions/{id}"), None)
            .await?
        {
            (204 | 404, _) => Ok(()),
            (s, b) => bail!("delete: {s} {}", String::from_utf8_lossy(&b)),
        }
    }

    /// `GET /readyz`.
    pub async fn ready(&self) -> bool {
        matches!(self.request("GET", "/readyz", None).await, Ok((200, _)))
    }

    /// Opens `GET /sessions/{id}/stream` after `after` (the `Last-Event-ID`). Returns once the
    /// response head is in: the server has registered the subscriber.
    pub async fn stream(&self, id: &str, after: u64) -> anyhow::Result<SseConn> {
        let mut sock = TcpStream::connect(self.addr).await?;
        sock.set_nodelay(true)?;
        let req = self.head(
            "GET",
            &format!("/sessions/{id}/stream"),
            &format!("Accept: text/event-stream\r\nLast-Event-ID: {after}\r\n\r\n"),
        );
        sock.write_all(req.as_bytes()).await?;
        let mut raw = BytesMut::with_capacity(READ_BYTES);
        let (status, framing) = read_head(&mut sock, &mut raw).await?;
        if status != 200 {
            let mut out = BytesMut::new();
            let _ = read_body(&mut sock, &mut raw, framing, &mut out).await;
            bail!("stream: {status} {}", String::from_utf8_lossy(&out));
        }
        Ok(SseConn {
            sock,
            raw,
            framing,
            body: BytesMut::with_capacity(READ_BYTES),
            ended: false,
        })
    }
}

/// Reads the status line and headers; leaves any body bytes in `raw`.
async fn read_head(sock: &mut TcpStream, raw: &mut BytesMut) -> anyhow::Result<(u16, Framing)> {
    loop {
        if let Some(end) = memchr::memmem::find(raw, b"\r\n\r\n") {
            let head = std::str::from_utf8(&raw[..end]).context("response head")?;
            let mut lines = head.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split(' ').nth(1))
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| anyhow!("bad status line in {head:?}"))?;
            let mut framing = Framing::Eof;
            for line in lines {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let (name, value) = (name.trim(), value.trim());
                if name.eq_ignore_ascii_case("transfer-encoding")
                    && value.eq_ignore_ascii_case("chunked")
                {
                    framing = Framing::Chunked(Chunked::default());
                } else if name.eq_ignore_ascii_case("content-length") {
                    framing = Framing::Length(value.parse().context("content-length")?);
                }
            }
            raw.advance(end + 4);
            return Ok((status, framing));
        }
        if sock.read_buf(raw).await? == 0 {
            bail!("connection closed before the response head");
        }
    }
}

/// Moves decoded body bytes from `raw` to `out`; `true` when the body is complete.
fn decode(framing: &mut Framing, raw: &mut BytesMut, out: &mut BytesMut) -> anyhow::Result<bool> {
    match framing {
        Framing::Chunked(c) => c.decode(raw, out),
        Framing::Length(left) => {
            let take = (*left as usize).min(raw.len());
            out.extend_from_slice(&raw[..take]);
            raw.advance(take);
            *left -= take as u64;
            Ok(*left == 0)
        }
        Framing::Eof => {
            out.extend_from_slice(raw);
            raw.clear();
            Ok(false)
        }
    }
}

async fn read_body(
    sock: &mut TcpStream,
    raw: &mut BytesMut,
    mut framing: Framing,
    out: &mut BytesMut,
) -> anyhow::Result<()> {
    loop {
        if decode(&mut framing, raw, out)? {
            return Ok(());
        }
        if sock.read_buf(raw).await? == 0 {
            return match framing {
                Framing::Eof => Ok(()),
                _ => Err(anyhow!("connection closed mid-body")),
            };
        }
    }
}

/// One open SSE stream.
pub struct SseConn {
    sock: TcpStream,
    raw: BytesMut,
    framing: Framing,
    body: BytesMut,
    ended: bool,
}

impl SseConn {
    /// The next frame, or `None` when the server ended the stream.
    pub async fn next(&mut self) -> anyhow::Result<Option<Parsed>> {
        loop {
            if let Some((frame, len)) = parse_frame(&self.body)? {
                self.body.advance(len);
                return Ok(Some(frame));
            }
            if self.ended {
                return Ok(None);
            }
            let before = self.body.len();
            if decode(&mut self.framing, &mut self.raw, &mut self.body)? {
                self.ended = true;
                continue;
            }
            if self.body.len() > before {
                continue;
            }
            self.raw.reserve(READ_BYTES);
            if self.sock.read_buf(&mut self.raw).await? == 0 {
                self.ended = true;
            }
        }
    }
}
