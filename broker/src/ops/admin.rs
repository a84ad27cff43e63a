//! The admin page at `/` of the operations listener: one HTML page and its script, served by
//! the binary (no CDN), reading `/admin/summary` every two seconds. The summary holds no
//! secret beyond what `/metrics` shows, plus who is online: the listener is on loopback by
//! default, like the rest of it.

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

/// Destinations and users listed at most.
const LISTED: usize = 10;

const PAGE: &str = include_str!("admin/page.html");
const SCRIPT: &str = include_str!("admin/page.js");
/// Nothing from elsewhere, no inline script: the page is its own origin's only code.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

pub(super) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// Browsers ask for it; an empty answer keeps their console free of a 404.
pub(super) async fn favicon() -> StatusCode {
    StatusCode::NO_CONTENT
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, content_type),
            (CONTENT_SECURITY_POLICY, POLICY),
            (CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /admin/summary`: what the page shows, as JSON. Totals are counters since start (the
/// page turns them into rates); users and other nodes come from a cluster-wide presence
/// question when clustered (at most the link's presence timeout).
pub(super) async fn summary(State(state): State<super::State>) -> Response {
    let node = &state.node;
    let stats = &node.stats;
    let (users, other_nodes) = node.router.presence(None).await;
    let mut listed: Vec<(&String, &usize)> = users.iter().collect();
    listed.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let link = node.router.link_state().as_str();
    let connections: serde_json::Map<String, serde_json::Value> = stats
        .connections_by_transport()
        .map(|(transport, open)| (transport.to_owned(), open.into()))
        .collect();
    let body = serde_json::json!({
        "node": node.id,
        "cluster_link": link,
        "other_nodes": other_nodes,
        "connections": connections,
        "totals": {
            "published": stats.messages_published.load(Relaxed),
            "delivered": stats.messages_delivered.load(Relaxed),
            "dropped": stats.messages_dropped.load(Relaxed),
        },
        "top_destinations": node.router.rates.top(LISTED).into_iter().map(|rate| {
            serde_json::json!({"destination": rate.destination, "per_second": rate.per_second})
        }).collect::<Vec<_>>(),
        "users": {
            "online": users.len(),
            "sessions": users.values().sum::<usize>(),
            "busiest": listed.into_iter().take(LISTED).map(|(user, sessions)| {
                serde_json::json!({"user": user, "sessions": sessions})
            }).collect::<Vec<_>>(),
        },
    });
    (
        [
            (CONTENT_TYPE, "application/json"),
            (CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}
