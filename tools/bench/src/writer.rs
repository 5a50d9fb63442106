//! `agent-webkit-bench writer`: the append rate of the real group-commit writer
//! (`store::writer`, `append.sql` with its audit columns and whatever indexes the database
//! has), so the cost of the audit indexes can be read end to end, not only in SQL.
//!
//! It registers a host, creates `--sessions` sessions owned by it, and has each session append
//! its share of `--events` events (the generator's mix: mostly deltas, then tool calls,
//! decisions and results) a few frames at a time, as session tasks do. The rate is events
//! committed per second of wall time, from the first append to the last acknowledgement.

use crate::DbArgs;
use agent_webkit_server::frame::{names, Frame};
use agent_webkit_server::store::writer::{Append, CommitSink, Writer};
use agent_webkit_server::store::{hosts, Store, StoreError};
use clap::Args;
use serde_json::json;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct WriterBenchArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, default_value_t = 200)]
    pub sessions: u64,
    #[arg(long, default_value_t = 200_000)]
    pub events: u64,
}

/// Committed frames go nowhere: the bench measures the commit, not the fan-out.
struct Discard;

impl CommitSink for Discard {
    fn committed(&self, _: Vec<Frame>) {}
    fn fenced(&self) {}
}

/// One event of the mix, by position in a turn of 20.
fn event(seq: u64) -> (&'static str, String) {
    let tu = format!("tu_{}", seq / 20);
    let input = json!({"path": format!("/src/file_{}.rs", seq % 5000)});
    let (name, data) = match seq % 20 {
        1 => (
            names::MESSAGE_COMPLETE,
            json!({"message_id": "m", "message": {"id": "m", "role": "assistant", "content": [], "model": "m", "stop_reason": "tool_use"}}),
        ),
        2 => (
            names::TOOL_USE,
            json!({"message_id": "m", "tool_use_id": tu, "tool_name": "Bash", "input": input}),
        ),
        3 => (
            names::PERMISSION_REQUEST,
            json!({"correlation_id": tu, "tool_name": "Bash", "input": input, "context": {}}),
        ),
        4 => (
            names::PERMISSION_RESOLVED,
            json!({"correlation_id": tu, "behavior": "allow"}),
        ),
        5 => (
            names::TOOL_RESULT,
            json!({"tool_use_id": tu, "output": "ok", "is_error": false}),
        ),
        6 => (
            names::RESULT,
            json!({"session_id": "s", "subtype": "success", "total_cost_usd": 0.002}),
        ),
        _ => (
            names::MESSAGE_DELTA,
            json!({"message_id": "m", "delta": {"type": "text", "text": format!("a piece of the answer {seq}")}}),
        ),
    };
    (name, data.to_string())
}

pub async fn run(
    store: &Store,
    args: &WriterBenchArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let rate = measure(store, args.sessions.max(1), args.events).await?;
    writeln!(
        out,
        "{} events over {} sessions: {rate:.0} events/s committed",
        args.events, args.sessions
    )?;
    Ok(())
}

/// Events committed per second.
pub async fn measure(store: &Store, sessions: u64, events: u64) -> Result<f64, StoreError> {
    let host = hosts::register(store, "bench-writer").await?;
    let ids: Vec<Uuid> = (0..sessions).map(|_| Uuid::new_v4()).collect();
    store
        .client()
        .await?
        .execute(
            "INSERT INTO sessions (id, principal, config, status, owner, epoch) \
             SELECT id, 'bench', '{}', 'active', $2, 1 FROM unnest($1::uuid[]) AS id",
            &[&ids, &host],
        )
        .await?;
    let shutdown = CancellationToken::new();
    let (writer, task) = Writer::spawn(store.clone(), host, shutdown.clone());
    let per_session = events / sessions;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids {
        let writer = writer.clone();
        tasks.spawn(async move {
            let sink: Arc<dyn CommitSink> = Arc::new(Discard);
            let mut seq = 0;
            while seq < per_session {
                let n = (per_session - seq).min(1 + seq % 4);
                let frames = (seq + 1..=seq + n)
                    .map(|s| {
                        let (name, data) = event(s);
                        Frame::encode(s, name, &data)
                    })
                    .collect();
                seq += n;
                let last = seq == per_session;
                let (ack, done) = tokio::sync::oneshot::channel();
                let append = Append {
                    session_id: id,
                    epoch: 1,
                    frames,
                    transcript: Vec::new(),
                    sink: sink.clone(),
                    ack: last.then_some(ack),
                    span: tracing::Span::none(),
                };
                writer.append(append).await?;
                if last {
                    done.await
                        .map_err(|_| StoreError::Unavailable("writer stopped".into()))??;
                }
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| StoreError::Other(e.to_string()))??;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(writer);
    shutdown.cancel();
    let _ = task.await;
    Ok((per_session * sessions) as f64 / secs)
}
