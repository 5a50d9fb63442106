//! One step of the capacity search: S sessions streaming at model pace, one subscriber each.
//!
//! All streams are open before the first input. Session i then sends its turns' user messages
//! (they queue; one turn runs at a time) at i/S of a turn after the start, so the sessions'
//! turns are spread like independent users' rather than in lockstep. Full load is from when the
//! last session starts (one turn in) to when the first one ends (its last turn): server and
//! Postgres CPU, RSS, lags and rates are taken over that window. A step that errs (a refused
//! request, a stream that ends early, a deadline missed) did not hold, with the reason kept.

use super::super::cpu::{Cpu, CpuUse};
use super::super::lag::{self, Clock};
use super::super::report::Counts;
use super::super::stats::{percentile, sort};
use super::super::subscriber::{follow, Follow, Followed};
use super::super::target::Target;
use super::Params;
use anyhow::{bail, Context};
use futures::stream::{self, StreamExt, TryStreamExt};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Requests in flight while sessions are created, opened and deleted.
const CONCURRENCY: usize = 32;

/// What one step measured.
pub struct Outcome {
    pub sessions: usize,
    pub counts: Counts,
    /// Why the step failed outright, if it did.
    pub error: Option<String>,
    pub lag: Option<Lag>,
    /// Deltas per second per session, over whole turns (first to last delta).
    pub rate: f64,
    /// Events per second delivered over the window of full load.
    pub events_per_s: f64,
    /// Server RSS at the end of the window minus before the first step, KiB.
    pub rss_growth_kib: Option<f64>,
    pub cpu: CpuUse,
}

/// The lag the step is judged by: the best reference point the target offers.
pub struct Lag {
    pub key: &'static str,
    pub label: &'static str,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Outcome {
    fn new(sessions: usize) -> Outcome {
        Outcome {
            sessions,
            counts: Counts::default(),
            error: None,
            lag: None,
            rate: f64::NAN,
            events_per_s: f64::NAN,
            rss_growth_kib: None,
            cpu: CpuUse {
                client: f64::NAN,
                server: None,
                pg: None,
            },
        }
    }

    /// Why the step did not hold, or `None` if it held.
    fn failure(&self, p: &Params) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.clone());
        }
        let c = self.counts;
        if !c.exact() || c.expected == 0 {
            return Some(format!(
                "{} of {} events, {} duplicates, {} gaps",
                c.received, c.expected, c.duplicates, c.gaps
            ));
        }
        let lag = self.lag.as_ref()?;
        // NaN (no samples) fails too: only a figure within the bound holds.
        let within = |v: f64, bound: f64| v.partial_cmp(&bound).is_some_and(|o| o.is_le());
        if !within(lag.p99, p.p99_ms) {
            return Some(format!(
                "{} p99 {:.1} ms > {} ms",
                lag.label, lag.p99, p.p99_ms
            ));
        }
        if !within(p.min_rate * p.rate, self.rate) {
            let least = p.min_rate * p.rate;
            return Some(format!(
                "{:.1} deltas/s per session < {least:.1}",
                self.rate
            ));
        }
        None
    }

    pub fn held(&self, p: &Params) -> bool {
        self.failure(p).is_none()
    }

    /// One line for the progress output and the report's notes.
    pub fn describe(&self, p: &Params) -> String {
        let mut facts = Vec::new();
        if let Some(lag) = &self.lag {
            facts.push(format!("{} p99 {:.2} ms", lag.label, lag.p99));
        }
        if self.rate.is_finite() {
            facts.push(format!("{:.1} deltas/s per session", self.rate));
        }
        if self.events_per_s.is_finite() {
            facts.push(format!("{:.0} events/s", self.events_per_s));
        }
        if let (Some(s), Some(pg)) = (self.cpu.server, self.cpu.pg) {
            facts.push(format!("server {s:.2} / PG {pg:.2} cores"));
        }
        match self.failure(p) {
            None => format!("held ({})", facts.join(", ")),
            Some(why) if facts.is_empty() => format!("did not hold: {why}"),
            Some(why) => format!("did not hold: {why} ({})", facts.join(", ")),
        }
    }
}

