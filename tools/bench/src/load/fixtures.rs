//! Synthetic replay scenarios, in the replay format of the Python original
//! (`docs/wire-protocol.md`, "Fixture format of the replay agent"), so any implementation with a
//! replay agent plays them:
//! - [`Scenario`]: `turns` turns of `messages` assistant messages of about `bytes` bytes of text
//!   each, optionally paced in bursts by `delay` steps. Every turn yields `messages`
//!   `message_complete` events and one `result`.
//! - [`Streamed`]: turns streamed at a model's pace, `message_delta` by `message_delta`.
//!
//! Each scenario is written once to the fixtures directory the server reads (`--fixtures`),
//! under a name that encodes its shape, so a server started separately can be pointed at the
//! same directory.

use anyhow::Context;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scenario {
    pub turns: usize,
    pub messages: usize,
    pub bytes: usize,
    /// `(n, seconds)`: a `delay` of `seconds` before every `n` messages (fixed-rate agents).
    pub pace: Option<(usize, f64)>,
}

impl Scenario {
    pub fn new(turns: usize, messages: usize, bytes: usize) -> Scenario {
        Scenario {
            turns,
            messages,
            bytes,
            pace: None,
        }
    }

    pub fn paced(self, burst: usize, seconds: f64) -> Scenario {
        Scenario {
            pace: Some((burst.max(1), seconds)),
            ..self
        }
    }

    /// The file stem, e.g. `bench_t10_m500_b200` or `bench_t1_m500_b200_p5x10000us`.
    pub fn name(&self) -> String {
        let mut name = format!("bench_t{}_m{}_b{}", self.turns, self.messages, self.bytes);
        if let Some((n, secs)) = self.pace {
            name.push_str(&format!("_p{n}x{}us", (secs * 1e6).round() as u64));
        }
        name
    }

    /// Events of a session that plays every turn: `session_ready`, then per turn the messages
    /// and a `result`.
    pub fn events(&self) -> u64 {
        1 + (self.turns * (self.messages + 1)) as u64
    }

    /// Writes the scenario to `dir` (unless an identical file is there) and returns its name.
    pub fn write(&self, dir: &Path) -> anyhow::Result<String> {
        write(dir, self.name(), self.render())
    }

