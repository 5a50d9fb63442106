//! The command line: flags and environment, parsed into the library's plain [`Config`].
//!
//! Every flag also reads an environment variable (shown in `--help`). Secrets (the bearer
//! tokens, the JWT secret) come from the environment only, never from flags, so they do not
//! show in `ps`. Defaults are the `Default` impls of `config`'s settings, shown by `--help`.

pub mod audit;
mod format;
pub mod serve;

use agent_webkit_server::config::{self, parse_duration};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

pub use serve::ServeArgs;

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
    Audit(Box<audit::AuditCommand>),
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres connection URL. Without one, a private PostgreSQL cluster is started in
    /// --data-dir from the PostgreSQL server binaries on this machine.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded PostgreSQL cluster and other local state.
    #[arg(long, env = "AGENT_WEBKIT_DATA_DIR", default_value = config::DATA_DIR)]
    pub data_dir: PathBuf,
}

impl DbArgs {
    /// The database, or the embedded cluster started for the caller (who stops it).
    pub async fn open(&self) -> anyhow::Result<(String, Option<pg_embedded::PgCluster>)> {
        Ok(
            pg_embedded::PgCluster::url_or_start(self.database_url.as_deref(), &self.data_dir)
                .await?,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl From<LogFormat> for agent_webkit_server::telemetry::LogFormat {
    fn from(f: LogFormat) -> Self {
        match f {
            LogFormat::Text => Self::Text,
            LogFormat::Json => Self::Json,
        }
    }
}

/// A duration on the command line: plain seconds (`300`) or with a unit (`5m`, `250ms`), shown
/// in `--help` as humantime prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Human(pub Duration);

impl std::fmt::Display for Human {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl std::str::FromStr for Human {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Human)
    }
}

/// A duration above zero (a zero timeout would close every connection at once).
fn positive(s: &str) -> Result<Human, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("{s:?} must be above zero"));
    }
    Ok(Human(d))
}

/// A retention of at least a minute: `0` would empty the log as it is written.
fn retention(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(60) {
        return Err(format!("retention {s:?} is under a minute"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_takes_days_and_refuses_tiny_values() {
        assert_eq!(retention("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert!(retention("0").is_err());
        assert!(retention("5s").is_err());
    }

    #[test]
    fn durations_print_as_they_parse() {
        for d in ["300ms", "15s", "5m", "1h 30m"] {
            let h: Human = d.parse().unwrap();
            assert_eq!(h.to_string().parse::<Human>(), Ok(h));
        }
        assert!(positive("0").is_err());
    }
}
