//! This process as a *host*: its row, its advisory lock, its heartbeat.
//!
//! Liveness is told through Postgres only. The host holds a session-level advisory lock
//! `(LOCK_NS, host_id)` on a dedicated connection: if the process dies, Postgres drops that
//! connection and the lock within moments, so another host can take its sessions over at once
//! (see `host_alive` in the migrations). A heartbeat column covers partitions, where the dead
//! owner's connection may linger. A Postgres restart drops every lock at the same instant; the
//! `locked_at` column lets `host_alive` tell "lock gone because Postgres restarted and the host
//! has not re-taken it yet" from "lock gone because the host died".

use super::{Store, StoreError, LOCK_NS};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The heartbeat interval for a lease: several beats per lease, at most one a second.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    (lease / 4).min(Duration::from_secs(1))
}

/// When the heartbeat last succeeded; a host past its lease stops serving its sessions.
pub type LastBeat = Arc<Mutex<Instant>>;

/// Registers a new host row and returns its id.
pub async fn register(store: &Store, name: &str) -> Result<i32, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "INSERT INTO hosts (name) VALUES ($1) RETURNING id",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Marks the host as gone on a clean exit, so its sessions are claimable without any wait.
pub async fn mark_released(store: &Store, host_id: i32) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "UPDATE hosts SET released_at = now() WHERE id = $1",
            &[&host_id],
        )
        .await?;
    Ok(())
}

/// Holds the host's advisory lock and writes its heartbeat until `shutdown`.
///
/// If the lock connection drops (Postgres restart, network), it reconnects and re-takes the
/// lock, recording `locked_at`, with a short backoff. Returns when `shutdown` fires.
pub async fn keep_alive(
    store: Store,
    host_id: i32,
    interval: Duration,
    last_beat: LastBeat,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match hold_lock(&store, host_id, interval, &last_beat, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "host lock connection lost; re-taking");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn hold_lock(
    store: &Store,
    host_id: i32,
    interval: Duration,
    last_beat: &LastBeat,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    let (client, connection) = store.dedicated().await?;
    let mut connection = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1, $2)", &[&LOCK_NS, &host_id])
        .await?;
    client
        .execute(
            "UPDATE hosts SET locked_at = now(), heartbeat_at = now() WHERE id = $1",
            &[&host_id],
        )
        .await?;
    *last_beat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    let mut tick = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = &mut connection => return Err(StoreError::Unavailable("lock connection closed".into())),
            _ = tick.tick() => {
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&host_id];
                let beat = client.execute("UPDATE hosts SET heartbeat_at = now() WHERE id = $1", &params);
                tokio::time::timeout(interval * 3, beat)
                    .await
                    .map_err(|_| StoreError::Unavailable("heartbeat timed out".into()))??;
                *last_beat.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        }
    }
}
