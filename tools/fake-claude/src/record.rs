//! What the fake CLI saw, for the tests' assertions: one JSON line per fact appended to the
//! file named by `FAKE_CLAUDE_RECORD` (`start` with argv, env and cwd; every `stdin` line;
//! `child` pids it spawned; `exit`).

use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone)]
pub struct Recorder {
    path: Option<PathBuf>,
}

impl Recorder {
    pub fn from_env() -> Recorder {
        Recorder {
            path: std::env::var_os("FAKE_CLAUDE_RECORD").map(PathBuf::from),
        }
    }

    pub fn write(&self, event: &str, mut fields: Value) {
        let Some(path) = &self.path else { return };
        fields["event"] = event.into();
        fields["pid"] = std::process::id().into();
        let mut line = fields.to_string();
        line.push('\n');
        // One write per line on an O_APPEND file: lines of concurrent processes do not mix.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        if let Ok(mut file) = file {
            let _ = file.write_all(line.as_bytes());
        }
    }

    pub fn start(&self) {
        let argv: Vec<String> = std::env::args().collect();
        let env: serde_json::Map<String, Value> = std::env::vars()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let cwd = std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        self.write("start", json!({"argv": argv, "env": env, "cwd": cwd}));
    }
}
