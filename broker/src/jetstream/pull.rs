//! Pulling a queue's messages, as many as the caller has room for, and settling each one:
//! ack, nak (at once, or to the dead-letter queue after the last delivery), term.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::consumer::pull::Batch;
use async_nats::jetstream::{AckKind, Message};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use herald_protocol::Headers;
use tokio::time::Instant;
use tracing::debug;

use super::StoreError;
use super::dead_letter_headers::{DELIVERIES, QUEUE, REASON};
use super::store::{Inner, StoredId, count};
use crate::cluster::wire::stomp_headers;
use crate::routing::publish::{expires, is_expired, now_ms};

/// How long after its expiry a pull that JetStream has not ended is taken as over. A
/// nats-server 2.9 that finds an expired request while handing out a message drops it without
/// the `408` status that ends it (its timer sends one only for requests still in its list), and
/// the client library would then wait 5 s more. The grace covers the time JetStream takes to
/// receive the request (its expiry counts from then) and the last messages' way here: one
/// sent before the expiry but read after the grace comes back only after the ack wait.
const END_GRACE: Duration = Duration::from_secs(1);

/// The puller of one queue: every node's pullers of a queue share its durable consumer, so
/// each message goes to one of them at a time. Cheap to clone.
#[derive(Clone)]
pub struct Puller {
    store: Arc<Inner>,
    queue: Arc<str>,
    consumer: PullConsumer,
}

impl std::fmt::Debug for Puller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Puller")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl Puller {
    pub(super) fn new(store: Arc<Inner>, queue: &str, consumer: PullConsumer) -> Puller {
        Puller {
            store,
            queue: queue.into(),
            consumer,
        }
    }

    /// The queue's destination.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// Asks JetStream for at most `max` messages (what the local consumers have room for),
    /// waiting at most `wait` for them. Messages come out of the [`Pull`] as they arrive; it
    /// ends after `max` of them (skipped ones included) or at `wait`. Read it to its end:
    /// messages JetStream sent for an abandoned pull come back only after the ack wait.
    pub async fn pull(&self, max: usize, wait: Duration) -> Result<Pull, StoreError> {
        self.request(max, 0, wait).await
    }

    /// A pull request for at most `max` messages and `max_bytes` bytes (0: no bound).
    async fn request(
        &self,
        max: usize,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<Pull, StoreError> {
        let max = max.max(1);
        let expires_at = Instant::now() + wait;
        let batch = self
            .consumer
            .batch()
            .max_messages(max)
            .max_bytes(max_bytes)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| StoreError::JetStream(e.to_string()))?;
        Ok(Pull {
            puller: self.clone(),
            batch,
            asked: max,
            received: 0,
            expires_at,
            over: false,
        })
    }
}

impl Puller {
    /// Keeps the queue's consumer in use while the caller has no room for a message: a pull
    /// that can take none (at most one byte; JetStream answers a waiting message with a
    /// refusal, not the message), waiting up to `wait`. Without it NATS would delete the
    /// consumer after `consumer_idle_ms` while messages it handed out await their ACK, and
    /// hand them out again, unflagged, to the next one. Keep `wait` short and the calls rare:
    /// nats-server 2.9 sets a given-back message aside until the ack wait if such a pull is the
    /// only request waiting when it comes back.
    pub async fn keep_alive(&self, wait: Duration) {
        let Ok(mut pull) = self.request(1, 1, wait).await else {
            return;
        };
        // Read to its end like any pull, so bounded the same way (see END_GRACE).
        while let Some(next) = pull.next_raw().await {
            // A message despite the byte bound: given back at once.
            if let Ok(message) = next {
                let _ = message.ack_with(AckKind::Nak(None)).await;
            }
        }
    }
}

/// One pull request's messages, in arrival order.
pub struct Pull {
    puller: Puller,
    batch: Batch,
    /// Messages asked for, and received so far (skipped ones included).
    asked: usize,
    received: usize,
    /// When JetStream ends the request, at the latest (from when it was sent).
    expires_at: Instant,
    /// Ended past [`END_GRACE`] without JetStream saying so.
    over: bool,
}

