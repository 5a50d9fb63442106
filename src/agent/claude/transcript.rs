//! The CLI's transcript: mirrored into Postgres as it is written, written back before a resume.
//!
//! `--resume=<id>` reads `$CLAUDE_CONFIG_DIR/projects/<project key>/<id>.jsonl`, a file on the
//! host that ran the conversation. For a conversation to continue on any host that shares only
//! the database (docs/claude-cli.md §7), the CLI is launched with `--session-mirror`: after each
//! write to its transcript it prints `{"type":"transcript_mirror","filePath":…,"entries":[…]}`,
//! and the session stores the entries with its events (`store::transcripts`). Before a CLI is
//! started with `--resume`, [`prepare`] writes the stored files back where it will look.
//!
//! Each session's CLI runs with a config dir of its own, `<data-dir>/claude/<session id>`, so
//! the projects directory is known exactly (a `filePath` is checked against it), what is
//! written back touches nothing of another session, and it goes when the session is closed.
//! The CLI's credentials come with it: `.credentials.json` from the server's own
//! `CLAUDE_CONFIG_DIR` (or `~/.claude`) and `.claude.json` (its account state) are copied in,
//! mode 0600, at every start; they are never read, logged or stored by the server.
//! `ANTHROPIC_API_KEY` and the other variables pass through the environment as before.
//!
//! `filePath` is data from the CLI's stdout, never a path to trust: it must name a `.jsonl`
//! file strictly under the projects dir, with plain components and no symlink on the way;
//! anything else is refused (an `error` event) and nothing is ever written from it. Only the
//! path *relative to the project directory* is stored: the project key is the sanitized cwd,
//! which differs between hosts for sessions in `<data-dir>/sessions/<id>`, and is recomputed by
//! [`project_key`] where the file is written back.

use crate::agent::AgentEvent;
use serde_json::Value;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// Longest project key the CLI writes before cutting it and appending a hash.
const MAX_PROJECT_KEY: usize = 200;
/// Files the CLI needs to authenticate, copied into each session's config dir.
const AUTH_FILES: &[&str] = &[".credentials.json", ".claude.json"];

/// The CLI's directory name for a cwd: every character but ASCII letters and digits becomes
/// `-` (per UTF-16 unit, as JavaScript's regex replace does); longer than 200, it is cut and
/// gets `-<hash>` (the CLI's 32-bit string hash, in base 36).
pub fn project_key(cwd: &Path) -> String {
    let path = cwd.to_string_lossy();
    let units: Vec<u16> = path.encode_utf16().collect();
    let sanitized: String = units
        .iter()
        .map(|&u| match u {
            0x30..=0x39 | 0x41..=0x5a | 0x61..=0x7a => u as u8 as char,
            _ => '-',
        })
        .collect();
    if sanitized.len() <= MAX_PROJECT_KEY {
        return sanitized;
    }
    let mut hash: i32 = 0;
    for &u in &units {
        hash = hash
            .wrapping_shl(5)
            .wrapping_sub(hash)
            .wrapping_add(i32::from(u));
    }
    format!(
        "{}-{}",
        &sanitized[..MAX_PROJECT_KEY],
        base36(hash.unsigned_abs())
    )
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// A session's view of its CLI's projects directory.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// `<config dir>/projects`, canonical.
    pub projects: PathBuf,
}

