//! The sessions this host holds, and the one path that brings a session into memory.
//!
//! Every request for a session goes through [`Registry::lookup`]: if this host does not hold it
//! (new, evicted, restarted, or last held by a dead host), it is claimed in Postgres and
//! rehydrated — ring refilled from the table's tail, ids continuing, unfinished turns re-queued
//! or reported. Rehydration is therefore not a recovery path but the ordinary one.
//!
//! Each session id has a slot guarded by an async mutex, so concurrent requests for a dormant
//! session rehydrate it once, and eviction cannot race a request that is bringing it back.

use super::log::LogState;
use super::{actor, Deps, Session, SessionError};
use crate::agent::SessionConfig;
use crate::store::sessions::{self, Claim, Peek};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

type Slot = Arc<tokio::sync::Mutex<Option<Arc<Session>>>>;

pub enum Lookup {
    Live(Arc<Session>),
    /// Deleted: history only, up to `last_seq` (its `done`).
    Closed {
        last_seq: u64,
    },
    /// Another live host owns it: streams follow it, inputs are forwarded (`follow`,
    /// `forward`). Ownership moves only when the owner is gone.
    Elsewhere {
        owner: i32,
    },
}

pub struct Registry {
    pub deps: Arc<Deps>,
    slots: Mutex<HashMap<Uuid, Slot>>,
    max_sessions: Option<usize>,
    /// Follower logs of sessions other hosts own (`follow`).
    pub(crate) followers: Mutex<HashMap<Uuid, std::sync::Weak<super::log::EventLog>>>,
}

impl Registry {
    pub fn new(deps: Arc<Deps>, max_sessions: Option<usize>) -> Registry {
        Registry {
            deps,
            slots: Mutex::default(),
            max_sessions,
            followers: Mutex::default(),
        }
    }

    pub fn live_count(&self) -> usize {
        self.deps.live.load(Ordering::Relaxed)
    }

    fn check_capacity(&self) -> Result<(), SessionError> {
        match self.max_sessions {
            Some(max) if self.live_count() >= max => Err(SessionError::AtCapacity),
            _ => Ok(()),
        }
    }

    /// Creates a session (unowned; see `store::sessions::create`).
    pub async fn create(
        &self,
        principal: &str,
        config: SessionConfig,
    ) -> Result<Uuid, SessionError> {
        self.check_capacity()?;
        if self.deps.writer.saturated() {
            self.deps.metrics.overloaded.increment(1);
            return Err(SessionError::Overloaded);
        }
        self.deps.runtime.validate(&config).await?;
        let id = Uuid::new_v4();
        sessions::create(&self.deps.store, id, principal, &config).await?;
        self.deps.metrics.sessions_created.increment(1);
        Ok(id)
    }

    /// Finds a session for `principal`, rehydrating it on this host if needed.
    pub async fn lookup(&self, id: Uuid, principal: &str) -> Result<Lookup, SessionError> {
        let slot = self.slot(id);
        let mut held = slot.lock().await;
        if let Some(session) = held.as_ref().filter(|s| s.is_running()) {
            if session.principal != principal {
                return Err(SessionError::NotFound);
            }
            // Past its lease this host ended every session (their logs are gone) and may
            // serve none of them, even while their tasks are still stopping.
            if session.log.state() == LogState::Gone && self.lease_expired() {
                return Err(SessionError::LeaseExpired);
            }
            return Ok(Lookup::Live(session.clone()));
        }
        *held = None;
        if self.deps.draining.is_cancelled() {
            return Err(SessionError::Draining);
        }
        if let Err(full) = self.check_capacity() {
            // At capacity, a session that is not the caller's must answer exactly as an
            // unknown id does (`404`), or `503` would tell which ids exist.
            let deps = &self.deps;
            let lease = deps.ownership.lease;
            return match sessions::peek(&deps.store, id, principal, deps.host_id, lease).await? {
                Peek::NotFound => Err(SessionError::NotFound),
                Peek::Closed { last_seq } => Ok(Lookup::Closed { last_seq }),
                // Following or forwarding holds no session here: capacity does not apply.
                Peek::OwnedElsewhere { owner } => Ok(Lookup::Elsewhere { owner }),
                Peek::Open => Err(full),
            };
        }
        match self.claim(id, principal).await? {
            Claim::Claimed(claimed) => {
                tracing::debug!(session_id = %id, epoch = claimed.epoch, last_seq = claimed.last_seq, took_over = claimed.took_over, "session claimed");
                if claimed.took_over {
                    self.deps.metrics.takeovers.increment(1);
                }
                let session = actor::spawn(self.deps.clone(), id, principal, *claimed);
                *held = Some(session.clone());
                Ok(Lookup::Live(session))
            }
            Claim::Closed { last_seq } => Ok(Lookup::Closed { last_seq }),
            Claim::OwnedElsewhere { owner } => Ok(Lookup::Elsewhere { owner }),
            Claim::NotFound => Err(SessionError::NotFound),
        }
    }

