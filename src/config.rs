//! What a host is configured with: plain, validated settings, one small struct per component.
//!
//! A leaf: it imports nothing from the crate. The command line (`src/cli/`, in the binary)
//! parses flags and environment into a [`Config`]; tests build one with [`Config::new`] and
//! change what they need. Every default is written once, in the `Default` impls here: the
//! command line shows and uses the same values (`cli::serve` reads them from here).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `app::run` needs. `Debug` leaves out the database URL (it may carry a
/// password) and every secret.
#[derive(Clone)]
pub struct Config {
    pub store: StoreSettings,
    pub auth: AuthSettings,
    pub agent: AgentSettings,
    pub sessions: SessionSettings,
    pub http: HttpSettings,
    pub host: HostSettings,
    pub retention: RetentionSettings,
}

impl Config {
    /// The defaults, for a given database and auth mode.
    pub fn new(database_url: String, auth: AuthMode) -> Config {
        Config {
            store: StoreSettings {
                database_url,
                ..StoreSettings::default()
            },
            auth: AuthSettings {
                mode: auth,
                ..AuthSettings::default()
            },
            agent: AgentSettings::default(),
            sessions: SessionSettings::default(),
            http: HttpSettings::default(),
            host: HostSettings::default(),
            retention: RetentionSettings::default(),
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("auth", &self.auth)
            .field("agent", &self.agent.kind)
            .field("sessions", &self.sessions)
            .field("host", &self.host.name)
            .finish_non_exhaustive()
    }
}

/// The database (`store`).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// A libpq URL or key=value string, possibly multi-host (README, "Postgres high
    /// availability").
    pub database_url: String,
    /// Connections in this host's pool.
    pub pool_size: usize,
    /// Postgres cancels this host's statements after this (`None`: never).
    pub statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for StoreSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("database_url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            database_url: String::new(),
            pool_size: 32,
            statement_timeout: Some(Duration::from_secs(10)),
        }
    }
}

/// Who may call (`http::auth`). The verifiers are built from these at start.
#[derive(Clone, Debug, Default)]
pub struct AuthSettings {
    pub mode: AuthMode,
    /// JWTs accepted besides the static token, when configured.
    pub jwt: Option<JwtSettings>,
    /// A bearer token whose holder is the admin principal.
    pub admin_token: Option<Secret>,
}

/// How requests are authenticated.
#[derive(Clone, Default)]
pub enum AuthMode {
    /// Everyone is the admin `anonymous` (development only).
    #[default]
    Disabled,
    /// The static bearer token (principal `token`).
    Token(String),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthMode::Disabled => f.write_str("Disabled"),
            AuthMode::Token(_) => f.write_str("Token(<redacted>)"),
        }
    }
}

/// JWT verification settings, as configured (`http::auth::jwt` builds the verifier).
#[derive(Debug, Clone, Default)]
pub struct JwtSettings {
    pub hs256_secret: Option<Secret>,
    /// PEM public key (RSA or EC P-256), read from `--jwt-public-key-file`.
    pub public_key_pem: Option<Vec<u8>>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    /// `claim=value` that makes a JWT's subject an admin.
    pub admin_claim: Option<String>,
}

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which agent runtime runs the sessions, and its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AgentSettings {
    pub kind: AgentKind,
    pub replay: ReplaySettings,
    pub claude: ClaudeSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentKind {
    /// Plays scenario files (JSON Lines): tests, demos, benchmarks.
    #[default]
    Replay,
    /// Drives the Claude Code CLI over stream-json, one process per session.
    Claude,
}

/// The replay runtime (`agent::replay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplaySettings {
    /// Directory of scenario files (`<name>.jsonl`).
    pub fixtures: PathBuf,
    /// Scenario used when `POST /sessions` names no `fixture`.
    pub default_fixture: Option<String>,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            // The scenarios the Docker image ships (`/usr/share/agent-webkit/fixtures` there).
            fixtures: PathBuf::from("fixtures"),
            default_fixture: None,
        }
    }
}

