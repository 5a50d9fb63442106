//! The listener of the main port: stream requests on a fresh connection are answered by
//! [`super::sse_conn`], every other connection goes to hyper through `axum::serve`.
//!
//! Why not hyper for everything: hyper keeps two 8 KiB buffers per HTTP/1 connection for its
//! whole life (a read buffer and a header write buffer, `INIT_BUFFER_SIZE`, not configurable),
//! which alone is twice the memory an idle SSE stream may cost (BENCHMARKS.md), and it moves
//! every frame through a boxed body stream, its own queue and a chunk encoder before the
//! `writev`. A stream is the simplest HTTP response there is — one GET, then one chunked body
//! until the end — so it is written straight to the socket instead.
//!
//! Each accepted connection is sniffed in its own task: its first request head is read (at
//! most [`MAX_HEAD`] bytes, for at most [`SNIFF_TIMEOUT`]) and parsed with `httparse`. A
//! complete `GET /sessions/{id}/stream` with no body and nothing pipelined behind it is
//! served by `sse_conn`; anything else — other routes, HTTP/2, bad or partial heads — is
//! handed to hyper with the bytes already read put back in front ([`Prefixed`]), so hyper sees
//! the connection exactly as the client sent it and answers errors the way it always did. A
//! stream requested on a keep-alive connection that started with another request is served by
//! hyper, with the same bytes on the wire.

use super::conn::StallTimeout;
use super::sse_conn;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Version};
use axum::Router;
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest request head that is sniffed; longer ones go to hyper, which has its own limit.
const MAX_HEAD: usize = 16 * 1024;
/// How long a new connection may take to send its first request head (hyper's default
/// header read timeout is the same).
const SNIFF_TIMEOUT: Duration = Duration::from_secs(30);
/// Most headers sniffed; a request with more goes to hyper.
const MAX_HEADERS: usize = 64;

type Io = StallTimeout<TcpStream>;

/// What `axum::serve` accepts from: the connections the sniffers did not keep.
pub struct HttpListener {
    handed: mpsc::Receiver<(Prefixed<Io>, SocketAddr)>,
    local_addr: SocketAddr,
}

/// What the connection tasks need.
#[derive(Clone)]
pub struct Serving {
    pub router: Router,
    pub sse_write_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// Every sniffer and raw stream, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Stops sniffing connections that have not sent a request yet.
    pub stop: CancellationToken,
}

impl HttpListener {
    /// Starts accepting on `inner`. Accepting stops when the returned listener is dropped.
    pub fn spawn(inner: TcpListener, serving: Serving) -> io::Result<HttpListener> {
        let local_addr = inner.local_addr()?;
        let (tx, handed) = mpsc::channel(64);
        tokio::spawn(accept_loop(inner, tx, serving));
        Ok(HttpListener { handed, local_addr })
    }
}

impl axum::serve::Listener for HttpListener {
    type Io = Prefixed<Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handed.recv().await {
            Some(conn) => conn,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(
    mut listener: TcpListener,
    tx: mpsc::Sender<(Prefixed<Io>, SocketAddr)>,
    serving: Serving,
) {
    loop {
        let (tcp, addr) = tokio::select! {
            // The plain listener's accept retries transient errors (e.g. out of descriptors).
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            _ = tx.closed() => return,
        };
        // SSE frames are small writes: with Nagle's algorithm a frame that follows one not yet
        // acknowledged waits for the ACK, up to the 40 ms delayed-ACK timer (BENCHMARKS.md).
        let _ = tcp.set_nodelay(true);
        let io = StallTimeout::new(tcp, serving.sse_write_timeout, serving.metrics.clone());
        let (tx, serving2) = (tx.clone(), serving.clone());
        serving.tasks.spawn(async move {
            // Boxed so that the sniffer's state is freed before a stream settles in.
            let sniffed = Box::pin(sniff(io, &serving2.stop)).await;
            match sniffed {
                Some(Sniffed::Stream(io, request)) => sse_conn::serve(io, *request, serving2).await,
                Some(Sniffed::Other(io)) => {
                    let _ = tx.send((io, addr)).await;
                }
                None => {}
            }
        });
    }
}

enum Sniffed {
    /// A stream request, its head consumed from the connection.
    Stream(Io, Box<Request<Body>>),
    /// Anything else, with what was read put back.
    Other(Prefixed<Io>),
}

/// Reads the first request head; `None` if the connection closed or shutdown began before a
/// decision (nothing was requested, so nothing is owed).
async fn sniff(mut io: Io, stop: &CancellationToken) -> Option<Sniffed> {
    let mut buf = BytesMut::with_capacity(1024);
    let decided = tokio::time::timeout(SNIFF_TIMEOUT, async {
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
        Ok(None) => None,
        // Not a stream, something pipelined behind its head, or a client too slow to say:
        // hyper decides (and times it out) as it always did.
        _ => Some(Sniffed::Other(Prefixed::new(buf.freeze(), io))),
    }
}

enum Classified {
    Stream(Box<Request<Body>>, usize),
    Other,
}

/// Decides from the bytes read so far, or `None` to read more.
fn classify(buf: &[u8]) -> Option<Classified> {
    if buf.is_empty() {
        return None;
    }
    if buf.len() >= MAX_HEAD {
        return Some(Classified::Other);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // Decide early once the request line is known not to be a stream.
            let known = req.method.is_some() && req.path.is_some();
            let stream = req.method == Some("GET") && req.path.is_some_and(is_stream_path);
            return (known && !stream).then_some(Classified::Other);
        }
        Err(_) => return Some(Classified::Other),
    };
    Some(build(&req).map_or(Classified::Other, |r| {
        Classified::Stream(Box::new(r), head_len)
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

/// `/sessions/{id}/stream`, with or without a query string.
fn is_stream_path(target: &str) -> bool {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    path.strip_prefix("/sessions/")
        .and_then(|rest| rest.strip_suffix("/stream"))
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// An IO that first yields bytes already read from it.
pub struct Prefixed<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> Prefixed<T> {
    pub fn new(prefix: Bytes, inner: T) -> Self {
        Prefixed { prefix, inner }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Prefixed<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            return Pin::new(&mut self.inner).poll_read(cx, buf);
        }
        let n = self.prefix.len().min(buf.remaining());
        buf.put_slice(&self.prefix[..n]);
        self.prefix.advance(n);
        if self.prefix.is_empty() {
            // Give the buffer back to the allocator now, not when the connection ends.
            self.prefix = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Prefixed<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
