//! The CLI process's life: launch flags and environment, where it runs, crashes, resume after
//! a restart or on another host, a CLI that never gets ready, and teardown without orphans.

use super::{argv, eventually, gone, open, reaped, say, turn, FakeCli};
use crate::support::{Api, TestDb, TestServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

#[tokio::test]
async fn launch_flags_environment_and_working_directory() {
    let fake = FakeCli::new(json!({"turns": []}));
    let root = fake.dir.join("projects");
    std::fs::create_dir_all(root.join("app")).unwrap();
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.allowed_cwd = vec![root.clone()];
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let app = root.join("app/../app");
    let config = json!({"model": "claude-sonnet-4-5", "permission_mode": "plan",
                        "cwd": app.to_str().unwrap()});
    let (id, mut stream) = open(api, config).await;
    api.say(&id, "hello").await;
    stream.until("result").await;
    let start = &fake.starts()[0];
    let args = argv(start);
    for flag in [
        "--output-format",
        "stream-json",
        "--verbose",
        "--input-format",
        "--include-partial-messages",
        "--permission-prompt-tool",
        "stdio",
        "--setting-sources=",
    ] {
        assert!(has(&args, flag), "{flag} missing from {args:?}");
    }
    assert!(has(&args, &format!("--session-id={id}")), "{args:?}");
    assert!(!args.iter().any(|a| a.starts_with("--resume")));
    let pair = |flag: &str| args[args.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(pair("--model"), "claude-sonnet-4-5");
    assert_eq!(pair("--permission-mode"), "plan");
    let canonical = std::fs::canonicalize(root.join("app")).unwrap();
    assert_eq!(start["cwd"], canonical.to_str().unwrap());
    let env = &start["env"];
    assert_eq!(env["CLAUDE_CODE_ENTRYPOINT"], "sdk-rust");
    assert_eq!(env["PWD"], canonical.to_str().unwrap());
    assert!(env
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with("AGENT_WEBKIT_")));
    assert!(env.get("DATABASE_URL").is_none());
    // The first frame on stdin is `initialize`, then the user message.
    let stdin = fake.stdin();
    assert_eq!(stdin[0]["request"]["subtype"], "initialize");
    assert_eq!(stdin[1]["type"], "user");
    assert_eq!(
        stdin[1]["message"],
        json!({"role": "user", "content": "hello"})
    );
    // The conversation id is stored as the resume token, nowhere near a credential.
    let client = db.client().await;
    let sid: uuid::Uuid = id.parse().unwrap();
    let row = client
        .query_one(
            "SELECT resume_token, config::text FROM sessions WHERE id = $1",
            &[&sid],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, Option<String>>(0).as_deref(),
        Some(id.as_str())
    );
    assert!(!row.get::<_, String>(1).contains("API_KEY"));

    // Without a cwd, a session runs in its own directory under the data dir.
    let (id2, mut stream) = open(api, json!({})).await;
    api.say(&id2, "hello").await;
    stream.until("result").await;
    let own = std::fs::canonicalize(fake.dir.join("data/sessions").join(&id2)).unwrap();
    assert_eq!(fake.starts()[1]["cwd"], own.to_str().unwrap());
    server.stop().await;
}

#[tokio::test]
async fn session_configs_the_cli_cannot_run_are_400() {
    let fake = FakeCli::new(json!({"turns": []}));
    let root = fake.dir.join("projects");
    std::fs::create_dir_all(root.join("inside")).unwrap();
    std::fs::create_dir_all(fake.dir.join("outside")).unwrap();
    std::os::unix::fs::symlink(fake.dir.join("outside"), root.join("escape")).unwrap();
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.allowed_cwd = vec![root.clone()];
    let server = TestServer::start_with(config).await;
    let path = |p: &str| root.join(p).to_str().unwrap().to_owned();
    for bad in [
        json!({"cwd": path("../outside")}),
        json!({"cwd": path("inside/../../outside")}),
        json!({"cwd": path("escape")}),
        json!({"cwd": path("missing")}),
        json!({"cwd": "relative/dir"}),
        json!({"cwd": "/"}),
        json!({"permission_mode": "yolo"}),
        json!({"permission_mode": "bypassPermissions"}),
        json!({"model": "--dangerously-skip-permissions"}),
        json!({"hooks": {"PreToolUse": "Bash"}}),
    ] {
        let (status, _, body) = server.api.create_raw(&bad.to_string()).await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["code"], "invalid_config", "{bad}");
    }
    let (status, _, _) = server
        .api
        .create_raw(&json!({"cwd": path("inside")}).to_string())
        .await;
    assert_eq!(status, 200);
    assert!(fake.starts().is_empty(), "no CLI runs before a turn");
    server.stop().await;
}

