//! The raw limits of this machine, measured next to the figures so ratios are same-day:
//! - `pg_test_fsync`'s fdatasync time for one 8 kB write (the floor of one durable commit),
//!   when the binary is found;
//! - Postgres COPY of small JSON rows shaped like `events` (the ingest ceiling), `json` and
//!   `jsonb` (the design asks what `jsonb` costs on the hot path), and into a copy of the real
//!   `events` table with its audit indexes (the ceiling for this schema), with the rows it
//!   stores per Postgres CPU-second, which the throughput scenario's events per Postgres
//!   CPU-second are compared with (Postgres CPU per event is what decides how many hosts one
//!   database carries);
//! - single-row INSERT commits from one connection (what group commit saves us from).

use super::procfs;
use super::report::Metric;
use super::target::Target;
use super::Measured;
use bytes::Bytes;
use futures::SinkExt;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub copy_rows: usize,
    pub commits: usize,
    pub bytes: usize,
}

pub async fn run(target: &Target, p: Params) -> anyhow::Result<Measured> {
    let url = target
        .database_url
        .as_deref()
        .ok_or(super::Missing("the limits scenario needs --database-url"))?;
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let mut metrics = Vec::new();
    if let Some(us) = fdatasync_us().await {
        metrics.push(Metric::new(
            "limit_fdatasync_us",
            "pg_test_fsync: fdatasync 8 kB",
            "us",
            us,
        ));
    }
    for kind in ["json", "jsonb"] {
        let table = format!("bench_copy_{kind}");
        let ddl = format!(
            "CREATE TABLE {table} (session_id uuid NOT NULL, seq int8 NOT NULL, \
             event text NOT NULL, data {kind} NOT NULL, \
             created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (session_id, seq))"
        );
        let (rate, _) = copy_rate(target, &db, &table, &ddl, p).await?;
        metrics.push(Metric::new(
            format!("limit_copy_{kind}_rows_per_s"),
            format!("COPY of small {kind} rows"),
            "rows/s",
            rate,
        ));
    }
    // The same rows into a copy of the real table, with every index the audit queries need:
    // the ceiling for this schema, which the writer's `INSERT … unnest` is compared with.
    if has_events_table(&db).await? {
        let table = "bench_copy_events";
        let ddl = format!("CREATE TABLE {table} (LIKE events INCLUDING ALL)");
        let (rate, cpu) = copy_rate(target, &db, table, &ddl, p).await?;
        metrics.push(Metric::new(
            "limit_copy_events_rows_per_s",
            "COPY into the events schema (all its indexes)",
            "rows/s",
            rate,
        ));
        if let Some(cpu_s) = cpu.all {
            metrics.push(Metric::new(
                LIMIT_COPY_PER_PG_CPU_S,
                "COPY into the events schema per Postgres CPU-s",
                "rows/cpu-s",
                p.copy_rows as f64 / cpu_s,
            ));
        }
        if let Some(cpu_s) = cpu.backend {
            metrics.push(Metric::new(
                "limit_copy_events_rows_per_backend_cpu_s",
                "same, per CPU-s of its backend alone",
                "rows/cpu-s",
                p.copy_rows as f64 / cpu_s,
            ));
        }
    }
    let ms = commit_ms(&db, p.commits).await?;
    metrics.push(Metric::new(
        "limit_commit_ms",
        "single-row INSERT commit",
        "ms",
        ms,
    ));
    metrics.push(Metric::new(
        "limit_commits_per_s",
        "single-row commits, 1 connection",
        "commits/s",
        1e3 / ms,
    ));
    Ok(Measured {
        metrics,
        counts: None,
    })
}

/// One `message_complete` payload as the throughput scenario produces it.
fn sample_data(bytes: usize) -> String {
    let text: String = "The quick brown fox jumps over the lazy dog. "
        .chars()
        .cycle()
        .take(bytes)
        .collect();
    serde_json::json!({"message_id": "m_0_0", "message": {"id": "m_0_0", "role": "assistant",
        "content": [{"type": "text", "text": text}], "model": "bench", "stop_reason": "end_turn"}})
    .to_string()
}

async fn has_events_table(db: &tokio_postgres::Client) -> anyhow::Result<bool> {
    let row = db
        .query_one("SELECT to_regclass('events') IS NOT NULL", &[])
        .await?;
    Ok(row.get(0))
}

/// Key of the COPY's rows per Postgres CPU-second (every Postgres process, as the throughput
/// scenario counts its events per Postgres CPU-second).
pub const LIMIT_COPY_PER_PG_CPU_S: &str = "limit_copy_events_rows_per_pg_cpu_s";

