//! Permissions, questions and hook decisions: what the client answers is what the CLI gets.

use super::{open, say, tool, turn, FakeCli};
use crate::support::sse::SseStream;
use crate::support::{Api, TestDb};
use serde_json::{json, Value};

fn bash(id: &str, fake: Value) -> Value {
    tool(
        id,
        "Bash",
        json!({"command": "touch made.txt", "description": "Create a file"}),
        fake,
    )
}

fn scenario() -> Value {
    let suggestions = json!([
        {"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": "touch made.txt"}],
         "behavior": "allow", "destination": "localSettings"},
        {"type": "setMode", "mode": "acceptEdits", "destination": "session"}]);
    let context = json!({"permission_suggestions": suggestions, "blocked_path": "/srv/made.txt",
        "decision_reason": "Path is outside allowed working directories",
        "decision_reason_type": "workingDir", "description": "Create a file"});
    json!({"turns": [
        turn("ALLOW", vec![bash("tu_a", json!({"echo_input": true, "context": context})), say("ran")]),
        turn("DENY", vec![bash("tu_d", json!({})), say("understood")]),
        turn("PARK", vec![bash("tu_p", json!({})), say("never")]),
        turn("WITHDRAW", vec![bash("tu_w", json!({"cancel_after_ms": 200})), json!({"hang": true})]),
        turn("HOOKED", vec![bash("tu_h", json!({"output": "hi"})), say("after the hook")]),
    ]})
}

async fn request(stream: &mut SseStream, name: &str) -> Value {
    stream.until(name).await.pop().unwrap().data
}

async fn reply(api: &Api, id: &str, body: Value) -> u16 {
    api.input(id, body).await.as_u16()
}

#[tokio::test]
async fn allow_with_updated_input_and_permissions_runs_what_the_client_approved() {
    let fake = FakeCli::new(scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "ALLOW").await;
    let asked = request(&mut stream, "permission_request").await;
    assert_eq!(asked["correlation_id"], "tu_a");
    assert_eq!(asked["tool_name"], "Bash");
    let context = &asked["context"];
    assert_eq!(context["decision_reason_type"], "workingDir");
    assert_eq!(context["blocked_path"], "/srv/made.txt");
    assert_eq!(context["suggestions"][0]["destination"], "localSettings");
    let changed = json!({"command": "echo CHANGED", "description": "Create a file"});
    let allow = json!({"type": "permission_response", "correlation_id": "tu_a", "behavior": "allow",
        "updated_input": changed, "updated_permissions": context["suggestions"]});
    assert_eq!(reply(api, &id, allow.clone()).await, 204);
    // First reply wins.
    assert_eq!(reply(api, &id, allow).await, 409);
    let result = request(&mut stream, "tool_result").await;
    assert_eq!(
        result["output"],
        changed.to_string(),
        "the CLI ran the updated input"
    );
    assert_eq!(request(&mut stream, "result").await["subtype"], "success");

    let answer = &fake.responses()[0];
    assert_eq!(answer["subtype"], "success");
    let decision = &answer["response"];
    assert_eq!(decision["behavior"], "allow");
    assert_eq!(decision["updatedInput"], changed);
    // Suggestions come back scoped to the session: nothing is written to settings files.
    let updates = decision["updatedPermissions"].as_array().unwrap();
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|u| u["destination"] == "session"));
    server.stop().await;
}

#[tokio::test]
async fn plain_allow_sends_the_original_input_and_deny_sends_the_message() {
    let fake = FakeCli::new(scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "ALLOW").await;
    request(&mut stream, "permission_request").await;
    let allow =
        json!({"type": "permission_response", "correlation_id": "tu_a", "behavior": "allow"});
    assert_eq!(reply(api, &id, allow).await, 204);
    request(&mut stream, "result").await;

    api.say(&id, "DENY").await;
    request(&mut stream, "permission_request").await;
    let deny = json!({"type": "permission_response", "correlation_id": "tu_d", "behavior": "deny",
        "message": "No writes please"});
    assert_eq!(reply(api, &id, deny).await, 204);
    let events = stream.until("result").await;
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(
        result.data,
        json!({"tool_use_id": "tu_d", "output": "No writes please", "is_error": true})
    );
    let done = &events.last().unwrap().data;
    assert_eq!(
        done["subtype"], "success",
        "a plain deny lets the turn go on"
    );
    assert_eq!(done["permission_denials"][0]["tool_use_id"], "tu_d");

    let responses = fake.responses();
    assert_eq!(
        responses[0]["response"],
        json!({"behavior": "allow",
               "updatedInput": {"command": "touch made.txt", "description": "Create a file"}})
    );
    assert_eq!(
        responses[1]["response"],
        json!({"behavior": "deny", "message": "No writes please"})
    );
    server.stop().await;
}