/// The most a step may run past its start before it counts as stalled: twice its scripted
/// length (the stagger and every turn), plus time to open and read everything.
pub fn deadline(p: &Params) -> Duration {
    let s = p.scenario();
    let scripted = s.turn_seconds() * (s.turns + 1) as f64;
    Duration::from_secs_f64(scripted * 2.0 + 30.0)
}

/// Runs S = `sessions`; `Err` only for the tool's own failures (writing the fixture).
pub async fn run(
    target: &Target,
    p: &Params,
    sessions: usize,
    db: Option<&tokio_postgres::Client>,
    baseline_kib: Option<u64>,
) -> anyhow::Result<Outcome> {
    let fixture = p.scenario().write(&target.fixtures)?;
    let client = &target.client;
    let created: Vec<anyhow::Result<String>> = stream::iter(0..sessions)
        .map(|_| client.create(&fixture))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let (mut ids, mut refused) = (Vec::new(), None);
    for r in created {
        match r {
            Ok(id) => ids.push(id),
            Err(e) => drop(refused.get_or_insert(e)),
        }
    }
    let mut outcome = Outcome::new(sessions);
    let played = match refused {
        Some(e) => Err(e.context("create")),
        None => play(target, p, &ids, db, baseline_kib, &mut outcome).await,
    };
    if let Err(e) = played {
        outcome.error = Some(format!("{e:#}"));
    }
    // Whatever happened, the step leaves no load behind for the next one.
    let deleted: Vec<anyhow::Result<()>> = stream::iter(&ids)
        .map(|id| client.delete(id))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    if let Some(Err(e)) = deleted.into_iter().find(Result::is_err) {
        outcome.error.get_or_insert(format!("delete: {e:#}"));
    }
    Ok(outcome)
}

/// Streams, drives and measures the created sessions `ids`, filling `out`.
async fn play(
    target: &Target,
    p: &Params,
    ids: &[String],
    db: Option<&tokio_postgres::Client>,
    baseline_kib: Option<u64>,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let scenario = p.scenario();
    let client = &target.client;
    let last = scenario.events();
    let conns: Vec<_> = stream::iter(ids)
        .map(|id| client.stream(id, 0))
        .buffered(CONCURRENCY)
        .try_collect()
        .await
        .context("stream")?;
    let opts = Follow {
        until: last,
        record_times: true,
        tail_from: u64::MAX,
    };
    // JoinSets abort their tasks when dropped, so an early return stops every reader.
    let mut readers = JoinSet::new();
    for (i, conn) in conns.into_iter().enumerate() {
        readers.spawn(async move { (i, follow(conn, 0, opts).await) });
    }
    let clock = Clock::now();
    let t0 = clock.mono;
    let turn = Duration::from_secs_f64(scenario.turn_seconds());
    let mut drivers = JoinSet::new();
    for (i, id) in ids.iter().enumerate() {
        let (client, id) = (client.clone(), id.clone());
        let start = t0 + turn.mul_f64(i as f64 / ids.len() as f64);
        drivers.spawn(async move {
            tokio::time::sleep_until(start.into()).await;
            for t in 0..scenario.turns {
                client.say(&id, &format!("turn {t}")).await?;
            }
            anyhow::Ok(())
        });
    }
    let window = (t0 + turn, t0 + turn * scenario.turns as u32);
    tokio::time::sleep_until(window.0.into()).await;
    let cpu = Cpu::start(target);
    tokio::time::sleep_until(window.1.into()).await;
    out.cpu = cpu.finish(target, (window.1 - window.0).as_secs_f64());
    if let (Some(now), Some(base)) = (target.server_rss_kib(), baseline_kib) {
        out.rss_growth_kib = Some(now.saturating_sub(base) as f64);
    }
    while let Some(r) = drivers.join_next().await {
        r.context("input task")?.context("input")?;
    }
    let deadline = t0 + deadline(p);
    let mut followed: Vec<Option<Followed>> = (0..ids.len()).map(|_| None).collect();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), readers.join_next()).await;
        match next {
            Err(_) => bail!("not every event arrived within {:?}", deadline - t0),
            Ok(None) => break,
            Ok(Some(r)) => {
                let (i, f) = r.context("subscriber task")?;
                followed[i] = Some(f.context("subscriber")?);
            }
        }
    }
    let followed: Vec<Followed> = followed.into_iter().flatten().collect();
    for f in &followed {
        out.counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
    }
    let in_window = |at: Instant| at >= window.0 && at <= window.1;
    let arrivals: Vec<Vec<(u64, Instant)>> = followed.into_iter().map(|f| f.times).collect();
    let delivered = arrivals.iter().flatten().filter(|(_, at)| in_window(*at));
    out.events_per_s = delivered.count() as f64 / (window.1 - window.0).as_secs_f64();
    let pace = Pace::of(&arrivals, p, in_window);
    out.rate = pace.rate;
    out.lag = Some(match db {
        Some(db) => match lag::samples(db, ids, &arrivals, clock).await {
            Ok(samples) => from_samples(&samples, in_window),
            // Another server's database, without this schema: judge by arrival times.
            Err(_) => pace.lag(),
        },
        None => pace.lag(),
    });
    Ok(())
}

