//! `agent-webkit-server serve` and `migrate`: the flags of a host, and what only the binary does
//! around [`app::run`] (the embedded Postgres, signals, the startup token, the descriptor
//! limit).

use super::{positive, retention, DbArgs, Human, LogFormat};
use agent_webkit_server::app;
use agent_webkit_server::config::{
    AgentKind, AgentSettings, AuthMode, AuthSettings, ClaudeSettings, Config, HostSettings,
    HttpSettings, JwtSettings, ReplaySettings, RetentionSettings, Secret, SessionSettings,
    StoreSettings,
};
use agent_webkit_server::http::limits;
use agent_webkit_server::store::Store;
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The defaults `--help` shows, from the settings' `Default` impls.
fn sessions() -> SessionSettings {
    SessionSettings::default()
}
fn http() -> HttpSettings {
    HttpSettings::default()
}
fn host() -> HostSettings {
    HostSettings::default()
}
fn claude() -> ClaudeSettings {
    ClaudeSettings::default()
}
fn store() -> StoreSettings {
    StoreSettings::default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Agent {
    /// Plays scenario files (JSON Lines) from --fixtures: tests, demos, benchmarks.
    Replay,
    /// Drives the Claude Code CLI over stream-json, one process per session.
    Claude,
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
    pub agent: Agent,

    #[command(flatten)]
    pub claude: ClaudeArgs,

    /// Replay runtime: directory of scenario files (`<name>.jsonl`).
    #[arg(long, env = "AGENT_WEBKIT_FIXTURES",
          default_value_os_t = ReplaySettings::default().fixtures)]
    pub fixtures: PathBuf,

    /// Replay runtime: scenario used when `POST /sessions` names no `fixture`.
    #[arg(long, env = "AGENT_WEBKIT_DEFAULT_FIXTURE")]
    pub default_fixture: Option<String>,

    /// Events kept in memory per session, as ready-encoded SSE frames. Older events are served
    /// from Postgres.
    #[arg(long, env = "AGENT_WEBKIT_RING_SIZE", default_value_t = sessions().ring_size as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub ring_size: u64,

    /// Evict a session from memory after this long with no input and no subscriber (it stays
    /// in Postgres, dormant, and comes back on the next request). E.g. `300`, `300s`, `5m`.
    #[arg(long, env = "AGENT_WEBKIT_IDLE_TIMEOUT", default_value_t = Human(sessions().idle_timeout))]
    pub idle_timeout: Human,

    /// Most sessions this host holds in memory; beyond it, `503` with `Retry-After`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_SESSIONS")]
    pub max_sessions: Option<usize>,

    /// Disable authentication (development only; logs a warning). Otherwise the bearer token
    /// is AGENT_WEBKIT_AUTH_TOKEN (or AGENT_WEBKIT_TOKEN), or a random one printed at start.
    #[arg(long, env = "AGENT_WEBKIT_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_auth: bool,

    /// Interval of `: keepalive` comments on idle streams.
    #[arg(long, env = "AGENT_WEBKIT_KEEPALIVE", default_value_t = Human(sessions().keepalive))]
    pub keepalive: Human,

    /// Inbound messages a session queues (user messages waiting for their turn, control
    /// messages); beyond it, `503` with `Retry-After`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_QUEUED_INPUTS",
          default_value_t = sessions().max_queued_inputs as u64,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_queued_inputs: u64,

    /// Largest accepted request body in bytes (`413` beyond).
    #[arg(long, env = "AGENT_WEBKIT_MAX_BODY_BYTES", default_value_t = http().max_body_bytes)]
    pub max_body_bytes: usize,

    /// Most open streams per session on this host; beyond it, `429`.
    #[arg(long, env = "AGENT_WEBKIT_MAX_SUBSCRIBERS_PER_SESSION",
          default_value_t = sessions().max_subscribers as u64,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_subscribers_per_session: u64,

    /// A connection whose client accepts no bytes for this long is dropped (a dead or stalled
    /// SSE subscriber), freeing what it held.
    #[arg(long, env = "AGENT_WEBKIT_SSE_WRITE_TIMEOUT", default_value_t = Human(http().sse_write_timeout))]
    pub sse_write_timeout: Human,

    /// Most bytes one subscriber takes at once from the ring or from Postgres (one chunk, or
    /// one page of a catch-up read); a subscriber holds at most one such chunk in flight.
    #[arg(long, env = "AGENT_WEBKIT_SSE_BUFFER_BYTES",
          default_value_t = sessions().sse_buffer_bytes as u64,
          value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024))]
    pub sse_buffer_bytes: u64,

    /// A new connection must send its first request head within this (from the accept; a
    /// client trickling bytes does not extend it), or it is closed.
    #[arg(long, env = "AGENT_WEBKIT_HTTP_HEADER_TIMEOUT",
          default_value_t = Human(http().header_timeout), value_parser = positive)]
    pub http_header_timeout: Human,

    /// A keep-alive connection with no request in flight is closed after this long; the head
    /// of its next request must be complete by then.
    #[arg(long, env = "AGENT_WEBKIT_HTTP_IDLE_TIMEOUT",
          default_value_t = Human(http().idle_timeout), value_parser = positive)]
    pub http_idle_timeout: Human,

    /// Most open connections on --listen; beyond it a connection is answered `503
    /// too_many_connections` and closed (a few more are kept for `/healthz` and `/readyz`).
    /// Default: three quarters of the descriptor limit, at most 10000.
    #[arg(long, env = "AGENT_WEBKIT_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_connections: Option<u64>,

    /// A request that has no answer after this long gets `503 request_timeout` (the work it
    /// started still finishes). Bounds every wait a handler can get into.
    #[arg(long, env = "AGENT_WEBKIT_REQUEST_TIMEOUT", default_value_t = Human(http().request_timeout))]
    pub request_timeout: Human,

    /// Postgres cancels any statement of this host running longer than this (`0`: never), so
    /// a saturated database turns into `503`s and retries rather than hanging requests.
    #[arg(long, env = "AGENT_WEBKIT_DB_STATEMENT_TIMEOUT",
          default_value_t = Human(store().statement_timeout.unwrap_or_default()))]
    pub db_statement_timeout: Human,

    /// Also serve `GET /metrics` without authentication on this address (e.g. `0.0.0.0:9464`
    /// on a port only the scraper reaches). `/metrics` on --listen requires an admin principal.
    #[arg(long, env = "AGENT_WEBKIT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// On SIGTERM: how long running turns may take to finish before every session is released.
    #[arg(long, env = "AGENT_WEBKIT_DRAIN_TIMEOUT", default_value_t = Human(host().drain_timeout))]
    pub drain_timeout: Human,

    /// A host whose heartbeat is older than this is dead to the others (partitions; a killed
    /// host is detected at once through its advisory lock).
    #[arg(long, env = "AGENT_WEBKIT_LEASE", default_value_t = Human(host().lease))]
    pub lease: Human,

    /// How often a host checks that it still owns the sessions it serves.
    #[arg(long, env = "AGENT_WEBKIT_OWNERSHIP_CHECK", default_value_t = Human(host().ownership_check))]
    pub ownership_check: Human,

    /// Postgres connections in this host's pool.
    #[arg(long, env = "AGENT_WEBKIT_DB_POOL_SIZE", default_value_t = store().pool_size)]
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
    #[arg(long, env = "AGENT_WEBKIT_RETENTION", value_parser = retention)]
    pub retention: Option<Duration>,

    /// Rows removed per retention batch (one short transaction each).
    #[arg(long, env = "AGENT_WEBKIT_RETENTION_BATCH",
          default_value_t = RetentionSettings::default().batch as u64,
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
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_PATH", default_value_os_t = claude().path)]
    pub claude_path: PathBuf,

    /// Claude runtime: a directory a session's `cwd` may lie in (repeatable; the env var takes
    /// a `:`-separated list). Without one, every session runs in its own directory under
    /// --data-dir and may not choose a `cwd`.
    #[arg(long, env = "AGENT_WEBKIT_ALLOWED_CWD", value_delimiter = ':')]
    pub allowed_cwd: Vec<PathBuf>,

    /// Claude runtime: which settings files the CLI loads (`--setting-sources`), e.g.
    /// `user,project,local`. Empty (the default) loads none, so a session's directory cannot
    /// bring its own hooks or permission rules.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_SETTING_SOURCES", default_value_t = claude().setting_sources)]
    pub claude_setting_sources: String,

    /// Claude runtime: how long a starting CLI may take to answer `initialize`.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_START_TIMEOUT", default_value_t = Human(claude().start_timeout))]
    pub claude_start_timeout: Human,

    /// Claude runtime: how long the CLI may take to answer a control request (interrupt, mode,
    /// model, stop task), and to end a turn after an interrupt, before it is given up on.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_CONTROL_TIMEOUT", default_value_t = Human(claude().control_timeout))]
    pub claude_control_timeout: Human,

    /// Claude runtime: when a session stops, how long the CLI gets after stdin closes before
    /// SIGTERM, and after SIGTERM before SIGKILL (to its whole process group).
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_STOP_GRACE", default_value_t = Human(claude().stop_grace))]
    pub claude_stop_grace: Human,

    /// Claude runtime: the largest stdout line (one frame) read from the CLI; longer ones are
    /// skipped with an `error` event.
    #[arg(long, env = "AGENT_WEBKIT_CLAUDE_MAX_FRAME_BYTES", default_value_t = claude().max_frame_bytes)]
    pub claude_max_frame_bytes: usize,
}