#[tokio::test]
async fn interrupt_while_a_permission_waits_cancels_it() {
    let fake = FakeCli::new(scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "PARK").await;
    request(&mut stream, "permission_request").await;
    assert_eq!(api.input(&id, json!({"type": "interrupt"})).await, 204);
    let events = stream.until("result").await;
    let rejected = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(rejected.data["tool_use_id"], "tu_p");
    assert_eq!(rejected.data["is_error"], true);
    let result = &events.last().unwrap().data;
    assert_eq!(result["subtype"], "interrupted");
    assert_eq!(result["terminal_reason"], "aborted_tools");
    // The CLI withdrew the request: a late answer is a conflict, and never reaches the CLI.
    let late =
        json!({"type": "permission_response", "correlation_id": "tu_p", "behavior": "allow"});
    assert_eq!(reply(api, &id, late).await, 409);
    assert!(fake.responses().is_empty(), "{:?}", fake.responses());
    server.stop().await;
}

#[tokio::test]
async fn a_request_the_cli_withdraws_gets_409_while_the_turn_goes_on() {
    let fake = FakeCli::new(scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({})).await;
    api.say(&id, "WITHDRAW").await;
    request(&mut stream, "permission_request").await;
    // The fake withdraws after 200 ms, reports the tool as failed, and keeps the turn open.
    let failed = request(&mut stream, "tool_result").await;
    assert_eq!(failed["is_error"], true);
    let late =
        json!({"type": "permission_response", "correlation_id": "tu_w", "behavior": "allow"});
    assert_eq!(reply(api, &id, late).await, 409);
    assert!(fake.responses().is_empty());
    // The turn is still running; an interrupt ends it.
    assert_eq!(api.input(&id, json!({"type": "interrupt"})).await, 204);
    assert_eq!(
        request(&mut stream, "result").await["subtype"],
        "interrupted"
    );
    server.stop().await;
}

