//! When the writer counts as overloaded: judged by how long queued work has waited, the way
//! CoDel judges a network queue, not by how much of it there is.
//!
//! A queue's length says nothing about delay: 2,048 queued appends are ~20 ms of work for a
//! writer committing 100k events/s, and refusing users' messages over a burst the writer
//! absorbs in milliseconds is wrong (the published JS client does not retry a failed input).
//! What matters is the *sojourn* time, how long the oldest append of each batch waited before
//! the writer took it. A burst makes it spike and fall again; Postgres that cannot keep up
//! makes it stay high. So, as in CoDel (Nichols & Jacobson, "Controlling Queue Delay", 2012):
//! the writer is overloaded once every batch for [`INTERVAL`] has waited longer than
//! [`TARGET`], and stops being so at the first batch that waited less.
//!
//! A writer stuck in one long commit takes no batches and so measures nothing; a commit that
//! has run longer than `TARGET + INTERVAL` while appends wait counts as overload too (Postgres
//! stalled, throttled or failing over).
//!
//! Overload refuses *new* work at the door (`503 overloaded`: new sessions, user messages);
//! appends of running turns always wait their turn (backpressure on the bounded channel).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Sojourn time above which a batch counts as having waited too long: a user sees events
/// half a second late.
pub const TARGET: Duration = Duration::from_millis(500);
/// How long sojourn times must stay above [`TARGET`] before new work is refused: longer than
/// any burst the writer drains on its own.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The writer's load, written by the writer task, read by request handlers.
#[derive(Debug)]
pub struct Pressure {
    overloaded: AtomicBool,
    /// Milliseconds since `origin` at which the running commit started; 0 when none runs.
    commit_started: AtomicU64,
    /// When sojourn times first went above `TARGET` (None: the last batch was below it).
    above_since: Mutex<Option<Instant>>,
    origin: Instant,
}

impl Default for Pressure {
    fn default() -> Self {
        Pressure {
            overloaded: AtomicBool::new(false),
            commit_started: AtomicU64::new(0),
            above_since: Mutex::new(None),
            origin: Instant::now(),
        }
    }
}

impl Pressure {
    /// The writer took a batch whose oldest append was queued at `oldest`, at `now`.
    pub fn batch_taken(&self, oldest: Instant, now: Instant) {
        let sojourn = now.saturating_duration_since(oldest);
        let mut above = self.above_since.lock().unwrap_or_else(|e| e.into_inner());
        if sojourn < TARGET {
            *above = None;
            self.overloaded.store(false, Ordering::Relaxed);
        } else {
            let since = *above.get_or_insert(now);
            if now.saturating_duration_since(since) >= INTERVAL {
                self.overloaded.store(true, Ordering::Relaxed);
            }
        }
        let started = now.saturating_duration_since(self.origin).as_millis() as u64;
        self.commit_started.store(started.max(1), Ordering::Relaxed);
    }

    /// The writer finished the batch it took.
    pub fn batch_done(&self) {
        self.commit_started.store(0, Ordering::Relaxed);
    }

    /// Whether new work should be refused now; `waiting` is whether appends are queued.
    pub fn overloaded(&self, waiting: bool, now: Instant) -> bool {
        if self.overloaded.load(Ordering::Relaxed) {
            return true;
        }
        let started = self.commit_started.load(Ordering::Relaxed);
        if !waiting || started == 0 {
            return false;
        }
        let running = now
            .saturating_duration_since(self.origin)
            .saturating_sub(Duration::from_millis(started));
        running >= TARGET + INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_that_drains_within_the_interval_is_not_overload() {
        let p = Pressure::default();
        let t0 = Instant::now();
        // Batches waiting well over the target, for less than the interval, then drained.
        for i in 0..9 {
            let now = t0 + ms(100 * i);
            p.batch_taken(now - ms(800), now);
            p.batch_done();
            assert!(!p.overloaded(true, now), "refused at batch {i}");
        }
        p.batch_taken(t0 + ms(950), t0 + ms(960));
        assert!(!p.overloaded(true, t0 + ms(1100)));
    }

    #[test]
    fn sojourn_above_target_for_an_interval_is_overload_until_one_batch_is_fast() {
        let p = Pressure::default();
        let t0 = Instant::now();
        for i in 0..=10 {
            let now = t0 + ms(100 * i);
            p.batch_taken(now - ms(600), now);
            p.batch_done();
        }
        assert!(p.overloaded(false, t0 + ms(1000)));
        p.batch_taken(t0 + ms(1050), t0 + ms(1060));
        assert!(!p.overloaded(true, t0 + ms(1060)));
    }

    #[test]
    fn a_commit_stuck_while_work_waits_is_overload() {
        let p = Pressure::default();
        let t0 = p.origin + ms(10);
        p.batch_taken(t0, t0);
        assert!(!p.overloaded(true, t0 + ms(1000)));
        assert!(!p.overloaded(false, t0 + ms(5000)), "nothing waits");
        assert!(p.overloaded(true, t0 + TARGET + INTERVAL));
        p.batch_done();
        assert!(!p.overloaded(true, t0 + ms(5000)));
    }
}
