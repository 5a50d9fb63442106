//! A synthetic audit log: `agent-webkit-bench generate --sessions 10000 --events 1000000`.
//!
//! Sessions of many principals, spread over `--span` (default 30 days) so time filters and
//! retention have something to cut; each session a run of turns shaped like real ones
//! (deltas, a completed message, a tool call with its permission request and decision, the
//! tool result, the result), and the inputs that drove them, including a share of `409`
//! losers. Rows go in through `sql/generate_*.sql`, which fills the audit columns with the
//! same functions as the writer's `append.sql`, so the indexes see what production sees.
//! Deterministic for a given `--seed`.

use crate::DbArgs;
use agent_webkit_server::config::parse_duration;
use agent_webkit_server::store::{Store, StoreError};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[arg(long, default_value_t = 10_000)]
    pub sessions: u64,
    /// Events in all (spread over the sessions, about evenly).
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Distinct principals owning the sessions.
    #[arg(long, default_value_t = 50)]
    pub principals: u64,
    /// Sessions start within this span before now.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub span: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub sessions: u64,
    pub events: u64,
    pub principals: u64,
    pub span: Duration,
    pub seed: u64,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub sessions: u64,
    pub events: u64,
    pub inputs: u64,
}

const TOOLS: &[&str] = &["Read", "Bash", "Edit", "Grep", "Write", "WebFetch"];
/// Sessions per transaction.
const CHUNK: u64 = 100;

pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let (url, cluster) = args.db.open().await?;
    let store = Store::connect(&url, 2)?;
    store.migrate().await?;
    let spec = Spec {
        sessions: args.sessions,
        events: args.events,
        principals: args.principals.max(1),
        span: args.span,
        seed: args.seed,
    };
    let started = Instant::now();
    let summary = generate(&store, &spec).await;
    if summary.is_ok() {
        // Fresh statistics, so the plans measured next are the ones production would get.
        store
            .client()
            .await?
            .batch_execute("ANALYZE sessions, events, inputs")
            .await?;
    }
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    let summary = summary?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "generated {} sessions, {} events, {} inputs in {secs:.1} s ({:.0} events/s), analyzed",
        summary.sessions,
        summary.events,
        summary.inputs,
        summary.events as f64 / secs
    );
    Ok(())
}

/// Rows of one chunk, column by column (the statements take arrays).
#[derive(Default)]
struct Chunk {
    s_id: Vec<Uuid>,
    s_principal: Vec<String>,
    s_status: Vec<&'static str>,
    s_last: Vec<i64>,
    s_turns: Vec<i32>,
    s_cost: Vec<f64>,
    s_created: Vec<SystemTime>,
    s_updated: Vec<SystemTime>,
    e_session: Vec<Uuid>,
    e_seq: Vec<i64>,
    e_event: Vec<&'static str>,
    e_data: Vec<String>,
    e_at: Vec<SystemTime>,
    i_session: Vec<Uuid>,
    i_type: Vec<&'static str>,
    i_body: Vec<serde_json::Value>,
    i_principal: Vec<String>,
    i_status: Vec<i16>,
    i_correlation: Vec<Option<String>>,
    i_ask_seq: Vec<Option<i64>>,
    i_turn: Vec<Option<&'static str>>,
    i_at: Vec<SystemTime>,
}

pub async fn generate(store: &Store, spec: &Spec) -> Result<Summary, StoreError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let now = SystemTime::now();
    let start = now.checked_sub(spec.span).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut summary = Summary::default();
    let mut left = spec.events;
    let mut first = 0;
    while first < spec.sessions {
        let n = CHUNK.min(spec.sessions - first);
        let mut chunk = Chunk::default();
        for i in first..first + n {
            let sessions_left = spec.sessions - i;
            let mean = left / sessions_left;
            let count = if sessions_left == 1 {
                left
            } else {
                rng.random_range(mean / 2..=mean + mean / 2)
                    .clamp(1, left.max(1))
            };
            left -= count.min(left);
            // Sessions last minutes; 0.9 keeps their events in the past.
            let created = start + spec.span.mul_f64(0.9 * rng.random::<f64>());
            session(&mut rng, &mut chunk, i, spec, created, count);
        }
        insert(store, &chunk).await?;
        summary.sessions += n;
        summary.events += chunk.e_seq.len() as u64;
        summary.inputs += chunk.i_session.len() as u64;
        first += n;
    }
    Ok(summary)
}

/// Appends one session's events to a chunk, numbering them.
struct Log<'a> {
    c: &'a mut Chunk,
    id: Uuid,
    seq: i64,
}

impl Log<'_> {
    fn push(&mut self, at: SystemTime, event: &'static str, data: serde_json::Value) -> i64 {
        self.seq += 1;
        self.c.e_session.push(self.id);
        self.c.e_seq.push(self.seq);
        self.c.e_event.push(event);
        self.c.e_data.push(data.to_string());
        self.c.e_at.push(at);
        self.seq
    }
}

