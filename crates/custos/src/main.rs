//! The custos binary: `custos serve` and `custos admin …`.

mod admin_cli;
mod config;
mod document_fetch;
mod issuer_fetch;
mod jwks_fetch;
mod serve;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// mimalloc instead of glibc's malloc: the token path allocates in many
/// small pieces across threads, and glibc's arenas cost it ~15% of its CPU
/// (perf, BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
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
            let line = format!("custos: {line}");
            if JSON_LOGS.load(Ordering::Relaxed) {
                // Printed directly: CUSTOS_LOG may filter out errors.
                let object =
                    serde_json::json!({"level": "ERROR", "target": "custos", "message": line});
                eprintln!("{object}");
            } else {
                eprintln!("{line}");
            }
            ExitCode::FAILURE
        }
    }
}

/// A value clap refuses (`CUSTOS_IDLE_TIMEOUT=soon`) is a startup failure
/// like any other: one line naming the setting (its environment variable).
/// Help, version and usage errors stay clap's.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        e.exit();
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        e.exit();
    };
    // `--idle-timeout <IDLE_TIMEOUT>` → `--idle-timeout` → CUSTOS_IDLE_TIMEOUT.
    let flag = arg.split_whitespace().next().unwrap_or(arg).to_owned();
    let command = Cli::command();
    let env = command
        .get_subcommands()
        .flat_map(|sub| sub.get_arguments())
        .find(|a| a.get_long().is_some_and(|long| flag == format!("--{long}")))
        .and_then(|a| a.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    let name = match env {
        Some(env) => format!("{env} ({flag})"),
        None => flag,
    };
    match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if !value.is_empty() => {
            eprintln!("custos: {name}: invalid value '{value}'");
        }
        _ => eprintln!("custos: {name}: a value is required"),
    }
    ExitCode::from(2)
}

/// Whether logs are JSON (then so is the line of a failed start).
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// Logs go to stderr: text, coloured only on a terminal (and without
/// NO_COLOR), or one JSON object per line.
fn init_logging(settings: &config::Settings) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&settings.log))
        .with_writer(std::io::stderr);
    match settings.log_format {
        config::LogFormat::Text => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
        config::LogFormat::Json => {
            JSON_LOGS.store(true, Ordering::Relaxed);
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .init();
        }
    }
}

async fn serve_command(config: Option<PathBuf>, flags: config::RawSettings) -> Result<(), String> {
    let raw = match config {
        Some(path) => flags.or(config::read_config_file(&path)?),
        None => flags,
    };
    let settings = config::Settings::check(raw)?;
    init_logging(&settings);
    serve::run(settings).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Client ids are base64url: one may start with `-`, and the CLI takes
    /// it as the id, not as an option.
    #[test]
    fn client_ids_starting_with_a_hyphen() {
        for args in [
            vec!["custos", "admin", "clients", "delete", "-abc_D"],
            vec![
                "custos",
                "admin",
                "clients",
                "rotate-secret",
                "-x",
                "--url",
                "http://127.0.0.1:1",
            ],
            vec![
                "custos", "admin", "consents", "revoke", "alice", "-c1", "--url", "http://x",
            ],
        ] {
            assert!(Cli::try_parse_from(&args).is_ok(), "{args:?}");
        }
    }
}
