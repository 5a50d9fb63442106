//! Any load balancer (issue 14): every host serves every session's stream and takes its
//! inputs; only the owner appends. Several hosts in this process (one `app::run` each), one
//! database, requests spread over them by hand.

use crate::support::drill::scenario;
use crate::support::process::ServerProcess;
use crate::support::sse::{assert_contiguous, names, Event};
use crate::support::{fixtures_with, Scratch, TestDb, TestServer};
use serde_json::json;
use std::time::Duration;

async fn hosts(db: &TestDb, fixtures: &Scratch, n: usize) -> Vec<TestServer> {
    let mut out = Vec::new();
    for i in 0..n {
        let mut config = TestServer::config(db);
        config.agent.replay.fixtures = fixtures.path().to_owned();
        config.host.name = format!("host-{i}");
        out.push(TestServer::start_with(config).await);
    }
    out
}

fn fixtures() -> Scratch {
    fixtures_with(&[("paced", scenario(3, 20, 20))])
}

/// The stored events of a session, as (seq, event name).
async fn table(db: &TestDb, id: &str) -> Vec<(u64, String)> {
    let id: uuid::Uuid = id.parse().unwrap();
    db.client()
        .await
        .query(
            "SELECT seq, event FROM events WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
        .collect()
}

async fn owner(db: &TestDb, id: &str) -> Option<String> {
    db.client()
        .await
        .query_one(
            "SELECT h.name FROM sessions s LEFT JOIN hosts h ON h.id = s.owner \
             WHERE s.id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_replies_over_three_hosts_have_one_winner() {
    let db = TestDb::new().await;
    let fixtures = fixtures();
    let hosts = hosts(&db, &fixtures, 3).await;
    let id = hosts[0].api.create("read_allow").await;
    let mut on_owner = hosts[0].api.stream(&id, None).await.unwrap();
    hosts[0].api.say(&id, "read it").await;
    let asked = on_owner.until("permission_request").await.pop().unwrap();
    let cid = asked.data["correlation_id"].clone();
    // A follower stream on another host sees the request too.
    let mut on_follower = hosts[2].api.stream(&id, None).await.unwrap();
    on_follower.until("permission_request").await;
    let replies = (0..30).map(|i| {
        let api = hosts[i % 3].api.clone();
        let (id, cid) = (id.clone(), cid.clone());
        tokio::spawn(async move {
            let allow =
                json!({"type": "permission_response", "correlation_id": cid, "behavior": "allow"});
            api.input(&id, allow).await.as_u16()
        })
    });
    let statuses: Vec<u16> = futures::future::join_all(replies)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 204).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        29,
        "{statuses:?}"
    );
    let events = on_owner.until("result").await;
    let follower = on_follower.until("result").await;
    for events in [&events, &follower] {
        assert_eq!(
            names(events)
                .iter()
                .filter(|n| **n == "permission_resolved")
                .count(),
            1
        );
        assert_eq!(events.last().unwrap().data["subtype"], "success");
    }
    assert_eq!(owner(&db, &id).await.as_deref(), Some("host-0"));
    let recorded: Vec<(i16, i64)> = db
        .client()
        .await
        .query(
            "SELECT status, count(*) FROM inputs WHERE session_id = $1::text::uuid \
             AND type = 'permission_response' GROUP BY status ORDER BY status",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(recorded, [(204, 1), (409, 29)]);
    for h in hosts {
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupt_sent_to_a_follower_ends_the_owners_turn() {
    let db = TestDb::new().await;
    let fixtures = fixtures();
    let hosts = hosts(&db, &fixtures, 2).await;
    let id = hosts[0].api.create("slow").await;
    let mut on_owner = hosts[0].api.stream(&id, None).await.unwrap();
    hosts[0].api.say(&id, "take your time").await;
    on_owner.until("message_complete").await;
    let mut on_follower = hosts[1].api.stream(&id, None).await.unwrap();
    assert_eq!(
        hosts[1].api.input(&id, json!({"type": "interrupt"})).await,
        204
    );
    let events = on_owner.until("result").await;
    assert_eq!(
        events.last().unwrap().data["subtype"],
        "interrupted",
        "{events:?}"
    );
    let followed = on_follower.until("result").await;
    assert_eq!(followed.last().unwrap().id, events.last().unwrap().id);
    assert_eq!(owner(&db, &id).await.as_deref(), Some("host-0"));
    for h in hosts {
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_delete_sent_to_a_follower_reach_the_owner() {
    let db = TestDb::new().await;
    let fixtures = fixtures();
    let hosts = hosts(&db, &fixtures, 2).await;
    let id = hosts[0].api.create("paced").await;
    let mut on_owner = hosts[0].api.stream(&id, None).await.unwrap();
    on_owner.until("session_ready").await;
    let mut on_follower = hosts[1].api.stream(&id, None).await.unwrap();
    // Three turns, all sent to the follower: queued in order on the owner.
    for t in 0..3 {
        hosts[1].api.say(&id, &format!("turn {t}")).await;
    }
    for t in 0..3 {
        let events = on_owner.until("result").await;
        assert_eq!(
            events.last().unwrap().data["subtype"],
            "success",
            "turn {t}"
        );
    }
    let mut followed = vec![];
    for _ in 0..3 {
        followed.extend(on_follower.until("result").await);
    }
    assert_contiguous(&followed, 1);
    // DELETE through the follower: 204 once `done` is committed; both streams end with it.
    assert_eq!(hosts[1].api.delete(&id).await, 204);
    let stored = table(&db, &id).await;
    assert_eq!(stored.last().unwrap().1, "done");
    for stream in [&mut on_owner, &mut on_follower] {
        let rest = stream.rest().await;
        assert_eq!(rest.last().map(|e| e.event.as_str()), Some("done"));
    }
    for h in hosts {
        h.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_keeps_delivering_while_its_listen_connection_is_down() {
    let db = TestDb::new().await;
    let fixtures = fixtures();
    let hosts = hosts(&db, &fixtures, 2).await;
    let id = hosts[0].api.create("paced").await;
    let mut on_follower = hosts[1].api.stream(&id, None).await.unwrap();
    on_follower.until("session_ready").await;
    // Cut every LISTEN connection (both hosts'; they reconnect with back-off): the follower
    // polls meanwhile and re-reads after re-LISTEN, so a lost notification delays, never loses.
    let client = db.client().await;
    // Both hosts listen once their LISTEN connection is up (on a loaded machine, possibly after
    // the stream opened): wait for that, bounded, before cutting them.
    let listening = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN awk_events%'";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let n: i64 = client.query_one(listening, &[]).await.unwrap().get(0);
        if n >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cut: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN awk_events%') t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(cut >= 2, "listen connections found: {cut}");
    hosts[0].api.say(&id, "go").await;
    let mut events: Vec<Event> = on_follower.until("result").await;
    events.insert(
        0,
        Event {
            id: 1,
            event: "session_ready".into(),
            data: json!({}),
            raw: String::new(),
        },
    );
    assert_contiguous(&events, 1);
    let stored = table(&db, &id).await;
    assert_eq!(stored.len(), events.len());
    for h in hosts {
        h.stop().await;
    }
}

/// A follower stream of a session whose owner is SIGKILLed mid-turn goes on after the
/// takeover: no gap, no duplicate, the lost turn reported once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_stream_survives_its_owners_death() {
    let db = TestDb::new().await;
    let fixtures = fixtures_with(&[("paced", scenario(2, 200, 20))]);
    let owner_host = ServerProcess::start(&db.url, Some(fixtures.path()), &[], &[]).await;
    let follower_host = ServerProcess::start(&db.url, Some(fixtures.path()), &[], &[]).await;
    let id = owner_host.api.create("paced").await;
    let mut on_owner = owner_host.api.stream(&id, None).await.unwrap();
    owner_host.api.say(&id, "long turn").await;
    on_owner.until("message_complete").await;
    let mut on_follower = follower_host.api.stream(&id, None).await.unwrap();
    let mut seen = on_follower.until("message_complete").await;
    std::process::Command::new("kill")
        .args(["-KILL", &owner_host.pid().to_string()])
        .status()
        .unwrap();
    // The follower host claims it (its owner is dead and a turn was running) and reports it.
    seen.extend(on_follower.until("result").await);
    assert_contiguous(&seen, 1);
    let last = seen.last().unwrap();
    assert_eq!(last.data["subtype"], "error_during_execution", "{last:?}");
    assert!(seen
        .iter()
        .any(|e| e.event == "error" && e.data["code"] == "turn_lost"));
    let stored = table(&db, &id).await;
    let got: Vec<(u64, String)> = seen.iter().map(|e| (e.id, e.event.clone())).collect();
    assert_eq!(got, stored);
    tokio::time::sleep(Duration::from_millis(10)).await;
    drop(owner_host);
    follower_host.stop().await;
}

/// A host at `--max-sessions` still serves sessions other hosts own: following and forwarding
/// hold no session there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_host_still_follows_and_forwards() {
    let db = TestDb::new().await;
    let fixtures = fixtures();
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    config.host.name = "owner".into();
    let owner_host = TestServer::start_with(config).await;
    let mut config = TestServer::config(&db);
    config.agent.replay.fixtures = fixtures.path().to_owned();
    config.host.name = "full".into();
    config.sessions.max_sessions = Some(1);
    let full = TestServer::start_with(config).await;
    let held = full.api.create("plain_qa").await;
    let own = owner_host.api.create("paced").await;
    let mut on_full = full.api.stream(&held, None).await.unwrap();
    on_full.until("session_ready").await;
    let mut on_owner = owner_host.api.stream(&own, None).await.unwrap();
    on_owner.until("session_ready").await;
    // The full host serves the other host's session: a follower stream and a forwarded input.
    let mut followed = full.api.stream(&own, None).await.unwrap();
    assert_eq!(
        full.api
            .input(&own, json!({"type": "user_message", "content": "go"}))
            .await,
        204
    );
    let events = followed.until("result").await;
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    assert_eq!(owner(&db, &own).await.as_deref(), Some("owner"));
    full.stop().await;
    owner_host.stop().await;
}
