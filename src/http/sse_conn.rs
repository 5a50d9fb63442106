//! One SSE response written straight to its socket (see [`super::listener`] for why).
//!
//! The request still goes through the whole router — authentication, tracing, the deadline,
//! the stream handler with its `404`/`412`/`429` answers — with a [`Handoff`] in its extensions.
//! The handler leaves the subscription there instead of wrapping it in a body; this module then
//! writes the head, and every chunk the subscription yields as one HTTP/1.1 chunk in one
//! `writev` (size line, the frames as the ring holds them, CRLF), until the stream ends, the
//! client goes away (its end of the socket reads EOF) or stops reading for
//! `--sse-write-timeout` (the [`StallTimeout`] under every write). Responses without a
//! subscription (errors) are written whole. The connection is closed after the response, and
//! the head says so: a stream is the last thing a connection carries.
//!
//! What an idle stream holds here is its task, its subscription and the socket: no buffers.

use super::conn::Serving;
use super::conn::StallTimeout;
use crate::session::subscription::Subscription;
use axum::body::Body;
use axum::http::{header, response::Parts, Request, StatusCode, Version};
use std::io::{self, IoSlice, Write};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tower::ServiceExt;

type Io = StallTimeout<TcpStream>;

/// Largest error body written (they are small JSON documents).
const MAX_WHOLE_BODY: usize = 1 << 20;

/// Where the stream handler leaves its subscription for this writer.
#[derive(Clone, Default)]
pub struct Handoff(Arc<Mutex<Option<Subscription>>>);

impl Handoff {
    pub fn put(&self, subscription: Subscription) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(subscription);
    }

    fn take(&self) -> Option<Subscription> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// How the body is delimited: chunks for HTTP/1.1, the connection's end for HTTP/1.0.
#[derive(Clone, Copy)]
enum Framing {
    Chunked,
    Close,
    Length(usize),
}

enum Routed {
    Stream(Vec<u8>, Subscription),
    Whole(Vec<u8>),
}

/// Answers `request` (a stream request whose head was read from `io`) and closes.
pub async fn serve(mut io: Io, request: Request<Body>, serving: Serving) {
    let chunked = request.version() == Version::HTTP_11;
    // Boxed: the router's future is large and must not stay in this task while it streams.
    let routed = Box::pin(route(request, serving, chunked)).await;
    let written = match routed {
        Routed::Stream(head, subscription) => pump(&mut io, head, subscription, chunked).await,
        Routed::Whole(bytes) => io.write_all(&bytes).await,
    };
    if written.is_ok() {
        let _ = io.shutdown().await;
    }
}

async fn route(mut request: Request<Body>, serving: Serving, chunked: bool) -> Routed {
    let handoff = Handoff::default();
    request.extensions_mut().insert(handoff.clone());
    let Ok(response) = serving.router.oneshot(request).await;
    let (parts, body) = response.into_parts();
    match handoff.take() {
        Some(subscription) if parts.status == StatusCode::OK => {
            let framing = if chunked {
                Framing::Chunked
            } else {
                Framing::Close
            };
            Routed::Stream(head(&parts, framing), subscription)
        }
        _ => {
            let body = axum::body::to_bytes(body, MAX_WHOLE_BODY)
                .await
                .unwrap_or_default();
            let mut bytes = head(&parts, Framing::Length(body.len()));
            bytes.extend_from_slice(&body);
            Routed::Whole(bytes)
        }
    }
}

/// The status line and headers, with the framing, the date and `connection: close`.
fn head(parts: &Parts, framing: Framing) -> Vec<u8> {
    let mut h = Vec::with_capacity(256);
    h.extend_from_slice(b"HTTP/1.1 ");
    h.extend_from_slice(parts.status.as_str().as_bytes());
    h.push(b' ');
    h.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    h.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        let ours = [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONNECTION,
            header::DATE,
        ];
        if ours.contains(name) {
            continue;
        }
        h.extend_from_slice(name.as_str().as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"date: ");
    h.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    h.extend_from_slice(b"\r\n");
    match framing {
        Framing::Chunked => h.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Close => {}
        Framing::Length(n) => {
            h.extend_from_slice(b"content-length: ");
            h.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            h.extend_from_slice(b"\r\n");
        }
    }
    h.extend_from_slice(b"connection: close\r\n\r\n");
    h
}

/// Writes the head, then the subscription's chunks until one side ends.
async fn pump(
    io: &mut Io,
    head: Vec<u8>,
    mut subscription: Subscription,
    chunked: bool,
) -> io::Result<()> {
    io.write_all(&head).await?;
    drop(head);
    // Nothing is expected from the client: a read only tells that it went away (EOF or reset).
    let mut probe = [0u8; 64];
    loop {
        let chunk = tokio::select! {
            chunk = subscription.next_chunk() => chunk,
            read = io.read(&mut probe) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        let Some(chunk) = chunk else { break };
        if chunked {
            write_chunk(io, &chunk).await?;
        } else {
            io.write_all(&chunk).await?;
        }
    }
    if chunked {
        io.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

/// One HTTP/1.1 chunk in one `writev` (short writes continue where they stopped).
async fn write_chunk<W: AsyncWrite + Unpin>(io: &mut W, data: &[u8]) -> io::Result<()> {
    let mut size = [0u8; 20];
    let size_len = {
        let mut cursor = &mut size[..];
        write!(cursor, "{:x}\r\n", data.len())?;
        20 - cursor.len()
    };
    let mut slices = [
        IoSlice::new(&size[..size_len]),
        IoSlice::new(data),
        IoSlice::new(b"\r\n"),
    ];
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_chunk;

    #[tokio::test]
    async fn a_chunk_is_size_data_crlf_even_through_short_writes() {
        // A pipe of 7 bytes forces many short writes.
        let (mut w, mut r) = tokio::io::duplex(7);
        let data = vec![b'x'; 300];
        let writer = tokio::spawn(async move { write_chunk(&mut w, &data).await });
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut r, &mut out)
            .await
            .unwrap();
        writer.await.unwrap().unwrap();
        let mut want = b"12c\r\n".to_vec();
        want.extend(vec![b'x'; 300]);
        want.extend(b"\r\n");
        assert_eq!(out, want);
    }
}