    fn render(&self) -> String {
        let text = words(0, self.bytes);
        let mut lines = Vec::with_capacity(self.turns * (self.messages + 2));
        for turn in 0..self.turns {
            lines.push(r#"{"kind":"expect_user_query"}"#.to_owned());
            for i in 0..self.messages {
                if let Some((n, secs)) = self.pace {
                    if i % n == 0 {
                        lines.push(format!(r#"{{"kind":"delay","seconds":{secs}}}"#));
                    }
                }
                let message = serde_json::json!({
                    "type": "AssistantMessage",
                    "id": format!("m_{turn}_{i}"),
                    "content": [{"type": "text", "text": text}],
                    "model": "bench",
                    "stop_reason": "end_turn",
                });
                lines.push(serde_json::json!({"kind": "outbound", "message": message}).to_string());
            }
            lines.push(
                r#"{"kind":"outbound","message":{"type":"ResultMessage","subtype":"success","total_cost_usd":0}}"#
                    .to_owned(),
            );
        }
        lines.join("\n") + "\n"
    }
}

/// A turn streamed at a model's pace: the user's think time (`pause` seconds), then one
/// assistant message as `deltas` text deltas of `bytes` bytes, `rate` a second (a `delay` of
/// 1/`rate` before each: a replay agent never plays early, so `rate` is the most it reaches), the
/// completed message with the whole text, and a `result`. The deltas are `StreamEvent` lines,
/// as the original's fixtures write partial messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Streamed {
    pub turns: usize,
    pub deltas: usize,
    pub bytes: usize,
    pub rate: f64,
    pub pause: f64,
}

impl Streamed {
    /// e.g. `bench_stream_t5_d100_b60_i25000us_p500000us`.
    pub fn name(&self) -> String {
        let us = |secs: f64| (secs * 1e6).round() as u64;
        format!(
            "bench_stream_t{}_d{}_b{}_i{}us_p{}us",
            self.turns,
            self.deltas,
            self.bytes,
            us(1.0 / self.rate),
            us(self.pause)
        )
    }

    /// Events of a session that plays every turn: `session_ready`, then per turn the deltas,
    /// `message_complete` and `result`.
    pub fn events(&self) -> u64 {
        1 + (self.turns * self.per_turn()) as u64
    }

    /// Events per turn.
    pub fn per_turn(&self) -> usize {
        self.deltas + 2
    }

    /// Ids of turn `k`'s first and last delta (`session_ready` is 1).
    pub fn deltas_of(&self, k: usize) -> (u64, u64) {
        let first = 2 + (k * self.per_turn()) as u64;
        (first, first + self.deltas.saturating_sub(1) as u64)
    }

    /// Seconds a turn takes at the scripted pace.
    pub fn turn_seconds(&self) -> f64 {
        self.pause + self.deltas as f64 / self.rate
    }

    /// Writes the scenario to `dir` (unless an identical file is there) and returns its name.
    pub fn write(&self, dir: &Path) -> anyhow::Result<String> {
        write(dir, self.name(), self.render())
    }

    fn render(&self) -> String {
        let stream = |uuid: String, event: serde_json::Value| {
            let message = serde_json::json!({"type": "StreamEvent", "uuid": uuid,
                "session_id": "bench", "event": event});
            serde_json::json!({"kind": "outbound", "message": message}).to_string()
        };
        let delay = format!(r#"{{"kind":"delay","seconds":{}}}"#, 1.0 / self.rate);
        let mut lines = Vec::with_capacity(self.turns * (2 * self.deltas + 8));
        for turn in 0..self.turns {
            let id = format!("msg_{turn}");
            lines.push(r#"{"kind":"expect_user_query"}"#.to_owned());
            if self.pause > 0.0 {
                lines.push(format!(r#"{{"kind":"delay","seconds":{}}}"#, self.pause));
            }
            let start = serde_json::json!({"type": "message_start", "message": {"id": id,
                "role": "assistant", "model": "bench", "content": []}});
            lines.push(stream(format!("u_{turn}_start"), start));
            let block = serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}});
            lines.push(stream(format!("u_{turn}_block"), block));
            let mut whole = String::with_capacity(self.deltas * self.bytes);
            for i in 0..self.deltas {
                // Each delta is the next stretch of the text, so no two rows are identical.
                let text = words(i * self.bytes, self.bytes);
                whole.push_str(&text);
                let delta = serde_json::json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": text}});
                lines.push(delay.clone());
                lines.push(stream(format!("u_{turn}_{i}"), delta));
            }
            for (tag, event) in [
                (
                    "stop",
                    serde_json::json!({"type": "content_block_stop", "index": 0}),
                ),
                (
                    "delta",
                    serde_json::json!({"type": "message_delta",
                    "delta": {"stop_reason": "end_turn"}}),
                ),
                ("end", serde_json::json!({"type": "message_stop"})),
            ] {
                lines.push(stream(format!("u_{turn}_{tag}"), event));
            }
            let message = serde_json::json!({"type": "AssistantMessage", "id": id,
                "content": [{"type": "text", "text": whole}], "model": "bench",
                "stop_reason": "end_turn"});
            lines.push(serde_json::json!({"kind": "outbound", "message": message}).to_string());
            lines.push(
                r#"{"kind":"outbound","message":{"type":"ResultMessage","session_id":"bench","subtype":"success","total_cost_usd":0}}"#
                    .to_owned(),
            );
        }
        lines.join("\n") + "\n"
    }
}

/// `bytes` characters of English-looking text, starting `offset` characters into it.
fn words(offset: usize, bytes: usize) -> String {
    const WORDS: &str = "The quick brown fox jumps over the lazy dog while the agent \
                         streams another paragraph of its answer to every subscriber. ";
    WORDS
        .chars()
        .cycle()
        .skip(offset % WORDS.len())
        .take(bytes)
        .collect()
}

/// Writes `text` to `dir/name.jsonl` unless an identical file is there; returns `name`.
fn write(dir: &Path, name: String, text: String) -> anyhow::Result<String> {
    let path = dir.join(format!("{name}.jsonl"));
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::create_dir_all(dir)?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_turns_messages_and_pacing() {
        let s = Scenario::new(2, 3, 50).paced(2, 0.01);
        assert_eq!(s.name(), "bench_t2_m3_b50_p2x10000us");
        assert_eq!(s.events(), 1 + 2 * 4);
        let text = s.render();
        assert_eq!(text.matches("expect_user_query").count(), 2);
        assert_eq!(text.matches("AssistantMessage").count(), 6);
        assert_eq!(text.matches("\"delay\"").count(), 4);
        assert_eq!(text.matches("ResultMessage").count(), 2);
    }

    #[test]
    fn streamed_turns_are_paced_deltas_then_complete_and_result() {
        let s = Streamed {
            turns: 2,
            deltas: 4,
            bytes: 60,
            rate: 40.0,
            pause: 0.5,
        };
        assert_eq!(s.name(), "bench_stream_t2_d4_b60_i25000us_p500000us");
        assert_eq!(s.events(), 1 + 2 * 6);
        assert_eq!(s.deltas_of(1), (8, 11));
        assert_eq!(s.turn_seconds(), 0.6);
        let text = s.render();
        assert_eq!(text.matches("\"text_delta\"").count(), 8);
        assert_eq!(text.matches(r#""seconds":0.025"#).count(), 8);
        assert_eq!(text.matches(r#""seconds":0.5"#).count(), 2);
        assert_eq!(text.matches("message_start").count(), 2);
        assert_eq!(text.matches("AssistantMessage").count(), 2);
        assert_eq!(text.matches("ResultMessage").count(), 2);
        // Every line is one JSON object, and a delta carries `bytes` characters of text.
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(t) = v.pointer("/message/event/delta/text") {
                assert_eq!(t.as_str().unwrap().len(), 60);
            }
        }
    }
}
