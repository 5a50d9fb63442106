//! The server binary as a child process on loopback (for what an in-process server cannot
//! show: its own memory, its exported traces, its exit).

use super::{fixtures_dir, Api, Scratch, ADMIN_TOKEN, TOKEN};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

pub struct ServerProcess {
    pub api: Api,
    child: Child,
    /// The server's output; kept when the test fails. Declared after `child`, which is killed
    /// on drop, so it goes after the process.
    pub log: Scratch,
}

impl ServerProcess {
    /// Starts `serve` on a free port with `args` and `env`, and waits until it is ready.
    pub async fn start(
        db_url: &str,
        fixtures: Option<&Path>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let port = super::fleet::free_port();
        let log = Scratch::file("awk-server-", ".log");
        let out = std::fs::File::create(&*log).unwrap();
        let fixtures = fixtures.map(Path::to_path_buf).unwrap_or_else(fixtures_dir);
        let child = Command::new(env!("CARGO_BIN_EXE_agent-webkit-server"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", db_url, "--db-pool-size", "8"])
            .arg("--fixtures")
            .arg(&fixtures)
            .args(args)
            .env("AGENT_WEBKIT_AUTH_TOKEN", TOKEN)
            .env("AGENT_WEBKIT_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("starting the server binary");
        let api = Api::new(format!("http://127.0.0.1:{port}"), TOKEN);
        let deadline = Instant::now() + Duration::from_secs(30);
        while api.get_status("/readyz").await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "server never became ready: {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        ServerProcess { api, child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("server is running")
    }

    /// (current RSS, peak RSS) in bytes, from `/proc/<pid>/status`.
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let kb = |key: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(key)).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
                * 1024
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }

    /// SIGTERM, then waits for a clean exit.
    pub async fn stop(mut self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("server did not exit")
            .unwrap();
        assert!(
            exit.success(),
            "server exit: {exit:?}; log {}",
            self.log.display()
        );
    }
}
