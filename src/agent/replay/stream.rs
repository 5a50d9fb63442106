//! `StreamEvent` lines of a replay script: raw Anthropic stream events, as the Python original's
//! fixtures write them (`claude_agent_sdk.StreamEvent {uuid, session_id, event,
//! parent_tool_use_id}` under `"type": "StreamEvent"`), turned into `message_delta`s.
//!
//! A stream event carries no message id: the id comes from the last `message_start`, and an
//! `AssistantMessage` ends that message (a delta after it, before the next `message_start`,
//! cannot be attributed and is dropped, as the original's bridge drops it). Attribution is done
//! while parsing, over the whole script in order, so it is fixed before play starts: a session
//! resumed after k turns attributes exactly as one that played them, and playing a delta costs
//! no more than playing any other scripted message.
//!
//! Only `text_delta`s become deltas (`{"type":"text","text"}`), the same as the Claude CLI runtime
//! (`claude/mapping.rs`), so both runtimes stream the same wire events. Every other stream event
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`, `ping`, tool input and
//! thinking deltas) plays nothing.

use serde_json::{Map, Value};

use super::script::Scripted;

/// The message the script is streaming, if any.
#[derive(Debug, Default)]
pub(super) struct Streams {
    message_id: Option<String>,
}

impl Streams {
    /// The `message_delta` a `StreamEvent` message plays, if any. `message` is the outbound
    /// object without its `type`.
    pub(super) fn event(
        &mut self,
        message: &Map<String, Value>,
    ) -> Result<Option<Scripted>, String> {
        let event = match message.get("event") {
            Some(Value::Object(event)) => event,
            _ => return Err("StreamEvent needs an event object".into()),
        };
        let str_at = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                // A start without an id keeps attributing to the message before it.
                if let Some(id) = event.get("message").and_then(|m| str_at(m, "id")) {
                    self.message_id = Some(id);
                }
                Ok(None)
            }
            Some("content_block_delta") => {
                let Some(delta) = event.get("delta") else {
                    return Ok(None);
                };
                let text = match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => str_at(delta, "text").filter(|t| !t.is_empty()),
                    _ => None,
                };
                Ok(match (text, &self.message_id) {
                    (Some(text), Some(id)) => Some(Scripted::Delta {
                        message_id: id.clone(),
                        delta: serde_json::json!({"type": "text", "text": text}),
                    }),
                    _ => None,
                })
            }
            Some(_) => Ok(None),
            None => Err("StreamEvent needs an event with a type".into()),
        }
    }

    /// An `AssistantMessage` completes the streamed message. Returns the streamed message's id,
    /// which stands in for a missing `id` (the original's bridge does the same).
    pub(super) fn complete(&mut self) -> Option<String> {
        self.message_id.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn play(streams: &mut Streams, event: Value) -> Option<String> {
        let message = json!({"uuid": "u", "session_id": "s", "event": event});
        let Value::Object(message) = message else {
            unreachable!()
        };
        match streams.event(&message).unwrap() {
            Some(Scripted::Delta { message_id, delta }) => {
                Some(format!("{message_id}:{}", delta["text"].as_str().unwrap()))
            }
            Some(other) => panic!("{other:?}"),
            None => None,
        }
    }

    fn text(t: &str) -> Value {
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
    }

    #[test]
    fn text_deltas_take_the_id_of_the_last_message_start() {
        let mut s = Streams::default();
        assert_eq!(play(&mut s, text("early")), None, "no message yet");
        assert_eq!(
            play(
                &mut s,
                json!({"type": "message_start", "message": {"id": "a"}})
            ),
            None
        );
        let block =
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text"}});
        assert_eq!(play(&mut s, block), None);
        assert_eq!(play(&mut s, text("Hel")).as_deref(), Some("a:Hel"));
        assert_eq!(play(&mut s, text("")), None, "empty text plays nothing");
        let json_delta = json!({"type": "content_block_delta", "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}});
        assert_eq!(play(&mut s, json_delta), None);
        for quiet in [
            "content_block_stop",
            "message_delta",
            "message_stop",
            "ping",
        ] {
            assert_eq!(play(&mut s, json!({"type": quiet})), None);
        }
        assert_eq!(
            play(
                &mut s,
                json!({"type": "message_start", "message": {"id": "b"}})
            ),
            None
        );
        assert_eq!(play(&mut s, text("lo")).as_deref(), Some("b:lo"));
        assert_eq!(s.complete().as_deref(), Some("b"));
        assert_eq!(
            play(&mut s, text("late")),
            None,
            "completed: no message to attribute to"
        );
    }

    #[test]
    fn a_stream_event_needs_an_event_with_a_type() {
        let mut s = Streams::default();
        for message in [json!({}), json!({"event": 1}), json!({"event": {}})] {
            let Value::Object(message) = message else {
                unreachable!()
            };
            assert!(s.event(&message).is_err(), "{message:?}");
        }
    }
}
