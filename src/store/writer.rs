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
//! A batch the database refuses for what it contains (a value no column or index can take)
//! must not take other sessions' events with it (invariant 8, `docs/invariants.md`): the writer
//! splits it by session, then by append, commits everything else, and gives the refused
//! session one `error {code: "event_rejected"}` at the first refused seq instead. That session
//! then stops on this host and nothing it appended later at that epoch is committed, so its ids
//! never skip a seq (invariant 1); its next request rehydrates it. The audit projections are
//! written so that no event the `json` column accepts is refused (V4 migration); this is the
//! net under them.
//!
//! What waits is bounded twice: by appends (the channel) and by bytes ([`MAX_QUEUED_BYTES`]).
//! Load shedding starts here too: when queued appends have waited too long for too long
//! (`super::pressure`, CoDel's rule: sustained overload, not a burst), [`Writer::saturated`]
//! says so and new work (user messages, new sessions) is refused with `503 overloaded` at the
//! door, instead of being accepted into a queue that only grows. Metrics are recorded per
//! batch (commit time, size, fenced appends), never per event.

use super::pressure::Pressure;
use super::transcripts::Entry as TranscriptEntry;
use super::{Store, StoreError};
use crate::frame::{names, Frame};
use crate::metrics::Metrics;
use deadpool_postgres::Object;
use std::collections::{HashMap, HashSet};
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
/// Bytes of frames queued for commit, at most: the channel counts appends, and 8192 appends of
/// large events (tool results of whole files) would be gigabytes. An append waits for its
/// bytes like for a channel slot; one larger than the budget takes all of it and goes alone.
pub const MAX_QUEUED_BYTES: usize = 32 << 20;

/// Receives a session's frames once they are committed, in commit order.
pub trait CommitSink: Send + Sync {
    fn committed(&self, frames: Vec<Frame>);
    /// The session's epoch is stale: another host owns it. Nothing of this append was stored.
    fn fenced(&self);
    /// The database refused this session's events for their content (the writer committed an
    /// `error` event in their place): the session must stop appending at this epoch.
    fn rejected(&self) {
        self.fenced()
    }
    /// The highest seq this session published (what its clients may have seen).
    fn published_last(&self) -> Option<u64> {
        None
    }
    /// The published frames after `after`, if all of them are still held.
    fn frames_after(&self, _after: u64) -> Option<Vec<Frame>> {
        None
    }
}

/// Consecutive events of one session, to be committed under `epoch`.
pub struct Append {
    pub session_id: Uuid,
    pub epoch: i64,
    pub frames: Vec<Frame>,
    /// Transcript entries the agent mirrored, committed in the same statement as the events
    /// and fenced alike (`transcripts`, invariant 7).
    pub transcript: Vec<TranscriptEntry>,
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
    pressure: Arc<Pressure>,
}

/// An append, the bytes of budget it holds, and when it was queued.
type Queued = (Append, Option<OwnedSemaphorePermit>, Instant);

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
        let pressure = Arc::new(Pressure::default());
        let task = tokio::spawn(run(store, host_id, rx, shutdown, metrics, pressure.clone()));
        let budget = Arc::new(Semaphore::new(MAX_QUEUED_BYTES));
        (
            Writer {
                tx,
                budget,
                pressure,
            },
            task,
        )
    }

    /// Appends waiting to be committed.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Bytes of frames waiting to be committed.
    pub fn queued_bytes(&self) -> usize {
        MAX_QUEUED_BYTES.saturating_sub(self.budget.available_permits())
    }

    /// Whether the writer is overloaded: queued work has waited too long for too long
    /// ([`super::pressure`]), not merely a burst in the queue.
    pub fn saturated(&self) -> bool {
        self.pressure.overloaded(self.queued() > 0, Instant::now())
    }

    /// Queues an append. Waits while the writer is saturated (backpressure): for a slot in the
    /// channel and for its bytes in the budget.
    pub async fn append(&self, append: Append) -> Result<(), StoreError> {
        let stopped = || StoreError::Unavailable("writer stopped".into());
        let bytes: usize = append.frames.iter().map(|f| f.bytes.len()).sum::<usize>()
            + append
                .transcript
                .iter()
                .map(|e| e.json.len())
                .sum::<usize>();
        let permit = if bytes == 0 {
            None
        } else {
            let n = bytes.min(MAX_QUEUED_BYTES) as u32;
            let permit = self.budget.clone().acquire_many_owned(n).await;
            Some(permit.map_err(|_| stopped())?)
        };
        self.tx
            .send((append, permit, Instant::now()))
            .await
            .map_err(|_| stopped())
    }
}