#[tokio::test]
async fn hook_decisions_go_to_the_client_and_back_to_the_cli() {
    let fake = FakeCli::new(scenario());
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let hooks = json!({"PreToolUse": [{"matcher": "Bash", "timeout": 30}], "Stop": [{}]});
    let (id, mut stream) = open(api, json!({"hooks": hooks})).await;
    api.say(&id, "HOOKED once").await;
    let asked = request(&mut stream, "hook_decision_request").await;
    assert_eq!(asked["hook_event"], "PreToolUse");
    assert_eq!(asked["hook_input"]["tool_name"], "Bash");
    assert_eq!(
        asked["hook_input"]["tool_input"]["command"],
        "touch made.txt"
    );
    let cid = asked["correlation_id"].clone();
    // A hook is answered with a permission_response; a question_response is the wrong type.
    let wrong = json!({"type": "question_response", "correlation_id": cid, "answers": {}});
    assert_eq!(reply(api, &id, wrong).await, 400);
    let deny = json!({"type": "permission_response", "correlation_id": cid, "behavior": "deny",
        "message": "hook says no"});
    assert_eq!(reply(api, &id, deny).await, 204);
    let result = request(&mut stream, "tool_result").await;
    assert_eq!(result["output"], "PreToolUse:Bash hook error: hook says no");
    assert_eq!(result["is_error"], true);
    // The Stop hook asks too; allowing it lets the turn end.
    let stop = request(&mut stream, "hook_decision_request").await;
    assert_eq!(stop["hook_event"], "Stop");
    let allow = json!({"type": "permission_response", "correlation_id": stop["correlation_id"],
        "behavior": "allow"});
    assert_eq!(reply(api, &id, allow).await, 204);
    assert_eq!(request(&mut stream, "result").await["subtype"], "success");

    // Allowed by the hook: the tool runs without a permission request.
    api.say(&id, "HOOKED twice").await;
    let asked = request(&mut stream, "hook_decision_request").await;
    let allow = json!({"type": "permission_response", "correlation_id": asked["correlation_id"],
        "behavior": "allow"});
    assert_eq!(reply(api, &id, allow).await, 204);
    let events = stream.until("hook_decision_request").await;
    assert!(!events.iter().any(|e| e.event == "permission_request"));
    let result = events.iter().find(|e| e.event == "tool_result").unwrap();
    assert_eq!(result.data["output"], "hi");
    let stop = events.last().unwrap().data["correlation_id"].clone();
    let allow = json!({"type": "permission_response", "correlation_id": stop, "behavior": "allow"});
    assert_eq!(reply(api, &id, allow).await, 204);
    request(&mut stream, "result").await;

    // Each registered matcher has its own callback id (the order follows the stored config).
    let init = &fake.control_requests("initialize")[0];
    let pre = &init["hooks"]["PreToolUse"][0];
    assert_eq!(
        (&pre["matcher"], &pre["timeout"]),
        (&json!("Bash"), &json!(30))
    );
    let stop = &init["hooks"]["Stop"][0];
    assert_eq!(stop["matcher"], Value::Null);
    assert_ne!(pre["hookCallbackIds"], stop["hookCallbackIds"]);
    let outputs: Vec<Value> = fake
        .responses()
        .iter()
        .map(|r| r["response"].clone())
        .collect();
    assert_eq!(
        outputs[0],
        json!({"hookSpecificOutput": {"hookEventName": "PreToolUse",
            "permissionDecision": "deny", "permissionDecisionReason": "hook says no"}})
    );
    assert_eq!(outputs[1], json!({}));
    assert_eq!(
        outputs[2]["hookSpecificOutput"]["permissionDecision"],
        "allow"
    );
    server.stop().await;
}

#[tokio::test]
async fn ask_user_question_answers_keep_the_questions() {
    let input = json!({"questions": [
        {"question": "Which color do you prefer?", "header": "Color", "multiSelect": false,
         "options": [{"label": "Red"}, {"label": "Blue"}]},
        {"question": "Which sizes?", "header": "Sizes", "multiSelect": true,
         "options": [{"label": "S"}, {"label": "M"}, {"label": "L"}]}]});
    let steps = vec![
        tool("tu_q", "AskUserQuestion", input.clone(), json!({})),
        say("noted"),
    ];
    // Even in acceptEdits mode a question is asked.
    let fake = FakeCli::new(json!({"turns": [turn("ASK", steps)]}));
    let db = TestDb::new().await;
    let server = fake.server(&db).await;
    let api = &server.api;
    let (id, mut stream) = open(api, json!({"permission_mode": "acceptEdits"})).await;
    api.say(&id, "ASK").await;
    let asked = request(&mut stream, "ask_user_question").await;
    assert_eq!(asked, json!({"correlation_id": "tu_q", "questions": input}));
    // A question is answered with a question_response.
    let wrong =
        json!({"type": "permission_response", "correlation_id": "tu_q", "behavior": "allow"});
    assert_eq!(reply(api, &id, wrong).await, 400);
    let answer = json!({"type": "question_response", "correlation_id": "tu_q",
        "answers": {"Which color do you prefer?": "Blue", "Sizes": ["S", "L"]}});
    assert_eq!(reply(api, &id, answer).await, 204);
    let result = request(&mut stream, "tool_result").await;
    assert_eq!(
        result["output"],
        "Your questions have been answered: \"Which color do you prefer?\"=\"Blue\", \"Which sizes?\"=\"S, L\". You can now continue with these answers in mind."
    );
    request(&mut stream, "result").await;
    let decision = &fake.responses()[0]["response"];
    assert_eq!(decision["behavior"], "allow");
    assert_eq!(decision["updatedInput"]["questions"], input["questions"]);
    assert_eq!(
        decision["updatedInput"]["answers"],
        json!({"Which color do you prefer?": "Blue", "Which sizes?": "S, L"})
    );
    server.stop().await;
}
