//! The Claude runtime end to end: the real server with `--agent claude`, against the fake CLI
//! (`tools/fake-claude/`) and, in [`contract`], against the real CLI.

mod contract;
mod fake_api;
mod lifecycle;
mod moves;
mod permissions;
mod scenarios;
mod streaming;
mod transcripts;

use crate::support::sse::{Event, SseStream};
use crate::support::{Api, Scratch, TestDb, TestServer};
use agent_webkit_server::config::{AgentKind, Config};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The fake CLI behind a wrapper script that gives it its scenario, record file and config
/// dir: per test, without touching the test process's environment.
pub struct FakeCli {
    pub dir: PathBuf,
    pub wrapper: PathBuf,
    scenario: PathBuf,
    record: PathBuf,
    /// Removes `dir` when the test is over (keeps it if the test failed).
    _tmp: Scratch,
}

impl FakeCli {
    pub fn new(scenario: Value) -> FakeCli {
        FakeCli::in_dir(Scratch::dir("awk-fake-claude-"), scenario)
    }

    /// Another "host" sharing `other`'s transcripts (its `CLAUDE_CONFIG_DIR`).
    pub fn sharing_config_with(other: &FakeCli, scenario: Value) -> FakeCli {
        let fake = FakeCli::new(scenario);
        let config = fake.dir.join("config");
        std::fs::remove_dir_all(&config).unwrap();
        std::os::unix::fs::symlink(other.dir.join("config"), &config).unwrap();
        fake
    }

    fn in_dir(tmp: Scratch, scenario: Value) -> FakeCli {
        let dir = tmp.path().to_owned();
        let fake = FakeCli {
            wrapper: dir.join("claude"),
            scenario: dir.join("scenario.json"),
            record: dir.join("record.jsonl"),
            dir,
            _tmp: tmp,
        };
        std::fs::create_dir_all(fake.dir.join("config")).unwrap();
        fake.set_scenario(scenario);
        let script = format!(
            "#!/bin/sh\nexport FAKE_CLAUDE_SCENARIO='{}'\nexport FAKE_CLAUDE_RECORD='{}'\n\
             : \"${{CLAUDE_CONFIG_DIR:={}}}\"\nexport CLAUDE_CONFIG_DIR\nexec '{}' \"$@\"\n",
            fake.scenario.display(),
            fake.record.display(),
            fake.dir.join("config").display(),
            crate::support::tools::fake_claude().display(),
        );
        std::fs::write(&fake.wrapper, script).unwrap();
        std::fs::set_permissions(&fake.wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        fake
    }

    /// Replaces the scenario (for processes started from now on).
    pub fn set_scenario(&self, scenario: Value) {
        std::fs::write(&self.scenario, scenario.to_string()).unwrap();
    }

    /// A server config running this fake, with short timeouts.
    pub fn config(&self, db: &TestDb) -> Config {
        let mut config = TestServer::config(db);
        config.agent.kind = AgentKind::Claude;
        config.agent.claude.data_dir = self.dir.join("data");
        config.agent.claude.path = self.wrapper.clone();
        config.agent.claude.start_timeout = Duration::from_secs(10);
        config.agent.claude.control_timeout = Duration::from_secs(5);
        config.agent.claude.stop_grace = Duration::from_millis(300);
        config
    }

    pub async fn server(&self, db: &TestDb) -> TestServer {
        TestServer::start_with(self.config(db)).await
    }

    /// Everything the fake processes recorded, in order.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The `start` records: one per process, with `argv`, `env`, `cwd` and `pid`.
    pub fn starts(&self) -> Vec<Value> {
        self.records_of("start")
    }

    pub fn records_of(&self, event: &str) -> Vec<Value> {
        let mut records = self.records();
        records.retain(|r| r["event"] == event);
        records
    }

    /// The stdin lines the fake received.
    pub fn stdin(&self) -> Vec<Value> {
        self.records_of("stdin")
            .into_iter()
            .map(|r| r["line"].clone())
            .collect()
    }

    /// Control requests of `subtype` the fake received.
    pub fn control_requests(&self, subtype: &str) -> Vec<Value> {
        let mut lines = self.stdin();
        lines.retain(|l| l["type"] == "control_request" && l["request"]["subtype"] == subtype);
        lines.into_iter().map(|l| l["request"].clone()).collect()
    }

    /// Our answers to the fake's requests (`control_response` payloads).
    pub fn responses(&self) -> Vec<Value> {
        let mut lines = self.stdin();
        lines.retain(|l| l["type"] == "control_response");
        lines.into_iter().map(|l| l["response"].clone()).collect()
    }
}

pub fn argv(start: &Value) -> Vec<String> {
    start["argv"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

/// A one-text-message answer.
pub fn say(text: &str) -> Value {
    json!({"assistant": [{"type": "text", "text": text}]})
}

/// A message with one tool call, answered by the fake as `fake` says.
pub fn tool(id: &str, name: &str, input: Value, fake: Value) -> Value {
    json!({"assistant": [{"type": "tool_use", "id": id, "name": name, "input": input, "fake": fake}]})
}

pub fn turn(when: &str, steps: Vec<Value>) -> Value {
    json!({"when": when, "steps": steps})
}

/// Creates a session with `config`, opens its stream and reads `session_ready`.
pub async fn open(api: &Api, config: Value) -> (String, SseStream) {
    let (status, _, body) = api.create_raw(&config.to_string()).await;
    assert_eq!(status, 200, "create: {body}");
    let id = body["session_id"].as_str().unwrap().to_owned();
    let mut stream = api.stream(&id, None).await.unwrap();
    assert_eq!(stream.next().await.unwrap().event, "session_ready");
    (id, stream)
}

/// Event names with runs of `message_delta` collapsed to one (chunking is not the point).
pub fn shape(events: &[Event]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for e in events {
        if e.event == "message_delta" && out.last() == Some(&"message_delta") {
            continue;
        }
        out.push(&e.event);
    }
    out
}

/// Whether a process is gone (or a zombie nobody needs to reap: not ours).
pub fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            // `pid (comm) S ...`: the state follows the last `)`.
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            state.starts_with('Z') || state.starts_with('X')
        }
    }
}

/// Whether `pid` is gone entirely: exited and reaped (no zombie left behind).
pub fn reaped(pid: u64) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `check` until it holds, for at most `within`.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
