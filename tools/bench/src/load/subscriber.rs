//! One subscriber: reads a stream to a given id, counting every event exactly once.
//!
//! Ids must arrive as `after+1, after+2, …`; anything else is counted as a duplicate or a gap,
//! and the report shows those counts next to the figures (they must be zero).

use super::http::SseConn;
use super::sse::Parsed;
use anyhow::bail;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Follow {
    /// Stop once this id has been received.
    pub until: u64,
    /// Keep the arrival time of every event (fan-out spread, lag).
    pub record_times: bool,
    /// Sum the frame bytes of events with an id above this (the ring's share, for memory).
    pub tail_from: u64,
}

#[derive(Debug, Default)]
pub struct Followed {
    pub received: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub bytes: u64,
    pub tail_bytes: u64,
    pub last: u64,
    /// When `until` arrived.
    pub finished: Option<Instant>,
    /// `(id, arrival)` of every new event, when recorded.
    pub times: Vec<(u64, Instant)>,
}

/// Reads `conn` (opened after `after`) until `opts.until`; fails if the stream ends first.
pub async fn follow(mut conn: SseConn, after: u64, opts: Follow) -> anyhow::Result<Followed> {
    let mut out = Followed {
        last: after,
        ..Followed::default()
    };
    if opts.record_times {
        out.times.reserve(opts.until.saturating_sub(after) as usize);
    }
    while out.last < opts.until {
        let Some(frame) = conn.next().await? else {
            bail!("stream ended at id {} before id {}", out.last, opts.until);
        };
        let Parsed::Event { id, len, .. } = frame else {
            continue;
        };
        out.received += 1;
        out.bytes += len as u64;
        if id > opts.tail_from {
            out.tail_bytes += len as u64;
        }
        if id <= out.last {
            out.duplicates += 1;
            continue;
        }
        out.gaps += id - out.last - 1;
        out.last = id;
        if opts.record_times {
            out.times.push((id, Instant::now()));
        }
    }
    out.finished = Some(Instant::now());
    Ok(out)
}
