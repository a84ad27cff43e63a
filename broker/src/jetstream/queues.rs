//! The queue store as routing's durable store (`routing::durable`): a SEND is stored with
//! JetStream's acknowledgement, and while a queue has consumers on this node one feeder task
//! pulls what they have room for and hands it to the node's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::Headers;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use super::{AckHandle, Nacked, Puller, QueueStore, StoreError};
use crate::config::QueuesJetStreamConfig;
use crate::metrics::StoreCounts;
use crate::routing::durable::{DurableStore, Settlement, StoredHandle, Storing};
use crate::routing::queue::{FeedRoom, Queue, QueuedMessage};
use crate::routing::router::Refusal;

/// The longest a feeder waits before trying JetStream again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Named queues kept in JetStream.
#[derive(Debug)]
pub struct JetStreamQueues {
    store: QueueStore,
    default_prefetch: usize,
    timing: Timing,
    settling: Arc<Settling>,
}

/// How a feeder paces its requests.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// How long one pull waits for messages.
    pull_wait: Duration,
    /// How often a feeder without room shows NATS its consumer is in use: well within
    /// `consumer_idle_ms`.
    keep_alive: Duration,
}

impl JetStreamQueues {
    pub fn new(store: QueueStore, config: &QueuesJetStreamConfig) -> JetStreamQueues {
        JetStreamQueues {
            store,
            default_prefetch: config.default_prefetch,
            timing: Timing {
                pull_wait: Duration::from_millis(config.pull_wait_ms),
                keep_alive: Duration::from_millis(match config.consumer_idle_ms {
                    0 => config.pull_wait_ms,
                    idle => config.pull_wait_ms.min(idle / 3).max(1),
                }),
            },
            settling: Settling::start(),
        }
    }

    /// What the store has done since start.
    pub fn counts(&self) -> StoreCounts {
        self.store.counts()
    }