/// Postgres CPU seconds a COPY took, where they can be read from `/proc`.
struct CopyCpu {
    /// Every process of the cluster (known when the tool started it): the backend, and the
    /// WAL writer and checkpointer that its rows keep busy.
    all: Option<f64>,
    /// The COPY's backend alone (when it runs on this machine).
    backend: Option<f64>,
}

/// The pid of `db`'s backend, if it is a local Postgres process (its CPU is then readable).
async fn local_backend(db: &tokio_postgres::Client) -> Option<String> {
    let pid: i32 = db
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    comm.starts_with("postgres").then(|| pid.to_string())
}

async fn copy_rate(
    target: &Target,
    db: &tokio_postgres::Client,
    table: &str,
    ddl: &str,
    p: Params,
) -> anyhow::Result<(f64, CopyCpu)> {
    db.batch_execute(&format!("DROP TABLE IF EXISTS {table}; {ddl}"))
        .await?;
    let data = sample_data(p.bytes);
    let sessions: Vec<uuid::Uuid> = (0..10).map(|_| uuid::Uuid::new_v4()).collect();
    let mut chunks = Vec::new();
    let mut buf = String::with_capacity(1 << 20);
    for i in 0..p.copy_rows {
        let s = sessions[i % sessions.len()];
        buf.push_str(&format!(
            "{s}\t{}\tmessage_complete\t{data}\n",
            i / sessions.len() + 1
        ));
        if buf.len() >= 1 << 20 {
            chunks.push(Bytes::from(std::mem::take(&mut buf)));
        }
    }
    chunks.push(Bytes::from(buf));
    let backend = local_backend(db).await;
    let cpu = || CopyCpu {
        all: target.pg_pid.map(procfs::tree_cpu_seconds),
        backend: backend.as_deref().and_then(procfs::cpu_seconds),
    };
    let before = cpu();
    let t0 = Instant::now();
    let sink = db
        .copy_in(&format!(
            "COPY {table} (session_id, seq, event, data) FROM STDIN"
        ))
        .await?;
    futures::pin_mut!(sink);
    for chunk in chunks {
        sink.send(chunk).await?;
    }
    sink.finish().await?;
    let rate = p.copy_rows as f64 / t0.elapsed().as_secs_f64();
    let after = cpu();
    let spent = |a: Option<f64>, b: Option<f64>| Some(b? - a?).filter(|s| *s > 0.0);
    let cpu = CopyCpu {
        all: spent(before.all, after.all),
        backend: spent(before.backend, after.backend),
    };
    db.batch_execute(&format!("DROP TABLE {table}")).await?;
    Ok((rate, cpu))
}

async fn commit_ms(db: &tokio_postgres::Client, n: usize) -> anyhow::Result<f64> {
    db.batch_execute(
        "DROP TABLE IF EXISTS bench_commit; CREATE TABLE bench_commit \
         (session_id uuid, seq int8, data json, PRIMARY KEY (session_id, seq))",
    )
    .await?;
    let stmt = db
        .prepare("INSERT INTO bench_commit VALUES ($1, $2, $3::text::json)")
        .await?;
    let (sid, data) = (uuid::Uuid::new_v4(), sample_data(200));
    let t0 = Instant::now();
    for i in 0..n as i64 {
        db.execute(&stmt, &[&sid, &i, &data]).await?;
    }
    let ms = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
    db.batch_execute("DROP TABLE bench_commit").await?;
    Ok(ms)
}

/// Runs `pg_test_fsync -s 1` in the temp dir (the same filesystem as the throwaway cluster)
/// and returns its fdatasync µs per 8 kB write.
async fn fdatasync_us() -> Option<f64> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/pg_test_fsync"))
        .filter(|p| p.is_file())
        .max()?;
    let file = std::env::temp_dir().join(format!("awk-bench-fsync-{}", std::process::id()));
    let out = tokio::process::Command::new(bin)
        .args(["-s", "1", "-f"])
        .arg(&file)
        .output()
        .await
        .ok()?;
    let _ = std::fs::remove_file(&file);
    parse_fdatasync(&String::from_utf8_lossy(&out.stdout))
}

/// The first `fdatasync … ops/sec … usecs/op` line (the one-8kB-write section).
fn parse_fdatasync(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("fdatasync"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == "usecs/op")?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_pg_test_fsync_output() {
        let out = "Compare file sync methods using one 8kB write:\n\
                   (in wal_sync_method preference order, except fdatasync is Linux's default)\n\
                   \x20       open_datasync                      7931.118 ops/sec     126 usecs/op\n\
                   \x20       fdatasync                          7960.281 ops/sec     126 usecs/op\n";
        assert_eq!(super::parse_fdatasync(out), Some(126.0));
    }
}
