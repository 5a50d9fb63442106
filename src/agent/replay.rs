//! The replay runtime: plays a scripted scenario instead of talking to a model (format in
//! `docs/wire-protocol.md`, "Fixture format of the replay agent"), for tests, demos and
//! benchmarks.
//!
//! A script is a prelude (the steps before the first `expect_user_query`, played at start) and
//! turns, each starting at an `expect_user_query`. The resume token is the number of completed
//! turns, so a session rehydrated elsewhere skips exactly the turns its earlier life played.
//! `StreamEvent` lines (partial messages) play as `message_delta`s ([`stream`]); `delay` steps
//! between them pace a turn like a model streaming its answer. Sessions playing the same file
//! share its parsed [`script`].

use std::collections::VecDeque;
use std::future::{ready, Future};
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

mod script;
mod stream;

use script::{bad_fixture, next_is_result, Script, Scripted, Scripts, Step};

use super::{
    AgentCommand, AgentError, AgentEvent, AgentHandle, AgentRuntime, Control, Decision,
    SessionConfig, StartSpec,
};

/// Plays `<dir>/<fixture>.jsonl`: the session config's fixture, else the default one.
pub struct ReplayRuntime {
    dir: PathBuf,
    default_fixture: Option<String>,
    scripts: Arc<Scripts>,
}

impl ReplayRuntime {
    pub fn new(dir: PathBuf, default_fixture: Option<String>) -> Self {
        Self {
            dir,
            default_fixture,
            scripts: Arc::default(),
        }
    }

    /// Resolves and parses a config's scenario. Names must be plain file stems so that a client
    /// cannot make the server read files outside `dir`.
    async fn load(&self, config: &SessionConfig) -> Result<(String, Arc<Script>), AgentError> {
        let name = config.fixture.as_ref().or(self.default_fixture.as_ref());
        let name = name
            .ok_or_else(|| bad_fixture("", "no fixture given and no --default-fixture".into()))?;
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if name.is_empty() || name.contains("..") || !name.chars().all(allowed) {
            let reason = "only A-Z a-z 0-9 _ . - are allowed (no path)".to_owned();
            return Err(bad_fixture(name, reason));
        }
        // Outside a runtime this must fail rather than panic in `spawn_blocking`.
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| AgentError::Unavailable(e.to_string()))?;
        // Reading and parsing is blocking work that grows with the script (a benchmark's can be
        // megabytes): it runs on the blocking pool, not on a worker that serves streams.
        let (path, name) = (self.dir.join(format!("{name}.jsonl")), name.clone());
        let scripts = Arc::clone(&self.scripts);
        rt.spawn_blocking(move || scripts.read(&path, name))
            .await
            .map_err(|e| AgentError::Unavailable(format!("loading the fixture: {e}")))?
    }
}

impl AgentRuntime for ReplayRuntime {
    fn validate<'a>(&'a self, config: &'a SessionConfig) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async move { self.load(config).await.map(drop) })
    }

    fn start(&self, spec: StartSpec) -> BoxFuture<'_, Result<AgentHandle, AgentError>> {
        Box::pin(async move {
            let (fixture, turns) = self.load(&spec.config).await?;
            Ok(play(spec, fixture, turns))
        })
    }
}

