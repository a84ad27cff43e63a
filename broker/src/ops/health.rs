//! `/healthz`: the process answers. `/readyz`: the node should be sent clients: its
//! listeners accept, it is not draining, and (when clustered and
//! `cluster.ready_requires_link`) its NATS link is up.

use axum::extract::State;
use axum::http::StatusCode;

use crate::node::Node;
use crate::routing::cluster::LinkState;

/// Whether the node is ready, and if not why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The client listeners do not accept yet.
    Starting,
    /// The shutdown drain has begun: no new connections.
    Draining,
    /// Clustered, `cluster.ready_requires_link`, and the NATS link is down.
    LinkDown,
}

impl Readiness {
    pub fn of(node: &Node, serving: bool) -> Readiness {
        if node.shutdown.is_cancelled() {
            return Readiness::Draining;
        }
        if !serving {
            return Readiness::Starting;
        }
        let needs_link = node
            .config
            .cluster
            .as_ref()
            .is_some_and(|c| c.ready_requires_link);
        if needs_link && node.router.link_state() != LinkState::Connected {
            return Readiness::LinkDown;
        }
        Readiness::Ready
    }

    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }

    fn text(self) -> &'static str {
        match self {
            Readiness::Ready => "ready\n",
            Readiness::Starting => "not ready: starting\n",
            Readiness::Draining => "not ready: draining\n",
            Readiness::LinkDown => "not ready: cluster link down\n",
        }
    }
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn readyz(State(state): State<super::State>) -> (StatusCode, &'static str) {
    let readiness = state.readiness();
    let status = match readiness.is_ready() {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, readiness.text())
}