impl std::fmt::Debug for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pull")
            .field("puller", &self.puller)
            .finish_non_exhaustive()
    }
}

impl Pull {
    /// The next message for a consumer; `None` when the pull is over. Messages past their
    /// `expires` are acknowledged and skipped, messages whose last delivery timed out are
    /// dead-lettered, and messages whose `Herald-Header` values do not decode are terminated, all
    /// counted.
    pub async fn next(&mut self) -> Option<Result<Delivery, StoreError>> {
        loop {
            let message = match self.next_raw().await? {
                Ok(message) => message,
                Err(e) => return Some(Err(e)),
            };
            if let Some(taken) = self.take(message).await {
                return Some(taken);
            }
        }
    }

    /// The next message as JetStream sent it, not looked at yet; `None` when the pull is
    /// over. Cancel-safe: dropped before it completes, it has taken nothing.
    pub(super) async fn next_raw(&mut self) -> Option<Result<Message, StoreError>> {
        if self.over {
            return None;
        }
        let deadline = self.expires_at + END_GRACE;
        let next = match tokio::time::timeout_at(deadline, self.batch.next()).await {
            Ok(next) => next,
            // A message already here is still taken (unconstrained: an exhausted task budget
            // would hide it).
            Err(_) => match tokio::task::unconstrained(self.batch.next()).now_or_never() {
                Some(next) => next,
                None => {
                    debug!(queue = %self.puller.queue, "queue store: a pull JetStream did not end is taken as over");
                    self.over = true;
                    return None;
                }
            },
        };
        let next = next?.map_err(|e| StoreError::JetStream(e.to_string()));
        self.received += 1;
        Some(next)
    }

    /// A message of this pull as a delivery, or `None` if it was settled here instead (see
    /// [`Pull::next`]).
    pub(super) async fn take(&self, message: Message) -> Option<Result<Delivery, StoreError>> {
        let store = &self.puller.store;
        let (id, delivered) = message.info().ok().map(|i| {
            (
                StoredId(i.stream_sequence),
                u64::try_from(i.delivered).unwrap_or(0),
            )
        })?;
        let handle = AckHandle {
            store: store.clone(),
            queue: self.puller.queue.clone(),
            id,
            delivered,
            message,
        };
        let Some(headers) = handle.stomp_headers() else {
            count(&store.counters.malformed);
            let _ = handle.message.ack_with(AckKind::Term).await;
            return None;
        };
        if is_expired(expires(&headers), now_ms()) {
            count(&store.counters.expired);
            let _ = handle.message.ack().await;
            return None;
        }
        if delivered > u64::from(store.config.max_deliver) {
            // Its last delivery was neither acknowledged nor NACKed in time.
            return handle.dead_letter(headers, "ack-wait").await.err().map(Err);
        }
        count(&store.counters.delivered);
        if delivered > 1 {
            count(&store.counters.redelivered);
        }
        Some(Ok(Delivery {
            id,
            delivered,
            headers,
            body: handle.message.payload.clone(),
            handle,
        }))
    }

    /// Messages JetStream may still send for this pull.
    pub(super) fn outstanding(&self) -> usize {
        self.asked.saturating_sub(self.received)
    }

    /// When JetStream ends this pull, at the latest.
    pub(super) fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// The puller that made it.
    pub(super) fn puller(&self) -> &Puller {
        &self.puller
    }
}

/// A message handed to a consumer.
#[derive(Debug)]
pub struct Delivery {
    pub id: StoredId,
    /// Deliveries so far, this one included (from 1).
    pub delivered: u64,
    /// The STOMP headers as sent, in order.
    pub headers: Headers,
    pub body: Bytes,
    /// Settles the message; dropped unsettled, the message comes back after the ack wait.
    pub handle: AckHandle,
}

impl Delivery {
    /// Whether a consumer may have seen it before (STOMP `redelivered:true`).
    pub fn redelivered(&self) -> bool {
        self.delivered > 1
    }
}

/// What became of a NACKed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nacked {
    /// It will be delivered again at once.
    Redelivered,
    /// It was at its last delivery and went to this dead-letter queue.
    DeadLettered(String),
    /// It was at its last delivery and was dropped: `dead_letter = "drop"`, a dead-letter
    /// queue's own dead letter, or one its dead-letter queue could never store.
    Dropped,
}

