//! `herald-load`: a load generator for STOMP brokers over WebSocket and TCP.
//!
//! Scenarios (see `docs/load-tool.md`):
//! - `conns`: N connections CONNECT and SUBSCRIBE; connect rate, broker memory per connection.
//! - `fanout`: S subscribers, one publisher; deliveries/s, end-to-end latency, losses.
//! - `broadcast`: N subscribers, one message per round; time until the last one has it.
//! - `pubsub`: P publisher/subscriber pairs on topics of their own; messages/s, latency.
//! - `queue`: P producers, C consumers on one queue with acks; messages/s, latency,
//!   duplicates, losses (one process: no workers).
//!
//! Connections live in worker processes (this executable re-run with the hidden `worker`
//! subcommand), each under the per-process file limit; workers report one line each on stdout.

mod aggregate;
mod broadcast;
mod cli;
mod conn;
mod conns;
mod fanout;
mod hist;
mod plot;
mod pool;
mod procfs;
mod produce;
mod pubsub;
mod queue;
mod report;
mod stamp;
mod target;
mod topic_run;
mod versus;
mod watched;
mod wire;
mod worker;
mod wsframe;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Scenario};
use crate::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Scenario::Worker(args) = cli.scenario {
        let code = worker::run(cli.common, args);
        std::process::exit(code);
    }
    if let Scenario::Plot(args) = &cli.scenario {
        return match plot::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("herald-load: {e}");
                ExitCode::from(2)
            }
        };
    }
    if cli.common.versus.vs_url.is_some() {
        return exit_code(versus::run(&cli.common));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("herald-load: runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let mut report = Report::default();
    let outcome = runtime.block_on(async {
        match &cli.scenario {
            Scenario::Conns(args) => conns::run(&cli.common, args, &mut report).await,
            Scenario::Fanout(args) => fanout::run(&cli.common, args, &mut report).await,
            Scenario::Broadcast(args) => broadcast::run(&cli.common, args, &mut report).await,
            Scenario::Pubsub(args) => pubsub::run(&cli.common, args, &mut report).await,
            Scenario::Queue(args) => queue::run(&cli.common, args, &mut report).await,
            Scenario::Worker(_) => unreachable!("handled above"),
            Scenario::Plot(_) => unreachable!("handled above"),
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    if let Some(path) = &cli.common.json {
        if !report.figures().is_empty() {
            if let Err(e) = report.write_json(path) {
                eprintln!("herald-load: {e}");
                return ExitCode::from(2);
            }
        }
    }
    exit_code(outcome)
}

/// 0 for a clean run, 1 for a run short of clean, 2 for an error (printed).
fn exit_code(outcome: Result<bool, String>) -> ExitCode {
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("herald-load: {e}");
            ExitCode::from(2)
        }
    }
}
