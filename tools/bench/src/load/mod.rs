//! `agent-webkit-bench load`: a black-box load generator over HTTP + SSE.
//!
//! It drives a server it starts itself (the server binary on a throwaway embedded Postgres,
//! fsync on) or one already running (`--url`), with replay scenarios it writes to the fixtures
//! directory that server reads, and prints a table and one JSON line. Every scenario checks
//! that each subscriber received every event exactly once; the figures are only reported
//! beside those counts.
//!
//! The client is built not to be the bottleneck: raw sockets, incremental chunked + SSE
//! parsing without strings or JSON ([`sse`]), all connections on the one multi-threaded
//! runtime of `main`, and its own CPU time reported next to each figure ([`cpu`]).
//!
//! Scenarios: [`limits`], [`memory`], [`throughput`], [`fanout`], [`resume`], [`lag`],
//! [`takeover`] (which starts its own [`fleet`] of hosts behind HAProxy) and [`capacity`] (a
//! search over many sessions at model pace; minutes long, so not run by default).

pub mod capacity;
pub mod cpu;
pub mod fanout;
pub mod fixtures;
pub mod fleet;
pub mod http;
pub mod lag;
pub mod limits;
pub mod memory;
pub mod procfs;
pub mod reconnect;
pub mod report;
pub mod resume;
pub mod sse;
pub mod stats;
pub mod subscriber;
pub mod takeover;
pub mod target;
pub mod throughput;

