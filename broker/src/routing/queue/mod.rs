//! Point-to-point routing (semantics.md section 3): named queues that give each message to
//! exactly one consumer, round-robin over the consumers with room; buffering while nobody
//! consumes, within bounds; acknowledgements, prefetch and redelivery.
//!
//! The same [`Queue`] also carries the messages of a client-ack topic subscription (a private
//! queue with that one consumer), so acks, prefetch and NACK redelivery work one way for both
//! destination kinds.
//!
//! Locks, in the order they nest: a map shard (only to find, create or delete a queue; never
//! held while delivering), then one queue, then a consumer's outbox. No lock is held across
//! an `.await`; there is no `.await` here at all.

mod consumer;
mod fifo;
mod message;
mod quota;
mod room;

#[cfg(test)]
mod durable_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald_protocol::Headers;
use parking_lot::RwLock;

pub use consumer::{AckId, AckMode, ConsumerSpec};
pub use fifo::{Bound, Deleted, Enqueued, FeedRoom, Queue, QueueDepth, Settle, UnknownAck};
pub use message::QueuedMessage;
pub use quota::Creator;
pub use room::Room;

use super::publish::{MessageIds, expires, forwarded_headers, is_expired, now_ms};
use crate::config::{QueueOverflow, QueuesConfig};
use crate::metrics::{QueueStats, Stats};

/// Shards of the queue map: publishers to different queues rarely share one.
const SHARDS: usize = 16;

/// Queue bounds, from `[queues]`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_total_bytes: usize,
    pub overflow: QueueOverflow,
    pub grace: Duration,
    pub max_queues: usize,
    pub max_queues_per_session: usize,
}

/// What every queue of the node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub limits: Limits,
    pub stats: Arc<Stats>,
    pub next_consumer: AtomicU64,
    /// Where publishers blocked by `max_total_bytes` wait: room in any queue will do.
    pub node_room: Room,
}

impl Shared {
    /// Charges `bytes` to the node's total (`queues.max_total_bytes`).
    pub fn charge(&self, bytes: usize) {
        QueueStats::add(&self.stats.queues.bytes, bytes as i64);
    }

    /// Gives `bytes` back to the node's total and wakes publishers waiting for it. `SeqCst`
    /// pairs with the second look at the total in `Queue::make_room` (see `Room`).
    pub fn release(&self, bytes: usize) {
        if bytes != 0 {
            (self.stats.queues.bytes).fetch_sub(bytes as i64, Ordering::SeqCst);
            self.node_room.free();
        }
    }

    /// Bytes all queues hold now.
    pub fn total_bytes(&self) -> usize {
        self.stats.queues.bytes.load(Ordering::SeqCst).max(0) as usize
    }
}

type Shard = RwLock<HashMap<Arc<str>, Arc<Queue>>>;

/// The node's named queues.
#[derive(Debug)]
pub struct QueueRouter {
    shards: Box<[Shard]>,
    hasher: RandomState,
    shared: Arc<Shared>,
    ids: Arc<MessageIds>,
}

impl QueueRouter {
    pub fn new(config: &QueuesConfig, ids: Arc<MessageIds>, stats: Arc<Stats>) -> QueueRouter {
        let limits = Limits {
            max_messages: config.max_messages_per_queue,
            max_bytes: config.max_bytes_per_queue,
            max_total_bytes: config.max_total_bytes,
            overflow: config.overflow,
            grace: Duration::from_millis(config.empty_queue_grace_ms),
            max_queues: config.max_queues,
            max_queues_per_session: config.max_queues_per_session,
        };
        QueueRouter {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            shared: Arc::new(Shared {
                limits,
                stats,
                next_consumer: AtomicU64::new(1),
                node_room: Room::default(),
            }),
            ids,
        }
    }

