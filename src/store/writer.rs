//! The group-commit writer: **where events are committed**, and only then published.
//!
//! One writer per process gathers the appends of every session into batches and commits each
//! batch with one statement (one round trip, one WAL flush for many events). Only after the
//! commit does it hand each session's frames to its [`CommitSink`] (the ring, which wakes the
//! subscribers): no subscriber can see an event that is not durable (invariant 2).
//!
//! Batching needs no timer: while one batch commits, the next accumulates in the channel, so
//! batches grow with load and a lone event commits at once.
//!
//! The writer keeps one connection for itself instead of taking any from the pool per batch:
//! tokio-postgres keeps each connection's buffers at the size of the largest message it sent,
//! and a batch is up to a few MB, so rotating through the pool grew every pooled connection's
//! buffers (the memory bench's 200 sessions showed ~65 MB more RSS that way; BENCHMARKS.md).
//! It also saves a pool checkout per batch. A connection that fails is dropped and replaced.
//!
//! Fencing (invariant 5) is part of the same statement (`sql/append.sql`): rows of sessions whose
//! epoch is no longer the writer's are not inserted, and those sessions are told they are fenced.
//! Transient failures (Postgres down or restarting) are retried with backoff, in order, without
//! publishing anything meanwhile; sessions feel it as backpressure on the bounded channel.
//!
//! What waits is bounded twice: by appends (the channel) and by bytes ([`MAX_QUEUED_BYTES`]).
//! Load shedding starts here too: when more than [`SATURATION_APPENDS`] appends or half the
//! bytes wait (the sessions produce faster than Postgres commits), [`Writer::saturated`] says so
//! and new work
//! (user messages, new sessions) is refused with `503 overloaded` at the door, instead of
//! being accepted into a queue that only grows. Metrics are recorded per batch (commit time,
//! size, fenced appends), never per event.

use super::{Store, StoreError};
use crate::frame::Frame;
use crate::metrics::Metrics;
use deadpool_postgres::Object;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

/// Upper bound of events per statement; beyond it, array parameters stop paying off.
const MAX_BATCH_EVENTS: usize = 4096;
/// Appends waiting for the writer; a full channel slows the sessions that append.
const CHANNEL_CAPACITY: usize = 8192;
/// Queued appends beyond which the writer counts as saturated: a quarter of the channel is
/// several batches' worth, which a writer that keeps up never lets pile up.
pub const SATURATION_APPENDS: usize = CHANNEL_CAPACITY / 4;
/// Bytes of frames queued for commit, at most: the channel counts appends, and 8192 appends of
/// large events (tool results of whole files) would be gigabytes. An append waits for its
/// bytes like for a channel slot; one larger than the budget takes all of it and goes alone.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;

/// Receives a session's frames once they are committed, in commit order.
pub trait CommitSink: Send + Sync {
    fn committed(&self, frames: Vec<Frame>);
    /// The session's epoch is stale: another host owns it. Nothing of this append was stored.
    fn fenced(&self);
}

/// Consecutive events of one session, to be committed under `epoch`.
pub struct Append {
    pub session_id: Uuid,
    pub epoch: i64,
    pub frames: Vec<Frame>,
    pub sink: Arc<dyn CommitSink>,
    /// Completed after the commit (and after `sink` saw the frames).
    pub ack: Option<oneshot::Sender<Result<(), StoreError>>>,
    /// The appender's span (its turn): the batch's commit span is a child of its first append's.
    pub span: tracing::Span,
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Queued>,
    /// [`MAX_QUEUED_BYTES`] as permits, held by each append until it is published.
    budget: Arc<Semaphore>,
}

/// An append and the bytes of budget it holds.
type Queued = (Append, Option<OwnedSemaphorePermit>);

impl Writer {
    /// Starts the writer task for this host. It runs until every `Writer` clone is dropped,
    /// committing what was queued; `shutdown` only stops retries against an absent Postgres.
    pub fn spawn(
        store: Store,
        host_id: i32,
        shutdown: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        Writer::spawn_with(store, host_id, shutdown, Arc::default())
    }

    /// [`Writer::spawn`], recording into the host's metrics.
    pub fn spawn_with(
        store: Store,
        host_id: i32,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(run(store, host_id, rx, shutdown, metrics));
        let budget = Arc::new(Semaphore::new(MAX_QUEUED_BYTES));
        (Writer { tx, budget }, task)
    }

    /// Appends waiting to be committed.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Bytes of frames waiting to be committed.
    pub fn queued_bytes(&self) -> usize {
        MAX_QUEUED_BYTES.saturating_sub(self.budget.available_permits())
    }

    /// Whether the writer is falling behind (see the module doc): many appends, or half the
    /// byte budget, waiting.
    pub fn saturated(&self) -> bool {
        self.queued() > SATURATION_APPENDS || self.queued_bytes() > MAX_QUEUED_BYTES / 2
    }

