//! Client input as error messages repeat it: cut short, so a message never grows with the
//! input (a 5 MiB unknown `type` is not sent back whole). A leaf: every layer that words an
//! error about input uses it.

use std::borrow::Cow;

/// Most characters of a client's input an error message repeats.
pub const ECHO_CHARS: usize = 100;

/// Client input as an error message repeats it: at most [`ECHO_CHARS`] characters, then `…`.
pub fn echo(input: &str) -> Cow<'_, str> {
    clip(input, ECHO_CHARS)
}

/// `text` cut to `max_chars` characters, with `…` when something was cut.
pub fn clip(text: &str, max_chars: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max_chars) {
        None => Cow::Borrowed(text),
        Some((at, _)) => Cow::Owned(format!("{}…", &text[..at])),
    }
}

#[cfg(test)]
mod tests {
    use super::{clip, echo, ECHO_CHARS};

    #[test]
    fn echoed_input_is_cut_short_on_a_char_boundary() {
        assert_eq!(echo("short"), "short");
        let long = "é".repeat(ECHO_CHARS * 3);
        let cut = echo(&long);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "abc…");
    }
}