    /// Claims a session when it is unowned, ours, or its owner is dead, draining or past its
    /// lease; a live owner keeps it (`Claim::OwnedElsewhere`): a request landing on another
    /// host no longer moves a session, it is followed or forwarded instead.
    async fn claim(&self, id: Uuid, principal: &str) -> Result<Claim, SessionError> {
        let deps = &self.deps;
        // A host whose own lease ran out ends every session it holds at its next ownership
        // check, so a claim now would take a session only to drop it without a release.
        if self.lease_expired() {
            return Err(SessionError::LeaseExpired);
        }
        Ok(sessions::claim(
            &deps.store,
            id,
            deps.host_id,
            principal,
            deps.ring_size,
            deps.ownership.lease,
        )
        .await?)
    }

    /// `DELETE`: closes a session; closing a closed one is harmless. Idempotent under
    /// concurrency: a `DELETE` that finds the session already stopping (another `DELETE`, an
    /// eviction) waits for it to stop and looks again, so every caller gets `204` once `done`
    /// is committed. On a host that does not own the session, the owner is asked through
    /// Postgres and the answer waits for `done` in the table.
    pub async fn close(self: &Arc<Self>, id: Uuid, principal: &str) -> Result<(), SessionError> {
        for _ in 0..3 {
            match self.lookup(id, principal).await? {
                Lookup::Live(session) => match session.close().await {
                    Err(SessionError::Stopping) => session.stopped().await,
                    other => return other,
                },
                Lookup::Closed { .. } => return Ok(()),
                Lookup::Elsewhere { owner } => {
                    let log = self.follow(id, principal).await?;
                    match super::forward::close(&self.deps, log, id, owner, principal).await {
                        Err(SessionError::OwnedElsewhere) => continue,
                        other => return other,
                    }
                }
            }
        }
        Err(SessionError::Stopping)
    }

    /// An input for a session another live host owns (`forward`); if the owner let go in the
    /// meantime, the session is looked up again (and claimed here, or forwarded to its new owner).
    pub async fn forward(
        self: &Arc<Self>,
        id: Uuid,
        principal: &str,
        inbound: super::inbound::Inbound,
        body: &serde_json::Value,
    ) -> Result<(), SessionError> {
        for _ in 0..3 {
            match self.lookup(id, principal).await? {
                Lookup::Live(session) => return session.input(inbound, body, principal).await,
                Lookup::Closed { .. } => return Err(SessionError::Closed),
                Lookup::Elsewhere { owner } => {
                    match super::forward::input(&self.deps, id, owner, &inbound, body, principal)
                        .await
                    {
                        Err(SessionError::OwnedElsewhere) => continue,
                        other => return other,
                    }
                }
            }
        }
        Err(SessionError::OwnedElsewhere)
    }

    fn slot(&self, id: Uuid) -> Slot {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_default()
            .clone()
    }