    /// Completes once every ack and nak handed to JetStream so far has been sent: at
    /// shutdown, the messages the closing sessions held go back before the link closes.
    pub async fn settled(&self) {
        loop {
            let idle = self.settling.idle.notified();
            if self.settling.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// Settlements on their way to JetStream, sent by one task in the order they were made:
/// messages given back together (a consumer's unacknowledged ones) come back in their order,
/// and a task per settlement would cost more than the settlement.
#[derive(Debug)]
struct Settling {
    queued: mpsc::UnboundedSender<Settle>,
    pending: AtomicUsize,
    idle: Notify,
}

#[derive(Debug)]
enum Settle {
    Ack(AckHandle),
    Nak(AckHandle),
}

impl Settling {
    fn start() -> Arc<Settling> {
        let (queued, mut settle) = mpsc::unbounded_channel::<Settle>();
        let settling = Arc::new(Settling {
            queued,
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        // Holds no strong reference: the task ends once the store (and every handle) is gone.
        let weak = Arc::downgrade(&settling);
        tokio::spawn(async move {
            while let Some(next) = settle.recv().await {
                match next {
                    Settle::Ack(handle) => acknowledge(handle).await,
                    Settle::Nak(handle) => give_back(handle).await,
                }
                if let Some(settling) = weak.upgrade() {
                    settling.done();
                }
            }
        });
        settling
    }

    fn queue(&self, settle: Settle) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.queued.send(settle).is_err() {
            // The task is gone (the runtime is ending): JetStream redelivers after the ack
            // wait.
            self.done();
        }
    }

    fn done(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

async fn acknowledge(handle: AckHandle) {
    if let Err(e) = handle.ack().await {
        debug!(error = %e, "queue store: an ack was not sent; the message comes back after the ack wait");
    }
}

async fn give_back(handle: AckHandle) {
    match handle.nak().await {
        Ok(Nacked::Redelivered) => {}
        Ok(Nacked::DeadLettered(queue)) => {
            debug!(dead_letter_queue = %queue, "queue store: a message was dead-lettered");
        }
        Ok(Nacked::Dropped) => {
            warn!(
                "queue store: a message at its last delivery was dropped (queues.jetstream.dead_letter)"
            );
        }
        Err(e) => {
            debug!(error = %e, "queue store: a nak was not sent; the message comes back after the ack wait");
        }
    }
}

impl DurableStore for JetStreamQueues {
    fn store(&self, destination: &str, headers: Headers, body: Bytes) -> Storing {
        let store = self.store.clone();
        let destination = destination.to_owned();
        Box::pin(async move {
            store
                .publish(&destination, &headers, body)
                .await
                .map(drop)
                .map_err(|e| refusal(e, "the message was not stored"))
        })
    }

    fn feed(&self, queue: Arc<Queue>) {
        let settling = Arc::clone(&self.settling);
        tokio::spawn(feed(self.store.clone(), queue, self.timing, settling));
    }

    fn default_prefetch(&self) -> usize {
        self.default_prefetch
    }

    fn check(&self, destination: &str) -> Result<(), Refusal> {
        self.store
            .check(destination)
            .map_err(|e| refusal(e, "no queue of that name can be kept"))
    }
}

/// The ERROR for a SEND or SUBSCRIBE the store refused, with what it means for the client
/// (not the destination, which may be the very thing too long).
fn refusal(error: StoreError, consequence: &str) -> Refusal {
    let message = match error {
        StoreError::TooLarge | StoreError::HeadersTooLarge { .. } => "message too large",
        StoreError::Full(_) => "queue full",
        StoreError::QueueNameTooLong { .. } => "invalid destination",
        StoreError::TimedOut | StoreError::Consumer { .. } | StoreError::JetStream(_) => {
            "queue store unavailable"
        }
    };
    Refusal {
        message,
        detail: format!("{error}; {consequence}"),
    }
}

/// Feeds `queue` until it has no consumers: pulls as many messages as they have room for,
/// waits for room when they have none. After a failure it opens the queue's consumer again
/// (NATS may have deleted it after `consumer_idle_ms`, or lost it with a stream kept in
/// memory).
async fn feed(store: QueueStore, queue: Arc<Queue>, timing: Timing, settling: Arc<Settling>) {
    let wait = timing.pull_wait;
    let mut failures = 0;
    let mut puller: Option<Puller> = None;
    loop {
        // Made before looking at the room, so that room freed in between wakes it.
        let changed = queue.feed_room_changed();
        let room = match queue.feed_room() {
            FeedRoom::Stop => return,
            FeedRoom::Room(room) => room,
        };
        if room == 0 {
            // Room may also come from other queues freeing the node's bytes, which does not
            // wake this one: look again after a pull's wait at the latest. Meanwhile the
            // consumer is kept in use, so that NATS does not delete it.
            let keep_alive = async {
                loop {
                    let next = tokio::time::Instant::now() + timing.keep_alive;
                    if let Some(open) = &puller {
                        open.keep_alive(timing.keep_alive).await;
                    }
                    tokio::time::sleep_until(next).await;
                }
            };
            let _ = tokio::time::timeout(wait, async {
                tokio::select! {
                    () = changed => {}
                    () = keep_alive => {}
                }
            })
            .await;
            continue;
        }
        let pulled = match &puller {
            Some(open) => pull_into(open, &queue, room, wait, &settling).await,
            None => match store.puller(queue.name()).await {
                Ok(open) => {
                    puller = Some(open);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        match pulled {
            // Nothing came: the consumer may have been deleted by NATS (a pull on a missing
            // consumer just times out), so it is opened again (a no-op if it exists).
            Ok(0) => {
                failures = 0;
                puller = None;
            }
            Ok(_) => failures = 0,
            Err(e) => {
                warn!(queue = %queue.name(), error = %e, "queue store: pulling failed; trying again");
                puller = None;
                if !back_off(&queue, &mut failures).await {
                    return;
                }
            }
        }
    }
}

/// Waits longer after each failure in a row, up to `MAX_BACKOFF`; false if the queue has no
/// consumers left meanwhile (the feeder stops).
async fn back_off(queue: &Queue, failures: &mut u32) -> bool {
    *failures += 1;
    let delay = Duration::from_millis(50 << (*failures).min(7)).min(MAX_BACKOFF);
    tokio::time::sleep(delay).await;
    queue.feed_room() != FeedRoom::Stop
}

/// One pull of at most `room` messages into `queue`, read to its end (messages JetStream sent
/// for an abandoned pull would come back only after the ack wait). Messages the queue no
/// longer takes (its consumers left meanwhile) are given back once the pull is over: given
/// back at once, JetStream would hand them straight back to this still open pull, and each
/// round would count as a delivery.
async fn pull_into(
    puller: &Puller,
    queue: &Queue,
    room: usize,
    wait: Duration,
    settling: &Arc<Settling>,
) -> Result<usize, StoreError> {
    let mut pull = puller.pull(room, wait).await?;
    let mut refused = Vec::new();
    let mut pulled = 0;
    while let Some(next) = pull.next().await {
        let delivery = next?;
        pulled += 1;
        let redelivered = delivery.redelivered();
        let message = QueuedMessage::from_store(
            format!("js-{}", delivery.id),
            queue.name(),
            delivery.headers,
            delivery.body,
            StoredHandle::new(Box::new(Stored {
                handle: delivery.handle,
                settling: Arc::clone(settling),
            })),
        );
        if let Err(message) = queue.enqueue_stored(Arc::new(message), redelivered) {
            refused.push(message);
        }
    }
    // Dropped, each is given back.
    drop(refused);
    Ok(pulled)
}

/// A pulled message's settlement, handed to the settling task: a queue settles under its lock,
/// which must not wait for the network.
#[derive(Debug)]
struct Stored {
    handle: AckHandle,
    settling: Arc<Settling>,
}

impl Settlement for Stored {
    fn ack(self: Box<Self>) {
        let Stored { handle, settling } = *self;
        settling.queue(Settle::Ack(handle));
    }

    fn nak(self: Box<Self>) {
        let Stored { handle, settling } = *self;
        settling.queue(Settle::Nak(handle));
    }
}
