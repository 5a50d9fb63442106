//! One SSE subscriber's cursor: catch up from Postgres, then follow the ring, then live.
//!
//! The cursor is just the last seq sent. Each step reads what follows it from the ring; when
//! the ring no longer holds it (resume from long ago, or a subscriber too slow for the ring),
//! it reads a keyset page from Postgres instead and tries the ring again. The switch is
//! therefore gap-free and duplicate-free by construction (invariant 4), and a slow subscriber
//! costs the others nothing: it holds no queue, only its cursor.
//!
//! What a slow subscriber holds is capped by `--sse-buffer-bytes`: each step takes at most that
//! many bytes (one ring chunk, or one Postgres page cut at that size, give or take one event),
//! and the next step is taken only once that chunk is written (`http::sse_conn`) or buffered
//! (hyper, whose own write buffer is bounded, ~400 KiB). So a stalled client costs its cursor
//! plus a bounded buffer, not the events it has not read; a client that accepts nothing for
//! `--sse-write-timeout` is dropped altogether (`http::conn`).
//!
//! The keepalive timer and the shutdown wait live as long as the subscription instead of being
//! made anew at every wait: a new `sleep` registers in (and its drop removes from) the runtime's
//! one timer wheel, and a new `cancelled()` registers with the host-wide shutdown token, both
//! under locks that every subscriber of the host shares. With a hundred subscribers woken per
//! event that was two contended lock round trips per subscriber per event (BENCHMARKS.md,
//! fan-out). The timer is re-armed lazily: when it fires after data went out less than a
//! keepalive ago, it is moved to that time plus the interval instead of sending a comment.

use super::log::{EventLog, LogState, RingRead};
use super::{Deps, SessionError};
use crate::frame::KEEPALIVE;
use crate::metrics::{Metrics, Resume412};
use crate::store::{events, Store};
use bytes::{Bytes, BytesMut};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;
use uuid::Uuid;

/// Most events per Postgres page (pages are also cut at `--sse-buffer-bytes`).
const PAGE_EVENTS: i64 = 1000;
/// Fewest events a page asks for, whatever the sizes seen.
const MIN_PAGE_EVENTS: i64 = 16;
/// Frame size assumed before a page has shown the real one (a short event's frame).
const GUESS_FRAME_BYTES: usize = 128;

pub struct Subscription {
    session_id: Uuid,
    store: Store,
    /// `None` for a closed session: everything comes from Postgres, up to `end`.
    live: Option<(Arc<EventLog>, watch::Receiver<u64>)>,
    after: u64,
    end: u64,
    keepalive: Duration,
    /// Fires when a keepalive may be due; see the module docs.
    timer: Pin<Box<Sleep>>,
    /// When bytes last went out.
    sent_at: Instant,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    finished: bool,
    metrics: Arc<Metrics>,
    /// Most bytes taken at once (`--sse-buffer-bytes`).
    chunk_bytes: usize,
    /// Events the next Postgres page asks for: about what fills `chunk_bytes` at the frame size
    /// of the last page. The page query reads that many rows before cutting at the byte limit,
    /// so asking for 1000 when 170 fit read six times the rows it sent (resume ran at half the
    /// rate with 64 KiB pages; BENCHMARKS.md).
    page_events: i64,
}