impl ServeArgs {
    /// The settings these flags give, for a resolved database and auth.
    pub fn config(&self, database_url: String, auth: AuthSettings) -> Config {
        let claude = &self.claude;
        Config {
            store: StoreSettings {
                database_url,
                pool_size: self.db_pool_size,
                statement_timeout: Some(self.db_statement_timeout.0).filter(|d| !d.is_zero()),
            },
            auth,
            agent: AgentSettings {
                kind: match self.agent {
                    Agent::Replay => AgentKind::Replay,
                    Agent::Claude => AgentKind::Claude,
                },
                replay: ReplaySettings {
                    fixtures: self.fixtures.clone(),
                    default_fixture: self.default_fixture.clone(),
                },
                claude: ClaudeSettings {
                    path: claude.claude_path.clone(),
                    allowed_cwd: claude.allowed_cwd.clone(),
                    setting_sources: claude.claude_setting_sources.clone(),
                    start_timeout: claude.claude_start_timeout.0,
                    control_timeout: claude.claude_control_timeout.0,
                    stop_grace: claude.claude_stop_grace.0,
                    max_frame_bytes: claude.claude_max_frame_bytes,
                    data_dir: self.db.data_dir.clone(),
                },
            },
            sessions: SessionSettings {
                ring_size: self.ring_size as usize,
                idle_timeout: self.idle_timeout.0,
                max_sessions: self.max_sessions,
                keepalive: self.keepalive.0,
                max_queued_inputs: self.max_queued_inputs as usize,
                max_subscribers: self.max_subscribers_per_session as usize,
                sse_buffer_bytes: self.sse_buffer_bytes as usize,
            },
            http: HttpSettings {
                max_body_bytes: self.max_body_bytes,
                request_timeout: self.request_timeout.0,
                header_timeout: self.http_header_timeout.0,
                idle_timeout: self.http_idle_timeout.0,
                max_connections: self.max_connections.map(|n| n as usize),
                sse_write_timeout: self.sse_write_timeout.0,
                metrics_listen: self.metrics_listen,
            },
            host: HostSettings {
                name: self
                    .host_name
                    .clone()
                    .unwrap_or_else(agent_webkit_server::config::default_host_name),
                lease: self.lease.0,
                ownership_check: self.ownership_check.0,
                drain_timeout: self.drain_timeout.0,
            },
            retention: RetentionSettings {
                max_age: self.retention,
                batch: self.retention_batch as usize,
            },
        }
    }
}