use clap::{Args, ValueEnum};
use report::{Counts, Metric, Report};
use std::path::PathBuf;
use std::time::Duration;
use target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioKind {
    Limits,
    Memory,
    Throughput,
    Fanout,
    Resume,
    Lag,
    /// `lag` with the streams on a second host, which follows the sessions it does not own.
    Follower,
    Takeover,
    /// How many sessions stream at a model's pace at once (a search; not in the default list).
    Capacity,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Server to load (e.g. http://127.0.0.1:8080). Without it, the tool starts the server
    /// binary itself on a throwaway embedded PostgreSQL and stops both at the end.
    #[arg(long)]
    pub url: Option<String>,

    /// Bearer token for --url (the environment variable keeps it out of `ps`).
    #[arg(long, env = "AGENT_WEBKIT_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Directory the server reads scenarios from (its --fixtures). Required with --url;
    /// otherwise a temporary directory.
    #[arg(long)]
    pub fixtures_dir: Option<PathBuf>,

    /// With --url: the server's pid, for its CPU and RSS (memory scenarios need it).
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// With --url: the server's database, for the lag and limits scenarios.
    #[arg(long, env = "BENCH_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Server binary to start (default: `agent-webkit-server` beside this executable, where
    /// `cargo build --release` puts both).
    #[arg(long)]
    pub server_bin: Option<PathBuf>,

    /// Start the throwaway Postgres with fsync off (for comparison only: not durable).
    #[arg(long)]
    pub no_fsync: bool,

    /// Scenarios to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "limits,memory,throughput,fanout,resume,lag,follower,takeover"
    )]
    pub scenarios: Vec<ScenarioKind>,

    /// Runs of each scenario; the table shows the median and min–max.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,

    /// Bytes of text per assistant message.
    #[arg(long, default_value_t = 200)]
    pub message_bytes: usize,

    /// Throughput: sessions.
    #[arg(long, default_value_t = 10)]
    pub sessions: usize,

    /// Throughput: subscribers per session; several values run several variants.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub subscribers: Vec<usize>,

    /// Throughput: turns per session.
    #[arg(long, default_value_t = 10)]
    pub turns: usize,

    /// Throughput: assistant messages per turn.
    #[arg(long, default_value_t = 500)]
    pub messages: usize,

    /// Fan-out: subscribers of the one session.
    #[arg(long, default_value_t = 100)]
    pub fanout_subscribers: usize,

    /// Fan-out: events.
    #[arg(long, default_value_t = 400)]
    pub fanout_events: usize,

    /// Fan-out: events per second (paced by the agent).
    #[arg(long, default_value_t = 200.0)]
    pub fanout_rate: f64,

    /// Resume: events in the session that is replayed.
    #[arg(long, default_value_t = 100_000)]
    pub resume_events: usize,

    /// Lag: total events per second over all lag sessions.
    #[arg(long, default_value_t = 5000.0)]
    pub lag_rate: f64,

    /// Lag: sessions sharing that rate (one subscriber each).
    #[arg(long, default_value_t = 10)]
    pub lag_sessions: usize,

    /// Lag: seconds of load.
    #[arg(long, default_value_t = 5.0)]
    pub lag_seconds: f64,

    /// Follower: events per second over all sessions, streamed from a second host.
    #[arg(long, default_value_t = 5000.0)]
    pub follower_rate: f64,

    /// With --url: a second host on the same database, for the follower scenario.
    #[arg(long)]
    pub follower_url: Option<String>,

    /// Takeover: sessions, spread by the balancer over the fleet's three hosts.
    #[arg(long, default_value_t = 10)]
    pub takeover_sessions: usize,

    /// Takeover: events per second of each session's turns.
    #[arg(long, default_value_t = 200.0)]
    pub takeover_rate: f64,

    /// Takeover: turns per session (sent at once; the host is killed during the first).
    #[arg(long, default_value_t = 3)]
    pub takeover_turns: usize,

    /// Takeover: seconds per turn.
    #[arg(long, default_value_t = 2.0)]
    pub takeover_turn_seconds: f64,

    /// Memory: sessions filled to a full ring.
    #[arg(long, default_value_t = 200)]
    pub memory_sessions: usize,

    /// Memory: idle SSE streams.
    #[arg(long, default_value_t = 1000)]
    pub idle_streams: usize,

    /// Capacity: message_deltas per second per session (R).
    #[arg(long, default_value_t = 40.0)]
    pub capacity_rate: f64,

    /// Capacity: bytes of text per message_delta.
    #[arg(long, default_value_t = 60)]
    pub capacity_delta_bytes: usize,

    /// Capacity: message_deltas per turn (then its message_complete and result).
    #[arg(long, default_value_t = 100)]
    pub capacity_turn_deltas: usize,

    /// Capacity: seconds of pause before each turn (the user's think time).
    #[arg(long, default_value_t = 0.5)]
    pub capacity_pause: f64,

    /// Capacity: seconds of full load per step (every session streaming).
    #[arg(long, default_value_t = 10.0)]
    pub capacity_seconds: f64,

    /// Capacity: sessions of the first step; doubled until a step does not hold.
    #[arg(long, default_value_t = 50)]
    pub capacity_start: usize,

    /// Capacity: most sessions tried.
    #[arg(long, default_value_t = 3200)]
    pub capacity_max_sessions: usize,

    /// Capacity: bisection steps between the largest S that held and the smallest that did not.
    #[arg(long, default_value_t = 3)]
    pub capacity_bisect_steps: usize,

    /// Capacity: most commit->delivery p99 (ms) a step may have and hold.
    #[arg(long, default_value_t = 50.0)]
    pub capacity_p99_ms: f64,

    /// Capacity: least fraction of the rate each session's deltas must arrive at.
    #[arg(long, default_value_t = 0.9)]
    pub capacity_min_rate: f64,

    /// Ring size of the started server (with --url: that server's --ring-size).
    #[arg(long, default_value_t = 1000)]
    pub ring_size: usize,

    /// Limits: rows per COPY.
    #[arg(long, default_value_t = 200_000)]
    pub copy_rows: usize,

    /// Print only the JSON line.
    #[arg(long)]
    pub json: bool,
}

/// What one run of a scenario measured.
pub struct Measured {
    pub metrics: Vec<Metric>,
    pub counts: Option<Counts>,
}

/// Upper bound of one scenario run: the tool always stops by itself.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(600);

