//! The Claude CLI's transcripts in Postgres (migration V5): what the model was given, so a
//! conversation can continue on any host that shares the database.
//!
//! Entries are *written* by the group-commit writer, in the same statement as the session's
//! events and under the same fencing (`writer.rs`, `sql/append.sql`): a deposed host's entries
//! are refused like its events, and a turn's entries are committed no later than its `result`
//! (invariant 7, `docs/invariants.md`). This module reads them back (to materialize a
//! transcript before `--resume`, for `GET /sessions/{id}/transcript`) and removes them.

use super::{Store, StoreError};
use deadpool_postgres::GenericClient;
use std::sync::Arc;
use uuid::Uuid;

/// One mirrored entry, as a session appends it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The session's order of arrival, across all its transcript files.
    pub seq: u64,
    /// The file, relative to its project directory (`<conversation>.jsonl`, or a subagent's
    /// `<conversation>/subagents/agent-<id>.jsonl`).
    pub file: Arc<str>,
    /// The entry's `uuid`, where it has one: unique per file.
    pub uuid: Option<String>,
    /// The entry as one line of JSON, exactly as the CLI wrote it.
    pub json: String,
}

/// A session's stored transcript files, each with its entries in order.
pub type Files = Vec<(String, Vec<String>)>;

/// The highest entry seq stored for a session (0: none).
pub async fn max_seq(client: &impl GenericClient, session_id: Uuid) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM transcript_entries WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

/// Every file of a session's transcript, entries in order (what `--resume` needs).
pub async fn load(store: &Store, session_id: Uuid) -> Result<Files, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT file, entry::text FROM transcript_entries WHERE session_id = $1 ORDER BY seq",
            &[&session_id],
        )
        .await?;
    let mut files: Files = Vec::new();
    let mut bytes = 0;
    for row in &rows {
        let (file, entry): (&str, String) = (row.get(0), row.get(1));
        bytes += entry.len();
        match files.iter_mut().find(|(f, _)| f == file) {
            Some((_, entries)) => entries.push(entry),
            None => files.push((file.to_owned(), vec![entry])),
        }
    }
    Store::recycle(client, bytes);
    Ok(files)
}

/// One page of a session's entries after `after` (seq), at most `limit`.
pub async fn page(
    store: &Store,
    session_id: Uuid,
    after: u64,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT seq, file, uuid, entry::text FROM transcript_entries \
             WHERE session_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&session_id, &(after as i64), &limit],
        )
        .await?;
    let entries: Vec<Entry> = rows
        .iter()
        .map(|r| Entry {
            seq: r.get::<_, i64>(0) as u64,
            file: Arc::from(r.get::<_, &str>(1)),
            uuid: r.get(2),
            json: r.get(3),
        })
        .collect();
    Store::recycle(client, entries.iter().map(|e| e.json.len()).sum());
    Ok(entries)
}

/// Removes a session's transcript (after `DELETE` closed it).
pub async fn delete(store: &Store, session_id: Uuid) -> Result<u64, StoreError> {
    let client = store.client().await?;
    Ok(client
        .execute(
            "DELETE FROM transcript_entries WHERE session_id = $1",
            &[&session_id],
        )
        .await?)
}
