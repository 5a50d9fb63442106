//! The server under load: one that is already running (`--url`), or one the load tool starts
//! itself — the server binary as a child process on a loopback port, on a throwaway embedded
//! PostgreSQL cluster (`pg_embedded`, fsync on unless `--no-fsync`), reading the fixtures the
//! tool writes. A started server is measured from outside like any other; knowing its pid and
//! its Postgres's lets the tool report their CPU and memory too.

use super::http::Client;
use super::BenchArgs;
use anyhow::{bail, Context};
use pg_embedded::{ClusterOptions, PgCluster};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// Runs the server (`$@`) so that it gets SIGTERM however the load tool ends, even by
/// SIGKILL (then SIGKILL 20 s later if it is still draining): the watchdog waits on a pipe from us that the kernel closes when we die (the
/// same trick as `pg_embedded`'s). It prints the server's pid, then waits for it.
pub(super) const WATCHDOG: &str = r#"
exec 3<&0
"$@" </dev/null 3<&- >>"$BENCH_SERVER_LOG_FILE" 2>&1 &
srv=$!
echo "$srv"
exec 1>&-
{ read -r line <&3; kill -TERM "$srv"; sleep 20; kill -KILL "$srv"; } 2>/dev/null &
rd=$!
exec 3<&-
wait "$srv"; st=$?
kill "$rd" 2>/dev/null
exit "$st"
"#;

pub struct Target {
    pub client: Client,
    /// The directory the server reads scenarios from.
    pub fixtures: PathBuf,
    pub server_pid: Option<u32>,
    /// Root of the Postgres process tree (the embedded cluster's watchdog), when known.
    pub pg_pid: Option<u32>,
    /// For the scenarios that read Postgres directly (lag, limits).
    pub database_url: Option<String>,
    pub ring_size: usize,
    /// The server's RSS before the first capacity step ran on it: capacity counts its RSS per
    /// session from there in every run, since the allocator keeps what earlier steps freed.
    pub capacity_rss_baseline: std::sync::OnceLock<Option<u64>>,
    spawned: Option<Spawned>,
    /// A second host on the same database (the follower scenario): `--follower-url`, or one
    /// more server this tool starts, on first use.
    follower: tokio::sync::OnceCell<Client>,
    follower_url: Option<String>,
    follower_process: std::sync::Mutex<Option<Child>>,
    token: Option<String>,
    server_args: Vec<std::ffi::OsString>,
}

struct Spawned {
    server: Child,
    cluster: PgCluster,
    dir: PathBuf,
}

impl Target {
    pub async fn new(args: &BenchArgs) -> anyhow::Result<Target> {
        match &args.url {
            Some(url) => Target::external(args, url).await,
            None => Target::spawn(args).await,
        }
    }

    async fn external(args: &BenchArgs, url: &str) -> anyhow::Result<Target> {
        let fixtures = args
            .fixtures_dir
            .clone()
            .context("--url needs --fixtures-dir: the directory that server reads (--fixtures)")?;
        let client = Client::new(url, args.token.clone()).await?;
        if !client.ready().await {
            bail!("{url}/readyz does not answer 200");
        }
        Ok(Target {
            client,
            fixtures,
            server_pid: args.server_pid,
            pg_pid: None,
            database_url: args.database_url.clone(),
            ring_size: args.ring_size,
            capacity_rss_baseline: std::sync::OnceLock::new(),
            spawned: None,
            follower: tokio::sync::OnceCell::new(),
            follower_url: args.follower_url.clone(),
            follower_process: std::sync::Mutex::new(None),
            token: args.token.clone(),
            server_args: Vec::new(),
        })
    }

