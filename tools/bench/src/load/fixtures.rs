//! Synthetic replay scenarios: `turns` turns of `messages` assistant messages of about `bytes`
//! bytes of text each, optionally paced in bursts by `delay` steps.
//!
//! Each scenario is written once to the fixtures directory the server reads (`--fixtures`),
//! under a name that encodes its shape, so a server started separately can be pointed at the
//! same directory. Every turn yields `messages` `message_complete` events and one `result`.

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
        let name = self.name();
        let path = dir.join(format!("{name}.jsonl"));
        let text = self.render();
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(dir)?;
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(name)
    }

    fn render(&self) -> String {
        const WORDS: &str = "The quick brown fox jumps over the lazy dog while the agent \
                             streams another paragraph of its answer to every subscriber. ";
        let text: String = WORDS.chars().cycle().take(self.bytes).collect();
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
}
