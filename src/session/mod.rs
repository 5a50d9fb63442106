//! Sessions: the per-session task, the registry of live sessions, the ring, subscriptions.
//!
//! - [`registry`]: finds a session, rehydrating it from Postgres when this host does not hold it.
//! - [`actor`]: the one task per session that drives its agent and **appends** its events.
//! - [`log`]: the ring of committed frames (**where events are published** to subscribers).
//! - [`subscription`]: one SSE subscriber's cursor (ring, then Postgres when behind).
//! - [`translate`]: agent messages → wire events.
//! - [`cost`]: the session's cost from the agents' running totals.
//! - [`inbound`]: parsing and validating `POST /input` bodies.
//! - [`follow`]: streams of sessions another host owns, followed from the table.
//! - [`forward`]: inputs for sessions another host owns, recorded for it to pick up.

pub mod actor;
mod cost;
pub mod follow;
pub mod forward;
pub mod inbound;
pub mod log;
pub mod registry;
pub mod subscription;
pub mod translate;

use crate::agent::{AgentError, AgentRuntime, AskKind, Decision};
use crate::store::{inputs, writer::Writer, Store, StoreError};
use inbound::Inbound;
use log::EventLog;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session not found")]
    NotFound,
    #[error("session is closed")]
    Closed,
    #[error("no pending request with this correlation_id")]
    NoPendingDecision,
    #[error("correlation_id {correlation_id:?} is a {pending}; answer it with {expected}")]
    WrongResponseType {
        correlation_id: String,
        pending: &'static str,
        expected: &'static str,
    },
    #[error("the session's inbound queue is full")]
    QueueFull,
    #[error("this host is at its session limit")]
    AtCapacity,
    #[error("this host is overloaded: its writes to the database are queuing up")]
    Overloaded,
    #[error("the session has too many open streams on this host")]
    TooManySubscribers,
    #[error("the session is held by another host; it is being handed over")]
    OwnedElsewhere,
    #[error("this host is shutting down")]
    Draining,
    #[error("this host's lease has expired; it takes no sessions until its heartbeat is back")]
    LeaseExpired,
    #[error("the session is stopping on this host")]
    Stopping,
    #[error("Last-Event-ID {after} is ahead of the session's last event {last}")]
    ResumeAhead { after: u64, last: u64 },
    #[error("events after {after} no longer exist (removed by retention)")]
    EventsExpired { after: u64 },
    #[error("events after {after} were lost by the database (a failover) and cannot be sent")]
    EventsLost { after: u64 },
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What every session of this host shares.
pub struct Deps {
    pub store: Store,
    pub writer: Writer,
    pub runtime: Arc<dyn AgentRuntime>,
    pub host_id: i32,
    pub ring_size: usize,
    pub queue_capacity: usize,
    pub keepalive: Duration,
    pub ownership: Ownership,
    /// Host shutdown: ends every stream.
    pub shutdown: CancellationToken,
    /// The host is draining: it claims no session.
    pub draining: CancellationToken,
    /// When the host last wrote its heartbeat (see `store::hosts::keep_alive`).
    pub last_heartbeat: Arc<Mutex<std::time::Instant>>,
    /// Sessions running on this host.
    pub live: AtomicUsize,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Other hosts' commits and forwarded inputs (`store::listen`).
    pub hub: Arc<crate::store::listen::Hub>,
    /// Open streams per session beyond which a new one is `429`.
    pub max_subscribers: usize,
    /// Most bytes a subscriber takes at once (ring chunk or Postgres page).
    pub sse_buffer_bytes: usize,
}

/// Timings of multi-host ownership.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    /// A host that has not written its heartbeat for this long is dead to the others, and
    /// stops serving its sessions itself.
    pub lease: Duration,
    /// How often a host compares the sessions it holds with what the rows say it owns.
    pub check_interval: Duration,
}

/// A user message accepted into the session's queue.
#[derive(Debug)]
pub(crate) struct QueuedTurn {
    pub input_id: i64,
    pub content: Value,
    /// The request that queued it: the turn's span is its child, so a caller's trace
    /// (`traceparent`) continues into the turn.
    pub span: tracing::Span,
}

