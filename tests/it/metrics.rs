//! `/metrics`: Prometheus text that parses, every documented metric present, and counters that
//! move with what happens (create, evict, 412, first reply, takeover, fenced append).

use crate::support::fleet::free_port;
use crate::support::metrics::{parse, scrape, Scraped};
use crate::support::{TestDb, TestServer};
use agent_webkit_server::frame::{names, Frame};
use agent_webkit_server::metrics::Metrics;
use agent_webkit_server::store::writer::{Append, CommitSink, Writer};
use agent_webkit_server::store::{hosts, Store};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const NAMES: &[&str] = &[
    "agent_webkit_sessions_live",
    "agent_webkit_sessions_created_total",
    "agent_webkit_sessions_evicted_total",
    "agent_webkit_permissions_first_reply_winner_total",
    "agent_webkit_resume_412_total",
    "agent_webkit_resume_from_store_total",
    "agent_webkit_store_commit_seconds",
    "agent_webkit_store_batch_events",
    "agent_webkit_publish_lag_seconds",
    "agent_webkit_sse_subscribers",
    "agent_webkit_takeovers_total",
    "agent_webkit_fenced_appends_total",
    "agent_webkit_agent_processes",
];

/// Polls `/metrics` until `check` holds (bounded; eviction and ownership run on timers).
async fn until(server: &TestServer, what: &str, check: impl Fn(&Scraped) -> bool) -> Scraped {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(&server.api).await;
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_with_sessions_replies_resumes_and_evictions() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.idle_timeout = Duration::from_millis(300);
    config.sessions.ring_size = 2;
    let server = TestServer::start_with(config).await;
    let api = &server.api;

    let m = scrape(api).await;
    for name in NAMES {
        assert!(m.documents(name), "{name} is not exposed");
    }
    assert_eq!(m.value("agent_webkit_sessions_created_total", &[]), 0.0);
    assert_eq!(
        api.with_token("wrong").get_status("/metrics").await,
        Some(401)
    );

    // A turn with a permission request answered twice: one winner, one conflict.
    let id = api.create("read_allow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "read").await;
    let ask = stream.until("permission_request").await.pop().unwrap();
    let reply = json!({"type": "permission_response",
        "correlation_id": ask.data["correlation_id"], "behavior": "allow"});
    assert_eq!(api.input(&id, reply.clone()).await, 204);
    assert_eq!(api.input(&id, reply).await, 409);
    let all = stream.until("result").await;
    let m = scrape(api).await;
    assert_eq!(m.value("agent_webkit_sessions_created_total", &[]), 1.0);
    assert_eq!(m.value("agent_webkit_sessions_live", &[]), 1.0);
    assert_eq!(m.value("agent_webkit_sse_subscribers", &[]), 1.0);
    assert_eq!(
        m.value("agent_webkit_permissions_first_reply_winner_total", &[]),
        1.0
    );
    assert_eq!(
        m.value("agent_webkit_permissions_reply_conflicts_total", &[]),
        1.0
    );
    assert_eq!(m.value("agent_webkit_agent_processes", &[]), 1.0);
    assert!(m.histogram_count("agent_webkit_store_commit_seconds") >= 1.0);
    assert!(m.histogram_count("agent_webkit_store_batch_events") >= 1.0);
    assert!(m.histogram_count("agent_webkit_publish_lag_seconds") >= 1.0);

    // Resumes: ahead of the last event is a 412; older than the ring (2) reads Postgres.
    let last = all.last().unwrap().id;
    let ahead = (last + 5).to_string();
    assert_eq!(api.stream(&id, Some(&ahead)).await.err().unwrap().0, 412);
    let mut old = api.stream(&id, Some("1")).await.unwrap();
    old.until("result").await;
    drop(old);
    let m = scrape(api).await;
    assert_eq!(
        m.value("agent_webkit_resume_412_total", &[("reason", "ahead")]),
        1.0
    );
    assert!(m.value("agent_webkit_resume_from_store_total", &[]) >= 1.0);

    // DELETE: evicted as closed; the stream ends.
    assert_eq!(api.delete(&id).await, 204);
    stream.rest().await;
    drop(stream);
    let m = until(&server, "closed eviction", |m| {
        m.value(
            "agent_webkit_sessions_evicted_total",
            &[("reason", "closed")],
        ) == 1.0
    })
    .await;
    assert_eq!(m.value("agent_webkit_sessions_live", &[]), 0.0);

    // A session left alone (no subscriber, no input) is evicted as idle, and its agent stops.
    let idle = api.create("plain_qa").await;
    let mut s = api.stream(&idle, None).await.unwrap();
    api.say(&idle, "hi").await;
    s.until("result").await;
    drop(s);
    let m = until(&server, "idle eviction", |m| {
        // The eviction is counted when the session starts leaving; it is live until its row
        // is released, so wait for all three.
        m.value("agent_webkit_sessions_evicted_total", &[("reason", "idle")]) == 1.0
            && m.value("agent_webkit_agent_processes", &[]) == 0.0
            && m.value("agent_webkit_sessions_live", &[]) == 0.0
    })
    .await;
    assert_eq!(m.value("agent_webkit_sessions_created_total", &[]), 2.0);
    assert_eq!(m.value("agent_webkit_sessions_live", &[]), 0.0);
    assert_eq!(m.value("agent_webkit_sse_subscribers", &[]), 0.0);
    assert_eq!(
        m.value("agent_webkit_takeovers_total", &[]),
        0.0,
        "rehydration is no takeover"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_takeover_counts_on_the_new_owner_and_fences_the_old_one() {
    let db = TestDb::new().await;
    let mut config_a = TestServer::config(&db);
    config_a.host.name = format!("metrics-a-{}", std::process::id());
    config_a.host.ownership_check = Duration::from_millis(50);
    let a = TestServer::start_with(config_a.clone()).await;
    let b = TestServer::start(&db).await;

    let id = a.api.create("plain_qa").await;
    let mut on_a = a.api.stream(&id, None).await.unwrap();
    on_a.until("session_ready").await;
    // Host A "dies" as far as Postgres can tell (the row says released; its lock stays).
    let client = db.client().await;
    client
        .execute(
            "UPDATE hosts SET released_at = now() WHERE name = $1",
            &[&config_a.host.name],
        )
        .await
        .unwrap();
    let mut on_b = b.api.stream(&id, None).await.unwrap();
    on_b.until("session_ready").await;
    assert_eq!(
        scrape(&b.api)
            .await
            .value("agent_webkit_takeovers_total", &[]),
        1.0
    );
    // A finds the session taken over and lets go of it.
    until(&a, "fenced eviction on the old owner", |m| {
        m.value(
            "agent_webkit_sessions_evicted_total",
            &[("reason", "fenced")],
        ) == 1.0
    })
    .await;
    assert_eq!(
        scrape(&a.api)
            .await
            .value("agent_webkit_takeovers_total", &[]),
        0.0
    );
    drop((on_a, on_b));
    b.stop().await;
    a.stop().await;
}

struct Nowhere;
impl CommitSink for Nowhere {
    fn committed(&self, _: Vec<Frame>) {}
    fn fenced(&self) {}
}

#[tokio::test]
async fn an_append_with_a_stale_epoch_counts_as_fenced() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url, 2).unwrap();
    store.migrate().await.unwrap();
    let host = hosts::register(&store, "fenced-count").await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let stop = CancellationToken::new();
    let (writer, _task) = Writer::spawn_with(store.clone(), host, stop.clone(), metrics.clone());
    // No session row names this host as owner: every epoch is stale.
    let (ack, done) = tokio::sync::oneshot::channel();
    writer
        .append(Append {
            session_id: uuid::Uuid::new_v4(),
            epoch: 1,
            frames: vec![Frame::encode(1, names::RESULT, "{}")],
            transcript: Vec::new(),
            sink: Arc::new(Nowhere),
            ack: Some(ack),
            span: tracing::Span::none(),
        })
        .await
        .unwrap();
    assert!(done.await.unwrap().is_err());
    let m = parse(&metrics.render());
    assert_eq!(m.value("agent_webkit_fenced_appends_total", &[]), 1.0);
    assert_eq!(m.histogram_count("agent_webkit_store_batch_events"), 1.0);
    stop.cancel();
}

#[tokio::test]
async fn metrics_listen_serves_metrics_without_auth_and_nothing_else() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let port = free_port();
    config.http.metrics_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let server = TestServer::start_with(config).await;
    server.api.create("plain_qa").await;
    let open = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let m = parse(&open.text().await.unwrap());
    assert_eq!(m.value("agent_webkit_sessions_created_total", &[]), 1.0);
    let other = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    server.stop().await;
}

#[test]
fn the_dashboard_only_charts_metrics_the_server_exposes() {
    let dashboard = include_str!("../../ops/grafana-dashboard.json");
    let _: serde_json::Value = serde_json::from_str(dashboard).expect("valid JSON");
    let exposed = parse(&Metrics::new().render());
    let mut charted = 0;
    for (i, _) in dashboard.match_indices("agent_webkit_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            exposed.documents(base),
            "the dashboard charts unknown {name}"
        );
        charted += 1;
    }
    assert!(charted >= NAMES.len());
}
