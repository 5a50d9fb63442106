//! Prometheus metrics, served at `GET /metrics` (and on `--metrics-listen`).
//!
//! Built on the `metrics` crate's handles with `metrics-exporter-prometheus` rendering the text
//! format. Why this pair rather than `prometheus-client`: a `metrics` counter or gauge is one
//! atomic add, and a histogram sample is a lock-free push into an atomic bucket that the
//! exporter folds into buckets at scrape/upkeep time, whereas `prometheus-client`'s histograms
//! take a lock per observation. The exporter is also the most used Prometheus backend in the
//! Rust ecosystem and renders names, labels and histograms in the standard text format.
//!
//! Every host (every `app::run`) owns its own [`Metrics`]: the recorder is never
//! installed as the process-global one, so several servers in one test process do not share
//! counters. Handles are registered once, here, and kept in this struct, so the hot paths never
//! look a metric up by name. The hot paths record little: the writer records per *batch*
//! (commit time, batch size), subscribers sample publish lag per *chunk*, and gauges that
//! mirror a number the server already keeps (live sessions, queued appends) are read at scrape
//! time instead of being updated as they change.

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Why a session left this host's memory (`agent_webkit_sessions_evicted_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvictReason {
    /// No input and no subscriber for `--idle-timeout`.
    Idle,
    /// `DELETE`.
    Closed,
    /// Another host took it over, the host lost its lease, or an append failed (the seed's
    /// `error`).
    Fenced,
    /// Another host asked for it (the load balancer sends its requests there now).
    Handover,
    /// This host is draining or shutting down.
    Shutdown,
}

impl EvictReason {
    const ALL: [EvictReason; 5] = [
        EvictReason::Idle,
        EvictReason::Closed,
        EvictReason::Fenced,
        EvictReason::Handover,
        EvictReason::Shutdown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EvictReason::Idle => "idle",
            EvictReason::Closed => "closed",
            EvictReason::Fenced => "fenced",
            EvictReason::Handover => "handover",
            EvictReason::Shutdown => "shutdown",
        }
    }
}

/// Why a resume was refused with `412`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume412 {
    /// `Last-Event-ID` is beyond the session's last event.
    Ahead,
    /// Retention removed the requested events.
    Expired,
}

/// Buckets of `agent_webkit_store_commit_seconds` and `_publish_lag_seconds`: a commit on a
/// healthy Postgres takes a few hundred microseconds; seconds mean it is in trouble.
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Buckets of `agent_webkit_store_batch_events` (the writer caps a batch at 4096 events).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

