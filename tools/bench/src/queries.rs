//! Each API query against a real data set: which index its plan reads (`EXPLAIN`) and how long
//! it takes (p50 over `--iterations` runs). `agent-webkit-bench queries` prints the table
//! that BENCHMARKS.md records; the integration tests run the same [`cases`] on a smaller
//! generated data set and assert the plan names the expected index.
//!
//! Sample values (a session, its principal, one of its tool calls) are taken from the data, so
//! the queries ask for things that exist, as an operator's would.

use crate::DbArgs;
use agent_webkit_server::store::audit::{
    self, EventFilter, InputFilter, SessionFilter, SessionStatus, Statement,
};
use agent_webkit_server::store::{Store, StoreError};
use clap::Args;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Runs per query; the p50 of them is reported.
    #[arg(long, default_value_t = 50)]
    pub iterations: usize,
}

/// One API query shape and the index its plan should use.
pub struct Case {
    pub name: String,
    pub index: &'static str,
    pub statement: Statement,
}

const PAGE: i64 = 100;

fn case(name: impl Into<String>, index: &'static str, statement: Statement) -> Case {
    Case {
        name: name.into(),
        index,
        statement,
    }
}

/// The query of every endpoint and filter, with values sampled from the data.
pub async fn cases(store: &Store) -> Result<Vec<Case>, StoreError> {
    let client = store.client().await?;
    let row = client
        .query_one(
            "SELECT id, principal FROM sessions ORDER BY created_at \
             OFFSET (SELECT count(*) / 2 FROM sessions) LIMIT 1",
            &[],
        )
        .await?;
    let (session, principal): (Uuid, String) = (row.get(0), row.get(1));
    let row = client
        .query_one(
            "SELECT correlation_id, tool_name, data::jsonb -> 'input' -> 'path' FROM events \
             WHERE session_id = $1 AND event = 'tool_use' ORDER BY seq LIMIT 1",
            &[&session],
        )
        .await?;
    let (correlation, tool): (String, String) = (row.get(0), row.get(1));
    let path: serde_json::Value = row.get(2);
    let newest: SystemTime = client
        .query_one("SELECT max(created_at) FROM events", &[])
        .await?
        .get(0);
    let hour_ago = newest - Duration::from_secs(3600);
    let day_ago = newest - Duration::from_secs(86400);
    drop(client);

    let first_page = audit::events(store, &EventFilter::default(), None, PAGE).await?;
    let page_two = first_page.last().map(audit::EventRow::key);
    let events = |f: EventFilter| audit::events_query(&f, None, PAGE);
    let inputs = |f: InputFilter| audit::inputs_query(&f, None, PAGE);
    let own = SessionFilter {
        principal: Some(principal.clone()),
        ..SessionFilter::default()
    };
    Ok(vec![
        case(
            "GET /sessions (own)",
            "sessions_principal_created",
            audit::sessions_query(&own, None, PAGE),
        ),
        case(
            "GET /sessions?status=closed (own)",
            "sessions_principal_created",
            audit::sessions_query(
                &SessionFilter {
                    status: Some(SessionStatus::Closed),
                    ..own.clone()
                },
                None,
                PAGE,
            ),
        ),
        case(
            "GET /sessions (admin: all)",
            "sessions_created",
            audit::sessions_query(&SessionFilter::default(), None, PAGE),
        ),
        case(
            "GET /sessions/{id}",
            "sessions_pkey",
            audit::session_query(session, Some(&principal), audit::DEFAULT_LEASE),
        ),
        case(
            "GET /sessions/{id}/events",
            "events_pkey",
            audit::session_events_query(session, 0, None, PAGE),
        ),
        case(
            "GET /sessions/{id}/events?event=tool_use",
            "events_pkey",
            audit::session_events_query(session, 0, Some("tool_use"), PAGE),
        ),
        case(
            "GET /audit/events",
            "events_created",
            events(EventFilter::default()),
        ),
        case(
            "GET /audit/events?cursor= (page 2)",
            "events_created",
            audit::events_query(&EventFilter::default(), page_two, PAGE),
        ),
        case(
            "GET /audit/events?since=1h",
            "events_created",
            events(EventFilter {
                since: Some(hour_ago),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?session_id=",
            "events_pkey",
            events(EventFilter {
                session_id: Some(session),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?event=permission_resolved",
            "events_event_rare",
            events(EventFilter {
                event: Some("permission_resolved"),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?event=message_delta",
            "events_created",
            events(EventFilter {
                event: Some("message_delta"),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?event=message_complete",
            "events_created",
            events(EventFilter {
                event: Some("message_complete"),
                ..EventFilter::default()
            }),
        ),
        case(
            format!("GET /audit/events?tool_name={tool}&since=1d"),
            "events_tool_name",
            events(EventFilter {
                tool_name: Some(tool),
                since: Some(day_ago),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?correlation_id=",
            "events_correlation",
            events(EventFilter {
                correlation_id: Some(correlation.clone()),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?contains={\"input\":{\"path\":…}}",
            "events_doc_rare",
            events(EventFilter {
                contains: Some(serde_json::json!({ "input": { "path": path } })),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/events?contains={\"behavior\":\"deny\"}",
            "events_doc_rare",
            events(EventFilter {
                contains: Some(serde_json::json!({ "behavior": "deny" })),
                ..EventFilter::default()
            }),
        ),
        case(
            "GET /audit/inputs",
            "inputs_received",
            inputs(InputFilter::default()),
        ),
        case(
            "GET /audit/inputs?principal=",
            "inputs_principal",
            inputs(InputFilter {
                principal: Some(principal),
                ..InputFilter::default()
            }),
        ),
        case(
            "GET /audit/inputs?status=409&since=1d",
            "inputs_status",
            inputs(InputFilter {
                status: Some(409),
                since: Some(day_ago),
                ..InputFilter::default()
            }),
        ),
        case(
            "GET /audit/inputs?correlation_id=",
            "inputs_correlation",
            inputs(InputFilter {
                correlation_id: Some(correlation),
                ..InputFilter::default()
            }),
        ),
    ])
}

/// Prints a Markdown table: query, index used, p50 and p95 in ms, rows returned.
pub async fn run(store: &Store, args: &BenchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let counts = store
        .client()
        .await?
        .query_one(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM sessions), \
                    (SELECT count(*) FROM inputs)",
            &[],
        )
        .await?;
    let (events, sessions, inputs): (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
    writeln!(
        out,
        "{events} events, {sessions} sessions, {inputs} inputs; {} runs per query\n",
        args.iterations
    )?;
    writeln!(out, "| query | index used | p50 ms | p95 ms | rows |")?;
    writeln!(out, "| --- | --- | ---: | ---: | ---: |")?;
    for c in cases(store).await? {
        let (indexes, _) = c.statement.indexes_used(store).await?;
        let mark = if indexes.iter().any(|i| i == c.index) {
            String::new()
        } else {
            format!(" (expected {})", c.index)
        };
        let mut times = Vec::with_capacity(args.iterations);
        let mut rows = 0;
        for _ in 0..args.iterations.max(1) {
            let started = Instant::now();
            rows = c.statement.rows(store).await?.len();
            times.push(started.elapsed());
        }
        times.sort();
        let pct =
            |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
        writeln!(
            out,
            "| `{}` | {}{mark} | {:.2} | {:.2} | {rows} |",
            c.name,
            indexes.join(", "),
            pct(0.5),
            pct(0.95)
        )?;
        out.flush()?;
    }
    Ok(())
}