#[tokio::test]
async fn a_crash_mid_turn_is_reported_once_and_the_next_message_resumes() {
    let crash = vec![
        json!({"assistant": [{"type": "text", "text": "working on it"}]}),
        json!({"stderr": "fatal: the fake CLI fell over"}),
        json!({"exit": 3}),
    ];
    let scenario = json!({"turns": [turn("CRASH", crash), turn("again", vec![say("I am back")])]});
    let fake = FakeCli::new(scenario);
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "CRASH now").await;
    let events = stream.until("result").await;
    let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| **n == "error").count(),
        1,
        "{names:?}"
    );
    let error = events.iter().find(|e| e.event == "error").unwrap();
    assert_eq!(error.data["code"], "agent_exited");
    let message = error.data["message"].as_str().unwrap();
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        message.contains("fatal: the fake CLI fell over"),
        "{message}"
    );
    let result = &events.last().unwrap().data;
    assert_eq!(result["subtype"], "error_during_execution");
    assert_eq!(result["is_error"], true);
    // Nothing more for this turn.
    assert!(stream
        .next_within(Duration::from_millis(300))
        .await
        .is_err());

    api.say(&id, "again").await;
    let events = stream.until("result").await;
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    let starts = fake.starts();
    assert_eq!(starts.len(), 2);
    assert!(has(&argv(&starts[1]), &format!("--resume={id}")));
    // The crashed process was reaped.
    let pid = starts[0]["pid"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(5), || reaped(pid)).await);
    server.stop().await;
}

#[tokio::test]
async fn resume_after_a_restart_and_on_another_host_continues_the_conversation() {
    let scenario = json!({"turns": [turn("", vec![say("hello again")])]});
    let first = FakeCli::new(scenario.clone());
    let db = TestDb::new().await;
    let server = first.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "one").await;
    let one = stream.until("result").await.pop().unwrap();
    let cost_one = one.data["total_cost_usd"].clone();
    server.stop().await;

    // Same host name, restarted.
    let server = first.server(&db).await;
    let last = one.id.to_string();
    let mut stream = server.api.stream(&id, Some(&last)).await.unwrap();
    server.api.say(&id, "two").await;
    let events = stream.until("result").await;
    let result = events.last().unwrap().clone();
    assert_eq!(
        result.data["subtype"],
        "success",
        "{events:?}\n{:?}",
        first.records()
    );
    server.stop().await;

    // Another host (another process and name) that sees the same CLI transcripts.
    let other = FakeCli::sharing_config_with(&first, scenario);
    let mut config = other.config(&db);
    config.host.name = "another-host".into();
    let server = TestServer::start_with(config).await;
    let mut stream = server
        .api
        .stream(&id, Some(&result.id.to_string()))
        .await
        .unwrap();
    server.api.say(&id, "three").await;
    let events = stream.until("result").await;
    let result = events.last().unwrap().clone();
    assert_eq!(
        result.data["subtype"],
        "success",
        "{events:?}\n{:?}",
        other.records()
    );
    // The CLI's running cost continued from the stored conversation.
    let cost_three = result.data["total_cost_usd"].as_f64().unwrap();
    assert!(
        cost_three > 2.0 * cost_one.as_f64().unwrap(),
        "{cost_three}"
    );

    let mut starts = first.starts();
    starts.extend(other.starts());
    let conversations: Vec<String> = starts
        .iter()
        .map(|s| {
            argv(s)
                .into_iter()
                .find(|a| a.starts_with("--session-id") || a.starts_with("--resume"))
                .unwrap()
        })
        .collect();
    assert_eq!(
        conversations,
        [
            format!("--session-id={id}"),
            format!("--resume={id}"),
            format!("--resume={id}")
        ]
    );
    server.stop().await;
}

