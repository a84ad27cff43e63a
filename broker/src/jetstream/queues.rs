//! The queue store as routing's durable store (`routing::durable`): a SEND is stored with
//! JetStream's acknowledgement, and while a queue has consumers on this node one feeder task
//! pulls what they have room for and hands it to the node's queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::Headers;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, warn};

use super::feed::{Timing, feed};
use super::{AckHandle, Nacked, QueueStore, StoreError};
use crate::config::QueuesJetStreamConfig;
use crate::metrics::StoreCounts;
use crate::routing::durable::{DurableStore, Settlement, Storing};
use crate::routing::queue::Queue;
use crate::routing::router::Refusal;

/// Named queues kept in JetStream.
#[derive(Debug)]
pub struct JetStreamQueues {
    store: QueueStore,
    default_prefetch: usize,
    timing: Timing,
    settling: Arc<Settling>,
}

impl JetStreamQueues {
    pub fn new(store: QueueStore, config: &QueuesJetStreamConfig) -> JetStreamQueues {
        JetStreamQueues {
            store,
            default_prefetch: config.default_prefetch,
            timing: Timing {
                pull_wait: Duration::from_millis(config.pull_wait_ms),
                keep_alive: match config.consumer_idle_ms {
                    0 => None,
                    idle => Some(Duration::from_millis((idle / 3).max(1))),
                },
            },
            settling: Settling::start(),
        }
    }

    /// What the store has done since start.
    pub fn counts(&self) -> StoreCounts {
        self.store.counts()
    }

    /// Completes once every feeder has ended (their queues have no consumers: at shutdown,
    /// within [`JetStreamQueues::settle_time`]) and every ack and nak handed to JetStream has
    /// been sent. At
    /// shutdown, the messages the closed sessions held go back only after this node's last
    /// pulls are over: given back while one is open, JetStream would hand them straight to it,
    /// and they would wait out the ack wait once the process is gone.
    pub async fn settled(&self) {
        let settling = &self.settling;
        loop {
            let idle = settling.idle.notified();
            if settling.pending.load(Ordering::Acquire) == 0
                && settling.feeders.load(Ordering::Acquire) == 0
            {
                return;
            }
            idle.await;
        }
    }

    /// How long [`JetStreamQueues::settled`] may take when NATS answers: a feeder's open
    /// pull and the successor it asked for before that one ends.
    pub fn settle_time(&self) -> Duration {
        self.timing.pull_wait * 2
    }
}

/// Settlements on their way to JetStream, sent by one task in the order they were made:
/// messages given back together (a consumer's unacknowledged ones) come back in their order,
/// and a task per settlement would cost more than the settlement.
#[derive(Debug)]
pub(super) struct Settling {
    queued: mpsc::UnboundedSender<Settle>,
    pending: AtomicUsize,
    /// Settlements handed to the task since start, and those it has sent (or given up on).
    made: AtomicU64,
    sent: AtomicU64,
    /// The place in `made` of the last nak.
    last_nak: AtomicU64,
    /// Woken at each one sent.
    progress: Notify,
    /// Feeder tasks running.
    feeders: AtomicUsize,
    /// Woken when `pending` or `feeders` drops to 0.
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
            made: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_nak: AtomicU64::new(0),
            progress: Notify::new(),
            feeders: AtomicUsize::new(0),
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

    /// Completes once every nak handed over before the call has been sent: a pull asked for
    /// after it comes after those naks at JetStream, so that a NACKed message is usually
    /// delivered before the messages behind it. Acks are not waited for (a pull at full
    /// speed would wait for every ack before it).
    pub(super) async fn caught_up(&self) {
        let target = self.last_nak.load(Ordering::Acquire);
        loop {
            let progress = self.progress.notified();
            if self.sent.load(Ordering::Acquire) >= target {
                return;
            }
            progress.await;
        }
    }

    fn queue(&self, settle: Settle) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let place = self.made.fetch_add(1, Ordering::AcqRel) + 1;
        if matches!(settle, Settle::Nak(_)) {
            self.last_nak.fetch_max(place, Ordering::AcqRel);
        }
        if self.queued.send(settle).is_err() {
            // The task is gone (the runtime is ending): JetStream redelivers after the ack
            // wait.
            self.done();
        }
    }

    fn done(&self) {
        self.sent.fetch_add(1, Ordering::AcqRel);
        self.progress.notify_waiters();
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    fn feeder_ended(&self) {
        if self.feeders.fetch_sub(1, Ordering::AcqRel) == 1 {
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
        settling.feeders.fetch_add(1, Ordering::AcqRel);
        let (store, timing) = (self.store.clone(), self.timing);
        tokio::spawn(async move {
            feed(store, queue, timing, Arc::clone(&settling)).await;
            settling.feeder_ended();
        });
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

/// A pulled message's settlement, handed to the settling task: a queue settles under its lock,
/// which must not wait for the network.
#[derive(Debug)]
pub(super) struct Stored {
    handle: AckHandle,
    settling: Arc<Settling>,
}

impl Stored {
    pub(super) fn new(handle: AckHandle, settling: Arc<Settling>) -> Stored {
        Stored { handle, settling }
    }
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
