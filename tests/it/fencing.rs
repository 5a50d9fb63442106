//! Fencing under contention (invariants 1 and 5): two hosts keep taking one session from each
//! other while the deposed one is still appending. Every append either lands in order or is
//! refused as a whole; the table stays gap-free and each host's subscribers saw exactly what
//! the table holds for its turns.

use crate::support::TestDb;
use agent_webkit_server::agent::SessionConfig;
use agent_webkit_server::frame::{names, Frame};
use agent_webkit_server::store::sessions::{self, Claim};
use agent_webkit_server::store::writer::{self, Append, Attempt, CommitSink, Writer};
use agent_webkit_server::store::{hosts, Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ROUNDS: usize = 1000;

/// Stands in for a host's ring: records what the writer published, in order.
#[derive(Default)]
struct Published {
    seqs: Mutex<Vec<u64>>,
    fenced: AtomicUsize,
}

impl CommitSink for Published {
    fn committed(&self, frames: Vec<Frame>) {
        self.seqs
            .lock()
            .unwrap()
            .extend(frames.iter().map(|f| f.seq));
    }
    fn fenced(&self) {
        self.fenced.fetch_add(1, Ordering::Relaxed);
    }
}

async fn append(
    writer: &Writer,
    sink: &Arc<Published>,
    id: Uuid,
    epoch: i64,
    first: u64,
    n: u64,
) -> Result<(), StoreError> {
    let frames = (first..first + n)
        .map(|seq| Frame::encode(seq, names::MESSAGE_DELTA, &format!("{{\"n\":{seq}}}")))
        .collect();
    let (ack, done) = oneshot::channel();
    writer
        .append(Append {
            session_id: id,
            epoch,
            frames,
            transcript: Vec::new(),
            sink: sink.clone(),
            ack: Some(ack),
            span: tracing::Span::none(),
        })
        .await?;
    done.await.unwrap()
}

async fn claim(store: &Store, id: Uuid, host: i32) -> (i64, u64) {
    match sessions::claim(store, id, host, "token", 10, Duration::from_secs(10))
        .await
        .unwrap()
    {
        Claim::Claimed(c) => (c.epoch, c.last_seq + 1),
        _ => panic!("claim refused"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_taking_one_session_over_and_over_keep_it_gap_free() {
    let db = TestDb::new().await;
    let store = Store::connect(&db.url, 8).unwrap();
    store.migrate().await.unwrap();
    let host_ids = [
        hosts::register(&store, "a").await.unwrap(),
        hosts::register(&store, "b").await.unwrap(),
    ];
    // Each host looks gone to the other, so every claim takes the session over at once.
    db.client()
        .await
        .execute("UPDATE hosts SET released_at = now()", &[])
        .await
        .unwrap();
    let id = Uuid::new_v4();
    sessions::create(&store, id, "token", &SessionConfig::default())
        .await
        .unwrap();
    let stop = CancellationToken::new();
    let writers: Vec<Writer> = host_ids
        .iter()
        .map(|h| Writer::spawn(store.clone(), *h, stop.clone()).0)
        .collect();
    let sinks = [
        Arc::new(Published::default()),
        Arc::new(Published::default()),
    ];

    let mut state = [(0i64, 0u64); 2]; // (epoch, next seq) as each host believes
    state[0] = claim(&store, id, host_ids[0]).await;
    let (mut landed, mut refused) = (0, 0);
    for round in 1..=ROUNDS {
        let (x, y) = (round % 2, 1 - round % 2);
        // The owner appends while the other host takes the session over: the two race.
        let (epoch_y, next_y) = state[y];
        let (appended, claimed) = tokio::join!(
            append(&writers[y], &sinks[y], id, epoch_y, next_y, 3),
            claim(&store, id, host_ids[x]),
        );
        match appended {
            Ok(()) => landed += 1,
            Err(StoreError::Fenced) => refused += 1,
            Err(e) => panic!("append failed: {e}"),
        }
        state[x] = claimed;
        // The new owner's own appends always land.
        let (epoch_x, next_x) = state[x];
        append(&writers[x], &sinks[x], id, epoch_x, next_x, 2)
            .await
            .unwrap();
        state[x].1 += 2;
    }

    let rows = db
        .client()
        .await
        .query(
            "SELECT seq FROM events WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap();
    let table: Vec<u64> = rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect();
    assert!(
        table.iter().enumerate().all(|(i, s)| *s == i as u64 + 1),
        "gap in the table"
    );
    let mut published: Vec<u64> = Vec::new();
    for sink in &sinks {
        let seqs = sink.seqs.lock().unwrap().clone();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a host published out of order"
        );
        published.extend(seqs);
    }
    published.sort();
    // seq 1 (session_ready) was written at creation, not published by either host.
    assert_eq!(
        published,
        table[1..],
        "published events differ from the table"
    );
    eprintln!("{ROUNDS} takeovers: {landed} racing appends landed, {refused} were fenced");
    assert_eq!(landed + refused, ROUNDS);
    assert_eq!(
        refused,
        sinks
            .iter()
            .map(|s| s.fenced.load(Ordering::Relaxed))
            .sum::<usize>()
    );
    stop.cancel();
}

/// A migrated store, the named hosts registered, and one new unowned session.
async fn one_session(db: &TestDb, names: &[&str]) -> (Store, Vec<i32>, Uuid) {
    let store = Store::connect(&db.url, 4).unwrap();
    store.migrate().await.unwrap();
    let mut hosts_ids = Vec::new();
    for name in names {
        hosts_ids.push(hosts::register(&store, name).await.unwrap());
    }
    let id = Uuid::new_v4();
    sessions::create(&store, id, "token", &SessionConfig::default())
        .await
        .unwrap();
    (store, hosts_ids, id)
}

/// The writer's retry after a failure that may have committed anyway: the retry statement skips
/// the rows that landed and reports the session as stored, while a first attempt never
/// silently skips a row that exists (that would hide a second writer).
#[tokio::test]
async fn a_retried_batch_that_had_landed_is_stored_once() {
    let db = TestDb::new().await;
    let (store, hosts, id) = one_session(&db, &["a"]).await;
    let host = hosts[0];
    let (epoch, next) = claim(&store, id, host).await;
    let sink = Arc::new(Published::default());
    let batch = |first: u64, n: u64| {
        vec![Append {
            session_id: id,
            epoch,
            frames: (first..first + n)
                .map(|seq| Frame::encode(seq, names::MESSAGE_DELTA, &format!("{{\"n\":{seq}}}")))
                .collect(),
            transcript: Vec::new(),
            sink: sink.clone(),
            ack: None,
            span: tracing::Span::none(),
        }]
    };
    let client = store.client().await.unwrap();
    let stored = writer::commit(&client, host, &batch(next, 3), Attempt::First).await;
    assert!(stored.unwrap().contains(&id));
    // The same batch again, as after a connection that broke before the commit's answer…
    let again = writer::commit(&client, host, &batch(next, 3), Attempt::Retry).await;
    assert!(
        again.unwrap().contains(&id),
        "a landed batch must count as stored"
    );
    // …and a retry that overlaps what landed and goes further.
    let more = writer::commit(&client, host, &batch(next, 5), Attempt::Retry).await;
    assert!(more.unwrap().contains(&id));
    let first = writer::commit(&client, host, &batch(next, 1), Attempt::First).await;
    assert!(first.is_err(), "a first attempt skipped an existing row");
    let seqs: Vec<i64> = db
        .client()
        .await
        .query(
            "SELECT seq FROM events WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let want: Vec<i64> = (1..next as i64 + 5).collect();
    assert_eq!(seqs, want);
}

/// A deposed host that has not noticed yet cannot decide about a turn any more: its turn-state
/// writes are refused once another host holds the session, so the new owner's view (re-run a
/// queued turn, report a running one lost) is the one that stands.
#[tokio::test]
async fn a_deposed_host_cannot_change_a_turns_state() {
    use agent_webkit_server::store::inputs::{self, TurnState};
    let db = TestDb::new().await;
    let (store, hosts, id) = one_session(&db, &["a", "b"]).await;
    let (a, b) = (hosts[0], hosts[1]);
    let (epoch_a, _) = claim(&store, id, a).await;
    let sql = db.client().await;
    let input: i64 = sql
        .query_one(
            "INSERT INTO inputs (session_id, type, body, principal, status, turn_state) \
             VALUES ($1, 'user_message', '{}', 'token', 204, 'queued') RETURNING id",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    // The owner may.
    let set = inputs::set_turn_state(&store, id, input, TurnState::Running, (a, epoch_a)).await;
    assert!(set.unwrap());
    // b takes the session over (a looks gone); a, not knowing, tries to finish the turn.
    sql.execute("UPDATE hosts SET released_at = now() WHERE id = $1", &[&a])
        .await
        .unwrap();
    let (epoch_b, _) = claim(&store, id, b).await;
    let stale = inputs::set_turn_state(&store, id, input, TurnState::Done, (a, epoch_a)).await;
    assert!(!stale.unwrap(), "a deposed host changed a turn's state");
    let state: String = sql
        .query_one("SELECT turn_state FROM inputs WHERE id = $1", &[&input])
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, "running");
    let set = inputs::set_turn_state(&store, id, input, TurnState::Lost, (b, epoch_b)).await;
    assert!(set.unwrap());
}

/// Transcript entries are fenced like events (invariants 5 and 7): a deposed host's entries
/// are refused with its events, and a retried batch stores each entry once.
#[tokio::test]
async fn transcript_entries_are_fenced_and_stored_once() {
    use agent_webkit_server::store::transcripts::Entry;
    let db = TestDb::new().await;
    let (store, hosts, id) = one_session(&db, &["a", "b"]).await;
    db.client()
        .await
        .execute("UPDATE hosts SET released_at = now()", &[])
        .await
        .unwrap();
    let sink = Arc::new(Published::default());
    let batch = |epoch: i64, seq: u64, uuid: Option<&str>| {
        vec![Append {
            session_id: id,
            epoch,
            frames: vec![Frame::encode(seq, names::MESSAGE_DELTA, "{}")],
            transcript: vec![Entry {
                seq,
                file: Arc::from("c.jsonl"),
                uuid: uuid.map(Into::into),
                json: format!("{{\"n\":{seq}}}"),
            }],
            sink: sink.clone(),
            ack: None,
            span: tracing::Span::none(),
        }]
    };
    let client = store.client().await.unwrap();
    let (epoch_a, next) = claim(&store, id, hosts[0]).await;
    let stored = writer::commit(
        &client,
        hosts[0],
        &batch(epoch_a, next, Some("u1")),
        Attempt::First,
    )
    .await
    .unwrap();
    assert!(stored.contains(&id));
    // The same entry again (a retry, or the CLI mirroring it twice): stored once.
    let again = writer::commit(
        &client,
        hosts[0],
        &batch(epoch_a, next, Some("u1")),
        Attempt::Retry,
    )
    .await
    .unwrap();
    assert!(again.contains(&id));
    // Host b takes the session over; a's next entries are refused with its events.
    let (epoch_b, next_b) = claim(&store, id, hosts[1]).await;
    let deposed = writer::commit(
        &client,
        hosts[0],
        &batch(epoch_a, next + 1, Some("u2")),
        Attempt::First,
    )
    .await
    .unwrap();
    assert!(!deposed.contains(&id));
    let owner = writer::commit(
        &client,
        hosts[1],
        &batch(epoch_b, next_b, None),
        Attempt::First,
    )
    .await
    .unwrap();
    assert!(owner.contains(&id));
    let rows: Vec<(i64, Option<String>)> = client
        .query(
            "SELECT seq, uuid FROM transcript_entries WHERE session_id = $1 ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [(next as i64, Some("u1".into())), (next_b as i64, None)]
    );
}
