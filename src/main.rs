use agent_webkit_server::config::{Cli, Command, LogFormat};
use agent_webkit_server::{app, audit, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Audit(cmd) = cli.command {
        // `audit` prints its results on stdout (JSON Lines, CSV), so its logs go to stderr.
        telemetry::install(LogFormat::Text, None, std::io::stderr)?;
        return audit::cli::run(cmd).await;
    }
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        _ => LogFormat::Text,
    };
    if let Command::Bench(args) = cli.command {
        // The bench prints its report on stdout; its logs go to stderr.
        telemetry::install(format, None, std::io::stderr)?;
        return agent_webkit_server::bench::run(*args).await;
    }
    let telemetry = telemetry::init(format)?;
    let result = match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(db) => app::migrate(db).await,
        Command::Generate(args) => audit::generate::run(args).await,
        // Handled above, before the telemetry that would log to stdout.
        Command::Audit(_) | Command::Bench(_) => Ok(()),
    };
    telemetry.shutdown().await;
    result
}
