//! `herald-conformance`: drives a STOMP broker over TCP and WebSocket with exact bytes and
//! reports, case by case, which protocol rules it keeps.
//!
//! ```text
//! herald-conformance --url ws://127.0.0.1:15674/ws --url tcp://127.0.0.1:61613 \
//!     [--login L --passcode P] [--user alice:secret ...] [--peer-url URL ...] \
//!     [--profile generic|herald] [--only SUBSTR] [--list] [--json FILE] [--timeout-ms N] \
//!     [--heartbeat-ms N]
//! ```
//!
//! Output: one `PASS name`, `FAIL name: reason` or `SKIP name: reason` line per case, then
//! `N passed, M failed, K skipped`. Exit status 1 when a case failed, 2 on a usage error.
//!
//! `herald-conformance fuzz --url URL [--pid PID --broker-log FILE] [--seed S] [--duration 30m]`
//! fuzzes a live broker instead (see `fuzz/mod.rs` and docs/testing.md); exit status 1 when an
//! oracle failed.

mod cases;
mod ctx;
mod fuzz;
mod report;
mod runner;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Which broker the suite is judging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Any STOMP broker: cases tagged `herald` are skipped.
    Generic,
    /// Herald: every case runs, except those for features Herald does not have yet.
    Herald,
}

/// The STOMP conformance suite.
#[derive(Debug, Clone, Parser)]
#[command(name = "herald-conformance", version, about)]
// The suite's flags belong to the suite: `herald-conformance --only x fuzz` is refused.
#[command(args_conflicts_with_subcommands = true)]
pub struct Options {
    #[command(subcommand)]
    pub command: Option<Mode>,
    /// Broker address, `tcp://HOST:PORT` or `ws://HOST:PORT/PATH`; repeat for several.
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// `login` header for every CONNECT.
    #[arg(long)]
    pub login: Option<String>,
    /// `passcode` header for every CONNECT.
    #[arg(long)]
    pub passcode: Option<String>,
    /// A configured user `NAME:PASSWORD` for identity and user-destination cases; repeat.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    pub users: Vec<String>,
    /// Another node of the same cluster for `cluster.*` cases; repeat for several transports.
    /// A case on a `--url` uses the peer of the same transport (else the first); without any,
    /// the `--url` itself (a single broker is a cluster of one).
    #[arg(long = "peer-url", value_name = "URL")]
    pub peer_urls: Vec<String>,
    /// `generic` skips Herald-specific cases; `herald` skips cases for unbuilt features.
    #[arg(long, value_enum, default_value = "generic")]
    pub profile: Profile,
    /// Run only cases whose name (with the transport suffix) or a tag contains this; repeat.
    #[arg(long)]
    pub only: Vec<String>,
    /// Print the cases and their tags, run nothing.
    #[arg(long)]
    pub list: bool,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// How long to wait for an expected frame or close, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
    /// How long "nothing arrives" is watched for, in milliseconds.
    #[arg(long, default_value_t = 400)]
    pub quiet_ms: u64,
    /// `host` header of CONNECT (RabbitMQ reads it as the virtual host).
    #[arg(long, default_value = "/")]
    pub host: String,
    /// The broker's frame size limit after CONNECT (limit cases send one byte more).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_frame_bytes: usize,
    /// The broker's frame size limit before CONNECT.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_frame_bytes_before_connect: usize,
    /// The broker's limit on headers per frame.
    #[arg(long, default_value_t = 64)]
    pub max_headers: usize,
    /// The broker's limit on one header line, in bytes.
    #[arg(long, default_value_t = 8192)]
    pub max_header_line_bytes: usize,
    /// The broker's limit on subscriptions per session.
    #[arg(long, default_value_t = 1024)]
    pub max_subscriptions: usize,
    /// The broker's limit on open transactions per session.
    #[arg(long, default_value_t = 16)]
    pub max_transactions: usize,
    /// The broker's limit on connections from one client address (cases skip above 200).
    #[arg(long, default_value_t = 20_000)]
    pub max_connections_per_address: usize,
    /// The broker's largest WebSocket message (Herald: `websocket.max_message_bytes`).
    #[arg(long, default_value_t = 4 * 1024 * 1024 + 64 * 1024)]
    pub max_ws_message_bytes: usize,
    /// The broker's time limit for CONNECT, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub connect_timeout_ms: u64,
    /// The heart-beat interval the heart-beat cases ask for, in ms. A broker that agrees to
    /// more than twice this is not waited out: those cases are skipped, saying so.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    pub heartbeat_ms: u64,
}

/// Something other than the suite.
#[derive(Debug, Clone, Subcommand)]
pub enum Mode {
    /// Session-level fuzzing: random and mutated frames against a live broker.
    Fuzz(fuzz::FuzzOptions),
}

fn main() -> ExitCode {
    let mut options = Options::parse();
    let result = match options.command.take() {
        Some(Mode::Fuzz(fuzz)) => fuzz::main(fuzz),
        None => runner::main(options),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("herald-conformance: {e}");
            ExitCode::from(2)
        }
    }
}
