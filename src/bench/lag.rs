//! Commit→delivery lag under a fixed event rate.
//!
//! The load tool cannot see inside the server, and a scenario cannot carry timestamps, so the
//! reference point comes from Postgres: `events.created_at` defaults to `now()`, the start of
//! the transaction that inserted the event. The group-commit writer inserts each batch in one
//! single-statement transaction, so `created_at` is when that batch's commit began. The lag of
//! an event is then `arrival at the subscriber − created_at`: insert + WAL flush (fsync) +
//! publish + SSE write + the client's read. Both clocks are the same machine's realtime clock
//! (the tool maps its monotonic arrival instants onto it through one anchor). What the figure
//! leaves out is the wait in the writer's queue while the previous batch commits (at most one
//! commit time), so emit→delivery is at most this plus one commit.
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
}

const PERIOD_S: f64 = 0.010;

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let url = target
        .database_url
        .as_deref()
        .context("the lag scenario reads events.created_at: give --database-url")?;
    let per_burst = ((p.rate / p.sessions as f64) * PERIOD_S).round().max(1.0) as usize;
    let bursts = (p.seconds / PERIOD_S).round().max(1.0) as usize;
    let scenario = Scenario::new(1, per_burst * bursts, p.bytes).paced(per_burst, PERIOD_S);
    let fixture = scenario.write(&target.fixtures)?;
    let client = &target.client;
    let last = scenario.events();
    let ids = try_join_all((0..p.sessions).map(|_| client.create(&fixture))).await?;
    let conns = try_join_all(ids.iter().map(|id| client.stream(id, 0))).await?;
    let opts = Follow {
        until: last,
        record_times: true,
        tail_from: u64::MAX,
    };
    let readers: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(follow(c, 0, opts)))
        .collect();
    let (anchor_sys, anchor) = (SystemTime::now(), Instant::now());
    let cpu = Cpu::start(target);
    try_join_all(ids.iter().map(|id| client.say(id, "go"))).await?;
    let mut arrivals: Vec<HashMap<u64, Instant>> = Vec::new();
    let mut counts = Counts::default();
    for r in readers {
        let f = r.await.context("subscriber task")??;
        counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
        arrivals.push(f.times.into_iter().collect());
    }
    let elapsed = anchor.elapsed().as_secs_f64();
    let cpu = cpu.finish(target, elapsed);

    let anchor_us = anchor_sys.duration_since(UNIX_EPOCH)?.as_micros() as i64;
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let mut lags = Vec::new();
    let (mut first, mut latest) = (None::<Instant>, None::<Instant>);
    for (id, times) in ids.iter().zip(&arrivals) {
        let sid: uuid::Uuid = id.parse()?;
        let rows = db
            .query(
                "SELECT seq, (extract(epoch FROM created_at) * 1000000)::int8 \
                 FROM events WHERE session_id = $1 AND seq > 1",
                &[&sid],
            )
            .await?;
        for row in rows {
            let (seq, created_us): (i64, i64) = (row.get(0), row.get(1));
            let Some(at) = times.get(&(seq as u64)) else {
                continue;
            };
            first = Some(first.map_or(*at, |f| f.min(*at)));
            latest = Some(latest.map_or(*at, |l| l.max(*at)));
            let arrival_us = anchor_us + (*at - anchor).as_micros() as i64;
            lags.push((arrival_us - created_us) as f64 / 1e3);
        }
    }
    try_join_all(ids.iter().map(|id| client.delete(id))).await?;
    let span = match (first, latest) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => f64::NAN,
    };
    let achieved = lags.len() as f64 / span;
    let lags = sort(lags);
    let key = format!("lag_{}", p.rate as u64);
    let label = format!("lag at {} ev/s", p.rate as u64);
    let mut metrics = vec![
        Metric::new(
            format!("{key}_p50_ms"),
            format!("{label}: commit->delivery p50"),
            "ms",
            percentile(&lags, 50.0),
        )
        .goal(Goal::AtMost(2.0))
        .limit("limit_commit_ms"),
        Metric::new(
            format!("{key}_p99_ms"),
            format!("{label}: commit->delivery p99"),
            "ms",
            percentile(&lags, 99.0),
        )
        .goal(Goal::AtMost(10.0)),
        Metric::new(
            format!("{key}_max_ms"),
            format!("{label}: commit->delivery max"),
            "ms",
            percentile(&lags, 100.0),
        ),
        Metric::new(
            format!("{key}_achieved"),
            format!("{label}: achieved rate"),
            "events/s",
            achieved,
        ),
    ];
    metrics.extend(cpu.metrics(&key, &label));
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}
