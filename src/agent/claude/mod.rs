//! The Claude runtime: one Claude Code CLI process per session, driven over stream-json
//! (`docs/claude-cli.md`).
//!
//! No crate fits: the ones on crates.io block while a permission callback waits, or cannot
//! answer one at all, and a server must park a permission for as long as a person takes. So the
//! client is written here, in small parts:
//! - [`argv`]: the command line and environment (§1), credentials passed through untouched;
//! - [`cwd`]: where a session's CLI may run (allowed roots, per-session directories);
//! - [`workdirs`]: removing a closed session's own directory once its CLI is reaped;
//! - [`process`]: spawn in a process group; close stdin, SIGTERM, SIGKILL; reap in the background;
//! - [`pipes`]: the stdout reader, the stderr drainer and the stdin writer tasks;
//! - [`protocol`]: NDJSON framing and the frames we write, kept as raw `serde_json::Value`s;
//! - [`mapping`]: CLI frames → [`AgentEvent`]s (§6.8);
//! - [`control`]: our control requests and their deadlines; [`asks`]: the CLI's parked requests;
//! - [`requests`]: the CLI's control requests to us;
//! - [`hooks`]: hook callbacks the session registers;
//! - [`driver`]: the one task per process that ties them together.
//!
//! - [`transcript`]: each session's config dir, the mirrored transcript and its write-back.
//!
//! The conversation id is the session's UUID: `--session-id=<id>` on the first start, and once
//! the CLI has started a turn under it (its `system/init`), it is reported as the resume token,
//! stored in Postgres, and every later start (after an exit, an eviction, or on another host)
//! passes `--resume=<id>`. The transcript that `--resume` reads is mirrored into Postgres as
//! the CLI writes it and written back before the resume ([`transcript`]), so the conversation
//! moves with the session to any host that shares the database.

mod argv;
mod asks;
mod control;
mod cwd;
mod driver;
mod hooks;
mod mapping;
mod pipes;
mod process;
mod protocol;
mod requests;
mod transcript;
mod workdirs;

use super::{
    AgentCommand, AgentError, AgentEvent, AgentHandle, AgentRuntime, SessionConfig, StartSpec,
    PERMISSION_MODES,
};
use crate::config::ClaudeSettings;
use argv::{Conversation, Launch};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// The runtime's settings, from `--claude-*` flags.
#[derive(Debug)]
pub struct Options {
    pub path: PathBuf,
    pub setting_sources: String,
    pub start_timeout: Duration,
    pub control_timeout: Duration,
    pub stop_grace: Duration,
    pub max_frame_bytes: usize,
}

pub struct ClaudeRuntime {
    options: Arc<Options>,
    roots: cwd::Roots,
    workdirs: Arc<workdirs::Workdirs>,
    /// Each session's CLI config dir, `<data-dir>/claude/<id>`, removed like its workdir.
    configs: Arc<workdirs::Workdirs>,
    auth: transcript::AuthSource,
    mirror: Arc<transcript::Support>,
    /// Every process's driver and reaper (and directory removal), so a host shutting down can
    /// wait for them.
    tasks: tokio_util::task::TaskTracker,
}

impl ClaudeRuntime {
    /// Checks the allowed roots and prepares `<data_dir>/sessions`.
    pub fn new(settings: &ClaudeSettings) -> Result<ClaudeRuntime, AgentError> {
        find_executable(&settings.path)?;
        let roots = cwd::Roots::new(&settings.allowed_cwd, &settings.data_dir)?;
        let options = Options {
            path: settings.path.clone(),
            setting_sources: settings.setting_sources.clone(),
            start_timeout: settings.start_timeout,
            control_timeout: settings.control_timeout,
            stop_grace: settings.stop_grace,
            max_frame_bytes: settings.max_frame_bytes.max(1024),
        };
        let tasks = tokio_util::task::TaskTracker::new();
        let workdirs = workdirs::Workdirs::new(roots.sessions().to_owned(), tasks.clone());
        let configs = workdirs::Workdirs::new(roots.configs().to_owned(), tasks.clone());
        Ok(ClaudeRuntime {
            options: Arc::new(options),
            roots,
            workdirs,
            configs,
            auth: transcript::AuthSource::from_env(),
            mirror: Arc::default(),
            tasks,
        })
    }

