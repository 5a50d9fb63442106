//! Tests of the replay runtime against the reference scenarios.
use super::script::parse;
use super::*;
use crate::agent::{Ask, AskKind};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::time::timeout;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
const PATIENCE: Duration = Duration::from_secs(5);

fn config(fixture: Option<&str>) -> SessionConfig {
    let fixture = fixture.map(Into::into);
    SessionConfig {
        fixture,
        ..Default::default()
    }
}

async fn start_in(dir: &Path, fixture: &str, token: Option<&str>) -> AgentHandle {
    let (config, resume_token) = (config(Some(fixture)), token.map(Into::into));
    let spec = StartSpec {
        session_id: Uuid::nil(),
        config,
        resume_token,
        transcript: Vec::new(),
    };
    let runtime = ReplayRuntime::new(dir.into(), None);
    runtime.start(spec).await.unwrap()
}

async fn start(fixture: &str, token: Option<&str>) -> AgentHandle {
    start_in(FIXTURES.as_ref(), fixture, token).await
}

async fn say(h: &AgentHandle) {
    let message = AgentCommand::UserMessage {
        content: json!("hi"),
    };
    h.commands.send(message).await.unwrap();
}

async fn control(h: &AgentHandle, control: Control) {
    let (reply, done) = oneshot::channel();
    let command = AgentCommand::Control { control, reply };
    h.commands.send(command).await.unwrap();
    let done = timeout(PATIENCE, done).await;
    done.unwrap().unwrap().unwrap();
}

async fn next(h: &mut AgentHandle) -> AgentEvent {
    let event = timeout(PATIENCE, h.events.recv()).await;
    event.unwrap().unwrap()
}

async fn next_ask(h: &mut AgentHandle) -> Ask {
    match next(h).await {
        AgentEvent::Ask(ask) => ask,
        other => panic!("expected an ask, got {other:?}"),
    }
}

/// Compares the next events with short labels, so tests state whole sequences.
async fn expect(h: &mut AgentHandle, labels: &[&str]) {
    let mut got = Vec::new();
    for _ in labels {
        got.push(match next(h).await {
            AgentEvent::Assistant { id, .. } => id,
            AgentEvent::ToolResults { blocks } => format!("results:{}", blocks.len()),
            AgentEvent::Result(r) => {
                let field = |key: &str| r[key].as_str().unwrap_or_default().to_owned();
                format!("{}@{}", field("subtype"), field("session_id"))
            }
            AgentEvent::ResumeToken(t) => format!("token:{t}"),
            AgentEvent::Error { code, .. } => code,
            other => format!("{other:?}"),
        });
    }
    assert_eq!(got, labels);
}

/// Nothing else was emitted: a control is served only after any pending emission.
async fn expect_quiet(h: &mut AgentHandle) {
    control(h, Control::SetModel(None)).await;
    assert!(h.events.try_recv().is_err());
}

#[tokio::test]
async fn plain_qa_plays_one_turn_and_ends_with_the_session() {
    let mut h = start("plain_qa", None).await;
    say(&h).await;
    let AgentEvent::Assistant {
        id,
        content,
        model,
        stop_reason,
    } = next(&mut h).await
    else {
        panic!("no assistant message");
    };
    assert_eq!(
        (id.as_str(), model.as_deref()),
        ("m_1", Some("claude-opus-4-7"))
    );
    assert_eq!(content, [json!({"type": "text", "text": "hello world"})]);
    assert_eq!(stop_reason.as_deref(), Some("end_turn"));
    expect(&mut h, &["token:1"]).await;
    let AgentEvent::Result(result) = next(&mut h).await else {
        panic!("no result");
    };
    let cost = json!({"session_id": "fake-1", "subtype": "success", "total_cost_usd": 0.001});
    assert_eq!(Value::Object(result), cost);
    expect_quiet(&mut h).await;
    drop(h.commands);
    assert!(h.events.recv().await.is_none());
    h.task.await.unwrap();
}

