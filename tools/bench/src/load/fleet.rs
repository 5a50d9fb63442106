//! A small fleet for the takeover scenario: three hosts of the server binary on loopback ports,
//! sharing the tool's throwaway Postgres and fixtures directory, behind HAProxy configured from
//! `ops/haproxy.cfg` (the file users deploy, so the measured takeover includes its retry and
//! health-check settings).
//!
//! Every process runs under the same watchdog shell as the single target server
//! ([`super::target::WATCHDOG`]): it gets SIGTERM when the tool's end of a pipe closes, which
//! the kernel does however the tool ends, so no host or proxy outlives the tool.

use super::http::Client;
use super::target::{random_token, WATCHDOG};
use super::Missing;
use anyhow::{bail, Context};
use futures::future::join_all;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// `ops/haproxy.cfg` names three servers.
const HOSTS: usize = 3;
const HAPROXY_CFG: &str = include_str!("../../../../ops/haproxy.cfg");
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every host runs with.
pub struct HostConfig<'a> {
    pub bin: &'a Path,
    pub database_url: &'a str,
    pub fixtures: &'a Path,
    pub ring_size: usize,
}

/// A process under the watchdog.
struct Watched {
    name: String,
    pid: u32,
    watchdog: Child,
}

pub struct Fleet {
    /// Talks to the hosts through HAProxy, as a client would.
    pub lb: Client,
    hosts: Vec<Watched>,
    balancer: Option<Watched>,
    dir: PathBuf,
}

impl Fleet {
    /// Starts the hosts, waits until each is ready, then HAProxy in front of them. Without
    /// `haproxy` installed this is a [`Missing`] input: the scenario is skipped with a note.
    pub async fn start(config: HostConfig<'_>) -> anyhow::Result<Fleet> {
        let haproxy = find_haproxy().ok_or(Missing(
            "takeover needs haproxy (on PATH or in /usr/sbin) for its load balancer",
        ))?;
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "awk-bench-fleet-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        let token = random_token();
        let lb_port = free_port()?;
        let mut fleet = Fleet {
            lb: Client::new(&format!("http://127.0.0.1:{lb_port}"), Some(token.clone())).await?,
            hosts: Vec::new(),
            balancer: None,
            dir,
        };
        let mut ports = Vec::new();
        for i in 1..=HOSTS {
            let port = free_port()?;
            let name = format!("bench-h{i}");
            let cmd = host_command(&config, &name, port, &token);
            fleet.hosts.push(spawn(cmd, &name, &fleet.dir).await?);
            ports.push(port);
        }
        for (port, host) in ports.iter().zip(&fleet.hosts) {
            let url = format!("http://127.0.0.1:{port}");
            let client = Client::new(&url, Some(token.clone())).await?;
            if !wait_ready(&client).await {
                bail!(
                    "{} did not become ready: {}",
                    host.name,
                    fleet.log(&host.name)
                );
            }
        }
        let cfg = fleet.dir.join("haproxy.cfg");
        std::fs::write(&cfg, HAPROXY_CFG)?;
        let mut cmd = watchdog_command(&haproxy);
        cmd.arg("-f").arg(&cfg).arg("-db");
        cmd.env("AWK_LISTEN", format!("127.0.0.1:{lb_port}"));
        for (i, port) in ports.iter().enumerate() {
            cmd.env(format!("AWK_HOST{}", i + 1), format!("127.0.0.1:{port}"));
        }
        fleet.balancer = Some(spawn(cmd, "haproxy", &fleet.dir).await?);
        if !wait_ready(&fleet.lb).await {
            bail!("haproxy did not become ready: {}", fleet.log("haproxy"));
        }
        Ok(fleet)
    }

    /// SIGKILLs host `name` (no drain, no release: a crash) and returns when it was sent.
    pub fn kill(&self, name: &str) -> anyhow::Result<Instant> {
        let host = self
            .hosts
            .iter()
            .find(|h| h.name == name)
            .with_context(|| format!("no host {name} in the fleet"))?;
        let pid = rustix::process::Pid::from_raw(host.pid as i32).context("host pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::KILL)
            .with_context(|| format!("SIGKILL of {name}"))?;
        Ok(Instant::now())
    }

    /// Stops the balancer, then the hosts (SIGTERM: they drain; SIGKILL 20 s later).
    pub async fn stop(mut self) {
        if let Some(b) = self.balancer.take() {
            b.stop().await;
        }
        join_all(
            std::mem::take(&mut self.hosts)
                .into_iter()
                .map(Watched::stop),
        )
        .await;
    }

    /// The end of a process's log, for errors.
    fn log(&self, name: &str) -> String {
        let bytes = std::fs::read(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let start = bytes.len().saturating_sub(4000);
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }
}

impl Drop for Fleet {
    /// Dropping the watchdogs' pipes (with the children) already stops the processes; this
    /// removes their logs and the proxy's config.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Watched {
    async fn stop(mut self) {
        // Closing the watchdog's pipe makes it send SIGTERM, and SIGKILL 20 s later.
        drop(self.watchdog.stdin.take());
        let waited = tokio::time::timeout(Duration::from_secs(25), self.watchdog.wait()).await;
        if waited.is_err() {
            if let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            let _ = self.watchdog.kill().await;
        }
    }
}

fn watchdog_command(program: &Path) -> Command {
    let mut cmd = Command::new("/bin/sh");
    cmd.args(["-c", WATCHDOG, "bench-watchdog"]).arg(program);
    cmd
}

fn host_command(config: &HostConfig<'_>, name: &str, port: u16, token: &str) -> Command {
    let mut cmd = watchdog_command(config.bin);
    cmd.arg("serve")
        .args(["--database-url", config.database_url])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--host-name", name])
        .arg("--fixtures")
        .arg(config.fixtures)
        .args(["--ring-size", &config.ring_size.to_string()])
        .args(["--idle-timeout", "1h", "--max-queued-inputs", "1000"])
        // Four pools share the cluster with the single target server's.
        .args(["--db-pool-size", "8", "--drain-timeout", "5s"])
        .env("AGENT_WEBKIT_AUTH_TOKEN", token)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVER_LOG").unwrap_or("warn".into()),
        )
        .env_remove("AGENT_WEBKIT_NO_AUTH");
    cmd
}

/// Starts `cmd` (a watchdog command) with its output in `<dir>/<name>.log`; the watchdog
/// prints the pid of the process it runs first.
async fn spawn(mut cmd: Command, name: &str, dir: &Path) -> anyhow::Result<Watched> {
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let mut watchdog = cmd
        .env("BENCH_SERVER_LOG_FILE", &log_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let stdout = watchdog.stdout.take().context("watchdog stdout")?;
    let mut line = String::new();
    let mut stdout = tokio::io::BufReader::new(stdout);
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .with_context(|| format!("{name}: no pid from the watchdog"))??;
    let pid = line
        .trim()
        .parse()
        .with_context(|| format!("{name}: pid from the watchdog"))?;
    Ok(Watched {
        name: name.into(),
        pid,
        watchdog,
    })
}

async fn wait_ready(client: &Client) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if client.ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `haproxy` on PATH, or where Debian installs it (`/usr/sbin` is not on every user's PATH).
fn find_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
}
