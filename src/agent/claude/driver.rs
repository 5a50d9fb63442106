//! The driver: one task per CLI process, the only code that touches the process's state.
//!
//! It selects over four sources and never blocks on any of them: the session's commands, the
//! reader's frames, the parked requests' decisions and the deadlines of our control requests.
//! So a permission waiting for a person never delays an interrupt, and a CLI that stops
//! answering becomes an `error` event rather than a hang:
//! - `initialize` unanswered within the start timeout → `agent_start_timeout`, process killed;
//! - a control request unanswered → that call fails with `control_timeout`;
//! - no `result` within the control timeout after an acknowledged interrupt →
//!   `agent_unresponsive`, process killed.
//!
//! Commands that arrive before `initialize` is answered wait in a backlog, in order. When the
//! CLI exits (stdout EOF) during a turn, the client gets `error {code: "agent_exited"}` with the
//! exit status and the stderr tail; the session then ends the turn with a failed `result` and
//! starts a new process, resuming the conversation, at the next message. When the session lets
//! go (commands closed), stdin is closed and the process is stopped and reaped in the
//! background without delaying the session.

use super::asks::Parked;
use super::control::{self, Outstanding, Waiter};
use super::mapping::Mapper;
use super::pipes::{Incoming, StderrTail};
use super::process::{Process, Stop};
use super::protocol::{self, str_at};
use super::transcript::{Mirror, Support};
use super::Options;
use crate::agent::{AgentCommand, AgentError, AgentEvent, Control};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

/// How long an exited CLI gets to report its status and last stderr lines.
const EXIT_REPORT_WAIT: Duration = Duration::from_millis(500);

pub struct Driver {
    pub session_id: Uuid,
    pub options: Arc<Options>,
    pub commands: mpsc::Receiver<AgentCommand>,
    pub events: mpsc::Sender<AgentEvent>,
    pub frames: mpsc::Receiver<Incoming>,
    pub stdin: Option<mpsc::UnboundedSender<String>>,
    pub process: Process,
    pub stderr: StderrTail,
    pub stderr_task: JoinHandle<()>,
    pub mapper: Mapper,
    /// The projects dir `transcript_mirror` paths must lie in; `None`: launched without
    /// `--session-mirror`.
    pub mirror: Option<Mirror>,
    pub mirror_support: Arc<Support>,
    /// Whether this process mirrored anything yet.
    pub mirrored: bool,
    /// Told whether `initialize` was answered (`Err`: why the CLI ended before).
    pub ready: Option<oneshot::Sender<Result<(), String>>>,
    /// Hook callback id → hook event, for the hooks the session registered.
    pub hooks: HashMap<String, String>,
    pub outstanding: Outstanding,
    pub parked: Parked,
    /// Whether `initialize` has been answered.
    pub started: bool,
    pub backlog: VecDeque<AgentCommand>,
    /// Whether a turn runs (a user message was sent and its `result` has not come).
    pub turn: bool,
    pub interrupt_deadline: Option<Instant>,
    /// Errors of a `result` written before `initialize` was answered (a failed resume).
    pub startup_errors: Vec<String>,
    pub spawned_at: Instant,
}

/// Why the driver stops.
pub(super) enum End {
    /// The session let go of its agent.
    SessionGone,
    /// The CLI closed stdout: it exited or crashed.
    Eof,
    /// We give up on the CLI: the `error` code and message.
    Failed(&'static str, String),
}

pub(super) type Step = Result<(), End>;

impl Driver {
    pub async fn run(mut self, hooks: Option<Value>) {
        self.spawned_at = Instant::now();
        let deadline = self.spawned_at + self.options.start_timeout;
        let id = self.outstanding.start(Waiter::Initialize, deadline);
        self.write(&protocol::control_request(&id, control::initialize(hooks)));
        let end = self.serve().await;
        self.finish(end).await;
    }

