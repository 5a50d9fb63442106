//! The CLI's command line and environment (docs/claude-cli.md §1.1, §1.3).
//!
//! Flags are the SDKs' minimal server set: stream-json both ways, `--verbose` (required with
//! stream-json output), permission prompts routed to us (`--permission-prompt-tool stdio`),
//! partial messages on (for `message_delta`), and the session's model and permission mode. No
//! `--system-prompt`, so the CLI uses Claude Code's own prompt. The conversation id is ours: the
//! session's UUID, with `--session-id=` on the first start and `--resume=` once a turn has run
//! (equals form, as the SDKs use, so a value can never be read as another flag).
//!
//! The environment is the server's, so credentials (`ANTHROPIC_API_KEY`,
//! `CLAUDE_CODE_OAUTH_TOKEN`, `ANTHROPIC_BASE_URL`, ...) pass through without being read,
//! logged or stored, minus what belongs to the server: the model runs shell commands in this
//! environment, so `DATABASE_URL` and every `AGENT_WEBKIT_*` (the bearer token) are removed.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// How one process of a session is launched.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    /// `--session-id=<id>` for a new conversation, `--resume=<id>` for an existing one.
    pub conversation: Conversation<'a>,
    pub model: Option<&'a str>,
    pub permission_mode: Option<&'a str>,
    pub setting_sources: &'a str,
    /// `--session-mirror`: print each transcript write as a `transcript_mirror` frame.
    pub mirror: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversation<'a> {
    New(&'a str),
    Resume(&'a str),
}

/// The CLI's arguments (without the program).
pub fn args(launch: &Launch<'_>) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--output-format",
        "stream-json",
        "--verbose",
        "--input-format",
        "stream-json",
        "--permission-prompt-tool",
        "stdio",
        "--include-partial-messages",
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    args.push(format!("--setting-sources={}", launch.setting_sources).into());
    if let Some(model) = launch.model {
        args.extend(["--model".into(), model.into()]);
    }
    if let Some(mode) = launch.permission_mode {
        args.extend(["--permission-mode".into(), mode.into()]);
    }
    if launch.mirror {
        args.push("--session-mirror".into());
    }
    args.push(match launch.conversation {
        Conversation::New(id) => format!("--session-id={id}").into(),
        Conversation::Resume(id) => format!("--resume={id}").into(),
    });
    args
}

/// Variables never passed to the CLI: the server's own secrets, and `CLAUDECODE` (which makes
/// a CLI started from inside Claude Code believe it is nested).
fn withheld(key: &OsStr) -> bool {
    let key = key.to_string_lossy();
    key == "DATABASE_URL" || key == "CLAUDECODE" || key.starts_with("AGENT_WEBKIT_")
}

/// The CLI's environment, from the server's.
pub fn env(
    parent: impl IntoIterator<Item = (OsString, OsString)>,
    cwd: &Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        parent.into_iter().filter(|(k, _)| !withheld(k)).collect();
    let mut default = |key: &str, value: &OsStr| {
        if !env.iter().any(|(k, _)| k == key) {
            env.push((key.into(), value.into()));
        }
    };
    // Shows up in the CLI's transcript and API billing header as the kind of host.
    default("CLAUDE_CODE_ENTRYPOINT", OsStr::new("sdk-rust"));
    // A server must not have its CLI replaced under it mid-session.
    default("DISABLE_AUTOUPDATER", OsStr::new("1"));
    env.retain(|(k, _)| k != "PWD");
    env.push(("PWD".into(), cwd.into()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(conversation: Conversation<'_>) -> Launch<'_> {
        Launch {
            conversation,
            model: Some("claude-sonnet-4-5"),
            permission_mode: Some("acceptEdits"),
            setting_sources: "",
            mirror: true,
        }
    }

    #[test]
    fn argv_has_the_server_flags_and_the_conversation() {
        let args = args(&launch(Conversation::New("u-1")));
        let args: Vec<_> = args.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "--output-format",
                "stream-json",
                "--verbose",
                "--input-format",
                "stream-json",
                "--permission-prompt-tool",
                "stdio",
                "--include-partial-messages",
                "--setting-sources=",
                "--model",
                "claude-sonnet-4-5",
                "--permission-mode",
                "acceptEdits",
                "--session-mirror",
                "--session-id=u-1",
            ]
        );
        let resumed = super::args(&Launch {
            model: None,
            permission_mode: None,
            ..launch(Conversation::Resume("u-1"))
        });
        assert_eq!(resumed.last().unwrap(), "--resume=u-1");
        assert!(!resumed.iter().any(|a| a == "--model"));
    }

    #[test]
    fn env_passes_credentials_and_withholds_server_secrets() {
        let parent = [
            ("ANTHROPIC_API_KEY", "sk-test"),
            ("CLAUDE_CODE_OAUTH_TOKEN", "oauth"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
            ("DATABASE_URL", "postgres://user:secret@db/x"),
            ("AGENT_WEBKIT_AUTH_TOKEN", "bearer"),
            ("CLAUDECODE", "1"),
            ("PWD", "/server"),
            ("DISABLE_AUTOUPDATER", "0"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let env = env(parent, Path::new("/srv/proj"));
        let get = |key: &str| {
            env.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_str().unwrap())
        };
        assert_eq!(get("ANTHROPIC_API_KEY"), Some("sk-test"));
        assert_eq!(get("CLAUDE_CODE_OAUTH_TOKEN"), Some("oauth"));
        assert_eq!(get("ANTHROPIC_BASE_URL"), Some("http://127.0.0.1:9"));
        assert_eq!(get("DATABASE_URL"), None);
        assert_eq!(get("AGENT_WEBKIT_AUTH_TOKEN"), None);
        assert_eq!(get("CLAUDECODE"), None);
        assert_eq!(get("PWD"), Some("/srv/proj"));
        assert_eq!(get("CLAUDE_CODE_ENTRYPOINT"), Some("sdk-rust"));
        // The operator's own setting wins over our default.
        assert_eq!(get("DISABLE_AUTOUPDATER"), Some("0"));
    }
}
