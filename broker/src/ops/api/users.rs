//! Who is online: `GET /users/{user}` and `GET /presence` (the whole cluster: this node's
//! user directory plus what the other nodes answer within `cluster.presence_timeout_ms`),
//! and `DELETE /users/{user}/sessions`, which closes a user's sessions on this node only:
//! there is no cluster message for it yet, so sessions on other nodes are counted in the
//! answer, not closed.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use tracing::info;

use super::Api;
use super::error::{ApiError, json};
use super::message::read_json_or_default;
use super::publish::check_user_name;

/// Longest reason a disconnect takes; it goes into each session's ERROR frame.
const MAX_REASON_BYTES: usize = 512;
const DEFAULT_REASON: &str = "disconnected by the operator";

pub(super) async fn user(
    State(api): State<Api>,
    user: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = path_user(user)?;
    let (presence, nodes) = api.node.router.presence(Some(&user)).await;
    let sessions = presence.get(&user).copied().unwrap_or(0);
    if sessions == 0 {
        return Err(ApiError::NotFound(format!(
            "{user} has no session online (on this node and {nodes} others that answered)"
        )));
    }
    let local = api.node.router.local_presence(Some(&user));
    Ok(json(&serde_json::json!({
        "user": user,
        "sessions": sessions,
        "local_sessions": local.get(&user).copied().unwrap_or(0),
        "nodes_answered": nodes,
    })))
}

pub(super) async fn presence(State(api): State<Api>) -> Response {
    let (users, nodes) = api.node.router.presence(None).await;
    json(&serde_json::json!({
        "users": users,
        "nodes_answered": nodes,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct DisconnectRequest {
    reason: Option<String>,
}

pub(super) async fn disconnect(
    State(api): State<Api>,
    user: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let node = &api.node;
    let user = path_user(user)?;
    let request: DisconnectRequest = read_json_or_default(&node.config, body).await?;
    let reason = request.reason.unwrap_or_else(|| DEFAULT_REASON.to_owned());
    if reason.len() > MAX_REASON_BYTES || reason.contains('\0') {
        return Err(ApiError::BadRequest(format!(
            "reason: at most {MAX_REASON_BYTES} bytes, no NUL"
        )));
    }
    let here = node.kicks.kick(&user, &reason);
    let elsewhere = node.router.disconnect_elsewhere(&user, &reason).await;
    if here == 0 && elsewhere.sessions == 0 {
        return Err(ApiError::NotFound(format!("{user} has no session online")));
    }
    let on_other_nodes = elsewhere.sessions;
    info!(
        user,
        here, on_other_nodes, reason, "http api: user's sessions disconnected"
    );
    Ok(json(&serde_json::json!({
        "user": user,
        "disconnected": here.saturating_add(on_other_nodes),
        "on_this_node": here,
        "on_other_nodes": on_other_nodes,
        "nodes_answered": elsewhere.nodes,
    })))
}

fn path_user(user: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(user) = user.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    check_user_name(&user)?;
    Ok(user)
}
