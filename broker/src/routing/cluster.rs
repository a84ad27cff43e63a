//! The seam between this node's routing and the other nodes of a cluster.
//!
//! Routing tells the link when local interest starts and ends (so a NATS link subscribes a
//! subject only while someone here wants it) and hands it every local publish that other
//! nodes may want. Messages from other nodes come back in through
//! [`Router::deliver_remote`](super::router::Router::deliver_remote), the same path as a local
//! publish minus the forwarding. A single node uses [`NoCluster`], which does nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::Headers;

use crate::outbox::Outbox;

/// Who a message crossing nodes is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// Every subscription matching a topic destination, on every node.
    Topic,
    /// Every session of user `name` subscribed to the user destination, on every node.
    User { name: &'a str },
    /// One session (`/user/<sessionId>/…` or a resolved name), on the node `node` that
    /// holds it (the session id's first part).
    Session { node: &'a str, session: &'a str },
}

/// A message crossing nodes: what a local publish hands the link, and what the link hands
/// back to routing on the receiving node.
#[derive(Debug, Clone, Copy)]
pub struct Crossing<'a> {
    pub audience: Audience<'a>,
    /// The topic destination, or for users and sessions the user destination after the user
    /// prefix (`/queue/x` for `/user/alice/queue/x`).
    pub destination: &'a str,
    /// Assigned by the publishing node; every node delivers it under the same id.
    pub message_id: &'a str,
    /// The headers subscribers see (the broker's own already removed).
    pub headers: &'a Headers,
    pub body: &'a Bytes,
}

/// Sessions per user, as answered by one or more nodes.
pub type Presence = BTreeMap<String, usize>;

/// What other nodes answered to a presence question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemotePresence {
    pub users: Presence,
    /// How many other nodes answered in time.
    pub nodes: usize,
}

/// What the other nodes answered to a disconnect.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteDisconnect {
    /// Sessions they closed.
    pub sessions: usize,
    /// How many other nodes answered in time.
    pub nodes: usize,
}

/// A boxed future, as a trait object's async method returns it.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The state of the link to the other nodes, for logs, metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Single node: there is no link.
    Standalone,
    Connected,
    /// Lost (or not yet made): local traffic goes on, other nodes are out of reach.
    Disconnected,
}

impl LinkState {
    /// As the HTTP API and the admin page report it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Standalone => "standalone",
            LinkState::Connected => "connected",
            LinkState::Disconnected => "disconnected",
        }
    }
}

/// How routing reaches the other nodes. Every method is called from routing, which holds no
/// lock across it and never awaits: implementations record and return at once.
pub trait ClusterLink: Send + Sync + fmt::Debug {
    /// Local interest in a topic destination or pattern (the whole destination, prefix
    /// included) started (`on`) or ended. Called once per change, in order per pattern.
    fn topic_interest(&self, pattern: &str, on: bool);

    /// This node holds its first session of `user`, or no longer any.
    fn user_interest(&self, user: &str, on: bool);

    /// The first local consumer of the named queue `queue` subscribed (`on`), or the last
    /// one left. Queues are node-local for now, so a link may ignore it; a link that keeps
    /// queues across nodes consumes on its consumers' behalf while there are any.
    fn queue_interest(&self, queue: &str, on: bool);

    /// A message published here, for the other nodes. Returns the link's outgoing buffer if
    /// it is above its high-water mark: the publisher waits for it like for a slow
    /// subscriber. Refused if the link can never carry it (the publisher is told, rather
    /// than other nodes silently missing it).
    fn forward(&self, message: Crossing<'_>) -> Result<Option<Arc<Outbox>>, Unforwardable>;

    /// Users online on the other nodes (only `user` if given), as many nodes as answer
    /// within the link's presence timeout.
    fn presence(&self, user: Option<String>) -> BoxFuture<RemotePresence>;

    /// Closes `user`'s sessions on the other nodes, telling each `reason`; as many nodes as
    /// answer within the link's presence timeout.
    fn disconnect(&self, user: String, reason: String) -> BoxFuture<RemoteDisconnect>;

    fn state(&self) -> LinkState;
}

/// Why the link can never carry a message to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unforwardable {
    /// Larger, as the link encodes it, than the link carries (NATS: the servers'
    /// `max_payload`).
    TooLarge { size: usize, max: usize },
    /// A user name or session too long for the link's addressing.
    NameTooLong,
}

/// The link of a node without a cluster.
#[derive(Debug, Default)]
pub struct NoCluster;

impl ClusterLink for NoCluster {
    fn topic_interest(&self, _pattern: &str, _on: bool) {}

    fn user_interest(&self, _user: &str, _on: bool) {}

    fn queue_interest(&self, _queue: &str, _on: bool) {}

    fn forward(&self, _message: Crossing<'_>) -> Result<Option<Arc<Outbox>>, Unforwardable> {
        Ok(None)
    }

    fn presence(&self, _user: Option<String>) -> BoxFuture<RemotePresence> {
        Box::pin(std::future::ready(RemotePresence::default()))
    }

    fn disconnect(&self, _user: String, _reason: String) -> BoxFuture<RemoteDisconnect> {
        Box::pin(std::future::ready(RemoteDisconnect::default()))
    }

    fn state(&self) -> LinkState {
        LinkState::Standalone
    }
}
