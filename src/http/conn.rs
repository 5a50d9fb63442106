//! What the listener and both connection servers (`sse_conn`, `hyper_conn`) share: what a
//! connection task needs ([`Serving`]), an IO that replays the sniffed bytes ([`Prefixed`]),
//! and the SSE write timeout ([`StallTimeout`]), below.
//!
//! Connections that drop clients which stop reading: the SSE write timeout.
//!
//! An SSE body is pulled by hyper only when it can write: a client that stops reading fills
//! the socket, hyper stops polling the stream, and nothing of ours runs again for that
//! response — so a timer inside the stream could never fire. The timeout therefore sits under
//! hyper (and under `sse_conn`'s writes alike), on the socket: when a write has been pending (the peer accepts no bytes) for
//! `--sse-write-timeout`, the write fails with `TimedOut`, hyper closes the connection and
//! drops the response body, and with it the subscription and whatever it held. Any accepted
//! byte re-arms the timer, so a slow but live client is never cut off; only one that accepts
//! nothing for the whole timeout is. It applies to every response, which is right for the
//! others too: their bodies are small, and a peer that takes none of them is gone.

use super::limits::Slots;
use crate::metrics::Metrics;
use axum::Router;
use bytes::{Buf, Bytes};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the connection tasks need.
#[derive(Clone)]
pub struct Serving {
    pub router: Router,
    pub sse_write_timeout: Duration,
    /// `--http-header-timeout`: the first request head is complete within this of the accept.
    pub header_timeout: Duration,
    /// `--http-idle-timeout`: hyper closes a connection without a request this long.
    pub idle_timeout: Duration,
    pub slots: Arc<Slots>,
    pub metrics: Arc<Metrics>,
    /// Every connection's task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Stops accepting, ends connections that have not sent a request yet, and lets hyper's
    /// connections finish their response and close.
    pub stop: CancellationToken,
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

/// An IO whose writes fail after `timeout` without progress.
pub struct StallTimeout<T> {
    inner: T,
    timeout: Duration,
    /// One timer per connection, reset rather than reallocated.
    stall: Pin<Box<Sleep>>,
    /// Whether a write is pending and `stall` runs for it.
    armed: bool,
    metrics: Arc<Metrics>,
}

impl<T> StallTimeout<T> {
    pub fn new(inner: T, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        StallTimeout {
            inner,
            timeout,
            stall: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
            metrics,
        }
    }

    /// After the inner write returned `Pending`: starts the clock if it is not running, and
    /// fails once it has run out. The timer's waker is this task's, so hyper is polled again
    /// when it fires even though the socket never becomes writable.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if !self.armed {
            self.armed = true;
            self.stall.as_mut().reset(Instant::now() + self.timeout);
        }
        ready!(self.stall.as_mut().poll(cx));
        self.metrics.sse_write_timeouts.increment(1);
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client accepted no bytes within the write timeout",
        ))
    }

    fn progressed<R>(&mut self, result: R) -> Poll<R> {
        self.armed = false;
        Poll::Ready(result)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(r) => self.progressed(r),
            Poll::Pending => self.pending(cx).map(Err),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
