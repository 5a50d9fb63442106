//! Commit→delivery lag under a fixed event rate.
//!
//! The load tool cannot see inside the server, and a scenario cannot carry timestamps, so the
//! reference points come from Postgres, read after the run for every event:
//! - **commit**: `pg_xact_commit_timestamp(xmin)`, when the transaction that inserted the event
//!   wrote its commit record (just before the WAL flush). Needs `track_commit_timestamp = on`,
//!   which the tool sets on the cluster it starts. Lag = WAL flush + the answer to the server +
//!   publish + SSE write + the client's read: this is the target's commit→delivery.
//! - **insert**: `events.created_at` (`now()`, the start of that transaction, which is one
//!   statement per batch). Lag = insert + commit + the rest. Always available; used for the
//!   target when commit timestamps are not.
//!
//! Both clocks are the same machine's realtime clock (the tool maps its monotonic arrival
//! instants onto it through one anchor). Neither includes the wait in the writer's queue while
//! the previous batch commits (at most one commit), so emit→delivery is at most the insert
//! figure plus one commit.
//!
//! The rate comes from the agent: each session plays bursts of n messages separated by 10 ms
//! `delay` steps. Timers overshoot, so the achieved rate is measured and reported too.

use super::cpu::Cpu;
use super::fixtures::Scenario;
use super::report::{Counts, Goal, Metric};
use super::stats::{percentile, sort};
use super::subscriber::{follow, Follow};
use super::target::Target;
use super::Measured;
use anyhow::Context;
use futures::future::try_join_all;
use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub sessions: usize,
    pub rate: f64,
    pub seconds: f64,
    pub bytes: usize,
    /// Streams from a second host that does not own the sessions (it follows the owner's
    /// commits through LISTEN/NOTIFY): commit→delivery at a follower.
    pub follower: bool,
}

const PERIOD_S: f64 = 0.010;

/// `(wal_sync, wal_sync_time ms)` from `pg_stat_wal`, when `track_wal_io_timing` is on (the
/// commit figure includes the WAL flush, so the two are reported side by side).
async fn wal_syncs(db: &tokio_postgres::Client) -> Option<(i64, f64)> {
    let on: String = db
        .query_one("SELECT current_setting('track_wal_io_timing')", &[])
        .await
        .ok()?
        .get(0);
    if on != "on" {
        return None;
    }
    let row = db
        .query_one("SELECT wal_sync, wal_sync_time FROM pg_stat_wal", &[])
        .await
        .ok()?;
    Some((row.get(0), row.get(1)))
}

/// One reading of the realtime and the monotonic clock, to map arrival instants onto the
/// realtime clock that Postgres's timestamps are in.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// Microseconds since the Unix epoch at `mono`.
    unix_us: i64,
    pub mono: Instant,
}

impl Clock {
    pub fn now() -> Clock {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            unix_us: since.as_micros() as i64,
            mono: Instant::now(),
        }
    }

    fn unix_us(&self, at: Instant) -> i64 {
        self.unix_us + at.saturating_duration_since(self.mono).as_micros() as i64
            - self.mono.saturating_duration_since(at).as_micros() as i64
    }
}

/// The lags of one delivered event.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it arrived at its subscriber.
    pub at: Instant,
    /// Arrival − `events.created_at` (the start of the inserting transaction), ms.
    pub insert_ms: f64,
    /// Arrival − the inserting transaction's commit timestamp, ms (with
    /// `track_commit_timestamp`).
    pub commit_ms: Option<f64>,
}

