//! Scenario files: what the fake CLI does at start and in each turn.
//!
//! A scenario is one JSON object (file named by `FAKE_CLAUDE_SCENARIO`):
//!
//! ```json
//! {"init_delay_ms": 0, "exit_delay_ms": 0, "no_init_response": false, "ignore_sigterm": false,
//!  "silent_controls": ["stop_task"], "spawn_child": false, "stderr": ["printed at start"],
//!  "mcp_servers": [{"name": "notion", "status": "connected"}],
//!  "turns": [{"when": "RUNBASH", "steps": [...]}, {"steps": [...]}]}
//! ```
//!
//! A user message runs the steps of the first turn whose `when` occurs in its text (a turn
//! without `when` matches any); a turn's `mcp_servers` replaces the scenario's. Steps:
//! - `{"assistant": [blocks], "delay_ms": 5, "chunk": 4, "stop_reason": "…"}`: one API message,
//!   streamed (text in `chunk`-char deltas, `delay_ms` apart) when `--include-partial-messages`;
//!   each `tool_use` block then runs as a tool, driven by its `"fake"` key (removed on output):
//!   `{"ask": true, "output": "text", "is_error": false, "echo_input": false, "context": {…},
//!   "cancel_after_ms": n}` (the last withdraws the permission request after n ms);
//! - `{"delay_ms": n}`, `{"hang": true}` (until interrupted or killed);
//! - `{"frame": {…}}` (written as is), `{"raw": "text"}`, `{"raw_bytes": n}` (n bytes of `x`);
//! - `{"stderr": "line"}`, `{"exit": code}` (crash: exit at once, no result);
//! - `{"mcp_servers": [...]}` (reported by the next turns' `system/init`).
//!
//! Transcript knobs (`transcript.rs`): `"refuse_session_mirror"`, `"silent_session_mirror"`,
//! `"mirror_path"`, `"mirror_twice"`.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Scenario {
    pub init_delay_ms: u64,
    /// How long the CLI takes to exit after stdin EOF (flushing its transcript).
    pub exit_delay_ms: u64,
    pub no_init_response: bool,
    /// Control request subtypes the CLI never answers.
    pub silent_controls: Vec<String>,
    pub ignore_sigterm: bool,
    pub spawn_child: bool,
    pub stderr: Vec<String>,
    pub mcp_servers: Vec<Value>,
    pub turns: Vec<Turn>,
    /// Exit at start on `--session-mirror`, like a CLI that predates it.
    pub refuse_session_mirror: bool,
    /// Take `--session-mirror` but never print a mirror frame.
    pub silent_session_mirror: bool,
    /// Mirror under this `filePath` instead of the real one.
    pub mirror_path: Option<String>,
    /// Print every mirror frame twice.
    pub mirror_twice: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Turn {
    pub when: Option<String>,
    /// The MCP servers this turn's `system/init` reports (default: the scenario's).
    pub mcp_servers: Option<Vec<Value>>,
    pub steps: Vec<Value>,
}

impl Scenario {
    pub fn load() -> Scenario {
        let Some(path) = std::env::var_os("FAKE_CLAUDE_SCENARIO") else {
            return Scenario::default();
        };
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fake-claude: reading {path:?}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("fake-claude: bad scenario: {e}"))
    }

    /// The turn for a prompt; a plain answer when none matches.
    pub fn turn_for(&self, prompt: &str) -> Turn {
        let turn = self.turns.iter().find(|t| match &t.when {
            Some(word) => prompt.contains(word.as_str()),
            None => true,
        });
        turn.cloned().unwrap_or_else(|| Turn {
            steps: vec![serde_json::json!({"assistant": [
                {"type": "text", "text": "Hello from the fake CLI."}]})],
            ..Turn::default()
        })
    }
}

/// The text of a user message's content (a string, or its text blocks).
pub fn prompt_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}