async fn run(
    store: Store,
    host_id: i32,
    mut rx: mpsc::Receiver<Queued>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    pressure: Arc<Pressure>,
) {
    let mut batch: Vec<Append> = Vec::new();
    let mut held: Vec<OwnedSemaphorePermit> = Vec::new();
    let mut writer = BatchWriter {
        store,
        host_id,
        shutdown,
        metrics,
        // The writer's own connection, kept across batches (issue 7: pooled connections'
        // buffers grew to the batch size on every connection of the pool).
        conn: None,
        rejected: Rejected::default(),
        verify: Verify::default(),
    };
    while let Some((first, permit, queued_at)) = rx.recv().await {
        // The channel is FIFO: the first append is the batch's oldest.
        pressure.batch_taken(queued_at, Instant::now());
        let mut events = first.frames.len();
        batch.push(first);
        held.extend(permit);
        while events < MAX_BATCH_EVENTS {
            match rx.try_recv() {
                Ok((next, permit, _)) => {
                    events += next.frames.len();
                    batch.push(next);
                    held.extend(permit);
                }
                Err(_) => break,
            }
        }
        writer.write(std::mem::take(&mut batch), events).await;
        pressure.batch_done();
        // The ring holds what it keeps; the queue's copy of these bytes is gone.
        held.clear();
    }
}

/// The writer task's state between batches.
struct BatchWriter {
    store: Store,
    host_id: i32,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    conn: Option<Object>,
    rejected: Rejected,
    verify: Verify,
}

impl BatchWriter {
    /// Commits a batch and publishes what committed. A batch the database refuses for its
    /// content is split until the refused append is found: every other session's events are
    /// committed and published as usual (invariant 8).
    async fn write(&mut self, batch: Vec<Append>, events: usize) {
        let (refused, batch): (Vec<Append>, Vec<Append>) =
            batch.into_iter().partition(|a| self.rejected.refuses(a));
        for append in refused {
            finish(
                append,
                Err(StoreError::Other("an earlier append was refused".into())),
            );
        }
        if batch.is_empty() {
            return;
        }
        let span = tracing::info_span!(
            parent: &batch[0].span,
            "store.commit",
            events,
            appends = batch.len(),
            host_id = self.host_id,
        );
        let started = Instant::now();
        let outcome = self.commit(&batch).instrument(span).await;
        self.metrics
            .store_commit_seconds
            .record(started.elapsed().as_secs_f64());
        self.metrics.store_batch_events.record(events as f64);
        match outcome {
            Err(e) if self.refused_for_content(&e) => self.isolate(batch, e).await,
            outcome => self.publish(batch, &outcome),
        }
    }

    /// Whether `e` says the batch's content was refused, not the database being away (which
    /// is retried) or this host shutting down.
    fn refused_for_content(&self, e: &StoreError) -> bool {
        !e.is_unavailable() && !self.shutdown.is_cancelled()
    }

    async fn commit(&mut self, batch: &[Append]) -> Result<HashSet<Uuid>, StoreError> {
        commit_with_retry(
            &self.store,
            &mut self.conn,
            self.host_id,
            batch,
            &self.shutdown,
            &mut self.verify,
            &self.metrics,
        )
        .await
    }

    /// Commits each session's appends of a refused batch on their own, then one append at a
    /// time within the session that fails, so exactly the refused append and what its session
    /// appended after it are left out.
    async fn isolate(&mut self, batch: Vec<Append>, error: StoreError) {
        let mut groups: Vec<Vec<Append>> = Vec::new();
        for append in batch {
            match groups
                .iter_mut()
                .find(|g| g[0].session_id == append.session_id)
            {
                Some(group) => group.push(append),
                None => groups.push(vec![append]),
            }
        }
        let single_session = groups.len() == 1;
        let mut first_error = Some(error);
        for group in groups {
            let outcome = match first_error.take().filter(|_| single_session) {
                Some(e) => Err(e),
                None => self.commit(&group).await,
            };
            match outcome {
                Err(e) if self.refused_for_content(&e) => self.isolate_session(group, e).await,
                outcome => self.publish(group, &outcome),
            }
        }
    }

    async fn isolate_session(&mut self, group: Vec<Append>, mut error: StoreError) {
        let mut appends = group.into_iter();
        if appends.len() > 1 {
            for append in appends.by_ref() {
                match self.commit(std::slice::from_ref(&append)).await {
                    Err(e) if self.refused_for_content(&e) => {
                        error = e;
                        self.reject(std::iter::once(append).chain(appends).collect(), error)
                            .await;
                        return;
                    }
                    outcome => self.publish(vec![append], &outcome),
                }
            }
            return;
        }
        self.reject(appends.collect(), error).await;
    }

