//! Takeover: SIGKILL the busiest host behind the load balancer while turns stream, and time
//! how long its sessions' clients go without events.
//!
//! The tool starts its own [`Fleet`] (three hosts and HAProxy on its throwaway Postgres), so
//! it does not run against `--url`. S sessions are created through the balancer, each with
//! one [`reconnect`](super::reconnect) subscriber through it, and get T user messages at once
//! (one turn runs, the rest queue); each turn is paced at R events/s by `delay` steps. Once
//! every subscriber is receiving, the host owning the most sessions (`sessions.owner`) is
//! SIGKILLed. Per session it owned:
//! - **kill → first event**: the first event read on a stream opened after the kill, the
//!   client-visible gap. The running turn dies with its host; the host that takes the session
//!   over reports it (`error` `turn_lost` and a failed `result`), and the queued turns run.
//! - **kill → 200**: the response head of the first reconnect after the kill (HAProxy's
//!   retry to another host plus that host claiming the session from Postgres).
//!
//! When every session has its T results in the `events` table, each subscriber must hold
//! exactly that session's events, once each and in order: the counts are against the table.

use super::fixtures::Scenario;
use super::fleet::{Fleet, HostConfig};
use super::reconnect::{Resumed, Subscriber};
use super::report::{Counts, Metric};
use super::stats::{percentile, sort};
use super::target::Target;
use super::{Measured, Missing};
use anyhow::{bail, Context};
use futures::future::try_join_all;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Params {
    pub sessions: usize,
    pub turns: usize,
    /// Events per second of each session's turn.
    pub rate: f64,
    pub turn_seconds: f64,
    pub bytes: usize,
    /// The server binary the hosts run; `None` when the target is a server the tool did not
    /// start (`--url`), which has no fleet for this scenario.
    pub server_bin: Option<PathBuf>,
}

/// Pacing period of the turns: bursts of `rate × PERIOD_S` messages (timers are ~1 ms coarse).
const PERIOD_S: f64 = 0.010;
/// Bound of each wait on the fleet (ownership, events flowing).
const WAIT: Duration = Duration::from_secs(30);

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let Some(bin) = &p.server_bin else {
        return Err(Missing("takeover needs the tool to start its own fleet (no --url)").into());
    };
    let url = target.database_url.as_deref().ok_or(Missing(
        "takeover needs the tool's throwaway database for its fleet",
    ))?;
    let per_burst = (p.rate * PERIOD_S).round().max(1.0) as usize;
    let messages = ((p.rate * p.turn_seconds).round() as usize).max(per_burst);
    let scenario = Scenario::new(p.turns, messages, p.bytes).paced(per_burst, PERIOD_S);
    let fixture = scenario.write(&target.fixtures)?;
    let fleet = Fleet::start(HostConfig {
        bin,
        database_url: url,
        fixtures: &target.fixtures,
        ring_size: target.ring_size,
    })
    .await?;
    let measured = drive(&fleet, url, &fixture, messages, &p).await;
    fleet.stop().await;
    measured
}

