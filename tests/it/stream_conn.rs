//! The two ways a stream is served: on a fresh connection by `http::sse_conn` (written straight
//! to the socket), on a keep-alive connection that carried another request first by hyper. Both
//! must put the same bytes on the wire, answer errors with `{code, message}`, and free the
//! subscriber when the client goes away. Raw TCP on loopback, so nothing hides the framing.

use crate::support::metrics::scrape;
use crate::support::{TestDb, TestServer, TOKEN};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const READ_TIMEOUT: Duration = Duration::from_secs(20);

fn addr(server: &TestServer) -> String {
    server.api.base.trim_start_matches("http://").to_owned()
}

fn get(path: &str, version: &str, extra: &str) -> String {
    format!("GET {path} HTTP/{version}\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n{extra}\r\n")
}

/// Reads until the server closes the connection.
async fn read_to_close(sock: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(READ_TIMEOUT, sock.read_to_end(&mut out))
        .await
        .expect("the server did not close the connection")
        .unwrap();
    out
}

/// Splits a response into its lower-cased head lines and its body bytes.
fn split(response: &[u8]) -> (Vec<String>, Vec<u8>) {
    let at = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no end of head");
    let head = String::from_utf8_lossy(&response[..at]).to_lowercase();
    let lines = head.split("\r\n").map(str::to_owned).collect();
    (lines, response[at + 4..].to_vec())
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// Decodes a chunked body; panics on bad framing or a missing last chunk.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("size line");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..eol]).unwrap(), 16).unwrap();
        body = &body[eol + 2..];
        if size == 0 {
            assert_eq!(body, b"\r\n", "trailer after the last chunk");
            return out;
        }
        out.extend_from_slice(&body[..size]);
        assert_eq!(&body[size..size + 2], b"\r\n", "chunk not followed by CRLF");
        body = &body[size + 2..];
    }
}

/// A finished session (plain_qa played to `done` by DELETE) so that streams end by themselves.
async fn finished_session(server: &TestServer) -> String {
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut s = api.stream(&id, None).await.unwrap();
    api.say(&id, "hi").await;
    s.until("result").await;
    assert_eq!(api.delete(&id).await, 204);
    id
}

#[tokio::test]
async fn a_fresh_connection_and_a_keep_alive_one_get_the_same_stream() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = finished_session(&server).await;
    let path = format!("/sessions/{id}/stream");

    // Fresh connection: sse_conn.
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(get(&path, "1.1", "").as_bytes())
        .await
        .unwrap();
    let (head, body) = split(&read_to_close(&mut sock).await);
    assert_eq!(head[0], "http/1.1 200 ok");
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&head, "cache-control"), Some("no-cache"));
    assert_eq!(header(&head, "x-accel-buffering"), Some("no"));
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    assert!(header(&head, "date").is_some());
    // A stream is the last thing its connection carries, and its head says so.
    assert_eq!(header(&head, "connection"), Some("close"));
    let fresh = dechunk(&body);

    // The same stream as the second request of a keep-alive connection: hyper.
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    let both = format!(
        "{}{}",
        get("/healthz", "1.1", ""),
        get(&path, "1.1", "connection: close\r\n")
    );
    sock.write_all(both.as_bytes()).await.unwrap();
    let all = read_to_close(&mut sock).await;
    let second = all.windows(12).rposition(|w| w == b"HTTP/1.1 200").unwrap();
    assert!(second > 0, "one response only");
    let (head, body) = split(&all[second..]);
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&head, "connection"), Some("close"));
    let kept = dechunk(&body);

    let text = String::from_utf8(fresh.clone()).unwrap();
    assert!(text.starts_with("id: 1\nevent: session_ready\n"), "{text}");
    assert!(text.contains("event: done\n"), "{text}");
    assert_eq!(fresh, kept, "the two paths sent different bytes");
    server.stop().await;
}

