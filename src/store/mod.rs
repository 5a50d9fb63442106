//! Postgres: the source of truth and the only coordinator between hosts.
//!
//! - [`writer`]: the group-commit writer — where events are *committed*, then handed to the ring.
//! - [`sessions`]: session rows, claiming (fencing by epoch), release, close.
//! - [`events`]: reads of the event log (ring refill, resume pages, retention bounds).
//! - [`inputs`]: the record of every inbound message and the state of user turns.
//! - [`forward`]: inputs a non-owner takes, recorded for the owner to pick up.
//! - [`listen`]: the host's `LISTEN` connection: other hosts' commits and forwarded inputs.
//! - [`hosts`]: this process's host row, its advisory lock and heartbeat.
//! - [`hosts_view`]: every host as an operator sees it (liveness, lease age, sessions owned).
//! - [`audit`]: history and audit reads (keyset pages over the indexes of V2), built with
//!   [`query`].
//! - [`retention`]: background removal of old events, in batches.
//! - [`pressure`]: when the writer counts as overloaded (CoDel's rule on queueing delay).
//! - [`transcripts`]: the Claude CLI's mirrored transcripts, read back for `--resume`.
//! - [`text`]: what `text`/`jsonb` columns and btree entries cannot hold, checked at the door.
//!
//! One driver, tokio-postgres, behind a deadpool pool. Every SQLSTATE is interpreted in one
//! place, [`StoreError::from`], so callers match on meaning (unavailable, conflict), not codes.

pub mod audit;
pub mod events;
pub mod forward;
pub mod hosts;
pub mod hosts_view;
pub mod inputs;
pub mod listen;
pub mod pressure;
pub mod query;
pub mod retention;
pub mod sessions;
pub mod transcripts;
pub mod writer;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

mod embedded_migrations {
    refinery::embed_migrations!("migrations");
}

/// Namespace of this server's advisory locks (first key of the two-key form).
pub const LOCK_NS: i32 = 0x4157_4b53; // "AWKS"
/// Messages above this leave their connection out of the pool ([`Store::recycle`]).
pub const LARGE_MESSAGE: usize = 1 << 20;
/// Second key of the migration lock, under [`LOCK_NS`]. Host locks use positive host ids.
const MIGRATION_LOCK: i32 = -1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Postgres is unreachable, restarting, or the pool is exhausted: retry later (503).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule said no (e.g. a second accepted decision for one correlation id).
    #[error("conflict: {0}")]
    Conflict(String),
    /// This host no longer owns the session (its epoch is stale).
    #[error("session is owned by another host")]
    Fenced,
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        match e.code() {
            Some(c) if *c == SqlState::UNIQUE_VIOLATION => StoreError::Conflict(text),
            Some(c) if is_transient(c) => StoreError::Unavailable(text),
            Some(_) => StoreError::Other(text),
            // No SQLSTATE: the connection itself failed or closed.
            None => StoreError::Unavailable(text),
        }
    }
}

