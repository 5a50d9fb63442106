//! A small stand-in for the Anthropic Messages API, for the contract test with the real CLI
//! (`ANTHROPIC_BASE_URL` points at it). It answers `POST /v1/messages` as the real API does,
//! as an SSE stream when `stream: true`, with a scripted reply chosen from the conversation:
//! - the last user message carries a tool result → `done: <its text>`;
//! - the prompt contains `RUNBASH` → a Bash tool call that needs permission;
//! - the prompt contains `ASKQ` → an AskUserQuestion tool call;
//! - otherwise → `Hello from the fake API.`
//!
//! Tool calls are only scripted for requests that offer tools (the CLI's main loop), never for
//! its side requests (titles, summaries). Every request body is kept for assertions.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

pub const QUESTION: &str = "Which color do you prefer?";

#[derive(Clone, Default)]
pub struct FakeApi {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeApi {
    pub async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = FakeApi {
            url: format!("http://{}", listener.local_addr().unwrap()),
            requests: Arc::default(),
        };
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .fallback(not_found)
            .with_state(api.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        api
    }

    /// The requests of the CLI's main loop (those offering tools).
    pub fn main_requests(&self) -> Vec<Value> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .filter(|r| r["tools"].as_array().is_some_and(|t| !t.is_empty()))
            .cloned()
            .collect()
    }
}

async fn count_tokens() -> Json<Value> {
    Json(json!({"input_tokens": 25}))
}

async fn not_found() -> Response {
    let body =
        json!({"type": "error", "error": {"type": "not_found_error", "message": "not here"}});
    (StatusCode::NOT_FOUND, Json(body)).into_response()
}

async fn messages(State(api): State<FakeApi>, Json(request): Json<Value>) -> Response {
    api.requests.lock().unwrap().push(request.clone());
    let blocks = reply(&request);
    let model = request["model"].as_str().unwrap_or("claude-sonnet-4-5");
    let id = format!("msg_{}", &uuid::Uuid::new_v4().simple().to_string()[..20]);
    let stop_reason = if blocks.iter().any(|b| b["type"] == "tool_use") {
        "tool_use"
    } else {
        "end_turn"
    };
    let usage = json!({"input_tokens": 25, "output_tokens": 12,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0});
    if request["stream"] != true {
        let message = json!({"id": id, "type": "message", "role": "assistant", "model": model,
            "content": blocks, "stop_reason": stop_reason, "stop_sequence": null, "usage": usage});
        return Json(message).into_response();
    }
    let mut sse = String::new();
    let mut event = |name: &str, data: Value| {
        sse.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    event(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
    );
    event("ping", json!({"type": "ping"}));
    for (index, block) in blocks.iter().enumerate() {
        let (start, deltas) = if block["type"] == "tool_use" {
            let input = block["input"].to_string();
            let (a, b) = input.split_at(input.len() / 2);
            let start =
                json!({"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}});
            let deltas =
                [a, b].map(|part| json!({"type": "input_json_delta", "partial_json": part}));
            (start, deltas.to_vec())
        } else {
            let text = block["text"].as_str().unwrap_or_default();
            let cut = text
                .char_indices()
                .nth(text.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            let (a, b) = text.split_at(cut);
            let deltas = [a, b].map(|part| json!({"type": "text_delta", "text": part}));
            (json!({"type": "text", "text": ""}), deltas.to_vec())
        };
        event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        );
    }
    event(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null},
            "usage": {"output_tokens": 12}}),
    );
    event("message_stop", json!({"type": "message_stop"}));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        sse,
    )
        .into_response()
}

/// The scripted reply to a request.
fn reply(request: &Value) -> Vec<Value> {
    let text = |t: &str| json!({"type": "text", "text": t});
    let offers_tools = request["tools"].as_array().is_some_and(|t| !t.is_empty());
    let last = request["messages"]
        .as_array()
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or_default();
    let blocks: Vec<Value> = match &last["content"] {
        Value::Array(blocks) => blocks.clone(),
        Value::String(s) => vec![text(s)],
        _ => Vec::new(),
    };
    let prompt: String = blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let tool_id = || format!("toolu_{}", &uuid::Uuid::new_v4().simple().to_string()[..20]);
    // A new prompt wins over a tool result in the same message (after an interrupt, the CLI
    // merges the interrupted tool's result into the next prompt's message).
    if offers_tools && prompt.contains("RUNBASH") {
        return vec![
            text("I will run it."),
            json!({"type": "tool_use", "id": tool_id(), "name": "Bash",
                   "input": {"command": "touch made.txt && echo hi", "description": "Create a file"}}),
        ];
    }
    if offers_tools && prompt.contains("ASKQ") {
        return vec![
            json!({"type": "tool_use", "id": tool_id(), "name": "AskUserQuestion",
            "input": {"questions": [{"question": QUESTION, "header": "Color", "multiSelect": false,
                "options": [{"label": "Red", "description": "warm"},
                            {"label": "Blue", "description": "cool"}]}]}}),
        ];
    }
    if let Some(result) = blocks.iter().find(|b| b["type"] == "tool_result") {
        let output = match &result["content"] {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        };
        return vec![text(&format!("done: {output}"))];
    }
    vec![text("Hello from the fake API.")]
}