/// The Claude runtime (`agent::claude`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaudeSettings {
    /// The CLI executable: a path, or a name looked up on `PATH`.
    pub path: PathBuf,
    /// Directories a session's `cwd` may lie in; none: every session runs in its own
    /// directory under the data dir and may not choose one.
    pub allowed_cwd: Vec<PathBuf>,
    /// `--setting-sources` of the CLI; empty loads none.
    pub setting_sources: String,
    /// How long a starting CLI may take to answer `initialize`.
    pub start_timeout: Duration,
    /// How long the CLI may take to answer a control request, and to end an interrupted turn.
    pub control_timeout: Duration,
    /// After stdin closes, the wait before SIGTERM, and again before SIGKILL.
    pub stop_grace: Duration,
    /// The longest stdout line (one frame) read from the CLI.
    pub max_frame_bytes: usize,
    /// Local state: per-session working and config directories live under it.
    pub data_dir: PathBuf,
}

impl Default for ClaudeSettings {
    fn default() -> Self {
        ClaudeSettings {
            path: PathBuf::from("claude"),
            allowed_cwd: Vec::new(),
            setting_sources: String::new(),
            start_timeout: Duration::from_secs(60),
            control_timeout: Duration::from_secs(60),
            stop_grace: Duration::from_secs(5),
            max_frame_bytes: 32 * 1024 * 1024,
            data_dir: PathBuf::from(DATA_DIR),
        }
    }
}

/// The default local-state directory (the embedded cluster lives in `<it>/pg`).
pub const DATA_DIR: &str = "./.agent-webkit";

/// Sessions on this host (`session`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Events kept in memory per session, as encoded SSE frames.
    pub ring_size: usize,
    /// A session with no input and no subscriber for this long leaves memory (dormant).
    pub idle_timeout: Duration,
    /// Sessions held in memory; beyond it `503 at_capacity`.
    pub max_sessions: Option<usize>,
    /// Interval of `: keepalive` comments on idle streams.
    pub keepalive: Duration,
    /// Inbound messages a session queues; beyond it `503 queue_full`.
    pub max_queued_inputs: usize,
    /// Open streams per session on this host; beyond it `429 too_many_subscribers`.
    pub max_subscribers: usize,
    /// Most bytes a subscriber takes at once from the ring or Postgres.
    pub sse_buffer_bytes: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            ring_size: 1000,
            idle_timeout: Duration::from_secs(300),
            max_sessions: None,
            keepalive: Duration::from_secs(15),
            max_queued_inputs: 64,
            max_subscribers: 64,
            sse_buffer_bytes: 64 * 1024,
        }
    }
}

/// The HTTP server (`http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Largest request body (`413` beyond).
    pub max_body_bytes: usize,
    /// A request without an answer by then gets `503 request_timeout`.
    pub request_timeout: Duration,
    /// A new connection must send its first request head within this of its accept.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this.
    pub idle_timeout: Duration,
    /// Open connections; `None`: three quarters of the descriptor limit, at most 10000.
    pub max_connections: Option<usize>,
    /// A client that accepts no bytes for this long is disconnected.
    pub sse_write_timeout: Duration,
    /// Also serve `/metrics` without authentication here.
    pub metrics_listen: Option<SocketAddr>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            max_body_bytes: 10 * 1024 * 1024,
            request_timeout: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
            sse_write_timeout: Duration::from_secs(30),
            metrics_listen: None,
        }
    }
}

/// This host among the others (`store::hosts`, ownership, drain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSettings {
    /// Its name in the `hosts` table and logs.
    pub name: String,
    /// A host silent this long is dead to the others.
    pub lease: Duration,
    /// How often it checks that it still owns what it serves.
    pub ownership_check: Duration,
    /// On SIGTERM, how long running turns may finish before sessions are released.
    pub drain_timeout: Duration,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            name: default_host_name(),
            lease: Duration::from_secs(10),
            ownership_check: Duration::from_millis(250),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The background removal of old rows (`store::retention`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSettings {
    /// Rows older than this are removed; `None`: kept forever.
    pub max_age: Option<Duration>,
    /// Rows per retention transaction.
    pub batch: usize,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            max_age: None,
            batch: 1000,
        }
    }
}

/// `<hostname>:<pid>`.
pub fn default_host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
}

/// Durations as plain seconds (`300`) or with a unit (`300s`, `5m`, `250ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("invalid duration {s:?}"));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_seconds_and_units() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let mut cfg = Config::new(
            "postgres://u:pw-secret@h/db".into(),
            AuthMode::Token("hunter2".into()),
        );
        cfg.auth.admin_token = Some(Secret("swordfish".into()));
        cfg.auth.jwt = Some(JwtSettings {
            hs256_secret: Some(Secret("jwt-secret".into())),
            ..JwtSettings::default()
        });
        let shown = format!("{cfg:?}");
        for secret in ["hunter2", "pw-secret", "swordfish", "jwt-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