/// The session's `turns` and `total_cost_usd` once `turns` reached `turns` (the row is updated
/// right after the `result` is committed, so a client may see the result first).
async fn cost_after(api: &Api, id: &str, turns: i64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, session) = api.get_json(&format!("/sessions/{id}")).await;
        assert_eq!(status, 200, "{session}");
        if session["turns"] == turns {
            return session["total_cost_usd"].as_f64().unwrap();
        }
        assert!(Instant::now() < deadline, "{session}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The CLI's `total_cost_usd` is its conversation's running total (spec §6.5), continued by a
/// resumed process (§13): the session's cost is the latest figure, not the sum of them.
#[tokio::test]
async fn the_session_cost_is_the_running_total_across_turns_and_a_resume() {
    let fake = FakeCli::new(json!({"turns": [turn("", vec![say("ok")])]}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    let mut reported = Vec::new();
    let mut last = String::new();
    for (n, text) in (1..).zip(["one", "two", "three"]) {
        server.api.say(&id, text).await;
        let result = stream.until("result").await.pop().unwrap();
        reported.push(result.data["total_cost_usd"].as_f64().unwrap());
        last = result.id.to_string();
        let stored = cost_after(&server.api, &id, n).await;
        assert!(
            (stored - reported[n as usize - 1]).abs() < 1e-9,
            "{stored} {reported:?}"
        );
    }
    assert!(reported.windows(2).all(|w| w[1] > w[0]), "{reported:?}");
    server.stop().await;

    // A new process resumes the conversation, and its running total goes on from there.
    let server = fake.server(&db).await;
    let mut stream = server.api.stream(&id, Some(&last)).await.unwrap();
    server.api.say(&id, "four").await;
    let result = stream.until("result").await.pop().unwrap();
    let four = result.data["total_cost_usd"].as_f64().unwrap();
    assert!(four > reported[2], "{four} {reported:?}");
    let stored = cost_after(&server.api, &id, 4).await;
    assert!((stored - four).abs() < 1e-9, "{stored} {four}");
    let starts = fake.starts();
    assert_eq!(starts.len(), 2);
    assert!(has(&argv(&starts[1]), &format!("--resume={id}")));
    server.stop().await;
}

#[tokio::test]
async fn a_cli_that_never_answers_initialize_times_out_with_an_error() {
    let fake = FakeCli::new(json!({"no_init_response": true, "stderr": ["waiting for nothing"]}));
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.start_timeout = Duration::from_millis(700);
    let server = TestServer::start_with(config).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    let sent = Instant::now();
    server.api.say(&id, "hello?").await;
    let events = stream.until("result").await;
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(650) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].data["code"], "agent_start_timeout");
    let message = events[0].data["message"].as_str().unwrap();
    assert!(
        message.contains("initialize") && message.contains("waiting for nothing"),
        "{message}"
    );
    assert_eq!(events[1].data["subtype"], "error_during_execution");
    // The user message was never sent to a CLI that was not ready; the process is gone.
    assert!(fake.stdin().iter().all(|l| l["type"] != "user"));
    let pid = fake.starts()[0]["pid"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(5), || reaped(pid)).await);
    server.stop().await;
}

