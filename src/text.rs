//! What Postgres' `text` and `jsonb` columns cannot hold, checked before a value from outside
//! (a request body, a header, a JWT claim) is written into one.
//!
//! Postgres refuses U+0000 in `text` and `jsonb` (the `json` event log keeps it: it stores the
//! text as sent), and a btree index refuses an entry above ~2.7 KB. Either refusal used to
//! surface as a `500` from a plain request; checking here turns it into a `400` with a code.
//! Events an agent produces never come through here: they are stored whatever they contain
//! (`store::writer`, migration V4).

use serde_json::Value;

/// Longest value accepted into an indexed text column (principals, correlation ids, filters):
/// 256 characters are at most 1 KiB, well under btree's entry limit.
pub const MAX_INDEXED_CHARS: usize = 256;

/// Whether any string or key of `value` contains U+0000.
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// About the length of `value` as JSON text (strings and keys, plus a little per value),
/// without serializing it: enough to tell a large message from a small one.
pub fn approx_len(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 2,
        Value::Array(items) => items.iter().map(approx_len).sum::<usize>() + 2,
        Value::Object(map) => map.iter().map(|(k, v)| k.len() + 3 + approx_len(v)).sum(),
        _ => 8,
    }
}

/// Why a string cannot go into an indexed text column, if it cannot.
pub fn indexed_text_problem(s: &str) -> Option<String> {
    if s.contains('\0') {
        return Some("must not contain U+0000 (NUL)".into());
    }
    if s.chars().count() > MAX_INDEXED_CHARS {
        return Some(format!("must be at most {MAX_INDEXED_CHARS} characters"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_nul_in_strings_keys_and_nesting() {
        assert!(!has_nul(&json!({"a": ["b", 1, null, {"c": "d"}]})));
        assert!(has_nul(&json!({"a": ["b", {"c": "d\u{0}"}]})));
        assert!(has_nul(&json!({"a\u{0}": 1})));
    }

    #[test]
    fn bounds_indexed_text() {
        assert_eq!(indexed_text_problem("tu_1"), None);
        assert!(indexed_text_problem("a\0b").is_some());
        assert!(indexed_text_problem(&"é".repeat(MAX_INDEXED_CHARS)).is_none());
        assert!(indexed_text_problem(&"x".repeat(MAX_INDEXED_CHARS + 1)).is_some());
    }
}
