//! One SSE subscriber's cursor: catch up from Postgres, then follow the ring, then live.
//!
//! The cursor is just the last seq sent. Each step reads what follows it from the ring; when
//! the ring no longer holds it (resume from long ago, or a subscriber too slow for the ring),
//! it reads a keyset page from Postgres instead and tries the ring again. The switch is
//! therefore gap-free and duplicate-free by construction (invariant 4), and a slow subscriber
//! costs the others nothing: it holds no queue, only its cursor.

use super::log::{EventLog, LogState, RingRead};
use super::SessionError;
use crate::frame::KEEPALIVE;
use crate::store::{events, Store};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Bytes per chunk handed to the HTTP body when a subscriber is behind.
const CHUNK_BYTES: usize = 64 * 1024;
/// Events per Postgres page.
const PAGE_EVENTS: i64 = 1000;

pub struct Subscription {
    session_id: Uuid,
    store: Store,
    /// `None` for a closed session: everything comes from Postgres, up to `end`.
    live: Option<(Arc<EventLog>, watch::Receiver<u64>)>,
    after: u64,
    end: u64,
    keepalive: Duration,
    shutdown: CancellationToken,
    finished: bool,
}

impl Subscription {
    /// Checks that events `after+1 ..` still exist (else `412`), then registers the subscriber.
    pub async fn open(
        store: Store,
        session_id: Uuid,
        log: Option<Arc<EventLog>>,
        closed_last_seq: u64,
        after: u64,
        keepalive: Duration,
        shutdown: CancellationToken,
    ) -> Result<Subscription, SessionError> {
        let last = log.as_ref().map_or(closed_last_seq, |l| l.last_seq());
        if after > last {
            return Err(SessionError::ResumeAhead { after, last });
        }
        let in_ring = log
            .as_ref()
            .and_then(|l| l.first_in_ring())
            .is_some_and(|first| after + 1 >= first);
        if after < last && !in_ring {
            let first = events::first_seq(&store, session_id).await?;
            if first.is_none_or(|first| first > after + 1) {
                return Err(SessionError::EventsExpired { after });
            }
        }
        let live = log.map(|l| {
            l.add_subscriber();
            let rx = l.watch();
            (l, rx)
        });
        Ok(Subscription {
            session_id,
            store,
            live,
            after,
            end: last,
            keepalive,
            shutdown,
            finished: false,
        })
    }

    /// The next bytes to write to the client, or `None` when the stream should end.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let chunk = self.step().await;
        if chunk.is_none() {
            self.finished = true;
        }
        chunk
    }

    async fn step(&mut self) -> Option<Bytes> {
        loop {
            let Some((log, rx)) = &mut self.live else {
                // Closed session: history through `done`, then the end.
                if self.after >= self.end {
                    return None;
                }
                return self.read_page().await;
            };
            rx.borrow_and_update();
            match log.read_after(self.after, CHUNK_BYTES) {
                RingRead::Frames { chunks, last, done } => {
                    self.after = last;
                    if done {
                        self.finished = true;
                    }
                    return Some(concat(chunks));
                }
                RingRead::Behind => return self.read_page().await,
                RingRead::UpToDate(LogState::Open) => {
                    tokio::select! {
                        changed = rx.changed() => {
                            if changed.is_err() {
                                return None;
                            }
                        }
                        _ = tokio::time::sleep(self.keepalive) => {
                            return Some(Bytes::from_static(KEEPALIVE));
                        }
                        _ = self.shutdown.cancelled() => return None,
                    }
                }
                RingRead::UpToDate(LogState::Done | LogState::Gone) => return None,
            }
        }
    }

    /// One keyset page from Postgres. A page that does not start right after the cursor means
    /// retention removed events under us: end the stream (the reconnect gets its `412`).
    async fn read_page(&mut self) -> Option<Bytes> {
        match events::read_page(&self.store, self.session_id, self.after, PAGE_EVENTS).await {
            Ok(Some(page)) if page.first_seq == self.after + 1 => {
                self.after = page.last_seq;
                if page.has_done {
                    self.finished = true;
                }
                Some(page.bytes)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(session_id = %self.session_id, error = %e, "resume read failed; ending stream");
                None
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some((log, _)) = &self.live {
            log.remove_subscriber();
        }
    }
}

fn concat(chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() == 1 {
        return chunks.into_iter().next().unwrap_or_default();
    }
    let mut buf = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
    for c in chunks {
        buf.extend_from_slice(&c);
    }
    buf.freeze()
}