/// `agent-webkit-bench load`.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = Target::new(&args).await?;
    let result = run_on(&target, &args).await;
    target.stop().await?;
    let report = result?;
    if !args.json {
        println!("{}", report.table());
    }
    println!("{}", report.json(config_json(&args)));
    anyhow::ensure!(
        report.counts.iter().all(|(_, c)| c.exact()),
        "some subscriber did not receive every event exactly once"
    );
    Ok(())
}

/// Runs the chosen scenarios against `target` (the smoke tests call this directly).
pub async fn run_on(target: &Target, args: &BenchArgs) -> anyhow::Result<Report> {
    let mut report = Report::default();
    let mut keep = Vec::new();
    let mut unsettled = false;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report
        .notes
        .push(format!("load average at start: {}", load.trim()));
    'scenarios: for &kind in &args.scenarios {
        for run in 0..args.runs.max(1) {
            let variants = variants(kind, args)?;
            for v in variants {
                if !args.json {
                    eprintln!("bench: {kind:?} run {}/{}", run + 1, args.runs);
                }
                if !target.settle().await && !unsettled {
                    unsettled = true;
                    report.notes.push(
                        "no CHECKPOINT between scenarios (no database or not allowed): \
                         a scenario may pay for the write-back of the ones before it"
                            .into(),
                    );
                }
                let bound = timeout(&v);
                let fut = run_one(target, v, &mut keep, &mut report.notes);
                let measured = tokio::time::timeout(bound, fut)
                    .await
                    .map_err(|_| anyhow::anyhow!("{kind:?} did not finish in {bound:?}"))?;
                match measured {
                    Ok(m) => {
                        m.metrics.into_iter().for_each(|x| report.push(x));
                        if let Some(c) = m.counts {
                            report.count(&format!("{kind:?}").to_lowercase(), c);
                        }
                    }
                    Err(e) if is_missing_input(&e) => {
                        report.notes.push(format!("{kind:?} skipped: {e}"));
                        continue 'scenarios;
                    }
                    Err(e) => return Err(e.context(format!("{kind:?}"))),
                }
            }
        }
    }
    for id in keep {
        target.client.delete(&id).await?;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    report
        .notes
        .push(format!("load average at end: {}", load.trim()));
    Ok(report)
}

/// A scenario needs something the target does not have (its pid, its database): it is skipped
/// with this note rather than failing the run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Missing(pub &'static str);

fn is_missing_input(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Missing>().is_some()
}

enum Variant {
    Limits(limits::Params),
    Memory(memory::Params),
    Throughput(throughput::Params),
    Fanout(fanout::Params),
    Resume(resume::Params),
    Lag(lag::Params),
    Takeover(takeover::Params),
    Capacity(capacity::Params),
}

/// Upper bound of one run of `v`: the tool always stops by itself.
fn timeout(v: &Variant) -> Duration {
    match v {
        // A search of many steps, each bounded (see `capacity::Params::timeout`).
        Variant::Capacity(p) => p.timeout(),
        _ => SCENARIO_TIMEOUT,
    }
}