    /// The database refused `appends` (one session's, in order) for their content. In their
    /// place the session gets one `error` event at the first refused seq, so its ids stay
    /// gap-free and its clients learn why; then it stops on this host. Everything it appended
    /// at this epoch after that is refused as well; the next request rehydrates the session
    /// (new epoch, ids continuing after the error) and reports the turn in flight as lost.
    async fn reject(&mut self, appends: Vec<Append>, error: StoreError) {
        let Some(head) = appends.first() else { return };
        let (session_id, epoch, sink) = (head.session_id, head.epoch, head.sink.clone());
        let span = head.span.clone();
        self.rejected.insert(session_id, epoch);
        let mut frames = appends.iter().flat_map(|a| &a.frames);
        let first = frames.next().map(|f| f.seq);
        let last = frames.last().map(|f| f.seq).or(first);
        self.metrics
            .rejected_events
            .increment(appends.iter().map(|a| a.frames.len() as u64).sum());
        tracing::error!(%session_id, epoch, ?first, ?last, %error,
            "the database refused a session's events; the session stops here");
        if let (Some(first), Some(last)) = (first, last) {
            let message = format!(
                "events {first} to {last} could not be stored and were dropped; the turn in flight is lost"
            );
            let data = serde_json::json!({"code": "event_rejected", "message": message});
            let notice = Append {
                session_id,
                epoch,
                frames: vec![Frame::encode(first, names::ERROR, &data.to_string())],
                transcript: Vec::new(),
                sink: sink.clone(),
                ack: None,
                span,
            };
            if let Ok(owned) = self.commit(std::slice::from_ref(&notice)).await {
                if owned.contains(&session_id) {
                    sink.committed(notice.frames);
                }
            }
        }
        sink.rejected();
        for append in appends {
            finish(
                append,
                Err(StoreError::Other("refused by the database".into())),
            );
        }
    }

    /// Hands each append's outcome to its session: frames to the ring, or fenced.
    fn publish(&self, batch: Vec<Append>, outcome: &Result<HashSet<Uuid>, StoreError>) {
        for append in batch {
            let Append {
                session_id,
                frames,
                sink,
                ack,
                ..
            } = append;
            let result = match outcome {
                Ok(owned) if owned.contains(&session_id) => {
                    sink.committed(frames);
                    Ok(())
                }
                Ok(_) => {
                    self.metrics.fenced_appends.increment(1);
                    sink.fenced();
                    Err(StoreError::Fenced)
                }
                Err(e) => {
                    // Shutting down with Postgres away: the session cannot trust its log.
                    sink.fenced();
                    Err(StoreError::Other(e.to_string()))
                }
            };
            acknowledge(ack, result);
        }
    }
}

/// Completes an append's acknowledgement, if it asked for one.
fn finish(append: Append, result: Result<(), StoreError>) {
    acknowledge(append.ack, result);
}

fn acknowledge(
    ack: Option<oneshot::Sender<Result<(), StoreError>>>,
    result: Result<(), StoreError>,
) {
    if let Some(ack) = ack {
        let _ = ack.send(result);
    }
}

/// Sessions whose append the database refused, with the epoch it was appended under. Every
/// later append of that session at that epoch is refused too: a session never commits past a
/// seq it could not commit (invariant 1). A higher epoch (the session rehydrated) starts clean.
#[derive(Default)]
struct Rejected(HashMap<Uuid, i64>);

impl Rejected {
    fn insert(&mut self, session_id: Uuid, epoch: i64) {
        self.0.insert(session_id, epoch);
    }

