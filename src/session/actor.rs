//! The session task: one per live session, the only code that **appends** its events.
//!
//! It owns the agent and the turn state. It assigns seqs (so they are gap-free: nothing else
//! appends for this session on this host, and fencing stops other hosts), translates agent
//! messages into wire events, and queues them to the group-commit writer without waiting for
//! each commit; the writer publishes them in order after they commit.
//!
//! User messages wait in a bounded channel that the task reads only between turns, so one turn
//! runs at a time and a full queue is a `503` at the door. Control calls (interrupt, mode,
//! model, stop task) use a separate channel and are served during turns. The agent is started
//! lazily, at the first turn: rehydrating a session to serve a stream costs no agent process.

use super::log::EventLog;
use super::translate::{self, WireEvent};
use super::{ControlMsg, Deps, PendingAsk, PendingAsks, QueuedTurn, Session};
use crate::agent::{
    AgentCommand, AgentError, AgentEvent, AgentHandle, Control, SessionConfig, StartSpec,
};
use crate::frame::{names, Encoder};
use crate::store::inputs::{self, TurnState};
use crate::store::sessions::{self, Claimed};
use crate::store::writer::{Append, CommitSink};
use crate::store::StoreError;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How long a stopping agent gets before its task is aborted.
const AGENT_STOP_GRACE: Duration = Duration::from_secs(5);

enum Exit {
    Close(oneshot::Sender<()>),
    Release,
    Fenced,
}

struct Actor {
    id: Uuid,
    epoch: i64,
    deps: Arc<Deps>,
    log: Arc<EventLog>,
    next_seq: u64,
    /// Packs this session's frames into shared blocks (`frame` module docs).
    encoder: Encoder,
    config: SessionConfig,
    resume_token: Option<String>,
    agent: Option<AgentHandle>,
    /// Input id of the running turn.
    turn: Option<i64>,
    pending: PendingAsks,
    /// Control calls awaiting the agent's answer; a failure becomes an `error` event.
    control_replies: JoinSet<Result<(), AgentError>>,
    stop: CancellationToken,
}

/// Starts the task of a session this host has just claimed.
pub(crate) fn spawn(deps: Arc<Deps>, id: Uuid, principal: &str, claimed: Claimed) -> Arc<Session> {
    let log = Arc::new(EventLog::new(
        id,
        deps.ring_size,
        claimed.tail,
        claimed.last_seq,
    ));
    let (lost, queued): (Vec<_>, Vec<_>) = claimed.open_turns.into_iter().partition(|t| t.running);
    let (turns_tx, turns_rx) = mpsc::channel(deps.queue_capacity + queued.len());
    for turn in queued {
        // Capacity was sized for these, so this cannot fail.
        let _ = turns_tx.try_send(QueuedTurn {
            input_id: turn.input_id,
            content: turn.content,
        });
    }
    let (control_tx, control_rx) = mpsc::channel(deps.queue_capacity);
    let pending = PendingAsks::default();
    let stop = CancellationToken::new();
    let stopped = CancellationToken::new();
    let actor = Actor {
        id,
        epoch: claimed.epoch,
        deps: deps.clone(),
        log: log.clone(),
        next_seq: claimed.last_seq + 1,
        encoder: Encoder::default(),
        config: claimed.config,
        resume_token: claimed.resume_token,
        agent: None,
        turn: None,
        pending: pending.clone(),
        control_replies: JoinSet::new(),
        stop: stop.clone(),
    };
    deps.live.fetch_add(1, Ordering::Relaxed);
    let lost: Vec<i64> = lost.into_iter().map(|t| t.input_id).collect();
    let done = stopped.clone();
    let task_deps = deps.clone();
    tokio::spawn(async move {
        actor.run(lost, turns_rx, control_rx).await;
        task_deps.live.fetch_sub(1, Ordering::Relaxed);
        done.cancel();
    });
    Arc::new(Session {
        id,
        principal: principal.to_owned(),
        log,
        turns: turns_tx,
        control: control_tx,
        pending,
        stop,
        stopped,
        deps,
    })
}

