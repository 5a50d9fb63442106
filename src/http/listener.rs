//! The listener of the main port: stream requests on a fresh connection are answered by
//! [`super::sse_conn`], every other connection by hyper ([`super::hyper_conn`]).
//!
//! Why not hyper for everything: hyper keeps two 8 KiB buffers per HTTP/1 connection for its
//! whole life (a read buffer and a header write buffer, `INIT_BUFFER_SIZE`, not configurable),
//! which alone is twice the memory an idle SSE stream may cost (BENCHMARKS.md), and it moves
//! every frame through a boxed body stream, its own queue and a chunk encoder before the
//! `writev`. A stream is the simplest HTTP response there is — one GET, then one chunked body
//! until the end — so it is written straight to the socket instead.
//!
//! Each accepted connection takes a slot ([`super::limits::Slots`]; past the cap and its
//! health reserve it is closed at once) and is sniffed in its own task: its first request head
//! is read whole (at most [`MAX_HEAD`] bytes) within `--http-header-timeout` of the accept — a
//! deadline, so a client trickling bytes cannot push it back; a connection without a complete
//! head by then is closed — and parsed with `httparse`. A complete `GET /sessions/{id}/stream`
//! with no body and nothing pipelined behind it is served by `sse_conn`; anything else — other
//! routes, HTTP/2, bad heads — is handed to hyper with the bytes already read put back in front
//! ([`Prefixed`]), so hyper sees the connection exactly as the client sent it and answers
//! errors the way it always did. A stream requested on a keep-alive connection that started
//! with another request is served by hyper, with the same bytes on the wire. A connection on a
//! health-reserve slot is served only if its first request is `GET /healthz` or `/readyz`
//! (and closed after it); any other is answered `503 too_many_connections`.

use super::conn::{Prefixed, Serving, StallTimeout};
use super::{hyper_conn, sse_conn};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The longest request head that is sniffed; longer ones go to hyper, which has its own limit.
const MAX_HEAD: usize = 16 * 1024;
/// Most headers sniffed; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

type Io = StallTimeout<TcpStream>;

/// Accepts on `listener` until `serving.stop` fires; each connection runs in `serving.tasks`.
pub async fn accept(mut listener: TcpListener, serving: Serving) {
    loop {
        let (tcp, _addr) = tokio::select! {
            // The plain listener's accept retries transient errors (e.g. out of descriptors).
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            _ = serving.stop.cancelled() => return,
        };
        let Some(slot) = serving.slots.take() else {
            // Past the cap and the health reserve: closed before it costs anything more.
            drop(tcp);
            continue;
        };
        // SSE frames are small writes: with Nagle's algorithm a frame that follows one not yet
        // acknowledged waits for the ACK, up to the 40 ms delayed-ACK timer (BENCHMARKS.md).
        let _ = tcp.set_nodelay(true);
        let io = StallTimeout::new(tcp, serving.sse_write_timeout, serving.metrics.clone());
        let serving2 = serving.clone();
        serving.tasks.spawn(async move {
            // Boxed so that the sniffer's state is freed before a stream settles in.
            let sniffed = Box::pin(sniff(io, &serving2.stop, serving2.header_timeout)).await;
            match sniffed {
                None => {}
                Some(Sniffed::Other(io, Health::Yes)) if slot.reserved => {
                    hyper_conn::serve(io, serving2, false).await
                }
                Some(Sniffed::Other(io, _)) if slot.reserved => refuse(io).await,
                Some(Sniffed::Stream(io, _)) if slot.reserved => refuse(io).await,
                Some(Sniffed::Stream(io, request)) => sse_conn::serve(io, *request, serving2).await,
                Some(Sniffed::Other(io, _)) => hyper_conn::serve(io, serving2, true).await,
            }
            drop(slot);
        });
    }
}

/// Whether a first request is a health check (served even on a reserved slot).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Health {
    Yes,
    No,
}

enum Sniffed {
    /// A stream request, its head consumed from the connection.
    Stream(Io, Box<Request<Body>>),
    /// Anything else, with what was read put back.
    Other(Prefixed<Io>, Health),
}

/// Reads the first request head; `None` if the connection closed, shutdown began, or no
/// complete head came within `timeout` (nothing was requested, so nothing is owed).
async fn sniff(mut io: Io, stop: &CancellationToken, timeout: Duration) -> Option<Sniffed> {
    let mut buf = BytesMut::with_capacity(1024);
    let decided = tokio::time::timeout(timeout, async {
        loop {
            if let Some(decision) = classify(&buf) {
                return Some(decision);
            }
            tokio::select! {
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                },
                _ = stop.cancelled() => return None,
            }
        }
    })
    .await;
    match decided {
        Ok(Some(Classified::Stream(request, head_len))) if head_len == buf.len() => {
            Some(Sniffed::Stream(io, request))
        }
        // Something pipelined behind a stream's head: hyper serves both, in order.
        Ok(Some(Classified::Stream(..))) => {
            Some(Sniffed::Other(Prefixed::new(buf.freeze(), io), Health::No))
        }
        Ok(Some(Classified::Other(health))) => {
            Some(Sniffed::Other(Prefixed::new(buf.freeze(), io), health))
        }
        Ok(None) => None,
        Err(_) => {
            tracing::debug!(
                bytes = buf.len(),
                "no request head within the header timeout"
            );
            None
        }
    }
}

/// The answer on a reserved slot to anything but a health check; then the connection closes.
async fn refuse<W: AsyncWrite + Unpin>(mut io: W) {
    let body = serde_json::json!({
        "code": crate::codes::ErrorCode::TooManyConnections.as_str(),
        "message": "this host has too many open connections; retry",
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A client that takes none of it is cut off by the write timeout under `io`.
    if io.write_all(response.as_bytes()).await.is_ok() {
        let _ = io.shutdown().await;
    }
}

enum Classified {
    Stream(Box<Request<Body>>, usize),
    Other(Health),
}

/// Decides from the bytes read so far, or `None` to read more. Every head is read whole (not
/// decided from its request line), so the header timeout bounds it, whatever it asks for.
fn classify(buf: &[u8]) -> Option<Classified> {
    if buf.is_empty() {
        return None;
    }
    if buf.len() >= MAX_HEAD {
        return Some(Classified::Other(Health::No));
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Classified::Other(Health::No)),
    };
    if let Some(request) = build(&req) {
        return Some(Classified::Stream(Box::new(request), head_len));
    }
    let health = req.method == Some("GET") && req.path.is_some_and(is_health_path);
    Some(Classified::Other(if health {
        Health::Yes
    } else {
        Health::No
    }))
}

/// The request for the router, if the head is a body-less `GET` of a stream.
fn build(req: &httparse::Request<'_, '_>) -> Option<Request<Body>> {
    let (method, path) = (req.method?, req.path?);
    if method != "GET" || !is_stream_path(path) {
        return None;
    }
    let version = match req.version? {
        0 => Version::HTTP_10,
        _ => Version::HTTP_11,
    };
    let mut request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .version(version)
        .body(Body::empty())
        .ok()?;
    let headers = request.headers_mut();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        let body_follows = (name == axum::http::header::CONTENT_LENGTH && h.value != b"0")
            || name == axum::http::header::TRANSFER_ENCODING;
        if body_follows {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    Some(request)
}

/// `/healthz` or `/readyz`, with or without a query string.
fn is_health_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path == "/healthz" || path == "/readyz"
}

/// `/sessions/{id}/stream`, with or without a query string.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path.strip_prefix("/sessions/")
        .and_then(|rest| rest.strip_suffix("/stream"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

#[cfg(test)]
mod tests;
