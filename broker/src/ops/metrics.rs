//! `/metrics`: the node's statistics and its cluster link in the Prometheus text format.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::metrics::{LinkSample, Outside, render};
use crate::routing::cluster::LinkState;

const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn metrics(State(state): State<super::State>) -> impl IntoResponse {
    let node = &state.node;
    let link = node.cluster.as_ref().map(|link| {
        let c = link.counters();
        LinkSample {
            connected: node.router.link_state() == LinkState::Connected,
            forwarded: c.forwarded,
            dropped: c.dropped,
            oversized: c.oversized,
            delivered: c.delivered,
            malformed: c.malformed,
            inbound_dropped: c.inbound_dropped,
        }
    });
    let outside = Outside {
        ready: state.readiness().is_ready(),
        connection_limit: node.config.limits.max_connections,
        link,
        store: node.queue_store.as_ref().map(|store| store.counts()),
    };
    ([(CONTENT_TYPE, TEXT_FORMAT)], render(&node.stats, &outside))
}