    fn all_slots(&self) -> Vec<(Uuid, Slot)> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    /// Lets go of sessions with no subscriber and no input for `timeout`, and forgets slots of
    /// sessions that ended. Evicted sessions stay in Postgres, dormant.
    pub async fn evict_idle(&self, timeout: Duration) -> usize {
        let mut evicted = 0;
        for (id, slot) in self.all_slots() {
            let Ok(mut held) = slot.try_lock() else {
                continue; // someone is using it right now: not idle
            };
            match held.as_ref() {
                Some(s) if s.is_running() && !s.log.is_idle(timeout) => continue,
                Some(s) if s.is_running() => {
                    tracing::info!(session_id = %id, "evicting idle session");
                    s.release().await;
                    evicted += 1;
                }
                _ => {}
            }
            *held = None;
            drop(held);
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            // Only forget the slot if nobody picked it up meanwhile.
            if slots.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot))
                && Arc::strong_count(&slot) == 2
            {
                slots.remove(&id);
            }
        }
        evicted
    }

    /// Graceful drain: every session finishes its running turn (bounded by `timeout`) and is
    /// released, so the next host takes it over at once.
    pub async fn drain(&self, timeout: Duration) {
        let held: Vec<Arc<Session>> = self.held_sessions(true).await;
        for s in &held {
            s.handover();
        }
        let all_stopped = futures::future::join_all(held.iter().map(|s| s.stopped()));
        if tokio::time::timeout(timeout, all_stopped).await.is_err() {
            tracing::warn!("drain timeout: releasing sessions with turns still running");
        }
        self.release_all().await;
    }

    /// Running sessions. Without `wait`, slots busy with a request are skipped (the ownership
    /// watcher must not stall behind a lookup waiting for a handover).
    async fn held_sessions(&self, wait: bool) -> Vec<Arc<Session>> {
        let mut out = Vec::new();
        for (_, slot) in self.all_slots() {
            let held = if wait {
                slot.lock().await
            } else {
                match slot.try_lock() {
                    Ok(held) => held,
                    Err(_) => continue,
                }
            };
            if let Some(s) = held.as_ref().filter(|s| s.is_running()) {
                out.push(s.clone());
            }
        }
        out
    }

    /// Compares the sessions this host holds with what Postgres says it owns: a session whose
    /// row names another owner or epoch was taken over (this host was paused, partitioned or
    /// slow) — its streams end so clients reconnect through the load balancer. A host whose heartbeat is
    /// older than its lease stops serving everything: others may already own its sessions.
    pub async fn check_ownership(&self) {
        let deps = &self.deps;
        let held = self.held_sessions(false).await;
        let beat_age = self.beat_age();
        if beat_age > deps.ownership.lease {
            tracing::warn!(
                ?beat_age,
                "lease expired: ending every session on this host"
            );
            for s in &held {
                s.log.set_gone();
            }
            return;
        }
        let owned = match sessions::owned_by(&deps.store, deps.host_id).await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::debug!(error = %e, "ownership check skipped");
                return;
            }
        };
        self.release_orphans(&owned).await;
        let owned: HashMap<Uuid, sessions::Owned> = owned.into_iter().map(|o| (o.id, o)).collect();
        for s in &held {
            match owned.get(&s.id) {
                Some(o) if o.epoch == s.epoch => {}
                _ => {
                    tracing::warn!(session_id = %s.id, "session taken over by another host");
                    s.log.set_gone();
                }
            }
        }
    }

    fn beat_age(&self) -> Duration {
        self.deps
            .last_heartbeat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .elapsed()
    }

    fn lease_expired(&self) -> bool {
        self.beat_age() > self.deps.ownership.lease
    }

    /// Releases rows this host owns in the table but holds nowhere in memory. That happens
    /// when a session ended here without its release being written: its lease ran out while
    /// Postgres was away (every session ends then, and the release cannot be written), or the
    /// release gave up. This host is alive, so no one may take the row over, and other hosts
    /// forward its inputs here: without this the session stays unreachable. A slot that is
    /// busy (a claim in progress) counts as held.
    async fn release_orphans(&self, owned: &[sessions::Owned]) {
        if owned.is_empty() {
            return;
        }
        let in_memory = self.ids_in_memory();
        for o in owned.iter().filter(|o| !in_memory.contains(&o.id)) {
            let released =
                sessions::release_orphan(&self.deps.store, o.id, self.deps.host_id, o.epoch).await;
            match released {
                Ok(true) => {
                    tracing::info!(session_id = %o.id, "released a session this host no longer held")
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(session_id = %o.id, error = %e, "orphan release failed"),
            }
        }
    }

    /// Sessions this host holds or is busy with (a locked slot: claiming, closing).
    fn ids_in_memory(&self) -> HashSet<Uuid> {
        self.all_slots()
            .into_iter()
            .filter(|(_, slot)| match slot.try_lock() {
                Ok(held) => held.as_ref().is_some_and(|s| s.is_running()),
                Err(_) => true,
            })
            .map(|(id, _)| id)
            .collect()
    }

    /// Runs the ownership check until shutdown.
    ///
    /// A check is given no longer than what is left of the lease (at least one interval): its
    /// query can hang on a link that went silent (a partition: Postgres' `statement_timeout`
    /// cannot answer through it), and the next check must still run to see the lease expired
    /// and end this host's sessions, or it would serve them while others own them.
    pub async fn run_ownership_watch(self: Arc<Self>) {
        let interval = self.deps.ownership.check_interval;
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let left = self.deps.ownership.lease.saturating_sub(self.beat_age());
                    let check = tokio::time::timeout(left.max(interval), self.check_ownership());
                    if check.await.is_err() {
                        tracing::warn!("ownership check timed out (is Postgres reachable?)");
                    }
                }
            }
        }
    }

    /// Releases every session this host holds (shutdown, drain).
    pub async fn release_all(&self) {
        for (_, slot) in self.all_slots() {
            let mut held = slot.lock().await;
            if let Some(s) = held.take() {
                s.release().await;
            }
        }
    }

    /// Runs idle eviction until shutdown.
    pub async fn run_reaper(self: Arc<Self>, timeout: Duration) {
        let period = (timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        let mut tick = tokio::time::interval(period);
        loop {
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => return,
                _ = tick.tick() => { self.evict_idle(timeout).await; }
            }
        }
    }
}
