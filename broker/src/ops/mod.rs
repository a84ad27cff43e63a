//! The operations listener (`[http]`): Prometheus metrics at `/metrics`, liveness at
//! `/healthz`, readiness at `/readyz`, on an address of its own (loopback by default), apart
//! from the client listeners. Routes are an axum `Router` ([`routes`]); connections are served
//! by `http.rs` under a connection bound and timeouts, so more routes (the HTTP API, an admin
//! page) are added here without touching how connections are handled.

mod admin;
pub mod api;
mod health;
mod http;
mod metrics;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Node;

pub use health::Readiness;

/// The bound, not yet serving, operations listener.
#[derive(Debug)]
pub struct Ops {
    listener: TcpListener,
    state: State,
}

/// What every handler shares.
#[derive(Debug, Clone)]
struct State {
    node: Arc<Node>,
    /// Set once the client listeners accept connections.
    serving: Arc<AtomicBool>,
}

impl Ops {
    /// Binds `[http]` if enabled.
    pub async fn bind(node: &Arc<Node>) -> io::Result<Option<Ops>> {
        let http = &node.config.http;
        if !http.enabled {
            return Ok(None);
        }
        let listener = http::bind(http.bind).await?;
        Ok(Some(Ops {
            listener,
            state: State {
                node: Arc::clone(node),
                serving: Arc::new(AtomicBool::new(false)),
            },
        }))
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `stop` is cancelled (after the drain, so a load balancer sees `/readyz`
    /// answer 503 while sessions drain). The returned flag is to be set once the client
    /// listeners accept.
    pub fn serve(self, stop: CancellationToken) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
        let serving = Arc::clone(&self.state.serving);
        let limits = http::Limits::from_config(&self.state.node.config.http);
        let app = routes(self.state);
        let task = tokio::spawn(http::serve(self.listener, app, limits, stop));
        (serving, task)
    }
}

/// Every route of the operations listener.
fn routes(state: State) -> Router {
    let api = api::routes(Arc::clone(&state.node));
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(admin::page))
        .route("/admin.js", get(admin::script))
        .route("/favicon.ico", get(admin::favicon))
        .route("/admin/summary", get(admin::summary))
        .with_state(state)
        .nest("/api/v1", api)
}

impl State {
    fn readiness(&self) -> Readiness {
        Readiness::of(&self.node, self.serving.load(Ordering::Relaxed))
    }
}