impl Mirror {
    /// The event for one `transcript_mirror` frame, or why it is refused.
    pub fn event(&self, frame: &Value) -> Result<AgentEvent, String> {
        let path = frame
            .get("filePath")
            .and_then(Value::as_str)
            .ok_or("a transcript_mirror frame without a string filePath")?;
        let file = self.relative(path)?;
        let entries = frame
            .get("entries")
            .and_then(Value::as_array)
            .ok_or("a transcript_mirror frame without an entries array")?;
        let entries = entries
            .iter()
            .map(|entry| match entry {
                Value::Object(map) => {
                    let uuid = map
                        .get("uuid")
                        .and_then(Value::as_str)
                        .filter(|u| crate::text::indexed_text_problem(u).is_none())
                        .map(str::to_owned);
                    Ok((uuid, entry.to_string()))
                }
                _ => Err("a transcript entry that is not a JSON object".to_owned()),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AgentEvent::Transcript { file, entries })
    }

    /// `path` relative to its project directory, if it is a transcript file of this config
    /// dir: absolute, under `projects/<key>/`, plain components, a `.jsonl` name, and no
    /// symlink between the projects dir and the file.
    pub fn relative(&self, path: &str) -> Result<String, String> {
        let refuse = |why: &str| Err(format!("transcript path {path:?} refused: {why}"));
        let path = Path::new(path);
        if !path.is_absolute() {
            return refuse("not absolute");
        }
        let Ok(rest) = path.strip_prefix(&self.projects) else {
            return refuse("not under the session's projects directory");
        };
        let mut parts = Vec::new();
        for component in rest.components() {
            match component {
                Component::Normal(part) => match part.to_str() {
                    Some(part) if !part.is_empty() && !part.contains('\0') => parts.push(part),
                    _ => return refuse("a name that is not plain UTF-8"),
                },
                _ => return refuse("`.`, `..` or a root inside the path"),
            }
        }
        if parts.len() < 2 || !parts[parts.len() - 1].ends_with(".jsonl") {
            return refuse("not a .jsonl file inside a project directory");
        }
        let mut on_disk = self.projects.clone();
        for part in &parts {
            on_disk.push(part);
            if std::fs::symlink_metadata(&on_disk).is_ok_and(|m| m.file_type().is_symlink()) {
                return refuse("a symlink on the way");
            }
        }
        Ok(parts[1..].join("/"))
    }
}

/// Makes `<configs>/<session>` ready for a CLI: created (0700), the auth files copied in, and
/// the stored transcript `files` written under `projects/<project key>/`. Blocking: run it off
/// the async workers.
pub fn prepare(
    config_dir: &Path,
    auth_source: &AuthSource,
    project: &str,
    files: &[(String, Vec<String>)],
) -> std::io::Result<Mirror> {
    std::fs::create_dir_all(config_dir)?;
    std::fs::set_permissions(config_dir, std::fs::Permissions::from_mode(0o700))?;
    for (name, from) in auth_source.files() {
        if let Ok(bytes) = std::fs::read(&from) {
            write_file(&config_dir.join(name), &bytes)?;
        }
    }
    let projects = config_dir.join("projects");
    real_dir(&projects)?;
    let projects = std::fs::canonicalize(&projects)?;
    let project_dir = projects.join(project);
    for (file, entries) in files {
        let mut text = String::with_capacity(entries.iter().map(|e| e.len() + 1).sum());
        for entry in entries {
            text.push_str(entry);
            text.push('\n');
        }
        let Some(target) = safe_join(&project_dir, file) else {
            tracing::warn!(
                file,
                "claude: a stored transcript file name is not plain; skipped"
            );
            continue;
        };
        let is_file = std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_file());
        if is_file && std::fs::read(&target).is_ok_and(|have| have == text.as_bytes()) {
            continue;
        }
        if let Some(parent) = target.parent() {
            real_dir(parent)?;
        }
        write_file(&target, text.as_bytes())?;
    }
    Ok(Mirror { projects })
}

/// `dir/rel` when `rel` is plain relative components (what [`Mirror::relative`] stores).
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    let plain = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && rel.components().next().is_some()).then(|| dir.join(rel))
}

