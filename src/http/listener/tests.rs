use super::{classify, Classified, Health, Prefixed, MAX_HEAD};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

const ID: &str = "0b7e4c0e-8a0e-4c43-9b0a-5d0e4f7a8c11";

fn stream_head(extra: &str) -> String {
    format!("GET /sessions/{ID}/stream HTTP/1.1\r\nhost: x\r\nlast-event-id: 7\r\n{extra}\r\n")
}

fn is_stream(buf: &[u8]) -> bool {
    matches!(classify(buf), Some(Classified::Stream(..)))
}

fn is_other(buf: &[u8]) -> bool {
    matches!(classify(buf), Some(Classified::Other(_)))
}

#[test]
fn a_complete_stream_get_is_taken_with_its_headers_and_length() {
    let head = stream_head("");
    let Some(Classified::Stream(request, len)) = classify(head.as_bytes()) else {
        panic!("not taken");
    };
    assert_eq!(len, head.len());
    assert_eq!(request.uri().path(), format!("/sessions/{ID}/stream"));
    assert_eq!(request.headers()["last-event-id"], "7");
    assert_eq!(request.version(), axum::http::Version::HTTP_11);
}

#[test]
fn a_query_string_and_http_1_0_are_still_streams() {
    let head = format!("GET /sessions/{ID}/stream?x=1 HTTP/1.0\r\n\r\n");
    let Some(Classified::Stream(request, _)) = classify(head.as_bytes()) else {
        panic!("not taken");
    };
    assert_eq!(request.version(), axum::http::Version::HTTP_10);
}

#[test]
fn a_partial_stream_head_waits_for_more() {
    let head = stream_head("");
    for cut in [1, 5, 30, head.len() - 1] {
        assert!(classify(&head.as_bytes()[..cut]).is_none(), "cut at {cut}");
    }
    assert!(classify(b"").is_none());
}

#[test]
fn other_routes_and_methods_go_to_hyper_once_their_head_is_complete() {
    for line in [
        "POST /sessions HTTP/1.1\r\n".to_string(),
        format!("POST /sessions/{ID}/input HTTP/1.1\r\n"),
        format!("GET /sessions/{ID}/events HTTP/1.1\r\n"),
        format!("GET /sessions/{ID} HTTP/1.1\r\n"),
        format!("HEAD /sessions/{ID}/stream HTTP/1.1\r\n"),
        format!("GET /sessions/{ID}/x/stream HTTP/1.1\r\n"),
        "GET /sessions//stream HTTP/1.1\r\n".to_string(),
        "GET /healthz HTTP/1.1\r\n".to_string(),
    ] {
        // The head is read whole whatever it asks for: the header timeout covers all of it.
        assert!(classify(line.as_bytes()).is_none(), "{line:?}");
        let head = format!("{line}host: x\r\n\r\n");
        assert!(is_other(head.as_bytes()), "{line:?}");
    }
}

#[test]
fn health_checks_are_recognised() {
    let health = |head: &str| match classify(head.as_bytes()) {
        Some(Classified::Other(h)) => h,
        _ => panic!("{head:?} not decided"),
    };
    assert_eq!(health("GET /healthz HTTP/1.1\r\n\r\n"), Health::Yes);
    assert_eq!(health("GET /readyz?x=1 HTTP/1.0\r\n\r\n"), Health::Yes);
    assert_eq!(health("POST /healthz HTTP/1.1\r\n\r\n"), Health::No);
    assert_eq!(health("GET /healthz/x HTTP/1.1\r\n\r\n"), Health::No);
    assert_eq!(health("GET /sessions HTTP/1.1\r\n\r\n"), Health::No);
}

#[test]
fn http2_prior_knowledge_and_garbage_go_to_hyper() {
    assert!(is_other(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    assert!(is_other(b"\x16\x03\x01\x02\x00"));
    assert!(is_other(b"GET /sessions/a/stream HTTP/9.9\r\n\r\n"));
}

#[test]
fn a_stream_get_with_a_body_goes_to_hyper() {
    assert!(is_other(stream_head("content-length: 3\r\n").as_bytes()));
    assert!(is_other(
        stream_head("transfer-encoding: chunked\r\n").as_bytes()
    ));
    assert!(is_stream(stream_head("content-length: 0\r\n").as_bytes()));
}

#[test]
fn an_oversized_head_goes_to_hyper() {
    let big = format!("x-big: {}\r\n", "a".repeat(MAX_HEAD));
    assert!(is_other(stream_head(&big).as_bytes()));
    let many: String = (0..100).map(|i| format!("x-{i}: v\r\n")).collect();
    assert!(is_other(stream_head(&many).as_bytes()));
}

#[tokio::test]
async fn prefixed_yields_its_bytes_then_the_rest() {
    let (mut client, server) = tokio::io::duplex(64);
    let mut io = Prefixed::new(Bytes::from_static(b"GET / HT"), server);
    tokio::io::AsyncWriteExt::write_all(&mut client, b"TP/1.1\r\n\r\n")
        .await
        .unwrap();
    drop(client);
    let mut all = Vec::new();
    io.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"GET / HTTP/1.1\r\n\r\n");
}
