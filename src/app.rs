//! The one entry point main and tests share: [`run`] serves on a pre-bound listener until the
//! shutdown token fires. [`serve`] adds what only the binary needs (embedded Postgres, signals,
//! the startup token).

use crate::agent::claude::ClaudeRuntime;
use crate::agent::replay::ReplayRuntime;
use crate::agent::AgentRuntime;
use crate::config::{AgentKind, AuthMode, Config, ServeArgs};
use crate::http::limits::{self, Slots};
use crate::http::listener::{self, Serving};
use crate::session::registry::Registry;
use crate::session::{Deps, Ownership};
use crate::store::{hosts, writer::Writer, Store};
use anyhow::Context;
use pg_embedded::PgCluster;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
pub struct AppState {
    pub registry: Arc<Registry>,
    pub config: Arc<Config>,
    /// Cancelled when the host starts shutting down: `/readyz` fails, creation is refused.
    pub draining: CancellationToken,
}

/// The longest a shutdown waits for stopping agents (a Claude CLI gets two stop graces).
const AGENT_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the server until `shutdown` is cancelled, then releases every session it holds (so any
/// host can take them over at once), ends every stream, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = agent_runtime(&config)?;
    let store = Store::connect_with(
        &config.database_url,
        config.db_pool_size,
        Some(config.db_statement_timeout),
    )?;
    store.migrate().await.context("applying migrations")?;
    if let Some((0, all)) = store.standbys().await.filter(|(_, all)| *all > 0) {
        tracing::warn!(
            standbys = all,
            "the primary has only asynchronous standbys: a failover can lose its newest commits, \
             including events clients already received (README, \"Postgres high availability\")"
        );
    }
    let host_id = hosts::register(&store, &config.host_name).await?;
    let background = CancellationToken::new();
    let last_heartbeat: hosts::LastBeat = Arc::new(Mutex::new(Instant::now()));
    let keeper = tokio::spawn(hosts::keep_alive(
        store.clone(),
        host_id,
        hosts::heartbeat_interval(config.lease),
        last_heartbeat.clone(),
        background.clone(),
    ));
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (writer, _writer_task) =
        Writer::spawn_with(store.clone(), host_id, background.clone(), metrics.clone());
    crate::store::retention::spawn(&store, &config, background.clone());
    let streams = CancellationToken::new();
    let hub = Arc::new(crate::store::listen::Hub::default());
    tokio::spawn(crate::store::listen::run(
        store.clone(),
        hub.clone(),
        background.clone(),
    ));
    let deps = Arc::new(Deps {
        store: store.clone(),
        writer,
        runtime: runtime.clone(),
        host_id,
        ring_size: config.ring_size,
        queue_capacity: config.max_queued_inputs,
        keepalive: config.keepalive,
        ownership: Ownership {
            lease: config.lease,
            check_interval: config.ownership_check,
        },
        shutdown: streams.clone(),
        draining: shutdown.clone(),
        last_heartbeat,
        live: AtomicUsize::new(0),
        metrics: metrics.clone(),
        hub,
        max_subscribers: config.max_subscribers_per_session,
        sse_buffer_bytes: config.sse_buffer_bytes,
    });
    let registry = Arc::new(Registry::new(deps, config.max_sessions));
    tokio::spawn(registry.clone().run_reaper(config.idle_timeout));
    tokio::spawn(registry.clone().run_ownership_watch());
    tokio::spawn(metrics_upkeep(metrics.clone(), streams.clone()));
    let drain_timeout = config.drain_timeout;
    let state = AppState {
        registry: registry.clone(),
        config: Arc::new(config),
        draining: shutdown.clone(),
    };
    tracing::info!(addr = %listener.local_addr()?, host_id, "listening");
    if let Some(addr) = state.config.metrics_listen {
        let metrics_listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --metrics-listen {addr}"))?;
        tracing::info!(%addr, "serving /metrics without authentication");
        let router = crate::http::metrics_router(state.clone());
        let stop = streams.clone();
        tokio::spawn(async move {
            let served = axum::serve(metrics_listener, router)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "metrics listener failed");
            }
        });
    }
    let sse_write_timeout = state.config.sse_write_timeout;

    // Drain: `/readyz` fails and claims stop at once (`draining`); running turns finish, then
    // every session is released (their streams end as they go, so clients reconnect through
    // the load balancer to a host that takes them over at once); then the remaining streams
    // (closed sessions' history) end and the HTTP server stops. Requests keep being served
    // until then, so nothing in flight is cut short.
    let drained = CancellationToken::new();
    let release = {
        let (registry, shutdown) = (registry.clone(), shutdown.clone());
        let (streams, drained) = (streams.clone(), drained.clone());
        tokio::spawn(async move {
            shutdown.cancelled().await;
            registry.drain(drain_timeout).await;
            streams.cancel();
            drained.cancel();
        })
    };
    let max_connections = state
        .config
        .max_connections
        .unwrap_or_else(limits::default_max_connections);
    tracing::info!(
        max_connections,
        health_reserve = limits::HEALTH_RESERVE,
        "connection cap"
    );
    let (header_timeout, idle_timeout) = (
        state.config.http_header_timeout,
        state.config.http_idle_timeout,
    );
    let router = crate::http::router(state);
    let tasks = TaskTracker::new();
    // Returns once `drained` fires; hyper's connections then finish their responses and close.
    listener::accept(
        listener,
        Serving {
            router,
            sse_write_timeout,
            header_timeout,
            idle_timeout,
            slots: Slots::new(max_connections),
            metrics,
            tasks: tasks.clone(),
            stop: drained.clone(),
        },
    )
    .await;
    // The streams `sse_conn` serves ended with `streams`; a stalled one ends by its write timeout.
    // An idle hyper connection closed at once, a busy one after its response.
    tasks.close();
    tasks.wait().await;
    release.await?;
    // Stopped agents get their grace periods (stdin closed, SIGTERM, SIGKILL) before we exit.
    if tokio::time::timeout(AGENT_DRAIN_LIMIT, runtime.drain())
        .await
        .is_err()
    {
        tracing::warn!("agents still stopping at exit");
    }
    if let Err(e) = hosts::mark_released(&store, host_id).await {
        tracing::warn!(error = %e, "could not mark the host released");
    }
    background.cancel();
    let _ = keeper.await;
    Ok(())
}

