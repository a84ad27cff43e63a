//! Durable queues (`queues.store = "jetstream"`): the seam between routing and the store that
//! keeps named queues' messages outside this process, shared by every node.
//!
//! Routing hands each SEND to a named queue to the store ([`DurableStore::store`]; the
//! RECEIPT waits for it) and, while a queue has consumers on this node, lets the store feed it
//! ([`DurableStore::feed`]): the store pulls only as many messages as the consumers have room
//! for and hands them to the node's queue, which delivers them as it delivers any message.
//! Each message it hands over carries a [`StoredHandle`]: the queue acknowledges it (an ACK,
//! an auto-ack delivery, its expiry) or gives it back at once (a NACK, the consumer's end).
//! The store lives above routing (`jetstream/`), which is why this is a trait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::Headers;
use parking_lot::Mutex;

use super::queue::Queue;
use super::router::Refusal;

/// A message on its way into the store: resolves once it is stored, or says why not.
pub type Storing = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

/// Where a node's named queues keep their messages.
pub trait DurableStore: Send + Sync + fmt::Debug {
    /// Stores one message for the queue `destination` (the publisher's headers, minus those
    /// the broker owns).
    fn store(&self, destination: &str, headers: Headers, body: Bytes) -> Storing;

    /// Feeds `queue`, which has gained its first consumer on this node, until it has none
    /// (see [`Queue::feed_room`]). Returns at once: the feeding runs on its own task.
    fn feed(&self, queue: Arc<Queue>);

    /// Unacknowledged messages at most for a subscription that names no `prefetch-count`:
    /// without a bound a consumer would pull the whole queue into this process.
    fn default_prefetch(&self) -> usize;

    /// Refuses a queue the store can never hold (its name too long for it), so that a
    /// SUBSCRIBE to it is refused rather than fed never.
    fn check(&self, destination: &str) -> Result<(), Refusal>;
}

/// Settles one stored message with its store, once.
pub trait Settlement: Send + Sync + fmt::Debug {
    /// Done with: the store deletes it.
    fn ack(self: Box<Self>);
    /// Not taken: the store delivers it again (to any node), or dead-letters it.
    fn nak(self: Box<Self>);
}

/// The settlement of a message a queue holds. Whichever comes first of [`StoredHandle::ack`],
/// [`StoredHandle::nak`] or the handle's drop settles it; dropped unsettled (its consumer
/// left, the queue went away), the message is given back at once.
pub struct StoredHandle(Mutex<Option<Box<dyn Settlement>>>);

impl StoredHandle {
    pub fn new(settlement: Box<dyn Settlement>) -> StoredHandle {
        StoredHandle(Mutex::new(Some(settlement)))
    }

    pub fn ack(&self) {
        if let Some(settlement) = self.0.lock().take() {
            settlement.ack();
        }
    }

    pub fn nak(&self) {
        if let Some(settlement) = self.0.lock().take() {
            settlement.nak();
        }
    }
}

impl Drop for StoredHandle {
    fn drop(&mut self) {
        if let Some(settlement) = self.0.get_mut().take() {
            settlement.nak();
        }
    }
}

impl fmt::Debug for StoredHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoredHandle").finish_non_exhaustive()
    }
}
