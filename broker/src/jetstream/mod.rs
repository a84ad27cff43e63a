//! Queues kept in NATS JetStream (`queues.store = "jetstream"`, see docs/queues.md): the store
//! layer routing builds on. Above `cluster`, whose NATS client, subject escaping and header
//! encoding it reuses.
//!
//! One stream holds every queue, a subject per queue; one durable pull consumer per queue is
//! shared by every node, so each message goes to one node at a time. A node pulls only as
//! many messages as its consumers have room for: waiting messages live in JetStream, never in
//! Herald.

mod error;
mod feed;
mod names;
mod offline;
mod pull;
mod queues;
mod settings;
mod store;

pub use error::{OpenError, StoreError};
pub use offline::OfflineJetStream;
pub use pull::{AckHandle, Delivery, Nacked, Pull, Puller};
pub use queues::JetStreamQueues;
pub use store::{QueueStore, StoredId};

/// Headers a dead-lettered message carries (each set, replacing an earlier value).
pub mod dead_letter_headers {
    /// Why: `nacked` (NACKed at its last delivery) or `ack-wait` (its last delivery was not
    /// acknowledged in time).
    pub const REASON: &str = "herald-dead-letter-reason";
    /// How many times it was delivered.
    pub const DELIVERIES: &str = "herald-dead-letter-deliveries";
    /// The queue it was dead-lettered from.
    pub const QUEUE: &str = "herald-dead-letter-queue";
}
