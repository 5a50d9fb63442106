//! The CLI process: spawned in its own process group, stopped and reaped in the background.
//!
//! The CLI starts shells, MCP servers and helpers of its own, so every signal goes to its whole
//! process group (the group id is the CLI's pid: it is spawned with `process_group(0)`).
//! Signals are sent with `rustix` (`kill(-pgid, sig)`), a safe wrapper of the syscall that the
//! crate already depends on through `tempfile`; it spares a `kill` child process per signal and
//! the dependence on a `kill` binary in the image, and keeps the crate free of `unsafe`.
//!
//! Stopping follows docs/claude-cli.md §9: close stdin (the caller drops the writer), give the
//! CLI `grace` to finish and flush its transcript, then SIGTERM, `grace` again, then SIGKILL.
//! The reaper runs detached from the session, so a `DELETE` answers at once (a host shutting
//! down waits for its reapers, through [`TaskTracker`]), and it always ends with a SIGKILL to
//! the group so no child outlives the CLI. After the CLI itself is reaped its pid
//! cannot name another group while members of its group remain (Linux keeps a pid allocated
//! while it is in use as a process group id), so this last signal only reaches stragglers.
//! [`Process`] also stops the CLI when dropped without [`Process::stop`] (a driver task that
//! was aborted), so no path leaves a process running or unreaped. It carries the process's
//! [`Lease`] on its session directory into the reaper, which lets go of it once the CLI is
//! reaped: a closed session's directory is removed only then (`workdirs`).

use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio_util::task::TaskTracker;

use super::workdirs::Lease;

use rustix::process::{kill_process_group, Pid, Signal};

pub struct Spawned {
    pub process: Process,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

/// Spawns `command` with piped stdio in a new process group. Its reaper will run on `reapers`,
/// which the host waits for at shutdown, and drop `lease` once the CLI is reaped.
pub fn spawn(
    mut command: Command,
    grace: Duration,
    reapers: TaskTracker,
    lease: Vec<Lease>,
) -> std::io::Result<Spawned> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let missing = || std::io::Error::other("a piped stdio handle is missing");
    let stdin = child.stdin.take().ok_or_else(missing)?;
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr = child.stderr.take().ok_or_else(missing)?;
    // Pid 1 as a group would mean "every process we may signal": never accept it.
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .filter(|&pid| pid > 1)
        .and_then(Pid::from_raw);
    Ok(Spawned {
        process: Process {
            child: Some(child),
            group,
            grace,
            reapers,
            lease,
        },
        stdin,
        stdout,
        stderr,
    })
}

/// How [`Process::stop`] proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// stdin is closed: wait `grace` for the CLI to finish, then SIGTERM, then SIGKILL.
    Graceful,
    /// SIGTERM at once, SIGKILL after `grace` (the CLI is stuck or already gone).
    Now,
}

pub struct Process {
    child: Option<Child>,
    group: Option<Pid>,
    grace: Duration,
    reapers: TaskTracker,
    lease: Vec<Lease>,
}

impl Process {
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The exit status, if the CLI exits within `within` (it is reaped then).
    pub async fn exited_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        tokio::time::timeout(within, child.wait()).await.ok()?.ok()
    }

    /// Stops and reaps the CLI in the background.
    pub fn stop(mut self, how: Stop) {
        if let Some(child) = self.child.take() {
            let lease = std::mem::take(&mut self.lease);
            self.reapers
                .spawn(reap(child, self.group, self.grace, how, lease));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let lease = std::mem::take(&mut self.lease);
                let reap = reap(child, self.group, self.grace, Stop::Now, lease);
                drop(self.reapers.spawn_on(reap, &rt));
            }
            // No runtime left to wait with: kill now; `kill_on_drop` covers the CLI itself.
            Err(_) => signal(self.group, Signal::KILL),
        }
    }
}

async fn reap(mut child: Child, group: Option<Pid>, grace: Duration, how: Stop, lease: Vec<Lease>) {
    let pid = child.id();
    let exited = how == Stop::Graceful && wait(&mut child, grace).await;
    if !exited {
        signal(group, Signal::TERM);
        if !wait(&mut child, grace).await {
            tracing::warn!(?pid, "the Claude CLI ignored SIGTERM; sending SIGKILL");
            signal(group, Signal::KILL);
            if let Err(e) = child.wait().await {
                tracing::warn!(?pid, error = %e, "could not reap the Claude CLI");
            }
        }
    }
    signal(group, Signal::KILL);
    tracing::debug!(?pid, "the Claude CLI is reaped");
    drop(lease);
}

/// Whether the child exited (and was reaped) within `within`.
async fn wait(child: &mut Child, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, child.wait()).await,
        Ok(Ok(_)) | Ok(Err(_))
    )
}

fn signal(group: Option<Pid>, sig: Signal) {
    let Some(group) = group else { return };
    match kill_process_group(group, sig) {
        Ok(()) => {}
        // Nobody left in the group: the normal case after a clean exit.
        Err(rustix::io::Errno::SRCH) => {}
        Err(e) => tracing::warn!(group = group.as_raw_nonzero().get(), error = %e, "kill failed"),
    }
}