async fn drive(
    fleet: &Fleet,
    db_url: &str,
    fixture: &str,
    messages: usize,
    p: &Params,
) -> anyhow::Result<Measured> {
    let (db, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let lb = &fleet.lb;
    let ids = try_join_all((0..p.sessions).map(|_| lb.create(fixture))).await?;
    let uuids = ids
        .iter()
        .map(|id| id.parse())
        .collect::<Result<Vec<Uuid>, _>>()?;
    // The first stream of a session claims it for the host the balancer sends it to.
    let firsts = try_join_all(ids.iter().map(|id| async move {
        let conn = lb.stream(id, 0).await?;
        anyhow::Ok((conn, Instant::now()))
    }))
    .await?;
    let budget = Duration::from_secs_f64(p.turns as f64 * p.turn_seconds * 3.0) + WAIT * 2;
    let deadline = Instant::now() + budget;
    let mut untils = Vec::new();
    let mut progress = Vec::new();
    // Dropped on any error below, which stops the subscribers with it.
    let mut readers = JoinSet::new();
    for (i, (id, (first, opened))) in ids.iter().zip(firsts).enumerate() {
        let (tx, until) = watch::channel(u64::MAX);
        let sub = Subscriber {
            client: lb.clone(),
            session: id.clone(),
            progress: Arc::new(AtomicU64::new(0)),
            until,
            deadline,
        };
        untils.push(tx);
        progress.push(sub.progress.clone());
        readers.spawn(async move { (i, sub.run(first, opened).await) });
    }
    try_join_all(ids.iter().map(|id| async move {
        for _ in 0..p.turns {
            lb.say(id, "go").await?;
        }
        anyhow::Ok(())
    }))
    .await?;

    // Kill once every turn is a quarter through, so it dies mid-turn.
    let flowing = 1 + messages as u64 / 4;
    let flowing_by = Instant::now() + WAIT;
    while !progress
        .iter()
        .all(|p| p.load(Ordering::Relaxed) >= flowing)
    {
        if Instant::now() >= flowing_by {
            bail!("events did not reach every subscriber within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let owners = owners(&db, &uuids).await?;
    let (victim, taken) = busiest(&owners).context("no session is owned")?;
    let killed_at = fleet.kill(&victim)?;

    let tables = wait_for_turns(&db, &uuids, p.turns, deadline).await?;
    for (tx, (_, last)) in untils.iter().zip(&tables) {
        let _ = tx.send(*last);
    }
    let mut resumed: Vec<Option<Resumed>> = (0..ids.len()).map(|_| None).collect();
    while let Some(done) = readers.join_next().await {
        let (i, r) = done.context("subscriber task")?;
        resumed[i] = Some(r);
    }
    let mut counts = Counts::default();
    let (mut to_event, mut to_200) = (Vec::new(), Vec::new());
    for ((r, uuid), (rows, _)) in resumed.into_iter().zip(&uuids).zip(&tables) {
        let r = r.context("a subscriber did not report")?;
        if let Some(why) = &r.gave_up {
            eprintln!("bench: takeover: {why}");
        }
        counts.add(Counts {
            expected: *rows,
            received: r.received,
            duplicates: r.duplicates,
            gaps: r.gaps,
        });
        if !taken.contains(uuid) {
            continue;
        }
        let after: Vec<_> = r.streams.iter().filter(|s| s.at > killed_at).collect();
        if let Some(s) = after.first() {
            to_200.push((s.at - killed_at).as_secs_f64() * 1e3);
        }
        if let Some(t) = after.iter().filter_map(|s| s.first_event).min() {
            to_event.push((t - killed_at).as_secs_f64() * 1e3);
        }
    }
    let lost: i64 = db
        .query_one(
            "SELECT count(*) FROM events WHERE session_id = ANY($1) \
             AND event = 'error' AND data->>'code' = 'turn_lost'",
            &[&uuids],
        )
        .await?
        .get(0);
    let (to_event, to_200) = (sort(to_event), sort(to_200));
    let ms = |key: &str, label: &str, v: f64| {
        Metric::new(
            format!("takeover_{key}_ms"),
            format!("takeover: {label}"),
            "ms",
            v,
        )
    };
    let metrics = vec![
        ms(
            "event_p50",
            "kill -> first resumed event, p50",
            percentile(&to_event, 50.0),
        ),
        ms(
            "event_max",
            "kill -> first resumed event, max",
            percentile(&to_event, 100.0),
        ),
        ms(
            "200_p50",
            "kill -> 200 of the reconnect, p50",
            percentile(&to_200, 50.0),
        ),
        ms(
            "200_max",
            "kill -> 200 of the reconnect, max",
            percentile(&to_200, 100.0),
        ),
        Metric::new(
            "takeover_sessions",
            "takeover: sessions on the killed host",
            "sessions",
            taken.len() as f64,
        ),
        Metric::new(
            "takeover_lost_turns",
            "takeover: turns reported lost (turn_lost)",
            "turns",
            lost as f64,
        ),
    ];
    Ok(Measured {
        metrics,
        counts: Some(counts),
    })
}

/// Owner host name of each session, once every one has been claimed.
async fn owners(
    db: &tokio_postgres::Client,
    ids: &[Uuid],
) -> anyhow::Result<HashMap<Uuid, String>> {
    let query = "SELECT s.id, h.name FROM sessions s JOIN hosts h ON h.id = s.owner \
                 WHERE s.id = ANY($1)";
    let deadline = Instant::now() + WAIT;
    loop {
        let owned: HashMap<Uuid, String> = db
            .query(query, &[&ids])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if owned.len() == ids.len() {
            return Ok(owned);
        }
        if Instant::now() >= deadline {
            bail!(
                "only {} of {} sessions were claimed",
                owned.len(),
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The host owning the most sessions, and those sessions.
fn busiest(owners: &HashMap<Uuid, String>) -> Option<(String, Vec<Uuid>)> {
    let mut by_host: HashMap<&str, Vec<Uuid>> = HashMap::new();
    for (id, host) in owners {
        by_host.entry(host).or_default().push(*id);
    }
    let (host, ids) = by_host.into_iter().max_by_key(|(_, ids)| ids.len())?;
    Some((host.to_owned(), ids))
}

/// Waits until every session has `turns` results in the table (a lost turn has one too), and
/// returns `(events, last id)` of each, in the order of `ids`.
async fn wait_for_turns(
    db: &tokio_postgres::Client,
    ids: &[Uuid],
    turns: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<(u64, u64)>> {
    let query = "SELECT session_id, count(*) FILTER (WHERE event = 'result'), count(*), \
                 max(seq) FROM events WHERE session_id = ANY($1) GROUP BY session_id";
    loop {
        let rows = db.query(query, &[&ids]).await?;
        let done: HashMap<Uuid, (u64, u64)> = rows
            .iter()
            .filter(|r| r.get::<_, i64>(1) >= turns as i64)
            .map(|r| {
                (
                    r.get(0),
                    (r.get::<_, i64>(2) as u64, r.get::<_, i64>(3) as u64),
                )
            })
            .collect();
        if done.len() == ids.len() {
            return Ok(ids.iter().map(|id| done[id]).collect());
        }
        if Instant::now() >= deadline {
            bail!(
                "{} of {} sessions finished their {turns} turns in time",
                done.len(),
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