fn variants(kind: ScenarioKind, a: &BenchArgs) -> anyhow::Result<Vec<Variant>> {
    let bytes = a.message_bytes;
    Ok(match kind {
        ScenarioKind::Limits => vec![Variant::Limits(limits::Params {
            copy_rows: a.copy_rows,
            commits: 2000,
            bytes,
        })],
        ScenarioKind::Memory => vec![Variant::Memory(memory::Params {
            sessions: a.memory_sessions,
            idle_streams: a.idle_streams,
            bytes,
        })],
        ScenarioKind::Throughput => a
            .subscribers
            .iter()
            .map(|&k| {
                Variant::Throughput(throughput::Params {
                    sessions: a.sessions,
                    subscribers: k,
                    turns: a.turns,
                    messages: a.messages,
                    bytes,
                })
            })
            .collect(),
        ScenarioKind::Fanout => vec![Variant::Fanout(fanout::Params {
            subscribers: a.fanout_subscribers,
            events: a.fanout_events,
            rate: a.fanout_rate,
            bytes,
        })],
        ScenarioKind::Resume => vec![Variant::Resume(resume::Params {
            events: a.resume_events,
            bytes,
        })],
        ScenarioKind::Lag => vec![Variant::Lag(lag::Params {
            sessions: a.lag_sessions,
            rate: a.lag_rate,
            seconds: a.lag_seconds,
            bytes,
            follower: false,
        })],
        ScenarioKind::Follower => vec![Variant::Lag(lag::Params {
            sessions: a.lag_sessions,
            rate: a.follower_rate,
            seconds: a.lag_seconds,
            bytes,
            follower: true,
        })],
        ScenarioKind::Takeover => vec![Variant::Takeover(takeover::Params {
            sessions: a.takeover_sessions,
            turns: a.takeover_turns,
            rate: a.takeover_rate,
            turn_seconds: a.takeover_turn_seconds,
            bytes,
            server_bin: match a.url {
                Some(_) => None,
                None => Some(server_bin(a)?),
            },
        })],
        ScenarioKind::Capacity => vec![Variant::Capacity(capacity::Params {
            rate: a.capacity_rate,
            delta_bytes: a.capacity_delta_bytes,
            turn_deltas: a.capacity_turn_deltas,
            pause: a.capacity_pause,
            seconds: a.capacity_seconds,
            start: a.capacity_start,
            max_sessions: a.capacity_max_sessions,
            bisect_steps: a.capacity_bisect_steps,
            p99_ms: a.capacity_p99_ms,
            min_rate: a.capacity_min_rate,
        })],
    })
}

/// The server binary to start: --server-bin, or `agent-webkit-server` beside this tool.
pub fn server_bin(args: &BenchArgs) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.server_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("agent-webkit-server");
    anyhow::ensure!(
        beside.is_file(),
        "no server binary at {} (build it with `cargo build --release`, or pass --server-bin)",
        beside.display()
    );
    Ok(beside)
}

async fn run_one(
    target: &Target,
    v: Variant,
    keep: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Measured> {
    match v {
        Variant::Limits(p) => limits::run(target, p).await,
        Variant::Memory(p) => memory::run(target, p, keep).await,
        Variant::Throughput(p) => throughput::run(target, p).await,
        Variant::Fanout(p) => fanout::run(target, p).await,
        Variant::Resume(p) => resume::run(target, p).await,
        Variant::Lag(p) => lag::run(target, p).await,
        Variant::Takeover(p) => takeover::run(target, p).await,
        Variant::Capacity(p) => capacity::run(target, p, notes).await,
    }
}

fn config_json(a: &BenchArgs) -> serde_json::Value {
    serde_json::json!({
        "target": a.url.as_deref().unwrap_or("spawned"),
        "fsync": !a.no_fsync,
        "runs": a.runs,
        "message_bytes": a.message_bytes,
        "sessions": a.sessions,
        "subscribers": a.subscribers,
        "turns": a.turns,
        "messages": a.messages,
        "fanout": {"subscribers": a.fanout_subscribers, "events": a.fanout_events, "rate": a.fanout_rate},
        "resume_events": a.resume_events,
        "lag": {"rate": a.lag_rate, "sessions": a.lag_sessions, "seconds": a.lag_seconds},
        "follower_rate": a.follower_rate,
        "memory": {"sessions": a.memory_sessions, "idle_streams": a.idle_streams},
        "takeover": {"sessions": a.takeover_sessions, "rate": a.takeover_rate,
            "turns": a.takeover_turns, "turn_seconds": a.takeover_turn_seconds},
        "capacity": {"rate": a.capacity_rate, "delta_bytes": a.capacity_delta_bytes,
            "turn_deltas": a.capacity_turn_deltas, "pause": a.capacity_pause,
            "seconds": a.capacity_seconds, "start": a.capacity_start,
            "max_sessions": a.capacity_max_sessions, "bisect_steps": a.capacity_bisect_steps,
            "p99_ms": a.capacity_p99_ms, "min_rate": a.capacity_min_rate},
        "ring_size": a.ring_size,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    })
}
