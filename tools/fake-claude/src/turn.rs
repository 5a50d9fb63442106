//! One turn of the fake CLI, frame for frame as the real CLI writes them (`docs/claude-cli.md` §6 and
//! §4, and the recorded transcripts): init, streamed messages, tools with hooks and permission requests,
//! interrupts, and the result.

use crate::cli::{Cli, Wake};
use crate::scenario::{prompt_text, Scenario};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// Why a turn ends early.
pub enum Stop {
    /// An interrupt; `tools`: while a tool waited for permission.
    Interrupted { tools: bool },
    /// A permission denied with `interrupt: true`.
    DenyInterrupt,
    /// A hook answered `continue: false`.
    HookStopped,
    /// The scenario crashes the CLI with this exit code.
    Exit(i32),
}

#[derive(Default)]
struct Turn {
    last_text: String,
    stop_reason: Option<String>,
    messages: u64,
    denials: Vec<Value>,
}

const REJECTED: &str = "The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it was a file edit, the new_string was NOT written to the file). STOP what you are doing and wait for the user to tell you how to proceed.";

/// Runs a turn for a user message; `Some(code)` when the scenario crashes the CLI.
pub async fn run(cli: &mut Cli, scenario: &Scenario, message: Value) -> Option<i32> {
    cli.in_turn = true;
    let started = Instant::now();
    let uuid = message["uuid"].as_str().map(str::to_owned);
    let prompt = prompt_text(&message["message"]["content"]);
    if let Some(uuid) = &uuid {
        lifecycle(cli, uuid, "started");
    }
    crate::transcript::user(cli, &prompt);
    let mut turn = Turn::default();
    let script = scenario.turn_for(&prompt);
    if let Some(servers) = script.mcp_servers {
        cli.mcp_servers = servers;
    }
    let mut outcome = hooks(cli, "UserPromptSubmit", None, json!({"prompt": prompt}))
        .await
        .map(drop);
    let tools = ["Task", "AskUserQuestion", "Bash", "Edit", "Read", "Write"];
    cli.out(&json!({"type": "system", "subtype": "init", "cwd": cli.cwd,
        "session_id": cli.session_id, "tools": tools, "mcp_servers": cli.mcp_servers,
        "model": cli.model, "permissionMode": cli.mode, "apiKeySource": "ANTHROPIC_API_KEY",
        "claude_code_version": "2.1.330", "uuid": Cli::uuid()}));
    if outcome.is_ok() {
        for step in script.steps {
            outcome = self::step(cli, &mut turn, &step).await;
            if outcome.is_err() {
                break;
            }
        }
    }
    if outcome.is_ok() {
        let last = json!({"stop_hook_active": false, "last_assistant_message": turn.last_text});
        outcome = hooks(cli, "Stop", None, last).await.map(drop);
    }
    let elapsed = started.elapsed().as_millis() as u64;
    let state = match outcome {
        Ok(()) => {
            result(cli, &turn, elapsed, None);
            "completed"
        }
        Err(Stop::Exit(code)) => return Some(code),
        Err(stop) => {
            let reason = match stop {
                Stop::Interrupted { tools: false } => "aborted_streaming",
                Stop::HookStopped => "hook_stopped",
                _ => "aborted_tools",
            };
            result(cli, &turn, elapsed, Some(reason));
            "cancelled"
        }
    };
    if let Some(uuid) = &uuid {
        lifecycle(cli, uuid, state);
    }
    cli.in_turn = false;
    None
}

fn lifecycle(cli: &Cli, uuid: &str, state: &str) {
    cli.out(
        &json!({"type": "command_lifecycle", "command_uuid": uuid, "state": state,
        "uuid": Cli::uuid(), "session_id": cli.session_id}),
    );
}

async fn step(cli: &mut Cli, turn: &mut Turn, step: &Value) -> Result<(), Stop> {
    if step.get("assistant").is_some() {
        return assistant(cli, turn, step).await;
    }
    if let Some(frame) = step.get("frame") {
        cli.out(frame);
    } else if let Some(text) = step["raw"].as_str() {
        cli.raw(text);
    } else if let Some(n) = step["raw_bytes"].as_u64() {
        cli.raw(&"x".repeat(n as usize));
    } else if let Some(line) = step["stderr"].as_str() {
        eprintln!("{line}");
    } else if let Some(code) = step["exit"].as_i64() {
        return Err(Stop::Exit(code as i32));
    } else if let Some(servers) = step["mcp_servers"].as_array() {
        cli.mcp_servers = servers.clone();
    } else if let Some(hang) = step.get("hang") {
        let deaf = hang == "ignore_interrupt";
        loop {
            match cli.wait(None, None).await {
                Wake::Interrupted if !deaf => return Err(Stop::Interrupted { tools: false }),
                Wake::Eof => std::future::pending::<()>().await,
                _ => {}
            }
        }
    } else if let Some(ms) = step["delay_ms"].as_u64() {
        pause(cli, ms).await?;
    }
    Ok(())
}

