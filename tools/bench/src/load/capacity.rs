//! Capacity at model pace: how many sessions can stream at once, each at the pace of a model.
//!
//! Every session plays turns of `message_delta`s at R a second (a [`Streamed`] scenario: ~60-byte
//! deltas, then the `message_complete` and the `result`, a short pause between turns) to one
//! subscriber. A [`step`] runs S such sessions for a while; S is doubled from `start` until a
//! step does not hold, then bisected a bounded number of times between the largest S that held
//! and the smallest that did not. A step holds when
//! - every subscriber received every event exactly once, and nothing failed;
//! - commit→delivery p99 ≤ `p99_ms` (insert→delivery without commit timestamps; without the
//!   database, the delay of each delta's arrival beyond 1/R after the one before it);
//! - the deltas arrived at ≥ `min_rate` × R per session: an overloaded server also plays its
//!   agents late, and a figure that only looked at the lag after commit would not see it.
//!
//! Reported at the largest S that held: S, its lag, the achieved rate, events/s, and (when
//! known) server RSS and server and Postgres CPU per live session. RSS per session is the
//! server's RSS at the end of the step, sessions live, minus its RSS before the first capacity
//! step on it, over S: right for a step larger than every one before it, an upper bound after a
//! larger one (glibc keeps the pages freed since for reuse, so RSS stays at the high-water
//! mark). Only loopback, only bounded loops: at most `log2(max / start) + 1 + bisect` steps,
//! each with its own deadline.

mod step;

use super::fixtures::Streamed;
use super::report::{Counts, Goal, Metric};
use super::target::Target;
use super::Measured;
use std::time::Duration;

pub use step::Outcome;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Deltas per second per session (R).
    pub rate: f64,
    /// Bytes of text per delta.
    pub delta_bytes: usize,
    /// Deltas per turn.
    pub turn_deltas: usize,
    /// Seconds between turns (the user's think time).
    pub pause: f64,
    /// Seconds of full load per step (every session streaming).
    pub seconds: f64,
    /// First S.
    pub start: usize,
    /// Largest S tried.
    pub max_sessions: usize,
    /// Bisection steps after the doubling.
    pub bisect_steps: usize,
    /// Most commit→delivery p99 (ms) a step may have to hold.
    pub p99_ms: f64,
    /// Least fraction of R that the deltas must arrive at.
    pub min_rate: f64,
}

impl Params {
    /// The scenario every session plays. Sessions start spread over one turn, so there is one
    /// more turn than full load needs: the window of full load is from when the last session
    /// starts to when the first one ends.
    pub fn scenario(&self) -> Streamed {
        let mut s = Streamed {
            turns: 1,
            deltas: self.turn_deltas.max(2),
            bytes: self.delta_bytes,
            rate: self.rate,
            pause: self.pause,
        };
        s.turns = (self.seconds / s.turn_seconds()).ceil().max(1.0) as usize + 1;
        s
    }

    /// Most steps a search takes.
    pub fn max_steps(&self) -> usize {
        let doublings = (self.max_sessions.max(1) as f64 / self.start.max(1) as f64)
            .log2()
            .ceil()
            .max(0.0) as usize;
        doublings + 1 + self.bisect_steps
    }

    /// Bound of the whole search (the step deadlines, plus setup and teardown for each).
    pub fn timeout(&self) -> Duration {
        let per_step = step::deadline(self) + Duration::from_secs(120);
        per_step * self.max_steps() as u32
    }
}

/// The doubling-then-bisection search over S, as a pure state machine (tested below).
#[derive(Debug, Clone)]
pub struct Search {
    max: usize,
    bisect_left: usize,
    /// Largest S that held.
    held: usize,
    /// Smallest S that did not.
    failed: Option<usize>,
    next: Option<usize>,
}

impl Search {
    pub fn new(p: &Params) -> Search {
        Search {
            max: p.max_sessions.max(1),
            bisect_left: p.bisect_steps,
            held: 0,
            failed: None,
            next: Some(p.start.clamp(1, p.max_sessions.max(1))),
        }
    }

    /// The S to run next, or `None` when the search is over.
    pub fn next(&self) -> Option<usize> {
        self.next
    }

    /// Records whether S held and picks the next S.
    pub fn record(&mut self, s: usize, held: bool) {
        if held {
            self.held = self.held.max(s);
        } else {
            self.failed = Some(self.failed.map_or(s, |f| f.min(s)));
        }
        self.next = match self.failed {
            // Doubling: nothing failed yet.
            None if s >= self.max => None,
            None => Some((s * 2).min(self.max)),
            Some(failed) => {
                let mid = self.held + (failed - self.held) / 2;
                if self.bisect_left == 0 || mid <= self.held || mid == 0 {
                    None
                } else {
                    self.bisect_left -= 1;
                    Some(mid)
                }
            }
        };
    }

    pub fn held(&self) -> usize {
        self.held
    }
}

