//! A private PostgreSQL cluster, run as a child process.
//!
//! Used by the server when no database URL is given (a persistent cluster in
//! `<data-dir>/pg`) and by tests (an ephemeral cluster per test binary).
//!
//! Design:
//! - `postgres` runs in the foreground as our descendant (not `pg_ctl start`,
//!   which daemonizes), so its lifetime is tied to ours.
//! - Crash safety without `unsafe` (no `prctl(PR_SET_PDEATHSIG)`): postgres is
//!   started by a small `sh` watchdog whose stdin is a pipe from us. Only we hold
//!   the write end (std opens pipes close-on-exec), and the kernel closes it
//!   however we die, even on SIGKILL; the watchdog's `read` then returns, it
//!   sends SIGINT (fast shutdown) to postgres, waits, and deletes the data dir if
//!   ephemeral. If postgres exits by itself the watchdog exits too, which is how
//!   we notice a failed startup. Dropping a [`PgCluster`] closes the pipe as well.
//! - The watchdog leads its own process group, so a terminal Ctrl-C does not kill
//!   it before it cleans up (shutdown is always driven by the pipe), and `stop`
//!   can SIGKILL the whole group if a fast shutdown hangs.
//! - PostgreSQL refuses to run as root, so as root initdb and the watchdog (hence
//!   postgres) run as the `postgres` system user via the safe
//!   `CommandExt::{uid, gid}`, and the data dir is chowned to it.
//! - Postgres logs to `<data_dir>/postgres.log` through fds we hand it; we keep
//!   our own fd, so we can quote the log even after an ephemeral dir is deleted.
//! - TCP on 127.0.0.1 only, trust auth; Unix sockets are disabled because temp
//!   paths can exceed the 107-byte socket path limit.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, ChildStdin, Command};
use tokio::time::{sleep, timeout, Instant};
use tokio_postgres::NoTls;

/// `$1`: directory to delete once postgres exits ('' for none); the rest is the
/// postgres command. The pipe reader runs in the background so that `wait` also
/// returns when postgres exits by itself; background jobs get stdin from
/// /dev/null, hence the copy of the pipe on fd 3.
const WATCHDOG: &str = r#"
rmdir=$1; shift
exec 3<&0
"$@" </dev/null 3<&- &
pg=$!
{ read -r line <&3; kill -INT "$pg"; } 2>/dev/null &
rd=$!
exec 3<&-
wait "$pg"; st=$?
kill "$rd" 2>/dev/null
[ -z "$rmdir" ] || rm -rf -- "$rmdir"
exit "$st"
"#;

const INITDB_ARGS: [&str; 6] = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"];
// `--name=value` is postgres' long form of `-c name=value`.
const SETTINGS: [&str; 3] = [
    "--listen_addresses=127.0.0.1",
    "--unix_socket_directories=",
    "--max_connections=300",
];
const NO_FSYNC: [&str; 3] = [
    "--fsync=off",
    "--synchronous_commit=off",
    "--full_page_writes=off",
];
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: u32 = 4;

pub struct ClusterOptions {
    /// Cluster directory; initialized with initdb if it has no `PG_VERSION`.
    /// When we are root, every parent must be traversable by `postgres`; for an
    /// ephemeral cluster the parent should be writable by it too (e.g.
    /// `std::env::temp_dir()`), or a crash leaves an empty directory behind.
    pub data_dir: PathBuf,
    /// Delete `data_dir` once postgres exits (tests).
    pub ephemeral: bool,
    /// `false` trades durability for speed (tests).
    pub fsync: bool,
    /// `None`: pick a free loopback port.
    pub port: Option<u16>,
}

pub struct PgCluster {
    child: Child,
    /// Closing this pipe is what shuts postgres down (on stop, drop or crash).
    stdin: ChildStdin,
    data_dir: PathBuf,
    ephemeral: bool,
    port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("PostgreSQL server binaries not found (initdb, postgres); install them: apt-get install postgresql, or pass --database-url")]
    BinariesNotFound,
    #[error("running as root, but PostgreSQL refuses to run as root and there is no `postgres` user in /etc/passwd to run it as; install the `postgresql` package (it creates one) or pass --database-url")]
    NoPostgresUser,
    #[error("the `postgres` user cannot traverse {0} to reach the data directory (PostgreSQL runs as `postgres` because we are root); choose a data directory elsewhere or make it traversable (chmod o+x)")]
    NotTraversable(PathBuf),
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
    #[error("initdb failed ({0}):\n{1}")]
    Initdb(ExitStatus, String),
    #[error("port {0} on 127.0.0.1 is already in use")]
    PortInUse(u16),
    #[error("postgres exited during startup ({0}); end of its log:\n{1}")]
    Exited(ExitStatus, String),
    #[error("postgres did not accept connections within 30 s; end of its log:\n{0}")]
    Timeout(String),
}