impl Actor {
    async fn run(
        mut self,
        lost_turns: Vec<i64>,
        mut turns: mpsc::Receiver<QueuedTurn>,
        mut control: mpsc::Receiver<ControlMsg>,
    ) {
        for input_id in lost_turns {
            self.report_lost_turn(input_id).await;
        }
        let gone = self.log.gone.clone();
        let exit = loop {
            tokio::select! {
                biased;
                _ = gone.cancelled() => break Exit::Fenced,
                _ = self.stop.cancelled() => break Exit::Release,
                msg = control.recv() => match msg {
                    Some(ControlMsg::Close(ack)) => break Exit::Close(ack),
                    Some(ControlMsg::Control(c)) => self.on_control(c).await,
                    None => break Exit::Release,
                },
                Some(result) = self.control_replies.join_next(), if !self.control_replies.is_empty() => {
                    if let Ok(Err(e)) = result {
                        self.append(vec![translate::error(e.code(), &e.to_string())]).await;
                    }
                }
                event = next_event(&mut self.agent) => match event {
                    Some(event) => self.on_agent_event(event).await,
                    None => self.on_agent_exit().await,
                },
                Some(turn) = turns.recv(), if self.turn.is_none() => self.start_turn(turn).await,
            }
        };
        self.finish(exit).await;
    }

    async fn start_turn(&mut self, turn: QueuedTurn) {
        self.turn = Some(turn.input_id);
        self.set_turn_state(turn.input_id, TurnState::Running).await;
        if self.agent.is_none() {
            let spec = StartSpec {
                session_id: self.id,
                config: self.config.clone(),
                resume_token: self.resume_token.clone(),
            };
            match self.deps.runtime.start(spec) {
                Ok(agent) => self.agent = Some(agent),
                Err(e) => {
                    tracing::warn!(session_id = %self.id, error = %e, "agent failed to start");
                    self.fail_turn(e.code(), &e.to_string(), TurnState::Done)
                        .await;
                    return;
                }
            }
        }
        let sent = self.agent.as_ref().map(|a| {
            a.commands.try_send(AgentCommand::UserMessage {
                content: turn.content,
            })
        });
        if !matches!(sent, Some(Ok(()))) {
            self.on_agent_exit().await;
        }
    }

