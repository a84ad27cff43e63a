//! The queue store as routing's durable store (`routing::durable`): a SEND is stored with
//! JetStream's acknowledgement, and while a queue has consumers on this node one feeder task
//! pulls what they have room for and hands it to the node's queue.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::Headers;
use tracing::{debug, warn};

use super::{AckHandle, Nacked, Puller, QueueStore, StoreError};
use crate::config::QueuesJetStreamConfig;
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
    pull_wait: Duration,
}

impl JetStreamQueues {
    pub fn new(store: QueueStore, config: &QueuesJetStreamConfig) -> JetStreamQueues {
        JetStreamQueues {
            store,
            default_prefetch: config.default_prefetch,
            pull_wait: Duration::from_millis(config.pull_wait_ms),
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
                .map_err(|e| refusal(&destination, e))
        })
    }

    fn feed(&self, queue: Arc<Queue>) {
        tokio::spawn(feed(self.store.clone(), queue, self.pull_wait));
    }

    fn default_prefetch(&self) -> usize {
        self.default_prefetch
    }
}

/// The ERROR a refused SEND gets.
fn refusal(destination: &str, error: StoreError) -> Refusal {
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
        detail: format!("{destination}: {error}; the message was not stored"),
    }
}

/// Feeds `queue` until it has no consumers: pulls as many messages as they have room for,
/// waits for room when they have none.
async fn feed(store: QueueStore, queue: Arc<Queue>, wait: Duration) {
    let mut failures = 0;
    let puller = loop {
        match store.puller(queue.name()).await {
            Ok(puller) => break puller,
            Err(e) => {
                warn!(queue = %queue.name(), error = %e, "queue store: cannot open the queue's consumer; trying again");
                if !back_off(&queue, &mut failures).await {
                    return;
                }
            }
        }
    };
    failures = 0;
    loop {
        // Made before looking at the room, so that room freed in between wakes it.
        let changed = queue.feed_room_changed();
        let room = match queue.feed_room() {
            FeedRoom::Stop => return,
            FeedRoom::Room(room) => room,
        };
        if room == 0 {
            changed.await;
            continue;
        }
        match pull_into(&puller, &queue, room, wait).await {
            Ok(()) => failures = 0,
            Err(e) => {
                warn!(queue = %queue.name(), error = %e, "queue store: a pull failed; trying again");
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
/// for an abandoned pull would come back only after the ack wait). A message the queue no
/// longer takes (its consumers left meanwhile) goes back to the store at once.
async fn pull_into(
    puller: &Puller,
    queue: &Queue,
    room: usize,
    wait: Duration,
) -> Result<(), StoreError> {
    let mut pull = puller.pull(room, wait).await?;
    while let Some(next) = pull.next().await {
        let delivery = next?;
        let redelivered = delivery.redelivered();
        let message = QueuedMessage::from_store(
            format!("js-{}", delivery.id),
            queue.name(),
            delivery.headers,
            delivery.body,
            StoredHandle::new(Box::new(Stored(delivery.handle))),
        );
        // Refused, it is dropped here, which gives it back.
        let _ = queue.enqueue_stored(Arc::new(message), redelivered);
    }
    Ok(())
}

/// A pulled message's settlement. JetStream is told on a task of its own: a queue settles
/// under its lock, which must not wait for the network.
#[derive(Debug)]
struct Stored(AckHandle);

impl Settlement for Stored {
    fn ack(self: Box<Self>) {
        spawn(async move {
            if let Err(e) = self.0.ack().await {
                debug!(error = %e, "queue store: an ack was not sent; the message comes back after the ack wait");
            }
        });
    }

    fn nak(self: Box<Self>) {
        spawn(async move {
            match self.0.nak().await {
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
        });
    }
}

/// Runs `settle` on the runtime; outside one (a queue dropped as the process ends) it is not
/// sent, and JetStream redelivers after the ack wait.
fn spawn(settle: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(settle);
    }
}