/// `.ctx("doing what")` turns an `io::Error` into an [`EmbeddedError`] that says
/// what failed.
trait Context<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, EmbeddedError>;
}

impl<T> Context<T> for io::Result<T> {
    fn ctx(self, what: impl std::fmt::Display) -> Result<T, EmbeddedError> {
        self.map_err(|e| EmbeddedError::Io(what.to_string(), e))
    }
}

/// The unprivileged account postgres runs as when we are root.
#[derive(Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl PgCluster {
    pub async fn start(opts: ClusterOptions) -> Result<PgCluster, EmbeddedError> {
        let result = Self::try_start(&opts).await;
        if result.is_err() && opts.ephemeral {
            let _ = fs::remove_dir_all(&opts.data_dir);
        }
        result
    }

    async fn try_start(opts: &ClusterOptions) -> Result<PgCluster, EmbeddedError> {
        let bin = find_bin_dir().ok_or(EmbeddedError::BinariesNotFound)?;
        let run_as = run_as()?;
        let mut attempts_left = PORT_ATTEMPTS;
        loop {
            attempts_left -= 1;
            // Inside the loop because a failed ephemeral start deletes the dir.
            let data_dir = prepare_dir(&opts.data_dir, run_as)?;
            if !data_dir.join("PG_VERSION").exists() {
                initdb(&bin, &data_dir, opts.fsync, run_as).await?;
            }
            let port = opts.port.map_or_else(free_port, Ok)?;
            match launch(&bin, &data_dir, opts, port, run_as).await {
                // Someone took the free port between our probe and postgres' bind.
                Err(EmbeddedError::PortInUse(_)) if opts.port.is_none() && attempts_left > 0 => {
                    tracing::debug!(port, "port taken before postgres could bind it; retrying");
                }
                result => return result,
            }
        }
    }

    /// `postgres://postgres@127.0.0.1:<port>/<dbname>` (trust auth; superuser `postgres`).
    /// The database at `url`, or, without one, a persistent cluster in `<data_dir>/pg` started
    /// for the caller (fsync on), which the caller stops. What `serve`, `migrate`, `audit` and
    /// the data tools do when no `--database-url` is given.
    pub async fn url_or_start(
        url: Option<&str>,
        data_dir: &Path,
    ) -> Result<(String, Option<PgCluster>), EmbeddedError> {
        if let Some(url) = url {
            return Ok((url.to_owned(), None));
        }
        fs::create_dir_all(data_dir).ctx(format!("creating {}", data_dir.display()))?;
        let data_dir = fs::canonicalize(data_dir)
            .ctx(format!("resolving {}", data_dir.display()))?
            .join("pg");
        tracing::info!(dir = %data_dir.display(), "no database URL: starting the embedded PostgreSQL");
        let cluster = PgCluster::start(ClusterOptions {
            data_dir,
            ephemeral: false,
            fsync: true,
            port: None,
        })
        .await?;
        let url = cluster.url("postgres");
        Ok((url, Some(cluster)))
    }

    pub fn url(&self, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{dbname}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Pid of the watchdog: postgres and its backends are its descendants (for CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Fast shutdown; waits for postgres to exit (SIGKILL after 10 s).
    pub async fn stop(mut self) -> Result<(), EmbeddedError> {
        shutdown(&mut self.child, self.stdin).await?;
        // The watchdog may have been killed, or lacked the right to remove the
        // dir itself from a parent not writable by `postgres`.
        let dir = &self.data_dir;
        if self.ephemeral && dir.exists() {
            fs::remove_dir_all(dir).ctx(format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Starts the watchdog and postgres on `port`, and waits until it serves queries.
async fn launch(
    bin: &Path,
    data_dir: &Path,
    opts: &ClusterOptions,
    port: u16,
    run_as: Option<RunAs>,
) -> Result<PgCluster, EmbeddedError> {
    let log_path = data_dir.join("postgres.log");
    let log = File::options().create(true).append(true).open(&log_path);
    let log = log.ctx(format!("opening {}", log_path.display()))?;
    // A separate read-only fd: it keeps working after the file is deleted.
    let reader = File::open(&log_path).ctx("reopening log")?;
    let log_start = log.metadata().ctx("reading log size")?.len();

    let rmdir = if opts.ephemeral {
        data_dir
    } else {
        Path::new("")
    };
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", WATCHDOG, "pg-watchdog"]).arg(rmdir);
    cmd.arg(bin.join("postgres")).arg("-D").arg(data_dir);
    cmd.args(["-p", &port.to_string()]).args(SETTINGS);
    if !opts.fsync {
        cmd.args(NO_FSYNC);
    }
    let stderr = log.try_clone().ctx("duplicating log fd")?;
    cmd.stdin(Stdio::piped()).stdout(log).stderr(stderr);
    cmd.process_group(0);
    let mut child = as_user(cmd, data_dir, run_as).spawn().ctx("spawning sh")?;
    let stdin = child.stdin.take().expect("stdin is piped");

    let deadline = Instant::now() + READY_TIMEOUT;
    let failure = loop {
        if let Some(status) = child.try_wait().ctx("waiting for postgres")? {
            let log = log_tail(&reader, log_start);
            break if log.contains("Address already in use") {
                EmbeddedError::PortInUse(port)
            } else {
                EmbeddedError::Exited(status, log)
            };
        }
        match serves_dir(port, data_dir).await {
            Some(true) => {
                tracing::info!(port, dir = %data_dir.display(), "embedded postgres ready");
                let (data_dir, ephemeral) = (data_dir.to_owned(), opts.ephemeral);
                return Ok(PgCluster {
                    child,
                    stdin,
                    data_dir,
                    ephemeral,
                    port,
                });
            }
            // Another server answers on our port, so ours cannot bind it.
            Some(false) => break EmbeddedError::PortInUse(port),
            None if Instant::now() > deadline => {
                break EmbeddedError::Timeout(log_tail(&reader, log_start))
            }
            None => sleep(Duration::from_millis(50)).await,
        }
    };
    shutdown(&mut child, stdin).await?;
    Err(failure)
}

/// `Some(true)` if the server on `port` runs from `data_dir`, `None` if none is ready.
async fn serves_dir(port: u16, data_dir: &Path) -> Option<bool> {
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?connect_timeout=2");
    let (client, conn) = tokio_postgres::connect(&url, NoTls).await.ok()?;
    tokio::spawn(conn);
    let row = client.query_one("SHOW data_directory", &[]).await.ok()?;
    Some(Path::new(row.get::<_, &str>(0)) == data_dir)
}

/// Closes the watchdog's pipe and waits for it; SIGKILLs its process group
/// (watchdog and postmaster; backends then exit on postmaster death) on timeout.
async fn shutdown(child: &mut Child, stdin: ChildStdin) -> Result<(), EmbeddedError> {
    drop(stdin);
    if let Ok(status) = timeout(STOP_TIMEOUT, child.wait()).await {
        return status.map(drop).ctx("waiting for postgres to stop");
    }
    tracing::warn!("embedded postgres did not stop within {STOP_TIMEOUT:?}; killing it");
    if let Some(pgid) = child.id() {
        // Negative pid = process group. dash rejects `kill -KILL -- -pgid`.
        let kill = ["-c", r#"kill -9 "-$1""#, "sh", &pgid.to_string()];
        let _ = Command::new("/bin/sh").args(kill).status().await;
    }
    let status = child.wait().await;
    status.map(drop).ctx("waiting for postgres to die")
}

async fn initdb(
    bin: &Path,
    dir: &Path,
    fsync: bool,
    run_as: Option<RunAs>,
) -> Result<(), EmbeddedError> {
    tracing::info!(dir = %dir.display(), "initializing embedded postgres cluster");
    let mut cmd = std::process::Command::new(bin.join("initdb"));
    cmd.arg("-D").arg(dir).args(INITDB_ARGS);
    cmd.stdin(Stdio::null());
    if !fsync {
        cmd.arg("--no-sync");
    }
    let out = as_user(cmd, dir, run_as).output().await;
    let out = out.ctx("running initdb")?;
    if out.status.success() {
        return Ok(());
    }
    let output = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
    Err(EmbeddedError::Initdb(out.status, output.trim_end().into()))
}

/// Runs `cmd` in `dir` (our cwd may be unreadable to `postgres`, e.g. /root) as `run_as`.
fn as_user(mut cmd: std::process::Command, dir: &Path, run_as: Option<RunAs>) -> Command {
    cmd.current_dir(dir);
    if let Some(u) = run_as {
        cmd.uid(u.uid).gid(u.gid);
    }
    Command::from(cmd)
}

/// Creates the data dir, hands it to `run_as` and returns its canonical path
/// (which is what postgres reports as `data_directory`).
fn prepare_dir(dir: &Path, run_as: Option<RunAs>) -> Result<PathBuf, EmbeddedError> {
    let shown = dir.display();
    // Check before creating anything (no stray dirs under /root), and again
    // after, in case create_dir_all made parents under a strict umask.
    check_traversable(&std::path::absolute(dir).ctx("resolving data dir")?, run_as)?;
    fs::create_dir_all(dir).ctx(format!("creating {shown}"))?;
    let dir = dir.canonicalize().ctx(format!("resolving {shown}"))?;
    check_traversable(&dir, run_as)?;
    if let Some(u) = run_as {
        let chown = std::os::unix::fs::chown(&dir, Some(u.uid), Some(u.gid));
        chown.ctx(format!("chowning {shown} to postgres"))?;
    }
    // postgres insists on 0700 (or 0750); a fresh create_dir_all gives 0755.
    let chmod = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    chmod.ctx(format!("chmod 0700 {shown}"))?;
    Ok(dir)
}

/// Fails if `run_as` lacks search permission on an existing parent of `dir`
/// (plain mode bits: enough to catch the usual 0700 /root).
fn check_traversable(dir: &Path, run_as: Option<RunAs>) -> Result<(), EmbeddedError> {
    let Some(u) = run_as else { return Ok(()) };
    for parent in dir.ancestors().skip(1) {
        let Ok(meta) = fs::metadata(parent) else {
            continue;
        };
        let bit = match (meta.uid() == u.uid, meta.gid() == u.gid) {
            (true, _) => 0o100,
            (false, true) => 0o010,
            _ => 0o001,
        };
        if meta.mode() & bit == 0 {
            return Err(EmbeddedError::NotTraversable(parent.to_owned()));
        }
    }
    Ok(())
}

/// A directory with both `initdb` and `postgres`: from PATH, else the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian keeps them off PATH).
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|d| has_both(d)) {
        return Some(dir);
    }
    let versions = fs::read_dir("/usr/lib/postgresql").ok()?.flatten();
    let versioned = versions.filter_map(|entry| {
        let version: u32 = entry.file_name().to_str()?.parse().ok()?;
        Some((version, entry.path().join("bin")))
    });
    let newest = versioned.filter(|(_, d)| has_both(d)).max_by_key(|v| v.0);
    newest.map(|(_, d)| d)
}

/// `Some(postgres user)` if we are root, `None` if we can run postgres ourselves.
fn run_as() -> Result<Option<RunAs>, EmbeddedError> {
    let status = fs::read_to_string("/proc/self/status").ctx("reading /proc/self/status")?;
    // "Uid:\treal\teffective\tsaved\tfs"
    let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"));
    if uids.and_then(|u| u.split_whitespace().nth(1)) != Some("0") {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").ctx("reading /etc/passwd")?;
    let user = passwd.lines().find_map(|line| {
        // name:password:uid:gid:...
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0] != "postgres" {
            return None;
        }
        let (uid, gid) = (fields[2].parse().ok()?, fields[3].parse().ok()?);
        Some(RunAs { uid, gid })
    });
    user.map(Some).ok_or(EmbeddedError::NoPostgresUser)
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").ctx("finding a free port")?;
    Ok(listener.local_addr().ctx("finding a free port")?.port())
}

/// The last few KiB written to the log since offset `start`.
fn log_tail(log: &File, start: u64) -> String {
    let len = log.metadata().map_or(start, |m| m.len()).max(start);
    let from = start.max(len.saturating_sub(4096));
    let mut buf = vec![0; (len - from) as usize];
    let n = log.read_at(&mut buf, from).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(data_dir: &Path, ephemeral: bool, port: Option<u16>) -> ClusterOptions {
        ClusterOptions {
            data_dir: data_dir.to_owned(),
            ephemeral,
            fsync: !ephemeral,
            port,
        }
    }

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(format!("pg-embedded-test-{}", uuid::Uuid::new_v4()))
    }

    async fn client(cluster: &PgCluster) -> tokio_postgres::Client {
        let url = cluster.url("postgres");
        let (client, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    async fn query_i32(cluster: &PgCluster, sql: &str) -> i32 {
        let row = client(cluster).await.query_one(sql, &[]).await.unwrap();
        row.get(0)
    }

    #[tokio::test]
    async fn ephemeral_cluster_serves_queries_and_is_deleted() {
        let dir = temp_dir();
        let cluster = PgCluster::start(options(&dir, true, None)).await.unwrap();
        assert_eq!(query_i32(&cluster, "SELECT 1").await, 1);
        cluster.stop().await.unwrap();
        assert!(!dir.exists(), "ephemeral data dir should be deleted");
    }

    #[tokio::test]
    async fn persistent_cluster_keeps_data_across_restart() {
        let dir = temp_dir();
        let cluster = PgCluster::start(options(&dir, false, None)).await.unwrap();
        let port = cluster.port();
        let sql = "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)";
        client(&cluster).await.batch_execute(sql).await.unwrap();
        cluster.stop().await.unwrap();

        let restarted = PgCluster::start(options(&dir, false, Some(port))).await;
        let cluster = restarted.unwrap();
        assert_eq!(cluster.port(), port);
        assert_eq!(query_i32(&cluster, "SELECT v FROM kept").await, 42);
        cluster.stop().await.unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
