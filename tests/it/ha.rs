//! Postgres high availability (issue 15), with real processes on loopback:
//!
//! - a synchronous standby is promoted after the primary's postmaster is SIGKILLed mid-turn; the
//!   hosts, given a libpq multi-host URL with `target_session_attrs=read-write`, find the new
//!   primary by themselves (no restart), and every subscriber ends with exactly the new
//!   primary's table: with `synchronous_standby_names = '*'` nothing a subscriber saw (it saw
//!   only committed events) can be missing there;
//! - one host is cut from Postgres by a TCP proxy that stops forwarding without closing
//!   anything (a partition, not a crash: its advisory lock lingers): past its lease it stops
//!   serving, the other hosts take its sessions over, requests to it stay bounded, and once the
//!   link is back it commits nothing for the sessions it lost and serves again.

use crate::failover::{owners, wait_for_ownership};
use crate::support::drill::{self, scenario};
use crate::support::fleet::{Balance, Balancer, Fleet, Host};
use crate::support::proxy::Proxy;
use crate::support::{fixtures_with, Scratch, TestDb};
use agent_webkit_server::store::{Store, StoreError};
use pg_embedded::{ClusterOptions, PgCluster};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const TURNS: usize = 3;

fn drill_fixtures() -> Scratch {
    // About 1.2 s per turn: the failure lands with turns running.
    fixtures_with(&[("drill", scenario(TURNS, 40, 30))])
}

/// A path in the temp dir that does not exist yet (pg_basebackup creates its target).
fn fresh_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}{}", uuid::Uuid::new_v4()))
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.retain(|p| p.is_file());
    versions.sort();
    versions.pop().unwrap_or_else(|| name.into())
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (as `pg_embedded` does).
fn run_pg_tool(tool: &str, args: &[&str]) {
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let mut cmd = if root {
        let mut c = std::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
        c
    } else {
        std::process::Command::new(pg_bin(tool))
    };
    let out = cmd
        .args(args)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn turn_lost_sql() -> &'static str {
    "SELECT count(*) FROM events WHERE event = 'error' AND data->>'code' = 'turn_lost'"
}

/// A primary and a synchronous standby, both ephemeral: dropping them (also on a panic) stops
/// them and deletes their directories.
struct Pair {
    primary: PgCluster,
    primary_dir: PathBuf,
    standby: PgCluster,
}

/// A primary cluster for a standby to copy (fsync off through ALTER SYSTEM, see below), with
/// an admin connection.
async fn primary() -> (PgCluster, PathBuf, tokio_postgres::Client) {
    let primary_dir = fresh_dir("awk-ha-primary-");
    // fsync on: `fsync: false` also passes `synchronous_commit=off` on the command line, and
    // commits would then not wait for the standby. fsync itself is turned off below.
    let primary = PgCluster::start(ClusterOptions {
        data_dir: primary_dir.clone(),
        ephemeral: true,
        fsync: true,
        port: None,
    })
    .await
    .expect("starting the primary");
    // initdb's defaults already replicate: wal_level=replica, max_wal_senders=10,
    // hot_standby=on, and (with --auth=trust) `host replication all 127.0.0.1/32 trust`.
    let admin = connect(&primary.url("postgres")).await;
    alter_system(&admin, "fsync = off").await;
    (primary, primary_dir, admin)
}

/// A streaming standby of `primary` (`pg_basebackup -R`), replicating through `via` (a
/// proxy's port) when given, so its link can be cut on its own.
async fn standby_of(primary: &PgCluster, via: Option<u16>) -> PgCluster {
    let standby_dir = fresh_dir("awk-ha-standby-");
    let port = primary.port().to_string();
    run_pg_tool(
        "pg_basebackup",
        &[
            "-D",
            standby_dir.to_str().unwrap(),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            "postgres",
        ],
    );
    if let Some(via) = via {
        let auto = standby_dir.join("postgresql.auto.conf");
        let conf = std::fs::read_to_string(&auto).unwrap();
        std::fs::write(
            &auto,
            conf.replace(&format!("port={port}"), &format!("port={via}")),
        )
        .unwrap();
    }
    PgCluster::start(ClusterOptions {
        data_dir: standby_dir,
        ephemeral: true,
        fsync: false,
        port: None,
    })
    .await
    .expect("starting the standby")
}

