//! A failover drill's workload: sessions with turns running, two reconnecting subscribers each
//! (the JS client's rules), a driver that sends every turn's message (retrying what a client
//! would retry), then deletes the session. At the end every subscriber must hold exactly the
//! table's events for its session: nothing lost, duplicated or reordered.

use super::sse::{follow, Event};
use super::Api;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A scenario of `turns` turns, each `messages` assistant messages `delay_ms` apart.
pub fn scenario(turns: usize, messages: usize, delay_ms: u64) -> String {
    let mut lines = Vec::new();
    for t in 0..turns {
        lines.push(json!({"kind":"expect_user_query"}).to_string());
        for m in 0..messages {
            lines.push(json!({"kind":"outbound","message":{"type":"AssistantMessage","id":format!("m_{t}_{m}"),
                "content":[{"type":"text","text":format!("turn {t} part {m}")}],"model":"m"}}).to_string());
            lines.push(json!({"kind":"delay","seconds": delay_ms as f64 / 1000.0}).to_string());
        }
        lines.push(
            json!({"kind":"outbound","message":{"type":"ResultMessage","subtype":"success"}})
                .to_string(),
        );
    }
    lines.join("\n")
}

/// What a follower ends with: its events and reconnect count, or the fatal status it got.
type Followed = Result<(Vec<Event>, usize), (u16, Value)>;

pub struct DrillSession {
    pub id: String,
    followers: Vec<JoinHandle<Followed>>,
    driver: JoinHandle<Vec<u16>>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub sessions: usize,
    pub events: usize,
    pub gaps: usize,
    pub duplicates: usize,
    pub mismatches: usize,
    pub reconnects: usize,
}

/// Sends with a client's retries: 5xx, 408, 429 and connection failures are retried (bounded);
/// anything else is returned.
pub async fn send_retrying(api: &Api, id: &str, body: &Value) -> u16 {
    for _ in 0..600 {
        match api.try_input(id, body).await {
            Ok(s) if !(s.is_server_error() || s == 408 || s == 429) => return s.as_u16(),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("input to {id} never accepted");
}

async fn delete_retrying(api: &Api, id: &str) -> u16 {
    for _ in 0..600 {
        match api.try_delete(id).await {
            Ok(s) if !s.is_server_error() => return s.as_u16(),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("delete of {id} never accepted");
}

/// Starts `n` sessions on `fixture` through `api`, each with two followers and a driver that
/// sends `turns` messages and, once `turns` results are in the table, deletes the session.
pub async fn start(
    api: &Api,
    db_url: &str,
    fixture: &str,
    n: usize,
    turns: usize,
) -> Vec<DrillSession> {
    let mut out = Vec::new();
    for _ in 0..n {
        let id = api.create(fixture).await;
        let followers = (0..2)
            .map(|_| {
                let (api, id) = (api.clone(), id.clone());
                tokio::spawn(async move { follow(&api, &id, 200).await })
            })
            .collect();
        let (api, id2, url) = (api.clone(), id.clone(), db_url.to_owned());
        let driver = tokio::spawn(async move {
            let mut statuses = Vec::new();
            for t in 0..turns {
                let body = json!({"type":"user_message","content":format!("turn {t}")});
                statuses.push(send_retrying(&api, &id2, &body).await);
            }
            wait_for_results(&url, &id2, turns).await;
            statuses.push(delete_retrying(&api, &id2).await);
            statuses
        });
        out.push(DrillSession {
            id,
            followers,
            driver,
        });
    }
    out
}

async fn wait_for_results(db_url: &str, id: &str, turns: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_results(db_url, id).await.unwrap_or(0) < turns {
        assert!(
            Instant::now() < deadline,
            "session {id}: turns never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `None` while Postgres is unreachable (a drill may be restarting it).
async fn count_results(db_url: &str, id: &str) -> Option<usize> {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM events WHERE session_id = $1::text::uuid AND event = 'result'",
            &[&id],
        )
        .await
        .ok()?;
    Some(row.get::<_, i64>(0) as usize)
}

/// Waits for every session to finish and compares what each subscriber saw with the table.
pub async fn verify(db_url: &str, sessions: Vec<DrillSession>) -> Report {
    let (client, conn) = tokio_postgres::connect(db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut report = Report::default();
    for s in sessions {
        let statuses = s.driver.await.unwrap();
        assert!(
            statuses.iter().all(|st| *st == 204),
            "session {}: a client saw {statuses:?}",
            s.id
        );
        let rows = client
            .query(
                "SELECT seq, 'id: ' || seq || E'\\nevent: ' || event || E'\\ndata: ' || data::text || E'\\n\\n' \
                 FROM events WHERE session_id = $1::text::uuid ORDER BY seq",
                &[&s.id],
            )
            .await
            .unwrap();
        let table: Vec<(u64, String)> = rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect();
        for (i, (seq, _)) in table.iter().enumerate() {
            if *seq != i as u64 + 1 {
                report.gaps += 1;
            }
        }
        report.sessions += 1;
        report.events += table.len();
        for f in s.followers {
            let (events, reconnects) = f.await.unwrap().unwrap_or_else(|(st, body)| {
                panic!("session {}: subscriber failed with {st} {body}", s.id)
            });
            report.reconnects += reconnects;
            let mut seen = std::collections::HashSet::new();
            for e in &events {
                if !seen.insert(e.id) {
                    report.duplicates += 1;
                }
            }
            let received: Vec<&str> = events.iter().map(|e| e.raw.as_str()).collect();
            let expected: Vec<&str> = table.iter().map(|(_, raw)| raw.as_str()).collect();
            if received != expected {
                report.mismatches += 1;
                eprintln!(
                    "session {}: subscriber saw {} events, table has {}",
                    s.id,
                    received.len(),
                    expected.len()
                );
            }
        }
    }
    eprintln!("drill report: {report:?}");
    report
}

impl Report {
    pub fn assert_clean(&self) {
        assert!(self.sessions > 0 && self.events > 0);
        assert_eq!(
            (self.gaps, self.duplicates, self.mismatches),
            (0, 0, 0),
            "{self:?}"
        );
    }
}