    fn refuses(&mut self, append: &Append) -> bool {
        match self.0.get(&append.session_id) {
            Some(&epoch) if append.epoch <= epoch => true,
            Some(_) => {
                self.0.remove(&append.session_id);
                false
            }
            None => false,
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
    verify: &mut Verify,
    metrics: &Metrics,
) -> Result<HashSet<Uuid>, StoreError> {
    let mut backoff = Duration::from_millis(50);
    let mut attempt = Attempt::First;
    loop {
        let client = match conn {
            Some(client) => client,
            None => match store.client().await {
                Ok(client) => {
                    verify.reconnected();
                    conn.insert(client)
                }
                Err(e) if e.is_unavailable() && !shutdown.is_cancelled() => {
                    tracing::warn!(error = %e, "no connection for the writer; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        let result = match verify.repair(client, host_id, batch, metrics).await {
            Ok(()) => commit(client, host_id, batch, attempt).await,
            Err(e) => Err(e),
        };
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

/// After the writer had to reconnect, the database it reaches may not hold everything it
/// committed before: a failover to an asynchronous standby loses the newest commits, events
/// that subscribers already received (issue 15). So, after every reconnect, each session is
/// checked once before its next append: when the table's last seq is below the last seq the
/// session published, the missing frames are re-appended from its ring — same ids, same
/// bytes, fenced like any append, not published again — before anything new
/// (`agent_webkit_repaired_events_total`). Frames the ring no longer holds cannot be repaired:
/// that is logged and counted (`agent_webkit_unrepairable_events_total`), the session goes on
/// after its published ids, and a resume across the hole answers `412 events_lost`
/// (`session::subscription`) instead of skipping it.
#[derive(Default)]
struct Verify {
    /// Whether a connection was ever replaced (until then nothing can be missing).
    active: bool,
    /// Whether the first connection was made.
    connected_once: bool,
    /// Sessions checked since the last reconnect.
    checked: HashSet<Uuid>,
}

impl Verify {
    fn reconnected(&mut self) {
        if self.connected_once {
            self.active = true;
            self.checked.clear();
        }
        self.connected_once = true;
    }

    async fn repair(
        &mut self,
        client: &Object,
        host_id: i32,
        batch: &[Append],
        metrics: &Metrics,
    ) -> Result<(), StoreError> {
        if !self.active {
            return Ok(());
        }
        let mut todo: Vec<&Append> = Vec::new();
        for append in batch {
            if !self.checked.contains(&append.session_id)
                && !todo.iter().any(|a| a.session_id == append.session_id)
            {
                todo.push(append);
            }
        }
        if todo.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = todo.iter().map(|a| a.session_id).collect();
        let rows = client
            .query(
                "SELECT session_id, max(seq) FROM events WHERE session_id = ANY($1) \
                 GROUP BY session_id",
                &[&ids],
            )
            .await?;
        for append in todo {
            let id = append.session_id;
            let stored = rows
                .iter()
                .find(|r| r.get::<_, Uuid>(0) == id)
                .map_or(0, |r| r.get::<_, i64>(1) as u64);
            let published = append.sink.published_last().unwrap_or(0);
            if stored < published {
                let missing = published - stored;
                match append.sink.frames_after(stored) {
                    Some(frames) => {
                        let repair = Append {
                            session_id: id,
                            epoch: append.epoch,
                            frames,
                            transcript: Vec::new(),
                            sink: append.sink.clone(),
                            ack: None,
                            span: tracing::Span::none(),
                        };
                        let owned = commit(client, host_id, &[repair], Attempt::Retry).await?;
                        if owned.contains(&id) {
                            metrics.repaired_events.increment(missing);
                            tracing::warn!(session_id = %id, first = stored + 1, last = published,
                                "the database lost events this host had published; re-appended them from the ring");
                        }
                    }
                    None => {
                        metrics.unrepairable_events.increment(missing);
                        tracing::error!(session_id = %id, first = stored + 1, last = published,
                            "the database lost events this host had published and no longer holds; resuming across them answers 412");
                    }
                }
            }
            self.checked.insert(id);
        }
        Ok(())
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

/// The statement for a batch: `APPEND`, with `ON CONFLICT` for retries (only retries pay for
/// its speculative insertion: another primary-key probe per row, a third of Postgres' time per
/// event; BENCHMARKS.md), and with the transcript insert only when the batch carries entries.
static STATEMENTS: std::sync::LazyLock<[String; 4]> = std::sync::LazyLock::new(|| {
    let retry = APPEND.replace("/*RETRY*/", "ON CONFLICT (session_id, seq) DO NOTHING");
    let mirrored =
        |sql: &str| sql.replace("/*TRANSCRIPT*/", include_str!("sql/append_transcript.sql"));
    [
        APPEND.to_owned(),
        retry.clone(),
        mirrored(APPEND),
        mirrored(&retry),
    ]
});

fn statement(attempt: Attempt, transcript: bool) -> &'static str {
    &STATEMENTS[usize::from(attempt == Attempt::Retry) + 2 * usize::from(transcript)]
}

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
    let entries: usize = batch.iter().map(|a| a.transcript.len()).sum();
    let stmt = client
        .prepare_cached(statement(attempt, entries > 0))
        .await?;
    let rows = if entries == 0 {
        client
            .query(
                &stmt,
                &[&ids, &seqs, &names, &datas, &owners, &epochs, &host_id],
            )
            .await?
    } else {
        let mut t_ids = Vec::with_capacity(entries);
        let mut t_seqs = Vec::with_capacity(entries);
        let mut t_files = Vec::with_capacity(entries);
        let mut t_uuids = Vec::with_capacity(entries);
        let mut t_entries = Vec::with_capacity(entries);
        for append in batch {
            for e in &append.transcript {
                t_ids.push(append.session_id);
                t_seqs.push(e.seq as i64);
                t_files.push(&*e.file);
                t_uuids.push(e.uuid.as_deref());
                t_entries.push(e.json.as_str());
            }
        }
        client
            .query(
                &stmt,
                &[
                    &ids, &seqs, &names, &datas, &owners, &epochs, &host_id, &t_ids, &t_seqs,
                    &t_files, &t_uuids, &t_entries,
                ],
            )
            .await?
    };
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
