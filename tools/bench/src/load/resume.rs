//! Resume: how fast a reconnecting subscriber catches up, from Postgres and from the ring.
//!
//! One session is filled with R events (one turn of R messages). Then:
//! - **from Postgres**: a stream with `Last-Event-ID: 0` reads all R events; all but the last
//!   ring's worth come from keyset pages of the table, the rest from the ring;
//! - **from the ring**: streams with `Last-Event-ID: last - ring` read the whole ring, one
//!   connection after the other, until R events have been read (that is what many clients
//!   reconnecting inside the ring do; with `--ring-size` ≥ R it is one long replay instead).
//!
//! Each rate runs from sending the request to receiving the last event.

use super::fixtures::Scenario;
use super::report::{Counts, Goal, Metric};
use super::subscriber::{follow, Follow};
use super::target::Target;
use super::Measured;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub events: usize,
    pub bytes: usize,
}

fn opts(until: u64) -> Follow {
    Follow {
        until,
        record_times: false,
        tail_from: u64::MAX,
    }
}

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let scenario = Scenario::new(1, p.events, p.bytes);
    let fixture = scenario.write(&target.fixtures)?;
    let client = &target.client;
    let last = scenario.events();
    let id = client.create(&fixture).await?;
    let conn = client.stream(&id, 0).await?;
    let t0 = Instant::now();
    let reader = tokio::spawn(follow(conn, 0, opts(last)));
    client.say(&id, "fill").await?;
    let filled = reader.await??;
    let fill_rate = (last - 1) as f64 / (filled.finished.unwrap_or(t0) - t0).as_secs_f64();
    let mut counts = Counts::default();
    let mut tally = |f: &super::subscriber::Followed, expected: u64| {
        counts.add(Counts {
            expected,
            received: f.received,
            duplicates: f.duplicates,
            gaps: f.gaps,
        })
    };
    tally(&filled, last);

    let t0 = Instant::now();
    let from_pg = follow(client.stream(&id, 0).await?, 0, opts(last)).await?;
    let pg_rate = last as f64 / t0.elapsed().as_secs_f64();
    tally(&from_pg, last);

    let ring = (target.ring_size as u64).min(last);
    let after = last - ring;
    let mut read = 0u64;
    let t0 = Instant::now();
    while read < p.events as u64 {
        let f = follow(client.stream(&id, after).await?, after, opts(last)).await?;
        read += f.received;
        tally(&f, ring);
    }
    let ring_rate = read as f64 / t0.elapsed().as_secs_f64();
    client.delete(&id).await?;

    let r = p.events;
    Ok(Measured {
        metrics: vec![
            Metric::new(
                format!("resume_pg_{r}_events_per_s"),
                format!("resume {r} from Postgres"),
                "events/s",
                pg_rate,
            )
            .goal(Goal::AtLeast(200_000.0)),
            Metric::new(
                format!("resume_ring_{r}_events_per_s"),
                format!("resume {r} from the ring ({ring}/conn)"),
                "events/s",
                ring_rate,
            ),
            Metric::new(
                format!("resume_fill_{r}_events_per_s"),
                format!("one session filling {r} (1 sub)"),
                "events/s",
                fill_rate,
            ),
        ],
        counts: Some(counts),
    })
}