/// Settles one delivered message. Holds the message itself, whose body is shared with the
/// delivery's, so a NACK of the last delivery can dead-letter it.
pub struct AckHandle {
    store: Arc<Inner>,
    queue: Arc<str>,
    id: StoredId,
    delivered: u64,
    message: Message,
}

impl std::fmt::Debug for AckHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckHandle")
            .field("queue", &self.queue)
            .field("id", &self.id)
            .field("delivered", &self.delivered)
            .finish_non_exhaustive()
    }
}

impl AckHandle {
    pub fn id(&self) -> StoredId {
        self.id
    }

    /// Done with: JetStream deletes it. Sent without waiting for JetStream's answer; one
    /// lost on the way means a redelivery after the ack wait.
    pub async fn ack(self) -> Result<(), StoreError> {
        self.settle(AckKind::Ack).await?;
        count(&self.store.counters.acked);
        Ok(())
    }

    /// Not taken: delivered again at once (to any node), or, at the last of `max_deliver`
    /// deliveries, dead-lettered.
    pub async fn nak(self) -> Result<Nacked, StoreError> {
        count(&self.store.counters.nacked);
        if self.delivered >= u64::from(self.store.config.max_deliver) {
            let headers = self.stomp_headers().unwrap_or_default();
            return self.dead_letter(headers, "nacked").await;
        }
        self.settle(AckKind::Nak(None)).await?;
        Ok(Nacked::Redelivered)
    }

    /// Never to be delivered again: JetStream deletes it.
    pub async fn term(self) -> Result<(), StoreError> {
        self.settle(AckKind::Term).await?;
        count(&self.store.counters.terminated);
        Ok(())
    }

    async fn settle(&self, kind: AckKind) -> Result<(), StoreError> {
        self.message
            .ack_with(kind)
            .await
            .map_err(|e| StoreError::JetStream(e.to_string()))
    }

    fn stomp_headers(&self) -> Option<Headers> {
        match &self.message.headers {
            Some(map) => stomp_headers(map),
            None => Some(Headers::new()),
        }
    }

    /// Stores the message in its dead-letter queue with headers saying why, then deletes it
    /// here; or drops it. If storing fails it is NACKed and comes back (and is tried again).
    async fn dead_letter(self, mut headers: Headers, reason: &str) -> Result<Nacked, StoreError> {
        let store = &self.store;
        let target = match store.config.dead_letter.as_str() {
            "drop" => None,
            template => Some(template.replace("{queue}", &self.queue)),
        };
        // A dead letter's own dead letter (it carries the header saying where it came from)
        // would go on to `x.dlq.dlq` and so on, or back to its queue for ever: dropped.
        let already_dead = headers.get(QUEUE).is_some();
        let Some(target) = target.filter(|t| **t != *self.queue && !already_dead) else {
            self.settle(AckKind::Term).await?;
            count(&store.counters.dead_dropped);
            return Ok(Nacked::Dropped);
        };
        headers.set(REASON, reason);
        headers.set(DELIVERIES, itoa::Buffer::new().format(self.delivered));
        headers.set(QUEUE, &self.queue);
        match store
            .publish(&target, &headers, self.message.payload.clone())
            .await
        {
            Ok(_) => {}
            // It could never be stored there (the dead-letter queue's name, or the headers
            // with the three added, too long): dropped rather than retried for ever.
            Err(
                StoreError::QueueNameTooLong { .. }
                | StoreError::HeadersTooLarge { .. }
                | StoreError::TooLarge,
            ) => {
                self.settle(AckKind::Term).await?;
                count(&store.counters.dead_dropped);
                return Ok(Nacked::Dropped);
            }
            Err(e) => {
                let _ = self.settle(AckKind::Nak(None)).await;
                return Err(e);
            }
        }
        // A crash here leaves both copies: dead letters are at least once.
        self.settle(AckKind::Ack).await?;
        count(&store.counters.dead_lettered);
        Ok(Nacked::DeadLettered(target))
    }
}
