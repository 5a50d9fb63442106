//! Command line and environment, parsed and validated once.
//!
//! Every flag also reads an environment variable (shown in `--help`). Secrets (the bearer
//! token) come from the environment only, never from flags, so they do not show in `ps`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "agent-webkit-server",
    version,
    about = "Durable Claude agent sessions over HTTP + SSE, on Postgres"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Query the audit log (events, inputs, sessions) straight from the database.
    #[command(subcommand)]
    Audit(Box<crate::audit::cli::AuditCommand>),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres connection URL. Without one, a private PostgreSQL cluster is started in
    /// --data-dir from the PostgreSQL server binaries on this machine.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded PostgreSQL cluster and other local state.
    #[arg(long, env = "AGENT_WEBKIT_DATA_DIR", default_value = "./.agent-webkit")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentKind {
    /// Plays scenario files (JSON Lines) from --fixtures: tests, demos, benchmarks.
    Replay,
    /// Drives the Claude Code CLI over stream-json, one process per session.
    Claude,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArgs,

    /// Address to listen on.
    #[arg(long, env = "AGENT_WEBKIT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Which agent runtime runs the sessions.
    #[arg(long, env = "AGENT_WEBKIT_AGENT", value_enum, default_value = "replay")]
    pub agent: AgentKind,

    #[command(flatten)]
    pub claude: ClaudeArgs,

    /// Replay runtime: directory of scenario files (`<name>.jsonl`).
    #[arg(
        long,
        env = "AGENT_WEBKIT_FIXTURES",
        default_value = "tests/fixtures/reference"
    )]
    pub fixtures: PathBuf,

    /// Replay runtime: scenario used when `POST /sessions` names no `fixture`.
    #[arg(long, env = "AGENT_WEBKIT_DEFAULT_FIXTURE")]
    pub default_fixture: Option<String>,

    /// Events kept in memory per session, as ready-encoded SSE frames. Older events are served
    /// from Postgres.
    #[arg(long, env = "AGENT_WEBKIT_RING_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub ring_size: u64,

    /// Evict a session from memory after this long with no input and no subscriber (it stays
    /// in Postgres, dormant, and comes back on the next request). E.g. `300`, `300s`, `5m`.
    #[arg(long, env = "AGENT_WEBKIT_IDLE_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Most sessions this host holds in memory; beyond it, `503` with `Retry-After`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,

    /// Disable authentication (development only; logs a warning). Otherwise the bearer token
    /// is AGENT_WEBKIT_AUTH_TOKEN (or AGENT_WEBKIT_TOKEN), or a random one printed at start.
    #[arg(long, env = "AGENT_WEBKIT_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_auth: bool,

    /// Interval of `: keepalive` comments on idle streams.
    #[arg(long, env = "AGENT_WEBKIT_KEEPALIVE", default_value = "15s", value_parser = parse_duration)]
    pub keepalive: Duration,

    /// Inbound messages a session queues (user messages waiting for their turn, control
    /// messages); beyond it, `503` with `Retry-After`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_QUEUED_INPUTS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_queued_inputs: u64,

    /// Largest accepted request body in bytes (`413` beyond).
    #[arg(long, env = "AGENT_WEBKIT_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Most open streams per session on this host; beyond it, `429`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_SUBSCRIBERS_PER_SESSION", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_subscribers_per_session: u64,

    /// A connection whose client accepts no bytes for this long is dropped (a dead or stalled
    /// SSE subscriber), freeing what it held.
    #[arg(long, env = "AGENT_WEBKIT_SSE_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub sse_write_timeout: Duration,

    /// Most bytes one subscriber takes at once from the ring or from Postgres (one chunk, or
    /// one page of a catch-up read); a subscriber holds at most one such chunk in flight.
    #[arg(long, env = "AGENT_WEBKIT_SSE_BUFFER_BYTES", default_value_t = 64 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub sse_buffer_bytes: u64,

    /// A new connection must send its first request head within this (from the accept; a
    /// client trickling bytes does not extend it), or it is closed.
    #[arg(long, env = "AGENT_WEBKIT_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub http_header_timeout: Duration,

    /// A keep-alive connection with no request in flight is closed after this long; the head
    /// of its next request must be complete by then.
    #[arg(long, env = "AGENT_WEBKIT_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub http_idle_timeout: Duration,

    /// Most open connections on --listen; beyond it a connection is answered `503
    /// too_many_connections` and closed (a few more are kept for `/healthz` and `/readyz`).
    /// Default: three quarters of the descriptor limit, at most 10000.
    #[arg(long, env = "AGENT_WEBKIT_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// A request that has no answer after this long gets `503 request_timeout` (the work it
    /// started still finishes). Bounds every wait a handler can get into.
    #[arg(long, env = "AGENT_WEBKIT_REQUEST_TIMEOUT", default_value = "15s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Postgres cancels any statement of this host running longer than this (`0`: never), so
    /// a saturated database turns into `503`s and retries rather than hanging requests.
    #[arg(long, env = "AGENT_WEBKIT_DB_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub db_statement_timeout: Duration,

    /// Also serve `GET /metrics` without authentication on this address (e.g. `0.0.0.0:9464`
    /// on a port only the scraper reaches). `/metrics` on --listen requires an admin principal.
    #[arg(long, env = "AGENT_WEBKIT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// On SIGTERM: how long running turns may take to finish before every session is released.
    #[arg(long, env = "AGENT_WEBKIT_DRAIN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// A host whose heartbeat is older than this is dead to the others (partitions; a killed
    /// host is detected at once through its advisory lock).
    #[arg(long, env = "AGENT_WEBKIT_LEASE", default_value = "10s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How often a host checks that it still owns the sessions it serves.
    #[arg(long, env = "AGENT_WEBKIT_OWNERSHIP_CHECK", default_value = "250ms", value_parser = parse_duration)]
    pub ownership_check: Duration,

    /// Postgres connections in this host's pool.
    #[arg(long, env = "AGENT_WEBKIT_DB_POOL_SIZE", default_value_t = 32)]
    pub db_pool_size: usize,

    /// Name of this host in the hosts table and logs (default: hostname and pid).
    #[arg(long, env = "AGENT_WEBKIT_HOST_NAME")]
    pub host_name: Option<String>,

    /// Log output format.
    #[arg(
        long,
        env = "AGENT_WEBKIT_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub auth: AuthArgs,

    /// Remove events (and inputs) older than this, e.g. `30d`, in small batches in the
    /// background. Off when absent: the log is kept forever.
    #[arg(long, env = "AGENT_WEBKIT_RETENTION", value_parser = parse_retention)]
    pub retention: Option<Duration>,

    /// Rows removed per retention batch (one short transaction each).
    #[arg(long, env = "AGENT_WEBKIT_RETENTION_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub retention_batch: u64,
}