fn session(
    rng: &mut StdRng,
    c: &mut Chunk,
    index: u64,
    spec: &Spec,
    created: SystemTime,
    count: u64,
) {
    let id = Uuid::from_u64_pair(spec.seed, index);
    let principal = format!("user-{}", index % spec.principals);
    let closed = rng.random_bool(0.7);
    let budget = count.saturating_sub(u64::from(closed)) as i64;
    let (mut at, mut turns, mut cost) = (created, 0, 0.0);
    let mut log = Log { c, id, seq: 0 };
    log.push(
        at,
        "session_ready",
        json!({"session_id": id, "protocol_version": "1.0"}),
    );
    while log.seq < budget {
        turns += 1;
        at += Duration::from_secs(rng.random_range(5..60));
        let body = json!({"type": "user_message", "content": format!("task {turns}")});
        log.c.input(
            id,
            "user_message",
            body,
            &principal,
            204,
            None,
            None,
            Some("done"),
            at,
        );
        let m = format!("m_{turns}");
        // Deltas are most of a real stream (about 70% here, as in the writer measurements).
        for k in 0..rng.random_range(5..25) {
            if log.seq >= budget {
                break;
            }
            at += Duration::from_millis(rng.random_range(20..400));
            let delta = json!({"type": "text", "text": format!("piece {k} of the answer")});
            log.push(
                at,
                "message_delta",
                json!({"message_id": m, "delta": delta}),
            );
        }
        let tool = TOOLS[rng.random_range(0..TOOLS.len())];
        let tu = format!("tu_{index}_{turns}");
        let path = format!("/src/file_{}.rs", rng.random_range(0..5000));
        let input = json!({"path": path, "command": format!("cat {path}")});
        let behavior = if rng.random_bool(0.8) {
            "allow"
        } else {
            "deny"
        };
        let block = json!({"type": "tool_use", "id": tu, "name": tool, "input": input});
        let message = json!({"id": m, "role": "assistant", "content": [block],
                             "model": "claude-sonnet", "stop_reason": "tool_use"});
        let steps: [(&'static str, serde_json::Value); 6] = [
            (
                "message_complete",
                json!({"message_id": m, "message": message}),
            ),
            (
                "tool_use",
                json!({"message_id": m, "tool_use_id": tu, "tool_name": tool, "input": input}),
            ),
            (
                "permission_request",
                json!({"correlation_id": tu, "tool_name": tool, "input": input, "context": {}}),
            ),
            (
                "permission_resolved",
                json!({"correlation_id": tu, "behavior": behavior}),
            ),
            (
                "tool_result",
                json!({"tool_use_id": tu, "output": "ok", "is_error": rng.random_bool(0.05)}),
            ),
            (
                "result",
                json!({"session_id": id, "subtype": "success", "total_cost_usd": 0.002}),
            ),
        ];
        for (event, data) in steps {
            if log.seq >= budget {
                break;
            }
            at += Duration::from_millis(rng.random_range(50..2000));
            let seq = log.push(at, event, data);
            if event == "permission_resolved" {
                let reply = json!({"type": "permission_response", "correlation_id": tu, "behavior": behavior});
                log.c.input(
                    id,
                    "permission_response",
                    reply.clone(),
                    &principal,
                    204,
                    Some(&tu),
                    Some(seq - 1),
                    None,
                    at,
                );
                if rng.random_bool(0.25) {
                    // Another tab answered a moment too late.
                    let late = at + Duration::from_millis(30);
                    log.c.input(
                        id,
                        "permission_response",
                        reply,
                        &principal,
                        409,
                        Some(&tu),
                        None,
                        None,
                        late,
                    );
                }
            }
            if event == "result" {
                cost += 0.002;
            }
        }
    }
    if closed {
        at += Duration::from_secs(1);
        log.push(at, "done", json!({}));
    }
    let last = log.seq;
    c.s_id.push(id);
    c.s_principal.push(principal);
    c.s_status.push(if closed { "closed" } else { "dormant" });
    c.s_last.push(last);
    c.s_turns.push(turns);
    c.s_cost.push(cost);
    c.s_created.push(created);
    c.s_updated.push(at);
}

impl Chunk {
    #[allow(clippy::too_many_arguments)]
    fn input(
        &mut self,
        session: Uuid,
        kind: &'static str,
        body: serde_json::Value,
        principal: &str,
        status: i16,
        correlation: Option<&str>,
        ask_seq: Option<i64>,
        turn: Option<&'static str>,
        at: SystemTime,
    ) {
        self.i_session.push(session);
        self.i_type.push(kind);
        self.i_body.push(body);
        self.i_principal.push(principal.to_owned());
        self.i_status.push(status);
        self.i_correlation.push(correlation.map(str::to_owned));
        self.i_ask_seq.push(ask_seq);
        self.i_turn.push(turn);
        self.i_at.push(at);
    }
}

async fn insert(store: &Store, c: &Chunk) -> Result<(), StoreError> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    tx.execute(
        include_str!("sql/generate_sessions.sql"),
        &[
            &c.s_id,
            &c.s_principal,
            &c.s_status,
            &c.s_last,
            &c.s_turns,
            &c.s_cost,
            &c.s_created,
            &c.s_updated,
        ],
    )
    .await?;
    tx.execute(
        include_str!("sql/generate_events.sql"),
        &[&c.e_session, &c.e_seq, &c.e_event, &c.e_data, &c.e_at],
    )
    .await?;
    tx.execute(
        include_str!("sql/generate_inputs.sql"),
        &[
            &c.i_session,
            &c.i_type,
            &c.i_body,
            &c.i_principal,
            &c.i_status,
            &c.i_correlation,
            &c.i_ask_seq,
            &c.i_turn,
            &c.i_at,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
