//! Reads of the audit log and session history: the one place their SQL lives, shared by the
//! HTTP endpoints and the `audit` CLI.
//!
//! Every list is a keyset page: rows come in a total order (time, then session id, then seq or
//! input id; sessions newest first) and the next page starts strictly after the last row's key,
//! so rows never repeat or vanish between pages while new ones arrive (they land after the
//! cursor, or, for the newest-first session list, before the first page). One caveat for
//! tailing: a row's time is its transaction's start, so a row still committing can land just
//! behind a cursor taken meanwhile; `EventFilter::settled` (the CLI's `--follow`) reads only
//! rows old enough to be committed.
//!
//! Queries are assembled from the filters actually given, each a plain predicate on an indexed
//! column (`migrations/V2__audit.sql`), and prepared afresh for each call (never cached), so
//! Postgres plans them with the values at hand (a new statement's first runs get custom plans,
//! which also lets it match the partial indexes): a catch-all `($1 IS NULL OR col = $1)`
//! statement would end up with one generic plan that can use none of the indexes.

use super::query::Query;
pub use super::query::Statement;
use super::{Store, StoreError};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// A position in a time-ordered list: after the row with this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeKey {
    pub at: SystemTime,
    pub session_id: Uuid,
    /// The event's seq or the input's id.
    pub n: i64,
}

/// A position in the newest-first session list: before the session with this key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionKey {
    pub created_at: SystemTime,
    pub id: Uuid,
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub session_id: Option<Uuid>,
    pub event: Option<&'static str>,
    pub tool_name: Option<String>,
    pub correlation_id: Option<String>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// JSON that `data` must contain (`@>`). Not searched in message_delta and message_complete
    /// events (the assistant's text) unless `event` asks for them.
    pub contains: Option<Value>,
    /// Only rows older than this (`--follow`: rows whose transaction may still be committing
    /// could otherwise appear behind the cursor).
    pub settled: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct InputFilter {
    pub session_id: Option<Uuid>,
    pub principal: Option<String>,
    pub kind: Option<&'static str>,
    pub status: Option<i16>,
    pub correlation_id: Option<String>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    pub settled: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Active,
    Dormant,
    Closed,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 3] = [Self::Active, Self::Dormant, Self::Closed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Dormant => "dormant",
            Self::Closed => "closed",
        }
    }
}

/// The default `--lease` (a host whose heartbeat is older is dead).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct SessionFilter {
    /// Only this principal's sessions (`None`: everyone's, for admins).
    pub principal: Option<String>,
    pub status: Option<SessionStatus>,
    /// On `created_at`.
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
    /// The hosts' lease, to tell an `active` session with a dead owner (then `dormant`).
    pub lease: Duration,
}

