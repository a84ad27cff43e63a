//! Point-to-point routing (SEMANTICS.md section 3): named queues that give each message to
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

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use herald_protocol::Headers;
use parking_lot::RwLock;

pub use consumer::{AckId, AckMode, ConsumerSpec};
pub use fifo::{Bound, Deleted, Enqueued, Queue, QueueDepth, Settle, UnknownAck};
pub use message::QueuedMessage;

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
}

/// What every queue of the node shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub limits: Limits,
    pub stats: Arc<Stats>,
    pub next_consumer: AtomicU64,
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
        };
        QueueRouter {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            hasher: RandomState::new(),
            shared: Arc::new(Shared {
                limits,
                stats,
                next_consumer: AtomicU64::new(1),
            }),
            ids,
        }
    }

    fn shard(&self, name: &str) -> &Shard {
        &self.shards[self.hasher.hash_one(name) as usize % SHARDS]
    }

    /// The queue named `name`, created if it does not exist.
    fn get_or_create(&self, name: &str) -> Arc<Queue> {
        let shard = self.shard(name);
        if let Some(queue) = shard.read().get(name) {
            return Arc::clone(queue);
        }
        let mut map = shard.write();
        let queue = map.entry(Arc::from(name)).or_insert_with(|| {
            QueueStats::add(&self.shared.stats.queues.queues, 1);
            Arc::new(Queue::new(name, false, Arc::clone(&self.shared)))
        });
        Arc::clone(queue)
    }

    /// Routes one SEND to the queue `destination` (created on first use).
    pub fn publish(&self, destination: &str, headers: &Headers, body: &[u8]) -> Enqueued {
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
            // A queue deleted by the sweep between lookup and lock: look again.
            if let Ok(enqueued) = self
                .get_or_create(destination)
                .enqueue(Arc::clone(&message))
            {
                if enqueued == Enqueued::Accepted {
                    let stats = &self.shared.stats;
                    QueueStats::count(&stats.queues.sends, 1);
                    QueueStats::count(&stats.messages_published, 1);
                }
                return enqueued;
            }
        }
    }

    /// Adds a consumer to the queue `destination` (created if needed) and returns the queue,
    /// which the session keeps for its acknowledgements. The consumer gets messages once the
    /// session calls [`Queue::resume`].
    pub fn subscribe(&self, destination: &str, spec: ConsumerSpec) -> Arc<Queue> {
        loop {
            let queue = self.get_or_create(destination);
            if queue.add_consumer(spec.clone()).is_ok() {
                return queue;
            }
        }
    }

    /// A private queue for a client-ack subscription to the topic `destination`, with `spec`
    /// as its only consumer; the caller puts it in the subscription's [`Subscriber`] handle,
    /// where topic fan-out finds it.
    ///
    /// [`Subscriber`]: crate::routing::topic::Subscriber
    pub fn private_queue(&self, destination: &str, spec: ConsumerSpec) -> Arc<Queue> {
        let queue = Arc::new(Queue::new(destination, true, Arc::clone(&self.shared)));
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
                    map.remove(&name);
                    deleted += 1;
                }
            }
        }
        let stats = &self.shared.stats.queues;
        QueueStats::add(&stats.queues, -(deleted as i64));
        QueueStats::count(&stats.deleted, deleted as u64);
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