pub struct Metrics {
    handle: PrometheusHandle,
    pub sessions_live: Gauge,
    pub sessions_created: Counter,
    evicted: [Counter; 5],
    pub first_reply_winner: Counter,
    pub reply_conflicts: Counter,
    resume_412: [Counter; 2],
    pub resume_from_store: Counter,
    pub store_commit_seconds: Histogram,
    pub store_batch_events: Histogram,
    pub publish_lag_seconds: Histogram,
    pub sse_subscribers: Gauge,
    pub takeovers: Counter,
    pub fenced_appends: Counter,
    pub rejected_events: Counter,
    pub repaired_events: Counter,
    pub unrepairable_events: Counter,
    pub agent_processes: Gauge,
    pub writer_queue: Gauge,
    pub writer_queue_bytes: Gauge,
    pub overloaded: Counter,
    pub sse_write_timeouts: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = [
            "agent_webkit_store_commit_seconds",
            "agent_webkit_publish_lag_seconds",
        ]
        .into_iter()
        .try_fold(builder, |b, name| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), SECONDS_BUCKETS)
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("agent_webkit_store_batch_events".into()),
                BATCH_BUCKETS,
            )
        });
        // Only an empty bucket list is refused, and ours are constants.
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let r = Registrar(&recorder);
        let evicted = EvictReason::ALL.map(|reason| {
            r.counter_with(
                "agent_webkit_sessions_evicted_total",
                "Sessions that left this host's memory, by reason",
                ("reason", reason.as_str()),
            )
        });
        let resume_412 = [("reason", "ahead"), ("reason", "expired")].map(|label| {
            r.counter_with(
                "agent_webkit_resume_412_total",
                "Resumes refused with 412 (Last-Event-ID ahead, or events removed by retention)",
                label,
            )
        });
        Metrics {
            handle: recorder.handle(),
            sessions_live: r.gauge("agent_webkit_sessions_live", "Sessions running on this host"),
            sessions_created: r.counter(
                "agent_webkit_sessions_created_total",
                "Sessions created through this host",
            ),
            evicted,
            first_reply_winner: r.counter(
                "agent_webkit_permissions_first_reply_winner_total",
                "Permission/question/hook replies accepted (the first reply per correlation id)",
            ),
            reply_conflicts: r.counter(
                "agent_webkit_permissions_reply_conflicts_total",
                "Replies refused with 409 because another reply won (multi-tab races)",
            ),
            resume_412,
            resume_from_store: r.counter(
                "agent_webkit_resume_from_store_total",
                "Pages of events subscribers read from Postgres because the ring no longer held them",
            ),
            store_commit_seconds: r.histogram(
                "agent_webkit_store_commit_seconds",
                "Time to commit one group-commit batch, retries included",
                Unit::Seconds,
            ),
            store_batch_events: r.histogram(
                "agent_webkit_store_batch_events",
                "Events per group-commit batch",
                Unit::Count,
            ),
            publish_lag_seconds: r.histogram(
                "agent_webkit_publish_lag_seconds",
                "From commit to the write of the chunk to a live subscriber (sampled per chunk)",
                Unit::Seconds,
            ),
            sse_subscribers: r.gauge("agent_webkit_sse_subscribers", "Open SSE streams"),
            takeovers: r.counter(
                "agent_webkit_takeovers_total",
                "Sessions this host took over from a host that was dead or had lost its lease",
            ),
            fenced_appends: r.counter(
                "agent_webkit_fenced_appends_total",
                "Appends refused because another host owns the session (stale epoch)",
            ),
            rejected_events: r.counter(
                "agent_webkit_rejected_events_total",
                "Events the database refused for their content (replaced by one error event)",
            ),
            repaired_events: r.counter(
                "agent_webkit_repaired_events_total",
                "Published events the database had lost (a failover), re-appended from the ring",
            ),
            unrepairable_events: r.counter(
                "agent_webkit_unrepairable_events_total",
                "Published events the database had lost and the ring no longer held",
            ),
            agent_processes: r.gauge(
                "agent_webkit_agent_processes",
                "Agents running on this host (one Claude CLI process each with --agent claude)",
            ),
            writer_queue: r.gauge(
                "agent_webkit_writer_queue_appends",
                "Appends waiting for the group-commit writer",
            ),
            writer_queue_bytes: r.gauge(
                "agent_webkit_writer_queue_bytes",
                "Bytes of events waiting for the group-commit writer",
            ),
            overloaded: r.counter(
                "agent_webkit_overload_rejections_total",
                "Requests refused with 503 overloaded because the writer is saturated",
            ),
            sse_write_timeouts: r.counter(
                "agent_webkit_sse_write_timeouts_total",
                "Connections dropped because the client accepted no bytes for --sse-write-timeout",
            ),
        }
    }

    pub fn evicted(&self, reason: EvictReason) {
        let i = EvictReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.evicted[i].increment(1);
    }

    pub fn resume_refused(&self, why: Resume412) {
        self.resume_412[why as usize].increment(1);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets. Run periodically so samples do not
    /// pile up between scrapes (or when nobody scrapes).
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// Registers handles on one recorder, with their help text.
struct Registrar<'a, R: Recorder>(&'a R);

const META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, None);

impl<R: Recorder> Registrar<'_, R> {
    fn counter(&self, name: &'static str, help: &'static str) -> Counter {
        self.0
            .describe_counter(KeyName::from(name), None, help.into());
        self.0.register_counter(&Key::from_static_name(name), &META)
    }

    fn counter_with(
        &self,
        name: &'static str,
        help: &'static str,
        (k, v): (&'static str, &'static str),
    ) -> Counter {
        self.0
            .describe_counter(KeyName::from(name), None, help.into());
        let key = Key::from_parts(name, vec![Label::from_static_parts(k, v)]);
        self.0.register_counter(&key, &META)
    }

    fn gauge(&self, name: &'static str, help: &'static str) -> Gauge {
        self.0
            .describe_gauge(KeyName::from(name), None, help.into());
        self.0.register_gauge(&Key::from_static_name(name), &META)
    }

    fn histogram(&self, name: &'static str, help: &'static str, unit: Unit) -> Histogram {
        self.0
            .describe_histogram(KeyName::from(name), Some(unit), help.into());
        self.0
            .register_histogram(&Key::from_static_name(name), &META)
    }
}
