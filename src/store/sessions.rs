//! Session rows: creation, claiming with fencing, release and close.
//!
//! Ownership is `(owner, epoch)` on the row. Every claim bumps the epoch in one conditional
//! UPDATE; the group-commit writer appends only under `FOR SHARE` of rows whose epoch is still
//! the writer's, so a claim waits for a deposed owner's in-flight append, and the claimant reads
//! the true last seq *after* its UPDATE (a new statement, hence a new snapshot).

use super::events;
use super::{Store, StoreError};
use crate::agent::SessionConfig;
use crate::frame::{names, Frame};
use serde_json::Value;
use uuid::Uuid;

/// A session as a host holds it after claiming it.
#[derive(Debug)]
pub struct Claimed {
    pub epoch: i64,
    pub config: SessionConfig,
    pub resume_token: Option<String>,
    /// What the session's turns have cost so far, in USD.
    pub total_cost_usd: f64,
    pub last_seq: u64,
    /// The highest mirrored transcript entry seq (`transcripts`).
    pub transcript_seq: u64,
    /// The newest events, oldest first, for the ring.
    pub tail: Vec<Frame>,
    /// User messages accepted but not finished when the previous holder let go, oldest first.
    pub open_turns: Vec<OpenTurn>,
    /// Another host owned it (dead, or past its lease): this claim took it over.
    pub took_over: bool,
}

#[derive(Debug)]
pub struct OpenTurn {
    pub input_id: i64,
    pub content: Value,
    /// `true`: the turn had started (it is lost); `false`: still queued (it will run).
    pub running: bool,
}

#[derive(Debug)]
pub enum Claim {
    Claimed(Box<Claimed>),
    /// Deleted by a client: readable, never claimable again.
    Closed {
        last_seq: u64,
    },
    /// A live host holds it.
    /// A live host (`owner`) holds it: serve it from there (follow, forward).
    OwnedElsewhere {
        owner: i32,
    },
    NotFound,
}

