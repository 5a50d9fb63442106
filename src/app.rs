//! The one entry point main and tests share: [`run`] serves on a pre-bound listener until the
//! shutdown token fires. The binary (`src/cli/serve.rs`) adds what only it needs: the command
//! line, the embedded Postgres, signals, the startup token.
//!
//! The top of the library: it wires the layers below it (`store`, `session`, `agent`, `http`)
//! from a [`Config`], and nothing below imports it.

use crate::agent::claude::ClaudeRuntime;
use crate::agent::replay::ReplayRuntime;
use crate::agent::AgentRuntime;
use crate::config::{AgentKind, AgentSettings, Config};
use crate::http::auth::Auth;
use crate::http::conn::Serving;
use crate::http::limits::{self, Slots};
use crate::http::listener;
use crate::http::AppState;
use crate::session::registry::Registry;
use crate::session::{Deps, Ownership};
use crate::store::{hosts, writer::Writer, Store};
use anyhow::Context;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest a shutdown waits for stopping agents (a Claude CLI gets two stop graces).
const AGENT_DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs the server until `shutdown` is cancelled, then releases every session it holds (so any
/// host can take them over at once), ends every stream, and returns.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let runtime = agent_runtime(&config.agent)?;
    let auth = Arc::new(Auth::new(&config.auth).map_err(anyhow::Error::msg)?);
    let store = Store::connect_with(
        &config.store.database_url,
        config.store.pool_size,
        config.store.statement_timeout,
    )?;
    store.migrate().await.context("applying migrations")?;
    if let Some((0, all)) = store.standbys().await.filter(|(_, all)| *all > 0) {
        tracing::warn!(
            standbys = all,
            "the primary has only asynchronous standbys: a failover can lose its newest commits, \
             including events clients already received (README, \"Postgres high availability\")"
        );
    }
    let host_id = hosts::register(&store, &config.host.name).await?;
    let background = CancellationToken::new();
    let last_heartbeat: hosts::LastBeat = Arc::new(Mutex::new(Instant::now()));
    let keeper = tokio::spawn(hosts::keep_alive(
        store.clone(),
        host_id,
        hosts::heartbeat_interval(config.host.lease),
        last_heartbeat.clone(),
        background.clone(),
    ));
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (writer, _writer_task) =
        Writer::spawn_with(store.clone(), host_id, background.clone(), metrics.clone());
    crate::store::retention::spawn(&store, &config.retention, background.clone());
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
        ring_size: config.sessions.ring_size,
        queue_capacity: config.sessions.max_queued_inputs,
        keepalive: config.sessions.keepalive,
        ownership: Ownership {
            lease: config.host.lease,
            check_interval: config.host.ownership_check,
        },
        shutdown: streams.clone(),
        draining: shutdown.clone(),
        last_heartbeat,
        live: AtomicUsize::new(0),
        metrics: metrics.clone(),
        hub,
        max_subscribers: config.sessions.max_subscribers,
        sse_buffer_bytes: config.sessions.sse_buffer_bytes,
    });
    let registry = Arc::new(Registry::new(deps, config.sessions.max_sessions));
    tokio::spawn(registry.clone().run_reaper(config.sessions.idle_timeout));
    tokio::spawn(registry.clone().run_ownership_watch());
    tokio::spawn(metrics_upkeep(metrics.clone(), streams.clone()));
    let drain_timeout = config.host.drain_timeout;
    let http = config.http;
    let state = AppState {
        registry: registry.clone(),
        store: store.clone(),
        auth,
        settings: Arc::new(http.clone()),
        lease: config.host.lease,
        draining: shutdown.clone(),
    };
    tracing::info!(addr = %listener.local_addr()?, host_id, "listening");
    if let Some(addr) = http.metrics_listen {
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
    let sse_write_timeout = http.sse_write_timeout;

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
    let max_connections = http
        .max_connections
        .unwrap_or_else(limits::default_max_connections);
    tracing::info!(
        max_connections,
        health_reserve = limits::HEALTH_RESERVE,
        "connection cap"
    );
    let (header_timeout, idle_timeout) = (http.header_timeout, http.idle_timeout);
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

fn agent_runtime(agent: &AgentSettings) -> anyhow::Result<Arc<dyn AgentRuntime>> {
    match agent.kind {
        AgentKind::Replay => Ok(Arc::new(ReplayRuntime::new(
            agent.replay.fixtures.clone(),
            agent.replay.default_fixture.clone(),
        ))),
        AgentKind::Claude => Ok(Arc::new(
            ClaudeRuntime::new(&agent.claude).context("--agent claude")?,
        )),
    }
}

/// Refuses, before anything starts, what [`run`] would refuse: an agent runtime that is not
/// available (no Claude CLI) and auth settings that do not build (a bad key).
pub fn check(config: &Config) -> anyhow::Result<()> {
    agent_runtime(&config.agent)?;
    Auth::new(&config.auth).map_err(anyhow::Error::msg)?;
    Ok(())
}