#[tokio::test]
async fn a_stream_served_by_hyper_ends_its_connection_and_nothing_pipelined_runs() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = finished_session(&server).await;
    let other = server.api.create("plain_qa").await;
    let sessions = || async {
        let n: i64 = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM sessions WHERE status <> 'closed'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        n
    };
    let before = sessions().await;
    // healthz first, so the sniffer hands the connection to hyper; then the stream (no
    // `connection: close` from the client), then a create and a delete behind it.
    let pipelined = format!(
        "{}{}POST /sessions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}\
         DELETE /sessions/{other} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n",
        get("/healthz", "1.1", ""),
        get(&format!("/sessions/{id}/stream"), "1.1", ""),
    );
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(pipelined.as_bytes()).await.unwrap();
    let all = read_to_close(&mut sock).await;
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 ").count(), 2, "{text}");
    let second = all.windows(12).rposition(|w| w == b"HTTP/1.1 200").unwrap();
    let (head, body) = split(&all[second..]);
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(String::from_utf8(dechunk(&body))
        .unwrap()
        .contains("event: done\n"));
    // Neither pipelined request ran: no session was created, none was closed.
    assert_eq!(sessions().await, before);
    server.stop().await;
}

#[tokio::test]
async fn http_1_0_gets_a_body_delimited_by_the_close() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = finished_session(&server).await;
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(get(&format!("/sessions/{id}/stream"), "1.0", "").as_bytes())
        .await
        .unwrap();
    let (head, body) = split(&read_to_close(&mut sock).await);
    assert_eq!(head[0], "http/1.1 200 ok");
    assert_eq!(header(&head, "transfer-encoding"), None);
    let text = String::from_utf8(body).unwrap();
    assert!(text.starts_with("id: 1\nevent: session_ready\n"), "{text}");
    assert!(
        text.ends_with("\n\n") && text.contains("event: done\n"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn errors_on_a_fresh_connection_are_json_with_their_codes() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = server.api.create("plain_qa").await;
    let cases = [
        (
            get(
                "/sessions/0b7e4c0e-8a0e-4c43-9b0a-5d0e4f7a8c11/stream",
                "1.1",
                "",
            ),
            404,
            "session_not_found",
        ),
        (
            get(
                &format!("/sessions/{id}/stream"),
                "1.1",
                "last-event-id: 99\r\n",
            ),
            412,
            "last_event_id_ahead",
        ),
        (
            get(
                &format!("/sessions/{id}/stream"),
                "1.1",
                "last-event-id: x\r\n",
            ),
            400,
            "invalid_last_event_id",
        ),
        (
            format!("GET /sessions/{id}/stream HTTP/1.1\r\nhost: x\r\n\r\n"),
            401,
            "unauthorized",
        ),
    ];
    for (request, status, code) in cases {
        let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        let (head, body) = split(&read_to_close(&mut sock).await);
        assert!(
            head[0].starts_with(&format!("http/1.1 {status} ")),
            "{head:?}"
        );
        assert_eq!(
            header(&head, "content-length"),
            Some(body.len().to_string().as_str())
        );
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["code"], code, "{json}");
        assert!(json["message"].is_string());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_subscriber() {
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.sessions.max_subscribers = 1;
    let server = TestServer::start_with(config).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let request = get(&format!("/sessions/{id}/stream"), "1.1", "");
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 64];
    let n = tokio::time::timeout(READ_TIMEOUT, sock.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    // The place is taken while the client is there…
    let (status, body) = api.stream(&id, None).await.err().unwrap();
    assert_eq!(
        (status.as_u16(), body["code"].as_str()),
        (429, Some("too_many_subscribers"))
    );
    // …and given back when it leaves, without the server writing anything first.
    drop(sock);
    let mut freed = false;
    for _ in 0..200 {
        if scrape(api).await.value("agent_webkit_sse_subscribers", &[]) == 0.0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(freed, "the subscriber outlived its connection");
    assert!(api.stream(&id, None).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_streams_served_on_fresh_connections() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let id = server.api.create("plain_qa").await;
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(get(&format!("/sessions/{id}/stream"), "1.1", "").as_bytes())
        .await
        .unwrap();
    let mut first = [0u8; 64];
    tokio::time::timeout(READ_TIMEOUT, sock.read(&mut first))
        .await
        .unwrap()
        .unwrap();
    // `stop` fails the test if the server is still waiting for this stream after 20 s.
    server.stop().await;
    let (_, body) = split(&[&first[..], &read_to_close(&mut sock).await].concat());
    assert!(
        body.ends_with(b"0\r\n\r\n"),
        "the stream did not end cleanly"
    );
}
