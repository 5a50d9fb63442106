use agent_webkit_server::app;
use agent_webkit_server::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        Command::Migrate(_) | Command::Bench(_) => LogFormat::Text,
    };
    // The bench prints its report on stdout; its logs go to stderr.
    init_tracing(format, matches!(cli.command, Command::Bench(_)));
    match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(db) => app::migrate(db).await,
        Command::Bench(args) => agent_webkit_server::bench::run(*args).await,
    }
}

fn init_tracing(format: LogFormat, stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text if stderr => builder.with_writer(std::io::stderr).init(),
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
