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
    /// Load a server over HTTP + SSE and report throughput, latency and memory (BENCHMARKS.md).
    Bench(Box<crate::bench::BenchArgs>),
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
    /// Drives the Claude Code CLI (not available yet).
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

/// Everything [`crate::app::run`] needs, resolved (a concrete database URL, the auth mode).
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub auth: AuthMode,
    pub agent: AgentKind,
    pub fixtures: PathBuf,
    pub default_fixture: Option<String>,
    pub ring_size: usize,
    pub idle_timeout: Duration,
    pub max_sessions: Option<usize>,
    pub keepalive: Duration,
    pub max_queued_inputs: usize,
    pub max_body_bytes: usize,
    pub db_pool_size: usize,
    pub host_name: String,
}

impl Config {
    /// Defaults matching the command line's, for a given database and auth mode.
    pub fn new(database_url: String, auth: AuthMode) -> Config {
        Config {
            database_url,
            auth,
            agent: AgentKind::Replay,
            fixtures: PathBuf::from("tests/fixtures/reference"),
            default_fixture: None,
            ring_size: 1000,
            idle_timeout: Duration::from_secs(300),
            max_sessions: None,
            keepalive: Duration::from_secs(15),
            max_queued_inputs: 64,
            max_body_bytes: 10 * 1024 * 1024,
            db_pool_size: 32,
            host_name: default_host_name(),
        }
    }

    pub fn from_args(args: &ServeArgs, database_url: String, auth: AuthMode) -> Config {
        Config {
            agent: args.agent,
            fixtures: args.fixtures.clone(),
            default_fixture: args.default_fixture.clone(),
            ring_size: args.ring_size as usize,
            idle_timeout: args.idle_timeout,
            max_sessions: args.max_sessions,
            keepalive: args.keepalive,
            max_queued_inputs: args.max_queued_inputs as usize,
            max_body_bytes: args.max_body_bytes,
            db_pool_size: args.db_pool_size,
            host_name: args.host_name.clone().unwrap_or_else(default_host_name),
            ..Config::new(database_url, auth)
        }
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
    fn auth_token_is_redacted_in_debug() {
        let cfg = Config::new("postgres://x".into(), AuthMode::Token("hunter2".into()));
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
