//! The custos binary: `custos serve` and `custos admin …`.

mod admin_cli;
mod config;
mod jwks_fetch;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "custos",
    version,
    about = "OAuth 2.1 authorization server for workloads and agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (flags > environment > --config file).
    Serve {
        /// TOML file with the same settings in lower case without the prefix.
        #[arg(long, env = "CUSTOS_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        settings: Box<config::RawSettings>,
    },
    /// Call the admin API.
    Admin(admin_cli::AdminArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("custos: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve { config, settings } => runtime.block_on(serve_command(config, *settings)),
        Command::Admin(args) => runtime.block_on(admin_cli::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("custos: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_command(config: Option<PathBuf>, flags: config::RawSettings) -> Result<(), String> {
    let raw = match config {
        Some(path) => flags.or(config::read_config_file(&path)?),
        None => flags,
    };
    let settings = config::Settings::check(raw)?;
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&settings.log))
        .with_writer(std::io::stderr)
        .init();
    serve::run(settings).await
}
