//! Retention: events (and answered inputs) older than `--retention` are removed in the
//! background, in small batches, oldest first.
//!
//! Why batches rather than time partitions: a partitioned `events` would change the primary
//! key and every query of the hot path, and dropping a partition takes an `ACCESS EXCLUSIVE`
//! lock on the parent that queues behind (and then blocks) every append. A batch of a thousand
//! rows found through `events_created` is one short transaction that locks only the rows it
//! removes (see `sql/retention.sql` for why appends never wait for it), and pauses between
//! batches leave the disk to the writer.
//!
//! Ids never restart: a batch that removes a session's newest stored event raises
//! `sessions.last_seq` in the same statement. Resume into a removed range is `412
//! events_expired` (`session::subscription`), since the first stored seq is then past it.
//!
//! Transcripts (`transcripts`) go only as a whole, with their session, once the session has
//! had no activity for the retention period and no host holds it (`sql/retention_transcripts.sql`).
//!
//! Several hosts may run this at once; a transaction-level advisory lock lets one batch run
//! at a time and the others skip their turn.

use super::{Store, StoreError, LOCK_NS};
use crate::config::RetentionSettings;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Second key of the retention lock, under [`LOCK_NS`].
const RETENTION_LOCK: i32 = -2;
/// Pause between two batches of one run.
const BATCH_PAUSE: Duration = Duration::from_millis(20);

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub events: u64,
    pub inputs: u64,
    /// Sessions whose `last_seq` was raised (their newest event went).
    pub sessions_bumped: u64,
    /// Sessions whose whole transcript went (no activity for the retention period).
    pub transcripts: u64,
}

/// Sessions whose transcripts one batch removes, at most.
const TRANSCRIPTS_PER_BATCH: i64 = 100;

/// One batch: up to `limit` events and `limit` inputs created before `cutoff`. Runs in the
/// caller's transaction when `client` is one (tests hold it open to show appends go on).
pub async fn delete_batch(
    client: &impl tokio_postgres::GenericClient,
    cutoff: SystemTime,
    limit: i64,
) -> Result<Batch, StoreError> {
    let row = client
        .query_one(include_str!("sql/retention.sql"), &[&cutoff, &limit])
        .await?;
    // Accepted user messages whose turn has not finished are work still owed: they stay.
    let inputs = client
        .execute(
            "DELETE FROM inputs WHERE (session_id, id) IN ( \
                 SELECT session_id, id FROM inputs \
                 WHERE received_at < $1 \
                   AND (turn_state IS NULL OR turn_state NOT IN ('queued', 'running')) \
                 ORDER BY received_at LIMIT $2)",
            &[&cutoff, &limit],
        )
        .await?;
    // A transcript goes only whole, with its session's last activity older than the cutoff
    // (a conversation with a hole cannot be resumed); the session then starts a new
    // conversation at its next turn (`resume_token` cleared in the same statement).
    let transcripts = client
        .query_one(
            include_str!("sql/retention_transcripts.sql"),
            &[&cutoff, &TRANSCRIPTS_PER_BATCH],
        )
        .await?
        .get::<_, i64>(0) as u64;
    Ok(Batch {
        events: row.get::<_, i64>(0) as u64,
        inputs,
        sessions_bumped: row.get::<_, i64>(1) as u64,
        transcripts,
    })
}

/// Removes everything older than `max_age` in batches of `limit`, until a batch comes back
/// short. Returns the totals; a run another host holds the lock for removes nothing.
pub async fn run_once(store: &Store, max_age: Duration, limit: i64) -> Result<Batch, StoreError> {
    let cutoff = SystemTime::now()
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut total = Batch::default();
    loop {
        let mut client = store.client().await?;
        let tx = client.transaction().await?;
        let locked: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, $2)",
                &[&LOCK_NS, &RETENTION_LOCK],
            )
            .await?
            .get(0);
        if !locked {
            return Ok(total);
        }
        let batch = delete_batch(&*tx, cutoff, limit).await?;
        tx.commit().await?;
        total.events += batch.events;
        total.inputs += batch.inputs;
        total.sessions_bumped += batch.sessions_bumped;
        total.transcripts += batch.transcripts;
        if batch.events < limit as u64
            && batch.inputs < limit as u64
            && batch.transcripts < TRANSCRIPTS_PER_BATCH as u64
        {
            return Ok(total);
        }
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// Starts the background task when `--retention` is set.
pub fn spawn(store: &Store, settings: &RetentionSettings, shutdown: CancellationToken) {
    if let Some(max_age) = settings.max_age {
        let batch = settings.batch;
        tokio::spawn(run(store.clone(), max_age, batch, shutdown));
    }
}

/// The background task: a run at start and then every `max_age / 100` (between 1 s and 10
/// min), until `shutdown`.
pub async fn run(store: Store, max_age: Duration, batch: usize, shutdown: CancellationToken) {
    let period = (max_age / 100).clamp(Duration::from_secs(1), Duration::from_secs(600));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let run = run_once(&store, max_age, batch as i64);
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return,
            outcome = run => outcome,
        };
        match outcome {
            Ok(b) if b.events > 0 || b.inputs > 0 || b.transcripts > 0 => {
                tracing::info!(
                    events = b.events,
                    inputs = b.inputs,
                    transcripts = b.transcripts,
                    "retention removed old rows"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention run failed; retrying later"),
        }
    }
}
