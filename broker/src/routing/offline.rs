//! Offline delivery (`[[users.offline]]`, docs/destinations.md): the seam between routing and
//! the store that keeps a user's messages while no session of the user subscribes.
//!
//! A SEND to an opted-in `/user/<name>/queue/x` that no session of `<name>` on this node
//! subscribes to is not routed by [`Router::publish`](super::router::Router::publish): it
//! comes back as an [`OfflineSend`] for the caller to settle through
//! [`Router::settle_offline`](super::router::Router::settle_offline), which asks the
//! [`OfflineStore`] whether another node has such a session (then it is routed live, as
//! usual) and otherwise stores it. A subscription of a user to an opted-in destination makes
//! this node answer for the user ([`OfflineStore::subscribed`]) and drains what was stored
//! into the subscription's queue through a [`StoredTarget`].

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald_protocol::Headers;

use super::cluster::BoxFuture;
use super::publish::{MessageIds, expires, is_expired, now_ms};
use super::queue::{Enqueued, Queue, QueuedMessage};
use crate::config::Config;
pub use crate::metrics::OfflineOutcome;
use crate::metrics::Stats;

/// A SEND to an opted-in user destination, waiting for its offline-or-live decision.
#[derive(Debug, Clone)]
pub struct OfflineSend {
    /// Which `[[users.offline]]` block (its index).
    pub block: usize,
    pub user: String,
    /// The user destination (`/queue/x`).
    pub destination: String,
    /// The headers subscribers see (the broker's own removed).
    pub headers: Headers,
    pub body: Bytes,
}

/// What the store did with an [`OfflineSend`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Kept: no session of the user subscribes to it anywhere. `dropped_oldest`: the user
    /// had `max_per_user` kept, and the oldest was dropped for it.
    Stored { dropped_oldest: bool },
    /// Not kept: a session of the user subscribes to it on another node.
    Online,
}

/// Where stored messages are kept, and how nodes tell each other a user is subscribed.
pub trait OfflineStore: Send + Sync + fmt::Debug {
    /// Asks the other nodes whether one has a session of the user subscribed to the
    /// destination; if none has, stores the message and completes once it is stored.
    fn store_unless_online(&self, send: OfflineSend) -> BoxFuture<Result<Decision, String>>;

    /// A session of `user` subscribed to block `block`'s destination on this node: the node
    /// answers for the user (from its first such subscription), and the stored messages are
    /// offered to `target` in order.
    fn subscribed(&self, block: usize, user: &str, target: StoredTarget);

    /// One such subscription ended (the node stops answering after the last).
    fn unsubscribed(&self, block: usize, user: &str);
}

/// What a stored message became when offered to a subscription's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// In the queue (delivered or waiting there): settled for the user.
    Yes,
    /// Past its `expires`: settled, never delivered.
    Expired,
    /// The queue is gone or has no room: leave it stored.
    No,
}

/// The queue of one subscription that stored messages are drained into.
#[derive(Debug, Clone)]
pub struct StoredTarget {
    queue: Arc<Queue>,
    ids: Arc<MessageIds>,
    stats: Arc<Stats>,
}

impl StoredTarget {
    pub(super) fn new(queue: Arc<Queue>, ids: Arc<MessageIds>, stats: Arc<Stats>) -> Self {
        StoredTarget { queue, ids, stats }
    }

    /// Whether the subscription still has a consumer to deliver to.
    pub fn is_open(&self) -> bool {
        self.queue.depth().consumers > 0
    }

    /// Puts a stored message in the queue (with a message id of this node).
    pub fn offer(&self, headers: &Headers, body: &[u8]) -> Taken {
        if !self.is_open() {
            return Taken::No;
        }
        let expires = expires(headers);
        if is_expired(expires, now_ms()) {
            self.stats.record_offline(OfflineOutcome::Expired);
            return Taken::Expired;
        }
        let message =
            QueuedMessage::new(self.ids.next(), self.queue.name(), headers, body, expires);
        match self.queue.enqueue(Arc::new(message)) {
            Ok(Enqueued::Accepted) => {
                self.stats.record_offline(OfflineOutcome::Delivered);
                Taken::Yes
            }
            Ok(Enqueued::Expired) => {
                self.stats.record_offline(OfflineOutcome::Expired);
                Taken::Expired
            }
            Ok(_) | Err(_) => Taken::No,
        }
    }

    /// Counts a stored message found older than its block's `keep_ms`.
    pub fn record_too_old(&self) {
        self.stats.record_offline(OfflineOutcome::Expired);
    }
}

/// The opted-in destinations of the node, and the store once the node has opened it.
#[derive(Debug, Default)]
pub struct OfflineRouting {
    /// Per `[[users.offline]]` block, its user destination (`/queue/x`).
    destinations: Vec<String>,
    store: OnceLock<Arc<dyn OfflineStore>>,
}

impl OfflineRouting {
    pub fn new(config: &Config) -> Self {
        let prefix = &config.destinations.user_prefix;
        OfflineRouting {
            destinations: config
                .users
                .offline
                .iter()
                .filter_map(|block| block.user_destination(prefix).map(str::to_owned))
                .collect(),
            store: OnceLock::new(),
        }
    }

    /// Sets the store (once, at start); until then nothing is opted in.
    pub fn set_store(&self, store: Arc<dyn OfflineStore>) {
        let _ = self.store.set(store);
    }

    /// The block opting `destination` (`/queue/x`) in, and the store, if it is opted in.
    pub fn opted_in(&self, destination: &str) -> Option<(usize, &Arc<dyn OfflineStore>)> {
        let store = self.store.get()?;
        let block = self.destinations.iter().position(|d| d == destination)?;
        Some((block, store))
    }
}
