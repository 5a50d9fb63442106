//! An incremental SSE reader, and a follower with the JS client's reconnect rules.

use super::Api;
use serde_json::Value;
use std::collections::VecDeque;
use std::time::Duration;

/// How long a test waits for one event before failing (nothing in these tests takes long).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: u64,
    pub event: String,
    pub data: Value,
    /// The frame as received, for byte-level comparisons.
    pub raw: String,
}

pub struct SseStream {
    response: reqwest::Response,
    pub headers: reqwest::header::HeaderMap,
    buf: String,
    ready: VecDeque<Event>,
    pub keepalives: usize,
    ended: bool,
}

impl SseStream {
    pub fn new(response: reqwest::Response) -> SseStream {
        SseStream {
            headers: response.headers().clone(),
            response,
            buf: String::new(),
            ready: VecDeque::new(),
            keepalives: 0,
            ended: false,
        }
    }

    /// The next event, or `None` when the server ended the stream (or the connection broke).
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(EVENT_TIMEOUT, self.next_inner())
            .await
            .expect("timed out waiting for an SSE event")
    }

    /// Like [`next`](Self::next) but gives up after `wait`, returning `Err(())`.
    pub async fn next_within(&mut self, wait: Duration) -> Result<Option<Event>, ()> {
        tokio::time::timeout(wait, self.next_inner())
            .await
            .map_err(|_| ())
    }

    async fn next_inner(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    self.buf
                        .push_str(std::str::from_utf8(&chunk).expect("utf-8 frames"));
                    self.parse();
                }
                Ok(None) | Err(_) => self.ended = true,
            }
        }
    }

    fn parse(&mut self) {
        while let Some(end) = self.buf.find("\n\n") {
            let frame: String = self.buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, None, None);
            for line in frame.lines() {
                if line.starts_with(':') {
                    self.keepalives += 1;
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.parse().expect("numeric id"));
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(v).expect("JSON data"));
                }
            }
            if let (Some(id), Some(event), Some(data)) = (id, event, data) {
                self.ready.push_back(Event {
                    id,
                    event,
                    data,
                    raw: frame,
                });
            }
        }
    }

    /// Events up to and including the first named `name`.
    pub async fn until(&mut self, name: &str) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            let stop = e.event == name;
            out.push(e);
            if stop {
                return out;
            }
        }
        panic!(
            "stream ended before {name}; got {:?}",
            out.iter().map(|e| &e.event).collect::<Vec<_>>()
        );
    }

    /// Every event until the server ends the stream.
    pub async fn rest(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

pub fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// Follows a session to `done` the way `@agent-webkit/core` does: on a stream that ends without
/// `done`, a network error, or a 5xx/408/429 it reconnects with `Last-Event-ID` after a backoff
/// (250 ms doubling to 8 s); any other 4xx is fatal. Returns every event, in order received,
/// and the number of reconnects. Bounded by `max_reconnects`.
pub async fn follow(
    api: &Api,
    id: &str,
    max_reconnects: usize,
) -> Result<(Vec<Event>, usize), (u16, Value)> {
    let mut events: Vec<Event> = Vec::new();
    let mut backoff = Duration::from_millis(250);
    for attempt in 0..=max_reconnects {
        let last = events.last().map(|e| e.id.to_string());
        match api.stream(id, last.as_deref()).await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(250);
                while let Some(e) = stream.next().await {
                    let done = e.event == "done";
                    events.push(e);
                    if done {
                        return Ok((events, attempt));
                    }
                }
            }
            Err((status, body)) => {
                let s = status.as_u16();
                if !(s >= 500 || s == 408 || s == 429) {
                    return Err((s, body));
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(8));
    }
    panic!("gave up after {max_reconnects} reconnects");
}

/// Asserts ids are exactly `from, from+1, …` (no gap, no duplicate).
pub fn assert_contiguous(events: &[Event], from: u64) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(
            e.id,
            from + i as u64,
            "gap or duplicate at position {i}: {:?}",
            names(events)
        );
    }
}