pub(crate) enum ControlMsg {
    Control(crate::agent::Control),
    Close(oneshot::Sender<()>),
    /// An event the session appends on an HTTP caller's behalf (a decision's `*_resolved`).
    Append(translate::WireEvent),
    /// Another host asked for the session (or this one drains): let go at the turn boundary.
    Handover,
}

/// A parked callback waiting for its first reply.
pub(crate) struct PendingAsk {
    pub kind: AskKind,
    /// Seq of the event that asked; the unique key of its accepted decision in `inputs`.
    pub seq: u64,
    pub reply: oneshot::Sender<Decision>,
}

pub(crate) type PendingAsks = Arc<Mutex<HashMap<String, PendingAsk>>>;

/// The handle HTTP handlers use; the session's state lives in its [`actor`].
pub struct Session {
    pub id: Uuid,
    pub principal: String,
    /// The epoch this host claimed the session with.
    pub epoch: i64,
    pub log: Arc<EventLog>,
    turns: mpsc::Sender<QueuedTurn>,
    control: mpsc::Sender<ControlMsg>,
    pending: PendingAsks,
    /// Asks the actor to let go of the session (eviction, drain).
    stop: CancellationToken,
    /// Cancelled when the actor has finished.
    stopped: CancellationToken,
    deps: Arc<Deps>,
}

impl Session {
    pub fn is_running(&self) -> bool {
        !self.stopped.is_cancelled()
    }

    /// Handles one inbound message. Returns once it is recorded in Postgres (a `204`).
    pub async fn input(
        &self,
        inbound: Inbound,
        body: &Value,
        principal: &str,
    ) -> Result<(), SessionError> {
        let result = self.accept(inbound, body, principal).await;
        if matches!(result, Err(SessionError::Store(StoreError::Fenced))) {
            // Another host owns the session now: end this host's streams for it.
            self.log.set_gone();
        }
        result
    }

    async fn accept(
        &self,
        inbound: Inbound,
        body: &Value,
        principal: &str,
    ) -> Result<(), SessionError> {
        self.log.touch();
        let base = inputs::NewInput {
            session_id: self.id,
            holder: (self.deps.host_id, self.epoch),
            kind: inbound.kind(),
            body,
            principal,
            status: 204,
            correlation_id: None,
            ask_seq: None,
            turn_state: None,
        };
        match &inbound {
            Inbound::UserMessage { content } => {
                // New work is refused while the writer is saturated; replies and controls
                // (which unblock or stop work) still pass.
                if self.deps.writer.saturated() {
                    self.deps.metrics.overloaded.increment(1);
                    return Err(SessionError::Overloaded);
                }
                // Reserve the queue slot first: a full queue must not leave a recorded input.
                let permit = self.turns.try_reserve().map_err(queue_error)?;
                let queued = inputs::NewInput {
                    turn_state: Some(inputs::TurnState::Queued),
                    ..base
                };
                let input_id = inputs::record(&self.deps.store, queued).await?;
                permit.send(QueuedTurn {
                    input_id,
                    content: content.clone(),
                    span: tracing::Span::current(),
                });
            }
            Inbound::Control(control) => {
                let permit = self.control.try_reserve().map_err(queue_error)?;
                inputs::record(&self.deps.store, base).await?;
                permit.send(ControlMsg::Control(control.clone()));
            }
            Inbound::PermissionResponse {
                correlation_id,
                decision,
            } => self.decide(correlation_id, decision.clone(), base).await?,
            Inbound::QuestionResponse {
                correlation_id,
                answers,
            } => {
                let decision = Decision::Answer {
                    answers: answers.clone(),
                };
                self.decide(correlation_id, decision, base).await?
            }
        }
        Ok(())
    }

