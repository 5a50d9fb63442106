//! `agent-webkit-server audit events|inputs|sessions|transcript`: the audit log from a terminal,
//! straight against the database (no server, no token: whoever can reach the database is the
//! operator).
//!
//! Flags become the same `name=value` pairs the HTTP endpoints take, so both accept the same
//! filters ([`params`]). Without `--limit` every matching row is printed, a page of
//! [`MAX_LIMIT`] at a time. `--follow` keeps polling for new rows
//! after the last one printed; it reads only rows at least [`SETTLE`] old, because a row's
//! timestamp is its transaction's start, and a transaction still committing could otherwise
//! land behind the cursor and never be printed.

use super::format::{self, Columns, Format};
use super::DbArgs;
use agent_webkit_server::audit::params::{self, MAX_LIMIT};
use agent_webkit_server::config::parse_duration;
use agent_webkit_server::store::{audit, Store};
use anyhow::Context;
use clap::{Args, Subcommand};
use std::io::Write;
use std::time::{Duration, SystemTime};

/// How old a row must be before `--follow` prints it.
pub const SETTLE: Duration = Duration::from_secs(2);
/// Polling interval of `--follow`.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Events across sessions, oldest first.
    Events(EventsArgs),
    /// Inbound messages with their principal and outcome (HTTP status), oldest first.
    Inputs(InputsArgs),
    /// Sessions, newest first.
    Sessions(SessionsArgs),
    /// A Claude session's transcript (what the model was given), as JSON Lines.
    Transcript(TranscriptArgs),
}

#[derive(Debug, Args)]
pub struct Output {
    #[command(flatten)]
    pub db: DbArgs,
    /// Output format: an aligned table, JSON Lines, or CSV.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print at most this many rows (default: all).
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    pub out: Output,
    #[arg(long)]
    pub session_id: Option<String>,
    /// Event name, e.g. permission_resolved.
    #[arg(long)]
    pub event: Option<String>,
    #[arg(long)]
    pub tool_name: Option<String>,
    /// Correlation id (also matches tool_use_id).
    #[arg(long)]
    pub correlation_id: Option<String>,
    /// RFC 3339 time or a duration ago (`1h`, `7d`).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// JSON the event's data must contain, e.g. '{"behavior":"deny"}'.
    #[arg(long)]
    pub contains: Option<String>,
    /// Keep printing new events as they are committed.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct InputsArgs {
    #[command(flatten)]
    pub out: Output,
    #[arg(long)]
    pub session_id: Option<String>,
    #[arg(long)]
    pub principal: Option<String>,
    /// Inbound message type, e.g. permission_response.
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// HTTP status the input got (204 accepted, 409 lost a race).
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub correlation_id: Option<String>,
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// Keep printing new inputs as they are recorded.
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(flatten)]
    pub out: Output,
    /// active, dormant or closed.
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub principal: Option<String>,
    /// Created at or after (RFC 3339 or a duration ago).
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long)]
    pub until: Option<String>,
    /// The hosts' lease (as `serve --lease`): an `active` session whose owner's heartbeat is
    /// older is shown as dormant.
    #[arg(long, env = "AGENT_WEBKIT_LEASE", default_value = "10s", value_parser = parse_duration)]
    pub lease: Duration,
}

#[derive(Debug, Args)]
pub struct TranscriptArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The session id.
    pub session_id: String,
    /// One file of the transcript (e.g. a subagent's `<id>/subagents/agent-1.jsonl`);
    /// default: the main transcript. `--all` prints every file, one after the other.
    #[arg(long)]
    pub file: Option<String>,
    #[arg(long, conflicts_with = "file")]
    pub all: bool,
}

fn pairs(list: &[(&str, &Option<String>)]) -> Vec<(String, String)> {
    list.iter()
        .filter_map(|(name, v)| v.as_ref().map(|v| (name.to_string(), v.clone())))
        .collect()
}

pub async fn run(cmd: AuditCommand) -> anyhow::Result<()> {
    let db = match &cmd {
        AuditCommand::Events(a) => &a.out.db,
        AuditCommand::Inputs(a) => &a.out.db,
        AuditCommand::Sessions(a) => &a.out.db,
        AuditCommand::Transcript(a) => &a.db,
    };
    let (url, cluster) = db.open().await?;
    let store = Store::connect(&url, 2)?;
    let stdout = std::io::stdout();
    let result = execute(&store, cmd, &mut stdout.lock()).await;
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    result
}