async fn replicated_pair() -> Pair {
    let (primary, primary_dir, admin) = primary().await;
    let standby = standby_of(&primary, None).await;
    // Only now, so the standby's copy of postgresql.auto.conf does not name itself a
    // synchronous standby to wait for once promoted.
    alter_system(&admin, "synchronous_standby_names = '*'").await;
    wait_until(Duration::from_secs(30), "a sync standby", || async {
        let row = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    })
    .await;
    Pair {
        primary,
        primary_dir,
        standby,
    }
}

/// `ALTER SYSTEM SET <setting>` and a reload (two statements: ALTER SYSTEM refuses to run in
/// the implicit transaction of a multi-statement query).
async fn alter_system(admin: &tokio_postgres::Client, setting: &str) {
    let alter = format!("ALTER SYSTEM SET {setting}");
    admin.batch_execute(&alter).await.unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
}

fn postmaster_pid(data_dir: &Path) -> String {
    let pid = std::fs::read_to_string(data_dir.join("postmaster.pid")).unwrap();
    pid.lines().next().unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_synchronous_standby_serves_every_committed_event() {
    let pair = replicated_pair().await;
    let (p1, p2) = (pair.primary.port(), pair.standby.port());
    let multi = format!(
        "postgres://postgres@127.0.0.1:{p1},127.0.0.1:{p2}/postgres?target_session_attrs=read-write"
    );
    let standby_url = pair.standby.url("postgres");

    // A standby connection is unavailable (503, retried), not a data error.
    let on_standby = Store::connect(&standby_url, 1).unwrap();
    assert!(matches!(
        on_standby.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    let write = on_standby
        .client()
        .await
        .unwrap()
        .batch_execute("CREATE TABLE t ()")
        .await
        .unwrap_err();
    assert!(StoreError::from(write).is_unavailable());

    let fixtures = drill_fixtures();
    let fleet = Fleet::start_with(&multi, Some(&fixtures), Balance::Sticky).await;
    let lb = fleet.lb.api();
    let sessions = drill::start(&lb, &multi, "drill", 10, TURNS).await;
    wait_for_ownership(&connect(&pair.primary.url("postgres")).await, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // turns are running

    let killed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let killed_at = Instant::now();
    let pid = postmaster_pid(&pair.primary_dir);
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    // The hosts see the primary gone (nothing writable is left) before anyone promotes.
    let h1 = fleet.hosts[0].api();
    let unready = wait_until(Duration::from_secs(15), "h1 unready", || async {
        h1.get_status("/readyz").await == Some(503)
    })
    .await;
    let standby = connect(&standby_url).await;
    let promoted: bool = standby
        .query_one("SELECT pg_promote(true, 30)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(promoted);
    let promoted_at = killed_at.elapsed();
    wait_until(
        Duration::from_secs(60),
        "a commit on the new primary",
        || {
            let standby = &standby;
            async move {
                let row = standby
                    .query_one(
                        "SELECT count(*) FROM events WHERE created_at > to_timestamp($1)",
                        &[&killed],
                    )
                    .await
                    .unwrap();
                row.get::<_, i64>(0) > 0
            }
        },
    )
    .await;
    eprintln!(
        "primary SIGKILLed: h1 unready after {unready:?}, standby promoted at {promoted_at:?}, \
         first new commit on it {:?} after the kill",
        killed_at.elapsed()
    );

    let report = tokio::time::timeout(
        Duration::from_secs(90),
        drill::verify(&standby_url, sessions),
    )
    .await
    .expect("the drill did not finish within 90 s");
    report.assert_clean();
    let lost: i64 = standby
        .query_one(turn_lost_sql(), &[])
        .await
        .unwrap()
        .get(0);
    eprintln!("turns reported lost: {lost}");
    // The same processes, no restart: each is ready on the new primary.
    for host in &fleet.hosts {
        let api = host.api();
        wait_until(Duration::from_secs(15), "a host ready again", || async {
            api.get_status("/readyz").await == Some(200)
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partitioned_host_is_fenced_and_comes_back_without_harm() {
    let db = TestDb::new().await;
    let pg_port: u16 = db
        .url
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .parse()
        .unwrap();
    let proxy = Proxy::start(([127, 0, 0, 1], pg_port).into()).await;
    let cut_url = db
        .url
        .replace(&format!(":{pg_port}/"), &format!(":{}/", proxy.port));
    let fixtures = drill_fixtures();
    let logs = Scratch::dir("awk-partition-");
    // h1 reaches Postgres through the proxy, with short timeouts of its own (lease: 3 s).
    let cut_args = ["--db-statement-timeout", "1s", "--request-timeout", "3s"];
    let h1 = Host::start("h1", &cut_url, &fixtures, &logs, &cut_args).await;
    let h2 = Host::start("h2", &db.url, &fixtures, &logs, &[]).await;
    let h3 = Host::start("h3", &db.url, &fixtures, &logs, &[]).await;
    let lb = Balancer::start(&[&h1, &h2, &h3], Balance::Sticky).await;
    let client = db.client().await;
    // Three sessions whose clients talk to h1 only (so it surely owns some), nine behind the
    // balancer.
    let mut sessions = drill::start(&h1.api(), &db.url, "drill", 3, TURNS).await;
    sessions.extend(drill::start(&lb.api(), &db.url, "drill", 9, TURNS).await);
    wait_for_ownership(&client, 12).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let victims: Vec<String> = owners(&client)
        .await
        .into_iter()
        .filter(|(_, host)| host == "h1")
        .map(|(id, _)| id)
        .collect();
    assert!(!victims.is_empty());

    // A stream h1 serves as the owner: it must end once h1 is past its lease.
    let cut = h1.api();
    let mut held = cut.stream(&victims[0], None).await.unwrap();
    held.next().await.unwrap();

    proxy.pause();
    let paused_at = Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while held.next().await.is_some() {}
        paused_at.elapsed()
    })
    .await
    .expect("h1 kept a stream open past its lease");
    let unready = wait_until(Duration::from_secs(10), "h1 unready", || async {
        cut.get_status("/readyz").await == Some(503)
    })
    .await;
    // Requests for its sessions reach the other hosts (directly, and through the balancer once
    // it marks h1 down); past h1's lease one of them claims each session.
    let probes = victims.iter().map(|id| {
        let (h2, id) = (h2.api(), id.clone());
        tokio::spawn(async move {
            loop {
                let attempt = tokio::time::timeout(Duration::from_secs(1), h2.stream(&id, None));
                if let Ok(Ok(stream)) = attempt.await {
                    return stream;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    });
    let _followers = futures::future::join_all(probes).await;
    wait_until(
        Duration::from_secs(30),
        "takeover of h1's sessions",
        || async {
            let now = owners(&client).await;
            victims
                .iter()
                .all(|id| now.get(id).map(String::as_str) != Some("h1"))
        },
    )
    .await;
    let taken_after = paused_at.elapsed();
    // Requests to the cut host are answered (or their connection closed) within its request
    // timeout (3 s; Postgres' statement_timeout cannot answer through a dead link), never left
    // hanging.
    let asked = Instant::now();
    let create = tokio::time::timeout(Duration::from_secs(8), async {
        let r = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/sessions", h1.port))
            .bearer_auth(crate::support::TOKEN)
            .json(&serde_json::json!({"fixture": "drill"}))
            .send()
            .await;
        r.map(|r| r.status().as_u16()).unwrap_or(0)
    })
    .await
    .expect("POST /sessions to the cut host hung");
    assert!(
        create == 503 || create == 0,
        "cut host created a session: {create}"
    );
    let create_took = asked.elapsed();
    let asked = Instant::now();
    let stream = tokio::time::timeout(Duration::from_secs(8), async {
        match cut.stream(&victims[0], None).await {
            Ok(mut stream) => {
                let mut n = 0;
                while stream.next().await.is_some() {
                    n += 1;
                }
                format!("200, ended after {n} events")
            }
            Err((status, body)) => format!("{} {}", status.as_u16(), body["code"]),
        }
    })
    .await
    .expect("a stream request to the cut host hung");
    // Past its lease it serves none of the sessions it held, and says why at once (no database
    // round trip), even while their tasks are still stopping.
    let refused = tokio::time::timeout(Duration::from_secs(8), cut.stream(&victims[0], None))
        .await
        .expect("a stream request to the cut host hung");
    let (status, body) = match refused {
        Ok(mut s) => panic!("the cut host served {}: {:?}", victims[0], s.next().await),
        Err(e) => e,
    };
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (503, Some("lease_expired"))
    );
    eprintln!(
        "h1 cut: its stream ended after {ended:?}, unready after {unready:?}, its {} sessions \
         taken over after {taken_after:?}; POST /sessions to it: {create} in {create_took:?}, \
         a stream: {stream} in {:?}",
        victims.len(),
        asked.elapsed()
    );

    proxy.resume();
    let back = wait_until(Duration::from_secs(20), "h1 ready again", || async {
        cut.get_status("/readyz").await == Some(200)
    })
    .await;
    // It serves again: a stream of a session it lost, as a follower (a 503 until its
    // heartbeat is renewed is what a client retries).
    let resumed_at = Instant::now() - back;
    wait_until(Duration::from_secs(10), "h1 serving again", || async {
        let attempt = tokio::time::timeout(Duration::from_secs(2), cut.stream(&victims[0], None));
        matches!(attempt.await, Ok(Ok(_)))
    })
    .await;
    eprintln!(
        "link back: h1 ready after {back:?}, serving streams after {:?}",
        resumed_at.elapsed()
    );

    // Whatever h1 had in flight reached Postgres when the link came back, and was fenced:
    // every subscriber (h1's own included) ends with exactly the table.
    let report = tokio::time::timeout(Duration::from_secs(90), drill::verify(&db.url, sessions))
        .await
        .expect("the drill did not finish within 90 s");
    report.assert_clean();
    let lost: i64 = client.query_one(turn_lost_sql(), &[]).await.unwrap().get(0);
    eprintln!("turns reported lost: {lost}");
}

/// An asynchronous standby whose link to the primary stalled (a proxy stops forwarding its
/// replication stream) is promoted after the primary's SIGKILL: it lacks the newest commits —
/// events subscribers already received. Each owner, at its writer's reconnect, finds the table
/// behind what it published and re-appends the missing frames from its ring before anything
/// new: every subscriber ends with exactly the new primary's table, no hole, no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_promoted_asynchronous_standby_gets_its_lost_tail_back_from_the_owners() {
    let (primary, primary_dir, admin) = primary().await;
    let link = Proxy::start(format!("127.0.0.1:{}", primary.port()).parse().unwrap()).await;
    let standby = standby_of(&primary, Some(link.port)).await;
    wait_until(
        Duration::from_secs(30),
        "an async standby streaming",
        || async {
            let row = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await
                .unwrap();
            row.get::<_, i64>(0) == 1
        },
    )
    .await;
    let (p1, p2) = (primary.port(), standby.port());
    let multi = format!(
        "postgres://postgres@127.0.0.1:{p1},127.0.0.1:{p2}/postgres?target_session_attrs=read-write"
    );
    let standby_url = standby.url("postgres");

    let fixtures = drill_fixtures();
    let fleet = Fleet::start_with(&multi, Some(&fixtures), Balance::Sticky).await;
    let lb = fleet.lb.api();
    let sessions = drill::start(&lb, &multi, "drill", 10, TURNS).await;
    wait_for_ownership(&admin, 10).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // turns are running
                                                          // The standby stops receiving; for a while the primary alone commits (and the subscribers
                                                          // receive) the newest events.
    link.pause();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let on_primary: i64 = admin
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let pid = postmaster_pid(&primary_dir);
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap()
        .success());
    let new_primary = connect(&standby_url).await;
    let had: i64 = new_primary
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let promoted: bool = new_primary
        .query_one("SELECT pg_promote(true, 30)", &[])
        .await
        .unwrap()
        .get(0);
    assert!(promoted);
    assert!(
        had < on_primary,
        "the standby lost nothing ({had} of {on_primary}): no test"
    );

    let report = tokio::time::timeout(
        Duration::from_secs(90),
        drill::verify(&standby_url, sessions),
    )
    .await
    .expect("the drill did not finish within 90 s");
    report.assert_clean();
    // Each owner says which sessions it repaired (and the metric counts the events).
    let mut repaired = 0;
    for entry in std::fs::read_dir(fleet.logs.path()).unwrap() {
        let log = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        repaired += log
            .lines()
            .filter(|l| l.contains("re-appended them from the ring"))
            .count();
    }
    eprintln!(
        "async standby promoted: it had {had} of the primary's {on_primary} events; \
         {repaired} sessions repaired by their owners; {report:?}"
    );
    assert!(repaired > 0, "no owner repaired anything");
    drop(link);
}
