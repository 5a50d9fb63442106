//! Inputs for a session another live host owns: recorded here, acted on there.
//!
//! Behind a load balancer without stickiness (or two tabs on two hosts), a request often lands
//! on a host that does not own its session. Moving the session for every such request made two
//! tabs take it from each other over and over; instead, the input is recorded in Postgres
//! exactly as the owner would record it (`store::forward`) and the owner picks it up through
//! its `LISTEN` within milliseconds (`actor`). The answers are the owner's: `204` once recorded,
//! `409` at once for a reply another reply already won (the unique index on decisions decides,
//! on any host), `503 queue_full` when the session's queued messages reach the limit.
//!
//! A `DELETE` is forwarded the same way and answers once `done` is in the table.

use super::inbound::Inbound;
use super::log::EventLog;
use super::{Deps, SessionError};
use crate::agent::Decision;
use crate::store::forward::{self, Forward};
use crate::store::StoreError;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Records `inbound` for `owner` to act on. `Err(OwnedElsewhere)`: the owner let go meanwhile
/// (the caller looks again, and claims).
pub async fn input(
    deps: &Deps,
    id: Uuid,
    owner: i32,
    inbound: &Inbound,
    body: &Value,
    principal: &str,
) -> Result<(), SessionError> {
    let mut record = Forward {
        session_id: id,
        owner,
        kind: inbound.kind(),
        body,
        principal,
        correlation_id: None,
        ask_seq: None,
        turn_state: None,
    };
    match inbound {
        Inbound::UserMessage { .. } => {
            if deps.writer.saturated() {
                deps.metrics.overloaded.increment(1);
                return Err(SessionError::Overloaded);
            }
            let queued = forward::queued_turns(&deps.store, id).await?;
            if queued >= deps.queue_capacity as i64 {
                return Err(SessionError::QueueFull);
            }
            record.turn_state = Some("queued");
        }
        Inbound::Control(_) => {}
        Inbound::PermissionResponse { correlation_id, .. }
        | Inbound::QuestionResponse { correlation_id, .. } => {
            record.correlation_id = Some(correlation_id);
            let is_question = matches!(inbound, Inbound::QuestionResponse { .. });
            let Some((seq, event)) = forward::open_ask(&deps.store, id, correlation_id).await?
            else {
                return Err(lost(deps, &record).await);
            };
            if (event == "ask_user_question") != is_question {
                let (pending, expected) = match event.as_str() {
                    "ask_user_question" => ("question", "question_response"),
                    "hook_decision_request" => ("hook decision request", "permission_response"),
                    _ => ("permission request", "permission_response"),
                };
                return Err(SessionError::WrongResponseType {
                    correlation_id: correlation_id.clone(),
                    pending,
                    expected,
                });
            }
            record.ask_seq = Some(seq);
        }
    }
    match forward::record(&deps.store, &record).await {
        Ok(Some(_)) => {
            if record.ask_seq.is_some() {
                deps.metrics.first_reply_winner.increment(1);
            }
            Ok(())
        }
        Ok(None) => Err(SessionError::OwnedElsewhere),
        Err(StoreError::Conflict(_)) => Err(lost(deps, &record).await),
        Err(e) => Err(e.into()),
    }
}

/// A reply that lost: recorded as a `409`, like on the owner.
async fn lost(deps: &Deps, record: &Forward<'_>) -> SessionError {
    if let Err(e) = forward::record_loser(&deps.store, record).await {
        tracing::warn!(error = %e, "could not record a 409 reply");
    }
    deps.metrics.reply_conflicts.increment(1);
    SessionError::NoPendingDecision
}

/// Forwards a `DELETE` and waits (bounded by the request's own deadline) until `done` is
/// committed, watching the session through `log`, the follower its streams here use.
pub async fn close(
    deps: &Deps,
    log: Arc<EventLog>,
    id: Uuid,
    owner: i32,
    principal: &str,
) -> Result<(), SessionError> {
    let body = serde_json::json!({"type": "delete"});
    let record = Forward {
        session_id: id,
        owner,
        kind: "delete",
        body: &body,
        principal,
        correlation_id: None,
        ask_seq: None,
        turn_state: None,
    };
    match forward::record(&deps.store, &record).await? {
        Some(_) => {}
        None => return Err(SessionError::OwnedElsewhere),
    }
    let mut changes = log.watch();
    loop {
        if log.state() == super::log::LogState::Done {
            return Ok(());
        }
        // The follower re-reads on every commit; a slow owner is bounded by the request
        // timeout around this handler.
        let _ = tokio::time::timeout(Duration::from_millis(500), changes.changed()).await;
    }
}

/// The decision carried by a forwarded reply's body.
pub fn decision(inbound: &Inbound) -> Option<(&str, Decision)> {
    match inbound {
        Inbound::PermissionResponse {
            correlation_id,
            decision,
        } => Some((correlation_id, decision.clone())),
        Inbound::QuestionResponse {
            correlation_id,
            answers,
        } => Some((
            correlation_id,
            Decision::Answer {
                answers: answers.clone(),
            },
        )),
        _ => None,
    }
}
