use super::*;
use serde_json::json;
use std::time::Duration;

fn tool(input: Value) -> Answer {
    Answer::Tool { input }
}

fn allow(updated_input: Option<Value>, updated_permissions: Option<Value>) -> Decision {
    Decision::Allow {
        updated_input,
        updated_permissions,
    }
}

#[test]
fn allow_always_carries_the_input() {
    let input = json!({"command": "touch made.txt", "description": "Create a file"});
    assert_eq!(
        response(&tool(input.clone()), allow(None, None)),
        json!({"behavior": "allow", "updatedInput": input})
    );
    let changed = json!({"command": "echo CHANGED"});
    assert_eq!(
        response(&tool(input), allow(Some(changed.clone()), None)),
        json!({"behavior": "allow", "updatedInput": changed})
    );
}

#[test]
fn permission_updates_are_session_scoped_and_malformed_ones_dropped() {
    let updates = json!([
        {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test"},
                                       {"toolName": "Read", "ruleContent": null}],
         "behavior": "allow", "destination": "localSettings"},
        {"type": "setMode", "mode": "acceptEdits", "destination": "userSettings"},
        "nonsense",
        {"no_type": true},
    ]);
    let out = response(&tool(json!({})), allow(None, Some(updates)));
    assert_eq!(
        out["updatedPermissions"],
        json!([
            {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "npm test"},
                                           {"toolName": "Read"}],
             "behavior": "allow", "destination": "session"},
            {"type": "setMode", "mode": "acceptEdits", "destination": "session"},
        ])
    );
    let none = response(&tool(json!({})), allow(None, Some(json!("x"))));
    assert!(none.get("updatedPermissions").is_none());
}

#[test]
fn deny_carries_a_message_and_the_interrupt_flag() {
    let deny = |message: Option<&str>, interrupt| Decision::Deny {
        message: message.map(Into::into),
        interrupt,
    };
    assert_eq!(
        response(&tool(json!({})), deny(Some("No writes please"), false)),
        json!({"behavior": "deny", "message": "No writes please"})
    );
    assert_eq!(
        response(&tool(json!({})), deny(None, true)),
        json!({"behavior": "deny", "message": DENIED, "interrupt": true})
    );
}

#[test]
fn answers_are_keyed_by_question_text_next_to_the_questions() {
    let input = json!({"questions": [
        {"question": "Which color do you prefer?", "header": "Color", "multiSelect": false,
         "options": [{"label": "Red"}, {"label": "Blue"}]},
        {"question": "Which sizes?", "header": "Size", "multiSelect": true,
         "options": [{"label": "S"}, {"label": "M"}]}]});
    let answer = |answers: Value| response(&tool(input.clone()), Decision::Answer { answers });
    let expected = json!({"Which color do you prefer?": "Blue", "Which sizes?": "S, M"});
    for answers in [
        json!({"Which color do you prefer?": "Blue", "Which sizes?": ["S", "M"]}),
        json!({"Color": "Blue", "Size": "S, M"}),
        json!({"0": {"label": "Blue"}, "1": [{"label": "S"}, {"label": "M"}]}),
        json!(["Blue", ["S", "M"]]),
    ] {
        let out = answer(answers.clone());
        assert_eq!(out["behavior"], "allow", "{answers}");
        assert_eq!(out["updatedInput"]["answers"], expected, "{answers}");
        assert_eq!(out["updatedInput"]["questions"], input["questions"]);
    }
    let one = json!({"questions": [{"question": "Name?", "options": []}]});
    let out = response(
        &tool(one),
        Decision::Answer {
            answers: json!("Ada"),
        },
    );
    assert_eq!(out["updatedInput"]["answers"], json!({"Name?": "Ada"}));
}

#[test]
fn hook_decisions_become_hook_outputs() {
    let hook = |event: &str| Answer::Hook {
        event: event.into(),
    };
    let deny = Decision::Deny {
        message: Some("hook says no".into()),
        interrupt: false,
    };
    assert_eq!(
        response(&hook("PreToolUse"), deny.clone()),
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": "deny", "permissionDecisionReason": "hook says no"}})
    );
    assert_eq!(
        response(&hook("PreToolUse"), allow(Some(json!({"a": 1})), None)),
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": "allow", "updatedInput": {"a": 1}}})
    );
    assert_eq!(response(&hook("Stop"), allow(None, None)), json!({}));
    assert_eq!(
        response(&hook("UserPromptSubmit"), deny),
        json!({"decision": "block", "reason": "hook says no"})
    );
    let stop = Decision::Deny {
        message: Some("enough".into()),
        interrupt: true,
    };
    let out = response(&hook("PermissionRequest"), stop);
    assert_eq!(out["continue"], false);
    assert_eq!(out["stopReason"], "enough");
    assert_eq!(
        out["hookSpecificOutput"]["decision"],
        json!({"behavior": "deny", "message": "enough", "interrupt": true})
    );
}

#[tokio::test]
async fn parked_requests_resolve_in_any_order_and_cancel_drops_the_receiver() {
    let mut parked = Parked::default();
    let first = parked.park("r1", tool(json!({"n": 1})));
    let second = parked.park("r2", tool(json!({"n": 2})));
    let third = parked.park("r3", tool(json!({})));
    second.send(allow(None, None)).unwrap();
    let (id, answer, decision) = parked.next().await;
    assert_eq!(id, "r2");
    assert_eq!(answer, tool(json!({"n": 2})));
    assert!(decision.is_some());
    // Withdrawn: the session's sender sees it closed at once (its reply will get 409).
    assert!(parked.cancel("r1"));
    assert!(first.is_closed());
    assert!(!parked.cancel("r1"));
    // A sender dropped by the session reads as no decision.
    drop(third);
    let (id, _, decision) = parked.next().await;
    assert_eq!((id.as_str(), decision), ("r3", None));
    // Nothing left: waits forever.
    let nothing = tokio::time::timeout(Duration::from_millis(20), parked.next()).await;
    assert!(nothing.is_err());
}

#[test]
fn permission_context_carries_the_cli_reasons_under_wire_names() {
    let request = json!({"subtype": "can_use_tool", "tool_name": "Write", "display_name": "Write",
        "input": {"file_path": "/x"}, "description": "/x",
        "permission_suggestions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}],
        "decision_reason": "Path is outside allowed working directories",
        "decision_reason_type": "workingDir", "blocked_path": null, "tool_use_id": "toolu_1"});
    assert_eq!(
        permission_context(&request),
        json!({"tool_use_id": "toolu_1",
               "suggestions": [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}],
               "decision_reason": "Path is outside allowed working directories",
               "decision_reason_type": "workingDir", "display_name": "Write", "description": "/x"})
    );
}