/// Connection loss, server shutdown and resource exhaustion: worth a retry.
fn is_transient(c: &SqlState) -> bool {
    let code = c.code();
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources
        || code.starts_with("57P") // admin / crash shutdown, cannot connect now
        || *c == SqlState::QUERY_CANCELED // statement_timeout: Postgres is saturated
        // A standby, or a primary being demoted (`default_transaction_read_only`): not a data
        // error, the primary is elsewhere or coming back.
        || *c == SqlState::READ_ONLY_SQL_TRANSACTION
        || *c == SqlState::T_R_SERIALIZATION_FAILURE
        || *c == SqlState::T_R_DEADLOCK_DETECTED
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

/// The connection pool and this process's identity as a host.
#[derive(Clone)]
pub struct Store {
    pub pool: Pool,
    pub url: String,
}

impl Store {
    /// Builds the pool. Connections are made lazily; timeouts keep requests from hanging while
    /// Postgres is down (they fail fast with [`StoreError::Unavailable`] and become `503`s).
    pub fn connect(url: &str, max_connections: usize) -> Result<Store, StoreError> {
        Store::connect_with(url, max_connections, None)
    }

    /// [`Store::connect`] with a `statement_timeout` on every pooled connection: Postgres itself
    /// cancels a statement that runs longer (nothing of it is kept), so a saturated database
    /// yields [`StoreError::Unavailable`] (`503`, writer retries) instead of requests that hang.
    pub fn connect_with(
        url: &str,
        max_connections: usize,
        statement_timeout: Option<Duration>,
    ) -> Result<Store, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Other(format!("bad database url: {e}")))?;
        config.connect_timeout(Duration::from_secs(3));
        if let Some(t) = statement_timeout.filter(|t| !t.is_zero()) {
            let ms = t.as_millis().max(1);
            let options = config.get_options().unwrap_or_default();
            config.options(format!("{options} -c statement_timeout={ms}").trim());
        }
        if config.get_application_name().is_none() {
            config.application_name("agent-webkit-server");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(3)))
            .build()
            .map_err(|e| StoreError::Other(e.to_string()))?;
        Ok(Store {
            pool,
            url: url.to_owned(),
        })
    }

    /// A connection of its own, outside the pool (the host's lock, its `LISTEN`), with the
    /// pool's connect timeout: a reconnect through a silent network gives up and tries again
    /// (or the next host of a multi-host URL) instead of waiting for the link to come back.
    pub async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        StoreError,
    > {
        let mut config = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| StoreError::Other(format!("bad database url: {e}")))?;
        config.connect_timeout(Duration::from_secs(3));
        Ok(config.connect(NoTls).await?)
    }

    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Returns a pooled connection that just carried `bytes` in one message: one that carried
    /// a large message is closed instead of pooled. tokio-postgres keeps a connection's buffers
    /// at the size of the largest message it sent or received, so every pooled connection that
    /// once recorded a 10 MiB input or read a megabyte tool result would hold that much for
    /// good (measured: 32 accepted 9.5 MiB messages left 764 MiB resident; BENCHMARKS.md).
    /// A fresh connection costs ~2 ms, paid only after such a message.
    pub fn recycle(client: deadpool_postgres::Object, bytes: usize) {
        if bytes > LARGE_MESSAGE {
            drop(deadpool_postgres::Object::take(client));
        }
    }

    /// Applies the embedded migrations under an advisory lock, so several hosts starting at
    /// once do not race (refinery itself does not lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        // Waiting for another host's migrations is not a slow statement.
        client.batch_execute("SET statement_timeout = 0").await?;
        client
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&LOCK_NS, &MIGRATION_LOCK],
            )
            .await?;
        let result = embedded_migrations::migrations::runner()
            .run_async(&mut **client)
            .await
            .map_err(|e| StoreError::Other(format!("migration failed: {e}")));
        client
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&LOCK_NS, &MIGRATION_LOCK],
            )
            .await?;
        client.batch_execute("RESET statement_timeout").await?;
        result.map(|_| ())
    }

    /// The primary's standbys: (synchronous, all). `None` when it cannot be read (a role
    /// without `pg_monitor` sees no `sync_state`).
    pub async fn standbys(&self) -> Option<(i64, i64)> {
        let client = self.client().await.ok()?;
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE sync_state IN ('sync', 'quorum')), \
                        count(*) FILTER (WHERE sync_state IS NOT NULL) \
                 FROM pg_stat_replication",
                &[],
            )
            .await
            .ok()?;
        Some((row.get(0), row.get(1)))
    }

    /// Readiness: can we write right now? A standby or a primary that refuses writes answers
    /// queries, but nothing could be committed there.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        let check = client.query_one(
            "SELECT current_setting('transaction_read_only') = 'off' AND NOT pg_is_in_recovery()",
            &[],
        );
        let writable: bool = tokio::time::timeout(Duration::from_secs(2), check)
            .await
            .map_err(|_| StoreError::Unavailable("ping timed out".into()))??
            .get(0);
        if !writable {
            return Err(StoreError::Unavailable(
                "the database refuses writes".into(),
            ));
        }
        Ok(())
    }
}
