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

use super::cost::CostMeter;
use super::inbound::{self, Inbound};
use super::log::EventLog;
use super::translate::{self, WireEvent};
use super::{ControlMsg, Deps, PendingAsk, PendingAsks, QueuedTurn, Session};
use crate::agent::{
    AgentCommand, AgentError, AgentEvent, AgentHandle, Control, SessionConfig, StartSpec,
};
use crate::frame::{names, Encoder};
use crate::metrics::EvictReason;
use crate::store::inputs::{self, TurnState};
use crate::store::sessions::{self, Claimed};
use crate::store::writer::{Append, CommitSink};
use crate::store::StoreError;
use crate::store::{forward, transcripts};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
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
    /// Seq of the next mirrored transcript entry (`store::transcripts`).
    next_transcript_seq: u64,
    /// Packs this session's frames into shared blocks (`frame` module docs).
    encoder: Encoder,
    config: SessionConfig,
    resume_token: Option<String>,
    /// The session's cost, from the running totals the agent reports (see `cost`).
    cost: CostMeter,
    agent: Option<AgentHandle>,
    /// Whether the agent's latest event was an `Error`: if it then exits, that error already
    /// told the client why, and only the turn's failed `result` is missing.
    agent_reported_error: bool,
    /// Input id of the running turn.
    turn: Option<i64>,
    pending: PendingAsks,
    /// Control calls awaiting the agent's answer; a failure becomes an `error` event.
    control_replies: JoinSet<(Control, Result<(), AgentError>)>,
    stop: CancellationToken,
    /// A handover was asked for: start no new turn, let go when the current one ends.
    handing_over: bool,
    /// The running turn's span (`Span::none()` between turns).
    turn_span: tracing::Span,
    /// The session task's span: turns link to it.
    session_span: tracing::Span,
    /// Seq of the running turn's first event.
    turn_first_seq: u64,
    /// User messages other hosts recorded for this session (`forward`), waiting for a turn.
    forwarded_turns: std::collections::VecDeque<QueuedTurn>,
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
            span: tracing::Span::none(),
        });
    }
    let (control_tx, control_rx) = mpsc::channel(deps.queue_capacity);
    let pending = PendingAsks::default();
    let stop = CancellationToken::new();
    let stopped = CancellationToken::new();
    // A root span for the task's whole life (exported when the session leaves the host); the
    // request that brought the session here is linked rather than made its parent, so a short
    // request does not own an hours-long child.
    let session_span = tracing::info_span!(
        parent: None,
        "session",
        session_id = %id,
        host_id = deps.host_id,
        epoch = claimed.epoch,
        protocol_version = crate::PROTOCOL_VERSION,
        event_seq = claimed.last_seq,
    );
    session_span.follows_from(tracing::Span::current());
    let actor = Actor {
        id,
        epoch: claimed.epoch,
        deps: deps.clone(),
        log: log.clone(),
        next_seq: claimed.last_seq + 1,
        next_transcript_seq: claimed.transcript_seq + 1,
        encoder: Encoder::default(),
        config: claimed.config,
        resume_token: claimed.resume_token,
        cost: CostMeter::new(claimed.total_cost_usd),
        agent: None,
        agent_reported_error: false,
        turn: None,
        pending: pending.clone(),
        control_replies: JoinSet::new(),
        stop: stop.clone(),
        handing_over: false,
        turn_span: tracing::Span::none(),
        session_span: session_span.clone(),
        turn_first_seq: 0,
        forwarded_turns: Default::default(),
    };
    // Watched before the task starts: an input forwarded right after the claim is not missed.
    let inbox = deps.hub.watch_inputs(id);
    deps.live.fetch_add(1, Ordering::Relaxed);
    let lost: Vec<i64> = lost.into_iter().map(|t| t.input_id).collect();
    let done = stopped.clone();
    let task_deps = deps.clone();
    tokio::spawn(
        async move {
            actor.run(lost, turns_rx, control_rx, inbox).await;
            task_deps.live.fetch_sub(1, Ordering::Relaxed);
            done.cancel();
        }
        .instrument(session_span),
    );
    Arc::new(Session {
        id,
        principal: principal.to_owned(),
        epoch: claimed.epoch,
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
        mut inbox: tokio::sync::watch::Receiver<u64>,
    ) {
        for input_id in lost_turns {
            self.report_lost_turn(input_id).await;
        }
        // Made once and polled by reference: a `cancelled()` made anew on every pass of the loop
        // registered and removed a waiter per event (4% of the server's CPU at model pace,
        // BENCHMARKS.md "Capacity at model pace").
        let gone = self.log.gone.clone().cancelled_owned();
        let stopped = self.stop.clone().cancelled_owned();
        tokio::pin!(gone, stopped);
        let mut exit = self.on_inbox().await;
        let exit = loop {
            if let Some(exit) = exit.take() {
                break exit;
            }
            if self.handing_over && self.turn.is_none() {
                break Exit::Release;
            }
            if self.turn.is_none() && !self.handing_over {
                if let Some(turn) = self.forwarded_turns.pop_front() {
                    self.start_turn(turn).await;
                    continue;
                }
            }
            tokio::select! {
                biased;
                _ = &mut gone => break Exit::Fenced,
                _ = &mut stopped => break Exit::Release,
                msg = control.recv() => match msg {
                    Some(ControlMsg::Close(ack)) => break Exit::Close(ack),
                    Some(ControlMsg::Control(c)) => self.on_control(c).await,
                    Some(ControlMsg::Append(event)) => self.append(vec![event]).await,
                    Some(ControlMsg::Handover) => self.handing_over = true,
                    None => break Exit::Release,
                },
                Some(result) = self.control_replies.join_next(), if !self.control_replies.is_empty() => {
                    match result {
                        Ok((control, Ok(()))) => self.apply_config(&control).await,
                        Ok((_, Err(e))) => {
                            self.append(vec![translate::error(e.code(), &e.to_string())]).await;
                        }
                        Err(_) => {}
                    }
                }
                event = next_event(&mut self.agent) => {
                    let span = self.turn_span.clone();
                    match event {
                        Some(event) => self.on_agent_event(event).instrument(span).await,
                        None => self.on_agent_exit().instrument(span).await,
                    }
                },
                Some(turn) = turns.recv(), if self.turn.is_none() && !self.handing_over => {
                    self.start_turn(turn).await
                }
                Ok(()) = inbox.changed() => exit = self.on_inbox().await,
            }
        };
        self.finish(exit).await;
    }

    /// Acts on the inputs other hosts recorded for this session (`session::forward`), in the
    /// order they were recorded. Returns how to exit when one of them is a `DELETE`.
    async fn on_inbox(&mut self) -> Option<Exit> {
        let holder = (self.deps.host_id, self.epoch);
        let taken = match forward::take(&self.deps.store, self.id, holder).await {
            Ok(taken) => taken,
            Err(e) => {
                // Left undelivered: the next notification, or the next owner, takes them.
                tracing::warn!(session_id = %self.id, error = %e, "forwarded inputs not taken");
                return None;
            }
        };
        for input in taken {
            if input.kind == "delete" {
                let (ack, _) = oneshot::channel();
                return Some(Exit::Close(ack));
            }
            let Ok((inbound, _)) = inbound::parse(input.body.to_string().as_bytes()) else {
                tracing::warn!(session_id = %self.id, input_id = input.id, "forwarded input unreadable");
                continue;
            };
            match inbound {
                Inbound::UserMessage { content } => self.forwarded_turns.push_back(QueuedTurn {
                    input_id: input.id,
                    content,
                    span: tracing::Span::none(),
                }),
                Inbound::Control(control) => self.on_control(control).await,
                reply => {
                    let Some((correlation_id, decision)) = super::forward::decision(&reply) else {
                        continue;
                    };
                    let ask = self.pending_asks().remove(correlation_id);
                    match ask {
                        Some(ask) => {
                            // As on this host: the `*_resolved` event before what it causes.
                            self.append(vec![translate::resolved(correlation_id, &decision)])
                                .await;
                            let _ = ask.reply.send(decision);
                        }
                        None => {
                            tracing::debug!(session_id = %self.id, correlation_id, "forwarded reply found no pending request")
                        }
                    }
                }
            }
        }
        None
    }

    async fn start_turn(&mut self, turn: QueuedTurn) {
        let span = self.open_turn_span(turn.input_id, &turn.span);
        self.run_turn_start(turn).instrument(span).await
    }

    /// The turn's span: a child of the request that queued it (continuing the caller's trace),
    /// linked to the session task's span.
    fn open_turn_span(&mut self, input_id: i64, request: &tracing::Span) -> tracing::Span {
        let span = tracing::info_span!(
            parent: request,
            "session.turn",
            session_id = %self.id,
            host_id = self.deps.host_id,
            protocol_version = crate::PROTOCOL_VERSION,
            input_id,
            first_event_seq = self.next_seq,
            event_seq = tracing::field::Empty,
        );
        span.follows_from(&self.session_span);
        self.turn_first_seq = self.next_seq;
        self.turn_span = span.clone();
        span
    }

    /// Closes the turn's span, with the seq of its last event.
    fn close_turn_span(&mut self) {
        let last = self.next_seq - 1;
        self.turn_span.record("event_seq", last);
        self.session_span.record("event_seq", last);
        self.turn_span = tracing::Span::none();
    }

    async fn run_turn_start(&mut self, turn: QueuedTurn) {
        tracing::debug!(session_id = %self.id, input_id = turn.input_id, "turn starts");
        self.turn = Some(turn.input_id);
        self.set_turn_state(turn.input_id, TurnState::Running).await;
        if self.agent.is_none() {
            let transcript = match self.load_transcript().await {
                Ok(transcript) => transcript,
                Err(e) => {
                    tracing::warn!(session_id = %self.id, error = %e, "transcript not loaded");
                    self.fail_turn(
                        "database_unavailable",
                        "the conversation could not be loaded; send the message again",
                        TurnState::Done,
                    )
                    .await;
                    return;
                }
            };
            let spec = StartSpec {
                session_id: self.id,
                config: self.config.clone(),
                resume_token: self.resume_token.clone(),
                transcript,
            };
            let resumed = spec.resume_token.is_some();
            match self.deps.runtime.start(spec).await {
                Ok(agent) => {
                    self.deps.metrics.agent_processes.increment(1.0);
                    self.cost.agent_started(resumed);
                    self.agent = Some(agent);
                }
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
            // The agent ended before it could take the message (it failed to start): what it
            // said before ending explains why, so it goes first.
            let mut said = Vec::new();
            if let Some(agent) = self.agent.as_mut() {
                while let Ok(event) = agent.events.try_recv() {
                    said.push(event);
                }
            }
            for event in said {
                self.on_agent_event(event).await;
            }
            self.on_agent_exit().await;
        }
    }

    async fn on_agent_event(&mut self, event: AgentEvent) {
        self.agent_reported_error = matches!(event, AgentEvent::Error { .. });
        match event {
            AgentEvent::Ask(ask) => {
                let wire = translate::ask(&ask);
                tracing::info!(
                    correlation_id = %ask.correlation_id,
                    event_seq = self.next_seq,
                    kind = ?ask.kind,
                    "session.ask"
                );
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
                let reported = payload.get("total_cost_usd").and_then(|v| v.as_f64());
                let id = self.id.to_string();
                self.append(vec![translate::result(payload, &id)]).await;
                self.pending_asks().clear();
                if let Some(input_id) = self.turn.take() {
                    self.close_turn_span();
                    self.end_turn_state(input_id, TurnState::Done).await;
                    let cost = self.cost.turn(reported);
                    let (store, id, epoch) = (&self.deps.store, self.id, self.epoch);
                    self.persist(|| sessions::turn_finished(store, id, epoch, cost))
                        .await;
                }
            }
            AgentEvent::Transcript { file, entries } => self.append_transcript(file, entries).await,
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
            stop_agent(agent, self.deps.metrics.agent_processes.clone());
        }
        let explained = std::mem::take(&mut self.agent_reported_error);
        if self.turn.is_some() {
            let error = (!explained)
                .then(|| translate::error("agent_exited", "the agent exited during the turn"));
            self.end_failed_turn(error, TurnState::Done).await;
        }
    }

    /// Serves a control call. A mode or model change becomes the session's config (used by
    /// every later start of the agent) once the running agent accepted it, or at once when no
    /// agent runs: a value the agent refused must not be stored and break the next start.
    async fn on_control(&mut self, control: Control) {
        if control == Control::Interrupt && self.turn.is_none() {
            return;
        }
        let Some(agent) = &self.agent else {
            self.apply_config(&control).await;
            return;
        };
        let (reply, rx) = oneshot::channel();
        let command = AgentCommand::Control {
            control: control.clone(),
            reply,
        };
        if agent.commands.try_send(command).is_err() {
            let e = AgentError::Unavailable("the agent is not accepting commands".into());
            self.append(vec![translate::error(e.code(), &e.to_string())])
                .await;
            return;
        }
        self.control_replies.spawn(async move {
            let outcome = rx.await.unwrap_or(Err(AgentError::Exited));
            (control, outcome)
        });
    }

    async fn apply_config(&mut self, control: &Control) {
        match control {
            Control::SetPermissionMode(mode) => self.config.permission_mode = Some(mode.clone()),
            Control::SetModel(model) => self.config.model = model.clone(),
            Control::Interrupt | Control::StopTask(_) => return,
        }
        self.save_config().await;
    }

    async fn report_lost_turn(&mut self, input_id: i64) {
        tracing::debug!(session_id = %self.id, input_id, "reporting a turn lost with its host");
        self.open_turn_span(input_id, &tracing::Span::none());
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
        let error = translate::error(code, message);
        self.end_failed_turn(Some(error), state).await;
    }

    /// [`fail_turn`](Self::fail_turn) without an `error` of our own when the agent sent one.
    async fn end_failed_turn(&mut self, error: Option<WireEvent>, state: TurnState) {
        let id = self.id.to_string();
        let result = translate::failed_result(&id, "error_during_execution");
        self.append(error.into_iter().chain([result]).collect())
            .await;
        self.pending_asks().clear();
        if let Some(input_id) = self.turn.take() {
            self.close_turn_span();
            self.end_turn_state(input_id, state).await;
        }
    }

    async fn finish(mut self, exit: Exit) {
        if let Some(agent) = self.agent.take() {
            stop_agent(agent, self.deps.metrics.agent_processes.clone());
        }
        let reason = match &exit {
            Exit::Close(_) => EvictReason::Closed,
            Exit::Fenced => EvictReason::Fenced,
            Exit::Release if self.deps.draining.is_cancelled() => EvictReason::Shutdown,
            Exit::Release if self.handing_over => EvictReason::Handover,
            Exit::Release => EvictReason::Idle,
        };
        self.deps.metrics.evicted(reason);
        tracing::debug!(session_id = %self.id, reason = reason.as_str(), "session leaves this host");
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
                    let closed = self
                        .persist(|| sessions::close(store, id, host, epoch, last))
                        .await;
                    // Only a committed close: a session that stays open keeps its files.
                    if closed {
                        deps.runtime.closed(id, &self.config);
                        // Nothing appends to a closed session any more (its owner is gone).
                        self.persist(|| async { transcripts::delete(store, id).await.map(drop) })
                            .await;
                    }
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

    /// The stored transcript a resuming agent needs (none for a new conversation, or for a
    /// runtime that does not mirror).
    async fn load_transcript(&self) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        if self.resume_token.is_none() || !self.deps.runtime.mirrors() {
            return Ok(Vec::new());
        }
        transcripts::load(&self.deps.store, self.id).await
    }

    /// Queues mirrored transcript entries for commit, in order with the events around them:
    /// the `result` the agent sends after them commits in the same batch or a later one.
    async fn append_transcript(&mut self, file: String, entries: Vec<(Option<String>, String)>) {
        let file: Arc<str> = Arc::from(file);
        let transcript = entries
            .into_iter()
            .map(|(uuid, json)| {
                let seq = self.next_transcript_seq;
                self.next_transcript_seq += 1;
                transcripts::Entry {
                    seq,
                    file: file.clone(),
                    uuid,
                    json,
                }
            })
            .collect();
        let append = Append {
            session_id: self.id,
            epoch: self.epoch,
            frames: Vec::new(),
            transcript,
            sink: self.log.clone() as Arc<dyn CommitSink>,
            ack: None,
            span: tracing::Span::current(),
        };
        if self.deps.writer.append(append).await.is_err() {
            self.log.set_gone();
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
            transcript: Vec::new(),
            sink: self.log.clone() as Arc<dyn CommitSink>,
            ack: None,
            span: tracing::Span::current(),
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
            transcript: Vec::new(),
            sink: self.log.clone() as Arc<dyn CommitSink>,
            ack: Some(ack),
            span: tracing::Span::current(),
        };
        self.deps.writer.append(append).await?;
        done.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("writer stopped".into())))
    }

    /// Records how a turn ended, once its last events (the `result`) are committed. A state
    /// written before them would outlive a host that dies in between: the turn would be "done"
    /// with no result in the table, and the new owner would neither re-run nor report it. If
    /// the commit fails (fenced, or the database gone), the state is left to the next owner.
    async fn end_turn_state(&self, input_id: i64, state: TurnState) {
        if self.flush().await.is_ok() {
            self.set_turn_state(input_id, state).await;
        }
    }

    async fn set_turn_state(&self, input_id: i64, state: TurnState) {
        let (store, id) = (&self.deps.store, self.id);
        let holder = (self.deps.host_id, self.epoch);
        self.persist(|| async move {
            if !inputs::set_turn_state(store, id, input_id, state, holder).await? {
                tracing::debug!(session_id = %id, input_id, "turn state not set: deposed");
            }
            Ok(())
        })
        .await;
    }

    async fn save_config(&self) {
        let (store, id, epoch, config) = (&self.deps.store, self.id, self.epoch, &self.config);
        self.persist(|| sessions::save_config(store, id, epoch, config))
            .await;
    }

    /// Bookkeeping writes outside the event log: retried while Postgres is briefly away, but
    /// never forever (the event log, not these rows, is what must not be lost). Returns whether
    /// the write went through.
    async fn persist<F, Fut>(&self, write: F) -> bool
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), StoreError>>,
    {
        let mut backoff = Duration::from_millis(50);
        for _ in 0..8 {
            match write().await {
                Ok(()) => return true,
                Err(e) if e.is_unavailable() => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::warn!(session_id = %self.id, error = %e, "session bookkeeping failed");
                    return false;
                }
            }
        }
        tracing::warn!(session_id = %self.id, "session bookkeeping gave up: database unavailable");
        false
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
fn stop_agent(agent: AgentHandle, running: metrics::Gauge) {
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
        running.decrement(1.0);
    });
}