    fn shard(&self, name: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(name) as usize % SHARDS]
    }

    /// The queue named `name`, created for `creator` if it does not exist and the queue
    /// count bounds allow; `durable` if a store feeds it (see `Queue::enqueue_stored`).
    fn get_or_create(
        &self,
        name: &str,
        creator: &Creator,
        durable: bool,
    ) -> Result<Arc<Queue>, Bound> {
        let shard = self.shard(name);
        if let Some(queue) = shard.read().get(name) {
            return Ok(Arc::clone(queue));
        }
        let mut map = shard.write();
        if let Some(queue) = map.get(name) {
            return Ok(Arc::clone(queue));
        }
        let limits = &self.shared.limits;
        let stats = &self.shared.stats.queues;
        quota::reserve(
            &stats.queues,
            limits.max_queues,
            creator,
            limits.max_queues_per_session,
        )
        .inspect_err(|_| QueueStats::count(&stats.refused_creations, 1))?;
        let queue = Arc::new(Queue::named(
            name,
            creator.clone(),
            Arc::clone(&self.shared),
            durable,
        ));
        map.insert(Arc::from(name), Arc::clone(&queue));
        Ok(queue)
    }

    /// Routes one SEND to the queue `destination`, created on first use on behalf of
    /// `creator` (the sending session). Under policy `block`, a message that does not fit
    /// is not taken: [`Enqueued::Blocked`] says where to wait before sending it again.
    pub fn publish(
        &self,
        destination: &str,
        headers: &Headers,
        body: &[u8],
        creator: &Creator,
    ) -> Enqueued {
        let expires = expires(headers);
        if is_expired(expires, now_ms()) {
            self.shared.stats.record_expired();
            return Enqueued::Expired;
        }
        let message = Arc::new(QueuedMessage::new(
            self.ids.next(),
            destination,
            &forwarded_headers(headers),
            body,
            expires,
        ));
        loop {
            let queue = match self.get_or_create(destination, creator, false) {
                Ok(queue) => queue,
                Err(bound) => {
                    QueueStats::count(&self.shared.stats.queues.rejected_sends, 1);
                    return Enqueued::Rejected(bound);
                }
            };
            // A queue deleted by the sweep between lookup and lock: look again.
            if let Ok(enqueued) = queue.enqueue(Arc::clone(&message)) {
                if enqueued == Enqueued::Accepted {
                    let stats = &self.shared.stats;
                    QueueStats::count(&stats.queues.sends, 1);
                    QueueStats::count(&stats.messages_published, 1);
                }
                return enqueued;
            }
        }
    }

    /// Adds a consumer to the queue `destination` (created for `creator` if needed) and
    /// returns the queue, which the session keeps for its acknowledgements; or the queue
    /// count bound that kept it from being created. The consumer gets messages once the
    /// session calls [`Queue::resume`]. A `durable` queue is fed by its store (the caller
    /// starts the feeding, see [`Queue::claim_feed`]).
    pub fn subscribe(
        &self,
        destination: &str,
        spec: ConsumerSpec,
        creator: &Creator,
        durable: bool,
    ) -> Result<Arc<Queue>, Bound> {
        loop {
            let queue = self.get_or_create(destination, creator, durable)?;
            if queue.add_consumer(spec.clone()).is_ok() {
                return Ok(queue);
            }
        }
    }

    /// A private queue for a client-ack subscription to the topic `destination`, with `spec`
    /// as its only consumer; the caller subscribes it to the topic with the subscription, where
    /// topic fan-out finds it.
    pub fn private_queue(&self, destination: &str, spec: ConsumerSpec) -> Arc<Queue> {
        let queue = Arc::new(Queue::private(destination, Arc::clone(&self.shared)));
        queue
            .add_consumer(spec)
            .expect("a new queue is not deleted");
        queue
    }

    /// Drops expired waiting messages, and deletes queues empty and without consumers for
    /// the grace period; returns how many queues it deleted.
    pub fn sweep(&self, now: Instant) -> usize {
        let grace = self.shared.limits.grace;
        let now_ms = now_ms();
        let mut deleted = 0;
        for shard in self.shards.iter() {
            let idle: Vec<Arc<str>> = shard
                .read()
                .iter()
                .filter(|(_, queue)| {
                    queue.purge_expired(now_ms);
                    let depth = queue.depth();
                    depth.ready == 0 && depth.consumers == 0
                })
                .map(|(name, _)| Arc::clone(name))
                .collect();
            if idle.is_empty() {
                continue;
            }
            let mut map = shard.write();
            for name in idle {
                if map.get(&name).is_some_and(|q| q.delete_if_idle(now, grace)) {
                    if let Some(queue) = map.remove(&name) {
                        queue.release_quota();
                    }
                    deleted += 1;
                }
            }
        }
        QueueStats::count(&self.shared.stats.queues.deleted, deleted as u64);
        deleted
    }

    /// How often [`QueueRouter::sweep`] should run: half the grace period, between 10 ms and
    /// one second.
    pub fn sweep_interval(&self) -> Duration {
        (self.shared.limits.grace / 2).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// Named queues in existence.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.read().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The size of the queue `destination`, if it exists.
    pub fn depth(&self, destination: &str) -> Option<QueueDepth> {
        let queue = self.shard(destination).read().get(destination).cloned()?;
        Some(queue.depth())
    }
}
