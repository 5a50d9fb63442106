//! Micro-benchmarks of the pure functions on the hot path, so a regression shows without a
//! Postgres (issue 19): frame encoding, reading chunks out of the ring, and the key-order
//! preserving JSON passthrough of agent messages into wire events. The end-to-end figures
//! (`agent-webkit-bench load`) remain the ones that count; these localize a change.
//!
//! Run: `cargo bench --bench hot_paths` (divan prints median and spread per function).

use agent_webkit_server::agent::AgentEvent;
use agent_webkit_server::frame::{names, Encoder, Frame};
use agent_webkit_server::session::log::{EventLog, RingRead};
use agent_webkit_server::session::translate;
use agent_webkit_server::store::writer::CommitSink;
use divan::{black_box, Bencher};
use serde_json::json;

fn main() {
    divan::main();
}

/// A typical `message_delta` payload (~60 bytes of text).
fn delta_data() -> String {
    json!({"message_id": "msg_01XYZ", "delta": {"type": "text_delta",
        "text": "The quick brown fox jumps over the lazy dog, again and again."}})
    .to_string()
}

#[divan::bench]
fn encode_frame_alone(bencher: Bencher<'_, '_>) {
    let data = delta_data();
    bencher.bench(|| Frame::encode(black_box(123_456), names::MESSAGE_DELTA, black_box(&data)));
}

#[divan::bench]
fn encode_frame_into_shared_blocks(bencher: Bencher<'_, '_>) {
    let data = delta_data();
    let mut encoder = Encoder::default();
    let mut seq = 0u64;
    bencher.bench_local(|| {
        seq += 1;
        encoder.encode(seq, names::MESSAGE_DELTA, black_box(&data))
    });
}

/// A subscriber's step on a full ring: up to 64 KiB of frames after a cursor.
#[divan::bench(args = [1, 100, 900])]
fn read_a_chunk_from_the_ring(bencher: Bencher<'_, '_>, behind: u64) {
    let data = delta_data();
    let log = EventLog::new(uuid::Uuid::nil(), 1000, Vec::new(), 0);
    let mut encoder = Encoder::default();
    let frames: Vec<Frame> = (1..=1000)
        .map(|seq| encoder.encode(seq, names::MESSAGE_DELTA, &data))
        .collect();
    log.committed(frames);
    bencher.bench(
        || match log.read_after(black_box(1000 - behind), 64 * 1024) {
            RingRead::Frames { chunks, .. } => chunks.len(),
            _ => 0,
        },
    );
}

/// An assistant message with a tool call, through translation into wire events (JSON with
/// its keys in the agent's order).
#[divan::bench]
fn translate_an_assistant_message(bencher: Bencher<'_, '_>) {
    let content = vec![
        json!({"type": "text", "text": "I will read the file first."}),
        json!({"type": "tool_use", "id": "toolu_01", "name": "Read",
               "input": {"file_path": "/srv/app/README.md", "limit": 200, "offset": 0}}),
    ];
    bencher.bench(|| {
        let event = AgentEvent::Assistant {
            id: "msg_01".into(),
            content: content.clone(),
            model: Some("claude-sonnet-4-5".into()),
            stop_reason: Some("tool_use".into()),
        };
        translate::message(black_box(&event))
    });
}

#[divan::bench]
fn translate_a_delta(bencher: Bencher<'_, '_>) {
    let delta =
        json!({"type": "text_delta", "text": "The quick brown fox jumps over the lazy dog."});
    bencher.bench(|| {
        let event = AgentEvent::Delta {
            message_id: "msg_01".into(),
            delta: delta.clone(),
        };
        translate::message(black_box(&event))
    });
}