/// Who may call: JWTs (besides the static token) and the admin principal. The HS256 secret and
/// the admin token are secrets and so come from the environment only
/// (`AGENT_WEBKIT_JWT_SECRET`, `AGENT_WEBKIT_ADMIN_TOKEN`).
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// PEM public key (RSA or EC P-256) that verifies RS256 / ES256 JWTs.
    #[arg(long, env = "AGENT_WEBKIT_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<PathBuf>,

    /// Required `iss` of JWTs.
    #[arg(long, env = "AGENT_WEBKIT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of JWTs.
    #[arg(long, env = "AGENT_WEBKIT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// `claim=value` that makes a JWT's subject an admin (sees every session, reads the audit
    /// log), e.g. `role=admin`. The claim may be a string or an array of strings.
    #[arg(long, env = "AGENT_WEBKIT_JWT_ADMIN_CLAIM")]
    pub jwt_admin_claim: Option<String>,
}

/// Settings of the Claude runtime (`--agent claude`); ignored by the replay runtime.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct ClaudeArgs {
    /// Claude runtime: the Claude Code CLI executable (a path, or a name looked up on PATH).
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_PATH", default_value = "claude")]
    pub claude_path: PathBuf,

    /// Claude runtime: a directory a session's `cwd` may lie in (repeatable; the env var takes
    /// a `:`-separated list). Without one, every session runs in its own directory under
    /// --data-dir and may not choose a `cwd`.
    #[arg(long, env = "AGENT_WEBKIT_ALLOWED_CWD", value_delimiter = ':')]
    pub allowed_cwd: Vec<PathBuf>,

    /// Claude runtime: which settings files the CLI loads (`--setting-sources`), e.g.
    /// `user,project,local`. Empty (the default) loads none, so a session's directory cannot
    /// bring its own hooks or permission rules.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_SETTING_SOURCES", default_value = "")]
    pub claude_setting_sources: String,

    /// Claude runtime: how long a starting CLI may take to answer `initialize`.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_START_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub claude_start_timeout: Duration,

    /// Claude runtime: how long the CLI may take to answer a control request (interrupt, mode,
    /// model, stop task), and to end a turn after an interrupt, before it is given up on.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_CONTROL_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub claude_control_timeout: Duration,

    /// Claude runtime: when a session stops, how long the CLI gets after stdin closes before
    /// SIGTERM, and after SIGTERM before SIGKILL (to its whole process group).
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_STOP_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub claude_stop_grace: Duration,

    /// Claude runtime: the largest stdout line (one frame) read from the CLI; longer ones are
    /// skipped with an `error` event.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_MAX_FRAME_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub claude_max_frame_bytes: usize,
}

