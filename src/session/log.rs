//! A live session's event log in memory: the ring of committed frames and the wake-up signal.
//!
//! Frames enter only through [`CommitSink::committed`], called by the group-commit writer after
//! the commit (**where events are published**). The ring keeps the newest `ring_size` frames as
//! shared [`Bytes`]; subscribers copy handles out under a short lock and never hold it across
//! an await. A `watch` channel carries a version number only: subscribers re-read the ring when
//! it changes, so a slow subscriber has no queue of its own that could grow.
//!
//! The ring holds only the frames' bytes (32 bytes of handle each): seqs are consecutive, so a
//! frame's seq is `first + index`, and `done` is always the last event, so it is known from the
//! state. A full [`Frame`] per slot (72 bytes) cost 20% of the frames' own size in memory for
//! ~200-byte messages; the budget for everything beyond the frames is 25%.

use crate::frame::{names, Frame};
use crate::store::writer::CommitSink;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogState {
    /// Events may still come.
    Open,
    /// `done` was committed: streams end after delivering it.
    Done,
    /// This host no longer serves the session (fenced, evicted, shut down): streams end without
    /// `done`, so clients reconnect through the load balancer and land on the session's host.
    Gone,
}

/// What a subscriber finds in the ring after `after`.
pub enum RingRead {
    /// Frames `after+1 ..= last`, possibly ending with `done`.
    Frames {
        chunks: Vec<Bytes>,
        last: u64,
        done: bool,
        /// When `last` was committed, if the read reached the newest frame (so the publish lag
        /// of this chunk is known without a timestamp per frame).
        committed_at: Option<Instant>,
    },
    /// `after+1` is older than the ring: read it from Postgres.
    Behind,
    /// Nothing after `after` yet.
    UpToDate(LogState),
}

struct Ring {
    /// Consecutive frames `first ..= first + len - 1`.
    frames: VecDeque<Bytes>,
    first: u64,
    capacity: usize,
    /// Highest committed seq (the ring may be empty after a refill with no events).
    last: u64,
    state: LogState,
    /// When the newest frames were committed (one clock read per commit, not per frame).
    committed_at: Instant,
}

pub struct EventLog {
    pub session_id: Uuid,
    ring: Mutex<Ring>,
    version: watch::Sender<u64>,
    subscribers: AtomicUsize,
    /// Last input or last subscriber leaving: idle eviction counts from here.
    last_activity: Mutex<Instant>,
    /// Cancelled when the log becomes [`LogState::Gone`]; the session task watches it.
    pub gone: CancellationToken,
}

