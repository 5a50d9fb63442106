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

use super::{Store, StoreError};
use crate::frame::Frame;
use deadpool_postgres::Object;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Upper bound of events per statement; beyond it, array parameters stop paying off.
const MAX_BATCH_EVENTS: usize = 4096;
/// Appends waiting for the writer; a full channel slows the sessions that append.
const CHANNEL_CAPACITY: usize = 8192;

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
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Append>,
}

impl Writer {
    /// Starts the writer task for this host. It runs until every `Writer` clone is dropped,
    /// committing what was queued; `shutdown` only stops retries against an absent Postgres.
    pub fn spawn(
        store: Store,
        host_id: i32,
        shutdown: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let task = tokio::spawn(run(store, host_id, rx, shutdown));
        (Writer { tx }, task)
    }

    /// Queues an append. Waits while the writer is saturated (backpressure).
    pub async fn append(&self, append: Append) -> Result<(), StoreError> {
        self.tx
            .send(append)
            .await
            .map_err(|_| StoreError::Unavailable("writer stopped".into()))
    }
}

async fn run(
    store: Store,
    host_id: i32,
    mut rx: mpsc::Receiver<Append>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Append> = Vec::new();
    let mut conn = None;
    while let Some(first) = rx.recv().await {
        let mut events = first.frames.len();
        batch.push(first);
        while events < MAX_BATCH_EVENTS {
            match rx.try_recv() {
                Ok(next) => {
                    events += next.frames.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let outcome = commit_with_retry(&store, &mut conn, host_id, &batch, &shutdown).await;
        tracing::trace!(events, appends = batch.len(), "batch committed");
        for append in batch.drain(..) {
            let result = match &outcome {
                Ok(owned) if owned.contains(&append.session_id) => {
                    append.sink.committed(append.frames);
                    Ok(())
                }
                Ok(_) => {
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
        let result = commit(client, host_id, batch).await;
        if result.is_err() {
            // It may be broken; a fresh one costs little next to a failed batch.
            *conn = None;
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

async fn commit(
    client: &Object,
    host_id: i32,
    batch: &[Append],
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
    let stmt = client
        .prepare_cached(include_str!("sql/append.sql"))
        .await?;
    let rows = client
        .query(
            &stmt,
            &[&ids, &seqs, &names, &datas, &owners, &epochs, &host_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
