//! The `agent-webkit-server` binary: its command line (`cli`) around the library's
//! [`app::run`](agent_webkit_server::app::run).

mod cli;

use agent_webkit_server::telemetry::{self, LogFormat};
use clap::Parser;
use cli::{Cli, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    fix_mmap_threshold();
    let cli = Cli::parse();
    if let Command::Audit(cmd) = cli.command {
        // `audit` prints its results on stdout (JSON Lines, CSV), so its logs go to stderr.
        telemetry::install(LogFormat::Text, None, std::io::stderr)?;
        return cli::audit::run(*cmd).await;
    }
    let format = match &cli.command {
        Command::Serve(args) => args.log_format.into(),
        _ => LogFormat::Text,
    };
    let telemetry = telemetry::init(format)?;
    let result = match cli.command {
        Command::Serve(args) => cli::serve::serve(*args).await,
        Command::Migrate(db) => cli::serve::migrate(db).await,
        // Handled above, before the telemetry that would log to stdout.
        Command::Audit(_) => Ok(()),
    };
    telemetry.shutdown().await;
    result
}

/// Keeps glibc's mmap threshold at its default 128 KiB instead of letting it grow.
///
/// glibc raises the threshold to the size of the largest mmap'd block freed (up to 32 MiB), after
/// which multi-megabyte request bodies, JSON values and query results are carved from per-thread
/// arenas that are rarely returned to the OS: 32 accepted 9.5 MiB inputs left RSS 180 MiB above
/// its baseline for good, against 0.7 MiB with the threshold fixed (tests/it/hostile.rs,
/// BENCHMARKS.md). Setting it is what `MALLOC_MMAP_THRESHOLD_=131072` does; the cost is an
/// mmap/munmap pair per block above 128 KiB (commit batches, large events), a few microseconds
/// each. mimalloc was measured too and kept more (+205 MiB).
///
/// The only `unsafe` in the project (the library forbids it): a call into libc with a constant.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn fix_mmap_threshold() {
    // SAFETY: mallopt only sets an allocator parameter, under glibc's own arena lock (it is
    // thread-safe); the option and value are valid constants.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}
