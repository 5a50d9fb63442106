//! The tools agent-webkit-server is measured with, kept out of the server's binary:
//!
//! - [`load`]: `agent-webkit-bench load`, a black-box load generator over HTTP + SSE against
//!   any wire-protocol-1.0 server with a fixture-replay agent (BENCHMARKS.md);
//! - [`generate`]: a synthetic data set (≥ 1M events) for the audit benchmarks;
//! - [`queries`]: each audit query's plan (which index) and latency;
//! - [`writer`]: the group-commit writer's append rate with the audit columns and indexes.

pub mod generate;
pub mod load;
pub mod queries;
pub mod writer;

use clap::Args;
use std::path::PathBuf;

/// Which database a data tool works on.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Postgres connection URL. Without one, a private PostgreSQL cluster is started in
    /// --data-dir (the server's embedded default).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory of the embedded PostgreSQL cluster.
    #[arg(long, env = "AGENT_WEBKIT_DATA_DIR", default_value = "./.agent-webkit")]
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