/// Runs one command against `store`, writing to `out` (tests capture it).
pub async fn execute(store: &Store, cmd: AuditCommand, out: &mut impl Write) -> anyhow::Result<()> {
    let now = SystemTime::now();
    match cmd {
        AuditCommand::Events(a) => {
            let query = pairs(&[
                ("session_id", &a.session_id),
                ("event", &a.event),
                ("tool_name", &a.tool_name),
                ("correlation_id", &a.correlation_id),
                ("since", &a.since),
                ("until", &a.until),
                ("contains", &a.contains),
            ]);
            let mut page = params::events(&query, now)?;
            follow_check(a.follow, &page.filter.until)?;
            if a.follow {
                page.filter.settled = Some(SETTLE);
            }
            let filter = page.filter;
            let fetch = |after, n| audit::events(store, &filter, after, n);
            print_all(fetch, a.out.format, a.out.limit, a.follow, out).await
        }
        AuditCommand::Inputs(a) => {
            let query = pairs(&[
                ("session_id", &a.session_id),
                ("principal", &a.principal),
                ("type", &a.kind),
                ("status", &a.status),
                ("correlation_id", &a.correlation_id),
                ("since", &a.since),
                ("until", &a.until),
            ]);
            let mut page = params::inputs(&query, now)?;
            follow_check(a.follow, &page.filter.until)?;
            if a.follow {
                page.filter.settled = Some(SETTLE);
            }
            let filter = page.filter;
            let fetch = |after, n| audit::inputs(store, &filter, after, n);
            print_all(fetch, a.out.format, a.out.limit, a.follow, out).await
        }
        AuditCommand::Sessions(a) => {
            let query = pairs(&[
                ("status", &a.status),
                ("principal", &a.principal),
                ("since", &a.since),
                ("until", &a.until),
            ]);
            let mut filter = params::sessions(&query, now)?.filter;
            filter.lease = a.lease;
            let fetch = |before, n| audit::sessions(store, &filter, before, n);
            print_all(fetch, a.out.format, a.out.limit, false, out).await
        }
        AuditCommand::Transcript(a) => {
            let id = uuid::Uuid::parse_str(&a.session_id)
                .map_err(|_| anyhow::anyhow!("{:?} is not a session id", a.session_id))?;
            let files = agent_webkit_server::store::transcripts::load(store, id).await?;
            let chosen = files.into_iter().filter(|(file, _)| match &a.file {
                _ if a.all => true,
                Some(name) => file == name,
                None => !file.contains('/'),
            });
            for (_, entries) in chosen {
                for entry in entries {
                    writeln!(out, "{entry}")?;
                }
            }
            Ok(())
        }
    }
}

fn follow_check(follow: bool, until: &Option<SystemTime>) -> anyhow::Result<()> {
    if follow && until.is_some() {
        anyhow::bail!("--follow and --until do not go together");
    }
    Ok(())
}

/// A row that knows its keyset position.
trait Keyed {
    type Key: Copy;
    fn key(&self) -> Self::Key;
}

impl Keyed for audit::EventRow {
    type Key = audit::TimeKey;
    fn key(&self) -> Self::Key {
        audit::EventRow::key(self)
    }
}

impl Keyed for audit::InputRow {
    type Key = audit::TimeKey;
    fn key(&self) -> Self::Key {
        audit::InputRow::key(self)
    }
}

impl Keyed for audit::SessionRow {
    type Key = audit::SessionKey;
    fn key(&self) -> Self::Key {
        audit::SessionRow::key(self)
    }
}

/// Prints every page (and, following, every later row) until `limit` rows.
async fn print_all<R, F, Fut>(
    fetch: F,
    format: Format,
    limit: Option<u64>,
    follow: bool,
    out: &mut impl Write,
) -> anyhow::Result<()>
where
    R: Columns + Keyed,
    F: Fn(Option<R::Key>, i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<R>, agent_webkit_server::store::StoreError>>,
{
    format::header::<R>(format, out)?;
    let mut left = limit.unwrap_or(u64::MAX);
    let mut after = None;
    while left > 0 {
        let n = left.min(MAX_LIMIT as u64) as i64;
        let rows = fetch(after, n).await.context("querying the audit log")?;
        for r in &rows {
            format::row(format, r, out)?;
        }
        out.flush()?;
        left -= rows.len() as u64;
        if let Some(last) = rows.last() {
            after = Some(last.key());
        }
        if (rows.len() as i64) < n {
            if !follow {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}
