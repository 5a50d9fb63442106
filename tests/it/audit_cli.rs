//! `agent-webkit-server audit …`: the same filters as HTTP, in each output format, and
//! `--follow`.

use crate::support::{audit_cli as audit, TestDb, TestServer};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

/// One read_allow session played with a winning and a losing reply.
async fn played(server: &TestServer) -> String {
    let api = &server.api;
    let id = api.create("read_allow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    api.say(&id, "read").await;
    stream.until("permission_request").await;
    let allow = json!({"type":"permission_response","correlation_id":"tu_1","behavior":"allow"});
    assert_eq!(api.input(&id, allow.clone()).await, 204);
    assert_eq!(api.input(&id, allow).await, 409);
    stream.until("result").await;
    id
}

#[tokio::test]
async fn each_format_prints_the_filtered_rows() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = played(&server).await;

    // JSON Lines: one object per row, the API's shape.
    let out = audit(&db, &["events", "--format", "json", "--tool-name", "Read"])
        .await
        .unwrap();
    let rows: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(names, ["tool_use", "permission_request"]);
    assert!(rows.iter().all(|r| r["session_id"] == json!(id)));

    // CSV: a header, then rows; the JSON column is quoted with doubled quotes.
    let out = audit(
        &db,
        &[
            "events",
            "--format",
            "csv",
            "--event",
            "permission_resolved",
        ],
    )
    .await
    .unwrap();
    let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "created_at,session_id,id,event,data");
    assert_eq!(lines.len(), 2);
    assert!(lines[1].ends_with(&format!(r#",{id},5,permission_resolved,"{{""correlation_id"":""tu_1"",""behavior"":""allow""}}""#)), "{}", lines[1]);

    // Table: a header and aligned columns.
    let out = audit(&db, &["inputs", "--status", "409"]).await.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("received_at"));
    // The status column starts where its header does ("409" may also occur in an id or a time).
    let status_at = lines[0].find("status").unwrap();
    assert!(lines[1][status_at..].starts_with("409"), "{out}");
    assert!(lines[1].contains("token") && lines[1].contains("permission_response"));

    let out = audit(&db, &["sessions", "--format", "csv", "--status", "active"])
        .await
        .unwrap();
    assert!(
        out.lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{id},token,active,")),
        "{out}"
    );
    let out = audit(&db, &["sessions", "--format", "json", "--status", "closed"])
        .await
        .unwrap();
    assert_eq!(out, "");

    // --limit, --since, --contains, and the same refusals as HTTP.
    let out = audit(
        &db,
        &[
            "events", "--format", "json", "--limit", "3", "--since", "1h",
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.lines().count(), 3);
    let out = audit(
        &db,
        &[
            "events",
            "--format",
            "json",
            "--contains",
            r#"{"output":"first line"}"#,
        ],
    )
    .await
    .unwrap();
    assert_eq!(out.lines().count(), 1);
    let e = audit(&db, &["events", "--event", "nope"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown event \"nope\""), "{e}");
    let e = audit(&db, &["events", "--since", "soon"])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("duration"), "{e}");
    server.stop().await;
}

#[tokio::test]
async fn the_binary_follows_new_events() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    played(&server).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_agent-webkit-server"))
        .args([
            "audit",
            "events",
            "--follow",
            "--format",
            "json",
            "--event",
            "session_ready",
        ])
        .args(["--database-url", &db.url])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(next_json(&mut lines).await["event"], "session_ready");
    // New sessions are printed as they are committed (and settled), in order.
    let a = server.api.create("plain_qa").await;
    let b = server.api.create("plain_qa").await;
    assert_eq!(next_json(&mut lines).await["session_id"], json!(a));
    assert_eq!(next_json(&mut lines).await["session_id"], json!(b));
    child.kill().await.unwrap();
    server.stop().await;
}

async fn next_json(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("no line in time");
    serde_json::from_str(&line.unwrap().unwrap()).unwrap()
}