impl Default for ClaudeArgs {
    /// The command line's defaults.
    fn default() -> Self {
        ClaudeArgs {
            claude_path: PathBuf::from("claude"),
            allowed_cwd: Vec::new(),
            claude_setting_sources: String::new(),
            claude_start_timeout: Duration::from_secs(60),
            claude_control_timeout: Duration::from_secs(60),
            claude_stop_grace: Duration::from_secs(5),
            claude_max_frame_bytes: 32 * 1024 * 1024,
        }
    }
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

/// A duration above zero (a zero timeout would close every connection at once).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be above zero"));
    }
    Ok(d)
}

/// A retention of at least a minute: `0` would empty the log as it is written.
fn parse_retention(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(60) {
        return Err(format!("retention {s:?} is under a minute"));
    }
    Ok(d)
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum AuthMode {
    Disabled,
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

/// A secret string whose `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything [`crate::app::run`] needs, resolved (a concrete database URL, the auth mode).
/// `Debug` leaves out the database URL (it may carry a password) and the token.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub auth: AuthMode,
    /// Verifies JWT bearer tokens, when configured (besides the static token).
    pub jwt: Option<std::sync::Arc<crate::auth::jwt::JwtVerifier>>,
    /// A bearer token whose holder is the admin principal.
    pub admin_token: Option<Secret>,
    /// Events older than this are removed in the background.
    pub retention: Option<Duration>,
    pub retention_batch: usize,
    pub agent: AgentKind,
    /// Local state (the Claude runtime's per-session directories live in `sessions/`).
    pub data_dir: PathBuf,
    pub claude: ClaudeArgs,
    pub fixtures: PathBuf,
    pub default_fixture: Option<String>,
    pub ring_size: usize,
    pub idle_timeout: Duration,
    pub max_sessions: Option<usize>,
    pub keepalive: Duration,
    pub max_queued_inputs: usize,
    pub max_body_bytes: usize,
    pub max_subscribers_per_session: usize,
    pub sse_write_timeout: Duration,
    pub sse_buffer_bytes: usize,
    pub request_timeout: Duration,
    pub http_header_timeout: Duration,
    pub http_idle_timeout: Duration,
    /// `None`: derived from the descriptor limit at start ([`crate::http::limits`]).
    pub max_connections: Option<usize>,
    pub db_statement_timeout: Duration,
    pub metrics_listen: Option<SocketAddr>,
    pub db_pool_size: usize,
    pub host_name: String,
    pub drain_timeout: Duration,
    pub lease: Duration,
    pub ownership_check: Duration,
}

impl Config {
    /// Defaults matching the command line's, for a given database and auth mode.
    pub fn new(database_url: String, auth: AuthMode) -> Config {
        Config {
            database_url,
            auth,
            jwt: None,
            admin_token: None,
            retention: None,
            retention_batch: 1000,
            agent: AgentKind::Replay,
            data_dir: PathBuf::from("./.agent-webkit"),
            claude: ClaudeArgs::default(),
            fixtures: PathBuf::from("tests/fixtures/reference"),
            default_fixture: None,
            ring_size: 1000,
            idle_timeout: Duration::from_secs(300),
            max_sessions: None,
            keepalive: Duration::from_secs(15),
            max_queued_inputs: 64,
            max_body_bytes: 10 * 1024 * 1024,
            max_subscribers_per_session: 64,
            sse_write_timeout: Duration::from_secs(30),
            sse_buffer_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(15),
            http_header_timeout: Duration::from_secs(10),
            http_idle_timeout: Duration::from_secs(60),
            max_connections: None,
            db_statement_timeout: Duration::from_secs(10),
            metrics_listen: None,
            db_pool_size: 32,
            host_name: default_host_name(),
            drain_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(10),
            ownership_check: Duration::from_millis(250),
        }
    }

    pub fn from_args(args: &ServeArgs, database_url: String, auth: AuthMode) -> Config {
        Config {
            agent: args.agent,
            data_dir: args.db.data_dir.clone(),
            claude: args.claude.clone(),
            fixtures: args.fixtures.clone(),
            default_fixture: args.default_fixture.clone(),
            ring_size: args.ring_size as usize,
            idle_timeout: args.idle_timeout,
            max_sessions: args.max_sessions,
            keepalive: args.keepalive,
            max_queued_inputs: args.max_queued_inputs as usize,
            max_body_bytes: args.max_body_bytes,
            max_subscribers_per_session: args.max_subscribers_per_session as usize,
            sse_write_timeout: args.sse_write_timeout,
            sse_buffer_bytes: args.sse_buffer_bytes as usize,
            request_timeout: args.request_timeout,
            http_header_timeout: args.http_header_timeout,
            http_idle_timeout: args.http_idle_timeout,
            max_connections: args.max_connections.map(|n| n as usize),
            db_statement_timeout: args.db_statement_timeout,
            metrics_listen: args.metrics_listen,
            db_pool_size: args.db_pool_size,
            host_name: args.host_name.clone().unwrap_or_else(default_host_name),
            retention: args.retention,
            retention_batch: args.retention_batch as usize,
            drain_timeout: args.drain_timeout,
            lease: args.lease,
            ownership_check: args.ownership_check,
            ..Config::new(database_url, auth)
        }
    }

    /// Adds the JWT verifier and admin token ([`crate::auth::Verifiers::from_env`]).
    pub fn with_verifiers(self, verifiers: crate::auth::Verifiers) -> Config {
        Config {
            jwt: verifiers.jwt,
            admin_token: verifiers.admin_token,
            ..self
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("database_url", &"<redacted>")
            .field("auth", &self.auth)
            .field("agent", &self.agent)
            .field("ring_size", &self.ring_size)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_sessions", &self.max_sessions)
            .field("host_name", &self.host_name)
            .finish_non_exhaustive()
    }
}

fn default_host_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}", std::process::id())
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
    fn no_auth_env_accepts_1() {
        // Only this test touches AGENT_WEBKIT_NO_AUTH; the others build `Config` directly.
        std::env::set_var("AGENT_WEBKIT_NO_AUTH", "1");
        let cli = Cli::try_parse_from(["agent-webkit-server", "serve"]);
        std::env::remove_var("AGENT_WEBKIT_NO_AUTH");
        let Command::Serve(args) = cli.unwrap().command else {
            panic!("expected serve")
        };
        assert!(args.no_auth);
    }

    #[test]
    fn retention_takes_days_and_refuses_tiny_values() {
        assert_eq!(parse_retention("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_retention("0").is_err());
        assert!(parse_retention("5s").is_err());
    }

    #[test]
    fn claude_defaults_match_the_command_line() {
        let cli = Cli::try_parse_from(["agent-webkit-server", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.claude, ClaudeArgs::default());
        let cli = Cli::try_parse_from([
            "agent-webkit-server",
            "serve",
            "--allowed-cwd",
            "/a",
            "--allowed-cwd",
            "/b:/c",
        ]);
        let Command::Serve(args) = cli.unwrap().command else {
            panic!("expected serve")
        };
        assert_eq!(
            args.claude.allowed_cwd,
            ["/a", "/b", "/c"].map(PathBuf::from)
        );
    }

    #[test]
    fn limit_defaults_match_the_command_line() {
        let cli = Cli::try_parse_from(["agent-webkit-server", "serve"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("expected serve")
        };
        let parsed = Config::from_args(&args, String::new(), AuthMode::Disabled);
        let built = Config::new(String::new(), AuthMode::Disabled);
        assert_eq!(
            (
                parsed.max_subscribers_per_session,
                parsed.sse_write_timeout,
                parsed.sse_buffer_bytes,
                parsed.request_timeout,
                parsed.http_header_timeout,
                parsed.http_idle_timeout,
                parsed.max_connections,
                parsed.db_statement_timeout,
                parsed.metrics_listen,
            ),
            (
                built.max_subscribers_per_session,
                built.sse_write_timeout,
                built.sse_buffer_bytes,
                built.request_timeout,
                built.http_header_timeout,
                built.http_idle_timeout,
                built.max_connections,
                built.db_statement_timeout,
                built.metrics_listen,
            )
        );
    }

    #[test]
    fn auth_token_is_redacted_in_debug() {
        let mut cfg = Config::new(
            "postgres://u:pw-secret@h/db".into(),
            AuthMode::Token("hunter2".into()),
        );
        cfg.admin_token = Some(Secret("swordfish".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("pw-secret"));
        assert!(!shown.contains("swordfish"));
    }
}