#[tokio::test]
async fn read_allow_plays_on_after_allow() {
    let mut h = start("read_allow", None).await;
    say(&h).await;
    expect(&mut h, &["m_1"]).await;
    let ask = next_ask(&mut h).await;
    assert_eq!(
        (ask.kind, ask.tool_name.as_str()),
        (AskKind::Permission, "Read")
    );
    assert_eq!(ask.correlation_id, "tu_1");
    assert_eq!(ask.input, json!({"path": "./README.md"}));
    assert_eq!(ask.context, json!({"tool_use_id": "tu_1"}));
    let (updated_input, updated_permissions) = (None, None);
    let allow = Decision::Allow {
        updated_input,
        updated_permissions,
    };
    ask.reply.send(allow).unwrap();
    expect(&mut h, &["results:1", "m_2", "token:1", "success@fake-2"]).await;
}

#[tokio::test]
async fn every_reference_fixture_plays_to_its_result() {
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().and_then(|s| s.to_str());
        let name = name.unwrap_or_default();
        if path.extension() != Some("jsonl".as_ref()) {
            continue;
        }
        let mut h = start(name, None).await;
        say(&h).await;
        let mut token = None;
        loop {
            match next(&mut h).await {
                AgentEvent::Ask(ask) => {
                    let question = name == "ask_user_question";
                    assert_eq!(ask.kind == AskKind::Question, question, "{name}");
                    let answers = json!({});
                    let _ = ask.reply.send(Decision::Answer { answers });
                }
                AgentEvent::ResumeToken(t) => token = Some(t),
                AgentEvent::Result(_) => break,
                _ => {}
            }
        }
        // The token that counts the turn comes before its result (see `Player::result`).
        assert_eq!(token.as_deref(), Some("1"), "{name}");
    }
}

#[tokio::test]
async fn turns_wait_for_user_messages_and_resume_skips_played_ones() {
    let mut h = start("multi_turn", None).await;
    say(&h).await;
    expect(&mut h, &["m_1", "token:1", "success@fake-mt"]).await;
    expect_quiet(&mut h).await;
    say(&h).await;
    expect(&mut h, &["m_2", "token:2", "success@fake-mt"]).await;

    let mut h = start("multi_turn", Some("1")).await;
    say(&h).await;
    expect(&mut h, &["m_2", "token:2", "success@fake-mt"]).await;
    // An unreadable token starts over.
    let mut h = start("multi_turn", Some("one")).await;
    say(&h).await;
    expect(&mut h, &["m_1"]).await;
}

#[tokio::test]
async fn interrupt_cuts_a_delay_short() {
    let mut h = start("interrupt_mid_stream", None).await;
    say(&h).await;
    expect(&mut h, &["m_1"]).await;
    control(&h, Control::Interrupt).await;
    expect(&mut h, &["token:1", "interrupted@fake-interrupt"]).await;
    expect_quiet(&mut h).await;

    // That delay is 50 ms and might run out first; this one cannot (`next` times out).
    let dir = tempfile::tempdir().unwrap();
    let script = r#"{"kind":"expect_user_query"}
        {"kind":"delay","seconds":3600}
        {"kind":"outbound","message":{"type":"ResultMessage","session_id":"s"}}"#;
    std::fs::write(dir.path().join("long.jsonl"), script).unwrap();
    let mut h = start_in(dir.path(), "long", None).await;
    say(&h).await;
    control(&h, Control::Interrupt).await;
    expect(&mut h, &["token:1", "interrupted@s"]).await;
}

#[tokio::test]
async fn interrupt_abandons_a_parked_callback() {
    let mut h = start("read_allow", None).await;
    say(&h).await;
    expect(&mut h, &["m_1"]).await;
    let ask = next_ask(&mut h).await;
    control(&h, Control::Interrupt).await;
    assert!(ask.reply.is_closed());
    expect(&mut h, &["token:1", "interrupted@fake-2"]).await;
    // Idle, an interrupt is acknowledged and does nothing.
    control(&h, Control::Interrupt).await;
    expect_quiet(&mut h).await;
}

#[tokio::test]
async fn deny_with_interrupt_stops_the_turn_unless_the_script_ends_it() {
    for (fixture, session) in [
        ("read_allow", "fake-2"),
        ("deny_with_interrupt", "fake-deny"),
    ] {
        let mut h = start(fixture, None).await;
        say(&h).await;
        expect(&mut h, &["m_1"]).await;
        let deny = Decision::Deny {
            message: None,
            interrupt: true,
        };
        next_ask(&mut h).await.reply.send(deny).unwrap();
        expect(&mut h, &["token:1", &format!("interrupted@{session}")]).await;
        expect_quiet(&mut h).await;
    }
}

