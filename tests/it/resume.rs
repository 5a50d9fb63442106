//! Exact resume (invariant 4): `Last-Event-ID: n` yields exactly `n+1 …`, from the ring or
//! from Postgres, on a running host and after a restart; `412` only when events are gone.

use crate::support::sse::{assert_contiguous, follow, Event};
use crate::support::{fixtures_with, many_messages, Api, TestDb, TestServer};
use std::time::Duration;

/// A session with exactly `1 + n + 1` events (ready, n messages, result), played to the end.
async fn long_session(api: &Api, n: usize) -> (String, Vec<Event>) {
    let id = api.create("many").await;
    api.say(&id, "go").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    let events = stream.until("result").await;
    assert_eq!(events.len(), n + 2);
    assert_contiguous(&events, 1);
    (id, events)
}

/// Resumes at `points` and checks each yields exactly the remainder, byte for byte.
async fn check_resume_points(api: &Api, id: &str, all: &[Event], points: &[u64]) {
    let last = all.last().unwrap().id;
    for &n in points {
        let mut stream = api.stream(id, Some(&n.to_string())).await.unwrap();
        let mut got = Vec::new();
        while (got.len() as u64) < last - n {
            got.push(stream.next().await.expect("stream ended early"));
        }
        assert_contiguous(&got, n + 1);
        let expected: Vec<&str> = all[n as usize..].iter().map(|e| e.raw.as_str()).collect();
        let received: Vec<&str> = got.iter().map(|e| e.raw.as_str()).collect();
        assert!(expected == received, "resume at {n}: frames differ");
        // Then live: nothing more arrives (no duplicate of the tail).
        assert!(stream.next_within(Duration::from_millis(50)).await.is_err());
    }
}

async fn resume_with_ring(ring_size: usize) {
    let n = 4998; // 5000 events in all
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.ring_size = ring_size;
    let fixtures = fixtures_with(&[("many", many_messages(n, 60))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config.clone()).await;
    let (id, all) = long_session(&server.api, n).await;
    let points = [
        0, 1, 2, 9, 10, 11, 999, 2500, 4989, 4990, 4991, 4998, 4999, 5000,
    ];
    check_resume_points(&server.api, &id, &all, &points).await;
    server.stop().await;

    // After a restart on the same database: the ring is refilled from the table's tail.
    let server = TestServer::start_with(config).await;
    check_resume_points(&server.api, &id, &all, &points).await;
    server.stop().await;
}

#[tokio::test]
async fn resume_at_many_points_with_a_ring_of_10() {
    resume_with_ring(10).await;
}

#[tokio::test]
async fn resume_at_many_points_with_a_ring_of_5000() {
    resume_with_ring(5000).await;
}

#[tokio::test]
async fn resume_is_412_only_when_events_are_gone() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.ring_size = 10;
    let fixtures = fixtures_with(&[("many", many_messages(100, 10))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let (id, all) = long_session(api, 100).await;

    // Ahead of the session: 412 with its own code.
    let (status, body) = api.stream(&id, Some("103")).await.err().unwrap();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (412, Some("last_event_id_ahead"))
    );

    // Remove events 1..=50 as retention would.
    let client = db.client().await;
    client
        .execute(
            "DELETE FROM events WHERE session_id = $1::text::uuid AND seq <= 50",
            &[&id],
        )
        .await
        .unwrap();
    for n in [0, 10, 49] {
        let (status, body) = api.stream(&id, Some(&n.to_string())).await.err().unwrap();
        assert_eq!(
            (status.as_u16(), body["code"].as_str()),
            (412, Some("events_expired")),
            "at {n}"
        );
    }
    // Right after the removed range, and from the ring, resume still works.
    for n in [50, 60, 95] {
        let mut stream = api.stream(&id, Some(&n.to_string())).await.unwrap();
        let got = stream.until("result").await;
        assert_contiguous(&got, n + 1);
        assert_eq!(got.len(), all.len() - n as usize);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_subscriber_catches_up_from_postgres_while_a_fast_one_stays_live() {
    // ~20 MB of events: far more than socket buffers hold, so the stalled subscriber falls
    // behind a ring of 10 while connected and must continue from Postgres.
    let n = 20_000;
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.ring_size = 10;
    let fixtures = fixtures_with(&[("many", many_messages(n, 1000))]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("many").await;
    let mut fast = api.stream(&id, None).await.unwrap();
    let mut slow = api.stream(&id, None).await.unwrap();
    api.say(&id, "go").await;

    // The fast one reaches the end while the slow one has read nothing at all.
    let fast_events = fast.until("result").await;
    assert_eq!(fast_events.len(), n + 2);
    assert_contiguous(&fast_events, 1);

    let slow_events = slow.until("result").await;
    assert_eq!(slow_events.len(), n + 2);
    assert_contiguous(&slow_events, 1);
    assert!(fast_events
        .iter()
        .zip(&slow_events)
        .all(|(a, b)| a.raw == b.raw));
    server.stop().await;
}

#[tokio::test]
async fn a_reconnecting_client_sees_every_event_once_across_a_restart() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    let fixtures = fixtures_with(&[]);
    config.agent.replay.fixtures = fixtures.to_path_buf();
    let server = TestServer::start_with(config.clone()).await;
    let api = server.api.clone();
    let id = api.create("multi_turn").await;
    api.say(&id, "hi").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    let first = stream.until("result").await;
    server.stop().await; // the stream ends without done: the client reconnects

    let server = TestServer::start_with(config).await;
    let api2 = server.api.clone();
    let follower = {
        let id = id.clone();
        tokio::spawn(async move { follow(&api2, &id, 20).await })
    };
    server.api.say(&id, "I'm Ada").await; // turn 2 of the scenario, on the new server
    let last = first.last().unwrap().id.to_string();
    let mut watcher = server.api.stream(&id, Some(&last)).await.unwrap();
    watcher.until("result").await;
    assert_eq!(server.api.delete(&id).await, 204);
    let (all, _) = follower.await.unwrap().unwrap();
    assert_contiguous(&all, 1);
    assert_eq!(all[..first.len()], first[..]);
    let tail: Vec<&str> = all[first.len()..]
        .iter()
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(tail, ["message_complete", "result", "done"]);
    assert_eq!(all[first.len()].data["message_id"], "m_2");
    server.stop().await;
}

/// A hole in the table that retention did not make (a failover lost events that could not be
/// repaired) answers `412 events_lost`: a resume never skips it silently (issue 15).
#[tokio::test]
async fn a_resume_across_a_hole_is_412_events_lost() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.ring_size = 1;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("multi_turn").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    let events = stream.until("result").await;
    assert!(events.len() >= 3, "{events:?}");
    db.client()
        .await
        .execute(
            "DELETE FROM events WHERE session_id = $1::text::uuid AND seq = 2",
            &[&id],
        )
        .await
        .unwrap();
    let refused = api.stream(&id, Some("1")).await.err().expect("a 412");
    assert_eq!(
        (refused.0.as_u16(), refused.1["code"].as_str()),
        (412, Some("events_lost"))
    );
    // After the hole, resuming works as before.
    assert!(api.stream(&id, Some("2")).await.is_ok());
    server.stop().await;
}
