//! The HTTP API (`/api/v1`, JSON) for services that publish without speaking STOMP. Every
//! route is a row of [`ROUTES`]: its method, path, the [`ApiAction`] a key needs for it and
//! its handler; the axum router is built from that table, and `docs/api/openapi.yaml` is
//! compared with it by a test. Publishes go through the node's `Router` as a STOMP SEND does
//! (the access rules, the destination prefixes, the frame limit, back-pressure), so they
//! reach other nodes over the cluster link the same way. Off unless `[[http.api_keys]]`
//! names a key: without one every `/api/v1` path answers 404.

mod auth;
mod error;
mod message;
mod publish;
mod stats;
mod users;

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use axum::routing::{MethodFilter, MethodRouter, on};
use tracing::info;

use crate::config::ApiAction;
use crate::node::Node;
use auth::{Guard, Keys};
use error::ApiError;

/// One route of the API, relative to `/api/v1`.
#[derive(Debug, Clone, Copy)]
pub struct ApiRoute {
    pub method: &'static str,
    /// In the `{name}` form axum and OpenAPI share.
    pub path: &'static str,
    /// What the caller's key must allow.
    pub action: ApiAction,
    endpoint: Endpoint,
}

#[derive(Debug, Clone, Copy)]
enum Endpoint {
    Publish,
    SendToUser,
    Broadcast,
    User,
    Presence,
    Disconnect,
    Stats,
}

/// Every route of the API: the router is built from this table and nothing else.
pub const ROUTES: [ApiRoute; 7] = [
    route("POST", "/publish", ApiAction::Publish, Endpoint::Publish),
    route(
        "POST",
        "/users/{user}/send",
        ApiAction::SendToUser,
        Endpoint::SendToUser,
    ),
    route(
        "POST",
        "/broadcast",
        ApiAction::Broadcast,
        Endpoint::Broadcast,
    ),
    route("GET", "/users/{user}", ApiAction::Presence, Endpoint::User),
    route("GET", "/presence", ApiAction::Presence, Endpoint::Presence),
    route(
        "DELETE",
        "/users/{user}/sessions",
        ApiAction::Disconnect,
        Endpoint::Disconnect,
    ),
    route("GET", "/stats", ApiAction::Stats, Endpoint::Stats),
];

const fn route(
    method: &'static str,
    path: &'static str,
    action: ApiAction,
    endpoint: Endpoint,
) -> ApiRoute {
    ApiRoute {
        method,
        path,
        action,
        endpoint,
    }
}

/// What the API's handlers share.
#[derive(Debug, Clone)]
struct Api {
    node: Arc<Node>,
}

/// The `/api/v1` router: the routes of [`ROUTES`] behind their key check, JSON 404 and 405
/// for anything else; only the 404s when no key is configured.
pub(super) fn routes(node: Arc<Node>) -> Router {
    let keys = Arc::new(Keys::from_config(&node.config.http.api_keys));
    let api = match keys.is_empty() {
        true => Router::new(),
        false => {
            info!(keys = keys.len(), "http: api at /api/v1");
            let api = Api { node };
            ROUTES
                .iter()
                .fold(Router::new(), |router, route| {
                    let guard = Guard {
                        keys: Arc::clone(&keys),
                        action: route.action,
                    };
                    let handler =
                        handler(route).route_layer(from_fn_with_state(guard, auth::guard));
                    router.route(route.path, handler)
                })
                .with_state(api)
        }
    };
    api.fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

fn handler(route: &ApiRoute) -> MethodRouter<Api> {
    let method = Method::from_bytes(route.method.as_bytes()).expect("a method in ROUTES");
    let filter = MethodFilter::try_from(method).expect("a method axum routes");
    match route.endpoint {
        Endpoint::Publish => on(filter, publish::publish),
        Endpoint::SendToUser => on(filter, publish::send_to_user),
        Endpoint::Broadcast => on(filter, publish::broadcast),
        Endpoint::User => on(filter, users::user),
        Endpoint::Presence => on(filter, users::presence),
        Endpoint::Disconnect => on(filter, users::disconnect),
        Endpoint::Stats => on(filter, stats::stats),
    }
}