    /// Queues an append. Waits while the writer is saturated (backpressure): for a slot in the
    /// channel and for its bytes in the budget.
    pub async fn append(&self, append: Append) -> Result<(), StoreError> {
        let stopped = || StoreError::Unavailable("writer stopped".into());
        let bytes: usize = append.frames.iter().map(|f| f.bytes.len()).sum();
        let permit = if bytes == 0 {
            None
        } else {
            let n = bytes.min(MAX_QUEUED_BYTES) as u32;
            let permit = self.budget.clone().acquire_many_owned(n).await;
            Some(permit.map_err(|_| stopped())?)
        };
        self.tx.send((append, permit)).await.map_err(|_| stopped())
    }
}

async fn run(
    store: Store,
    host_id: i32,
    mut rx: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<Append> = Vec::new();
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    // The writer's own connection, kept across batches (issue 7: pooled connections' buffers
    // grew to the batch size on every connection of the pool).
    let mut conn = None;
    while let Some((first, permit)) = rx.recv().await {
        let mut events = first.frames.len();
        batch.push(first);
        held.extend(permit);
        while events < MAX_BATCH_EVENTS {
            match rx.try_recv() {
                Ok((next, permit)) => {
                    events += next.frames.len();
                    batch.push(next);
                    held.extend(permit);
                }
                Err(_) => break,
            }
        }
        let span = tracing::info_span!(
            parent: &batch[0].span,
            "store.commit",
            events,
            appends = batch.len(),
            host_id,
        );
        let started = Instant::now();
        let outcome = commit_with_retry(&store, &mut conn, host_id, &batch, &shutdown)
            .instrument(span)
            .await;
        metrics
            .store_commit_seconds
            .record(started.elapsed().as_secs_f64());
        metrics.store_batch_events.record(events as f64);
        for append in batch.drain(..) {
            let result = match &outcome {
                Ok(owned) if owned.contains(&append.session_id) => {
                    append.sink.committed(append.frames);
                    Ok(())
                }
                Ok(_) => {
                    metrics.fenced_appends.increment(1);
                    append.sink.fenced();
                    Err(StoreError::Fenced)
                }
                Err(e) => {
                    // Not retryable (or shutting down): the session cannot trust its log.
                    append.sink.fenced();
                    Err(StoreError::Other(e.to_string()))
                }
            };
            if let Some(ack) = append.ack {
                let _ = ack.send(result);
            }
        }
        // The ring holds what it keeps; the queue's copy of these bytes is gone.
        held.clear();
    }
}

/// Commits one batch, retrying transient failures. Returns the sessions whose events were
/// stored (the others were fenced).
async fn commit_with_retry(
    store: &Store,
    conn: &mut Option<Object>,
    host_id: i32,
    batch: &[Append],
    shutdown: &CancellationToken,
) -> Result<HashSet<Uuid>, StoreError> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = Attempt::First;
    loop {
        let client = match conn {
            Some(client) => client,
            None => match store.client().await {
                Ok(client) => conn.insert(client),
                Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "no connection for the writer; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let result = commit(client, host_id, batch, attempt).await;
        if result.is_err() {
            // It may be broken; a fresh one costs little next to a failed batch.
            *conn = None;
            attempt = Attempt::Retry;
        }
        match result {
            Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                tracing::warn!(error = %e, "commit failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            other => return other,
        }
    }
}

/// Which statement a batch is committed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// A plain insert: a row that exists already is an error.
    First,
    /// After a failure that may have committed anyway (the connection broke before the answer):
    /// rows that exist are skipped. Fencing guarantees nobody else writes this session at this
    /// epoch, so an existing `(session_id, seq)` can only be this very event.
    Retry,
}

const APPEND: &str = include_str!("sql/append.sql");

/// `APPEND` for retries. Only retries pay for `ON CONFLICT`: its speculative insertion costs
/// another primary-key probe per row, a third of Postgres' time per event (BENCHMARKS.md).
static APPEND_RETRY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    APPEND.replace("/*RETRY*/", "ON CONFLICT (session_id, seq) DO NOTHING")
});

/// Commits one batch with the fencing check; returns the sessions whose events were stored
/// (the others were fenced). Public for the tests of the retry statement.
pub async fn commit(
    client: &Object,
    host_id: i32,
    batch: &[Append],
    attempt: Attempt,
) -> Result<HashSet<Uuid>, StoreError> {
    let n: usize = batch.iter().map(|a| a.frames.len()).sum();
    let mut ids = Vec::with_capacity(n);
    let mut seqs = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut datas = Vec::with_capacity(n);
    let mut owners: Vec<Uuid> = Vec::new();
    let mut epochs: Vec<i64> = Vec::new();
    for append in batch {
        if !owners.contains(&append.session_id) {
            owners.push(append.session_id);
            epochs.push(append.epoch);
        }
        for f in &append.frames {
            ids.push(append.session_id);
            seqs.push(f.seq as i64);
            names.push(f.event);
            datas.push(f.data());
        }
    }
    let sql = match attempt {
        Attempt::First => APPEND,
        Attempt::Retry => APPEND_RETRY.as_str(),
    };
    let stmt = client.prepare_cached(sql).await?;
    let rows = client
        .query(
            &stmt,
            &[&ids, &seqs, &names, &datas, &owners, &epochs, &host_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
