//! Load: with Postgres able to commit about 1000 events/s (a trigger sleeps 1 ms per row) and
//! sessions producing at least twice that, the host stays responsive (`/healthz` answers, new
//! messages get `503 overloaded` at once instead of waiting), its memory stays bounded, and
//! when the load drops it recovers with nothing lost: every subscriber holds exactly the
//! table's events, and new messages are accepted again.

use crate::support::drill::scenario;
use crate::support::fixtures_with;
use crate::support::metrics::scrape;
use crate::support::process::ServerProcess;
use crate::support::sse::assert_contiguous;
use crate::support::TestDb;
use serde_json::json;
use std::time::{Duration, Instant};

/// Sessions flooding at once, each producing `MESSAGES` events about 1 ms apart.
const SESSIONS: usize = 4;
const MESSAGES: usize = 2000;

const SLOW_COMMITS: &str = "
    CREATE FUNCTION awk_test_slow_row() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;
    CREATE TRIGGER awk_test_slow BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION awk_test_slow_row();";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_sustainable_rate_sheds_new_work_stays_bounded_and_recovers() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[
        ("flood", scenario(1, MESSAGES, 1)),
        ("probe", scenario(100, 1, 0)),
    ]);
    let server = ServerProcess::start(&db.url, Some(&fixtures), &[], &[]).await;
    let api = &server.api;
    let probe = api.create("probe").await;
    let mut probe_stream = api.stream(&probe, None).await.unwrap();
    probe_stream.until("session_ready").await;
    let flood: Vec<String> =
        futures::future::join_all((0..SESSIONS).map(|_| api.create("flood"))).await;
    let db_client = db.client().await;
    db_client.batch_execute(SLOW_COMMITS).await.unwrap();
    let (rss_before, _) = server.memory();

    let followers: Vec<_> = flood
        .iter()
        .map(|id| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move {
                let mut stream = api.stream(&id, None).await.unwrap();
                api.say(&id, "go").await;
                let mut events = Vec::new();
                while let Some(e) = stream.next_within(Duration::from_secs(120)).await.unwrap() {
                    let last = e.event == "result";
                    events.push(e);
                    if last {
                        break;
                    }
                }
                events
            })
        })
        .collect();

    // While the flood runs: health answers, and a new message is refused at once as overloaded
    // (never left waiting: the client gives every request 10 s, far more than any answer takes).
    let probe_api = api.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (mut health_ok, mut overloaded, mut accepted) = (0, 0, 0);
    let mut turn = 0;
    while followers.iter().any(|f| !f.is_finished()) {
        let health = http.get(format!("{}/healthz", probe_api.base)).send().await;
        assert_eq!(health.expect("/healthz answers").status(), 200);
        health_ok += 1;
        if overloaded < 3 {
            let r = http
                .post(format!("{}/sessions/{probe}/input", probe_api.base))
                .bearer_auth(&probe_api.token)
                .json(&json!({"type": "user_message", "content": format!("probe {turn}")}))
                .send()
                .await
                .expect("an input is answered, not left hanging");
            turn += 1;
            match r.status().as_u16() {
                204 => accepted += 1,
                503 => {
                    assert_eq!(r.headers()["retry-after"], "1");
                    let body: serde_json::Value = r.json().await.unwrap();
                    if body["code"] == "overloaded" {
                        overloaded += 1;
                    }
                }
                other => panic!("input answered {other}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, peak) = server.memory();
    assert!(overloaded > 0, "no message was shed ({accepted} accepted)");

    // Recovered: every subscriber holds exactly what the table holds, in order.
    let mut total = 0;
    for (f, id) in followers.into_iter().zip(&flood) {
        let events = f.await.unwrap();
        assert_contiguous(&events, 1);
        let stored: i64 = db_client
            .query_one(
                "SELECT count(*) FROM events WHERE session_id = $1::text::uuid",
                &[id],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(events.len() as i64, stored);
        assert_eq!(events.len(), MESSAGES + 2);
        total += events.len();
    }
    // The writer drains and new work is accepted again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = scrape(api).await;
        let status = api
            .input(&probe, json!({"type": "user_message", "content": "after"}))
            .await;
        if status == 204 {
            assert!(m.value("agent_webkit_overload_rejections_total", &[]) >= overloaded as f64);
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the host never recovered");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (rss_after, _) = server.memory();
    eprintln!(
        "flood: {total} events through a 1000/s database, /healthz answered {health_ok} times, \
         {overloaded} messages shed, {accepted} accepted; RSS before {} MB, peak {} MB, after {} MB",
        rss_before >> 20,
        peak >> 20,
        rss_after >> 20
    );
    // Bounded: the writer's queues are capped (appends and bytes), subscribers hold a chunk.
    assert!(
        peak - rss_before < 64 << 20,
        "peak grew by {} MB",
        (peak - rss_before) >> 20
    );
    db_client
        .batch_execute("DROP TRIGGER awk_test_slow ON events")
        .await
        .unwrap();
    server.stop().await;
}