impl Subscription {
    /// Checks that events `after+1 ..` still exist (else `412`), then registers the subscriber
    /// (`429` beyond `--max-subscribers-per-session` on a live session).
    pub async fn open(
        deps: &Deps,
        session_id: Uuid,
        log: Option<Arc<EventLog>>,
        closed_last_seq: u64,
        after: u64,
    ) -> Result<Subscription, SessionError> {
        let store = deps.store.clone();
        let last = log.as_ref().map_or(closed_last_seq, |l| l.last_seq());
        if after > last {
            deps.metrics.resume_refused(Resume412::Ahead);
            return Err(SessionError::ResumeAhead { after, last });
        }
        let in_ring = log
            .as_ref()
            .and_then(|l| l.first_in_ring())
            .is_some_and(|first| after + 1 >= first);
        if after < last && !in_ring {
            let first = events::first_seq(&store, session_id).await?;
            if first.is_none_or(|first| first > after + 1) {
                deps.metrics.resume_refused(Resume412::Expired);
                return Err(SessionError::EventsExpired { after });
            }
            // A hole after the cursor that retention did not make: a failover lost events
            // that were delivered (`store::writer`, repair). Never skipped silently.
            if events::next_seq_after(&store, session_id, after)
                .await?
                .is_some_and(|next| next > after + 1)
            {
                deps.metrics.resume_refused(Resume412::Expired);
                return Err(SessionError::EventsLost { after });
            }
        }
        let live = match log {
            Some(l) if !l.add_subscriber(deps.max_subscribers) => {
                return Err(SessionError::TooManySubscribers)
            }
            Some(l) => {
                let rx = l.watch();
                Some((l, rx))
            }
            None => None,
        };
        deps.metrics.sse_subscribers.increment(1.0);
        Ok(Subscription {
            session_id,
            store,
            live,
            after,
            end: last,
            keepalive: deps.keepalive,
            timer: Box::pin(tokio::time::sleep(deps.keepalive)),
            sent_at: Instant::now(),
            shutdown: Box::pin(deps.shutdown.clone().cancelled_owned()),
            finished: false,
            metrics: deps.metrics.clone(),
            chunk_bytes: deps.sse_buffer_bytes,
            page_events: page_events(deps.sse_buffer_bytes, GUESS_FRAME_BYTES),
        })
    }

    /// The next bytes to write to the client, or `None` when the stream should end.
    pub async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        let chunk = self.step().await;
        match chunk {
            Some(_) => self.sent_at = Instant::now(),
            None => self.finished = true,
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
            match log.read_after(self.after, self.chunk_bytes) {
                RingRead::Frames {
                    chunks,
                    last,
                    done,
                    committed_at,
                } => {
                    self.after = last;
                    if done {
                        self.finished = true;
                    }
                    // One sample per chunk that reached the newest frame: the lag of live
                    // delivery, not the age of a catch-up read.
                    if let Some(at) = committed_at {
                        self.metrics
                            .publish_lag_seconds
                            .record(at.elapsed().as_secs_f64());
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
                        _ = self.timer.as_mut() => {
                            let due = self.sent_at + self.keepalive;
                            if due > Instant::now() {
                                self.timer.as_mut().reset(due);
                                continue;
                            }
                            self.timer.as_mut().reset(Instant::now() + self.keepalive);
                            return Some(Bytes::from_static(KEEPALIVE));
                        }
                        _ = self.shutdown.as_mut() => return None,
                    }
                }
                RingRead::UpToDate(LogState::Done | LogState::Gone) => return None,
            }
        }
    }

    /// One keyset page from Postgres. A page that does not start right after the cursor means
    /// retention removed events under us: end the stream (the reconnect gets its `412`).
    async fn read_page(&mut self) -> Option<Bytes> {
        self.metrics.resume_from_store.increment(1);
        let (id, after, max_bytes) = (self.session_id, self.after, self.chunk_bytes);
        match events::read_page(&self.store, id, after, self.page_events, max_bytes).await {
            Ok(Some(page)) if page.first_seq == self.after + 1 => {
                let events = (page.last_seq - page.first_seq + 1) as usize;
                self.page_events = page_events(max_bytes, page.bytes.len() / events.max(1));
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
        self.metrics.sse_subscribers.decrement(1.0);
        if let Some((log, _)) = &self.live {
            log.remove_subscriber();
        }
    }
}

/// Events that fill `max_bytes` at `frame_bytes` each, plus the one that crosses the limit.
fn page_events(max_bytes: usize, frame_bytes: usize) -> i64 {
    let fit = (max_bytes / frame_bytes.max(1)).saturating_add(2);
    i64::try_from(fit)
        .unwrap_or(i64::MAX)
        .clamp(MIN_PAGE_EVENTS, PAGE_EVENTS)
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

#[cfg(test)]
mod tests {
    use super::{page_events, MIN_PAGE_EVENTS, PAGE_EVENTS};

    #[test]
    fn a_page_asks_for_what_fills_the_buffer_within_bounds() {
        assert_eq!(page_events(64 * 1024, 390), 170);
        assert_eq!(page_events(64 * 1024, 0), PAGE_EVENTS);
        assert_eq!(page_events(64 * 1024, 1 << 20), MIN_PAGE_EVENTS);
        assert_eq!(page_events(usize::MAX / 2, 1), PAGE_EVENTS);
    }
}