    /// First reply wins: the reply that takes the parked callback out of the map is the one;
    /// every other gets `NoPendingDecision` (409). The unique index on accepted decisions makes
    /// the same true across hosts.
    async fn decide(
        &self,
        correlation_id: &str,
        decision: Decision,
        base: inputs::NewInput<'_>,
    ) -> Result<(), SessionError> {
        let is_question = matches!(decision, Decision::Answer { .. });
        let taken = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match pending.get(correlation_id) {
                Some(ask) if (ask.kind == AskKind::Question) != is_question => {
                    let (pending, expected) = match ask.kind {
                        AskKind::Question => ("question", "question_response"),
                        AskKind::Permission => ("permission request", "permission_response"),
                        AskKind::Hook => ("hook decision request", "permission_response"),
                    };
                    return Err(SessionError::WrongResponseType {
                        correlation_id: correlation_id.to_owned(),
                        pending,
                        expected,
                    });
                }
                Some(ask) if ask.reply.is_closed() => {
                    pending.remove(correlation_id);
                    None
                }
                Some(_) => pending.remove(correlation_id),
                None => None,
            }
        };
        let Some(ask) = taken else {
            return Err(self.lost_decision(correlation_id, base).await);
        };
        // The `*_resolved` event goes through the session task, which alone assigns seqs. Its
        // slot is reserved before the decision is recorded, so a recorded decision always gets
        // its event; it is queued before the agent hears the decision, and the task serves
        // this channel before agent events, so it precedes everything the decision causes.
        let Ok(slot) = self.control.reserve().await else {
            return Err(SessionError::Stopping);
        };
        let winner = inputs::NewInput {
            correlation_id: Some(correlation_id),
            ask_seq: Some(ask.seq),
            ..base
        };
        match inputs::record(&self.deps.store, winner).await {
            Ok(_) => {
                slot.send(ControlMsg::Append(translate::resolved(
                    correlation_id,
                    &decision,
                )));
                // The agent may have moved on (interrupt) in between; the reply is then moot.
                let _ = ask.reply.send(decision);
                self.deps.metrics.first_reply_winner.increment(1);
                Ok(())
            }
            // Another host recorded a decision first (the unique index): a loser like any other.
            // The request stays parked: the winner's reply reaches it through Postgres
            // (`forward`), and the session must still be able to hand it over.
            Err(StoreError::Conflict(_)) => {
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(correlation_id.to_owned(), ask);
                Err(self.lost_decision(correlation_id, base).await)
            }
            Err(e) => {
                // Not recorded, so not accepted: put it back for a retry.
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(correlation_id.to_owned(), ask);
                Err(e.into())
            }
        }
    }

    /// Records a reply that lost the race (`409`), so the audit log shows who else answered.
    async fn lost_decision(
        &self,
        correlation_id: &str,
        base: inputs::NewInput<'_>,
    ) -> SessionError {
        let loser = inputs::NewInput {
            status: 409,
            correlation_id: Some(correlation_id),
            ..base
        };
        if let Err(e) = inputs::record(&self.deps.store, loser).await {
            tracing::warn!(error = %e, "could not record a 409 reply");
        }
        self.deps.metrics.reply_conflicts.increment(1);
        SessionError::NoPendingDecision
    }

    /// `DELETE`: stops the agent, commits `done`, marks the session closed. Streams end after
    /// delivering `done`.
    pub async fn close(&self) -> Result<(), SessionError> {
        let (tx, rx) = oneshot::channel();
        self.control
            .send(ControlMsg::Close(tx))
            .await
            .map_err(|_| SessionError::Stopping)?;
        rx.await.map_err(|_| SessionError::Stopping)
    }

    /// Asks the session to let go at its next turn boundary (does not wait).
    pub fn handover(&self) {
        let _ = self.control.try_send(ControlMsg::Handover);
    }

    /// Waits until the session task has finished.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await
    }

    /// Lets go of the session on this host (eviction, drain) and waits until it has.
    pub async fn release(&self) {
        self.stop.cancel();
        self.stopped.cancelled().await;
    }
}

fn queue_error<T>(e: mpsc::error::TrySendError<T>) -> SessionError {
    match e {
        mpsc::error::TrySendError::Full(_) => SessionError::QueueFull,
        mpsc::error::TrySendError::Closed(_) => SessionError::Stopping,
    }
}