/// Creates `dir` and its parents as real directories: a symlink on the way (the agent can
/// write anywhere in its config dir) is removed, never followed.
fn real_dir(dir: &Path) -> std::io::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(dir) {
        if meta.is_dir() {
            return Ok(());
        }
        std::fs::remove_file(dir)?;
    }
    if let Some(parent) = dir.parent() {
        real_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` (mode 0600) through a temporary file renamed over it, so a reader
/// never sees half a file and a symlink at `path` is replaced, not followed.
fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("awk-tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Whether this host's CLI mirrors its transcript. Claude Code CLIs that predate
/// `--session-mirror` refuse the flag at start ("unknown option"): the runtime then starts them
/// without it, and says once that conversations will not move between hosts. A CLI that takes
/// the flag but never mirrors is reported once too.
#[derive(Debug, Default)]
pub struct Support {
    /// 0: not known yet, 1: a CLI started with the flag, 2: refused.
    state: std::sync::atomic::AtomicU8,
    silent_reported: std::sync::atomic::AtomicBool,
}

impl Support {
    const CONFIRMED: u8 = 1;
    const REFUSED: u8 = 2;

    /// Whether to pass `--session-mirror`.
    pub fn enabled(&self) -> bool {
        self.state.load(std::sync::atomic::Ordering::Relaxed) != Self::REFUSED
    }

    /// Whether a CLI started with the flag already (no need to watch the start for a refusal).
    pub fn confirmed(&self) -> bool {
        self.state.load(std::sync::atomic::Ordering::Relaxed) == Self::CONFIRMED
    }

    pub fn confirm(&self) {
        let _ = self.state.compare_exchange(
            0,
            Self::CONFIRMED,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A CLI failed to start; returns whether it was the flag it refused (start it without).
    pub fn refused(&self, why: &str) -> bool {
        if self.confirmed() || !why.contains("session-mirror") {
            return false;
        }
        if self
            .state
            .swap(Self::REFUSED, std::sync::atomic::Ordering::Relaxed)
            != Self::REFUSED
        {
            tracing::warn!(
                "claude: this Claude CLI does not know --session-mirror (it needs Claude Code \
                 2.1.x with session stores); running without it: conversations stay on the host \
                 that ran them"
            );
        }
        true
    }

    /// A turn ended without the CLI having mirrored anything.
    pub fn silent(&self) {
        if !self
            .silent_reported
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "claude: the Claude CLI took --session-mirror but mirrored nothing during a turn; \
                 its conversations may not move between hosts"
            );
        }
    }
}

/// Where the CLI's credentials come from: the server's `CLAUDE_CONFIG_DIR`, else `~/.claude`
/// (and `~/.claude.json` beside it, where the CLI keeps its account state without the
/// variable).
#[derive(Debug, Clone)]
pub struct AuthSource {
    config_dir: Option<PathBuf>,
    home: Option<PathBuf>,
}

impl AuthSource {
    pub fn from_env() -> AuthSource {
        AuthSource {
            config_dir: std::env::var_os("CLAUDE_CONFIG_DIR").map(PathBuf::from),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// (name in the session's config dir, where to copy it from).
    fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let (dir, account) = match (&self.config_dir, &self.home) {
            (Some(dir), _) => (dir.clone(), dir.join(".claude.json")),
            (None, Some(home)) => (home.join(".claude"), home.join(".claude.json")),
            (None, None) => return Vec::new(),
        };
        vec![
            (AUTH_FILES[0], dir.join(AUTH_FILES[0])),
            (AUTH_FILES[1], account),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn project_keys_match_the_cli() {
        assert_eq!(project_key(Path::new("/srv/lab/proj")), "-srv-lab-proj");
        assert_eq!(project_key(Path::new("/a/b_c.d é")), "-a-b-c-d--");
        let long = format!("/{}", "x".repeat(300));
        let key = project_key(Path::new(&long));
        assert!(key.starts_with(&format!("-{}", "x".repeat(199))));
        assert_eq!(&key[200..201], "-");
        assert!(key.len() > 201);
    }

    fn mirror() -> (tempfile::TempDir, Mirror) {
        let tmp = tempfile::tempdir().unwrap();
        let projects = tmp.path().join("projects");
        std::fs::create_dir_all(projects.join("-p")).unwrap();
        let projects = std::fs::canonicalize(projects).unwrap();
        (tmp, Mirror { projects })
    }

    #[test]
    fn mirror_paths_are_relative_to_the_project_and_checked() {
        let (tmp, m) = mirror();
        let p = m.projects.display().to_string();
        assert_eq!(
            m.relative(&format!("{p}/-p/abc.jsonl")).unwrap(),
            "abc.jsonl"
        );
        assert_eq!(
            m.relative(&format!("{p}/-p/abc/subagents/agent-1.jsonl"))
                .unwrap(),
            "abc/subagents/agent-1.jsonl"
        );
        // `.` inside a path names the same place (std drops it): accepted as the plain path.
        assert_eq!(
            m.relative(&format!("{p}/-p/./abc.jsonl")).unwrap(),
            "abc.jsonl"
        );
        for bad in [
            format!("{p}/-p/../../../etc/passwd.jsonl"),
            format!("{p}/../x/abc.jsonl"),
            "/etc/abc.jsonl".to_owned(),
            "relative/abc.jsonl".to_owned(),
            format!("{p}/abc.jsonl"),
            format!("{p}/-p/abc.txt"),
        ] {
            assert!(m.relative(&bad).is_err(), "{bad}");
        }
        std::os::unix::fs::symlink(tmp.path(), m.projects.join("-link")).unwrap();
        assert!(m.relative(&format!("{p}/-link/abc.jsonl")).is_err());
    }

    #[test]
    fn frames_need_object_entries() {
        let (_tmp, m) = mirror();
        let path = format!("{}/-p/s.jsonl", m.projects.display());
        let ok = json!({"type": "transcript_mirror", "filePath": path,
            "entries": [{"uuid": "u1", "type": "user"}, {"type": "summary"}]});
        match m.event(&ok).unwrap() {
            AgentEvent::Transcript { file, entries } => {
                assert_eq!(file, "s.jsonl");
                assert_eq!(entries[0].0.as_deref(), Some("u1"));
                assert_eq!(entries[1].0, None);
                assert_eq!(entries[1].1, r#"{"type":"summary"}"#);
            }
            other => panic!("{other:?}"),
        }
        let bad = json!({"type": "transcript_mirror", "filePath": path, "entries": [1]});
        assert!(m.event(&bad).is_err());
        assert!(m
            .event(&json!({"type": "transcript_mirror", "filePath": path}))
            .is_err());
    }

    #[test]
    fn prepare_writes_files_under_the_project_and_skips_equal_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("cfg");
        let source = AuthSource {
            config_dir: None,
            home: None,
        };
        let files = vec![
            (
                "s.jsonl".to_owned(),
                vec![r#"{"a":1}"#.to_owned(), r#"{"b":2}"#.to_owned()],
            ),
            (
                "s/subagents/agent-1.jsonl".to_owned(),
                vec!["{}".to_owned()],
            ),
            ("../escape.jsonl".to_owned(), vec!["{}".to_owned()]),
        ];
        let m = prepare(&config, &source, "-p", &files).unwrap();
        let main = m.projects.join("-p/s.jsonl");
        assert_eq!(
            std::fs::read_to_string(&main).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        let mode = std::fs::metadata(&main).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(m.projects.join("-p/s/subagents/agent-1.jsonl").is_file());
        assert!(!tmp.path().join("cfg/projects/escape.jsonl").exists());
        // Equal content is not rewritten (same inode); a stale file is replaced.
        use std::os::unix::fs::MetadataExt;
        let inode = std::fs::metadata(&main).unwrap().ino();
        prepare(&config, &source, "-p", &files).unwrap();
        assert_eq!(std::fs::metadata(&main).unwrap().ino(), inode);
        std::fs::write(&main, "{\"a\":1}\n").unwrap();
        prepare(&config, &source, "-p", &files).unwrap();
        assert_eq!(
            std::fs::read_to_string(&main).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );
        // A symlink planted where the file goes is replaced, its target untouched.
        let target = tmp.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&main).unwrap();
        std::os::unix::fs::symlink(&target, &main).unwrap();
        prepare(&config, &source, "-p", &files).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&main)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn large_transcripts_are_written_back_whole() {
        // Figures for BENCHMARKS.md come from this test's output (`--nocapture`).
        for n in [1_000usize, 10_000] {
            let tmp = tempfile::tempdir().unwrap();
            let source = AuthSource {
                config_dir: None,
                home: None,
            };
            let entry = |i: usize| {
                json!({"type": "assistant", "uuid": format!("u{i}"), "message": {"role": "assistant",
                    "content": [{"type": "text", "text": "x".repeat(400)}]}})
                .to_string()
            };
            let files = vec![("s.jsonl".to_owned(), (0..n).map(entry).collect::<Vec<_>>())];
            let started = std::time::Instant::now();
            let m = prepare(&tmp.path().join("cfg"), &source, "-p", &files).unwrap();
            let took = started.elapsed();
            let text = std::fs::read_to_string(m.projects.join("-p/s.jsonl")).unwrap();
            assert_eq!(text.lines().count(), n);
            assert_eq!(text.lines().last().unwrap(), entry(n - 1));
            eprintln!(
                "materialize {n} entries ({} KiB): {took:?}",
                text.len() / 1024
            );
        }
    }
}
