//! Where a session's CLI runs.
//!
//! The CLI runs tools (Bash, Write, ...) in its working directory, so a client must not pick an
//! arbitrary one. A `cwd` from the session config is accepted only if, once canonicalized
//! (symlinks resolved, `..` removed), it is a directory under one of the `--allowed-cwd` roots,
//! which are canonicalized once at start. Without a `cwd`, a session gets its own directory
//! `<data-dir>/sessions/<session id>`, created on first start and removed when the session is
//! closed (`workdirs`). Every session's CLI also gets a config dir of its own,
//! `<data-dir>/claude/<session id>` (`transcript`). The check runs at `POST /sessions` (a `400`) and again at every start,
//! since a symlink can change in between.

use super::AgentError;
use std::path::{Path, PathBuf};
use uuid::Uuid;

#[derive(Debug)]
pub struct Roots {
    allowed: Vec<PathBuf>,
    sessions: PathBuf,
    configs: PathBuf,
}

impl Roots {
    /// Canonicalizes the allowed roots (each must exist) and creates `<data_dir>/sessions`.
    pub fn new(allowed: &[PathBuf], data_dir: &Path) -> Result<Roots, AgentError> {
        let unavailable = |what: &str, path: &Path, e: std::io::Error| {
            AgentError::Unavailable(format!("{what} {}: {e}", path.display()))
        };
        let allowed = allowed
            .iter()
            .map(|root| match std::fs::canonicalize(root) {
                Ok(path) if path.is_dir() => Ok(path),
                Ok(_) => Err(AgentError::Unavailable(format!(
                    "--allowed-cwd {} is not a directory",
                    root.display()
                ))),
                Err(e) => Err(unavailable("--allowed-cwd", root, e)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let made = |name: &str| {
            let dir = data_dir.join(name);
            std::fs::create_dir_all(&dir).map_err(|e| unavailable("creating", &dir, e))?;
            std::fs::canonicalize(&dir).map_err(|e| unavailable("resolving", &dir, e))
        };
        Ok(Roots {
            allowed,
            sessions: made("sessions")?,
            configs: made("claude")?,
        })
    }

    /// `<data-dir>/claude`, canonical: each session's CLI config dir (`CLAUDE_CONFIG_DIR`)
    /// lives here, named by the session id (`transcript`).
    pub fn configs(&self) -> &Path {
        &self.configs
    }

    /// `<data-dir>/sessions`, canonical: where sessions without a `cwd` get their directory.
    pub fn sessions(&self) -> &Path {
        &self.sessions
    }

    /// The canonical form of a requested `cwd`, if it lies under an allowed root.
    pub fn check(&self, cwd: &str) -> Result<PathBuf, AgentError> {
        let invalid = |why: String| AgentError::InvalidConfig(format!("cwd {cwd:?} {why}"));
        if self.allowed.is_empty() {
            return Err(invalid(
                "is not allowed: this server runs every session in its own directory \
                 (no --allowed-cwd configured)"
                    .into(),
            ));
        }
        let path = Path::new(cwd);
        if !path.is_absolute() {
            return Err(invalid("must be an absolute path".into()));
        }
        let canonical =
            std::fs::canonicalize(path).map_err(|e| invalid(format!("cannot be resolved: {e}")))?;
        if !canonical.is_dir() {
            return Err(invalid("is not a directory".into()));
        }
        if self.allowed.iter().any(|root| canonical.starts_with(root)) {
            Ok(canonical)
        } else {
            Err(invalid("is outside every --allowed-cwd root".into()))
        }
    }

    /// The directory a session runs in: its checked `cwd`, or its own directory (created).
    pub fn resolve(&self, cwd: Option<&str>, session_id: Uuid) -> Result<PathBuf, AgentError> {
        match cwd {
            Some(cwd) => self.check(cwd),
            None => {
                let dir = self.sessions.join(session_id.to_string());
                std::fs::create_dir_all(&dir).map_err(|e| {
                    AgentError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
                Ok(dir)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Roots) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("project/sub")).unwrap();
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("escape")).unwrap();
        std::os::unix::fs::symlink(root.join("project"), root.join("inner")).unwrap();
        let roots = Roots::new(&[root], &tmp.path().join("data")).unwrap();
        (tmp, roots)
    }

    #[test]
    fn accepts_directories_under_a_root() {
        let (tmp, roots) = setup();
        let root = std::fs::canonicalize(tmp.path().join("root")).unwrap();
        let ok = roots.check(root.join("project/sub").to_str().unwrap());
        assert_eq!(ok.unwrap(), root.join("project/sub"));
        // `..` that stays inside, and a symlink that stays inside, are fine.
        let dotdot = root.join("project/sub/..");
        assert_eq!(
            roots.check(dotdot.to_str().unwrap()).unwrap(),
            root.join("project")
        );
        let inner = root.join("inner/sub");
        assert_eq!(
            roots.check(inner.to_str().unwrap()).unwrap(),
            root.join("project/sub")
        );
    }

    #[test]
    fn refuses_escapes_relative_paths_and_missing_directories() {
        let (tmp, roots) = setup();
        let root = tmp.path().join("root");
        for bad in [
            root.join("../outside"),
            root.join("project/../../outside"),
            root.join("escape"),
            root.join("missing"),
            PathBuf::from("/"),
        ] {
            let err = roots.check(bad.to_str().unwrap()).unwrap_err();
            assert!(matches!(err, AgentError::InvalidConfig(_)), "{bad:?}");
        }
        assert!(roots.check("relative/dir").is_err());
        let file = root.join("project/file");
        std::fs::write(&file, "x").unwrap();
        assert!(roots.check(file.to_str().unwrap()).is_err());
    }

    #[test]
    fn without_roots_only_the_session_directory_is_used() {
        let tmp = tempfile::tempdir().unwrap();
        let roots = Roots::new(&[], tmp.path()).unwrap();
        assert!(roots.check(tmp.path().to_str().unwrap()).is_err());
        let id = Uuid::new_v4();
        let dir = roots.resolve(None, id).unwrap();
        assert!(dir.is_dir());
        assert!(dir.ends_with(format!("sessions/{id}")));
    }

    #[test]
    fn a_missing_root_is_a_startup_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Roots::new(&[tmp.path().join("nope")], tmp.path()).unwrap_err();
        assert!(err.to_string().contains("--allowed-cwd"));
    }
}