    async fn on_agent_event(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Ask(ask) => {
                let wire = translate::ask(&ask);
                // Parked before it is announced, so the fastest reply finds it.
                let pending = PendingAsk {
                    kind: ask.kind,
                    seq: self.next_seq,
                    reply: ask.reply,
                };
                self.pending_asks().insert(ask.correlation_id, pending);
                self.append(vec![wire]).await;
            }
            AgentEvent::Result(payload) => {
                let cost = payload
                    .get("total_cost_usd")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let id = self.id.to_string();
                self.append(vec![translate::result(payload, &id)]).await;
                self.pending_asks().clear();
                if let Some(input_id) = self.turn.take() {
                    self.set_turn_state(input_id, TurnState::Done).await;
                    let (store, id, epoch) = (&self.deps.store, self.id, self.epoch);
                    self.persist(|| sessions::turn_finished(store, id, epoch, cost))
                        .await;
                }
            }
            AgentEvent::ResumeToken(token) => {
                let (store, id, epoch) = (&self.deps.store, self.id, self.epoch);
                self.persist(|| sessions::save_resume_token(store, id, epoch, &token))
                    .await;
                self.resume_token = Some(token);
            }
            other => {
                let wire = translate::message(&other);
                self.append(wire).await;
            }
        }
    }

    /// The agent's event stream ended: it exited or crashed. The next turn starts a new one
    /// from the resume token.
    async fn on_agent_exit(&mut self) {
        if let Some(agent) = self.agent.take() {
            stop_agent(agent);
        }
        if self.turn.is_some() {
            self.fail_turn(
                "agent_exited",
                "the agent exited during the turn",
                TurnState::Done,
            )
            .await;
        }
    }

    async fn on_control(&mut self, control: Control) {
        match &control {
            Control::Interrupt if self.turn.is_none() => return,
            Control::SetPermissionMode(mode) => {
                self.config.permission_mode = Some(mode.clone());
                self.save_config().await;
            }
            Control::SetModel(model) => {
                self.config.model = model.clone();
                self.save_config().await;
            }
            _ => {}
        }
        let Some(agent) = &self.agent else { return };
        let (reply, rx) = oneshot::channel();
        let command = AgentCommand::Control { control, reply };
        if agent.commands.try_send(command).is_err() {
            let e = AgentError::Unavailable("the agent is not accepting commands".into());
            self.append(vec![translate::error(e.code(), &e.to_string())])
                .await;
            return;
        }
        self.control_replies
            .spawn(async move { rx.await.unwrap_or(Err(AgentError::Exited)) });
    }

    async fn report_lost_turn(&mut self, input_id: i64) {
        self.turn = Some(input_id);
        self.fail_turn(
            "turn_lost",
            "the host running this turn stopped before it finished; send the message again",
            TurnState::Lost,
        )
        .await;
    }

    /// Ends the running turn with an `error` and a failed `result`, so every UI leaves its
    /// streaming state.
    async fn fail_turn(&mut self, code: &str, message: &str, state: TurnState) {
        let id = self.id.to_string();
        self.append(vec![
            translate::error(code, message),
            translate::failed_result(&id, "error_during_execution"),
        ])
        .await;
        self.pending_asks().clear();
        if let Some(input_id) = self.turn.take() {
            self.set_turn_state(input_id, state).await;
        }
    }

    async fn finish(mut self, exit: Exit) {
        if let Some(agent) = self.agent.take() {
            stop_agent(agent);
        }
        self.pending_asks().clear();
        let deps = self.deps.clone();
        let (store, id, host, epoch) = (&deps.store, self.id, deps.host_id, self.epoch);
        match exit {
            Exit::Close(ack) => {
                let done = WireEvent {
                    name: names::DONE,
                    data: "{}".into(),
                };
                self.append(vec![done]).await;
                if self.flush().await.is_ok() {
                    let last = self.next_seq - 1;
                    self.persist(|| sessions::close(store, id, host, epoch, last))
                        .await;
                }
                let _ = ack.send(());
            }
            Exit::Release => {
                if self.flush().await.is_ok() {
                    let last = self.next_seq - 1;
                    self.persist(|| sessions::release(store, id, host, epoch, last))
                        .await;
                }
                self.log.set_gone();
            }
            Exit::Fenced => self.log.set_gone(),
        }
    }

    /// Queues events for commit; they reach subscribers once committed.
    async fn append(&mut self, events: Vec<WireEvent>) {
        if events.is_empty() {
            return;
        }
        let frames = events
            .iter()
            .map(|e| {
                let frame = self.encoder.encode(self.next_seq, e.name, &e.data);
                self.next_seq += 1;
                frame
            })
            .collect();
        let append = Append {
            session_id: self.id,
            epoch: self.epoch,
            frames,
            sink: self.log.clone() as Arc<dyn CommitSink>,
            ack: None,
        };
        if self.deps.writer.append(append).await.is_err() {
            self.log.set_gone();
        }
    }

    /// Waits until everything appended so far is committed (or failed).
    async fn flush(&self) -> Result<(), StoreError> {
        let (ack, done) = oneshot::channel();
        let append = Append {
            session_id: self.id,
            epoch: self.epoch,
            frames: Vec::new(),
            sink: self.log.clone() as Arc<dyn CommitSink>,
            ack: Some(ack),
        };
        self.deps.writer.append(append).await?;
        done.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("writer stopped".into())))
    }

    async fn set_turn_state(&self, input_id: i64, state: TurnState) {
        let (store, id) = (&self.deps.store, self.id);
        self.persist(|| inputs::set_turn_state(store, id, input_id, state))
            .await;
    }

    async fn save_config(&self) {
        let (store, id, epoch, config) = (&self.deps.store, self.id, self.epoch, &self.config);
        self.persist(|| sessions::save_config(store, id, epoch, config))
            .await;
    }

    /// Bookkeeping writes outside the event log: retried while Postgres is briefly away, but
    /// never forever (the event log, not these rows, is what must not be lost).
    async fn persist<F, Fut>(&self, write: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..8 {
            match write().await {
                Ok(()) => return,
                Err(e) if e.is_unavailable() => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::warn!(session_id = %self.id, error = %e, "session bookkeeping failed");
                    return;
                }
            }
        }
        tracing::warn!(session_id = %self.id, "session bookkeeping gave up: database unavailable");
    }

    fn pending_asks(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, PendingAsk>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

async fn next_event(agent: &mut Option<AgentHandle>) -> Option<AgentEvent> {
    match agent {
        Some(agent) => agent.events.recv().await,
        None => std::future::pending().await,
    }
}

/// Stops an agent in the background: closing its command channel asks it to end; the task is
/// aborted if it does not within the grace period. Callers never wait (a `DELETE` answers at
/// once; the Claude runtime reaps its process on its own schedule).
fn stop_agent(agent: AgentHandle) {
    let AgentHandle {
        commands,
        events,
        mut task,
    } = agent;
    drop(commands);
    drop(events);
    tokio::spawn(async move {
        if tokio::time::timeout(AGENT_STOP_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    });
}