/// Waits `ms`, serving control requests; an interrupt ends the turn, EOF does not.
async fn pause(cli: &mut Cli, ms: u64) -> Result<(), Stop> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        match cli.wait(Some(deadline), None).await {
            Wake::Interrupted => return Err(Stop::Interrupted { tools: false }),
            Wake::Eof => {
                tokio::time::sleep_until(deadline).await;
                return Ok(());
            }
            Wake::Idle if Instant::now() >= deadline => return Ok(()),
            _ => {}
        }
    }
}

fn stream(cli: &Cli, id: &str, event: Value) {
    if cli.partial {
        cli.out(
            &json!({"type": "stream_event", "event": event, "session_id": cli.session_id,
            "parent_tool_use_id": null, "uuid": Cli::uuid(), "api_message_id": id}),
        );
    }
}

fn assistant_frame(cli: &Cli, id: &str, block: &Value, aborted: bool) -> Value {
    let mut frame = json!({"type": "assistant", "message": {"id": id, "type": "message",
        "role": "assistant", "model": cli.model, "content": [block], "stop_reason": null,
        "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}},
        "parent_tool_use_id": null, "session_id": cli.session_id, "uuid": Cli::uuid()});
    if aborted {
        frame["aborted"] = true.into();
    }
    frame
}

/// One API message: streamed blocks, an `assistant` frame per block, then its tools.
async fn assistant(cli: &mut Cli, turn: &mut Turn, step: &Value) -> Result<(), Stop> {
    let blocks = step["assistant"].as_array().cloned().unwrap_or_default();
    let id = step["id"].as_str().map_or_else(
        || format!("msg_{}", &uuid::Uuid::new_v4().simple().to_string()[..20]),
        str::to_owned,
    );
    let delay = step["delay_ms"].as_u64().unwrap_or(0);
    let chunk = step["chunk"].as_u64().unwrap_or(8).max(1) as usize;
    let has_tool = blocks.iter().any(|b| b["type"] == "tool_use");
    let stop_reason = step["stop_reason"]
        .as_str()
        .unwrap_or(if has_tool { "tool_use" } else { "end_turn" })
        .to_owned();
    let start = json!({"type": "message_start", "message": {"id": id, "type": "message",
        "role": "assistant", "model": cli.model, "content": [], "stop_reason": null}});
    stream(cli, &id, start);
    turn.messages += 1;
    for (index, block) in blocks.iter().enumerate() {
        let mut block = block.clone();
        if let Some(object) = block.as_object_mut() {
            object.remove("fake");
        }
        if block["type"] == "text" {
            let text = block["text"].as_str().unwrap_or_default().to_owned();
            let start = json!({"type": "text", "text": ""});
            stream(
                cli,
                &id,
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            );
            let chars: Vec<char> = text.chars().collect();
            let mut sent = String::new();
            for piece in chars.chunks(chunk) {
                if delay > 0 {
                    if let Err(stop) = pause(cli, delay).await {
                        if !sent.is_empty() {
                            let partial = json!({"type": "text", "text": sent});
                            cli.out(&assistant_frame(cli, &id, &partial, true));
                        }
                        interrupted_text(cli, "[Request interrupted by user]");
                        return Err(stop);
                    }
                }
                let piece: String = piece.iter().collect();
                sent.push_str(&piece);
                let delta = json!({"type": "text_delta", "text": piece});
                stream(
                    cli,
                    &id,
                    json!({"type": "content_block_delta", "index": index, "delta": delta}),
                );
            }
            turn.last_text = text;
        } else if block["type"] == "tool_use" {
            let start =
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
            stream(
                cli,
                &id,
                json!({"type": "content_block_start", "index": index, "content_block": start}),
            );
            let partial_json = block["input"].to_string();
            let delta = json!({"type": "input_json_delta", "partial_json": partial_json});
            stream(
                cli,
                &id,
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        cli.out(&assistant_frame(cli, &id, &block, false));
        stream(
            cli,
            &id,
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    let delta = json!({"stop_reason": stop_reason, "stop_sequence": null});
    stream(
        cli,
        &id,
        json!({"type": "message_delta", "delta": delta, "usage": {"output_tokens": 12}}),
    );
    stream(cli, &id, json!({"type": "message_stop"}));
    turn.stop_reason = Some(stop_reason);
    for block in blocks.iter().filter(|b| b["type"] == "tool_use") {
        crate::tools::run(cli, &mut turn.denials, block).await?;
    }
    Ok(())
}

pub fn interrupted_text(cli: &Cli, text: &str) {
    cli.out(&json!({"type": "user", "message": {"role": "user",
        "content": [{"type": "text", "text": text}]}, "parent_tool_use_id": null,
        "session_id": cli.session_id, "uuid": Cli::uuid()}));
}

pub fn rejected_result(cli: &Cli, tool_use_id: &Value) {
    tool_result(cli, tool_use_id, &json!(REJECTED), true);
}

pub fn tool_result(cli: &Cli, tool_use_id: &Value, output: &Value, is_error: bool) {
    cli.out(&json!({"type": "user", "message": {"role": "user", "content": [
        {"tool_use_id": tool_use_id, "type": "tool_result", "content": output, "is_error": is_error}]},
        "parent_tool_use_id": null, "session_id": cli.session_id, "uuid": Cli::uuid(),
        "tool_use_result": output}));
}

/// Calls every registered hook of `event` matching `tool` and returns their outputs; an
/// output with `continue: false` stops the turn.
pub async fn hooks(
    cli: &mut Cli,
    event: &str,
    tool: Option<(&str, &Value)>,
    input: Value,
) -> Result<Vec<Value>, Stop> {
    let ids: Vec<String> = cli
        .hooks
        .iter()
        .filter(|h| h.event == event)
        .filter(|h| match (&h.matcher, tool) {
            (Some(matcher), Some((name, _))) => matcher.split('|').any(|m| m == name),
            _ => true,
        })
        .map(|h| h.callback_id.clone())
        .collect();
    let mut outputs = Vec::new();
    for callback_id in ids {
        let mut full = json!({"session_id": cli.session_id, "cwd": cli.cwd,
            "transcript_path": format!("/fake/{}.jsonl", cli.session_id),
            "permission_mode": cli.mode, "hook_event_name": event});
        for (k, v) in input.as_object().into_iter().flatten() {
            full[k] = v.clone();
        }
        let tool_use_id = tool.map_or_else(|| Cli::uuid().into(), |(_, id)| id.clone());
        let request = json!({"subtype": "hook_callback", "callback_id": callback_id,
            "input": full, "tool_use_id": tool_use_id});
        let request_id = cli.request(request);
        let output = match cli.wait(None, Some(&request_id)).await {
            Wake::Response(r) => r.get("response").cloned().unwrap_or_else(|| json!({})),
            Wake::Interrupted => return Err(Stop::Interrupted { tools: false }),
            _ => json!({}),
        };
        if output["continue"] == false {
            return Err(Stop::HookStopped);
        }
        outputs.push(output);
    }
    Ok(outputs)
}

fn result(cli: &mut Cli, turn: &Turn, elapsed_ms: u64, aborted: Option<&str>) {
    let success = aborted.is_none();
    if success {
        cli.cost += 0.001;
    }
    let mut frame = json!({"type": "result",
        "subtype": if success { "success" } else { "error_during_execution" },
        "is_error": !success, "duration_ms": elapsed_ms, "duration_api_ms": elapsed_ms / 2,
        "num_turns": turn.messages, "stop_reason": turn.stop_reason,
        "terminal_reason": aborted.unwrap_or("completed"), "session_id": cli.session_id,
        "total_cost_usd": cli.cost, "usage": {"input_tokens": 25, "output_tokens": 12},
        "modelUsage": {cli.model.clone(): {"inputTokens": 25, "outputTokens": 12, "costUSD": cli.cost}},
        "permission_denials": turn.denials, "uuid": Cli::uuid()});
    if success {
        frame["result"] = turn.last_text.clone().into();
    } else {
        frame["errors"] = json!([format!("Turn ended: {}", aborted.unwrap_or_default())]);
    }
    cli.last_result_error = !success;
    crate::transcript::turn_end(cli, &turn.last_text);
    cli.out(&frame);
}
