//! Failover drills with real processes behind HAProxy (`ops/haproxy.cfg`): hosts killed,
//! paused, drained and restarted, Postgres restarted. Invariants 1, 2, 4, 5 and 6 across hosts.

use crate::support::drill::{self, scenario};
use crate::support::fleet::{free_port, Balance, Fleet};
use crate::support::sse::names;
use crate::support::{fixtures_with, Scratch, TestDb};
use pg_embedded::{ClusterOptions, PgCluster};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const SESSIONS: usize = 20;
const TURNS: usize = 3;

fn drill_fixtures() -> Scratch {
    // About 1.2 s per turn: long enough that hosts die with turns running.
    fixtures_with(&[("drill", scenario(TURNS, 40, 30))])
}

/// Owner host name of each session.
pub(crate) async fn owners(db: &tokio_postgres::Client) -> HashMap<String, String> {
    db.query(
        "SELECT s.id::text, h.name FROM sessions s JOIN hosts h ON h.id = s.owner",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The host that owns the most sessions right now.
async fn busiest_host(db: &tokio_postgres::Client) -> (String, Vec<String>) {
    let mut by_host: HashMap<String, Vec<String>> = HashMap::new();
    for (id, host) in owners(db).await {
        by_host.entry(host).or_default().push(id);
    }
    by_host
        .into_iter()
        .max_by_key(|(_, ids)| ids.len())
        .expect("some session is owned")
}

/// Waits until every session of the drill has been claimed by some host.
pub(crate) async fn wait_for_ownership(db: &tokio_postgres::Client, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let claimed = || async {
        let row = db
            .query_one("SELECT count(*) FROM sessions WHERE epoch > 0", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) as usize
    };
    while claimed().await < n {
        assert!(Instant::now() < deadline, "sessions were never claimed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn sigkill_of_an_owner_mid_turn_loses_nothing_drill(balance: Balance) {
    let db = TestDb::new().await;
    let fixtures = drill_fixtures();
    let fleet = Fleet::start_with(&db.url, Some(&fixtures), balance).await;
    let lb = fleet.lb.api();
    let client = db.client().await;
    let sessions = drill::start(&lb, &db.url, "drill", SESSIONS, TURNS).await;
    wait_for_ownership(&client, SESSIONS).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // turns are running

    let (victim, victim_sessions) = busiest_host(&client).await;
    fleet.host(&victim).signal("KILL");
    let killed_at = Instant::now();
    // How long Postgres takes to see the owner gone (its advisory lock released).
    let detector = {
        let url = db.url.clone();
        let victim = victim.clone();
        tokio::spawn(async move {
            let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            loop {
                let alive: bool = c
                    .query_one("SELECT host_alive(id, interval '1 hour') FROM hosts WHERE name = $1 ORDER BY id DESC LIMIT 1", &[&victim])
                    .await
                    .unwrap()
                    .get(0);
                if !alive {
                    return killed_at.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    // Takeover time: from the kill to a 200 stream through the load balancer, per session.
    let probes = victim_sessions.iter().map(|id| {
        let (lb, id) = (lb.clone(), id.clone());
        tokio::spawn(async move {
            loop {
                if lb.stream(&id, None).await.is_ok() {
                    return killed_at.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    });
    let mut takeovers: Vec<Duration> = futures::future::join_all(probes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    takeovers.sort();
    eprintln!(
        "owner seen dead by Postgres after {:?}",
        detector.await.unwrap()
    );
    eprintln!(
        "takeover after SIGKILL of {victim} ({} sessions): p50 {:?}, max {:?}",
        takeovers.len(),
        percentile(&takeovers, 0.5),
        takeovers.last().unwrap()
    );

    let report = drill::verify(&db.url, sessions).await;
    report.assert_clean();
    // The turns that died with the host were reported, not silently dropped.
    let lost: i64 = client
        .query_one(
            "SELECT count(*) FROM events WHERE event = 'error' AND data->>'code' = 'turn_lost'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eprintln!("turns reported lost: {lost}");
}

async fn a_paused_owner_is_fenced_and_ends_its_streams_drill(balance: Balance) {
    let db = TestDb::new().await;
    let fixtures = drill_fixtures();
    let fleet = Fleet::start_with(&db.url, Some(&fixtures), balance).await;
    let lb = fleet.lb.api();
    let client = db.client().await;
    let sessions = drill::start(&lb, &db.url, "drill", SESSIONS, TURNS).await;
    wait_for_ownership(&client, SESSIONS).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (victim, victim_sessions) = busiest_host(&client).await;
    fleet.host(&victim).signal("STOP");
    // Requests for its sessions now reach other hosts (HAProxy marks it down). They follow the
    // sessions without claiming them while the paused owner's lease runs; once it has expired,
    // a follower claims each session with a turn in flight (work waits for it). A request that
    // went to the paused host before that hangs with it: a probe gives up after a second and
    // asks again, and keeps its stream open so the follower stays.
    let probes = victim_sessions.iter().map(|id| {
        let (lb, id) = (lb.clone(), id.clone());
        tokio::spawn(async move {
            loop {
                let attempt = tokio::time::timeout(Duration::from_secs(1), lb.stream(&id, None));
                if let Ok(Ok(stream)) = attempt.await {
                    return stream;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let _followers = futures::future::join_all(probes).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = owners(&client).await;
        let still: Vec<_> = victim_sessions
            .iter()
            .filter(|id| now.get(*id) == Some(&victim))
            .collect();
        if still.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sessions {still:?} still owned by the paused host"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events_before: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    fleet.host(&victim).signal("CONT");

    // The old owner commits nothing more for those sessions and ends its streams: every
    // subscriber ends with exactly the table's sequence.
    let report = drill::verify(&db.url, sessions).await;
    report.assert_clean();
    assert!(report.events as i64 >= events_before);
    let log = std::fs::read_to_string(fleet.logs.join(format!("{victim}.log"))).unwrap();
    assert!(
        [
            "taken over by another host",
            "append fenced",
            "lease expired"
        ]
        .iter()
        .any(|m| log.contains(m)),
        "the paused host never noticed it was deposed"
    );
}

async fn a_rolling_restart_with_sigterm_loses_nothing_and_shows_no_error_drill(balance: Balance) {
    let db = TestDb::new().await;
    let fixtures = drill_fixtures();
    let mut fleet = Fleet::start_with(&db.url, Some(&fixtures), balance).await;
    let lb = fleet.lb.api();
    let client = db.client().await;
    let sessions = drill::start(&lb, &db.url, "drill", SESSIONS, TURNS).await;
    wait_for_ownership(&client, SESSIONS).await;

    for host in fleet.hosts.iter_mut() {
        host.signal("TERM");
        // /readyz fails as soon as the signal is handled (while turns still drain), so the
        // balancer stops sending it new work.
        let mut ready = Some(200);
        for _ in 0..250 {
            ready = host.api().get_status("/readyz").await;
            if ready != Some(200) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_ne!(ready, Some(200), "{} stayed ready after SIGTERM", host.name);
        assert_eq!(
            host.wait().await,
            Some(0),
            "{} did not exit cleanly",
            host.name
        );
        host.spawn().await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // the balancer sees it up again
    }
    let report = drill::verify(&db.url, sessions).await;
    report.assert_clean();
    // Drained hosts finished their turns: none was lost.
    let lost: i64 = client
        .query_one("SELECT count(*) FROM events WHERE event = 'error'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(lost, 0, "a turn was lost in a graceful rolling restart");
}

async fn a_postgres_restart_mid_stream_loses_and_duplicates_nothing_drill(balance: Balance) {
    // Declared first, dropped last: after the cluster has stopped.
    let dir = Scratch::dir("awk-pg-restart-");
    let port = free_port();
    let options = || ClusterOptions {
        data_dir: dir.join("data"),
        ephemeral: false,
        fsync: false,
        port: Some(port),
    };
    let cluster = PgCluster::start(options()).await.unwrap();
    let url = cluster.url("postgres");
    let fixtures = drill_fixtures();
    let fleet = Fleet::start_with(&url, Some(&fixtures), balance).await;
    let lb = fleet.lb.api();
    let sessions = drill::start(&lb, &url, "drill", SESSIONS, TURNS).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    cluster.stop().await.unwrap();
    // While it is down nothing can be accepted: inputs answer 503, never 204.
    let probe = drill_probe_status(&lb).await;
    assert!(
        probe >= 500,
        "an input was answered {probe} with Postgres down"
    );
    // Every host reports itself not ready.
    for host in &fleet.hosts {
        let ready = host.api().get_status("/readyz").await;
        assert_eq!(ready, Some(503), "{} ready without Postgres", host.name);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cluster = PgCluster::start(options()).await.unwrap();
    // Every advisory lock vanished with the restart; that alone must not make the hosts dead.
    let (c, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let all_alive: bool = c
        .query_one(
            "SELECT bool_and(host_alive(id, interval '3 s')) FROM hosts",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(all_alive, "a Postgres restart made live hosts look dead");

    let report = drill::verify(&url, sessions).await;
    report.assert_clean();
    drop(fleet);
    cluster.stop().await.unwrap();
}

async fn drill_probe_status(lb: &crate::support::Api) -> u16 {
    let body = serde_json::json!({"type":"interrupt"});
    let id = uuid::Uuid::new_v4().to_string();
    match lb.try_input(&id, &body).await {
        Ok(s) => s.as_u16(),
        Err(_) => 599,
    }
}

/// Any load balancer (issue 14): a stream and an input landing on a host that does not own the
/// session are served there — the stream follows the owner's commits, the input is forwarded —
/// and the session does not move: the owner's stream goes on, and both see the same events.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_on_another_host_is_served_there_and_the_session_stays() {
    let db = TestDb::new().await;
    let fixtures = drill_fixtures();
    let fleet = Fleet::start(&db.url, Some(&fixtures)).await;
    let (a, b) = (fleet.hosts[0].api(), fleet.hosts[1].api());
    let id = a.create("drill").await;
    let mut on_a = a.stream(&id, None).await.unwrap();
    a.say(&id, "turn 0").await;
    on_a.until("message_complete").await; // a turn is running on host a

    let mut on_b = b.stream(&id, None).await.unwrap();
    let from_b = on_b.until("result").await;
    assert_eq!(from_b.last().unwrap().data["subtype"], "success");
    assert!(!names(&from_b).contains(&"error"));
    // The next turn is sent to b, which forwards it to a.
    b.say(&id, "turn 1").await;
    let more_b = on_b.until("result").await;
    let mut all_a = on_a.until("result").await;
    all_a.extend(on_a.until("result").await);
    let mut all_b = from_b;
    all_b.extend(more_b);
    // Same events, same ids, same bytes on both hosts: b's follower stream has everything
    // from id 1, and every frame a's stream got is byte for byte b's frame of that id.
    crate::support::sse::assert_contiguous(&all_b, 1);
    assert_eq!(all_a.last().unwrap().id, all_b.last().unwrap().id);
    for e in &all_a {
        let twin = &all_b[(e.id - 1) as usize];
        assert!(
            twin.raw == e.raw,
            "frame {} differs between the hosts",
            e.id
        );
    }
    let client = db.client().await;
    let owner: String = client
        .query_one(
            "SELECT h.name FROM sessions s JOIN hosts h ON h.id = s.owner WHERE s.id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, fleet.hosts[0].name, "the session moved");
}

/// A live host whose row still names it as a session's owner, though the session ended there
/// without a release (its lease ran out while Postgres was away, say), lets the row go, instead
/// of leaving the session unreachable behind inputs forwarded to it that no session task of its
/// own would ever pick up. Two hosts in this process, one database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_host_releases_a_session_it_no_longer_holds() {
    use crate::support::TestServer;
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.host.name = "a".into();
    let a = TestServer::start_with(config).await;
    let mut config = TestServer::config(&db);
    config.host.name = "b".into();
    let b = TestServer::start_with(config).await;
    let id = a.api.create("plain_qa").await;
    // The row says a owns it, as a claim does, but a holds no session for it.
    let client = db.client().await;
    let n = client
        .execute(
            "UPDATE sessions SET owner = (SELECT id FROM hosts WHERE name = 'a'), \
             epoch = epoch + 1, status = 'active' WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    // b serves its stream as a follower and takes its input for a; a, which holds nothing for
    // it, lets the row go, and b's follower claims it since work waits: the turn runs on b.
    let mut stream = b
        .api
        .stream(&id, None)
        .await
        .expect("b does not serve the session");
    assert_eq!(stream.next().await.unwrap().event, "session_ready");
    assert_eq!(
        b.api
            .input(
                &id,
                serde_json::json!({"type": "user_message", "content": "hi"})
            )
            .await,
        204
    );
    let events = stream.until("result").await;
    assert_eq!(events.last().unwrap().data["subtype"], "success");
    let owner: String = client
        .query_one(
            "SELECT h.name FROM sessions s JOIN hosts h ON h.id = s.owner \
             WHERE s.id = $1::text::uuid",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "b");
    drop(stream);
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_an_owner_mid_turn_loses_nothing() {
    sigkill_of_an_owner_mid_turn_loses_nothing_drill(Balance::Sticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_of_an_owner_mid_turn_loses_nothing_behind_round_robin() {
    sigkill_of_an_owner_mid_turn_loses_nothing_drill(Balance::RoundRobin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_and_ends_its_streams() {
    a_paused_owner_is_fenced_and_ends_its_streams_drill(Balance::Sticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_owner_is_fenced_and_ends_its_streams_behind_round_robin() {
    a_paused_owner_is_fenced_and_ends_its_streams_drill(Balance::RoundRobin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_with_sigterm_loses_nothing_and_shows_no_error() {
    a_rolling_restart_with_sigterm_loses_nothing_and_shows_no_error_drill(Balance::Sticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_with_sigterm_loses_nothing_and_shows_no_error_behind_round_robin() {
    a_rolling_restart_with_sigterm_loses_nothing_and_shows_no_error_drill(Balance::RoundRobin)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_mid_stream_loses_and_duplicates_nothing() {
    a_postgres_restart_mid_stream_loses_and_duplicates_nothing_drill(Balance::Sticky).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_mid_stream_loses_and_duplicates_nothing_behind_round_robin() {
    a_postgres_restart_mid_stream_loses_and_duplicates_nothing_drill(Balance::RoundRobin).await;
}

/// Behind plain round robin, with nothing disrupted, no stream is ever ended by an ownership
/// move: every host serves every session (followers, forwarded inputs), and every subscriber
/// still ends with exactly the table's events (issue 14).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_moves_no_session_and_ends_no_stream() {
    for balance in [Balance::Sticky, Balance::RoundRobin] {
        let db = TestDb::new().await;
        let fixtures = drill_fixtures();
        let fleet = Fleet::start_with(&db.url, Some(&fixtures), balance).await;
        let lb = fleet.lb.api();
        let started = Instant::now();
        let sessions = drill::start(&lb, &db.url, "drill", SESSIONS, TURNS).await;
        let report = drill::verify(&db.url, sessions).await;
        eprintln!(
            "{balance:?}: {} sessions, {} events, {} reconnects, {:?}",
            report.sessions,
            report.events,
            report.reconnects,
            started.elapsed()
        );
        report.assert_clean();
        assert_eq!(report.reconnects, 0, "{balance:?}: streams were ended");
        let moved: i64 = db
            .client()
            .await
            .query_one("SELECT count(*) FROM events WHERE event = 'error'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(moved, 0, "{balance:?}: errors in the streams");
    }
}
