//! A tool call of the fake CLI (`docs/claude-cli.md` §5.1–§5.3): `PreToolUse` hooks, the permission
//! decision (mode, hook, or a `can_use_tool` request answered by the host), `PostToolUse`
//! hooks, then the tool result.

use crate::cli::{Cli, Wake};
use crate::turn::{hooks, interrupted_text, rejected_result, tool_result, Stop};
use serde_json::{json, Value};

pub async fn run(cli: &mut Cli, denials: &mut Vec<Value>, block: &Value) -> Result<(), Stop> {
    let name = block["name"].as_str().unwrap_or_default().to_owned();
    let id = block["id"].clone();
    let input = block["input"].clone();
    let fake = block.get("fake").cloned().unwrap_or_else(|| json!({}));
    let mut ask = fake["ask"].as_bool().unwrap_or(true);
    let mut hook_reason = None;
    let pre = json!({"tool_name": name, "tool_input": input, "tool_use_id": id});
    for output in hooks(cli, "PreToolUse", Some((&name, &id)), pre).await? {
        let specific = &output["hookSpecificOutput"];
        let reason = specific["permissionDecisionReason"].as_str().unwrap_or("");
        match specific["permissionDecision"].as_str() {
            Some("deny") => {
                let text = format!("PreToolUse:{name} hook error: {reason}");
                tool_result(cli, &id, &json!(text), true);
                denials.push(json!({"tool_name": name, "tool_use_id": id, "tool_input": input}));
                return Ok(());
            }
            Some("allow") => ask = false,
            Some("ask") => {
                ask = true;
                hook_reason = Some(reason.to_owned());
            }
            _ => {}
        }
    }
    let edits = name == "Write" || name == "Edit";
    if cli.mode == "bypassPermissions" || (cli.mode == "acceptEdits" && edits) {
        ask = false;
    }
    if name == "AskUserQuestion" {
        ask = true;
    }
    let mut used = input.clone();
    let mut output = fake.get("output").cloned().unwrap_or_else(|| json!("ok"));
    let mut is_error = fake["is_error"].as_bool().unwrap_or(false);
    if ask && !cli.prompt_tool {
        cli.out(
            &json!({"type": "system", "subtype": "permission_denied", "tool_name": name,
            "tool_use_id": id, "session_id": cli.session_id, "uuid": Cli::uuid()}),
        );
        let text =
            format!("Claude requested permissions to use {name}, but you haven't granted it yet.");
        tool_result(cli, &id, &json!(text), true);
        return Ok(());
    }
    if ask {
        let mut request = json!({"subtype": "can_use_tool", "tool_name": name,
            "display_name": name, "input": input, "tool_use_id": id});
        for (k, v) in fake["context"].as_object().into_iter().flatten() {
            request[k] = v.clone();
        }
        if let Some(reason) = hook_reason {
            request["decision_reason"] = reason.into();
            request["decision_reason_type"] = "hook".into();
        }
        if name == "AskUserQuestion" {
            request["requires_user_interaction"] = true.into();
        }
        let request_id = cli.request(request);
        // `cancel_after_ms`: the CLI withdraws its own request (as on a hook timeout).
        let cancel_at = fake["cancel_after_ms"]
            .as_u64()
            .map(|ms| tokio::time::Instant::now() + std::time::Duration::from_millis(ms));
        match cli.wait(cancel_at, Some(&request_id)).await {
            Wake::Response(response) if response["subtype"] == "success" => {
                let decision = &response["response"];
                if decision["behavior"] == "allow" {
                    used = decision
                        .get("updatedInput")
                        .cloned()
                        .unwrap_or(input.clone());
                    apply_updates(cli, &decision["updatedPermissions"]);
                    if name == "AskUserQuestion" {
                        output = json!(answered(&used["answers"]));
                    }
                } else {
                    denials
                        .push(json!({"tool_name": name, "tool_use_id": id, "tool_input": input}));
                    if decision["interrupt"] == true {
                        rejected_result(cli, &id);
                        interrupted_text(cli, "[Request interrupted by user for tool use]");
                        return Err(Stop::DenyInterrupt);
                    }
                    output = decision.get("message").cloned().unwrap_or_default();
                    is_error = true;
                }
            }
            Wake::Response(response) => {
                let error = response["error"].as_str().unwrap_or_default();
                output = json!(format!("Tool permission request failed: Error: {error}"));
                is_error = true;
            }
            Wake::Interrupted => {
                rejected_result(cli, &id);
                interrupted_text(cli, "[Request interrupted by user for tool use]");
                return Err(Stop::Interrupted { tools: true });
            }
            Wake::Idle => {
                cli.out(&json!({"type": "control_cancel_request", "request_id": request_id}));
                output = json!("Permission request was withdrawn.");
                is_error = true;
            }
            Wake::Eof => {
                output = json!("Tool permission request failed: AbortError: Tool permission stream closed before response received");
                is_error = true;
            }
        }
    }
    if fake["echo_input"] == true && !is_error {
        output = json!(used.to_string());
    }
    let post = json!({"tool_name": name, "tool_input": used, "tool_use_id": id,
        "tool_response": output});
    hooks(cli, "PostToolUse", Some((&name, &id)), post).await?;
    tool_result(cli, &id, &output, is_error);
    Ok(())
}

/// `setMode` updates take effect at once (and are announced), as in the real CLI.
fn apply_updates(cli: &mut Cli, updates: &Value) {
    for update in updates.as_array().into_iter().flatten() {
        if update["type"] == "setMode" {
            if let Some(mode) = update["mode"].as_str() {
                cli.mode = mode.to_owned();
                cli.out(
                    &json!({"type": "system", "subtype": "status", "status": null,
                    "permissionMode": mode, "uuid": Cli::uuid(), "session_id": cli.session_id}),
                );
            }
        }
    }
}

fn answered(answers: &Value) -> String {
    let pairs: Vec<String> = answers
        .as_object()
        .into_iter()
        .flatten()
        .map(|(q, a)| format!("\"{q}\"=\"{}\"", a.as_str().unwrap_or_default()))
        .collect();
    format!(
        "Your questions have been answered: {}. You can now continue with these answers in mind.",
        pairs.join(", ")
    )
}
