//! Hostile connections (issue 12): heads trickled a byte at a time, idle keep-alive
//! connections and floods of idle sockets are closed or refused by the server, and a full host
//! still answers its health checks. Raw TCP on loopback; every wait is bounded, and no test
//! asserts how fast anything happened, only that it happened within a generous bound.

use crate::support::{TestDb, TestServer, TOKEN};
use agent_webkit_server::http::limits::{raise_descriptor_limit, HEALTH_RESERVE};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on anything the server should do by itself (its timeouts here are 1 s).
const BOUND: Duration = Duration::from_secs(15);

fn addr(server: &TestServer) -> String {
    server.api.base.trim_start_matches("http://").to_owned()
}

/// A config whose connection timeouts are short.
fn short_timeouts(db: &TestDb) -> agent_webkit_server::config::Config {
    let mut config = TestServer::config(db);
    config.http.header_timeout = Duration::from_secs(1);
    config.http.idle_timeout = Duration::from_secs(1);
    config
}

/// Whether the server closed `sock` (EOF or reset) within [`BOUND`]; what it sent meanwhile.
async fn closed_by_server(sock: &mut TcpStream) -> (bool, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (closed, got)
}

/// Sends `head` one byte every 100 ms until the server closes the connection; whether it did
/// before the whole head was sent (the head is long enough to take about 30 s).
async fn trickle_until_closed(sock: &mut TcpStream, head: &[u8]) -> bool {
    let mut probe = [0u8; 256];
    for byte in head {
        if sock.write_all(&[*byte]).await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_millis(100), sock.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before the close is fine; keep going until the close.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

fn slow_head() -> Vec<u8> {
    let mut head = b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec();
    head.extend(std::iter::repeat_n(b'x', 300));
    head
}

/// Reads one response whose body has a `content-length` (what hyper sends for `/healthz`);
/// `None` if the server closed the connection before a whole one.
async fn try_read_response(sock: &mut TcpStream) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let whole = tokio::time::timeout(BOUND, async {
        loop {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got).to_lowercase();
            if let Some(at) = text.find("\r\n\r\n") {
                let len: usize = text[..at]
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("content-length");
                if got.len() >= at + 4 + len {
                    return true;
                }
            }
        }
    })
    .await
    .expect("neither a whole response nor a close");
    whole.then(|| String::from_utf8_lossy(&got).into_owned())
}

async fn read_response(sock: &mut TcpStream) -> String {
    try_read_response(sock)
        .await
        .expect("closed before a whole response")
}

fn healthz() -> &'static [u8] {
    b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
}

#[tokio::test]
async fn a_trickled_head_is_cut_off_on_a_new_connection_and_on_a_kept_one() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(short_timeouts(&db)).await;

    // The first head of a connection: the sniffer's deadline (--http-header-timeout).
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    assert!(
        trickle_until_closed(&mut sock, &slow_head()).await,
        "a trickled first head kept its connection open"
    );

    // A later head on a keep-alive connection: hyper's timer (--http-idle-timeout).
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(healthz()).await.unwrap();
    assert!(read_response(&mut sock).await.starts_with("HTTP/1.1 200"));
    assert!(
        trickle_until_closed(&mut sock, &slow_head()).await,
        "a trickled second head kept its connection open"
    );
    server.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let db = TestDb::new().await;
    let server = TestServer::start_with(short_timeouts(&db)).await;

    // Connected, never a byte.
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    // One request, then idle on a keep-alive connection.
    let mut kept = TcpStream::connect(addr(&server)).await.unwrap();
    kept.write_all(healthz()).await.unwrap();
    let first = read_response(&mut kept).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(!first.to_lowercase().contains("connection: close"));

    let (closed, sent) = closed_by_server(&mut silent).await;
    assert!(closed, "a silent connection stayed open");
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
    let (closed, _) = closed_by_server(&mut kept).await;
    assert!(closed, "an idle keep-alive connection stayed open");
    server.stop().await;
}

