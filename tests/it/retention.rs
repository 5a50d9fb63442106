//! Retention: old events go in batches without stalling appends; ids never restart; resume
//! into a removed range is 412.

use crate::support::{fixtures_with, many_messages, TestDb, TestServer};
use agent_webkit_bench::generate::{self, Spec};
use agent_webkit_server::store::{retention, Store};
use std::time::{Duration, SystemTime};

const MONTH: Duration = Duration::from_secs(30 * 86400);

async fn backdate(db: &TestDb, id: &str, up_to_seq: i64) {
    db.client()
        .await
        .execute(
            "UPDATE events SET created_at = now() - interval '40 days' \
             WHERE session_id = $1::text::uuid AND seq <= $2",
            &[&id, &up_to_seq],
        )
        .await
        .unwrap();
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn appends_go_on_while_a_retention_batch_is_open_and_resume_into_it_is_412() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.ring_size = 5;
    let fixtures = fixtures_with(&[("many", many_messages(40, 10))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("many").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "one").await;
    assert_eq!(stream.until("result").await.len(), 42);
    backdate(&db, &id, 30).await;

    // A retention batch removes events 1..=30 and stays uncommitted while the session works.
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    let cutoff = SystemTime::now() - MONTH;
    let batch = retention::delete_batch(&tx, cutoff, 1000).await.unwrap();
    assert_eq!((batch.events, batch.sessions_bumped), (30, 0));
    let started = std::time::Instant::now();
    api.say(&id, "two").await; // the scenario is exhausted: an error and a result
    let more = tokio::time::timeout(Duration::from_secs(5), stream.until("result"))
        .await
        .expect("appends stalled behind the retention batch");
    assert_eq!(more.first().unwrap().id, 43);
    assert!(started.elapsed() < Duration::from_secs(5));
    tx.commit().await.unwrap();

    // Resume into the removed range: 412; right after it: fine, from Postgres (ring of 5).
    for n in [0, 1, 29] {
        let (status, body) = api.stream(&id, Some(&n.to_string())).await.err().unwrap();
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (412, Some("events_expired")),
            "at {n}"
        );
    }
    let mut resumed = api.stream(&id, Some("30")).await.unwrap();
    assert_eq!(resumed.next().await.unwrap().id, 31);
    let (_, history) = api.get_json(&format!("/sessions/{id}/events")).await;
    assert_eq!(history["events"][0]["id"], 31);
    server.stop().await;
}

#[tokio::test]
async fn ids_never_restart_when_every_event_of_a_session_is_removed() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    let last = stream.until("result").await.last().unwrap().id as i64;
    backdate(&db, &id, last).await;
    let store = Store::connect(&db.url, 2).unwrap();
    let removed = retention::run_once(&store, MONTH, 2).await.unwrap();
    assert_eq!((removed.events, removed.sessions_bumped), (last as u64, 1));
    let sql = format!("SELECT last_seq FROM sessions WHERE id = '{id}'");
    assert_eq!(count(&db, &sql).await, last);
    server.stop().await;

    // After a restart the session continues after its removed events, never from 1.
    let server = TestServer::start(&db).await;
    let api = &server.api;
    let (status, body) = api.stream(&id, Some("0")).await.err().unwrap();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (412, Some("events_expired"))
    );
    let mut live = api.stream(&id, Some(&last.to_string())).await.unwrap();
    api.say(&id, "again").await;
    assert_eq!(live.next().await.unwrap().id as i64, last + 1);
    server.stop().await;
}

#[tokio::test]
async fn the_background_task_trims_a_backlog_while_sessions_stream() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url, 2).unwrap();
    store.migrate().await.unwrap();
    // 30 000 events over 90 days: about two thirds are older than the 30-day retention.
    let spec = Spec {
        sessions: 300,
        events: 30_000,
        principals: 5,
        span: Duration::from_secs(90 * 86400),
        seed: 7,
    };
    generate::generate(&store, &spec).await.unwrap();
    let old = "SELECT count(*) FROM events WHERE created_at < now() - interval '30 days'";
    let young = "SELECT count(*) FROM events WHERE created_at >= now() - interval '30 days'";
    let (old_before, young_before) = (count(&db, old).await, count(&db, young).await);
    assert!(old_before > 15_000, "{old_before}");

    let mut config = TestServer::config(&db);
    config.retention.max_age = Some(MONTH);
    config.retention.batch = 50; // ~400 short batches with pauses: seconds of work
    let fixtures = fixtures_with(&[("many", many_messages(2000, 10))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("many").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;
    let events = stream.until("result").await;
    crate::support::sse::assert_contiguous(&events, 1);
    assert_eq!(events.len(), 2002);
    // The whole turn was appended while the run was under way: it had started (the task runs
    // at start) and had not finished.
    let left = count(&db, old).await;
    assert!(
        0 < left && left < old_before,
        "{left} of {old_before} old events left"
    );
    let mut left = left;
    for _ in 0..600 {
        left = count(&db, old).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0);
    assert_eq!(count(&db, young).await, young_before + 2002);
    server.stop().await;
}
