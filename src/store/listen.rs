//! This host's one `LISTEN` connection: commits and forwarded inputs of other hosts, as they
//! happen.
//!
//! Every host serves every session's stream, and takes every session's inputs, whoever owns it
//! (docs/architecture.md, "Any load balancer"). A host that does not own a session learns of
//! its new events from the owner's commits: the writer's append statement calls
//! `pg_notify('awk_events', '<session> <last seq>')` for each session it stored
//! (`sql/append.sql`), inside the transaction, so Postgres delivers the notification only after
//! the commit — a follower can never be woken for an event it cannot read yet. Inputs recorded
//! by a non-owner notify `awk_inputs` with the session id (`inputs::forward`), and the owner
//! picks them up.
//!
//! [`Hub`] keeps a `watch` per session someone here waits on, so a notification is one map
//! lookup and a `send_replace`; readers re-read the table, so coalesced or repeated
//! notifications cost nothing. When the connection drops (Postgres restart, network), the hub
//! says so ([`Hub::connected`]): waiters poll the table until it is back, and after it has
//! re-`LISTEN`ed every waiter is woken once to re-read. A notification lost in between delays
//! an event by at most the poll interval; it never loses one.

use super::Store;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Channel of committed events: payload `<session id> <last seq>`.
pub const EVENTS: &str = "awk_events";
/// Channel of inputs recorded by a host that does not own the session: payload `<session id>`.
pub const INPUTS: &str = "awk_inputs";

/// Who waits for what, and whether notifications flow.
#[derive(Debug)]
pub struct Hub {
    events: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    inputs: Mutex<HashMap<Uuid, watch::Sender<u64>>>,
    /// (listening, generation): the generation grows at every (re)connect.
    connected: watch::Sender<(bool, u64)>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            events: Mutex::default(),
            inputs: Mutex::default(),
            connected: watch::channel((false, 0)).0,
        }
    }
}

impl Hub {
    /// Wakes on commits of `session` (the value: the highest seq notified, or a bump after a
    /// reconnect). Dropped receivers are forgotten at the next notification for the session.
    pub fn watch_events(&self, session: Uuid) -> watch::Receiver<u64> {
        watch_in(&self.events, session)
    }

    /// Wakes when another host recorded an input for `session`.
    pub fn watch_inputs(&self, session: Uuid) -> watch::Receiver<u64> {
        watch_in(&self.inputs, session)
    }

    /// Whether the `LISTEN` connection is up, and its generation.
    pub fn connected(&self) -> watch::Receiver<(bool, u64)> {
        self.connected.subscribe()
    }

    fn dispatch(&self, channel: &str, payload: &str) {
        let mut parts = payload.split(' ');
        let Some(Ok(session)) = parts.next().map(Uuid::parse_str) else {
            return;
        };
        match channel {
            EVENTS => {
                let seq = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                notify(&self.events, session, |v| (*v).max(seq));
            }
            INPUTS => notify(&self.inputs, session, |v| *v + 1),
            _ => {}
        }
    }

    /// After a (re)connect: everyone re-reads, since notifications may have been missed.
    fn wake_all(&self) {
        for map in [&self.events, &self.inputs] {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, tx| tx.receiver_count() > 0);
            for tx in map.values() {
                tx.send_modify(|v| *v += 1);
            }
        }
    }
}

fn watch_in(map: &Mutex<HashMap<Uuid, watch::Sender<u64>>>, session: Uuid) -> watch::Receiver<u64> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(session)
        .or_insert_with(|| watch::channel(0).0)
        .subscribe()
}

fn notify(map: &Mutex<HashMap<Uuid, watch::Sender<u64>>>, session: Uuid, f: impl Fn(&u64) -> u64) {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = map.get(&session) {
        if tx.receiver_count() == 0 {
            map.remove(&session);
        } else {
            tx.send_modify(|v| *v = f(v));
        }
    }
}

/// Keeps the `LISTEN` connection up until `shutdown`, reconnecting with bounded back-off.
pub async fn run(store: Store, hub: std::sync::Arc<Hub>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let listened = listen(&store, &hub, &shutdown).await;
        hub.connected.send_modify(|(up, _)| *up = false);
        if shutdown.is_cancelled() {
            return;
        }
        match listened {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => tracing::warn!(error = %e, "LISTEN connection lost; reconnecting"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn listen(store: &Store, hub: &Hub, shutdown: &CancellationToken) -> Result<(), String> {
    let (client, mut connection) = store.dedicated().await.map_err(|e| e.to_string())?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {EVENTS}; LISTEN {INPUTS}");
    let subscribe = client.batch_execute(&statement);
    // The connection is driven by `messages`: poll both until LISTEN is answered.
    tokio::pin!(subscribe);
    loop {
        tokio::select! {
            done = &mut subscribe => {
                done.map_err(|e| e.to_string())?;
                break;
            }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => hub.dispatch(n.channel(), n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            },
        }
    }
    hub.connected.send_modify(|(up, generation)| {
        *up = true;
        *generation += 1;
    });
    hub.wake_all();
    tracing::debug!("LISTEN connection up");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => hub.dispatch(n.channel(), n.payload()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("connection closed".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_only_their_session_and_keep_the_highest_seq() {
        let hub = Hub::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let wa = hub.watch_events(a);
        let wb = hub.watch_events(b);
        hub.dispatch(EVENTS, &format!("{a} 7"));
        hub.dispatch(EVENTS, &format!("{a} 5"));
        hub.dispatch(EVENTS, "not-a-uuid 9");
        assert_eq!(*wa.borrow(), 7);
        assert_eq!(*wb.borrow(), 0);
        let wi = hub.watch_inputs(b);
        hub.dispatch(INPUTS, &b.to_string());
        assert_eq!(*wi.borrow(), 1);
        hub.wake_all();
        assert_eq!(*wb.borrow(), 1);
        drop(wa);
        hub.dispatch(EVENTS, &format!("{a} 8"));
        assert!(!hub.events.lock().unwrap().contains_key(&a));
    }
}
