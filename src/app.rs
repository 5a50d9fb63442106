//! The one entry point main and tests share: [`run`] serves on a pre-bound listener until the
//! shutdown token fires. [`serve`] adds what only the binary needs (embedded Postgres, signals,
//! the startup token).

use crate::agent::replay::ReplayRuntime;
use crate::agent::AgentRuntime;
use crate::config::{AgentKind, AuthMode, Config, ServeArgs};
use crate::pg_embedded::{ClusterOptions, PgCluster};
use crate::session::registry::Registry;
use crate::session::Deps;
use crate::store::{hosts, writer::Writer, Store};
use anyhow::Context;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Cancelled when the host starts shutting down: `/readyz` fails, creation is refused.
    pub draining: CancellationToken,
}

/// Runs the server until `shutdown` is cancelled, then releases every session it holds (so any
/// host can take them over at once), ends every stream, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = agent_runtime(&config)?;
    let store = Store::connect(&config.database_url, config.db_pool_size)?;
    store.migrate().await.context("applying migrations")?;
    let host_id = hosts::register(&store, &config.host_name).await?;
    let background = CancellationToken::new();
    let keeper = tokio::spawn(hosts::keep_alive(
        store.clone(),
        host_id,
        background.clone(),
    ));
    let (writer, _writer_task) = Writer::spawn(store.clone(), host_id, background.clone());
    let streams = CancellationToken::new();
    let deps = Arc::new(Deps {
        store: store.clone(),
        writer,
        runtime,
        host_id,
        ring_size: config.ring_size,
        queue_capacity: config.max_queued_inputs,
        keepalive: config.keepalive,
        shutdown: streams.clone(),
        live: AtomicUsize::new(0),
    });
    let registry = Arc::new(Registry::new(deps, config.max_sessions));
    tokio::spawn(registry.clone().run_reaper(config.idle_timeout));
    let state = AppState {
        registry: registry.clone(),
        config: Arc::new(config),
        draining: shutdown.clone(),
    };
    tracing::info!(addr = %listener.local_addr()?, host_id, "listening");

    // On shutdown: release sessions first (their streams end as they go), then end any stream
    // left (closed sessions' history reads), so the graceful HTTP shutdown can complete.
    let release = {
        let (registry, shutdown, streams) = (registry.clone(), shutdown.clone(), streams.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            registry.release_all().await;
            streams.cancel();
        })
    };
    // SSE frames are small writes: with Nagle's algorithm a frame that follows one not yet
    // acknowledged waits for the ACK, up to the 40 ms delayed-ACK timer (BENCHMARKS.md, lag).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, crate::http::router(state))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    release.await?;
    if let Err(e) = hosts::mark_released(&store, host_id).await {
        tracing::warn!(error = %e, "could not mark the host released");
    }
    background.cancel();
    let _ = keeper.await;
    Ok(())
}

fn agent_runtime(config: &Config) -> anyhow::Result<Arc<dyn AgentRuntime>> {
    match config.agent {
        AgentKind::Replay => Ok(Arc::new(ReplayRuntime::new(
            config.fixtures.clone(),
            config.default_fixture.clone(),
        ))),
        AgentKind::Claude => {
            anyhow::bail!("--agent claude is not available in this version yet; use --agent replay")
        }
    }
}

/// `agent-webkit-server serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Refuse an unavailable runtime before starting anything.
    agent_runtime(&Config::from_args(&args, String::new(), AuthMode::Disabled))?;
    let auth = resolve_auth(args.no_auth);
    let (database_url, cluster) = database(&args.db).await?;
    let config = Config::from_args(&args, database_url, auth);
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));
    let result = run(config, listener, shutdown).await;
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    result
}

/// `agent-webkit-server migrate`.
pub async fn migrate(db: crate::config::DbArgs) -> anyhow::Result<()> {
    let (url, cluster) = database(&db).await?;
    Store::connect(&url, 2)?.migrate().await?;
    tracing::info!("migrations applied");
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    Ok(())
}

/// The configured database, or the embedded cluster in the data directory.
async fn database(db: &crate::config::DbArgs) -> anyhow::Result<(String, Option<PgCluster>)> {
    if let Some(url) = &db.database_url {
        return Ok((url.clone(), None));
    }
    std::fs::create_dir_all(&db.data_dir)
        .with_context(|| format!("creating data dir {}", db.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&db.data_dir)?.join("pg");
    tracing::info!(dir = %data_dir.display(), "no --database-url: starting the embedded PostgreSQL");
    let cluster = PgCluster::start(ClusterOptions {
        data_dir,
        ephemeral: false,
        fsync: true,
        port: None,
    })
    .await?;
    let url = cluster.url("postgres");
    Ok((url, Some(cluster)))
}

fn resolve_auth(no_auth: bool) -> AuthMode {
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