/// DELETE during a turn answers at once; the CLI and everything it started are gone soon
/// after: stdin closed, SIGTERM, then SIGKILL for a CLI that ignores SIGTERM.
async fn delete_leaves_no_process(ignore_sigterm: bool) {
    let scenario = json!({"spawn_child": true, "ignore_sigterm": ignore_sigterm,
        "turns": [turn("", vec![say("started"), json!({"hang": true})])]});
    let fake = FakeCli::new(scenario);
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "work").await;
    stream.until("message_complete").await;
    let pid = fake.starts()[0]["pid"].as_u64().unwrap();
    let child = fake.records_of("child")[0]["child"].as_u64().unwrap();
    assert!(!gone(pid) && !gone(child));
    // The session's own directory, with what the agent left there and a link out of it.
    let dir = fake.dir.join("data/sessions").join(&id);
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let outside = fake.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), "x").unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

    let asked = Instant::now();
    assert_eq!(api.delete(&id).await, 204);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    let rest = stream.rest().await;
    assert_eq!(rest.last().unwrap().event, "done");
    // The directory goes, but never while the CLI is still there (checked in that order: a
    // CLI alive now was alive when the directory was looked at).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let exists = dir.exists();
        let alive = !reaped(pid);
        assert!(
            exists || !alive,
            "the directory went before the CLI was reaped"
        );
        if !exists {
            break;
        }
        assert!(Instant::now() < deadline, "{} left behind", dir.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(outside.join("keep").is_file(), "removal followed a symlink");
    // grace 300 ms after EOF, then SIGTERM, then (if ignored) 300 ms more and SIGKILL.
    assert!(
        eventually(Duration::from_secs(5), || reaped(pid)).await,
        "CLI {pid} left behind"
    );
    assert!(
        eventually(Duration::from_secs(5), || gone(child)).await,
        "child {child} left behind"
    );
    let exits = fake.records_of("exit");
    assert!(
        exits.is_empty(),
        "the CLI was killed, not finished: {exits:?}"
    );
    // A CLI that ignored SIGTERM was ended by SIGKILL.
    assert_eq!(
        fake.records_of("sigterm_ignored").is_empty(),
        !ignore_sigterm
    );
    server.stop().await;
}

#[tokio::test]
async fn delete_mid_turn_stops_the_cli_and_its_children() {
    delete_leaves_no_process(false).await;
}

#[tokio::test]
async fn delete_kills_a_cli_that_ignores_sigterm() {
    delete_leaves_no_process(true).await;
}

/// `DELETE` removes only what the server made: a session's own directory goes, a `cwd` the client
/// chose stays with its files, and a session that is not closed keeps its directory.
#[tokio::test]
async fn delete_removes_the_directory_the_server_made_never_a_chosen_cwd() {
    let fake = FakeCli::new(json!({"turns": [turn("", vec![say("ok")])]}));
    let root = fake.dir.join("projects");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("app/kept.txt"), "x").unwrap();
    let db = TestDb::new().await;
    let mut config = fake.config(&db);
    config.agent.claude.allowed_cwd = vec![root.clone()];
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let chosen = json!({"cwd": root.join("app").to_str().unwrap()});
    let mut ids = Vec::new();
    for config in [chosen, json!({}), json!({})] {
        let (id, mut stream) = open(api, config).await;
        api.say(&id, "hello").await;
        stream.until("result").await;
        ids.push(id);
    }
    let sessions = fake.dir.join("data/sessions");
    let (own, open_one) = (sessions.join(&ids[1]), sessions.join(&ids[2]));
    assert!(own.is_dir() && open_one.is_dir());
    assert!(
        !sessions.join(&ids[0]).exists(),
        "a session with a cwd got a directory"
    );
    assert_eq!(api.delete(&ids[0]).await, 204);
    assert_eq!(api.delete(&ids[1]).await, 204);
    assert!(
        eventually(Duration::from_secs(5), || !own.exists()).await,
        "{} left behind",
        own.display()
    );
    // Stopping waits for every reaper and removal: nothing else was touched.
    server.stop().await;
    assert!(root.join("app/kept.txt").is_file());
    assert!(open_one.is_dir());
}

#[tokio::test]
async fn an_idle_cli_exits_on_eof_when_the_server_stops() {
    // It takes 200 ms to exit after EOF (the stop grace is 300 ms).
    let fake = FakeCli::new(json!({"spawn_child": true, "exit_delay_ms": 200}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let (id, mut stream) = open(&server.api, json!({})).await;
    server.api.say(&id, "hi").await;
    stream.until("result").await;
    server.stop().await;
    // Shutdown waited for the CLI: it is gone, with its child, when the server has stopped.
    let pid = fake.starts()[0]["pid"].as_u64().unwrap();
    let child = fake.records_of("child")[0]["child"].as_u64().unwrap();
    assert!(reaped(pid), "CLI {pid} outlived the server");
    assert!(eventually(Duration::from_millis(200), || gone(child)).await);
    // It finished on its own (stdin EOF), without a signal.
    let exits: Vec<Value> = fake.records_of("exit");
    assert_eq!(exits.len(), 1);
    assert_eq!(exits[0]["code"], 0);
}
