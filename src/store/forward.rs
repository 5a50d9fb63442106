//! Inputs taken by a host that does not own the session, handed to the owner through Postgres
//! (migration V6, `listen`).
//!
//! The non-owner records the input as the owner would — the same `inputs` row, `204` once it
//! is committed, `409` for a decision another reply already won (the unique index on accepted
//! decisions, as on the owner) — with `delivered = false`, and notifies `awk_inputs` in the
//! same statement. The owner takes undelivered rows in id order ([`take`]) and acts on them:
//! queues the message, interrupts, resolves the parked request, closes the session. Recording
//! is conditional on the owner the caller saw still holding the session (`FOR SHARE`, as
//! appends are fenced), so an input never lands for an owner that is gone: the caller looks
//! again and claims the session instead.

use super::{Store, StoreError};
use serde_json::Value;
use uuid::Uuid;

const RECORD: &str = include_str!("sql/forward_input.sql");

/// One forwarded input to record.
pub struct Forward<'a> {
    pub session_id: Uuid,
    /// The owner the caller saw: recorded only while it still holds the session.
    pub owner: i32,
    pub kind: &'a str,
    pub body: &'a Value,
    pub principal: &'a str,
    pub correlation_id: Option<&'a str>,
    pub ask_seq: Option<u64>,
    /// `Some("queued")` for user messages.
    pub turn_state: Option<&'a str>,
}

/// Records a forwarded input for the owner to pick up. `Ok(None)`: the owner no longer holds
/// the session (or it was closed); `Err(Conflict)`: a decision that lost the race.
pub async fn record(store: &Store, input: &Forward<'_>) -> Result<Option<i64>, StoreError> {
    insert(store, input, 204, false).await
}

/// Records a reply that lost the race (`409`), for the audit log; nothing to deliver.
pub async fn record_loser(store: &Store, input: &Forward<'_>) -> Result<(), StoreError> {
    let loser = Forward {
        ask_seq: None,
        turn_state: None,
        ..*input
    };
    insert(store, &loser, 409, true).await.map(drop)
}

async fn insert(
    store: &Store,
    input: &Forward<'_>,
    status: i16,
    delivered: bool,
) -> Result<Option<i64>, StoreError> {
    let client = store.client().await?;
    let stmt = client.prepare_cached(RECORD).await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &input.session_id,
                &input.kind,
                input.body,
                &input.principal,
                &status,
                &input.correlation_id,
                &input.ask_seq.map(|s| s as i64),
                &input.turn_state,
                &input.owner,
                &delivered,
            ],
        )
        .await?;
    Store::recycle(client, crate::text::approx_len(input.body));
    Ok(row.map(|r| r.get(0)))
}

/// The request a reply answers: (seq, event name), if it exists and its turn has not ended
/// (no `result` or `done` after it, and not already resolved).
pub async fn open_ask(
    store: &Store,
    session_id: Uuid,
    correlation_id: &str,
) -> Result<Option<(u64, String)>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            include_str!("sql/open_ask.sql"),
            &[&session_id, &correlation_id],
        )
        .await?;
    Ok(row.map(|r| (r.get::<_, i64>(0) as u64, r.get(1))))
}

/// User messages waiting for the owner to start them (queued, including forwarded ones).
pub async fn queued_turns(store: &Store, session_id: Uuid) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT count(*) FROM inputs WHERE session_id = $1 AND turn_state = 'queued'",
            &[&session_id],
        )
        .await?;
    Ok(row.get(0))
}

/// An input another host recorded for this owner.
#[derive(Debug)]
pub struct Taken {
    pub id: i64,
    pub kind: String,
    pub body: Value,
}

/// Takes the session's undelivered inputs, oldest first, while `holder` (host, epoch) owns it.
pub async fn take(
    store: &Store,
    session_id: Uuid,
    holder: (i32, i64),
) -> Result<Vec<Taken>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "UPDATE inputs i SET delivered = true \
             FROM sessions s \
             WHERE i.session_id = $1 AND NOT i.delivered \
               AND s.id = $1 AND s.owner = $2 AND s.epoch = $3 \
             RETURNING i.id, i.type, i.body",
            &[&session_id, &holder.0, &holder.1],
        )
        .await?;
    let mut taken: Vec<Taken> = rows
        .iter()
        .map(|r| Taken {
            id: r.get(0),
            kind: r.get(1),
            body: r.get(2),
        })
        .collect();
    taken.sort_by_key(|t| t.id);
    Ok(taken)
}
