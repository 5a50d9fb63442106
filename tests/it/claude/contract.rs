//! The contract test: the server with the **real** Claude Code CLI (the binary bundled in the
//! `claude-agent-sdk` wheel, fetched by `.ci/fetch-claude-cli`), talking to the fake Messages
//! API of [`super::fake_api`]. It proves the runtime works with the real thing: a streamed
//! answer, a tool call that needs permission (interrupted while it waits; then allowed with
//! the CLI's own "always allow" suggestion, and run), an AskUserQuestion, a control error from
//! the CLI, and a clean teardown. It never skips: without the binary it fails and
//! says how to get it.

use super::fake_api::{FakeApi, QUESTION};
use super::{eventually, open, reaped, shape};
use crate::support::sse::{Event, SseStream};
use crate::support::{Api, TestDb, TestServer};
use agent_webkit_server::config::AgentKind;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SDK_VERSION: &str = include_str!("../../../.ci/claude-agent-sdk-version");

/// `CLAUDE_CLI_PATH`, else where `.ci/fetch-claude-cli` caches it.
pub(super) fn real_cli() -> PathBuf {
    let path = std::env::var_os("CLAUDE_CLI_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from(".cache"));
            cache
                .join("agent-webkit/claude-cli")
                .join(format!("claude-agent-sdk-{}", SDK_VERSION.trim()))
                .join("claude")
        });
    assert!(
        path.is_file(),
        "the real Claude CLI is not at {}: run `.ci/fetch-claude-cli` (the download step of \
         `.ci/run`) to fetch it, or point CLAUDE_CLI_PATH at a `claude` binary",
        path.display()
    );
    path
}

/// A wrapper that runs the real CLI against the fake API, with a home of its own and no
/// traffic anywhere else.
pub(super) fn wrapper(dir: &std::path::Path, cli: &std::path::Path, api: &FakeApi) -> PathBuf {
    for sub in ["home", "config"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let script = format!(
        "#!/bin/sh\n\
         export HOME='{home}'\n\
         : \"${{CLAUDE_CONFIG_DIR:={config}}}\"; export CLAUDE_CONFIG_DIR\n\
         export ANTHROPIC_BASE_URL='{url}' ANTHROPIC_API_KEY='sk-ant-test-not-a-real-key'\n\
         export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_TELEMETRY=1\n\
         export DISABLE_ERROR_REPORTING=1 DISABLE_AUTOUPDATER=1\n\
         exec '{cli}' \"$@\"\n",
        home = dir.join("home").display(),
        config = dir.join("config").display(),
        url = api.url,
        cli = cli.display(),
    );
    let path = dir.join("claude");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

async fn answer(api: &Api, id: &str, body: Value) {
    assert_eq!(api.input(id, body).await, 204);
}

fn find<'a>(events: &'a [Event], name: &str) -> &'a Value {
    &events.iter().find(|e| e.event == name).unwrap().data
}

