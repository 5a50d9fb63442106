//! The fake's transcript, laid out as the real CLI's: one JSONL file per conversation at
//! `$CLAUDE_CONFIG_DIR/projects/<sanitized cwd>/<session id>.jsonl`, appended per turn (the
//! user's entry when the turn starts; the assistant's text and the running cost before the
//! `result`). With `--session-mirror`, every append is also printed as a `transcript_mirror`
//! frame, after the write, as the real CLI does. `--resume` reads the file, so a resume works
//! only where the server wrote the stored transcript back.

use crate::cli::Cli;
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

/// How the transcript is mirrored (scenario knobs for the tests).
#[derive(Debug, Default, Clone)]
pub struct Mirroring {
    /// `--session-mirror` was given.
    pub on: bool,
    /// Takes the flag but never mirrors (a CLI that lost the feature).
    pub silent: bool,
    /// Prints this `filePath` instead of the real one (path traversal tests).
    pub path: Option<String>,
    /// Prints each frame twice (a retried batch).
    pub twice: bool,
}

fn config_dir() -> PathBuf {
    std::env::var_os("CLAUDE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The CLI's project key for a directory: every char but ASCII letters and digits is `-`.
fn project_key(cwd: &str) -> String {
    cwd.encode_utf16()
        .map(|u| match u {
            0x30..=0x39 | 0x41..=0x5a | 0x61..=0x7a => u as u8 as char,
            _ => '-',
        })
        .collect()
}

pub fn path(cwd: &str, session_id: &str) -> PathBuf {
    config_dir()
        .join("projects")
        .join(project_key(cwd))
        .join(format!("{session_id}.jsonl"))
}

/// The entries of a conversation's transcript, if it exists here.
pub fn load(cwd: &str, session_id: &str) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path(cwd, session_id)).ok()?;
    Some(
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect(),
    )
}

/// Appends entries to the conversation's transcript, then mirrors them.
pub fn append(cli: &Cli, entries: Vec<Value>) {
    let file = path(&cli.cwd, &cli.session_id);
    if let Some(dir) = file.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let mut text = String::new();
    for entry in &entries {
        text.push_str(&entry.to_string());
        text.push('\n');
    }
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
    {
        let _ = f.write_all(text.as_bytes());
    }
    let m = &cli.mirroring;
    if m.on && !m.silent {
        let file_path = m.path.clone().unwrap_or_else(|| file.display().to_string());
        let frame = json!({"type": "transcript_mirror", "filePath": file_path, "entries": entries});
        cli.out(&frame);
        if m.twice {
            cli.out(&frame);
        }
    }
}

/// The user's entry, when a turn starts.
pub fn user(cli: &mut Cli, prompt: &str) {
    let uuid = Cli::uuid();
    let entry = json!({"type": "user", "uuid": uuid, "parentUuid": cli.last_entry,
        "sessionId": cli.session_id, "message": {"role": "user", "content": prompt}});
    cli.last_entry = Some(uuid);
    append(cli, vec![entry]);
}

/// The assistant's last text and the running cost (an entry without a `uuid`), before the
/// turn's `result`.
pub fn turn_end(cli: &mut Cli, text: &str) {
    let uuid = Cli::uuid();
    let entry = json!({"type": "assistant", "uuid": uuid, "parentUuid": cli.last_entry,
        "sessionId": cli.session_id,
        "message": {"role": "assistant", "content": [{"type": "text", "text": text}]}});
    cli.last_entry = Some(uuid);
    append(
        cli,
        vec![entry, json!({"type": "fake-cost", "cost": cli.cost})],
    );
}
