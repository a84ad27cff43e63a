//! The `herald` binary: parses the command line, then runs the server, a `config` command or
//! `presence`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use herald::cli::{Cli, Command, ConfigCommand, PresenceArgs, Settings};
use herald::config::{ConfigError, LogConfig, LogFormat, LogLevel};
use tracing::{error, info};
use tracing_subscriber::EnvFilter;

/// Exit code for an unusable configuration; clap uses the same code for usage errors.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Config(ConfigCommand::Print(settings))) => print_config(&settings),
        Some(Command::Config(ConfigCommand::Check { file })) => check_config(&file),
        Some(Command::HashPassword) => hash_password(),
        Some(Command::Presence(args)) => presence(&args),
        None => serve(&cli.settings),
    }
}

fn print_config(settings: &Settings) -> ExitCode {
    let config = match settings.load() {
        Ok(config) => config,
        Err(e) => return bad_config(&e),
    };
    match config.to_toml_string() {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: cannot render the configuration as TOML: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> ExitCode {
    match herald::check::load(file) {
        Ok(_) => {
            println!("{}: ok", file.display());
            ExitCode::SUCCESS
        }
        Err(e) => bad_config(&e),
    }
}

/// `herald hash-password`: one line from stdin (without its line ending) → its hash.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("herald: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        eprintln!("herald: no password on stdin");
        return ExitCode::FAILURE;
    }
    match herald::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald: cannot hash the password: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `herald presence`: asks every node of the cluster through NATS; prints `USER SESSIONS`
/// lines, and on stderr how many nodes answered (exit 1 only if NATS is out of reach).
fn presence(args: &PresenceArgs) -> ExitCode {
    let cluster = match args.cluster() {
        Ok(Some(cluster)) => cluster,
        Ok(None) => {
            eprintln!(
                "herald presence: which cluster? give --cluster URL or a configuration with [cluster]"
            );
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
        Err(e) => return bad_config(&e),
    };
    let timeout = std::time::Duration::from_millis(cluster.presence_timeout_ms);
    let asked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime
                .block_on(herald::cluster::presence::ask_cluster(
                    &cluster,
                    args.user.as_deref(),
                    timeout,
                ))
                .map_err(|e| e.to_string())
        });
    match asked {
        Ok(presence) => {
            for (user, sessions) in &presence.users {
                println!("{user} {sessions}");
            }
            eprintln!(
                "{} nodes of cluster {:?} answered within {timeout:?}",
                presence.nodes, cluster.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("herald presence: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bad_config(e: &ConfigError) -> ExitCode {
    // toml's error text ends with a newline of its own.
    eprintln!("{}", e.to_string().trim_end());
    ExitCode::from(EXIT_BAD_CONFIG)
}

fn serve(settings: &Settings) -> ExitCode {
    let config = match settings.load() {
        Ok(config) => config,
        Err(e) => return bad_config(&e),
    };
    init_tracing(&config.log);
    info!(
        websocket = %listener(config.websocket.enabled, config.websocket.bind),
        tcp = %listener(config.tcp.enabled, config.tcp.bind),
        "herald {} starting",
        env!("CARGO_PKG_VERSION"),
    );

    let result = tokio::runtime::Runtime::new()
        .map_err(herald::BoxError::from)
        .and_then(|runtime| runtime.block_on(herald::run(config)));
    match result {
        Ok(()) => {
            info!("herald stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("herald failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn listener(enabled: bool, bind: SocketAddr) -> String {
    if enabled {
        bind.to_string()
    } else {
        "disabled".to_owned()
    }
}

/// Herald's own lines at `level`; the libraries' at `info` at most, so that `debug` does not
/// bring a line per WebSocket frame or NATS operation (`RUST_LOG` can still ask for them).
fn level_filter(level: LogLevel) -> EnvFilter {
    match level {
        LogLevel::Debug | LogLevel::Trace => {
            let level = level.as_str();
            EnvFilter::new(format!("info,herald={level},herald_protocol={level}"))
        }
        _ => EnvFilter::new(level.as_str()),
    }
}

/// Logs go to stdout. `RUST_LOG`, when set, replaces the configured level.
fn init_tracing(log: &LogConfig) {
    let filter = match std::env::var_os(EnvFilter::DEFAULT_ENV) {
        None => level_filter(log.level),
        Some(_) => EnvFilter::try_from_default_env().unwrap_or_else(|e| {
            eprintln!(
                "herald: ignoring RUST_LOG ({e}); using level {}",
                log.level.as_str()
            );
            level_filter(log.level)
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    match log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