/// `agent-webkit-server serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every connection is a descriptor: take all the kernel allows (the cap stays below it).
    let (before, now) = limits::raise_descriptor_limit();
    tracing::info!(?before, ?now, "descriptor limit (soft RLIMIT_NOFILE)");
    // Refuse an unavailable runtime or a bad key before starting anything.
    let auth = auth_settings(&args)?;
    let unresolved = args.config(String::new(), auth.clone());
    app::check(&unresolved)?;
    let (database_url, cluster) = args.db.open().await?;
    let config = args.config(database_url, auth);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    let result = app::run(config, listener, shutdown).await;
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    result
}

/// `agent-webkit-server migrate`.
pub async fn migrate(db: DbArgs) -> anyhow::Result<()> {
    let (url, cluster) = db.open().await?;
    Store::connect(&url, 2)?.migrate().await?;
    tracing::info!("migrations applied");
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    Ok(())
}

/// The auth mode and verifier settings from the flags and the secrets' environment variables.
fn auth_settings(args: &ServeArgs) -> anyhow::Result<AuthSettings> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let a = &args.auth;
    let jwt = JwtSettings {
        hs256_secret: env("AGENT_WEBKIT_JWT_SECRET").map(Secret),
        public_key_pem: match &a.jwt_public_key_file {
            Some(path) => Some(
                std::fs::read(path)
                    .with_context(|| format!("reading --jwt-public-key-file {}", path.display()))?,
            ),
            None => None,
        },
        issuer: a.jwt_issuer.clone(),
        audience: a.jwt_audience.clone(),
        admin_claim: a.jwt_admin_claim.clone(),
    };
    // Any JWT option configures JWTs (one without a key is refused at start).
    let configured = jwt.hs256_secret.is_some()
        || jwt.public_key_pem.is_some()
        || jwt.issuer.is_some()
        || jwt.audience.is_some()
        || jwt.admin_claim.is_some();
    Ok(AuthSettings {
        mode: auth_mode(args.no_auth),
        jwt: configured.then_some(jwt),
        admin_token: env("AGENT_WEBKIT_ADMIN_TOKEN").map(Secret),
    })
}

