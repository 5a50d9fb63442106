//! The record of inbound messages: who sent what, when, and what they were told.
//!
//! A `204` is only sent after the row is committed (nothing acknowledged is lost). User messages
//! carry their turn's state (`queued` → `running` → `done` | `lost`) so a host that rehydrates
//! the session re-queues accepted work and reports the turn that died with its previous host.

use super::{Store, StoreError};
use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Copy)]
pub struct NewInput<'a> {
    pub session_id: Uuid,
    /// The (host, epoch) the session is held under: the input is recorded only while that is
    /// still the session's owner, so a deposed host cannot accept work the new owner never sees.
    pub holder: (i32, i64),
    pub kind: &'a str,
    pub body: &'a Value,
    pub principal: &'a str,
    pub status: u16,
    pub correlation_id: Option<&'a str>,
    /// Decisions: the seq of the event that asked.
    pub ask_seq: Option<u64>,
    pub turn_state: Option<TurnState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnState {
    Queued,
    Running,
    Done,
    Lost,
}

impl TurnState {
    fn as_str(self) -> &'static str {
        match self {
            TurnState::Queued => "queued",
            TurnState::Running => "running",
            TurnState::Done => "done",
            TurnState::Lost => "lost",
        }
    }
}

/// Records one inbound message; returns its id. An accepted (`204`) decision for a correlation
/// id that already has one (same `ask_seq`) fails with [`StoreError::Conflict`] (first reply
/// wins, on any host); a holder that is no longer the owner gets [`StoreError::Fenced`].
pub async fn record(store: &Store, input: NewInput<'_>) -> Result<i64, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(include_str!("sql/record_input.sql"))
        .await?;
    let row = client
        .query_opt(
            &stmt,
            &[
                &input.session_id,
                &input.kind,
                input.body,
                &input.principal,
                &(input.status as i16),
                &input.correlation_id,
                &input.ask_seq.map(|s| s as i64),
                &input.turn_state.map(TurnState::as_str),
                &input.holder.0,
                &input.holder.1,
            ],
        )
        .await?;
    Store::recycle(client, crate::text::approx_len(input.body));
    row.map(|r| r.get(0)).ok_or(StoreError::Fenced)
}

/// Sets a turn's state, only while `holder` (host, epoch) still owns the session; returns
/// whether it did (`false`: deposed, the new owner decides about this turn).
pub async fn set_turn_state(
    store: &Store,
    session_id: Uuid,
    input_id: i64,
    state: TurnState,
    holder: (i32, i64),
) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(include_str!("sql/set_turn_state.sql"))
        .await?;
    let (host, epoch) = holder;
    let n = client
        .execute(
            &stmt,
            &[&session_id, &input_id, &state.as_str(), &host, &epoch],
        )
        .await?;
    Ok(n == 1)
}
