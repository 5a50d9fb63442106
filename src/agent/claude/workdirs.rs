//! The per-session directories the server creates (`<data-dir>/sessions/<session id>`, for
//! sessions without a `cwd`), and their removal once the session is closed by `DELETE`.
//!
//! A directory may only go when no CLI of its session is left: a process would otherwise see
//! its working directory vanish mid-tool, or recreate files in it. So every CLI process holds a
//! [`Lease`] from before it is spawned until its reaper is done with it (the lease travels in
//! [`super::process::Process`]). [`Workdirs::close`] removes the directory at once when no
//! lease is out, and otherwise leaves it to the last lease's drop.
//!
//! Only directories under the canonical sessions root named by a session id are removed, and
//! only real directories: if the entry was replaced by a symlink it is left alone, and
//! `remove_dir_all` unlinks symlinks inside without following them. A `cwd` a client chose
//! never gets a lease and is never removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_util::task::TaskTracker;
use uuid::Uuid;

pub struct Workdirs {
    /// `<data-dir>/sessions`, canonical.
    root: PathBuf,
    /// Sessions with a CLI process that is not reaped yet.
    live: Mutex<HashMap<Uuid, Live>>,
    /// Removals run here (blocking pool), so a host shutting down waits for them.
    tasks: TaskTracker,
}

#[derive(Default)]
struct Live {
    processes: usize,
    /// Closed meanwhile: the last lease removes the directory.
    closed: bool,
}

impl Workdirs {
    pub fn new(root: PathBuf, tasks: TaskTracker) -> Arc<Workdirs> {
        Arc::new(Workdirs {
            root,
            live: Mutex::default(),
            tasks,
        })
    }

    /// The directory of a session without a `cwd`.
    pub fn dir(&self, session_id: Uuid) -> PathBuf {
        self.root.join(session_id.to_string())
    }

    /// Taken before a CLI of the session is spawned, held until it is reaped.
    pub fn lease(self: &Arc<Self>, session_id: Uuid) -> Lease {
        self.lock().entry(session_id).or_default().processes += 1;
        Lease {
            dirs: self.clone(),
            session_id,
        }
    }

    /// The session was closed for good: its directory goes now, or when its last CLI is reaped.
    pub fn close(&self, session_id: Uuid) {
        if let Some(live) = self.lock().get_mut(&session_id) {
            live.closed = true;
            return;
        }
        self.remove(session_id);
    }

    fn release(&self, session_id: Uuid) {
        let closed = {
            let mut live = self.lock();
            let Some(entry) = live.get_mut(&session_id) else {
                return;
            };
            entry.processes -= 1;
            if entry.processes > 0 {
                return;
            }
            live.remove(&session_id).is_some_and(|entry| entry.closed)
        };
        if closed {
            self.remove(session_id);
        }
    }

    /// Removes the directory on the blocking pool (inline when no runtime is left).
    fn remove(&self, session_id: Uuid) {
        let dir = self.dir(session_id);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(self.tasks.spawn_blocking_on(move || remove(&dir), &rt)),
            Err(_) => remove(&dir),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Live>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One CLI process's hold on its session's directory.
pub struct Lease {
    dirs: Arc<Workdirs>,
    session_id: Uuid,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.dirs.release(self.session_id);
    }
}

fn remove(dir: &Path) {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => match std::fs::remove_dir_all(dir) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "claude: session directory removed"),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "claude: cannot remove the session directory")
            }
        },
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "claude: the session directory is not a directory; left alone")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "claude: cannot inspect the session directory")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Arc<Workdirs>, TaskTracker) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sessions");
        std::fs::create_dir_all(&root).unwrap();
        let tasks = TaskTracker::new();
        (tmp, Workdirs::new(root, tasks.clone()), tasks)
    }

    async fn settle(tasks: &TaskTracker) {
        tasks.close();
        tasks.wait().await;
        tasks.reopen();
    }

    #[tokio::test]
    async fn a_closed_session_keeps_its_directory_until_its_last_process_is_reaped() {
        let (_tmp, dirs, tasks) = setup();
        let id = Uuid::new_v4();
        let dir = dirs.dir(id);
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let (first, second) = (dirs.lease(id), dirs.lease(id));
        dirs.close(id);
        drop(first);
        settle(&tasks).await;
        assert!(dir.is_dir());
        drop(second);
        settle(&tasks).await;
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn closing_without_a_process_removes_at_once_and_open_sessions_keep_theirs() {
        let (_tmp, dirs, tasks) = setup();
        let (closed, open) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [closed, open] {
            std::fs::create_dir_all(dirs.dir(id)).unwrap();
        }
        drop(dirs.lease(open));
        dirs.close(closed);
        dirs.close(Uuid::new_v4()); // never had a directory: nothing to do
        settle(&tasks).await;
        assert!(!dirs.dir(closed).exists());
        assert!(dirs.dir(open).is_dir());
    }

    #[tokio::test]
    async fn symlinks_are_never_followed() {
        let (tmp, dirs, tasks) = setup();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        // A link inside the directory: the link goes, its target stays.
        let inside = Uuid::new_v4();
        std::fs::create_dir_all(dirs.dir(inside)).unwrap();
        std::os::unix::fs::symlink(&outside, dirs.dir(inside).join("link")).unwrap();
        // The directory itself replaced by a link: left alone.
        let replaced = Uuid::new_v4();
        std::os::unix::fs::symlink(&outside, dirs.dir(replaced)).unwrap();
        dirs.close(inside);
        dirs.close(replaced);
        settle(&tasks).await;
        assert!(!dirs.dir(inside).exists());
        assert!(dirs.dir(replaced).symlink_metadata().is_ok());
        assert!(outside.join("keep").is_file());
    }
}