/// Creates a session with its first event, `session_ready` (seq 1), in one transaction. The
/// session is born unowned: the host that serves its first stream or input claims it.
pub async fn create(
    store: &Store,
    id: Uuid,
    principal: &str,
    config: &SessionConfig,
) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let config = serde_json::to_value(config).unwrap_or(Value::Null);
    tx.execute(
        "INSERT INTO sessions (id, principal, config) VALUES ($1, $2, $3)",
        &[&id, &principal, &config],
    )
    .await?;
    let ready = session_ready_data(id);
    tx.execute(
        "INSERT INTO events (session_id, seq, event, data) VALUES ($1, 1, $2, $3::text::json)",
        &[&id, &names::SESSION_READY, &ready],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub fn session_ready_data(id: Uuid) -> String {
    #[derive(serde::Serialize)]
    struct SessionReady {
        session_id: Uuid,
        protocol_version: &'static str,
    }
    let ready = SessionReady {
        session_id: id,
        protocol_version: crate::PROTOCOL_VERSION,
    };
    serde_json::to_string(&ready).unwrap_or_default()
}

/// Claims a session for `host` on behalf of `principal`: succeeds when it is unowned, already
/// ours, or its owner is dead (`host_alive`). Loads everything the host needs to run it. Another
/// principal's session is [`Claim::NotFound`]: its existence is not revealed.
pub async fn claim(
    store: &Store,
    id: Uuid,
    host: i32,
    principal: &str,
    ring_size: usize,
    lease: std::time::Duration,
) -> Result<Claim, StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    let claimed = tx
        .query_opt(
            include_str!("sql/claim.sql"),
            &[&id, &host, &principal, &lease.as_secs_f64()],
        )
        .await?;
    let Some(row) = claimed else {
        let row = tx
            .query_opt(
                "SELECT status, principal, last_seq, owner FROM sessions WHERE id = $1",
                &[&id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(Claim::NotFound);
        };
        let owner: String = row.get(1);
        if owner != principal {
            return Ok(Claim::NotFound);
        }
        let status: &str = row.get(0);
        if status == "closed" {
            let last_seq = (row.get::<_, i64>(2) as u64).max(events::max_seq(&tx, id).await?);
            return Ok(Claim::Closed { last_seq });
        }
        return Ok(Claim::OwnedElsewhere {
            owner: row.get::<_, Option<i32>>(3).unwrap_or_default(),
        });
    };
    let stored_last: i64 = row.get("last_seq");
    let last_seq = (stored_last as u64).max(events::max_seq(&tx, id).await?);
    let tail = events::tail(&tx, id, last_seq, ring_size).await?;
    let transcript_seq = super::transcripts::max_seq(&tx, id).await?;
    // Inputs other hosts recorded for the previous owner: user messages are re-queued below
    // (turn_state), controls and decisions were for an agent that is gone.
    tx.execute(
        "UPDATE inputs SET delivered = true WHERE session_id = $1 AND NOT delivered",
        &[&id],
    )
    .await?;
    let open_turns = tx
        .query(
            "SELECT id, body -> 'content', turn_state = 'running' FROM inputs \
             WHERE session_id = $1 AND turn_state IN ('queued', 'running') ORDER BY id",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| OpenTurn {
            input_id: r.get(0),
            content: r.get::<_, Option<Value>>(1).unwrap_or(Value::Null),
            running: r.get(2),
        })
        .collect();
    tx.commit().await?;
    Store::recycle(client, tail.iter().map(|f| f.bytes.len()).sum());
    let config: Value = row.get("config");
    let previous: Option<i32> = row.get("previous_owner");
    Ok(Claim::Claimed(Box::new(Claimed {
        took_over: previous.is_some_and(|p| p != host),
        epoch: row.get("epoch"),
        config: serde_json::from_value(config).unwrap_or_default(),
        resume_token: row.get("resume_token"),
        total_cost_usd: row.get("total_cost_usd"),
        last_seq,
        transcript_seq,
        tail,
        open_turns,
    })))
}

/// Whether a session's owner is gone (none, dead, released, past its lease) while work waits
/// for it (a turn queued or running): a follower then claims it (`session::follow`).
pub async fn orphaned_with_work(
    store: &Store,
    id: Uuid,
    lease: std::time::Duration,
) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT s.status <> 'closed' \
                AND (s.owner IS NULL OR NOT host_alive(s.owner, make_interval(secs => $2))) \
                AND EXISTS (SELECT 1 FROM inputs i WHERE i.session_id = s.id \
                            AND i.turn_state IN ('queued', 'running')) \
             FROM sessions s WHERE s.id = $1",
            &[&id, &lease.as_secs_f64()],
        )
        .await?;
    Ok(row.is_some_and(|r| r.get(0)))
}

/// What a principal may know of a session without claiming it (used when this host cannot
/// take more sessions): another principal's session is [`Peek::NotFound`], as in [`claim`].
pub enum Peek {
    NotFound,
    Closed {
        last_seq: u64,
    },
    /// Held by another live host: served from there (follow, forward) without a slot here.
    OwnedElsewhere {
        owner: i32,
    },
    Open,
}

pub async fn peek(
    store: &Store,
    id: Uuid,
    principal: &str,
    host: i32,
    lease: std::time::Duration,
) -> Result<Peek, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT status, last_seq, owner, \
                    owner IS NOT NULL AND owner <> $3 \
                    AND host_alive(owner, make_interval(secs => $4)) \
             FROM sessions WHERE id = $1 AND principal = $2",
            &[&id, &principal, &host, &lease.as_secs_f64()],
        )
        .await?;
    Ok(match row {
        None => Peek::NotFound,
        Some(row) if row.get::<_, &str>(0) == "closed" => {
            let last_seq = (row.get::<_, i64>(1) as u64).max(events::max_seq(&client, id).await?);
            Peek::Closed { last_seq }
        }
        Some(row) if row.get::<_, bool>(3) => Peek::OwnedElsewhere { owner: row.get(2) },
        Some(_) => Peek::Open,
    })
}

