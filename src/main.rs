use agent_webkit_server::app;
use agent_webkit_server::config::{Cli, Command, LogFormat};
use clap::Parser;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(args) => args.log_format,
        Command::Migrate(_) | Command::Audit(_) | Command::Generate(_) => LogFormat::Text,
    };
    // `audit` prints its results on stdout (JSON Lines, CSV), so its logs go to stderr.
    init_tracing(format, matches!(cli.command, Command::Audit(_)));
    match cli.command {
        Command::Serve(args) => app::serve(*args).await,
        Command::Migrate(db) => app::migrate(db).await,
        Command::Audit(cmd) => agent_webkit_server::audit::cli::run(cmd).await,
        Command::Generate(args) => agent_webkit_server::audit::generate::run(args).await,
    }
}

fn init_tracing(format: LogFormat, to_stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let writer = if to_stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
