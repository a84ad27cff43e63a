//! The sending routes: `POST /publish` (one destination), `POST /users/{user}/send` (a
//! user's sessions), `POST /broadcast` (several destinations). Each destination goes through
//! what a STOMP SEND meets: the access rules (as the key's user and roles), the router's
//! parse (prefixes, no wildcards), `Router::publish` (topic subscribers here, the cluster link
//! for the other nodes), then the queues it names, and back-pressure: the answer waits, at
//! most `outbox.max_pause_ms`, for subscribers the message left above their mark (then they
//! are closed as slow consumers), and at most `queues.block_timeout_ms` for a full queue
//! under policy `block`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::response::Response;
use futures_util::future::join_all;
use tokio::time::{Instant, timeout, timeout_at};
use tracing::warn;

use super::Api;
use super::auth::Key;
use super::error::{ApiError, json};
use super::message::{Message, SendRequest, read_json};
use crate::access::{Principal, Routing};
use crate::config::AccessAction;
use crate::node::Node;
use crate::outbox::Outbox;
use crate::routing::cluster::LinkState;
use crate::routing::queue::{Creator, Enqueued};
use crate::routing::router::{Refusal, SendRoute};
use crate::routing::user;

/// Most destinations one `POST /broadcast` names.
pub(super) const MAX_BROADCAST: usize = 1000;

pub(super) async fn publish(
    State(api): State<Api>,
    Extension(key): Extension<Arc<Key>>,
    body: Body,
) -> Result<Response, ApiError> {
    let node = &api.node;
    let mut request: SendRequest = read_json(&node.config, body).await?;
    let destination = one_destination(&mut request)?;
    let message = request.message(&node.config, &destination)?;
    let route = checked_route(node, &key, &destination)?;
    let matched = deliver(node, &route, &message).await?;
    Ok(json(&serde_json::json!({
        "destination": destination,
        "matched": matched,
        "forwarded": forwarded(node, &route),
    })))
}

pub(super) async fn send_to_user(
    State(api): State<Api>,
    Extension(key): Extension<Arc<Key>>,
    user: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let node = &api.node;
    let Path(user) = user.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_user_name(&user)?;
    let mut request: SendRequest = read_json(&node.config, body).await?;
    let given = one_destination(&mut request)?;
    // `/queue/x` or `/user/queue/x`, as the user's sessions subscribe to it.
    let prefix = node.config.destinations.user_prefix.trim_end_matches('/');
    let base = given
        .strip_prefix(prefix)
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(&given);
    let destination = format!("{prefix}/{user}{base}");
    let message = request.message(&node.config, &destination)?;
    let route = checked_route(node, &key, &destination)?;
    if !matches!(route, SendRoute::User { .. }) {
        return Err(ApiError::BadRequest(format!(
            "{destination} is not a user destination"
        )));
    }
    let matched = deliver(node, &route, &message).await?;
    Ok(json(&serde_json::json!({
        "user": user,
        "destination": destination,
        "matched": matched,
        "forwarded": forwarded(node, &route),
    })))
}

pub(super) async fn broadcast(
    State(api): State<Api>,
    Extension(key): Extension<Arc<Key>>,
    body: Body,
) -> Result<Response, ApiError> {
    let node = &api.node;
    let mut request: SendRequest = read_json(&node.config, body).await?;
    let destinations = match (request.destinations.take(), &request.destination) {
        (Some(list), None) if (1..=MAX_BROADCAST).contains(&list.len()) => list,
        _ => {
            return Err(ApiError::BadRequest(format!(
                "a broadcast takes destinations: a list of 1 to {MAX_BROADCAST} destinations"
            )));
        }
    };
    let longest = destinations.iter().max_by_key(|d| d.len());
    let message = request.message(&node.config, longest.map_or("", String::as_str))?;
    // Every destination is checked before any is published to: all or nothing is refused.
    let routes = destinations
        .iter()
        .map(|d| checked_route(node, &key, d))
        .collect::<Result<Vec<_>, _>>()?;
    let mut results = Vec::with_capacity(routes.len());
    let mut total = 0;
    for (destination, route) in destinations.iter().zip(&routes) {
        let matched = deliver(node, route, &message).await?;
        total += matched;
        results.push(serde_json::json!({
            "destination": destination,
            "matched": matched,
            "forwarded": forwarded(node, route),
        }));
    }
    Ok(json(&serde_json::json!({
        "matched": total,
        "destinations": results,
    })))
}

/// The `destination` of a request for one destination.
fn one_destination(request: &mut SendRequest) -> Result<String, ApiError> {
    match (request.destination.take(), &request.destinations) {
        (Some(destination), None) => Ok(destination),
        _ => Err(ApiError::BadRequest(
            "this route takes one destination: destination, a string".into(),
        )),
    }
}

/// A user name as a path segment: it becomes a destination segment, so no `/` and no control
/// characters.
pub(super) fn check_user_name(user: &str) -> Result<(), ApiError> {
    if user.is_empty() || user.contains('/') || user.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{user:?} is not a user name (empty, or has '/' or control characters)"
        )));
    }
    Ok(())
}

