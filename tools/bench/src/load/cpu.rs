//! CPU used by the load tool, the server and Postgres over a measured interval, in cores
//! (CPU seconds per wall second), so a report shows whether the client kept up and who was
//! busy. The server and Postgres are known only when the tool started them (or `--server-pid`).

use super::procfs;
use super::report::Metric;
use super::target::Target;

/// CPU used by the client, the server and Postgres over a measured interval, in cores.
pub struct Cpu {
    client: f64,
    server: Option<f64>,
    pg: Option<f64>,
}

pub struct CpuUse {
    pub client: f64,
    pub server: Option<f64>,
    pub pg: Option<f64>,
}

impl Cpu {
    pub fn start(target: &Target) -> Cpu {
        Cpu {
            client: procfs::self_cpu_seconds(),
            server: target
                .server_pid
                .and_then(|p| procfs::cpu_seconds(&p.to_string())),
            pg: target.pg_pid.map(procfs::tree_cpu_seconds),
        }
    }

    pub fn finish(self, target: &Target, elapsed: f64) -> CpuUse {
        let now = Cpu::start(target);
        let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / elapsed);
        CpuUse {
            client: (now.client - self.client) / elapsed,
            server: cores(self.server, now.server),
            pg: cores(self.pg, now.pg),
        }
    }
}

impl CpuUse {
    pub fn metrics(&self, key: &str, label: &str) -> Vec<Metric> {
        let mut out = vec![Metric::new(
            format!("{key}_client_cpu"),
            format!("{label}: load tool CPU"),
            "cores",
            self.client,
        )];
        if let Some(s) = self.server {
            out.push(Metric::new(
                format!("{key}_server_cpu"),
                format!("{label}: server CPU"),
                "cores",
                s,
            ));
        }
        if let Some(pg) = self.pg {
            out.push(Metric::new(
                format!("{key}_pg_cpu"),
                format!("{label}: Postgres CPU"),
                "cores",
                pg,
            ));
        }
        out
    }
}
