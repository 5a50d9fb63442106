//! Replay scripts: parsing the fixture format (`docs/wire-protocol.md`, "Fixture format of the
//! replay agent") into steps, and sharing each parsed script between the sessions that play it.
//!
//! Why shared: a session used to parse and keep its own copy, and a long script is large once
//! parsed (a step per line, a JSON tree per message): with the capacity benchmark's five
//! streamed turns of 100 deltas, server RSS per live session was 683 KiB, against 177 KiB with
//! one shared copy (400 sessions, release build), where a real agent keeps nothing of what it
//! has yet to say. Sessions now share one immutable
//! [`Script`] per file and copy each event out as they play it; a file that changed is parsed
//! anew (the cache compares the text), and a script nobody plays any more is dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::stream;
use crate::agent::{AgentError, AgentEvent, Ask, AskKind, Decision};

/// A parsed script: `[0]` is the prelude (possibly empty), then one step list per turn.
pub(super) type Script = Vec<Vec<Step>>;

#[derive(Debug)]
pub(super) enum Step {
    /// `expect_user_query`; only seen while parsing, where it starts a new turn.
    Turn,
    Emit(Scripted),
    /// A system message the replay agent does not translate (its subtype).
    Skip(String),
    Ask(Asked),
    Delay(Duration),
}

/// The agent events a script can hold; each play emits a copy.
#[derive(Debug, Clone)]
pub(super) enum Scripted {
    Delta {
        message_id: String,
        delta: Value,
    },
    Assistant {
        id: String,
        content: Vec<Value>,
        model: Option<String>,
        stop_reason: Option<String>,
    },
    ToolResults {
        blocks: Vec<Value>,
    },
    Result(Map<String, Value>),
    McpStatus {
        server_name: String,
        status: String,
    },
}

impl Scripted {
    pub(super) fn event(&self) -> AgentEvent {
        match self.clone() {
            Scripted::Delta { message_id, delta } => AgentEvent::Delta { message_id, delta },
            Scripted::Assistant {
                id,
                content,
                model,
                stop_reason,
            } => AgentEvent::Assistant {
                id,
                content,
                model,
                stop_reason,
            },
            Scripted::ToolResults { blocks } => AgentEvent::ToolResults { blocks },
            Scripted::Result(result) => AgentEvent::Result(result),
            Scripted::McpStatus {
                server_name,
                status,
            } => AgentEvent::McpStatus {
                server_name,
                status,
            },
        }
    }
}

/// A scripted `callback_expect`: an [`Ask`] once it is played with its reply channel.
#[derive(Debug)]
pub(super) struct Asked {
    kind: AskKind,
    correlation_id: String,
    tool_name: String,
    input: Value,
    context: Value,
}

impl Asked {
    pub(super) fn ask(&self, reply: oneshot::Sender<Decision>) -> Ask {
        Ask {
            kind: self.kind,
            correlation_id: self.correlation_id.clone(),
            tool_name: self.tool_name.clone(),
            input: self.input.clone(),
            context: self.context.clone(),
            reply,
        }
    }
}

/// The scripts in play, by path, with the text each was parsed from.
#[derive(Default)]
pub(super) struct Scripts(Mutex<HashMap<PathBuf, Cached>>);

struct Cached {
    text: String,
    script: Weak<Script>,
}

impl Scripts {
    /// Reads the script at `path` (blocking) and returns the one in play if the file still
    /// holds its text, else parses it. The lock is held while parsing, so sessions starting
    /// together on a new script parse it once.
    pub(super) fn read(
        &self,
        path: &Path,
        name: String,
    ) -> Result<(String, Arc<Script>), AgentError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(AgentError::FixtureNotFound(name));
            }
            Err(e) => return Err(bad_fixture(&name, format!("cannot read it: {e}"))),
        };
        let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let playing = cache.get(path).filter(|c| c.text == text);
        if let Some(script) = playing.and_then(|c| c.script.upgrade()) {
            return Ok((name, script));
        }
        let script = Arc::new(parse(&text).map_err(|e| bad_fixture(&name, e))?);
        cache.retain(|_, c| c.script.strong_count() > 0);
        let script_ref = Arc::downgrade(&script);
        cache.insert(
            path.to_owned(),
            Cached {
                text,
                script: script_ref,
            },
        );
        Ok((name, script))
    }
}

pub(super) fn bad_fixture(name: &str, reason: String) -> AgentError {
    AgentError::BadFixture {
        name: name.into(),
        reason,
    }
}