/// The destination's route, if the access rules let the key send to it.
fn checked_route<'a>(
    node: &Node,
    key: &Key,
    destination: &'a str,
) -> Result<SendRoute<'a>, ApiError> {
    authorize(node, key, destination)?;
    Ok(node.router.parse_send(destination)?)
}

/// The `[access]` rules for a SEND by the key's user and roles; as for a session, a resolved
/// name (`/queue/x-user<id>`) must also be allowed in its `/user/<id>/queue/x` form.
fn authorize(node: &Node, key: &Key, destination: &str) -> Result<(), ApiError> {
    if node.access.allows_everything() {
        return Ok(());
    }
    let principal = Principal {
        user: key.user.as_deref(),
        roles: &key.roles,
    };
    let routing = Routing::new(node.router.destinations(), &node.config.destinations);
    let allows = |d: &str| {
        node.access
            .allows(AccessAction::Send, d, principal, routing)
    };
    let user_form = user::unresolve(&node.config.destinations.user_prefix, destination);
    if allows(destination) && user_form.is_none_or(|d| allows(&d)) {
        return Ok(());
    }
    node.stats.record_access_denied(true);
    warn!(key = %key.name, destination, "http api: access denied");
    Err(ApiError::AccessDenied(format!(
        "this key may not send to {destination}"
    )))
}

/// Whether the link took the message for other nodes (they count their own subscribers).
fn forwarded(node: &Node, route: &SendRoute<'_>) -> bool {
    let clustered = node.router.link_state() != LinkState::Standalone;
    match route {
        SendRoute::Topic(_) | SendRoute::User { .. } => clustered,
        SendRoute::Queue(_) => false,
        SendRoute::Resolved { session, .. } => clustered && !node.router.is_local_session(session),
    }
}

/// Publishes through the router, then fills the queues it names. Returns the subscriptions
/// on this node that got the message.
async fn deliver(node: &Node, route: &SendRoute<'_>, message: &Message) -> Result<usize, ApiError> {
    let mut published = node
        .router
        .publish(route, &message.headers, &message.body)?;
    if let Some(send) = published.offline.take() {
        published = node.router.settle_offline(send).await?;
    }
    let mut matched = published.delivered;
    wait_for_room(node, published.congested).await;
    let creator = Creator::default();
    for queue in &published.queues {
        if enqueue(node, queue, message, &creator).await? {
            matched += 1;
        }
    }
    Ok(matched)
}

/// A publishing session's pause, for a request: wait for the outboxes the message left above
/// their mark, then close those still above it as slow consumers.
async fn wait_for_room(node: &Node, congested: Vec<Arc<Outbox>>) {
    if congested.is_empty() {
        return;
    }
    node.stats.record_backpressure_pause();
    let patience = Duration::from_millis(node.config.outbox.max_pause_ms);
    let drained = join_all(congested.iter().map(|outbox| outbox.uncongested()));
    if timeout(patience, drained).await.is_err() {
        let closed = congested.iter().filter(|o| o.close_if_congested()).count();
        warn!(
            closed,
            "http api: subscribers stayed above their outbox mark; closed as slow consumers"
        );
    }
}

/// Puts the message in `queue`, waiting for room under policy `block` up to
/// `queues.block_timeout_ms`, or for a durable queue's store to have it. Returns whether the
/// queue took it (not expired or dropped).
async fn enqueue(
    node: &Node,
    queue: &str,
    message: &Message,
    creator: &Creator,
) -> Result<bool, ApiError> {
    if let Some(storing) = node.router.store(queue, &message.headers, &message.body) {
        storing.await?;
        return Ok(true);
    }
    let deadline = Instant::now() + Duration::from_millis(node.config.queues.block_timeout_ms);
    let attempt = || {
        node.router
            .enqueue(queue, &message.headers, &message.body, creator)
    };
    loop {
        let room = match attempt() {
            Enqueued::Blocked(room) => room,
            other => return settled(queue, other),
        };
        let notified = room.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Tried again once registered, so room freed in between is not missed.
        match attempt() {
            Enqueued::Blocked(_) => {}
            other => return settled(queue, other),
        }
        if timeout_at(deadline, notified).await.is_err() {
            return Err(ApiError::QueueFull(Refusal {
                message: "queue full",
                detail: format!(
                    "{queue} had no room within queues.block_timeout_ms; the message was not accepted"
                ),
            }));
        }
    }
}

fn settled(queue: &str, enqueued: Enqueued) -> Result<bool, ApiError> {
    match enqueued {
        Enqueued::Accepted => Ok(true),
        Enqueued::Expired | Enqueued::Dropped => Ok(false),
        Enqueued::Rejected(bound) => Err(Refusal::queue_full(queue, bound).into()),
        Enqueued::Blocked(_) => unreachable!("a blocked SEND waits for room"),
    }
}
