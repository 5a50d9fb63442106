//! Real processes: several hosts of the built binary on loopback behind HAProxy configured from
//! `ops/haproxy.cfg` (the file users deploy), sharing one Postgres.

use super::{fixtures_dir, Api, Scratch, TOKEN};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One server process.
pub struct Host {
    pub port: u16,
    pub name: String,
    child: Option<Child>,
    db_url: String,
    fixtures: PathBuf,
    logs: PathBuf,
    extra: Vec<String>,
}

impl Host {
    pub async fn start(
        name: &str,
        db_url: &str,
        fixtures: &Path,
        logs: &Path,
        extra: &[&str],
    ) -> Host {
        let mut host = Host {
            port: free_port(),
            name: name.into(),
            child: None,
            db_url: db_url.into(),
            fixtures: fixtures.into(),
            logs: logs.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        host.spawn().await;
        host
    }

    /// (Re)starts the process on the same port.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{}.log", self.name)))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_agent-webkit-server"))
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.db_url, "--host-name", &self.name])
            .arg("--fixtures")
            .arg(&self.fixtures)
            .args([
                "--lease",
                "3s",
                "--drain-timeout",
                "10s",
                "--db-pool-size",
                "8",
            ])
            .args(&self.extra)
            .env("AGENT_WEBKIT_AUTH_TOKEN", TOKEN)
            .env("RUST_LOG", "info,agent_webkit_server=debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("starting the server binary");
        self.child = Some(child);
        let api = self.api();
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.get_status("/readyz").await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "host {} never became ready",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.port), TOKEN)
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(|c| c.id())
            .expect("host is running")
    }

    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        if sig == "STOP" {
            self.wait_stopped();
        }
    }

    /// Waits until the kernel shows the process stopped (`T` in /proc/<pid>/stat): `kill`
    /// returns once the signal is sent, and a request a test sends right after must not be
    /// served by a host it believes paused.
    fn wait_stopped(&self) {
        let stat = format!("/proc/{}/stat", self.pid());
        for _ in 0..500 {
            let text = std::fs::read_to_string(&stat).unwrap_or_default();
            let state = text
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next());
            if state == Some('T') {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} did not stop", self.name);
    }

    /// Waits for the process to exit; returns its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("host did not exit")
            .unwrap();
        status.code()
    }
}

/// How the balancer picks a host: `ops/haproxy.cfg` (sticky by session id) or
/// `ops/haproxy-roundrobin.cfg` (any host for any request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    Sticky,
    RoundRobin,
}

/// HAProxy from ops/haproxy.cfg, fronting three hosts.
pub struct Balancer {
    pub port: u16,
    _child: Child,
}

impl Balancer {
    pub async fn start(hosts: &[&Host], balance: Balance) -> Balancer {
        assert_eq!(hosts.len(), 3, "ops/haproxy.cfg names three hosts");
        let port = free_port();
        let cfg = match balance {
            Balance::Sticky => concat!(env!("CARGO_MANIFEST_DIR"), "/ops/haproxy.cfg"),
            Balance::RoundRobin => {
                concat!(env!("CARGO_MANIFEST_DIR"), "/ops/haproxy-roundrobin.cfg")
            }
        };
        let child = Command::new(haproxy())
            .args(["-f", cfg, "-db"])
            .env("AWK_LISTEN", format!("127.0.0.1:{port}"))
            .env("AWK_HOST1", format!("127.0.0.1:{}", hosts[0].port))
            .env("AWK_HOST2", format!("127.0.0.1:{}", hosts[1].port))
            .env("AWK_HOST3", format!("127.0.0.1:{}", hosts[2].port))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting haproxy (apt-get install haproxy; .ci/run does)");
        let balancer = Balancer {
            port,
            _child: child,
        };
        let api = balancer.api();
        let deadline = Instant::now() + Duration::from_secs(10);
        while api.get_status("/readyz").await != Some(200) {
            assert!(Instant::now() < deadline, "haproxy never became ready");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        balancer
    }

    pub fn api(&self) -> Api {
        Api::new(format!("http://127.0.0.1:{}", self.port), TOKEN)
    }
}

fn haproxy() -> &'static str {
    ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("haproxy")
}

/// Three hosts behind HAProxy on `db_url`, with log files in a temp dir (kept and printed on
/// failure; `logs` is declared last so it is dropped after the processes writing there).
pub struct Fleet {
    pub hosts: Vec<Host>,
    pub lb: Balancer,
    pub logs: Scratch,
}

impl Fleet {
    pub async fn start(db_url: &str, fixtures: Option<&Path>) -> Fleet {
        Fleet::start_with(db_url, fixtures, Balance::Sticky).await
    }

    pub async fn start_with(db_url: &str, fixtures: Option<&Path>, balance: Balance) -> Fleet {
        let logs = Scratch::dir("awk-fleet-");
        let fixtures = fixtures.map(Path::to_path_buf).unwrap_or_else(fixtures_dir);
        let mut hosts = Vec::new();
        for i in 1..=3 {
            hosts.push(Host::start(&format!("h{i}"), db_url, &fixtures, &logs, &[]).await);
        }
        let lb = Balancer::start(&hosts.iter().collect::<Vec<_>>(), balance).await;
        Fleet { hosts, lb, logs }
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts.iter().find(|h| h.name == name).unwrap()
    }
}