/// Spawns the player of a loaded script.
fn play(spec: StartSpec, fixture: String, turns: Arc<Script>) -> AgentHandle {
    let token = spec.resume_token.as_deref();
    let skip = token.map(str::parse).transpose().unwrap_or_else(|e| {
        tracing::warn!(?token, error = %e, "replay: bad resume token, starting over");
        None
    });
    let (commands, commands_rx) = mpsc::channel(64);
    // tokio's channel keeps the blocks it ever grew to (32 slots of ~120-byte events each)
    // for reuse, so a capacity of 256 left ~30 KB per session after one long turn; 32 slots
    // are one block, and the session task takes events one at a time anyway.
    let (events_tx, events) = mpsc::channel(32);
    let player = Player {
        commands: commands_rx,
        events: events_tx,
        queued: VecDeque::new(),
        session_id: spec.session_id,
        fixture,
    };
    let task = tokio::spawn(async move {
        let _gone = player.run(turns, skip).await;
        tracing::debug!(session_id = %spec.session_id, "replay: session went away");
    });
    AgentHandle {
        commands,
        events,
        task,
    }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Map<String, Value> {
    fields
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

type Reply = oneshot::Sender<Result<(), AgentError>>;

/// The session went away: commands closed, or the events receiver or a decision's sender
/// was dropped.
struct Gone;

/// Why a turn ends before its script does.
enum Stop {
    /// A client interrupt, answered once the turn's `interrupted` result is out.
    Interrupt(Reply),
    /// A `Deny { interrupt: true }` that the script does not follow with its own result.
    Deny,
}

struct Player {
    commands: mpsc::Receiver<AgentCommand>,
    events: mpsc::Sender<AgentEvent>,
    /// User messages that arrived mid-turn. The session should not send them, but dropping one
    /// would leave its client waiting forever.
    queued: VecDeque<Value>,
    session_id: Uuid,
    fixture: String,
}

impl Player {
    /// Plays the prelude, then one turn per user message, until the session goes away.
    async fn run(mut self, script: Arc<Script>, skip: Option<usize>) -> Result<(), Gone> {
        let scripted = script.len().saturating_sub(1);
        // A resumed session played the prelude and its first k turns in an earlier life.
        let first = skip.map_or(0, |k| k.saturating_add(1));
        let mut turns = script.iter().enumerate().skip(first);
        if first == 0 {
            let prelude = turns.next().map_or(&[][..], |(_, steps)| steps);
            self.play(prelude, 0).await?;
        }
        loop {
            self.next_user_message().await?;
            match turns.next() {
                Some((index, steps)) => self.play(steps, index).await?,
                None => self.exhausted(scripted).await?,
            }
        }
    }

    /// Plays the steps of turn `index` (0: the prelude, which is not a turn).
    async fn play(&mut self, steps: &[Step], index: usize) -> Result<(), Gone> {
        // Only a turn that has not produced its result yet can be stopped.
        let mut live = index > 0;
        let mut steps = steps.iter();
        loop {
            // Serve commands that queued up while we emitted, so an interrupt is never late.
            let mut stop = self.wait_for(ready(()), live).await?.err();
            if stop.is_none() {
                let Some(step) = steps.next() else {
                    return Ok(());
                };
                stop = match step {
                    Step::Turn => None,
                    Step::Skip(subtype) => {
                        tracing::debug!(subtype, "replay: skipping system message");
                        None
                    }
                    Step::Emit(Scripted::Result(result)) => {
                        live = false;
                        self.result(result.clone(), index).await?;
                        None
                    }
                    Step::Emit(scripted) => {
                        self.send(scripted.event()).await?;
                        None
                    }
                    Step::Delay(duration) => self
                        .wait_for(tokio::time::sleep(*duration), live)
                        .await?
                        .err(),
                    Step::Ask(asked) => {
                        let (reply, decision) = oneshot::channel();
                        self.send(AgentEvent::Ask(asked.ask(reply))).await?;
                        // A stop drops `decision`, abandoning the parked callback.
                        match self.wait_for(decision, live).await? {
                            Err(stop) => Some(stop),
                            Ok(Err(_)) => return Err(Gone),
                            // deny_with_interrupt.jsonl scripts the result of its deny: play it.
                            Ok(Ok(Decision::Deny {
                                interrupt: true, ..
                            })) if live && !next_is_result(steps.as_slice()) => Some(Stop::Deny),
                            Ok(Ok(_)) => None,
                        }
                    }
                };
            }
            if let Some(stop) = stop {
                return self.interrupted(steps.as_slice(), index, stop).await;
            }
        }
    }

    /// Ends a stopped turn with an `interrupted` result, under the script's session id.
    async fn interrupted(&mut self, rest: &[Step], index: usize, stop: Stop) -> Result<(), Gone> {
        let scripted = rest.iter().find_map(|step| match step {
            Step::Emit(Scripted::Result(result)) => result.get("session_id").cloned(),
            _ => None,
        });
        let session_id = scripted.unwrap_or_else(|| self.session_id.to_string().into());
        let result = object([
            ("subtype", "interrupted".into()),
            ("session_id", session_id),
        ]);
        self.result(result, index).await?;
        if let Stop::Interrupt(reply) = stop {
            let _ = reply.send(Ok(()));
        }
        Ok(())
    }

    /// Emits the resume token that counts its turn as completed, then the result. The token
    /// goes first so that it is stored by the time a client sees the result: a server stopped
    /// right after the result (a drain lets a finished turn go at once) then still resumes
    /// after this turn. Stored and then lost with its host, it means the same as the Claude
    /// CLI's transcript: the turn happened; its result is reported as lost.
    async fn result(&mut self, result: Map<String, Value>, index: usize) -> Result<(), Gone> {
        self.send(AgentEvent::ResumeToken(index.to_string()))
            .await?;
        self.send(AgentEvent::Result(result)).await
    }

    /// Answers a user message past the last turn. The result lets the client's UI leave its
    /// streaming state; there is no resume token, as no scripted turn was played.
    async fn exhausted(&mut self, scripted: usize) -> Result<(), Gone> {
        let message = format!("fixture {:?} has only {scripted} turn(s)", self.fixture);
        let code = "fixture_exhausted".to_owned();
        self.send(AgentEvent::Error { code, message }).await?;
        let session_id = self.session_id.to_string().into();
        let result = object([
            ("subtype", "error_during_execution".into()),
            ("is_error", true.into()),
            ("session_id", session_id),
        ]);
        self.send(AgentEvent::Result(result)).await
    }

    async fn send(&mut self, event: AgentEvent) -> Result<(), Gone> {
        self.events.send(event).await.map_err(|_| Gone)
    }

    async fn next_user_message(&mut self) -> Result<Value, Gone> {
        loop {
            if let Some(content) = self.queued.pop_front() {
                return Ok(content);
            }
            // No turn is running, so an interrupt has nothing to stop.
            if let Some(reply) = self.command().await? {
                let _ = reply.send(Ok(()));
            }
        }
    }

    /// Waits for `fut` while serving commands. An interrupt stops the wait when `live` and is
    /// acknowledged without effect otherwise.
    async fn wait_for<F: Future>(
        &mut self,
        fut: F,
        live: bool,
    ) -> Result<Result<F::Output, Stop>, Gone> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                // Commands first: an interrupt beats a timer or decision that is ready as well.
                biased;
                // Outside a turn, a queued user message starts the next one: later commands (an
                // interrupt of that turn) stay in the channel until it has started.
                interrupt = self.command(), if live || self.queued.is_empty() => match interrupt? {
                    Some(reply) if live => return Ok(Err(Stop::Interrupt(reply))),
                    Some(reply) => { let _ = reply.send(Ok(())); }
                    None => {}
                },
                out = &mut fut => return Ok(Ok(out)),
            }
        }
    }

    /// Serves one command: queues a user message, acknowledges a control the replay agent has
    /// nothing to do for, or hands back an interrupt's reply.
    async fn command(&mut self) -> Result<Option<Reply>, Gone> {
        let command = tokio::select! {
            command = self.commands.recv() => command.ok_or(Gone)?,
            () = self.events.closed() => return Err(Gone),
        };
        match command {
            AgentCommand::UserMessage { content } => self.queued.push_back(content),
            AgentCommand::Control {
                control: Control::Interrupt,
                reply,
            } => return Ok(Some(reply)),
            AgentCommand::Control { control, reply } => {
                tracing::debug!(?control, "replay: ignoring control");
                let _ = reply.send(Ok(()));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
