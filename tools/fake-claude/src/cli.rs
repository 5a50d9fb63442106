//! The fake CLI's state and its stdin pump: control requests are served whenever the fake
//! waits (between deltas, for a permission answer, when idle), as the real CLI does.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::Write;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub const MODES: &[&str] = &[
    "default",
    "manual",
    "acceptEdits",
    "plan",
    "bypassPermissions",
    "dontAsk",
    "auto",
];

/// Why a wait ended.
#[derive(Debug)]
pub enum Wake {
    /// The deadline passed (or, when waiting for nothing, a line was handled).
    Idle,
    /// The awaited control response arrived: its `response` object.
    Response(Value),
    /// An interrupt arrived during a turn (already answered).
    Interrupted,
    /// stdin reached EOF.
    Eof,
}

pub struct Hook {
    pub event: String,
    pub matcher: Option<String>,
    pub callback_id: String,
}

pub struct Cli {
    pub input: mpsc::UnboundedReceiver<Value>,
    pub eof: bool,
    pub session_id: String,
    pub model: String,
    pub mode: String,
    pub prompt_tool: bool,
    pub partial: bool,
    pub hooks: Vec<Hook>,
    pub queued: VecDeque<Value>,
    pub cost: f64,
    pub in_turn: bool,
    pub last_result_error: bool,
    pub no_init_response: bool,
    pub silent_controls: Vec<String>,
    pub init_delay_ms: u64,
    pub mcp_servers: Vec<Value>,
    pub cwd: String,
    /// The transcript's last entry with a uuid (the next one's `parentUuid`).
    pub last_entry: Option<String>,
    pub mirroring: crate::transcript::Mirroring,
}

impl Cli {
    pub fn new(input: mpsc::UnboundedReceiver<Value>, session_id: String, cost: f64) -> Cli {
        Cli {
            input,
            eof: false,
            session_id,
            model: "claude-sonnet-4-5".into(),
            mode: "default".into(),
            prompt_tool: false,
            partial: false,
            hooks: Vec::new(),
            queued: VecDeque::new(),
            cost,
            in_turn: false,
            last_result_error: false,
            no_init_response: false,
            silent_controls: Vec::new(),
            init_delay_ms: 0,
            mcp_servers: Vec::new(),
            cwd: std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            last_entry: None,
            mirroring: Default::default(),
        }
    }

