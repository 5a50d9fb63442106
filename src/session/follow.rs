//! Streams of a session another live host owns: followed from the table, woken by the owner's
//! commits.
//!
//! A follower host keeps one [`EventLog`] per followed session, shared by all its streams of
//! that session — the same ring and the same subscription code as on the owner, so the bytes,
//! ids, keepalives and the end after `done` are the same. Instead of the writer, one task fills
//! it: on each wake-up (the owner's commit notification, `store::listen`) it reads what follows
//! the ring's last seq from the table, once for all those streams, and publishes it. The
//! notification is sent inside the owner's commit, so a read after it always finds the events
//! it announces (invariant 2 holds on followers too); frames are rebuilt from the stored `data`,
//! byte for byte what the owner sent. Without the `LISTEN` connection it polls the table every
//! [`POLL_DOWN`] (and every [`SAFETY_READ`] with it). After a second without a commit it asks
//! whether the owner is still there: if not, and work is waiting (a turn queued or running),
//! it claims the session as any request would, so a
//! turn cut off by the owner's death is reported (`turn_lost`) even when every client of the
//! session streams from followers. It stops after `done`, or once no stream has used it for
//! [`IDLE`].

use super::log::{EventLog, LogState};
use super::registry::{Lookup, Registry};
use super::SessionError;
use crate::store::writer::CommitSink;
use crate::store::{events, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Poll interval while the `LISTEN` connection is down.
const POLL_DOWN: Duration = Duration::from_millis(250);
/// Tick while it is up: the owner check after a quiet second.
const POLL_UP: Duration = Duration::from_secs(1);
/// While notifications flow, the table is still re-read this often (a safety net).
const SAFETY_READ: Duration = Duration::from_secs(5);
/// A follower log nobody streamed from for this long is dropped.
const IDLE: Duration = Duration::from_secs(10);
/// Events read per table page.
const PAGE: i64 = 1000;

impl Registry {
    /// The follower log of a session owned elsewhere (made, and its task started, if needed).
    pub async fn follow(
        self: &Arc<Self>,
        id: Uuid,
        principal: &str,
    ) -> Result<Arc<EventLog>, SessionError> {
        if let Some(log) = self.followed(id) {
            log.touch();
            return Ok(log);
        }
        let store = &self.deps.store;
        let client = store.client().await?;
        let last = events::max_seq(&client, id).await?;
        let tail = events::tail(&client, id, last, self.deps.ring_size).await?;
        drop(client);
        // The owner keeps committing: the tail may reach past the `last` read just before it.
        let last = tail.last().map_or(last, |f| f.seq.max(last));
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(log) = followers.get(&id).and_then(|w| w.upgrade()) {
            if !log.gone.is_cancelled() {
                return Ok(log);
            }
        }
        let log = Arc::new(EventLog::new(id, self.deps.ring_size, tail, last));
        followers.insert(id, Arc::downgrade(&log));
        tokio::spawn(run(self.clone(), log.clone(), principal.to_owned()));
        Ok(log)
    }

    fn followed(&self, id: Uuid) -> Option<Arc<EventLog>> {
        let followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers
            .get(&id)
            .and_then(|w| w.upgrade())
            .filter(|log| !log.gone.is_cancelled())
    }
}

async fn run(registry: Arc<Registry>, log: Arc<EventLog>, principal: String) {
    let deps = registry.deps.clone();
    let id = log.session_id;
    let mut commits = deps.hub.watch_events(id);
    let mut connected = deps.hub.connected();
    // A commit notification proves the owner alive; the owner is asked about only after a
    // quiet second, and the table is re-read without one only every SAFETY_READ while
    // notifications flow (so an idle followed session costs a query a second, not two).
    let (mut owner_seen, mut read_at) = (Instant::now(), Instant::now());
    loop {
        let listening = connected.borrow().0;
        let poll = if listening { POLL_UP } else { POLL_DOWN };
        let woken = tokio::select! {
            _ = deps.shutdown.cancelled() => break,
            _ = commits.changed() => {
                owner_seen = Instant::now();
                true
            }
            _ = connected.changed() => true,
            _ = tokio::time::sleep(poll) => false,
        };
        if woken || !listening || read_at.elapsed() >= SAFETY_READ {
            read_at = Instant::now();
            if let Err(e) = catch_up(&deps.store, &log).await {
                tracing::debug!(session_id = %id, error = %e, "follower read failed; retrying");
            }
        }
        if log.state() == LogState::Done {
            break;
        }
        if log.is_idle(IDLE) && forget(&registry, &log) {
            return;
        }
        if owner_seen.elapsed() >= POLL_UP {
            owner_seen = Instant::now();
            claim_if_orphaned(&registry, id, &principal).await;
        }
    }
    forget(&registry, &log);
}

/// Reads everything after the log's last seq, page by page, and publishes it.
async fn catch_up(store: &crate::store::Store, log: &EventLog) -> Result<(), StoreError> {
    loop {
        let after = log.last_seq();
        let page = events::after(store, log.session_id, after, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        if page.is_empty() {
            return Ok(());
        }
        log.committed(page);
        if !full {
            return Ok(());
        }
    }
}

/// Drops the follower log when no stream holds it; its streams (if any) end and reconnect.
fn forget(registry: &Registry, log: &Arc<EventLog>) -> bool {
    let mut followers = registry.followers.lock().unwrap_or_else(|e| e.into_inner());
    if log.subscriber_count() > 0 && log.state() != LogState::Done {
        return false;
    }
    if followers
        .get(&log.session_id)
        .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(log)))
    {
        followers.remove(&log.session_id);
    }
    log.set_gone();
    true
}

/// The owner is gone (dead, drained, past its lease) and work is waiting: claim the session
/// here, as the first request after the owner's death would.
async fn claim_if_orphaned(registry: &Arc<Registry>, id: Uuid, principal: &str) {
    let deps = &registry.deps;
    match crate::store::sessions::orphaned_with_work(&deps.store, id, deps.ownership.lease).await {
        Ok(true) => match registry.lookup(id, principal).await {
            Ok(Lookup::Live(_)) => {
                tracing::info!(session_id = %id, "follower claimed a session whose owner is gone")
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(session_id = %id, error = %e, "follower claim failed"),
        },
        Ok(false) => {}
        Err(e) => tracing::debug!(session_id = %id, error = %e, "owner check failed"),
    }
}