impl EventLog {
    /// A log holding `tail` (the newest committed frames, oldest first) up to `last`.
    pub fn new(session_id: Uuid, capacity: usize, tail: Vec<Frame>, last: u64) -> EventLog {
        let capacity = capacity.max(1);
        let state = match tail.last() {
            Some(f) if f.event == names::DONE => LogState::Done,
            _ => LogState::Open,
        };
        let skip = tail.len().saturating_sub(capacity);
        let first = tail.get(skip).map_or(last + 1, |f| f.seq);
        let frames: VecDeque<Bytes> = tail.into_iter().skip(skip).map(|f| f.bytes).collect();
        EventLog {
            session_id,
            ring: Mutex::new(Ring {
                frames,
                first,
                capacity,
                last,
                state,
                committed_at: Instant::now(),
            }),
            version: watch::channel(0).0,
            subscribers: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
            gone: CancellationToken::new(),
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.lock().last
    }

    pub fn state(&self) -> LogState {
        self.lock().state
    }

    /// The oldest seq the ring can serve without Postgres.
    pub fn first_in_ring(&self) -> Option<u64> {
        let ring = self.lock();
        (!ring.frames.is_empty()).then_some(ring.first)
    }

    /// Reads frames after `after`, up to about `max_bytes`.
    pub fn read_after(&self, after: u64, max_bytes: usize) -> RingRead {
        let ring = self.lock();
        if after >= ring.last {
            return RingRead::UpToDate(ring.state);
        }
        if ring.frames.is_empty() || after + 1 < ring.first {
            return RingRead::Behind;
        }
        let start = (after + 1 - ring.first) as usize;
        if start >= ring.frames.len() {
            return RingRead::Behind;
        }
        let mut chunks = Vec::new();
        let mut bytes = 0;
        let mut last = after;
        for f in ring.frames.range(start..) {
            if bytes > 0 && bytes + f.len() > max_bytes {
                break;
            }
            bytes += f.len();
            chunks.push(f.clone());
            last += 1;
        }
        // `done` is always the session's last event.
        let done = ring.state == LogState::Done && last == ring.last;
        let committed_at = (last == ring.last).then_some(ring.committed_at);
        RingRead::Frames {
            chunks,
            last,
            done,
            committed_at,
        }
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Registers a subscriber unless `max` are already open.
    pub(crate) fn add_subscriber(&self, max: usize) -> bool {
        self.subscribers
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn remove_subscriber(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
        self.touch();
    }

    pub fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Idle: no subscriber, and no activity since `now - timeout`.
    pub fn is_idle(&self, timeout: std::time::Duration) -> bool {
        self.subscriber_count() == 0
            && self
                .last_activity
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                >= timeout
    }

    /// This host stops serving the session: every stream ends (without `done`).
    pub fn set_gone(&self) {
        {
            let mut ring = self.lock();
            if ring.state == LogState::Open {
                ring.state = LogState::Gone;
            }
        }
        self.gone.cancel();
        self.version.send_modify(|v| *v += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        // A panic while holding this lock cannot leave the ring half-updated in a way that
        // matters more than losing the session, so poisoning is ignored.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CommitSink for EventLog {
    fn committed(&self, frames: Vec<Frame>) {
        if frames.is_empty() {
            return;
        }
        {
            let mut ring = self.lock();
            ring.committed_at = Instant::now();
            for f in frames {
                debug_assert_eq!(f.seq, ring.first + ring.frames.len() as u64);
                ring.last = f.seq;
                if f.event == names::DONE {
                    ring.state = LogState::Done;
                }
                if ring.frames.is_empty() {
                    ring.first = f.seq;
                }
                if ring.frames.len() == ring.capacity {
                    ring.frames.pop_front();
                    ring.first += 1;
                }
                ring.frames.push_back(f.bytes);
            }
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn fenced(&self) {
        tracing::warn!(session_id = %self.session_id, "append fenced: another host owns the session");
        self.set_gone();
    }

    fn rejected(&self) {
        // The writer logged why; streams end so clients reconnect and the session rehydrates.
        self.set_gone();
    }

    fn published_last(&self) -> Option<u64> {
        Some(self.lock().last)
    }

    fn frames_after(&self, after: u64) -> Option<Vec<Frame>> {
        let ring = self.lock();
        if after >= ring.last || ring.frames.is_empty() || after + 1 < ring.first {
            return None;
        }
        let skip = (after + 1 - ring.first) as usize;
        ring.frames
            .iter()
            .skip(skip)
            .enumerate()
            .map(|(i, bytes)| Frame::from_wire(after + 1 + i as u64, bytes.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(range: std::ops::RangeInclusive<u64>) -> Vec<Frame> {
        range
            .map(|s| Frame::encode(s, names::RESULT, "{}"))
            .collect()
    }

    #[test]
    fn ring_keeps_the_newest_frames_and_reports_behind() {
        let log = EventLog::new(Uuid::nil(), 3, frames(1..=2), 2);
        log.committed(frames(3..=5));
        assert_eq!(log.first_in_ring(), Some(3));
        assert!(matches!(log.read_after(1, 1 << 20), RingRead::Behind));
        match log.read_after(2, 1 << 20) {
            RingRead::Frames {
                chunks,
                last,
                done,
                committed_at,
            } => {
                assert_eq!((chunks.len(), last, done), (3, 5, false));
                assert!(committed_at.is_some(), "the read reached the newest frame");
            }
            _ => panic!("expected frames"),
        }
        assert!(matches!(
            log.read_after(5, 1 << 20),
            RingRead::UpToDate(LogState::Open)
        ));
    }

    #[test]
    fn subscribers_are_capped() {
        let log = EventLog::new(Uuid::nil(), 3, Vec::new(), 0);
        assert!(log.add_subscriber(2) && log.add_subscriber(2));
        assert!(!log.add_subscriber(2));
        log.remove_subscriber();
        assert!(log.add_subscriber(2));
        assert_eq!(log.subscriber_count(), 2);
    }

    #[test]
    fn done_closes_and_gone_does_not_override_done() {
        let log = EventLog::new(Uuid::nil(), 10, frames(1..=1), 1);
        log.committed(vec![Frame::encode(2, names::DONE, "{}")]);
        log.set_gone();
        assert_eq!(log.state(), LogState::Done);
    }
}