    /// Checks everything in the config but the cwd; returns the session's hooks.
    fn check(&self, config: &SessionConfig) -> Result<hooks::Hooks, AgentError> {
        let invalid = |why: String| Err(AgentError::InvalidConfig(why));
        if let Some(model) = &config.model {
            let plain = |c: char| {
                c.is_ascii_alphanumeric()
                    || matches!(c, '-' | '_' | '.' | ':' | '[' | ']' | '@' | '/')
            };
            if model.is_empty()
                || model.len() > 200
                || model.starts_with('-')
                || !model.chars().all(plain)
            {
                return invalid(format!("model {model:?} is not a model name"));
            }
        }
        if let Some(mode) = config.permission_mode.as_deref() {
            if !PERMISSION_MODES.contains(&mode) {
                let modes = PERMISSION_MODES.join(", ");
                return invalid(format!("permission_mode {mode:?} is not one of {modes}"));
            }
            if mode == "bypassPermissions" {
                return invalid(
                    "permission_mode bypassPermissions is not available: this server does not \
                     launch the CLI with --allow-dangerously-skip-permissions"
                        .into(),
                );
            }
        }
        hooks::parse(config.hooks.as_ref())
    }
}

/// Fails fast at startup when the CLI is missing, instead of at every session's first turn.
fn find_executable(path: &Path) -> Result<PathBuf, AgentError> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if path.components().count() > 1 {
        Some(path.to_owned()).filter(|p| executable(p))
    } else {
        let dirs = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&dirs)
            .map(|dir| dir.join(path))
            .find(|p| executable(p))
    };
    found.ok_or_else(|| {
        AgentError::Unavailable(format!(
            "the Claude CLI {} is not an executable file (or not found on PATH); set --claude-path",
            path.display()
        ))
    })
}

impl AgentRuntime for ClaudeRuntime {
    fn validate<'a>(&'a self, config: &'a SessionConfig) -> BoxFuture<'a, Result<(), AgentError>> {
        Box::pin(async move {
            self.check(config)?;
            if let Some(cwd) = &config.cwd {
                self.roots.check(cwd)?;
            }
            Ok(())
        })
    }

    fn mirrors(&self) -> bool {
        self.mirror.enabled()
    }

    fn start(&self, spec: StartSpec) -> BoxFuture<'_, Result<AgentHandle, AgentError>> {
        Box::pin(self.start_agent(spec))
    }

    /// Only the directories the server made for the session go, never a client's `cwd`.
    fn closed(&self, session_id: Uuid, config: &SessionConfig) {
        self.configs.close(session_id);
        if config.cwd.is_none() {
            self.workdirs.close(session_id);
        }
    }

    fn drain(&self) -> BoxFuture<'_, ()> {
        self.tasks.close();
        Box::pin(self.tasks.wait())
    }
}

impl ClaudeRuntime {
    /// Prepares the session's config dir (the stored transcript written back), then starts the
    /// CLI. While it is not known whether this host's CLI takes `--session-mirror`, the start
    /// waits for `initialize`: a CLI that refuses the flag is started again without it.
    async fn start_agent(&self, spec: StartSpec) -> Result<AgentHandle, AgentError> {
        let hooks = self.check(&spec.config)?;
        // Taken first, so that the directories made below are never without a holder.
        let mut leases = vec![self.configs.lease(spec.session_id)];
        leases.extend((spec.config.cwd.is_none()).then(|| self.workdirs.lease(spec.session_id)));
        let cwd = self
            .roots
            .resolve(spec.config.cwd.as_deref(), spec.session_id)?;
        let config_dir = self.roots.configs().join(spec.session_id.to_string());
        let project = transcript::project_key(&cwd);
        let (auth, files) = (self.auth.clone(), spec.transcript.clone());
        let dir = config_dir.clone();
        let started = std::time::Instant::now();
        let mirror =
            tokio::task::spawn_blocking(move || transcript::prepare(&dir, &auth, &project, &files))
                .await
                .map_err(|e| AgentError::Unavailable(e.to_string()))?
                .map_err(|e| {
                    AgentError::Unavailable(format!("preparing the CLI's config dir: {e}"))
                })?;
        if !spec.transcript.is_empty() {
            let entries: usize = spec.transcript.iter().map(|(_, e)| e.len()).sum();
            tracing::info!(session_id = %spec.session_id, entries, ms = started.elapsed().as_millis() as u64, "claude: transcript written back for --resume");
        }
        let watch = self.mirror.enabled() && !self.mirror.confirmed();
        let mirror = self.mirror.enabled().then_some(mirror);
        let (handle, ready) = self.spawn(&spec, &hooks, &cwd, &config_dir, mirror, leases)?;
        if !watch {
            return Ok(handle);
        }
        match ready.await {
            Ok(Err(why)) if self.mirror.refused(&why) => {
                let leases = vec![self.configs.lease(spec.session_id)];
                let (handle, _) = self.spawn(&spec, &hooks, &cwd, &config_dir, None, leases)?;
                Ok(handle)
            }
            Ok(Ok(())) => {
                self.mirror.confirm();
                Ok(handle)
            }
            _ => Ok(handle),
        }
    }

