//! Smoke tests of the load tool itself: tiny scenarios end to end, checking that its report
//! counts every event exactly once. No timing is asserted.

use crate::support::{fixtures_with, TestDb, TestServer, TOKEN};
use agent_webkit_bench::load::{self as bench, target::Target, BenchArgs};
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn args(extra: &[&str]) -> BenchArgs {
    let base = ["bench", "--runs", "1", "--json", "--message-bytes", "50"];
    Cli::try_parse_from(base.iter().chain(extra)).unwrap().bench
}

fn counts(report: &bench::report::Report, scenario: &str) -> bench::report::Counts {
    report
        .counts
        .iter()
        .find(|(s, _)| s == scenario)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no counts for {scenario}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_against_a_running_server_counts_every_event_once() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let args = args(&[
        "--url",
        &server.api.base,
        "--token",
        TOKEN,
        "--fixtures-dir",
        fixtures.to_str().unwrap(),
        "--scenarios",
        "throughput,takeover,lag",
        "--sessions",
        "2",
        "--subscribers",
        "1,3",
        "--turns",
        "2",
        "--messages",
        "20",
    ]);
    let target = Target::new(&args).await.unwrap();
    let report = bench::run_on(&target, &args).await.unwrap();
    target.stop().await.unwrap();
    server.stop().await;
    // 2 sessions × (1 + 3) subscribers × (ready + 2 turns × (20 messages + result)).
    let c = counts(&report, "throughput");
    assert_eq!(c.expected, 2 * 4 * (1 + 2 * 21));
    assert!(c.exact(), "{c:?}");
    assert!(report
        .summary("throughput_s2_k3_t2_m20_events_per_s")
        .is_some());
    // Takeover starts its own fleet: against --url it is skipped with a note.
    assert!(report.table().contains("Takeover skipped"));
    // Without --database-url the lag scenario is skipped with a note, not failed.
    assert!(report.table().contains("Lag skipped"));
}

/// The capacity search against a running server: its streamed fixture (StreamEvent deltas,
/// paced) is written where that server reads, each step's subscribers must get every event
/// exactly once. The lag and rate bounds are lifted so that only the counts decide.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_search_counts_every_delta_once() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[]);
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let args = args(&[
        "--url",
        &server.api.base,
        "--token",
        TOKEN,
        "--fixtures-dir",
        fixtures.to_str().unwrap(),
        "--database-url",
        &db.url,
        "--scenarios",
        "capacity",
        "--capacity-start",
        "2",
        "--capacity-max-sessions",
        "4",
        "--capacity-bisect-steps",
        "0",
        "--capacity-turn-deltas",
        "5",
        "--capacity-rate",
        "100",
        "--capacity-pause",
        "0",
        "--capacity-seconds",
        "0.1",
        "--capacity-p99-ms",
        "1e9",
        "--capacity-min-rate",
        "0",
    ]);
    let target = Target::new(&args).await.unwrap();
    let report = bench::run_on(&target, &args).await;
    target.stop().await.unwrap();
    server.stop().await;
    let report = report.unwrap();
    // Steps of 2 and 4 sessions; each session: ready + 3 turns × (5 deltas + complete + result).
    let c = counts(&report, "capacity");
    assert_eq!(c.expected, (2 + 4) * (1 + 3 * 7), "{}", report.table());
    assert!(c.exact(), "{c:?}");
    let largest = report.summary("capacity_r100_b60_sessions").unwrap();
    assert_eq!(largest.median, 4.0, "{}", report.table());
    // The database was given: the lag is read from the events table.
    assert!(
        report.summary("capacity_r100_b60_insert_p99_ms").is_some()
            || report.summary("capacity_r100_b60_commit_p99_ms").is_some(),
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_server_runs_throughput_resume_memory_and_fanout() {
    let args = args(&[
        "--server-bin",
        env!("CARGO_BIN_EXE_agent-webkit-server"),
        "--no-fsync",
        "--scenarios",
        "limits,memory,throughput,resume,fanout",
        "--copy-rows",
        "20000",
        // More than the server's default cap of streams per session (64): the tool raises it.
        "--fanout-subscribers",
        "70",
        "--fanout-events",
        "5",
        "--fanout-rate",
        "100",
        "--sessions",
        "2",
        "--subscribers",
        "2",
        "--turns",
        "1",
        "--messages",
        "30",
        "--ring-size",
        "100",
        "--resume-events",
        "250",
        "--memory-sessions",
        "3",
        "--idle-streams",
        "10",
    ]);
    let target = Target::new(&args).await.unwrap();
    let report = bench::run_on(&target, &args).await;
    target.stop().await.unwrap();
    let report = report.unwrap();
    for scenario in ["memory", "throughput", "resume", "fanout"] {
        let c = counts(&report, scenario);
        assert!(c.expected > 0 && c.exact(), "{scenario}: {c:?}");
    }
    assert!(report.summary("memory_idle_stream_kib").is_some());
    // The tool started Postgres, so COPY's rows per Postgres CPU-second are known.
    let copy = report.summary("limit_copy_events_rows_per_pg_cpu_s");
    assert!(copy.is_some_and(|s| s.median > 0.0), "{}", report.table());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_kills_a_host_of_its_fleet_and_loses_no_event() {
    let args = args(&[
        "--server-bin",
        env!("CARGO_BIN_EXE_agent-webkit-server"),
        "--no-fsync",
        "--scenarios",
        "takeover",
        "--takeover-sessions",
        "3",
        "--takeover-turns",
        "2",
        "--takeover-turn-seconds",
        "1",
        "--takeover-rate",
        "100",
    ]);
    let target = Target::new(&args).await.unwrap();
    let report = bench::run_on(&target, &args).await;
    target.stop().await.unwrap();
    let report = report.unwrap();
    // Every subscriber, across its reconnects, holds exactly its session's table.
    let c = counts(&report, "takeover");
    assert!(c.expected > 0 && c.exact(), "{c:?}\n{}", report.table());
    let taken = report.summary("takeover_sessions").unwrap();
    assert!(taken.median >= 1.0, "{}", report.table());
    for key in ["takeover_event_p50_ms", "takeover_200_max_ms"] {
        let s = report.summary(key).unwrap_or_else(|| panic!("no {key}"));
        assert!(s.median > 0.0, "{key}: {}", report.table());
    }
}
