//! The feeder of one queue on this node: while the queue has local consumers it pulls what
//! they have room for from the queue's durable consumer and hands it to the node's queue.
//!
//! Pull requests overlap: shortly before one expires, its successor is asked for. That keeps
//! a request of this node waiting at JetStream at every moment, which matters with the
//! nats-server releases Debian ships (2.9): a message given back (NAK) at a moment when the
//! only requests waiting have just expired, unreaped yet, is not delivered then but only after
//! the ack wait, and the consumer's position moves back by one, so that the last new message
//! handed out is handed out once more, unflagged. The overlap leaves no such moment while any
//! node has room; messages of two open requests are read in stream order.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::Message;
use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::warn;

use super::queues::{Settling, Stored};
use super::{Pull, Puller, QueueStore, StoreError};
use crate::routing::durable::StoredHandle;
use crate::routing::queue::{FeedRoom, Queue, QueuedMessage};

/// The longest a feeder waits before trying JetStream again after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How long a keep-alive request waits at JetStream: long enough to be seen, short enough
/// that it is hardly ever the only request waiting (see [`Puller::keep_alive`]).
const KEEP_ALIVE_WAIT: Duration = Duration::from_millis(10);

/// How a feeder paces its requests.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    /// How long one pull waits for messages.
    pub pull_wait: Duration,
    /// How often a feeder without room shows NATS its consumer is in use, well within
    /// `consumer_idle_ms`; `None` when NATS never deletes it.
    pub keep_alive: Option<Duration>,
}

impl Timing {
    /// How long before a pull expires its successor is asked for.
    fn overlap(&self) -> Duration {
        self.pull_wait / 4
    }
}

