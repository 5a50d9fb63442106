//! Fan-out: one session, K subscribers, events at a steady pace; for each event, the spread is
//! the time between the first and the last subscriber receiving it.
//!
//! The pace (default 200 events/s, one event per `delay`) keeps events apart, so the spread
//! measures delivering one event to K streams, not a backlog draining. Arrival times are taken
//! by the load tool as it parses each frame, so the tool's own scheduling is part of the
//! figure: its CPU is reported next to it.

use super::cpu::Cpu;
use super::fixtures::Scenario;
use super::report::{Counts, Goal, Metric};
use super::stats::{percentile, sort};
use super::subscriber::{follow, Follow};
use super::target::Target;
use super::Measured;
use anyhow::Context;
use futures::future::try_join_all;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub subscribers: usize,
    pub events: usize,
    pub rate: f64,
    pub bytes: usize,
}

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let scenario = Scenario::new(1, p.events, p.bytes).paced(1, 1.0 / p.rate);
    let fixture = scenario.write(&target.fixtures)?;
    let client = &target.client;
    let last = scenario.events();
    let id = client.create(&fixture).await?;
    let conns = try_join_all((0..p.subscribers).map(|_| client.stream(&id, 0))).await?;
    let opts = Follow {
        until: last,
        record_times: true,
        tail_from: u64::MAX,
    };
    let readers: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(follow(c, 0, opts)))
        .collect();
    let cpu = Cpu::start(target);
    let t0 = Instant::now();
    client.say(&id, "go").await?;
    let mut first = vec![None::<Instant>; last as usize + 1];
    let mut latest = vec![None::<Instant>; last as usize + 1];
    let mut counts = Counts::default();
    for r in readers {
        let f = r.await.context("subscriber task")??;
        counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
        for (id, at) in f.times {
            let i = id as usize;
            first[i] = Some(first[i].map_or(at, |t: Instant| t.min(at)));
            latest[i] = Some(latest[i].map_or(at, |t: Instant| t.max(at)));
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu.finish(target, elapsed);
    client.delete(&id).await?;
    // Event 1 (session_ready) was delivered on connect, not fanned out live.
    let spreads = sort(
        (2..=last as usize)
            .filter_map(|i| Some((latest[i]? - first[i]?).as_secs_f64() * 1e3))
            .collect(),
    );
    let k = p.subscribers;
    let key = format!("fanout_k{k}");
    let label = format!("fan-out to {k}");
    let mut metrics = vec![
        Metric::new(
            format!("{key}_spread_p50_ms"),
            format!("{label}: spread p50"),
            "ms",
            percentile(&spreads, 50.0),
        ),
        Metric::new(
            format!("{key}_spread_p99_ms"),
            format!("{label}: spread p99"),
            "ms",
            percentile(&spreads, 99.0),
        )
        .goal(Goal::AtMost(2.0)),
        Metric::new(
            format!("{key}_spread_max_ms"),
            format!("{label}: spread max"),
            "ms",
            percentile(&spreads, 100.0),
        ),
    ];
    metrics.extend(cpu.metrics(&key, &label));
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}
