//! A subscriber that survives its host: when the stream ends or breaks it reconnects with
//! `Last-Event-ID` (the last id it received), as the JS client does, and counts every event
//! exactly once across all its connections.
//!
//! Unlike the JS client (250 ms doubling to 8 s), the first reconnect after a loss is
//! immediate and later ones wait 50 ms doubling to 1 s: the takeover scenario measures the
//! servers and the balancer, not a client's backoff. Attempts and time are both bounded; a
//! subscriber that gives up returns what it has, and the counts show the shortfall.

use super::http::{Client, SseConn};
use super::sse::Parsed;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Reconnects of one subscriber, in all.
const MAX_RECONNECTS: usize = 100;
/// A reconnect whose response head takes longer is abandoned and retried.
const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a quiet stream looks at `until` and the deadline.
const POLL: Duration = Duration::from_millis(100);
/// A stream quiet this long (no event, no keepalive) while events are due is treated as lost.
const STALL: Duration = Duration::from_secs(5);

/// One stream the subscriber opened.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// When its `200` response head arrived.
    pub at: Instant,
    /// When its first event arrived, if any did.
    pub first_event: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct Resumed {
    pub received: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub last: u64,
    pub streams: Vec<Opened>,
    /// Why it gave up before `until`, if it did.
    pub gave_up: Option<String>,
}

pub struct Subscriber {
    pub client: Client,
    pub session: String,
    /// The last id received so far, for whoever waits for events to flow.
    pub progress: Arc<AtomicU64>,
    /// Stop once this id is in; unknown (`u64::MAX`) until the session's table is complete.
    pub until: watch::Receiver<u64>,
    pub deadline: Instant,
}

impl Subscriber {
    /// Follows from `first` (opened at `opened` from id 0) until `until`, reconnecting as
    /// needed.
    pub async fn run(self, first: SseConn, opened: Instant) -> Resumed {
        let mut out = Resumed::default();
        let mut conn = Some((first, opened));
        let mut failed = 0u32;
        let mut reconnects = 0;
        loop {
            let (stream, at) = match conn.take() {
                Some(c) => c,
                None => {
                    if reconnects >= MAX_RECONNECTS || Instant::now() >= self.deadline {
                        out.gave_up = Some(format!(
                            "session {}: gave up after {reconnects} reconnects at id {}",
                            self.session, out.last
                        ));
                        return out;
                    }
                    reconnects += 1;
                    if failed > 0 {
                        let wait = Duration::from_millis(50) * 2u32.pow(failed.min(5) - 1);
                        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                    }
                    let open = self.client.stream(&self.session, out.last);
                    match tokio::time::timeout(OPEN_TIMEOUT, open).await {
                        Ok(Ok(stream)) => (stream, Instant::now()),
                        _ => {
                            failed += 1;
                            continue;
                        }
                    }
                }
            };
            failed = 0;
            out.streams.push(Opened {
                at,
                first_event: None,
            });
            if self.read(stream, &mut out).await {
                return out;
            }
        }
    }

    /// Reads one stream; `true` once `until` is in (or the deadline passed), `false` when the
    /// stream is lost.
    async fn read(&self, mut stream: SseConn, out: &mut Resumed) -> bool {
        let mut quiet = Duration::ZERO;
        loop {
            if out.last >= *self.until.borrow() {
                return true;
            }
            if Instant::now() >= self.deadline {
                out.gave_up = Some(format!(
                    "session {}: deadline passed at id {}",
                    self.session, out.last
                ));
                return true;
            }
            let frame = match tokio::time::timeout(POLL, stream.next()).await {
                Err(_) => {
                    quiet += POLL;
                    if quiet >= STALL {
                        return false;
                    }
                    continue;
                }
                Ok(Ok(Some(frame))) => frame,
                Ok(Ok(None) | Err(_)) => return false,
            };
            quiet = Duration::ZERO;
            let Parsed::Event { id, .. } = frame else {
                continue;
            };
            let opened = out.streams.last_mut().expect("a stream is open");
            opened.first_event.get_or_insert_with(Instant::now);
            out.received += 1;
            if id <= out.last {
                out.duplicates += 1;
                continue;
            }
            out.gaps += id - out.last - 1;
            out.last = id;
            self.progress.store(id, Ordering::Relaxed);
        }
    }
}
