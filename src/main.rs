use agent_webkit_server::config::{Cli, Command, LogFormat};
use agent_webkit_server::{app, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        Command::Migrate(_) => LogFormat::Text,
    };
    let telemetry = telemetry::init(format)?;
    let result = match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(db) => app::migrate(db).await,
    };
    telemetry.shutdown().await;
    result
}
