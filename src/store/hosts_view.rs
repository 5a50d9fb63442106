//! The hosts as an operator sees them (`GET /hosts`): every row of `hosts`, whether it is
//! alive by the same rule the claims use (`host_alive`, so the console never disagrees with
//! what a takeover would decide), how old its heartbeat is, and how many unclosed sessions
//! it owns. Read-only and separate from [`super::hosts`], which is this process's own row.

use super::{Store, StoreError};
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostRow {
    pub id: i32,
    pub name: String,
    /// `host_alive(id, --lease)`: not released, lease fresh, advisory lock held.
    pub alive: bool,
    #[serde(serialize_with = "super::audit::rfc3339")]
    pub started_at: SystemTime,
    #[serde(serialize_with = "super::audit::rfc3339")]
    pub heartbeat_at: SystemTime,
    /// Seconds since the last heartbeat, by Postgres' clock (the one the lease is judged by).
    pub lease_age_secs: f64,
    #[serde(serialize_with = "super::audit::rfc3339")]
    pub locked_at: SystemTime,
    #[serde(serialize_with = "rfc3339_opt")]
    pub released_at: Option<SystemTime>,
    /// Sessions not `closed` whose owner is this host.
    pub sessions_owned: i64,
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => super::audit::rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Live hosts first, then the newest; at most `limit`. Old released hosts pile up in the
/// table (one row per process start), so the ones that matter come first.
const SQL: &str = "\
    SELECT h.id, h.name, host_alive(h.id, make_interval(secs => $1)) AS alive, \
           h.started_at, h.heartbeat_at, \
           extract(epoch FROM now() - h.heartbeat_at)::float8, \
           h.locked_at, h.released_at, coalesce(o.n, 0) \
    FROM hosts h \
    LEFT JOIN (SELECT owner, count(*) AS n FROM sessions \
               WHERE owner IS NOT NULL AND status <> 'closed' GROUP BY owner) o \
           ON o.owner = h.id \
    ORDER BY alive DESC, h.id DESC \
    LIMIT $2";

pub async fn list(store: &Store, lease: Duration, limit: i64) -> Result<Vec<HostRow>, StoreError> {
    let client = store.client().await?;
    let rows = client.query(SQL, &[&lease.as_secs_f64(), &limit]).await?;
    Ok(rows
        .iter()
        .map(|r| HostRow {
            id: r.get(0),
            name: r.get(1),
            alive: r.get(2),
            started_at: r.get(3),
            heartbeat_at: r.get(4),
            lease_age_secs: r.get(5),
            locked_at: r.get(6),
            released_at: r.get(7),
            sessions_owned: r.get(8),
        })
        .collect())
}