impl Default for SessionFilter {
    fn default() -> Self {
        SessionFilter {
            principal: None,
            status: None,
            since: None,
            until: None,
            lease: DEFAULT_LEASE,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EventRow {
    pub session_id: Uuid,
    /// The SSE id (seq).
    pub id: i64,
    pub event: String,
    pub data: Value,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct InputRow {
    pub session_id: Uuid,
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub principal: String,
    /// The HTTP status the input was answered with (204 accepted, 409 lost the race).
    pub status: i16,
    pub correlation_id: Option<String>,
    pub body: Value,
    #[serde(serialize_with = "rfc3339")]
    pub received_at: SystemTime,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionRow {
    pub id: Uuid,
    pub principal: String,
    /// `active` only while its owner host is alive; a dead owner's session is `dormant` (the
    /// next request rehydrates it).
    pub status: String,
    pub owner_host: Option<i32>,
    pub owner_host_name: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: SystemTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: SystemTime,
    pub last_event_id: i64,
    pub turns: i32,
    pub total_cost_usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
}

pub fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_micros(*t))
}

impl EventRow {
    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.created_at,
            session_id: self.session_id,
            n: self.id,
        }
    }
}

impl InputRow {
    pub fn key(&self) -> TimeKey {
        TimeKey {
            at: self.received_at,
            session_id: self.session_id,
            n: self.id,
        }
    }
}

impl SessionRow {
    pub fn key(&self) -> SessionKey {
        SessionKey {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

fn time_filters(
    q: &mut Query,
    column: &str,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    settled: Option<Duration>,
) {
    if let Some(t) = since {
        q.filter(&format!("{column} >= {{}}"), t);
    }
    if let Some(t) = until {
        q.filter(&format!("{column} < {{}}"), t);
    }
    if let Some(lag) = settled {
        q.filter(
            &format!("{column} < now() - {{}}::int8 * interval '1 millisecond'"),
            lag.as_millis() as i64,
        );
    }
}

/// The events left out of the event-name and containment indexes: the bulk of a stream, and
/// text that containment cannot usefully search.
fn is_assistant_text(event: &str) -> bool {
    use crate::frame::names::{MESSAGE_COMPLETE, MESSAGE_DELTA};
    event == MESSAGE_DELTA || event == MESSAGE_COMPLETE
}

pub fn events_query(filter: &EventFilter, after: Option<TimeKey>, limit: i64) -> Statement {
    let mut q = Query::default();
    if let Some(id) = filter.session_id {
        q.filter("session_id = {}", id);
    }
    if let Some(name) = filter.event {
        q.filter("event = {}", name);
    }
    if let Some(t) = &filter.tool_name {
        q.filter("tool_name = {}", t.clone());
    }
    if let Some(c) = &filter.correlation_id {
        q.filter("correlation_id = {}", c.clone());
    }
    time_filters(
        &mut q,
        "created_at",
        filter.since,
        filter.until,
        filter.settled,
    );
    if let Some(json) = &filter.contains {
        // Written exactly as the expression of the `events_doc_rare` GIN index, with its
        // predicate: containment searches every event but the assistant's text ones, unless
        // `event` names one of them (V3__assistant_text_unindexed.sql). `audit_doc` is `data`
        // as jsonb with NUL replaced, which jsonb cannot hold (V4__audit_projection_total.sql).
        q.filter("audit_doc(data) @> {}::jsonb", json.clone());
        if !filter.event.is_some_and(is_assistant_text) {
            q.conditions
                .push("event NOT IN ('message_delta', 'message_complete')".into());
        }
    }
    if let Some(k) = after {
        let (at, id, n) = (q.bind(k.at), q.bind(k.session_id), q.bind(k.n));
        q.conditions
            .push(format!("(created_at, session_id, seq) > ({at}, {id}, {n})"));
    }
    let limit = q.bind(limit);
    let columns = "session_id, seq, event, data, created_at";
    let order = "ORDER BY created_at, session_id, seq";
    let sql = if filter.contains.is_some() {
        // The planner cannot estimate containment: it guesses many matches and walks
        // events_created in order hoping to fill the page early, which reads the whole table
        // when there are few (1 s at 1M events). Collecting the matches first (GIN or a
        // narrower filter's index) and sorting them costs what the matches cost instead.
        format!(
            "WITH matches AS MATERIALIZED (SELECT {columns} FROM events {}) \
             SELECT {columns} FROM matches {order} LIMIT {limit}",
            q.where_clause()
        )
    } else {
        format!(
            "SELECT {columns} FROM events {} {order} LIMIT {limit}",
            q.where_clause()
        )
    };
    Statement { sql, query: q }
}

pub async fn events(
    store: &Store,
    filter: &EventFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = events_query(filter, after, limit).rows(store).await?;
    Ok(rows.iter().map(event_row).collect())
}

fn event_row(r: &tokio_postgres::Row) -> EventRow {
    EventRow {
        session_id: r.get(0),
        id: r.get(1),
        event: r.get(2),
        data: r.get(3),
        created_at: r.get(4),
    }
}

/// One session's events after seq `after`, in seq order (its primary key).
pub fn session_events_query(
    session_id: Uuid,
    after: i64,
    event: Option<&'static str>,
    limit: i64,
) -> Statement {
    let mut q = Query::default();
    q.filter("session_id = {}", session_id);
    q.filter("seq > {}", after);
    if let Some(name) = event {
        q.filter("event = {}", name);
    }
    let limit = q.bind(limit);
    let sql = format!(
        "SELECT session_id, seq, event, data, created_at FROM events {} \
         ORDER BY seq LIMIT {limit}",
        q.where_clause()
    );
    Statement { sql, query: q }
}

pub async fn session_events(
    store: &Store,
    session_id: Uuid,
    after: i64,
    event: Option<&'static str>,
    limit: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let rows = session_events_query(session_id, after, event, limit)
        .rows(store)
        .await?;
    Ok(rows.iter().map(event_row).collect())
}

pub fn inputs_query(filter: &InputFilter, after: Option<TimeKey>, limit: i64) -> Statement {
    let mut q = Query::default();
    if let Some(id) = filter.session_id {
        q.filter("session_id = {}", id);
    }
    if let Some(p) = &filter.principal {
        q.filter("principal = {}", p.clone());
    }
    if let Some(kind) = filter.kind {
        q.filter("type = {}", kind);
    }
    if let Some(status) = filter.status {
        q.filter("status = {}", status);
    }
    if let Some(c) = &filter.correlation_id {
        q.filter("correlation_id = {}", c.clone());
    }
    time_filters(
        &mut q,
        "received_at",
        filter.since,
        filter.until,
        filter.settled,
    );
    if let Some(k) = after {
        let (at, id, n) = (q.bind(k.at), q.bind(k.session_id), q.bind(k.n));
        q.conditions
            .push(format!("(received_at, session_id, id) > ({at}, {id}, {n})"));
    }
    let limit = q.bind(limit);
    let sql = format!(
        "SELECT session_id, id, type, principal, status, correlation_id, body, received_at \
         FROM inputs {} ORDER BY received_at, session_id, id LIMIT {limit}",
        q.where_clause()
    );
    Statement { sql, query: q }
}

pub async fn inputs(
    store: &Store,
    filter: &InputFilter,
    after: Option<TimeKey>,
    limit: i64,
) -> Result<Vec<InputRow>, StoreError> {
    let rows = inputs_query(filter, after, limit).rows(store).await?;
    Ok(rows
        .iter()
        .map(|r| InputRow {
            session_id: r.get(0),
            id: r.get(1),
            kind: r.get(2),
            principal: r.get(3),
            status: r.get(4),
            correlation_id: r.get(5),
            body: r.get(6),
            received_at: r.get(7),
        })
        .collect())
}

/// `host_alive` of the session's owner under `lease` (a placeholder), the liveness rule the
/// claims use: an `active` session whose owner is dead is dormant to clients.
fn alive(lease: &str) -> String {
    format!("host_alive(s.owner, make_interval(secs => {lease}))")
}

fn session_select(with_config: bool, lease: &str) -> String {
    let alive = alive(lease);
    format!(
        "SELECT s.id, s.principal, \
             CASE WHEN s.status = 'active' AND (s.owner IS NULL OR NOT {alive}) \
                  THEN 'dormant' ELSE s.status END, \
             s.owner, h.name, s.created_at, s.updated_at, \
             greatest(s.last_seq, (SELECT coalesce(max(e.seq), 0) FROM events e \
                                   WHERE e.session_id = s.id)), \
             s.turns, s.total_cost_usd, {} \
         FROM sessions s LEFT JOIN hosts h ON h.id = s.owner",
        if with_config {
            "s.config"
        } else {
            "NULL::jsonb"
        }
    )
}

fn session_row(r: &tokio_postgres::Row) -> SessionRow {
    SessionRow {
        id: r.get(0),
        principal: r.get(1),
        status: r.get(2),
        owner_host: r.get(3),
        owner_host_name: r.get(4),
        created_at: r.get(5),
        updated_at: r.get(6),
        last_event_id: r.get(7),
        turns: r.get(8),
        total_cost_usd: r.get(9),
        config: r.get(10),
    }
}

pub fn sessions_query(filter: &SessionFilter, before: Option<SessionKey>, limit: i64) -> Statement {
    let mut q = Query::default();
    let lease = q.bind(filter.lease.as_secs_f64());
    let alive = alive(&lease);
    if let Some(p) = &filter.principal {
        q.filter("s.principal = {}", p.clone());
    }
    match filter.status {
        Some(SessionStatus::Active) => q.conditions.push(format!(
            "s.status = 'active' AND s.owner IS NOT NULL AND {alive}"
        )),
        Some(SessionStatus::Dormant) => q.conditions.push(format!(
            "(s.status = 'dormant' OR (s.status = 'active' AND (s.owner IS NULL OR NOT {alive})))"
        )),
        Some(SessionStatus::Closed) => q.conditions.push("s.status = 'closed'".into()),
        None => {}
    }
    time_filters(&mut q, "s.created_at", filter.since, filter.until, None);
    if let Some(k) = before {
        let (at, id) = (q.bind(k.created_at), q.bind(k.id));
        q.conditions
            .push(format!("(s.created_at, s.id) < ({at}, {id})"));
    }
    let limit = q.bind(limit);
    let sql = format!(
        "{} {} ORDER BY s.created_at DESC, s.id DESC LIMIT {limit}",
        session_select(false, &lease),
        q.where_clause()
    );
    Statement { sql, query: q }
}

pub async fn sessions(
    store: &Store,
    filter: &SessionFilter,
    before: Option<SessionKey>,
    limit: i64,
) -> Result<Vec<SessionRow>, StoreError> {
    let rows = sessions_query(filter, before, limit).rows(store).await?;
    Ok(rows.iter().map(session_row).collect())
}

/// One session with its config, if it exists and `principal` may see it (`None`: anyone).
/// Someone else's session is `None`, exactly like a missing one.
pub fn session_query(id: Uuid, principal: Option<&str>, lease: Duration) -> Statement {
    let mut q = Query::default();
    let lease = q.bind(lease.as_secs_f64());
    q.filter("s.id = {}", id);
    if let Some(p) = principal {
        q.filter("s.principal = {}", p.to_owned());
    }
    let sql = format!("{} {}", session_select(true, &lease), q.where_clause());
    Statement { sql, query: q }
}

pub async fn session(
    store: &Store,
    id: Uuid,
    principal: Option<&str>,
    lease: Duration,
) -> Result<Option<SessionRow>, StoreError> {
    let rows = session_query(id, principal, lease).rows(store).await?;
    Ok(rows.first().map(session_row))
}

/// Whether session `id` exists and `principal` may see it (`None`: anyone).
pub async fn visible(store: &Store, id: Uuid, principal: Option<&str>) -> Result<bool, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT 1 FROM sessions WHERE id = $1 AND ($2::text IS NULL OR principal = $2)",
            &[&id, &principal],
        )
        .await?;
    Ok(row.is_some())
}