/// Feeds `queue` until it has no consumers: pulls as many messages as they have room for,
/// waits for room when they have none. After a failure it opens the queue's consumer again
/// (NATS may have deleted it after `consumer_idle_ms`, or lost it with a stream kept in
/// memory).
pub(super) async fn feed(
    store: QueueStore,
    queue: Arc<Queue>,
    timing: Timing,
    settling: Arc<Settling>,
) {
    let wait = timing.pull_wait;
    let mut failures = 0;
    let mut puller: Option<Puller> = None;
    // A pull asked for while the one before was still open: read next, never dropped unread.
    let mut successor: Option<Pull> = None;
    let mut last_active = Instant::now();
    loop {
        // Made before looking at the room, so that room freed in between wakes it.
        let changed = queue.feed_room_changed();
        let room = match queue.feed_room() {
            FeedRoom::Stop => {
                if let Some(open) = successor.take() {
                    // Its messages are refused and given back once it is over.
                    let puller = open.puller().clone();
                    let _ = pull_into(&puller, &queue, 0, timing, &settling, Some(open)).await;
                }
                return;
            }
            FeedRoom::Room(room) => room,
        };
        if room == 0 && successor.is_none() {
            // Room may also come from other queues freeing the node's bytes, which does not
            // wake this one: look again after a pull's wait at the latest. Meanwhile the
            // consumer is kept in use, so that NATS does not delete it.
            let keep_alive = timing.keep_alive.map(|every| last_active + every);
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(wait) => {}
                () = sleep_until_some(keep_alive) => {
                    if let Some(open) = &puller {
                        open.keep_alive(KEEP_ALIVE_WAIT).await;
                    }
                    last_active = Instant::now();
                }
            }
            continue;
        }
        let pulled = match &puller {
            Some(open) => pull_into(open, &queue, room, timing, &settling, successor.take()).await,
            None => match store.puller(queue.name()).await {
                Ok(open) => {
                    puller = Some(open);
                    continue;
                }
                Err(e) => Err(e),
            },
        };
        last_active = Instant::now();
        match pulled {
            Ok(Pulled {
                count,
                successor: next,
            }) => {
                failures = 0;
                successor = next;
                if count == 0 {
                    // Nothing came: the consumer may have been deleted by NATS (a pull on a
                    // missing consumer just times out), so it is opened again (a no-op if it
                    // exists).
                    puller = None;
                }
            }
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

/// Completes at `deadline`, or never without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
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

/// What one pull brought.
struct Pulled {
    /// Messages received (handed to the queue or refused by it).
    count: usize,
    /// The pull asked for before this one ended, still open.
    successor: Option<Pull>,
}

/// One open pull request and the message read from it but not yet taken.
struct Lane {
    pull: Pull,
    ahead: Option<Message>,
    ended: bool,
}

impl Lane {
    fn new(pull: Pull) -> Lane {
        Lane {
            pull,
            ahead: None,
            ended: false,
        }
    }

    /// Whether a message may still come that is not read yet.
    fn waiting(&self) -> bool {
        self.ahead.is_none() && !self.ended
    }

    /// Records what the pull gave: a message, its end, or a failure (which ends it too).
    fn receive(&mut self, next: Option<Result<Message, StoreError>>) -> Option<StoreError> {
        match next {
            Some(Ok(message)) => {
                self.ahead = Some(message);
                None
            }
            Some(Err(e)) => {
                self.ended = true;
                Some(e)
            }
            None => {
                self.ended = true;
                None
            }
        }
    }

    /// Reads a message that is already there, without waiting.
    fn receive_ready(&mut self) -> Option<StoreError> {
        if !self.waiting() {
            return None;
        }
        // Cancel-safe: a message not there yet is left for later.
        match self.pull.next_raw().now_or_never() {
            Some(next) => self.receive(next),
            None => None,
        }
    }

    /// The stream sequence of the message ahead (its place in publish order).
    fn ahead_sequence(&self) -> Option<u64> {
        self.ahead
            .as_ref()
            .map(|m| m.info().map_or(0, |i| i.stream_sequence))
    }
}

/// Which of [`pull_into`]'s waits ended first.
enum Event {
    Current(Option<Result<Message, StoreError>>),
    Successor(Option<Result<Message, StoreError>>),
    AskSuccessor,
}

/// Reads pull `carried`, or a new one of at most `room` messages, to its end into `queue`
/// (messages JetStream sent for an abandoned pull would come back only after the ack wait),
/// asking for its successor [`Timing::overlap`] before it expires if the queue still has
/// room. Messages the queue no longer takes (its consumers left meanwhile) are given back once
/// the pull is over: given back at once, JetStream would hand them straight back to this still
/// open pull, and each round would count as a delivery. After a failure the successor is read
/// to its end too, and no other is asked for.
async fn pull_into(
    puller: &Puller,
    queue: &Queue,
    room: usize,
    timing: Timing,
    settling: &Arc<Settling>,
    carried: Option<Pull>,
) -> Result<Pulled, StoreError> {
    let current = match carried {
        Some(open) => open,
        None => {
            // Naks first (bounded: NATS may be out of reach, and the pull then fails anyway).
            let _ = tokio::time::timeout(timing.pull_wait, settling.caught_up()).await;
            puller.pull(room, timing.pull_wait).await?
        }
    };
    let ask_at = current.expires_at().checked_sub(timing.overlap());
    let mut lanes = vec![Lane::new(current)];
    let mut asked = ask_at.is_none();
    let mut failed = None;
    let mut refused = Vec::new();
    let mut count = 0;
    loop {
        for lane in &mut lanes {
            failed = lane.receive_ready().or(failed);
        }
        // The message ahead earliest in the stream: two requests may share new messages
        // between them, which JetStream sends in stream order.
        let earliest = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, lane)| lane.ahead_sequence().map(|seq| (seq, i)))
            .min()
            .map(|(_, i)| i);
        if let Some(i) = earliest {
            let Some(message) = lanes[i].ahead.take() else {
                continue;
            };
            count += 1;
            match lanes[i].pull.take(message).await {
                Some(Ok(delivery)) => {
                    if let Err(message) = hand_over(queue, delivery, settling) {
                        refused.push(message);
                    }
                }
                Some(Err(e)) => failed = Some(e),
                None => {}
            }
            continue;
        }
        if failed.is_some() {
            asked = true;
        }
        let done = if failed.is_some() {
            lanes.iter().all(|lane| lane.ended)
        } else {
            lanes[0].ended
        };
        if done {
            break;
        }
        let event = {
            let (first, rest) = lanes.split_first_mut().expect("lane 0 is the current pull");
            let first_waiting = first.waiting();
            let mut second = rest.first_mut();
            let second_waiting = second.as_ref().is_some_and(|lane| lane.waiting());
            tokio::select! {
                next = first.pull.next_raw(), if first_waiting => Event::Current(next),
                next = async {
                    match second.as_mut() {
                        Some(lane) => lane.pull.next_raw().await,
                        None => std::future::pending().await,
                    }
                }, if second_waiting => Event::Successor(next),
                () = sleep_until_some(ask_at), if !asked => Event::AskSuccessor,
            }
        };
        match event {
            Event::Current(next) => failed = lanes[0].receive(next).or(failed),
            Event::Successor(next) => failed = lanes[1].receive(next).or(failed),
            Event::AskSuccessor => {
                asked = true;
                if let FeedRoom::Room(now) = queue.feed_room_now()
                    && now > 0
                {
                    // At least one: a request must be waiting when this one expires.
                    let more = now.saturating_sub(lanes[0].pull.outstanding()).max(1);
                    match puller.pull(more, timing.pull_wait).await {
                        Ok(successor) => lanes.push(Lane::new(successor)),
                        Err(e) => failed = Some(e),
                    }
                }
            }
        }
    }
    // Dropped, each is given back.
    drop(refused);
    if let Some(e) = failed {
        return Err(e);
    }
    let successor = lanes
        .into_iter()
        .nth(1)
        .filter(|lane| !lane.ended)
        .map(|lane| lane.pull);
    Ok(Pulled { count, successor })
}

/// Hands a pulled message to the queue; the queue refuses it if it has no consumers left.
fn hand_over(
    queue: &Queue,
    delivery: super::Delivery,
    settling: &Arc<Settling>,
) -> Result<(), Arc<QueuedMessage>> {
    let redelivered = delivery.redelivered();
    let message = QueuedMessage::from_store(
        format!("js-{}", delivery.id),
        queue.name(),
        delivery.headers,
        delivery.body,
        StoredHandle::new(Box::new(Stored::new(delivery.handle, Arc::clone(settling)))),
    );
    queue.enqueue_stored(Arc::new(message), redelivered)
}
