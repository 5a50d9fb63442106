use agent_webkit_bench::{generate, load, queries, writer};
use agent_webkit_server::store::Store;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "agent-webkit-bench",
    version,
    about = "Load and data tools for agent-webkit-server (BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load a server over HTTP + SSE and report throughput, latency and memory.
    Load(Box<load::BenchArgs>),
    /// Fill a database with synthetic sessions, events and inputs.
    Generate(generate::GenerateArgs),
    /// Run each audit API query against a database: the index its plan uses and its p50.
    Queries(queries::BenchArgs),
    /// Measure the group-commit writer's append rate on a database (adds bench sessions).
    Writer(writer::WriterBenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Reports go to stdout; logs to stderr.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Load(args) => load::run(*args).await,
        Command::Generate(args) => generate::run(args).await,
        Command::Queries(args) => {
            let db = args.db.clone();
            on_database(&db, |store| async move {
                queries::run(&store, &args, &mut std::io::stdout().lock()).await
            })
            .await
        }
        Command::Writer(args) => {
            let db = args.db.clone();
            on_database(&db, |store| async move {
                writer::run(&store, &args, &mut std::io::stdout().lock()).await
            })
            .await
        }
    }
}

/// Runs `f` on the database (or the embedded cluster, stopped afterwards).
async fn on_database<F, Fut>(db: &agent_webkit_bench::DbArgs, f: F) -> anyhow::Result<()>
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let (url, cluster) = db.open().await?;
    let result = f(Store::connect(&url, 2)?).await;
    if let Some(cluster) = cluster {
        cluster.stop().await?;
    }
    result
}
