//! The real Claude CLI's conversation survives its host (issue 13): two hosts of the built
//! binary with their own `HOME` and data dirs, sharing nothing but Postgres. Turn 1 (a tool
//! call with a permission round trip) runs on host A; A and its CLI are SIGKILLed; turn 2
//! through host B continues the same conversation — the model's request carries turn 1. Then
//! B restarts with its local state wiped, and later evicts the session as idle: each time the
//! conversation is written back from Postgres and goes on.

use super::contract::{real_cli, wrapper};
use super::fake_api::FakeApi;
use crate::support::process::ServerProcess;
use crate::support::sse::SseStream;
use crate::support::{Api, Scratch, TestDb};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

async fn host(db: &TestDb, dir: &Path, api: &FakeApi, extra: &[&str]) -> ServerProcess {
    let cli = real_cli();
    let claude = wrapper(dir, &cli, api);
    let data = dir.join("data");
    let home = dir.join("home");
    let mut args = vec![
        "--agent",
        "claude",
        "--claude-path",
        claude.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--claude-start-timeout",
        "30s",
        "--claude-stop-grace",
        "1s",
    ];
    args.extend_from_slice(extra);
    ServerProcess::start(&db.url, None, &args, &[("HOME", home.to_str().unwrap())]).await
}

/// Every process below `pid` (its children, theirs, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                out.push(child);
                todo.push(child);
            }
        }
    }
    out
}

