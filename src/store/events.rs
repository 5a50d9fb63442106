//! Reads of the event log. Appends live in [`super::writer`].

use super::{Store, StoreError};
use crate::frame::{names, Frame};
use bytes::Bytes;
use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// A run of consecutive events, already concatenated into SSE frames by Postgres.
#[derive(Debug)]
pub struct Page {
    pub bytes: Bytes,
    pub first_seq: u64,
    pub last_seq: u64,
    pub has_done: bool,
}

/// Resume reads: the frames of events `after+1 ..`, at most `limit` events and about
/// `max_bytes` (the page stops after the event that crosses it, so it is never empty), as one
/// buffer.
///
/// Postgres formats and joins the frames (`string_agg`), so a page of a thousand events crosses
/// the wire as one value and costs the server one allocation instead of a thousand decodes and
/// encodes; the bytes are identical to the live frames because `data` is stored verbatim (json).
/// Returns `None` when there is no event after `after`.
pub async fn read_page(
    store: &Store,
    session_id: Uuid,
    after: u64,
    limit: i64,
    max_bytes: usize,
) -> Result<Option<Page>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(include_str!("sql/read_page.sql"))
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[&session_id, &(after as i64), &limit, &(max_bytes as i64)],
        )
        .await?;
    let text: Option<String> = row.get(0);
    Store::recycle(client, text.as_ref().map_or(0, String::len));
    Ok(text.map(|text| Page {
        bytes: Bytes::from(text),
        first_seq: row.get::<_, i64>(1) as u64,
        last_seq: row.get::<_, i64>(2) as u64,
        has_done: row.get(3),
    }))
}

/// Up to `limit` events after `after`, as frames (a follower catching up: `session::follow`).
/// Byte for byte the owner's frames: `data` is stored verbatim.
pub async fn after(
    store: &Store,
    session_id: Uuid,
    after: u64,
    limit: i64,
) -> Result<Vec<Frame>, StoreError> {
    let client = store.client().await?;
    let stmt = client
        .prepare_cached(
            "SELECT seq, event, data::text FROM events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .await?;
    let rows = client
        .query(&stmt, &[&session_id, &(after as i64), &limit])
        .await?;
    let frames: Vec<Frame> = rows
        .iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            Frame::encode(seq as u64, names::intern(r.get(1)), r.get(2))
        })
        .collect();
    Store::recycle(client, frames.iter().map(|f| f.bytes.len()).sum());
    Ok(frames)
}

/// The oldest seq still stored for a session (retention may have removed earlier ones).
pub async fn first_seq(store: &Store, session_id: Uuid) -> Result<Option<u64>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT min(seq) FROM events WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.get::<_, Option<i64>>(0).map(|s| s as u64))
}

/// The first stored seq after `after` (a hole shows as more than `after + 1`).
pub async fn next_seq_after(
    store: &Store,
    session_id: Uuid,
    after: u64,
) -> Result<Option<u64>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_opt(
            "SELECT seq FROM events WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT 1",
            &[&session_id, &(after as i64)],
        )
        .await?;
    Ok(row.map(|r| r.get::<_, i64>(0) as u64))
}

/// The highest committed seq (after any in-flight append of a deposed owner has finished,
/// when called after the claiming UPDATE in the same transaction).
pub async fn max_seq(client: &impl GenericClient, session_id: Uuid) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM events WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// The last `n` events up to `last_seq`, as frames for the ring.
pub async fn tail(
    client: &impl GenericClient,
    session_id: Uuid,
    last_seq: u64,
    n: usize,
) -> Result<Vec<Frame>, StoreError> {
    let from = last_seq.saturating_sub(n as u64) as i64;
    let rows = client
        .query(
            "SELECT seq, event, data::text FROM events \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq",
            &[&session_id, &from],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let seq: i64 = r.get(0);
            let event: &str = r.get(1);
            Frame::encode(seq as u64, names::intern(event), r.get(2))
        })
        .collect())
}
