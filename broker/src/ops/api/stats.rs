//! `GET /stats`: this node's figures as JSON, read from the same counters as `/metrics`.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::response::Response;

use super::Api;
use super::error::json;

pub(super) async fn stats(State(api): State<Api>) -> Response {
    let node = &api.node;
    let stats = &node.stats;
    let users = node.router.local_presence(None);
    let link = node.router.link_state().as_str();
    json(&serde_json::json!({
        "node": node.id,
        "cluster_link": link,
        "connections": stats.connections_open.load(Relaxed),
        "users_online": users.len(),
        "user_sessions": users.values().sum::<usize>(),
        "subscriptions": stats.subscriptions.load(Relaxed),
        "topic_destinations": stats.topic_destinations.load(Relaxed),
        "messages_published": stats.messages_published.load(Relaxed),
        "messages_delivered": stats.messages_delivered.load(Relaxed),
        "messages_dropped": stats.messages_dropped.load(Relaxed),
        "messages_expired": stats.messages_expired.load(Relaxed),
    }))
}