    async fn serve(&mut self) -> End {
        loop {
            let deadline = self.next_deadline();
            let step = tokio::select! {
                biased;
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => Err(End::SessionGone),
                },
                incoming = self.frames.recv() => match incoming {
                    Some(Incoming::Frame(frame)) => self.frame(frame).await,
                    Some(Incoming::TooLong(len)) => self.too_long(len).await,
                    None => Err(End::Eof),
                },
                (id, answer, decision) = self.parked.next() => {
                    self.answer(&id, &answer, decision);
                    Ok(())
                }
                () = sleep_until(deadline), if deadline.is_some() => self.timeouts(),
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let control = self.outstanding.next_deadline();
        match (control, self.interrupt_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn write(&self, frame: &Value) {
        let sent = self.stdin.as_ref().map(|w| w.send(protocol::line(frame)));
        if !matches!(sent, Some(Ok(()))) {
            tracing::debug!(session_id = %self.session_id, "claude: stdin is closed; frame not sent");
        }
    }

    pub(super) async fn emit(&mut self, events: Vec<AgentEvent>) -> Step {
        for event in events {
            if matches!(event, AgentEvent::Result(_)) {
                self.turn = false;
                self.interrupt_deadline = None;
            }
            self.events
                .send(event)
                .await
                .map_err(|_| End::SessionGone)?;
        }
        Ok(())
    }

    fn command(&mut self, command: AgentCommand) -> Step {
        if !self.started {
            self.backlog.push_back(command);
            return Ok(());
        }
        match command {
            AgentCommand::UserMessage { content } => {
                self.turn = true;
                self.write(&protocol::user_message(&content));
            }
            AgentCommand::Control { control, reply } => {
                let request = control::request(&control);
                let deadline = Instant::now() + self.options.control_timeout;
                let waiter = Waiter::Session { control, reply };
                let id = self.outstanding.start(waiter, deadline);
                self.write(&protocol::control_request(&id, request));
            }
        }
        Ok(())
    }

    async fn frame(&mut self, frame: Value) -> Step {
        match protocol::kind(&frame) {
            "control_response" => self.control_response(&frame),
            "control_request" => self.cli_request(&frame).await,
            "control_cancel_request" => {
                if let Some(id) = str_at(&frame, "request_id") {
                    let withdrawn = self.parked.cancel(id);
                    tracing::debug!(session_id = %self.session_id, id, withdrawn, "claude: request withdrawn");
                }
                Ok(())
            }
            "keep_alive" => Ok(()),
            "transcript_mirror" => self.transcript_mirror(&frame).await,
            "system"
                if matches!(
                    str_at(&frame, "subtype"),
                    Some("mirror_error" | "session_writes_lost")
                ) =>
            {
                // The CLI could not write (or mirror) its transcript: the conversation may not
                // survive this host, and the client should know.
                let code = match str_at(&frame, "subtype") {
                    Some("mirror_error") => "transcript_mirror_failed",
                    _ => "transcript_writes_lost",
                };
                let detail = str_at(&frame, "error")
                    .or_else(|| str_at(&frame, "error_code"))
                    .unwrap_or("no detail");
                let message = format!(
                    "the Claude CLI reported {code}: {}",
                    crate::echo::echo(detail)
                );
                tracing::warn!(session_id = %self.session_id, code, %message, "claude: transcript problem");
                self.emit(vec![AgentEvent::Error {
                    code: code.into(),
                    message,
                }])
                .await
            }
            // Before `initialize` is answered, a result is a startup failure (e.g. a resume of
            // an unknown conversation): it explains the exit that follows, not a turn.
            "result" if !self.started => {
                let errors = frame.get("errors").and_then(Value::as_array);
                let errors = errors.into_iter().flatten().filter_map(Value::as_str);
                self.startup_errors.extend(errors.map(str::to_owned));
                Ok(())
            }
            _ => {
                let mut out = Vec::new();
                self.mapper.frame(&frame, &mut out);
                let result = out.iter().any(|e| matches!(e, AgentEvent::Result(_)));
                if result && self.mirror.is_some() && !self.mirrored {
                    self.mirror_support.silent();
                }
                self.emit(out).await
            }
        }
    }

    /// A `transcript_mirror` frame: the entries go to the session (stored before whatever the
    /// CLI says next); a frame whose path or entries are not acceptable is refused with an
    /// `error` event and nothing of it is kept (`transcript`).
    async fn transcript_mirror(&mut self, frame: &Value) -> Step {
        let Some(mirror) = &self.mirror else {
            return Ok(());
        };
        self.mirrored = true;
        let event = mirror.event(frame).unwrap_or_else(|why| {
            tracing::warn!(session_id = %self.session_id, %why, "claude: transcript_mirror frame refused");
            AgentEvent::Error {
                code: "transcript_refused".into(),
                message: crate::echo::clip(&why, 300).into_owned(),
            }
        });
        self.emit(vec![event]).await
    }

    fn control_response(&mut self, frame: &Value) -> Step {
        match self.outstanding.resolve(frame) {
            None => Ok(()),
            Some((Waiter::Initialize, Ok(_))) => {
                self.started = true;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                let ready_ms = self.spawned_at.elapsed().as_millis() as u64;
                tracing::info!(session_id = %self.session_id, ready_ms, "claude: CLI ready");
                while let Some(command) = self.backlog.pop_front() {
                    self.command(command)?;
                }
                Ok(())
            }
            Some((Waiter::Initialize, Err(e))) => Err(End::Failed(
                "agent_start_failed",
                format!("the Claude CLI refused to initialize: {e}"),
            )),
            Some((Waiter::Session { control, reply }, outcome)) => {
                if control == Control::Interrupt && outcome.is_ok() && self.turn {
                    self.interrupt_deadline = Some(Instant::now() + self.options.control_timeout);
                }
                let _ = reply.send(outcome.map(drop));
                Ok(())
            }
        }
    }

    async fn too_long(&mut self, len: usize) -> Step {
        let max = self.options.max_frame_bytes;
        tracing::warn!(session_id = %self.session_id, len, max, "claude: over-long stdout line skipped");
        let message = format!("skipped a {len}-byte message from the Claude CLI (limit {max})");
        let code = "agent_frame_too_large".to_owned();
        self.emit(vec![AgentEvent::Error { code, message }]).await
    }

    fn timeouts(&mut self) -> Step {
        let now = Instant::now();
        for waiter in self.outstanding.expired(now) {
            match waiter {
                Waiter::Initialize => {
                    let within = self.options.start_timeout;
                    let why = format!("the Claude CLI did not answer initialize within {within:?}");
                    return Err(End::Failed("agent_start_timeout", why));
                }
                Waiter::Session { control, reply } => {
                    let within = self.options.control_timeout;
                    let _ = reply.send(Err(AgentError::Rejected {
                        code: "control_timeout".into(),
                        message: format!(
                            "the Claude CLI did not answer {control:?} within {within:?}"
                        ),
                    }));
                }
            }
        }
        if self.interrupt_deadline.is_some_and(|d| d <= now) {
            let within = self.options.control_timeout;
            let why =
                format!("the Claude CLI did not end the turn within {within:?} of an interrupt");
            return Err(End::Failed("agent_unresponsive", why));
        }
        Ok(())
    }

    async fn finish(mut self, end: End) {
        self.outstanding.fail_all();
        self.parked.clear();
        let pid = self.process.id();
        match end {
            End::SessionGone => {
                tracing::debug!(session_id = %self.session_id, ?pid, "claude: session let go; stopping the CLI");
                self.stdin = None;
                self.process.stop(Stop::Graceful);
            }
            End::Eof => {
                self.stdin = None;
                let status = self.process.exited_within(EXIT_REPORT_WAIT * 4).await;
                let _ = tokio::time::timeout(EXIT_REPORT_WAIT, &mut self.stderr_task).await;
                let status = status.map_or("still running".to_owned(), |s| s.to_string());
                let when = if !self.started {
                    "before it was ready"
                } else if self.turn {
                    "during the turn"
                } else {
                    "between turns"
                };
                let mut message = format!("the Claude CLI exited {when} ({status})");
                self.append_details(&mut message);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(message.clone()));
                }
                tracing::warn!(session_id = %self.session_id, ?pid, %message, "claude: CLI exited");
                if self.turn || !self.started {
                    let code = "agent_exited".to_owned();
                    let _ = self.events.send(AgentEvent::Error { code, message }).await;
                }
                self.process.stop(Stop::Graceful);
            }
            End::Failed(code, mut message) => {
                self.append_details(&mut message);
                tracing::warn!(session_id = %self.session_id, ?pid, code, %message, "claude: giving up on the CLI");
                let code = code.to_owned();
                let _ = self.events.send(AgentEvent::Error { code, message }).await;
                self.stdin = None;
                self.process.stop(Stop::Now);
            }
        }
    }

    fn append_details(&self, message: &mut String) {
        if !self.startup_errors.is_empty() {
            message.push_str(": ");
            message.push_str(&self.startup_errors.join("; "));
        }
        let tail = self.stderr.text();
        if !tail.is_empty() {
            message.push_str("; stderr: ");
            message.push_str(&tail);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
