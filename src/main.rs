use agent_webkit_server::app;
use agent_webkit_server::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        Command::Migrate(_) | Command::Audit(_) | Command::Generate(_) => LogFormat::Text,
    };
    init_tracing(format);
    match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(db) => app::migrate(db).await,
        Command::Audit(cmd) => agent_webkit_server::audit::cli::run(cmd).await,
        Command::Generate(args) => agent_webkit_server::audit::generate::run(args).await,
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