    /// Starts a CLI process and its driver; the receiver says whether it answered `initialize`.
    fn spawn(
        &self,
        spec: &StartSpec,
        hooks: &hooks::Hooks,
        cwd: &Path,
        config_dir: &Path,
        mirror: Option<transcript::Mirror>,
        lease: Vec<workdirs::Lease>,
    ) -> Result<
        (
            AgentHandle,
            tokio::sync::oneshot::Receiver<Result<(), String>>,
        ),
        AgentError,
    > {
        // Outside a runtime this must fail rather than panic in `tokio::spawn`.
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| AgentError::Unavailable(e.to_string()))?;
        let _entered = rt.enter();
        let own_id = spec.session_id.to_string();
        let token = spec.resume_token.as_deref();
        let conversation = match token {
            Some(token) if Uuid::parse_str(token).is_ok() => Conversation::Resume(token),
            Some(token) => {
                tracing::warn!(session_id = %spec.session_id, token, "claude: resume token is not a conversation id; starting a new conversation");
                Conversation::New(&own_id)
            }
            None => Conversation::New(&own_id),
        };
        let launch = Launch {
            conversation,
            model: spec.config.model.as_deref(),
            permission_mode: spec.config.permission_mode.as_deref(),
            setting_sources: &self.options.setting_sources,
            mirror: mirror.is_some(),
        };
        let args = argv::args(&launch);
        let mut command = tokio::process::Command::new(&self.options.path);
        command
            .args(&args)
            .current_dir(cwd)
            .env_clear()
            .envs(argv::env(std::env::vars_os(), cwd))
            .env("CLAUDE_CONFIG_DIR", config_dir);
        let grace = self.options.stop_grace;
        let spawned = process::spawn(command, grace, self.tasks.clone(), lease).map_err(|e| {
            let path = self.options.path.display();
            AgentError::Unavailable(format!("cannot start the Claude CLI ({path}): {e}"))
        })?;
        tracing::info!(
            session_id = %spec.session_id,
            pid = ?spawned.process.id(),
            cwd = %cwd.display(),
            ?args,
            "claude: CLI started"
        );
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let resumed = match conversation {
            Conversation::Resume(id) => Some(id.to_owned()),
            Conversation::New(_) => None,
        };
        let (commands, commands_rx) = mpsc::channel::<AgentCommand>(64);
        let (events_tx, events) = mpsc::channel::<AgentEvent>(256);
        let (frames_tx, frames) = mpsc::channel(64);
        let max = self.options.max_frame_bytes;
        pipes::reader(spawned.stdout, max, spec.session_id, frames_tx);
        let (stderr, stderr_task) = pipes::stderr_drainer(spawned.stderr, spec.session_id);
        let driver = driver::Driver {
            session_id: spec.session_id,
            options: self.options.clone(),
            commands: commands_rx,
            events: events_tx,
            frames,
            stdin: Some(pipes::writer(spawned.stdin, spec.session_id)),
            process: spawned.process,
            stderr,
            stderr_task,
            mapper: mapping::Mapper::new(resumed),
            hooks: hooks.events.clone(),
            mirror,
            mirror_support: self.mirror.clone(),
            mirrored: false,
            ready: Some(ready_tx),
            outstanding: Default::default(),
            parked: Default::default(),
            started: false,
            backlog: Default::default(),
            turn: false,
            interrupt_deadline: None,
            startup_errors: Vec::new(),
            spawned_at: tokio::time::Instant::now(),
        };
        let task = self
            .tasks
            .spawn_on(driver.run(hooks.initialize.clone()), &rt);
        let handle = AgentHandle {
            commands,
            events,
            task,
        };
        Ok((handle, ready))
    }
}
