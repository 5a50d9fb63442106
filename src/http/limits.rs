//! How many connections the main port holds open, and the descriptor limit behind that.
//!
//! Every connection costs a descriptor, and a process out of descriptors cannot accept, open
//! a Postgres connection or start an agent: a flood of idle sockets would take the whole host
//! down, health checks included. So connections are counted ([`Slots`]) and capped at
//! `--max-connections`, below the descriptor limit. A few slots beyond the cap
//! ([`HEALTH_RESERVE`]) go only to a connection whose first request is `GET /healthz` or
//! `GET /readyz`, so a host that is full still tells its load balancer it is alive.
//!
//! The binary raises its soft descriptor limit to the hard one at start
//! ([`raise_descriptor_limit`]): the soft default (often 1024) is a compatibility setting for
//! `select(2)`, which nothing here uses.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Slots beyond `--max-connections` kept for health checks.
pub const HEALTH_RESERVE: usize = 16;
/// The default cap when the descriptor limit allows more.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns (soft before, soft now).
pub fn raise_descriptor_limit() -> (Option<u64>, Option<u64>) {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "could not raise the descriptor limit");
        }
    }
    (before, getrlimit(Resource::Nofile).current)
}

/// The cap when `--max-connections` is not given: three quarters of the soft descriptor
/// limit (the rest is for Postgres, agents, files), at most [`DEFAULT_MAX_CONNECTIONS`].
pub fn default_max_connections() -> usize {
    let soft = getrlimit(Resource::Nofile).current;
    derive_cap(soft)
}

fn derive_cap(soft: Option<u64>) -> usize {
    let Some(soft) = soft else {
        return DEFAULT_MAX_CONNECTIONS;
    };
    let usable = usize::try_from(soft / 4 * 3).unwrap_or(usize::MAX);
    usable
        .saturating_sub(HEALTH_RESERVE)
        .clamp(1, DEFAULT_MAX_CONNECTIONS)
}

/// The count of open connections on the main port.
pub struct Slots {
    open: AtomicUsize,
    max: usize,
}

/// One open connection's place; given back when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    /// Taken from the health reserve: only `/healthz` and `/readyz` may be served on it.
    pub reserved: bool,
}

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A place for a new connection, `None` when even the health reserve is full.
    pub fn take(self: &Arc<Slots>) -> Option<Slot> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        if before >= self.max + HEALTH_RESERVE {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot {
            slots: self.clone(),
            reserved: before >= self.max,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_below_the_descriptor_limit() {
        assert_eq!(derive_cap(Some(1024)), 768 - HEALTH_RESERVE);
        assert_eq!(derive_cap(Some(1 << 20)), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derive_cap(None), DEFAULT_MAX_CONNECTIONS);
        assert_eq!(derive_cap(Some(4)), 1);
    }

    #[test]
    fn slots_past_the_cap_are_reserved_then_refused() {
        let slots = Slots::new(2);
        let taken: Vec<Slot> = (0..2 + HEALTH_RESERVE)
            .map(|_| slots.take().unwrap())
            .collect();
        assert!(!taken[1].reserved && taken[2].reserved);
        assert!(slots.take().is_none());
        drop(taken);
        assert!(!slots.take().unwrap().reserved);
    }
}
