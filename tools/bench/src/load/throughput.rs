//! Throughput: S sessions × K subscribers × T turns of E messages, as fast as it goes.
//!
//! All subscribers connect (from the start) before the clock starts, then every session gets
//! its T user messages at once (they queue; one turn runs at a time). The run ends when the
//! last subscriber has the last event. Committed events/s counts each event once; deliveries/s
//! counts it once per subscriber. Every event is committed before delivery by construction of
//! the server, so "delivered" here is "durable and delivered".

use super::cpu::Cpu;
use super::fixtures::Scenario;
use super::report::{Counts, Goal, Metric};
use super::subscriber::{follow, Follow};
use super::target::Target;
use super::Measured;
use anyhow::Context;
use futures::future::try_join_all;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub sessions: usize,
    pub subscribers: usize,
    pub turns: usize,
    pub messages: usize,
    pub bytes: usize,
}

/// Durable events delivered per second, the headline target.
pub const TARGET_EVENTS_PER_S: f64 = 50_000.0;

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let scenario = Scenario::new(p.turns, p.messages, p.bytes);
    let fixture = scenario.write(&target.fixtures)?;
    let client = &target.client;
    let last = scenario.events();
    let ids = try_join_all((0..p.sessions).map(|_| client.create(&fixture))).await?;
    // Open every stream first: a subscriber is registered once its response head is in.
    let conns = try_join_all(
        ids.iter()
            .flat_map(|id| (0..p.subscribers).map(move |_| client.stream(id, 0))),
    )
    .await?;
    let cpu = Cpu::start(target);
    let t0 = Instant::now();
    let opts = Follow {
        until: last,
        record_times: false,
        tail_from: u64::MAX,
    };
    let readers: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(follow(c, 0, opts)))
        .collect();
    try_join_all(ids.iter().map(|id| async move {
        for turn in 0..p.turns {
            client.say(id, &format!("turn {turn}")).await?;
        }
        anyhow::Ok(())
    }))
    .await?;
    let mut counts = Counts::default();
    let mut end = t0;
    for r in readers {
        let f = r.await.context("subscriber task")??;
        counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
        end = end.max(f.finished.unwrap_or(end));
    }
    let elapsed = (end - t0).as_secs_f64();
    let cpu = cpu.finish(target, elapsed);
    try_join_all(ids.iter().map(|id| client.delete(id))).await?;

    // session_ready (seq 1) was committed at creation, before the clock started.
    let committed = (p.sessions as u64 * (last - 1)) as f64;
    let k = p.subscribers;
    let tag = format!("s{}_k{k}_t{}_m{}", p.sessions, p.turns, p.messages);
    let mut metrics = vec![
        Metric::new(
            format!("throughput_{tag}_events_per_s"),
            format!("throughput {}x{k} committed+delivered", p.sessions),
            "events/s",
            committed / elapsed,
        )
        .goal(Goal::AtLeast(TARGET_EVENTS_PER_S))
        .limit("limit_copy_json_rows_per_s"),
        Metric::new(
            format!("throughput_{tag}_deliveries_per_s"),
            format!("throughput {}x{k} deliveries", p.sessions),
            "frames/s",
            committed * k as f64 / elapsed,
        ),
    ];
    if let (Some(server), Some(pg)) = (cpu.server, cpu.pg) {
        // Robust to other load on the machine: what the server and Postgres spend per event.
        metrics.push(Metric::new(
            format!("throughput_{tag}_events_per_cpu_s"),
            format!("throughput {}x{k} per server+PG CPU-second", p.sessions),
            "events/cpu-s",
            committed / ((server + pg) * elapsed),
        ));
    }
    if let Some(pg) = cpu.pg.filter(|pg| *pg > 0.0) {
        // One Postgres serves every host: its CPU per event sizes the fleet. "vs limit" is the
        // ratio to COPY's rows per Postgres CPU-second into the same schema (issue 19: ≥ 0.85).
        metrics.push(
            Metric::new(
                format!("throughput_{tag}_events_per_pg_cpu_s"),
                format!("throughput {}x{k} per Postgres CPU-second", p.sessions),
                "events/cpu-s",
                committed / (pg * elapsed),
            )
            .limit(super::limits::LIMIT_COPY_PER_PG_CPU_S),
        );
    }
    metrics.extend(cpu.metrics(
        &format!("throughput_{tag}"),
        &format!("throughput {}x{k}", p.sessions),
    ));
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}
