//! Hook callbacks a session registers (docs/claude-cli.md §3.2, §5.3).
//!
//! The session config's `hooks` names, per hook event, the matchers whose calls the client
//! wants to decide: `{"PreToolUse": [{"matcher": "Bash", "timeout": 30}], "Stop": [{}]}`. We
//! give each matcher a callback id (`hook_0`, `hook_1`, … in order) and register them in
//! `initialize`; a `hook_callback` for one of those ids becomes a `hook_decision_request`.
//! `timeout` (seconds) is how long the CLI waits for the decision (its default: 60).

use crate::agent::AgentError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Hooks {
    /// The `hooks` field of `initialize`; `None` when nothing is registered.
    pub initialize: Option<Value>,
    /// Callback id → hook event name.
    pub events: HashMap<String, String>,
}

const MAX_MATCHERS: usize = 64;

/// Validates the config's `hooks` and assigns callback ids.
pub fn parse(config: Option<&Value>) -> Result<Hooks, AgentError> {
    let bad = |why: String| AgentError::InvalidConfig(format!("hooks: {why}"));
    let Some(config) = config.filter(|c| !c.is_null()) else {
        return Ok(Hooks::default());
    };
    let events = config
        .as_object()
        .ok_or_else(|| bad("must be an object of hook event → list of matchers".into()))?;
    let mut hooks = Hooks::default();
    let mut registered = Map::new();
    for (event, matchers) in events {
        if event.is_empty() || !event.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad(format!("{event:?} is not a hook event name")));
        }
        let matchers = matchers
            .as_array()
            .ok_or_else(|| bad(format!("{event} must be a list of matchers")))?;
        let mut entries = Vec::with_capacity(matchers.len());
        for matcher in matchers {
            let matcher = matcher
                .as_object()
                .ok_or_else(|| bad(format!("{event}: each matcher must be an object")))?;
            let pattern = match matcher.get("matcher") {
                None | Some(Value::Null) => Value::Null,
                Some(Value::String(s)) => Value::String(s.clone()),
                Some(_) => return Err(bad(format!("{event}: `matcher` must be a string"))),
            };
            let id = format!("hook_{}", hooks.events.len());
            let mut entry = json!({"matcher": pattern, "hookCallbackIds": [id]});
            match matcher.get("timeout") {
                None | Some(Value::Null) => {}
                Some(t) if t.as_f64().is_some_and(|t| t > 0.0 && t <= 86_400.0) => {
                    entry["timeout"] = t.clone();
                }
                Some(_) => {
                    return Err(bad(format!(
                        "{event}: `timeout` must be seconds between 0 and 86400"
                    )))
                }
            }
            hooks.events.insert(id, event.clone());
            entries.push(entry);
            if hooks.events.len() > MAX_MATCHERS {
                return Err(bad(format!("at most {MAX_MATCHERS} matchers")));
            }
        }
        registered.insert(event.clone(), Value::Array(entries));
    }
    if !hooks.events.is_empty() {
        hooks.initialize = Some(Value::Object(registered));
    }
    Ok(hooks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assigns_callback_ids_in_order() {
        let config = json!({"PreToolUse": [{"matcher": "Bash", "timeout": 30}, {}], "Stop": [{}]});
        let hooks = parse(Some(&config)).unwrap();
        assert_eq!(
            hooks.initialize.unwrap(),
            json!({"PreToolUse": [
                       {"matcher": "Bash", "hookCallbackIds": ["hook_0"], "timeout": 30},
                       {"matcher": null, "hookCallbackIds": ["hook_1"]}],
                   "Stop": [{"matcher": null, "hookCallbackIds": ["hook_2"]}]})
        );
        assert_eq!(hooks.events["hook_1"], "PreToolUse");
        assert_eq!(hooks.events["hook_2"], "Stop");
        assert_eq!(parse(None).unwrap(), Hooks::default());
        assert_eq!(parse(Some(&json!({}))).unwrap().initialize, None);
    }

    #[test]
    fn rejects_malformed_hooks() {
        for bad in [
            json!([]),
            json!({"PreToolUse": {}}),
            json!({"PreToolUse": ["Bash"]}),
            json!({"PreToolUse": [{"matcher": 3}]}),
            json!({"PreToolUse": [{"timeout": -1}]}),
            json!({"Pre Tool": [{}]}),
        ] {
            assert!(
                matches!(parse(Some(&bad)), Err(AgentError::InvalidConfig(_))),
                "{bad}"
            );
        }
    }
}