#[tokio::test]
async fn a_stream_outlives_the_idle_timeout() {
    // The idle timer runs only between requests: a stream served by hyper (second request of
    // a connection) is a request in flight, however quiet.
    let db = TestDb::new().await;
    let server = TestServer::start_with(short_timeouts(&db)).await;
    let api = &server.api;
    let id = api.create("plain_qa").await;
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    let stream = format!(
        "GET /sessions/{id}/stream HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
    );
    sock.write_all(&[healthz(), stream.as_bytes()].concat())
        .await
        .unwrap();
    // Quiet for three idle timeouts, then a turn: its events still arrive on this connection.
    tokio::time::sleep(Duration::from_secs(3)).await;
    api.say(&id, "hi").await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let done = tokio::time::timeout(BOUND, async {
        while !String::from_utf8_lossy(&got).contains("event: result") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream's connection was closed");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(done.is_ok(), "{}", String::from_utf8_lossy(&got));
    server.stop().await;
}

#[tokio::test]
async fn a_thousand_idle_sockets_do_not_stop_health_checks() {
    raise_descriptor_limit();
    let db = TestDb::new().await;
    let server = TestServer::start(&db).await;
    let mut idle = Vec::new();
    for _ in 0..1200 {
        idle.push(TcpStream::connect(addr(&server)).await.unwrap());
    }
    let mut sock = TcpStream::connect(addr(&server)).await.unwrap();
    sock.write_all(healthz()).await.unwrap();
    let answer = read_response(&mut sock).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(server.api.get_status("/healthz").await, Some(200));
    drop(idle);
    server.stop().await;
}

#[tokio::test]
async fn past_the_cap_connections_are_refused_but_health_checks_answer() {
    const CAP: usize = 10;
    let db = TestDb::new().await;
    let mut config = TestServer::config(&db);
    config.http.max_connections = Some(CAP);
    let server = TestServer::start_with(config).await;
    let connect = || TcpStream::connect(addr(&server));

    // Fill the cap with idle connections. The server accepts in order, so once a later
    // connection is answered, every one of these holds its slot.
    let mut idle = Vec::new();
    for _ in 0..CAP {
        idle.push(connect().await.unwrap());
    }
    let request =
        format!("GET /sessions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n");
    let mut sock = connect().await.unwrap();
    sock.write_all(request.as_bytes()).await.unwrap();
    let (closed, sent) = closed_by_server(&mut sock).await;
    let text = String::from_utf8_lossy(&sent);
    assert!(closed, "{text}");
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("\"code\":\"too_many_connections\""), "{text}");

    // A health check on a reserved slot answers, then its connection closes.
    for probe in ["/healthz", "/readyz"] {
        let mut sock = connect().await.unwrap();
        let head = format!("GET {probe} HTTP/1.1\r\nhost: x\r\n\r\n");
        sock.write_all(head.as_bytes()).await.unwrap();
        let (closed, sent) = closed_by_server(&mut sock).await;
        let text = String::from_utf8_lossy(&sent);
        assert!(
            closed && text.starts_with("HTTP/1.1 200 "),
            "{probe}: {text}"
        );
    }

    // With the reserve taken too, a new connection is closed unanswered.
    for _ in 0..HEALTH_RESERVE {
        idle.push(connect().await.unwrap());
    }
    let mut sock = connect().await.unwrap();
    let _ = sock.write_all(healthz()).await;
    let (closed, sent) = closed_by_server(&mut sock).await;
    assert!(
        closed && sent.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&sent)
    );

    // Once the idle ones leave, the host serves everyone again.
    drop(idle);
    let mut served = None;
    for _ in 0..100 {
        let mut sock = connect().await.unwrap();
        sock.write_all(request.as_bytes()).await.unwrap();
        served = try_read_response(&mut sock).await;
        if served
            .as_deref()
            .is_some_and(|r| r.starts_with("HTTP/1.1 200 "))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served.is_some_and(|r| r.starts_with("HTTP/1.1 200 ")),
        "slots were not given back"
    );
    server.stop().await;
}
