//! Memory: server RSS per session holding a full ring, and per idle SSE stream.
//!
//! - **Per session**: M sessions each play one turn of `ring` messages (so their ring is full),
//!   one at a time per worker, each read to the end by a subscriber that then disconnects. The
//!   RSS growth divided by M is compared with the bytes of the frames the ring holds (counted
//!   by the client as it receives them): the target is ≤ 1.25× those bytes.
//! - **Per idle stream**: N streams opened at the sessions' last event (nothing to send) stay
//!   open while RSS is read; the growth divided by N is one idle stream's cost.
//!
//! RSS is what the kernel charges, allocator slack included, so these run first on a fresh
//! server, after a warm-up of M/10 sessions (which grows the buffers a host allocates once:
//! the writer's connection, the pool's, the runtime's queues), and their sessions stay alive until the whole run ends (freed memory that the
//! allocator keeps would otherwise be reused by the next run and hide its growth).

use super::fixtures::Scenario;
use super::report::{Counts, Goal, Metric};
use super::subscriber::{follow, Follow};
use super::target::Target;
use super::Measured;
use anyhow::Context;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub sessions: usize,
    pub idle_streams: usize,
    pub bytes: usize,
}

const SETTLE: Duration = Duration::from_millis(500);
const WORKERS: usize = 16;

/// Fills `sessions` sessions; returns their ids and the bytes of the frames each ring holds.
async fn fill(
    target: &Target,
    p: Params,
    counts: &mut Counts,
) -> anyhow::Result<(Vec<String>, f64)> {
    let ring = target.ring_size;
    let scenario = Scenario::new(1, ring, p.bytes);
    let fixture = scenario.write(&target.fixtures)?;
    let last = scenario.events();
    let client = &target.client;
    let opts = Follow {
        until: last,
        record_times: false,
        tail_from: last.saturating_sub(ring as u64),
    };
    let done: Vec<_> = stream::iter(0..p.sessions)
        .map(|_| async {
            let id = client.create(&fixture).await?;
            let conn = client.stream(&id, 0).await?;
            let reader = tokio::spawn(follow(conn, 0, opts));
            client.say(&id, "fill").await?;
            let f = reader.await.context("subscriber task")??;
            anyhow::Ok((id, f))
        })
        .buffer_unordered(WORKERS)
        .try_collect()
        .await?;
    let mut ids = Vec::new();
    let mut ring_bytes = 0u64;
    for (id, f) in done {
        counts.add(Counts {
            expected: last,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        });
        ring_bytes += f.tail_bytes;
        ids.push(id);
    }
    Ok((ids, ring_bytes as f64 / p.sessions as f64))
}

/// Runs both measurements; the sessions it made are added to `keep` (deleted at the end).
pub async fn run(target: &Target, p: Params, keep: &mut Vec<String>) -> anyhow::Result<Measured> {
    let rss = || {
        target.server_rss_kib().ok_or(super::Missing(
            "memory needs the server's pid (--server-pid)",
        ))
    };
    let ring = target.ring_size;
    let mut counts = Counts::default();
    // Warm-up: grows what the host allocates once (the writer's and the pool's connection
    // buffers, runtime queues) so that the measured growth is the sessions' own.
    let warm = Params {
        sessions: (p.sessions / 10).max(1),
        ..p
    };
    let (warm_ids, _) = fill(target, warm, &mut counts).await?;
    keep.extend(warm_ids);
    tokio::time::sleep(SETTLE).await;
    let before = rss()?;
    let (ids, ring_bytes) = fill(target, p, &mut counts).await?;
    keep.extend(ids.iter().cloned());
    tokio::time::sleep(SETTLE).await;
    let after = rss()?;
    let per_session = (after.saturating_sub(before) * 1024) as f64 / p.sessions as f64;

    let last = Scenario::new(1, ring, p.bytes).events();
    let client = &target.client;
    let streams: Vec<_> = stream::iter(0..p.idle_streams)
        .map(|i| client.stream(&ids[i % ids.len()], last))
        .buffer_unordered(WORKERS)
        .try_collect()
        .await?;
    tokio::time::sleep(SETTLE).await;
    let with_streams = rss()?;
    drop(streams);
    let per_stream = (with_streams.saturating_sub(after) * 1024) as f64 / p.idle_streams as f64;

    Ok(Measured {
        metrics: vec![
            Metric::new(
                format!("memory_session_ring{ring}_kib"),
                format!("RSS per session, full ring of {ring}"),
                "KiB",
                per_session / 1024.0,
            ),
            Metric::new(
                format!("memory_session_ring{ring}_vs_frames"),
                "RSS per session / its frames' bytes",
                "ratio",
                per_session / ring_bytes,
            )
            .goal(Goal::AtMost(1.25)),
            Metric::new(
                format!("memory_ring{ring}_frame_bytes_kib"),
                format!("bytes of {ring} encoded frames"),
                "KiB",
                ring_bytes / 1024.0,
            ),
            Metric::new(
                "memory_idle_stream_kib",
                "RSS per idle SSE stream",
                "KiB",
                per_stream / 1024.0,
            )
            .goal(Goal::AtMost(8.0)),
        ],
        counts: Some(counts),
    })
}