/// Folds histogram samples into buckets even when nobody scrapes, so they cannot pile up.
async fn metrics_upkeep(metrics: Arc<crate::metrics::Metrics>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => metrics.upkeep(),
        }
    }
}

fn agent_runtime(config: &Config) -> anyhow::Result<Arc<dyn AgentRuntime>> {
    match config.agent {
        AgentKind::Replay => Ok(Arc::new(ReplayRuntime::new(
            config.fixtures.clone(),
            config.default_fixture.clone(),
        ))),
        AgentKind::Claude => Ok(Arc::new(
            ClaudeRuntime::new(&config.claude, &config.data_dir).context("--agent claude")?,
        )),
    }
}

/// `agent-webkit-server serve`.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every connection is a descriptor: take all the kernel allows (the cap stays below it).
    let (before, now) = limits::raise_descriptor_limit();
    tracing::info!(?before, ?now, "descriptor limit (soft RLIMIT_NOFILE)");
    // Refuse an unavailable runtime before starting anything.
    agent_runtime(&Config::from_args(&args, String::new(), AuthMode::Disabled))?;
    let auth = resolve_auth(args.no_auth);
    let verifiers = crate::auth::Verifiers::from_env(&args.auth).map_err(anyhow::Error::msg)?;
    let (database_url, cluster) = database(&args.db).await?;
    let config = Config::from_args(&args, database_url, auth).with_verifiers(verifiers);
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
pub async fn database(db: &crate::config::DbArgs) -> anyhow::Result<(String, Option<PgCluster>)> {
    Ok(PgCluster::url_or_start(db.database_url.as_deref(), &db.data_dir).await?)
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
