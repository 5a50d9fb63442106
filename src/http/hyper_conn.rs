//! Connections served by hyper (everything but streams on fresh connections), one task each.
//!
//! Served here rather than by `axum::serve`, which gives hyper no timer: without one hyper
//! never times out a request head, and an idle keep-alive connection (or one trickling a head a
//! byte at a time) stays open forever. With [`TokioTimer`] and `header_read_timeout` set to
//! `--http-idle-timeout`, hyper closes a connection that has no request in flight once that
//! long has passed without a complete request head: it starts counting when a response is
//! done (or the connection is handed over) and stops when the next head is complete, so it
//! bounds idle keep-alive connections and slow heads alike. A trickled head can hold a
//! connection no longer than an idle one could. The first head of a connection was already
//! read whole by the sniffer within `--http-header-timeout`.
//!
//! Graceful shutdown is axum's: when `stop` fires, an idle connection closes at once and a
//! busy one after its response.

use super::conn::StallTimeout;
use super::conn::{Prefixed, Serving};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;

/// Serves `io` until the client or hyper closes it, or shutdown lets it finish. Without
/// `keep_alive` the connection ends after its first response (the health reserve).
pub async fn serve(io: Prefixed<StallTimeout<TcpStream>>, serving: Serving, keep_alive: bool) {
    let service = TowerToHyperService::new(serving.router.clone());
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(serving.idle_timeout)
        .keep_alive(keep_alive);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => {
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = serving.stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