fn auth_mode(no_auth: bool) -> AuthMode {
    if no_auth {
        tracing::warn!(
            "AUTHENTICATION IS DISABLED (--no-auth): anyone who can reach this port can run agents"
        );
        return AuthMode::Disabled;
    }
    let from_env = ["AGENT_WEBKIT_AUTH_TOKEN", "AGENT_WEBKIT_TOKEN"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
    match from_env {
        Some(token) => AuthMode::Token(token),
        None => {
            let token = random_token();
            // Printed once, on stdout, so the quick start works; never logged.
            println!(
                "No AGENT_WEBKIT_AUTH_TOKEN set; generated bearer token for this run:\n  {token}"
            );
            AuthMode::Token(token)
        }
    }
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn signal_shutdown(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn serve_args(argv: &[&str]) -> ServeArgs {
        let cli = Cli::try_parse_from(["agent-webkit-server", "serve"].iter().chain(argv));
        let Command::Serve(args) = cli.unwrap().command else {
            panic!("expected serve")
        };
        *args
    }

    #[test]
    fn the_command_lines_defaults_are_the_settings_defaults() {
        let parsed = serve_args(&[]).config(String::new(), AuthSettings::default());
        let built = Config::new(String::new(), AuthMode::Disabled);
        assert_eq!(parsed.sessions, built.sessions);
        assert_eq!(parsed.http, built.http);
        assert_eq!(parsed.store, built.store);
        assert_eq!(parsed.retention, built.retention);
        assert_eq!(parsed.agent, built.agent);
        let (mut parsed_host, built_host) = (parsed.host, built.host);
        parsed_host.name = built_host.name.clone();
        assert_eq!(parsed_host, built_host);
    }

    #[test]
    fn allowed_cwd_repeats_and_splits() {
        let args = serve_args(&["--allowed-cwd", "/a", "--allowed-cwd", "/b:/c"]);
        assert_eq!(
            args.claude.allowed_cwd,
            ["/a", "/b", "/c"].map(PathBuf::from)
        );
    }

    #[test]
    fn no_auth_env_accepts_1() {
        // Only this test touches AGENT_WEBKIT_NO_AUTH.
        std::env::set_var("AGENT_WEBKIT_NO_AUTH", "1");
        let args = serve_args(&[]);
        std::env::remove_var("AGENT_WEBKIT_NO_AUTH");
        assert!(args.no_auth);
    }

    #[test]
    fn a_zero_statement_timeout_means_none() {
        let config = serve_args(&["--db-statement-timeout", "0"])
            .config(String::new(), AuthSettings::default());
        assert_eq!(config.store.statement_timeout, None);
    }
}