/// Commit→delivery (or insert→delivery without commit timestamps) over the window, or over
/// every event when the window holds none (a step too short to have full load).
fn from_samples(samples: &[lag::Sample], in_window: impl Fn(Instant) -> bool) -> Lag {
    let windowed: Vec<&lag::Sample> = samples.iter().filter(|s| in_window(s.at)).collect();
    let chosen: Vec<&lag::Sample> = match windowed.is_empty() {
        true => samples.iter().collect(),
        false => windowed,
    };
    let commit: Vec<f64> = chosen.iter().filter_map(|s| s.commit_ms).collect();
    let (key, label, values) = if !commit.is_empty() && commit.len() == chosen.len() {
        ("commit", "commit->delivery", commit)
    } else {
        let insert = chosen.iter().map(|s| s.insert_ms).collect();
        ("insert", "insert->delivery", insert)
    };
    summarize(key, label, values)
}

fn summarize(key: &'static str, label: &'static str, values: Vec<f64>) -> Lag {
    let sorted = sort(values);
    Lag {
        key,
        label,
        p50: percentile(&sorted, 50.0),
        p99: percentile(&sorted, 99.0),
        max: percentile(&sorted, 100.0),
    }
}

/// What the arrival times alone say: the deltas' rate per session, and how late each delta
/// came after the one before it beyond the scripted 1/R (the lag figure without a database).
struct Pace {
    rate: f64,
    late_ms: Vec<f64>,
}

impl Pace {
    fn of(
        arrivals: &[Vec<(u64, Instant)>],
        p: &Params,
        in_window: impl Fn(Instant) -> bool,
    ) -> Pace {
        let scenario = p.scenario();
        let period = 1.0 / p.rate;
        let (mut deltas, mut seconds) = (0u64, 0.0);
        let (mut late_ms, mut late_all_ms) = (Vec::new(), Vec::new());
        for times in arrivals {
            // Exact delivery (checked by the counts) puts id n at index n - 1.
            if times.len() as u64 != scenario.events() {
                continue;
            }
            let at = |id: u64| times[id as usize - 1].1;
            for k in 0..scenario.turns {
                let (first, last) = scenario.deltas_of(k);
                deltas += last - first;
                seconds += (at(last) - at(first)).as_secs_f64();
                for id in first + 1..=last {
                    let gap = (at(id) - at(id - 1)).as_secs_f64();
                    let late = (gap - period).max(0.0) * 1e3;
                    late_all_ms.push(late);
                    if in_window(at(id)) {
                        late_ms.push(late);
                    }
                }
            }
        }
        Pace {
            rate: deltas as f64 / seconds,
            // A step too short to have full load is judged over all of it.
            late_ms: if late_ms.is_empty() {
                late_all_ms
            } else {
                late_ms
            },
        }
    }

    fn lag(self) -> Lag {
        summarize("late", "delta lateness", self.late_ms)
    }
}
