//! Herald, a STOMP message broker: the library behind the `herald` binary and its tests.

pub mod access;
pub mod auth;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod destination;
pub mod jetstream;
pub mod metrics;
pub mod node;
pub mod ops;
pub mod outbox;
pub mod pattern;
pub mod routing;
pub mod server;
pub mod session;
pub mod throttle;
pub mod transport;

use std::error::Error;
use tracing::info;

pub use config::Config;
pub use server::Server;

/// Error type of `run`: anything that stops the server.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Runs a node until ctrl-c or SIGTERM, then drains it (see [`Server::serve`]).
pub async fn run(config: Config) -> Result<(), BoxError> {
    // Installed before binding so that a signal arriving right after the `listening` lines
    // already stops the server cleanly instead of killing the process.
    let stop = signals::Stop::install()?;
    let server = Server::bind(config).await?;
    server
        .serve(async {
            match stop.recv().await {
                Ok(signal) => info!(signal, "stop signal received"),
                Err(e) => tracing::error!(error = %e, "waiting for stop signals failed; stopping"),
            }
        })
        .await;
    Ok(())
}

/// Stop signals: ctrl-c and, on Unix, SIGTERM (what systemd and container runtimes send).
#[cfg(unix)]
mod signals {
    use std::io;

    use tokio::signal::unix::{Signal, SignalKind, signal};

    /// Handlers registered at `install`, so no signal is missed before `recv` is polled.
    pub(crate) struct Stop {
        interrupt: Signal,
        terminate: Signal,
    }

    impl Stop {
        pub(crate) fn install() -> io::Result<Self> {
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }

        /// Waits for the first stop signal and names it.
        pub(crate) async fn recv(mut self) -> io::Result<&'static str> {
            tokio::select! {
                _ = self.interrupt.recv() => Ok("SIGINT"),
                _ = self.terminate.recv() => Ok("SIGTERM"),
            }
        }
    }
}

#[cfg(not(unix))]
mod signals {
    use std::io;

    pub(crate) struct Stop;

    impl Stop {
        pub(crate) fn install() -> io::Result<Self> {
            Ok(Self)
        }

        /// Waits for ctrl-c (registered on first poll; there is no SIGTERM to race with).
        pub(crate) async fn recv(self) -> io::Result<&'static str> {
            tokio::signal::ctrl_c().await.map(|()| "ctrl-c")
        }
    }
}
