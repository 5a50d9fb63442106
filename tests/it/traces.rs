//! Traces over OTLP: the server binary, started with the standard `OTEL_*` variables, exports
//! to a tiny OTLP/HTTP collector in this test. A full turn (message, permission, reply, result,
//! resume, delete) must arrive as spans carrying `session_id`, `correlation_id`, `event_seq`,
//! `protocol_version` and `host_id`, and the caller's `traceparent` must be continued.

use crate::support::process::ServerProcess;
use crate::support::TestDb;
use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// What the collector received: (service.name, span) pairs.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP (protobuf) trace receiver on loopback; returns its base URL.
async fn collector(received: Received) -> String {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let received = received.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut got = received.lock().unwrap();
                for rs in request.resource_spans {
                    let service = rs
                        .resource
                        .as_ref()
                        .and_then(|r| string_attr(&r.attributes, "service.name"))
                        .unwrap_or_default();
                    for ss in rs.scope_spans {
                        got.extend(ss.spans.into_iter().map(|s| (service.clone(), s)));
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    ExportTraceServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a AnyValue> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    match attr(attrs, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        AnyValue::IntValue(i) => Some(i.to_string()),
        other => Some(format!("{other:?}")),
    }
}

fn int_attr(attrs: &[KeyValue], key: &str) -> Option<i64> {
    match attr(attrs, key)? {
        AnyValue::IntValue(i) => Some(*i),
        AnyValue::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_turn_is_traced_over_otlp_and_continues_the_callers_trace() {
    let db = TestDb::new().await;
    let received = Received::default();
    let endpoint = collector(received.clone()).await;
    let server = ServerProcess::start(
        &db.url,
        None,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "awk-traces-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .await;
    let api = &server.api;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");

    let id = api.create("read_allow").await;
    let mut stream = api.stream(&id, None).await.unwrap();
    let send = |body: serde_json::Value| {
        api.http
            .post(format!("{}/sessions/{id}/input", api.base))
            .bearer_auth(&api.token)
            .header("traceparent", &traceparent)
            .json(&body)
            .send()
    };
    let r = send(json!({"type": "user_message", "content": "read the README"})).await;
    assert_eq!(r.unwrap().status(), 204);
    let ask = stream.until("permission_request").await.pop().unwrap();
    let cid = ask.data["correlation_id"].as_str().unwrap().to_owned();
    let r =
        send(json!({"type": "permission_response", "correlation_id": cid, "behavior": "allow"}));
    assert_eq!(r.await.unwrap().status(), 204);
    let result = stream.until("result").await.pop().unwrap();
    let mut resumed = api.stream(&id, Some("1")).await.unwrap();
    resumed.until("result").await;
    drop(resumed);
    assert_eq!(api.delete(&id).await, 204);
    stream.rest().await;
    // SIGTERM: the exporter flushes what it holds before the process exits.
    server.stop().await;

    let spans = received.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no span reached the collector");
    assert!(spans
        .iter()
        .all(|(service, _)| service == "awk-traces-test"));
    let named = |name: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == name)
            .collect()
    };
    let ours = |s: &Span| string_attr(&s.attributes, "session_id").as_deref() == Some(&id);
    let host_id = |s: &Span| int_attr(&s.attributes, "host_id").expect("host_id");

    // The caller's trace continues: both inputs are children of the caller's span.
    let inputs = named("POST /sessions/{id}/input");
    assert_eq!(
        inputs.len(),
        2,
        "{:?}",
        spans.iter().map(|(_, s)| &s.name).collect::<Vec<_>>()
    );
    for s in &inputs {
        assert!(ours(s), "{s:?}");
        assert_eq!(hex(&s.trace_id), TRACE_ID);
        assert_eq!(hex(&s.parent_span_id), PARENT_ID);
        assert_eq!(
            string_attr(&s.attributes, "http.route").unwrap(),
            "/sessions/{id}/input"
        );
        assert_eq!(
            int_attr(&s.attributes, "http.response.status_code"),
            Some(204)
        );
        assert_eq!(
            string_attr(&s.attributes, "protocol_version").unwrap(),
            "1.0"
        );
        assert!(host_id(s) > 0);
    }
    assert!(
        inputs
            .iter()
            .any(|s| string_attr(&s.attributes, "correlation_id") == Some(cid.clone())),
        "the permission reply's span names its correlation_id"
    );

    // The turn runs in the caller's trace, under the request that queued it.
    let turn = named("session.turn");
    let turn = turn.iter().find(|s| ours(s)).expect("a session.turn span");
    assert_eq!(hex(&turn.trace_id), TRACE_ID);
    let user_message = inputs
        .iter()
        .find(|s| string_attr(&s.attributes, "correlation_id").is_none());
    assert_eq!(turn.parent_span_id, user_message.unwrap().span_id);
    assert_eq!(
        int_attr(&turn.attributes, "event_seq"),
        Some(result.id as i64)
    );
    assert_eq!(
        string_attr(&turn.attributes, "protocol_version").unwrap(),
        "1.0"
    );
    assert!(host_id(turn) > 0);
    let ask_event = turn
        .events
        .iter()
        .find(|e| e.name == "session.ask")
        .expect("session.ask event");
    assert_eq!(
        string_attr(&ask_event.attributes, "correlation_id"),
        Some(cid.clone())
    );
    assert_eq!(
        int_attr(&ask_event.attributes, "event_seq"),
        Some(ask.id as i64)
    );

    // Commit batches carry their size; some belong to the turn's trace.
    let commits = named("store.commit");
    assert!(commits
        .iter()
        .all(|s| int_attr(&s.attributes, "events").is_some()));
    assert!(commits
        .iter()
        .any(|s| hex(&s.trace_id) == TRACE_ID && s.parent_span_id == turn.span_id));

    // The session task's span, and the resume request's event_seq.
    let session = named("session");
    let session = session.iter().find(|s| ours(s)).expect("a session span");
    assert_eq!(host_id(session), host_id(turn));
    assert_eq!(
        string_attr(&session.attributes, "protocol_version").unwrap(),
        "1.0"
    );
    let streams = named("GET /sessions/{id}/stream");
    assert!(streams
        .iter()
        .any(|s| int_attr(&s.attributes, "event_seq") == Some(1)));

    // Probes are debug-level: not exported at the default level.
    assert!(named("GET /readyz").is_empty());
}