/// Splits a script into turns; `turns[0]` is the prelude (possibly empty).
pub(super) fn parse(text: &str) -> Result<Script, String> {
    let (mut turns, mut current) = (Vec::new(), Vec::new());
    let mut streams = stream::Streams::default();
    for (number, line) in (1..).zip(text.lines()) {
        if line.trim().is_empty() {
            continue;
        }
        let step = parse_step(line, number, &mut streams);
        match step.map_err(|e| format!("line {number}: {e}"))? {
            Some(Step::Turn) => turns.push(std::mem::take(&mut current)),
            Some(step) => current.push(step),
            None => {}
        }
    }
    turns.push(current);
    // Steps are never added after parsing: give back what the vectors grew by.
    for turn in &mut turns {
        turn.shrink_to_fit();
    }
    Ok(turns)
}

fn text(object: &Map<String, Value>, key: &str) -> Option<String> {
    object.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// One line of a script; `None` for a line that plays nothing (most stream events).
fn parse_step(
    line: &str,
    number: usize,
    streams: &mut stream::Streams,
) -> Result<Option<Step>, String> {
    let mut step: Map<String, Value> = serde_json::from_str(line).map_err(|e| e.to_string())?;
    Ok(Some(match text(&step, "kind").as_deref() {
        Some("expect_user_query") => Step::Turn,
        Some("outbound") => match step.remove("message") {
            Some(Value::Object(message)) => return parse_message(message, streams),
            _ => return Err("outbound needs a message object".into()),
        },
        // `respond` says how a test means to answer; the client decides, not the script.
        Some("callback_expect") => {
            let tool_name = text(&step, "tool_name").ok_or("callback_expect needs a tool_name")?;
            let context = step.remove("context").unwrap_or_else(|| Map::new().into());
            // A fallback id from the line number is the same whenever the step is replayed.
            let id = context.get("tool_use_id").and_then(Value::as_str);
            let correlation_id = id.map_or_else(|| format!("cb_{number}"), str::to_owned);
            let kind = match tool_name.as_str() {
                "AskUserQuestion" => AskKind::Question,
                _ => AskKind::Permission,
            };
            let input = step
                .remove("tool_input")
                .unwrap_or_else(|| Map::new().into());
            Step::Ask(Asked {
                kind,
                correlation_id,
                tool_name,
                input,
                context,
            })
        }
        // Negative, NaN or huge delays are fixture errors rather than panics at play time.
        Some("delay") => match step.get("seconds").and_then(Value::as_f64) {
            Some(secs) => {
                Step::Delay(Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())?)
            }
            None => return Err("delay needs a number of seconds".into()),
        },
        other => return Err(format!("unknown step kind {other:?}")),
    }))
}

fn parse_message(
    mut message: Map<String, Value>,
    streams: &mut stream::Streams,
) -> Result<Option<Step>, String> {
    let content = match message.get("content") {
        Some(Value::Array(blocks)) => Ok(blocks.clone()),
        _ => Err("content must be an array"),
    };
    let event = match message.remove("type").as_ref().and_then(Value::as_str) {
        Some("StreamEvent") => return Ok(streams.event(&message)?.map(Step::Emit)),
        Some("AssistantMessage") => {
            // It completes the streamed message, whose id stands in for a missing one.
            let streamed = streams.complete();
            Scripted::Assistant {
                id: text(&message, "id")
                    .or(streamed)
                    .ok_or("AssistantMessage needs an id")?,
                content: content?,
                model: text(&message, "model"),
                stop_reason: text(&message, "stop_reason"),
            }
        }
        Some("UserMessage") => Scripted::ToolResults { blocks: content? },
        // The payload as scripted (`session_id`, `subtype`, `total_cost_usd`, ...) minus `type`.
        Some("ResultMessage") => Scripted::Result(message),
        Some("SystemMessage") => match text(&message, "subtype") {
            Some(subtype) if subtype == "mcp_status" => Scripted::McpStatus {
                server_name: text(&message, "server_name").ok_or("mcp_status needs server_name")?,
                status: text(&message, "status").ok_or("mcp_status needs a status")?,
            },
            subtype => return Ok(Some(Step::Skip(subtype.unwrap_or_default()))),
        },
        other => return Err(format!("unknown message type {other:?}")),
    };
    Ok(Some(Step::Emit(event)))
}

/// Whether the next step is the turn's scripted result.
pub(super) fn next_is_result(rest: &[Step]) -> bool {
    matches!(rest.first(), Some(Step::Emit(Scripted::Result(_))))
}