/// Runs one search; each step's outcome goes to `notes`, so the report shows the whole search.
pub async fn run(target: &Target, p: Params, notes: &mut Vec<String>) -> anyhow::Result<Measured> {
    let db = match target.database_url.as_deref() {
        Some(url) => {
            let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            Some(db)
        }
        None => None,
    };
    // RSS per session is counted from what the server held before its first capacity step.
    let baseline_kib = *target
        .capacity_rss_baseline
        .get_or_init(|| target.server_rss_kib());
    let mut search = Search::new(&p);
    let (mut best, mut steps, mut last_error) = (None::<Outcome>, Vec::new(), None);
    let mut counts = Counts::default();
    while let Some(s) = search.next() {
        // Each step starts from written-back tables, as each scenario does.
        target.settle().await;
        let outcome = step::run(target, &p, s, db.as_ref(), baseline_kib).await?;
        let line = format!("S={s} {}", outcome.describe(&p));
        eprintln!("bench: capacity {line}");
        search.record(s, outcome.held(&p));
        // A failed step's missing events are the search's signal, but a duplicate never is.
        if outcome.held(&p) || outcome.counts.duplicates > 0 {
            counts.add(outcome.counts);
        }
        if let Some(e) = &outcome.error {
            last_error = Some(e.clone());
        }
        steps.push(line);
        if outcome.held(&p) && best.as_ref().is_none_or(|b| b.sessions < s) {
            best = Some(outcome);
        }
    }
    notes.push(format!("capacity search: {}", steps.join("; ")));
    let Some(best) = best else {
        anyhow::bail!(
            "capacity: no S held ({})",
            last_error.unwrap_or_else(|| steps.join("; "))
        );
    };
    let mut metrics = best.metrics(&p);
    metrics.push(Metric::new(
        format!("{}_steps", key(&p)),
        "capacity: steps of the search",
        "steps",
        steps.len() as f64,
    ));
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}

/// Metric key prefix, e.g. `capacity_r40_b60`.
fn key(p: &Params) -> String {
    format!("capacity_r{}_b{}", p.rate, p.delta_bytes)
}

impl Outcome {
    fn metrics(&self, p: &Params) -> Vec<Metric> {
        let key = key(p);
        let at = format!("capacity {}/s", p.rate);
        let per = |v: f64| v / self.sessions as f64;
        let mut m = vec![Metric::new(
            format!("{key}_sessions"),
            format!("{at}: largest S that held"),
            "sessions",
            self.sessions as f64,
        )];
        if let Some(lag) = &self.lag {
            m.push(
                Metric::new(
                    format!("{key}_{}_p99_ms", lag.key),
                    format!("{at}: {} p99 at S", lag.label),
                    "ms",
                    lag.p99,
                )
                .goal(Goal::AtMost(p.p99_ms)),
            );
            m.push(Metric::new(
                format!("{key}_{}_p50_ms", lag.key),
                format!("{at}: {} p50 at S", lag.label),
                "ms",
                lag.p50,
            ));
            m.push(Metric::new(
                format!("{key}_{}_max_ms", lag.key),
                format!("{at}: {} max at S", lag.label),
                "ms",
                lag.max,
            ));
        }
        m.push(Metric::new(
            format!("{key}_achieved_rate"),
            format!("{at}: deltas/s per session at S"),
            "events/s",
            self.rate,
        ));
        m.push(Metric::new(
            format!("{key}_events_per_s"),
            format!("{at}: events/s delivered at S"),
            "events/s",
            self.events_per_s,
        ));
        if let Some(kib) = self.rss_growth_kib {
            m.push(Metric::new(
                format!("{key}_rss_per_session_kib"),
                format!("{at}: server RSS per session"),
                "KiB",
                per(kib),
            ));
        }
        if let Some(server) = self.cpu.server {
            m.push(Metric::new(
                format!("{key}_server_cpu_per_session"),
                format!("{at}: server CPU per session"),
                "mcores",
                per(server) * 1e3,
            ));
        }
        if let Some(pg) = self.cpu.pg {
            m.push(Metric::new(
                format!("{key}_pg_cpu_per_session"),
                format!("{at}: Postgres CPU per session"),
                "mcores",
                per(pg) * 1e3,
            ));
            m.push(Metric::new(
                format!("{key}_events_per_pg_cpu_s"),
                format!("{at}: events per PG CPU-second"),
                "events/cpu-s",
                self.events_per_s / pg,
            ));
        }
        m.extend(self.cpu.metrics(&key, &at));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(start: usize, max: usize, bisect: usize) -> Params {
        Params {
            rate: 40.0,
            delta_bytes: 60,
            turn_deltas: 100,
            pause: 0.5,
            seconds: 10.0,
            start,
            max_sessions: max,
            bisect_steps: bisect,
            p99_ms: 50.0,
            min_rate: 0.9,
        }
    }

    /// Runs a search against a server that holds up to `capacity` sessions.
    fn search(p: &Params, capacity: usize) -> (Vec<usize>, usize) {
        let mut s = Search::new(p);
        let mut tried = Vec::new();
        while let Some(n) = s.next() {
            tried.push(n);
            s.record(n, n <= capacity);
            assert!(tried.len() <= p.max_steps(), "{tried:?}");
        }
        (tried, s.held())
    }

    #[test]
    fn doubles_then_bisects_a_bounded_number_of_times() {
        let p = params(50, 3200, 3);
        assert_eq!(
            search(&p, 1000),
            (vec![50, 100, 200, 400, 800, 1600, 1200, 1000, 1100], 1000)
        );
        // Everything holds: it stops at the bound.
        assert_eq!(search(&p, usize::MAX).0.last(), Some(&3200));
        // Nothing holds: it bisects down from the start, then gives up with 0.
        assert_eq!(search(&p, 0), (vec![50, 25, 12, 6], 0));
        // A bound that is not a doubling of the start is tried itself.
        assert_eq!(search(&params(3, 10, 0), 100), (vec![3, 6, 10], 10));
        assert_eq!(search(&params(2, 4, 2), 3), (vec![2, 4, 3], 3));
    }

    #[test]
    fn a_step_has_a_turn_more_than_its_seconds_need() {
        let p = params(50, 3200, 3);
        let s = p.scenario();
        assert_eq!((s.deltas, s.bytes), (100, 60));
        assert_eq!(s.turn_seconds(), 3.0);
        assert_eq!(s.turns, 5);
        assert_eq!(p.max_steps(), 6 + 1 + 3);
    }
}