/// Reads the reference timestamps of every event of `ids` after `session_ready` and pairs them
/// with the arrivals (`(id, instant)` per session, in the order of `ids`); events that did not
/// arrive are left out. Shared by the lag and capacity scenarios.
pub async fn samples(
    db: &tokio_postgres::Client,
    ids: &[String],
    arrivals: &[Vec<(u64, Instant)>],
    clock: Clock,
) -> anyhow::Result<Vec<Sample>> {
    let tracked: String = db
        .query_one("SELECT current_setting('track_commit_timestamp')", &[])
        .await?
        .get(0);
    let commit_ts = if tracked == "on" {
        "pg_xact_commit_timestamp(xmin)"
    } else {
        "NULL::timestamptz"
    };
    let query = db
        .prepare(&format!(
            "SELECT seq, (extract(epoch FROM created_at) * 1000000)::int8, \
             (extract(epoch FROM {commit_ts}) * 1000000)::int8 \
             FROM events WHERE session_id = $1 AND seq > 1"
        ))
        .await?;
    let mut out = Vec::with_capacity(arrivals.iter().map(Vec::len).sum());
    for (id, times) in ids.iter().zip(arrivals) {
        let sid: uuid::Uuid = id.parse()?;
        let times: HashMap<u64, Instant> = times.iter().copied().collect();
        for row in db.query(&query, &[&sid]).await? {
            let (seq, created_us): (i64, i64) = (row.get(0), row.get(1));
            let committed_us: Option<i64> = row.get(2);
            let Some(&at) = times.get(&(seq as u64)) else {
                continue;
            };
            let arrival_us = clock.unix_us(at);
            out.push(Sample {
                at,
                insert_ms: (arrival_us - created_us) as f64 / 1e3,
                commit_ms: committed_us.map(|c| (arrival_us - c) as f64 / 1e3),
            });
        }
    }
    Ok(out)
}

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let url = target.database_url.as_deref().ok_or(super::Missing(
        "the lag scenario reads the events table: give --database-url",
    ))?;
    let per_burst = ((p.rate / p.sessions as f64) * PERIOD_S).round().max(1.0) as usize;
    let bursts = (p.seconds / PERIOD_S).round().max(1.0) as usize;
    let scenario = Scenario::new(1, per_burst * bursts, p.bytes).paced(per_burst, PERIOD_S);
    let fixture = scenario.write(&target.fixtures)?;
    let client = &target.client;
    let last = scenario.events();
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let ids = try_join_all((0..p.sessions).map(|_| client.create(&fixture))).await?;
    let streams = if p.follower {
        // The first host claims each session (a stream there), the second then follows it.
        let claims = try_join_all(ids.iter().map(|id| client.stream(id, 0))).await?;
        drop(claims);
        target.follower().await?
    } else {
        client
    };
    let conns = try_join_all(ids.iter().map(|id| streams.stream(id, 0))).await?;
    let opts = Follow {
        until: last,
        record_times: true,
        tail_from: u64::MAX,
    };
    let readers: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(follow(c, 0, opts)))
        .collect();
    let wal_before = wal_syncs(&db).await;
    let clock = Clock::now();
    let cpu = Cpu::start(target);
    try_join_all(ids.iter().map(|id| client.say(id, "go"))).await?;
    let mut arrivals = Vec::new();
    let mut counts = Counts::default();
    for r in readers {
        let f = r.await.context("subscriber task")??;
        counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
        arrivals.push(f.times);
    }
    let elapsed = clock.mono.elapsed().as_secs_f64();
    let cpu = cpu.finish(target, elapsed);

    let wal_after = wal_syncs(&db).await;
    let samples = samples(&db, &ids, &arrivals, clock).await?;
    let (first, latest) = (
        samples.iter().map(|s| s.at).min(),
        samples.iter().map(|s| s.at).max(),
    );
    let from_insert: Vec<f64> = samples.iter().map(|s| s.insert_ms).collect();
    let from_commit: Vec<f64> = samples.iter().filter_map(|s| s.commit_ms).collect();
    try_join_all(ids.iter().map(|id| client.delete(id))).await?;
    let span = match (first, latest) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => f64::NAN,
    };
    let achieved = from_insert.len() as f64 / span;
    let (key, label) = if p.follower {
        let key = format!("follower_lag_{}", p.rate as u64);
        (key, format!("follower lag at {} ev/s", p.rate as u64))
    } else {
        let key = format!("lag_{}", p.rate as u64);
        (key, format!("lag at {} ev/s", p.rate as u64))
    };
    // Targets: the owner's (issue 8) and, at a follower, issue 14's.
    let (p50_goal, p99_goal) = if p.follower { (3.0, 15.0) } else { (2.0, 10.0) };
    // The target is commit->delivery; without commit timestamps the insert-based figure (an
    // upper bound of it) stands in, under its own name.
    let (target_key, target_label, target) = if from_commit.is_empty() {
        ("insert", "insert->delivery", sort(from_insert.clone()))
    } else {
        ("commit", "commit->delivery", sort(from_commit))
    };
    let from_insert = sort(from_insert);
    let mut metrics = vec![
        Metric::new(
            format!("{key}_{target_key}_p50_ms"),
            format!("{label}: {target_label} p50"),
            "ms",
            percentile(&target, 50.0),
        )
        .goal(Goal::AtMost(p50_goal))
        .limit("limit_commit_ms"),
        Metric::new(
            format!("{key}_{target_key}_p99_ms"),
            format!("{label}: {target_label} p99"),
            "ms",
            percentile(&target, 99.0),
        )
        .goal(Goal::AtMost(p99_goal)),
        Metric::new(
            format!("{key}_{target_key}_max_ms"),
            format!("{label}: {target_label} max"),
            "ms",
            percentile(&target, 100.0),
        ),
    ];
    if target_key == "commit" {
        metrics.push(Metric::new(
            format!("{key}_insert_p50_ms"),
            format!("{label}: insert->delivery p50"),
            "ms",
            percentile(&from_insert, 50.0),
        ));
        metrics.push(Metric::new(
            format!("{key}_insert_p99_ms"),
            format!("{label}: insert->delivery p99"),
            "ms",
            percentile(&from_insert, 99.0),
        ));
    }
    if let (Some((n0, t0)), Some((n1, t1))) = (wal_before, wal_after) {
        if n1 > n0 {
            metrics.push(Metric::new(
                format!("{key}_wal_sync_ms"),
                format!("{label}: mean WAL fsync meanwhile"),
                "ms",
                (t1 - t0) / (n1 - n0) as f64,
            ));
        }
    }
    metrics.push(Metric::new(
        format!("{key}_achieved"),
        format!("{label}: achieved rate"),
        "events/s",
        achieved,
    ));
    metrics.extend(cpu.metrics(&key, &label));
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}