/// Deltas of one message concatenate to its text, under its id.
fn check_streamed(events: &[Event]) {
    let complete = find(events, "message_complete");
    let id = &complete["message_id"];
    let text = complete["message"]["content"][0]["text"].as_str().unwrap();
    let streamed: String = events
        .iter()
        .filter(|e| e.event == "message_delta" && &e.data["message_id"] == id)
        .map(|e| e.data["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(streamed, text);
}

#[tokio::test]
async fn the_real_cli_runs_a_session_end_to_end() {
    let cli = real_cli();
    let fake_api = FakeApi::start().await;
    let tmp = tempfile::Builder::new()
        .prefix("awk-real-claude-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_owned();
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.agent.kind = AgentKind::Claude;
    config.agent.claude.data_dir = dir.join("data");
    config.agent.claude.path = wrapper(&dir, &cli, &fake_api);
    config.agent.claude.start_timeout = Duration::from_secs(30);
    config.agent.claude.control_timeout = Duration::from_secs(30);
    config.agent.claude.stop_grace = Duration::from_secs(2);
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({"model": "claude-sonnet-4-5"})).await;

    // 1. A streamed text answer.
    let asked = Instant::now();
    api.say(&id, "hi there").await;
    let events = stream.until("result").await;
    eprintln!(
        "real CLI: first answer (spawn + initialize + turn) in {:?}",
        asked.elapsed()
    );
    assert_eq!(
        shape(&events),
        ["message_delta", "message_complete", "result"],
        "{events:?}"
    );
    check_streamed(&events);
    let complete = find(&events, "message_complete");
    assert_eq!(
        complete["message"]["content"][0]["text"],
        "Hello from the fake API."
    );
    assert_eq!(complete["message"]["model"], "claude-sonnet-4-5");
    assert_eq!(complete["message"]["stop_reason"], "end_turn");
    let result = find(&events, "result");
    assert_eq!(result["subtype"], "success");
    assert_eq!(result["is_error"], false);
    assert_eq!(result["session_id"], id.as_str());
    assert_eq!(result["result"], "Hello from the fake API.");
    assert!(result["total_cost_usd"].as_f64().unwrap() > 0.0);
    assert!(result["usage"]["input_tokens"].is_u64());
    assert!(result["duration_ms"].is_u64() && result["num_turns"].is_u64());

    // 2. A tool call that needs permission, interrupted while it waits: the CLI withdraws
    // the request, so a late answer is a conflict.
    api.say(&id, "please RUNBASH").await;
    let asked = stream.until("permission_request").await.pop().unwrap().data;
    answer(api, &id, json!({"type": "interrupt"})).await;
    let events = stream.until("result").await;
    let result = events.last().unwrap();
    assert_eq!(result.data["subtype"], "interrupted", "{events:?}");
    assert_eq!(result.data["terminal_reason"], "aborted_tools");
    let late = json!({"type": "permission_response", "correlation_id": asked["correlation_id"],
        "behavior": "allow"});
    assert_eq!(api.input(&id, late).await, 409);

    // 3. Asked again and allowed, with the CLI's own suggestion to always allow it: the tool
    // runs and its output goes back to the model.
    api.say(&id, "please RUNBASH").await;
    let request = stream.until("permission_request").await;
    let tool_use = find(&request, "tool_use").clone();
    assert_eq!(tool_use["tool_name"], "Bash");
    let asked = request.last().unwrap().data.clone();
    assert_eq!(asked["correlation_id"], tool_use["tool_use_id"]);
    assert_eq!(asked["tool_name"], "Bash");
    assert_eq!(asked["input"]["command"], "touch made.txt && echo hi");
    assert_eq!(asked["context"]["tool_use_id"], tool_use["tool_use_id"]);
    let suggestions = asked["context"]["suggestions"].clone();
    assert!(
        suggestions.as_array().is_some_and(|s| !s.is_empty()),
        "{asked}"
    );
    let allow = json!({"type": "permission_response", "correlation_id": asked["correlation_id"],
        "behavior": "allow", "updated_permissions": suggestions});
    answer(api, &id, allow).await;
    let events = stream.until("result").await;
    let result = find(&events, "tool_result");
    assert_eq!(result["tool_use_id"], tool_use["tool_use_id"]);
    assert_eq!(result["output"], "hi");
    assert_eq!(result["is_error"], false);
    let last = events
        .iter()
        .rfind(|e| e.event == "message_complete")
        .unwrap();
    let text = last.data["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("done: hi"), "{text}");
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    let session_dir = dir.join("data/sessions").join(&id);
    assert!(
        session_dir.join("made.txt").exists(),
        "Bash ran in the session's directory"
    );
    // The rule applies to this session only: nothing was written to a settings file.
    assert!(!session_dir.join(".claude").exists());

    // 4. The same call now runs without asking: the CLI took the rule.
    api.say(&id, "please RUNBASH").await;
    let events = stream.until("result").await;
    assert!(
        !events.iter().any(|e| e.event == "permission_request"),
        "{events:?}"
    );
    assert_eq!(find(&events, "tool_result")["output"], "hi");

    // 5. AskUserQuestion, answered through the wire's question_response.
    api.say(&id, "ASKQ").await;
    let events = stream.until("ask_user_question").await;
    let question = events.last().unwrap().data.clone();
    // The CLI's tool input object, whole (issue 11): its `questions` array inside.
    assert!(question["questions"].is_object(), "{question}");
    assert_eq!(question["questions"]["questions"][0]["question"], QUESTION);
    let reply = json!({"type": "question_response", "correlation_id": question["correlation_id"],
        "answers": {QUESTION: "Blue"}});
    answer(api, &id, reply).await;
    let events = stream.until("result").await;
    let output = find(&events, "tool_result")["output"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        output.contains(&format!("\"{QUESTION}\"=\"Blue\"")),
        "{output}"
    );
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    // The model saw the answer in the next request.
    let seen = fake_api.main_requests().last().unwrap().to_string();
    assert!(seen.contains("Blue"), "the answer did not reach the model");

    // 6. A control request the CLI refuses: its code reaches the client.
    let bypass = json!({"type": "set_permission_mode", "mode": "bypassPermissions"});
    answer(api, &id, bypass).await;
    let error = stream.until("error").await.pop().unwrap();
    assert_eq!(error.data["code"], "bypass_not_launched");
    answer(
        api,
        &id,
        json!({"type": "set_permission_mode", "mode": "acceptEdits"}),
    )
    .await;
    assert!(
        next_error(&mut stream).await.is_none(),
        "acceptEdits is accepted"
    );

    // 7. Teardown: DELETE answers at once and the CLI is reaped.
    let pid = cli_pid(&dir);
    let asked = Instant::now();
    assert_eq!(api.delete(&id).await, 204);
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert_eq!(stream.rest().await.last().unwrap().event, "done");
    assert!(eventually(Duration::from_secs(10), || reaped(pid)).await);
    server.stop().await;
}

async fn next_error(stream: &mut SseStream) -> Option<Event> {
    stream
        .next_within(Duration::from_millis(500))
        .await
        .ok()
        .flatten()
        .filter(|e| e.event == "error")
}

/// The CLI's pid: the `claude` process running in one of this test's session directories.
fn cli_pid(dir: &std::path::Path) -> u64 {
    let sessions = std::fs::canonicalize(dir.join("data/sessions")).unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u64>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        let cwd = std::fs::read_link(entry.path().join("cwd"));
        if comm.trim() == "claude" && cwd.is_ok_and(|c| c.starts_with(&sessions)) {
            return pid;
        }
    }
    panic!("no CLI process runs in {}", sessions.display());
}