    /// Writes one frame as one line.
    pub fn out(&self, frame: &Value) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{frame}");
        let _ = stdout.flush();
    }

    pub fn raw(&self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    pub fn uuid() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    /// A CLI → host control request; returns its id.
    pub fn request(&mut self, request: Value) -> String {
        let id = Self::uuid();
        self.out(&json!({"type": "control_request", "request_id": id, "request": request}));
        id
    }

    fn respond(&self, id: &Value, response: Option<Value>) {
        let mut body = json!({"subtype": "success", "request_id": id});
        if let Some(response) = response {
            body["response"] = response;
        }
        self.out(&json!({"type": "control_response", "response": body}));
    }

    fn respond_error(&self, id: &Value, error: &str, code: &str) {
        self.out(&json!({"type": "control_response", "response":
            {"subtype": "error", "request_id": id, "error": error, "error_code": code}}));
    }

    /// Serves stdin until `deadline` (or forever), the control response `awaiting`, an
    /// interrupt during a turn, or EOF.
    pub async fn wait(&mut self, deadline: Option<Instant>, awaiting: Option<&str>) -> Wake {
        loop {
            if self.eof {
                return Wake::Eof;
            }
            let line = match deadline {
                Some(deadline) => {
                    match tokio::time::timeout_at(deadline, self.input.recv()).await {
                        Ok(line) => line,
                        Err(_) => return Wake::Idle,
                    }
                }
                None => self.input.recv().await,
            };
            let Some(line) = line else {
                self.eof = true;
                return Wake::Eof;
            };
            if let Some(wake) = self.handle(line, awaiting).await {
                return wake;
            }
        }
    }

    async fn handle(&mut self, line: Value, awaiting: Option<&str>) -> Option<Wake> {
        match line["type"].as_str() {
            Some("user") => {
                if let Some(uuid) = line["uuid"].as_str() {
                    self.out(&json!({"type": "command_lifecycle", "command_uuid": uuid,
                        "state": "queued", "uuid": Self::uuid(), "session_id": self.session_id}));
                }
                self.queued.push_back(line);
                // Idle: the caller starts the turn. In a turn: it runs after this one.
                (!self.in_turn).then_some(Wake::Idle)
            }
            Some("control_response") => {
                let response = &line["response"];
                if awaiting.is_some() && response["request_id"].as_str() == awaiting {
                    return Some(Wake::Response(response.clone()));
                }
                None
            }
            Some("control_request") => self.control(&line, awaiting).await,
            _ => None,
        }
    }

    async fn control(&mut self, line: &Value, awaiting: Option<&str>) -> Option<Wake> {
        let id = &line["request_id"];
        let request = &line["request"];
        let subtype = request["subtype"].as_str().unwrap_or("");
        if self.silent_controls.iter().any(|s| s == subtype) {
            return None;
        }
        match subtype {
            "initialize" => {
                if self.no_init_response {
                    return None;
                }
                if self.init_delay_ms > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(self.init_delay_ms)).await;
                }
                self.register_hooks(&request["hooks"]);
                let mut response = json!({"commands": [], "agents": [],
                    "output_style": "default", "available_output_styles": ["default"],
                    "models": [], "account": {}, "claude_code_version": "2.1.330",
                    "pid": std::process::id(), "current_permission_mode": self.mode,
                    "session_state": "idle", "capabilities": ["interrupt_receipt_v1"]});
                if !request["hooks"].is_null() {
                    response["hooks_applied"] = true.into();
                }
                self.respond(id, Some(response));
                None
            }
            "interrupt" => {
                if self.in_turn {
                    if let Some(parked) = awaiting {
                        self.out(&json!({"type": "control_cancel_request", "request_id": parked}));
                    }
                    self.respond(id, Some(json!({"still_queued": []})));
                    Some(Wake::Interrupted)
                } else {
                    self.respond(id, Some(json!({"still_queued": []})));
                    None
                }
            }
            "set_permission_mode" => {
                let mode = request["mode"].as_str().unwrap_or("");
                if !MODES.contains(&mode) {
                    let error = "Cannot set permission mode: must be one of acceptEdits, auto, bypassPermissions, default, dontAsk, plan";
                    self.respond_error(id, error, "invalid_mode");
                } else if mode == "bypassPermissions" {
                    let error = "Cannot set permission mode to bypassPermissions because the session was not launched with --dangerously-skip-permissions";
                    self.respond_error(id, error, "bypass_not_launched");
                } else {
                    self.mode = mode.to_owned();
                    self.respond(id, Some(json!({"mode": mode})));
                    self.out(&json!({"type": "system", "subtype": "status", "status": null,
                        "permissionMode": mode, "uuid": Self::uuid(), "session_id": self.session_id}));
                }
                None
            }
            "set_model" => {
                let model = request["model"].as_str().unwrap_or("default").to_owned();
                self.out(&json!({"type": "user", "message": {"role": "user",
                    "content": format!("<local-command-stdout>Set model to {model}</local-command-stdout>")},
                    "session_id": self.session_id, "parent_tool_use_id": null,
                    "uuid": Self::uuid(), "isReplay": true}));
                self.model = model.clone();
                self.respond(id, Some(json!({"model": model})));
                None
            }
            "set_max_thinking_tokens" => {
                self.respond(id, None);
                None
            }
            "stop_task" => {
                self.respond(id, Some(json!({})));
                None
            }
            "mcp_status" => {
                self.respond(id, Some(json!({"mcpServers": []})));
                None
            }
            other => {
                let error = format!("Unsupported control request subtype: {other}");
                self.respond_error(id, &error, "unsupported_request");
                None
            }
        }
    }

    fn register_hooks(&mut self, hooks: &Value) {
        let Some(events) = hooks.as_object() else {
            return;
        };
        for (event, matchers) in events {
            for matcher in matchers.as_array().into_iter().flatten() {
                let ids = matcher["hookCallbackIds"].as_array();
                for id in ids.into_iter().flatten().filter_map(Value::as_str) {
                    self.hooks.push(Hook {
                        event: event.clone(),
                        matcher: matcher["matcher"].as_str().map(str::to_owned),
                        callback_id: id.to_owned(),
                    });
                }
            }
        }
    }
}