    async fn spawn(args: &BenchArgs) -> anyhow::Result<Target> {
        // One directory per target: a process may start several (the smoke tests do).
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "awk-bench-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let fixtures = args
            .fixtures_dir
            .clone()
            .unwrap_or_else(|| dir.join("fixtures"));
        std::fs::create_dir_all(&fixtures)?;
        let cluster = match start_cluster(&dir.join("pg"), !args.no_fsync).await {
            Ok(cluster) => cluster,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        let database_url = cluster.url("postgres");
        let token = random_token();
        let bin = super::server_bin(args)?;
        let mut server_args: Vec<std::ffi::OsString> = vec![bin.into_os_string(), "serve".into()];
        for arg in [
            "--database-url",
            &database_url,
            "--ring-size",
            &args.ring_size.to_string(),
            "--idle-timeout",
            "1h",
            "--max-queued-inputs",
            "1000",
            // The fan-out scenario subscribes more streams to one session than the default cap.
            "--max-subscribers-per-session",
            &subscriber_cap(args).to_string(),
        ] {
            server_args.push(arg.into());
        }
        server_args.push("--fixtures".into());
        server_args.push(fixtures.clone().into_os_string());
        let (mut server, port) = start_server(&server_args, &token, &dir.join("server.log"))?;
        // The watchdog prints the server's pid first.
        let mut pid_line = String::new();
        let stdout = server.stdout.take().context("watchdog stdout")?;
        tokio::io::BufReader::new(stdout)
            .read_line(&mut pid_line)
            .await?;
        let server_pid: u32 = pid_line
            .trim()
            .parse()
            .context("server pid from the watchdog")?;
        let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(token.clone())).await?;
        let target = Target {
            client,
            fixtures,
            server_pid: Some(server_pid),
            pg_pid: cluster.pid(),
            database_url: Some(database_url),
            ring_size: args.ring_size,
            capacity_rss_baseline: std::sync::OnceLock::new(),
            spawned: Some(Spawned {
                server,
                cluster,
                dir,
            }),
            follower: tokio::sync::OnceCell::new(),
            follower_url: None,
            follower_process: std::sync::Mutex::new(None),
            token: Some(token),
            server_args,
        };
        for _ in 0..600 {
            if target.client.ready().await {
                return Ok(target);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = target.server_log();
        target.stop().await?;
        bail!("the server did not become ready in 30 s; its log:\n{log}")
    }

    fn server_log(&self) -> String {
        let Some(s) = &self.spawned else {
            return String::new();
        };
        let bytes = std::fs::read(s.dir.join("server.log")).unwrap_or_default();
        let start = bytes.len().saturating_sub(4000);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    /// Server RSS in KiB, when its pid is known.
    pub fn server_rss_kib(&self) -> Option<u64> {
        super::procfs::rss_kib(self.server_pid?)
    }

    /// Writes back what earlier scenarios dirtied (`CHECKPOINT`), so that no scenario pays for
    /// the ones before it: a checkpoint that a throughput run triggers spreads its writes over
    /// minutes (`checkpoint_completion_target`), sharing the disk with every WAL flush of
    /// whatever runs next (BENCHMARKS.md, commit→delivery). Returns whether it could (it needs
    /// the database and a role allowed to checkpoint).
    pub async fn settle(&self) -> bool {
        let Some(url) = self.database_url.as_deref() else {
            return false;
        };
        let Ok((db, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
            return false;
        };
        tokio::spawn(conn);
        db.batch_execute("CHECKPOINT").await.is_ok()
    }

    /// The second host (started on first use when this tool started the first).
    pub async fn follower(&self) -> anyhow::Result<&Client> {
        self.follower
            .get_or_try_init(|| async {
                if let Some(url) = &self.follower_url {
                    return Client::new(url, self.token.clone()).await;
                }
                let Some(spawned) = &self.spawned else {
                    bail!("the follower scenario needs --follower-url with --url");
                };
                let log = spawned.dir.join("follower.log");
                let token = self.token.clone().unwrap_or_default();
                let (mut child, port) = start_server(&self.server_args, &token, &log)?;
                let mut pid_line = String::new();
                let stdout = child.stdout.take().context("watchdog stdout")?;
                tokio::io::BufReader::new(stdout)
                    .read_line(&mut pid_line)
                    .await?;
                *self
                    .follower_process
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(child);
                let client = Client::new(&format!("http://127.0.0.1:{port}"), Some(token)).await?;
                for _ in 0..600 {
                    if client.ready().await {
                        return Ok(client);
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                bail!("the second host did not become ready in 30 s")
            })
            .await
    }

    /// Stops what this tool started (SIGTERM, then SIGKILL after 20 s) and removes its files.
    pub async fn stop(self) -> anyhow::Result<()> {
        let follower = self
            .follower_process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(mut child) = follower {
            drop(child.stdin.take());
            let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        }
        let Some(mut s) = self.spawned else {
            return Ok(());
        };
        // Closing the watchdog's pipe makes it send SIGTERM (a graceful shutdown).
        drop(s.server.stdin.take());
        if tokio::time::timeout(Duration::from_secs(20), s.server.wait())
            .await
            .is_err()
        {
            if let Some(pid) = self.server_pid {
                let kill = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
                let _ = kill.await;
            }
            let _ = s.server.wait().await;
        }
        s.cluster.stop().await?;
        let _ = std::fs::remove_dir_all(&s.dir);
        Ok(())
    }
}

/// Starts the throwaway cluster with `track_commit_timestamp = on`, so the lag scenario can
/// read when each event's transaction committed (and `track_wal_io_timing`, to report how long
/// the WAL flushes took meanwhile). That setting needs a restart: the cluster is
/// first started to set it (`ALTER SYSTEM`), then restarted from the same, ephemeral, dir.
async fn start_cluster(dir: &std::path::Path, fsync: bool) -> anyhow::Result<PgCluster> {
    let options = |ephemeral| ClusterOptions {
        data_dir: dir.to_owned(),
        ephemeral,
        fsync,
        port: None,
    };
    let first = PgCluster::start(options(false))
        .await
        .context("starting the throwaway PostgreSQL cluster")?;
    let (db, conn) = tokio_postgres::connect(&first.url("postgres"), tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    // track_wal_io_timing: the lag scenario reports the WAL fsync time of its own run.
    // One statement each: ALTER SYSTEM refuses to run in a (multi-statement) transaction.
    for setting in ["track_commit_timestamp", "track_wal_io_timing"] {
        db.batch_execute(&format!("ALTER SYSTEM SET {setting} = on"))
            .await?;
    }
    drop(db);
    first.stop().await?;
    Ok(PgCluster::start(options(true)).await?)
}

/// Starts one server (`args`: the binary, then its arguments) under the watchdog, on a free
/// loopback port; its pid is the first line of the child's stdout.
fn start_server(
    args: &[std::ffi::OsString],
    token: &str,
    log: &std::path::Path,
) -> anyhow::Result<(Child, u16)> {
    let port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?.port()
    };
    let child = Command::new("/bin/sh")
        .args(["-c", WATCHDOG, "bench-watchdog"])
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("AGENT_WEBKIT_AUTH_TOKEN", token)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
        )
        .env("BENCH_SERVER_LOG_FILE", log)
        .env_remove("AGENT_WEBKIT_NO_AUTH")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {:?}", args.first()))?;
    Ok((child, port))
}

pub(super) fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams per session the started server allows: the most any scenario opens.
fn subscriber_cap(args: &BenchArgs) -> usize {
    let throughput = args.subscribers.iter().copied().max().unwrap_or(1);
    args.fanout_subscribers.max(throughput).max(64)
}