#[tokio::test]
async fn the_task_ends_when_the_session_goes_away() {
    let mut h = start("read_allow", None).await;
    say(&h).await;
    expect(&mut h, &["m_1"]).await;
    drop(next_ask(&mut h).await); // the decision's sender
    assert!(h.events.recv().await.is_none());

    let h = start("plain_qa", None).await;
    drop(h.events);
    timeout(PATIENCE, h.task).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_message_past_the_script_reports_exhaustion() {
    let mut h = start("plain_qa", None).await;
    say(&h).await;
    say(&h).await; // mid-turn: queued, not dropped
    expect(&mut h, &["m_1", "token:1", "success@fake-1"]).await;
    let result = format!("error_during_execution@{}", Uuid::nil());
    expect(&mut h, &["fixture_exhausted", &result]).await;
    control(&h, Control::SetPermissionMode("plan".into())).await;
    control(&h, Control::StopTask("t1".into())).await;
    expect_quiet(&mut h).await; // in particular, no resume token
}

#[tokio::test]
async fn validate_checks_names_files_and_lines() {
    let rt = ReplayRuntime::new(FIXTURES.into(), None);
    assert!(rt.validate(&config(Some("plain_qa"))).await.is_ok());
    for name in ["../x", "", "a/b", "a\\b", "..", "x y"] {
        let err = rt.validate(&config(Some(name))).await.unwrap_err();
        assert!(matches!(err, AgentError::BadFixture { .. }), "{name}");
    }
    let err = rt.validate(&config(Some("nope"))).await.unwrap_err();
    assert!(matches!(err, AgentError::FixtureNotFound(_)), "{err}");
    let err = rt.validate(&config(None)).await.unwrap_err();
    assert!(err.to_string().contains("--default-fixture"), "{err}");
    let rt = ReplayRuntime::new(FIXTURES.into(), Some("plain_qa".into()));
    assert!(rt.validate(&config(None)).await.is_ok());

    let dir = tempfile::tempdir().unwrap();
    let rt = ReplayRuntime::new(dir.path().into(), None);
    let bad_lines = [
        r#"{"kind":"nope"}"#,
        r#"{"kind":"delay","seconds":-1}"#,
        r#"{"kind":"outbound","message":{"type":"SystemMessage","subtype":"mcp_status"}}"#,
        r#"{"kind":"outbound","message":{"type":"AssistantMessage","id":"m"}}"#,
        r#"{"kind":"outbound","message":{"type":"StreamEvent","uuid":"u"}}"#,
        "not json",
    ];
    for line in bad_lines {
        let text = format!("{{\"kind\":\"expect_user_query\"}}\n\n{line}\n");
        std::fs::write(dir.path().join("bad.jsonl"), text).unwrap();
        match rt.validate(&config(Some("bad"))).await {
            Err(AgentError::BadFixture { reason, .. }) => assert!(reason.starts_with("line 3")),
            other => panic!("{line}: {other:?}"),
        }
    }
}

/// A streamed turn as the original's fixtures write it: `message_start`, text deltas paced by
/// `delay` steps, the completed message (here without an id: the streamed one's stands in), a
/// result. Then a second turn, whose deltas need their own `message_start`.
fn streamed_script(deltas: usize, period: f64) -> String {
    let event = |e: Value| {
        let message = json!({"type": "StreamEvent", "uuid": "u", "session_id": "s", "event": e});
        json!({"kind": "outbound", "message": message}).to_string()
    };
    let text = |t: &str| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}});
    let mut lines = vec![r#"{"kind":"expect_user_query"}"#.to_owned()];
    lines.push(event(
        json!({"type": "message_start", "message": {"id": "msg_1"}}),
    ));
    lines.push(event(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
    for i in 0..deltas {
        lines.push(format!(r#"{{"kind":"delay","seconds":{period}}}"#));
        lines.push(event(text(&format!("d{i} "))));
    }
    lines.push(event(json!({"type": "content_block_stop", "index": 0})));
    lines.push(event(
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}}),
    ));
    lines.push(event(json!({"type": "message_stop"})));
    lines.push(r#"{"kind":"outbound","message":{"type":"AssistantMessage","content":[{"type":"text","text":"all"}]}}"#.into());
    lines.push(r#"{"kind":"outbound","message":{"type":"ResultMessage","subtype":"success","session_id":"s"}}"#.into());
    lines.push(r#"{"kind":"expect_user_query"}"#.into());
    lines.push(event(text("unattributed")));
    lines.push(event(
        json!({"type": "message_start", "message": {"id": "msg_2"}}),
    ));
    lines.push(event(text("second")));
    lines.push(
        r#"{"kind":"outbound","message":{"type":"AssistantMessage","id":"msg_2","content":[]}}"#
            .into(),
    );
    lines.push(r#"{"kind":"outbound","message":{"type":"ResultMessage","subtype":"success","session_id":"s"}}"#.into());
    lines.join("\n")
}

fn delta_label(event: &AgentEvent) -> Option<String> {
    match event {
        AgentEvent::Delta { message_id, delta } => {
            assert_eq!(delta["type"], "text");
            Some(format!("{message_id}:{}", delta["text"].as_str().unwrap()))
        }
        _ => None,
    }
}

#[tokio::test]
async fn stream_events_play_as_deltas_of_the_streamed_message() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("streamed.jsonl"), streamed_script(3, 0.001)).unwrap();
    let mut h = start_in(dir.path(), "streamed", None).await;
    say(&h).await;
    for i in 0..3 {
        let label = delta_label(&next(&mut h).await);
        assert_eq!(label, Some(format!("msg_1:d{i} ")));
    }
    expect(&mut h, &["msg_1", "token:1", "success@s"]).await;
    say(&h).await;
    // The delta before turn 2's message_start belongs to no message and plays nothing.
    let label = delta_label(&next(&mut h).await);
    assert_eq!(label.as_deref(), Some("msg_2:second"));
    expect(&mut h, &["msg_2", "token:2", "success@s"]).await;

    // Resumed after turn 1, the second turn attributes its deltas the same way.
    let mut h = start_in(dir.path(), "streamed", Some("1")).await;
    say(&h).await;
    let label = delta_label(&next(&mut h).await);
    assert_eq!(label.as_deref(), Some("msg_2:second"));
    expect(&mut h, &["msg_2", "token:2", "success@s"]).await;
}

/// `delay` steps pace the deltas: at 40/s each delta is played after a 25 ms delay, and the
/// stream events that carry no text leave no step behind (they cost nothing at play time).
#[test]
fn delays_pace_deltas_at_the_scripted_rate() {
    let turns = parse(&streamed_script(40, 0.025)).unwrap();
    let steps: Vec<String> = turns[1]
        .iter()
        .map(|step| match step {
            Step::Delay(d) => format!("delay {}ms", d.as_millis()),
            Step::Emit(Scripted::Result(_)) => "result".into(),
            Step::Emit(Scripted::Assistant { id, .. }) => id.clone(),
            Step::Emit(scripted) => delta_label(&scripted.event()).unwrap(),
            other => format!("{other:?}"),
        })
        .collect();
    let mut expected = Vec::new();
    for i in 0..40 {
        expected.push("delay 25ms".to_owned());
        expected.push(format!("msg_1:d{i} "));
    }
    expected.extend(["msg_1".to_owned(), "result".to_owned()]);
    assert_eq!(steps, expected);
}

/// Sessions on one file share its parsed script while any plays it; a changed file is parsed
/// anew, so a script rewritten in place is never played stale.
#[test]
fn sessions_share_a_script_until_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.jsonl");
    std::fs::write(&path, streamed_script(2, 0.0)).unwrap();
    let scripts = Scripts::default();
    let (_, first) = scripts.read(&path, "s".into()).unwrap();
    let (_, second) = scripts.read(&path, "s".into()).unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    std::fs::write(&path, streamed_script(3, 0.0)).unwrap();
    let (_, changed) = scripts.read(&path, "s".into()).unwrap();
    assert!(!Arc::ptr_eq(&first, &changed));
    assert_eq!(
        changed[1].len(),
        first[1].len() + 2,
        "a delay and a delta more"
    );
    // Once nobody plays it, it is not kept.
    let weak = Arc::downgrade(&changed);
    drop((first, second, changed));
    assert!(weak.upgrade().is_none());
}

/// Loading runs on tokio's blocking pool; polled without a runtime it is an error, not a panic.
#[test]
fn loading_outside_a_runtime_fails_instead_of_panicking() {
    let rt = ReplayRuntime::new(FIXTURES.into(), None);
    let err = futures::executor::block_on(rt.validate(&config(Some("plain_qa")))).unwrap_err();
    assert!(matches!(err, AgentError::Unavailable(_)), "{err}");
}
