//! Each API query's plan reads the index chosen for it (`EXPLAIN`), on a generated data set
//! big enough that the planner would rather not scan (no `enable_seqscan` tricks). The 1M
//! figures in BENCHMARKS.md come from the same cases (`agent-webkit-bench queries`).

use crate::support::TestDb;
use agent_webkit_bench::generate::{self, Spec};
use agent_webkit_bench::queries as bench;
use agent_webkit_server::store::Store;
use std::time::Duration;

#[tokio::test]
async fn every_api_query_reads_its_index() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url, 2).unwrap();
    store.migrate().await.unwrap();
    let spec = Spec {
        sessions: 1500,
        events: 60_000,
        principals: 20,
        span: Duration::from_secs(30 * 86400),
        seed: 3,
    };
    generate::generate(&store, &spec).await.unwrap();
    db.client().await.batch_execute("ANALYZE").await.unwrap();
    let cases = bench::cases(&store).await.unwrap();
    assert!(cases.len() >= 15);
    let mut wrong = Vec::new();
    for case in &cases {
        let (indexes, plan) = case.statement.indexes_used(&store).await.unwrap();
        if !indexes.iter().any(|i| i == case.index) {
            wrong.push(format!(
                "{}: expected {}, plan {plan}",
                case.name, case.index
            ));
        }
        // And it answers: every case asks for something that exists.
        assert!(
            !case.statement.rows(&store).await.unwrap().is_empty(),
            "{}",
            case.name
        );
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_writer_bench_commits_every_event_with_its_audit_columns() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url, 4).unwrap();
    store.migrate().await.unwrap();
    let rate = agent_webkit_bench::writer::measure(&store, 5, 1000)
        .await
        .unwrap();
    assert!(rate > 0.0);
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), count(tool_name), count(correlation_id), \
                    count(*) FILTER (WHERE event = 'permission_resolved') FROM events",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    // Per turn of 20: tool_use and permission_request carry a tool name; those two plus
    // permission_resolved and tool_result a correlation id.
    assert_eq!(counts, (1000, 100, 200, 50));
}