/// Lets go of a session this host holds (eviction, drain): it becomes dormant and claimable by
/// anyone at once. A no-op if another host has claimed it meanwhile.
pub async fn release(
    store: &Store,
    id: Uuid,
    host: i32,
    epoch: i64,
    last_seq: u64,
) -> Result<(), StoreError> {
    set_final_state(store, id, host, epoch, last_seq, "dormant").await
}

/// Marks a session closed after its `done` event was committed.
pub async fn close(
    store: &Store,
    id: Uuid,
    host: i32,
    epoch: i64,
    last_seq: u64,
) -> Result<(), StoreError> {
    set_final_state(store, id, host, epoch, last_seq, "closed").await
}

async fn set_final_state(
    store: &Store,
    id: Uuid,
    host: i32,
    epoch: i64,
    last_seq: u64,
    status: &str,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE sessions SET owner = NULL, status = $5, handover_to = NULL, \
                 updated_at = now(), last_seq = greatest(last_seq, $4) \
             WHERE id = $1 AND owner = $2 AND epoch = $3",
            &[&id, &host, &epoch, &(last_seq as i64), &status],
        )
        .await?;
    Ok(())
}

/// Lets go of a row `host` still owns at `epoch` but no longer serves (see
/// `Registry::release_orphans`); `false` if it changed meanwhile (claimed again, taken over).
pub async fn release_orphan(
    store: &Store,
    id: Uuid,
    host: i32,
    epoch: i64,
) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let n = client
        .execute(
            "UPDATE sessions SET owner = NULL, handover_to = NULL, updated_at = now(), \
             status = CASE WHEN status = 'active' THEN 'dormant' ELSE status END \
             WHERE id = $1 AND owner = $2 AND epoch = $3",
            &[&id, &host, &epoch],
        )
        .await?;
    Ok(n > 0)
}

/// A session as its owner's row says, for the ownership watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owned {
    pub id: Uuid,
    pub epoch: i64,
}

/// Every session the rows say `host` owns.
pub async fn owned_by(store: &Store, host: i32) -> Result<Vec<Owned>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached("SELECT id, epoch FROM sessions WHERE owner = $1")
        .await?;
    let rows = client.query(&stmt, &[&host]).await?;
    Ok(rows
        .iter()
        .map(|r| Owned {
            id: r.get(0),
            epoch: r.get(1),
        })
        .collect())
}

/// Records the end of a turn: turn count and what the turn cost (not a running total).
pub async fn turn_finished(
    store: &Store,
    id: Uuid,
    epoch: i64,
    cost_usd: f64,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE sessions SET turns = turns + 1, total_cost_usd = total_cost_usd + $3, \
                 updated_at = now() \
             WHERE id = $1 AND epoch = $2",
            &[&id, &epoch, &cost_usd],
        )
        .await?;
    Ok(())
}

/// Stores a new resume token (a runtime may report one at any time, e.g. at start).
pub async fn save_resume_token(
    store: &Store,
    id: Uuid,
    epoch: i64,
    token: &str,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE sessions SET resume_token = $3 WHERE id = $1 AND epoch = $2",
            &[&id, &epoch, &token],
        )
        .await?;
    Ok(())
}

/// Stores a changed config (model or permission mode set while no agent ran).
pub async fn save_config(
    store: &Store,
    id: Uuid,
    epoch: i64,
    config: &SessionConfig,
) -> Result<(), StoreError> {
    let client = store.client().await?;
    let config = serde_json::to_value(config).unwrap_or(Value::Null);
    client
        .execute(
            "UPDATE sessions SET config = $3, updated_at = now() WHERE id = $1 AND epoch = $2",
            &[&id, &epoch, &config],
        )
        .await?;
    Ok(())
}