fn kill9(pids: &[u32]) {
    for pid in pids {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// The text the model was given in the newest main-loop request.
fn last_request(api: &FakeApi) -> String {
    api.main_requests().last().unwrap()["messages"].to_string()
}

async fn turn(
    api: &Api,
    id: &str,
    stream: &mut SseStream,
    text: &str,
) -> Vec<crate::support::sse::Event> {
    api.say(id, text).await;
    let events = stream.until("result").await;
    assert_eq!(
        events.last().unwrap().data["subtype"],
        "success",
        "{events:?}"
    );
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_cli_conversation_moves_between_hosts_that_share_only_the_database() {
    let fake_api = FakeApi::start().await;
    let db = TestDb::new().await;
    let (dir_a, dir_b) = (Scratch::dir("awk-host-a-"), Scratch::dir("awk-host-b-"));
    let a = host(&db, dir_a.path(), &fake_api, &[]).await;

    // Turn 1 on A: a Bash call, allowed, and its output back to the model.
    let id = a.api.create_raw("{}").await.2["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut stream = a.api.stream(&id, None).await.unwrap();
    // (The fake API reads a fresh conversation's first prompt behind the CLI's reminders, so
    // the tool call comes in the second message.)
    turn(&a.api, &id, &mut stream, "hello there").await;
    a.api.say(&id, "please RUNBASH").await;
    let asked = stream.until("permission_request").await.pop().unwrap().data;
    let allow = json!({"type": "permission_response", "behavior": "allow",
        "correlation_id": asked["correlation_id"]});
    assert_eq!(a.api.input(&id, allow).await, 204);
    let events = stream.until("result").await;
    let output = events
        .iter()
        .find(|e| e.event == "tool_result")
        .unwrap()
        .data["output"]
        .clone();
    assert_eq!(output, "hi");
    let mut last = events.last().unwrap().id;

    report_turn_costs(&db, &id).await;

    // A and its CLI die together.
    let mut doomed = descendants(a.pid());
    doomed.push(a.pid());
    kill9(&doomed);
    drop(a);

    // Turn 2 through B, which has never seen this conversation.
    let b = host(&db, dir_b.path(), &fake_api, &[]).await;
    let mut stream = b.api.stream(&id, Some(&last.to_string())).await.unwrap();
    let started = Instant::now();
    let events = turn(&b.api, &id, &mut stream, "second message").await;
    eprintln!(
        "turn 2 on host B (takeover, write-back, resume) in {:?}",
        started.elapsed()
    );
    last = events.last().unwrap().id;
    let seen = last_request(&fake_api);
    assert!(
        seen.contains("please RUNBASH"),
        "turn 1's prompt missing: {seen}"
    );
    assert!(
        seen.contains("touch made.txt"),
        "turn 1's tool call missing: {seen}"
    );
    assert!(seen.contains("second message"));
    b.stop().await;

    // B restarts with its local state wiped (data dir's CLI config and HOME), and evicts
    // idle sessions after a second.
    for sub in ["data/claude", "home"] {
        let _ = std::fs::remove_dir_all(dir_b.path().join(sub));
    }
    std::fs::create_dir_all(dir_b.path().join("home")).unwrap();
    let b = host(&db, dir_b.path(), &fake_api, &["--idle-timeout", "1s"]).await;
    let mut stream = b.api.stream(&id, Some(&last.to_string())).await.unwrap();
    turn(&b.api, &id, &mut stream, "third message").await;
    let seen = last_request(&fake_api);
    assert!(
        seen.contains("please RUNBASH") && seen.contains("second message"),
        "{seen}"
    );
    drop(stream);

    // Evicted as idle, its config dir wiped: the next turn writes it back again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, session): (_, Value) = b.api.get_json(&format!("/sessions/{id}")).await;
        if session["status"] == "dormant" {
            break;
        }
        assert!(Instant::now() < deadline, "never evicted: {session}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(dir_b.path().join("data/claude").join(&id));
    let mut stream = b.api.stream(&id, None).await.unwrap();
    turn(&b.api, &id, &mut stream, "fourth message").await;
    let seen = last_request(&fake_api);
    assert!(
        seen.contains("please RUNBASH") && seen.contains("third message"),
        "{seen}"
    );
    b.stop().await;
}

/// Figures for BENCHMARKS.md (printed with `--nocapture`): what the real CLI mirrored for the
/// turns so far, and what committing a turn's entries with its last events costs the writer
/// (median of 15 commits of the same batch with and without the entries, on a scratch session).
async fn report_turn_costs(db: &TestDb, id: &str) {
    use agent_webkit_server::agent::SessionConfig;
    use agent_webkit_server::frame::{names, Frame};
    use agent_webkit_server::store::transcripts::Entry;
    use agent_webkit_server::store::writer::{self, Append, Attempt, CommitSink};
    use agent_webkit_server::store::{hosts, sessions, Store};
    use std::sync::Arc;
    struct Sink;
    impl CommitSink for Sink {
        fn committed(&self, _: Vec<Frame>) {}
        fn fenced(&self) {}
    }
    let client = db.client().await;
    let session: uuid::Uuid = id.parse().unwrap();
    let rows = client
        .query(
            "SELECT file, uuid, entry::text FROM transcript_entries WHERE session_id = $1 ORDER BY seq",
            &[&session],
        )
        .await
        .unwrap();
    let bytes: usize = rows.iter().map(|r| r.get::<_, String>(2).len()).sum();
    eprintln!(
        "real CLI, 2 turns (one with a tool call): {} entries, {} KiB stored",
        rows.len(),
        bytes / 1024
    );
    let store = Store::connect(&db.url, 2).unwrap();
    let host = hosts::register(&store, "measure").await.unwrap();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut plain, mut mirrored) = (Vec::new(), Vec::new());
    for round in 0..15 {
        for with_entries in [false, true] {
            let scratch = uuid::Uuid::new_v4();
            sessions::create(&store, scratch, "token", &SessionConfig::default())
                .await
                .unwrap();
            let sessions::Claim::Claimed(c) =
                sessions::claim(&store, scratch, host, "token", 10, Duration::from_secs(10))
                    .await
                    .unwrap()
            else {
                panic!("claim")
            };
            let transcript = if with_entries {
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| Entry {
                        seq: i as u64 + 1,
                        file: Arc::from(r.get::<_, &str>(0)),
                        uuid: r.get(1),
                        json: r.get(2),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let batch = vec![Append {
                session_id: scratch,
                epoch: c.epoch,
                frames: (c.last_seq + 1..=c.last_seq + 3)
                    .map(|s| Frame::encode(s, names::MESSAGE_DELTA, "{\"text\":\"hello\"}"))
                    .collect(),
                transcript,
                sink: Arc::new(Sink),
                ack: None,
                span: tracing::Span::none(),
            }];
            let conn = store.client().await.unwrap();
            let started = Instant::now();
            writer::commit(&conn, host, &batch, Attempt::First)
                .await
                .unwrap();
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if round > 0 {
                if with_entries {
                    mirrored.push(ms)
                } else {
                    plain.push(ms)
                }
            }
        }
    }
    let (p, m) = (median(plain), median(mirrored));
    eprintln!("commit of a turn's last events: {p:.2} ms alone, {m:.2} ms with its {} entries (+{:.2} ms)", rows.len(), m - p);
}
