//! One queue: its waiting messages, its consumers, and the delivery loop between them.
//!
//! Everything happens under the queue's own mutex, in whichever task acts on the queue (a
//! publisher's SEND, a consumer's ACK, a session asking for more): there is no queue task and
//! no `.await`. Nested inside it are only the consumers' outbox locks (order: queue, then
//! outbox).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Shared;
use super::consumer::{AckId, Consumer, ConsumerSpec, Pending};
use super::message::QueuedMessage;
use super::quota::{self, Creator};
use super::room::Room;
use crate::config::QueueOverflow;
use crate::metrics::QueueStats;
use crate::outbox::Offered;
use crate::routing::publish::{is_expired, now_ms};
use crate::routing::subscriber::Subscriber;

/// What became of a message given to a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enqueued {
    /// Delivered, or waiting for a consumer.
    Accepted,
    /// Its `expires` time had passed: dropped.
    Expired,
    /// Dropped to respect a bound: nothing older was left to drop (policy `drop_oldest`).
    Dropped,
    /// Refused: the queue is at this bound (policy `reject`), or the queue did not exist and
    /// a queue count bound kept it from being created (any policy).
    Rejected(Bound),
    /// Not taken: the queue is full (policy `block`). Wait on the room, then publish again.
    Blocked(Room),
}

/// The queue bound a message did not fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Messages,
    QueueBytes,
    TotalBytes,
    /// The node has `queues.max_queues` queues.
    Queues,
    /// The session has created `queues.max_queues_per_session` queues that still exist.
    SessionQueues,
}

impl Bound {
    /// The configuration key that sets it, for ERROR frames and logs.
    pub fn config_key(self) -> &'static str {
        match self {
            Bound::Messages => "queues.max_messages_per_queue",
            Bound::QueueBytes => "queues.max_bytes_per_queue",
            Bound::TotalBytes => "queues.max_total_bytes",
            Bound::Queues => "queues.max_queues",
            Bound::SessionQueues => "queues.max_queues_per_session",
        }
    }
}

/// What a named queue costs the node's total (`max_total_bytes`) while it exists, besides
/// its name (held twice: map key and `Queue::name`) and its messages: the `Arc<Queue>`
/// allocation, its map entry (key, value and control byte, at the map's load factor of at
/// most 7/8 over a doubling capacity: ~2x), the first `VecDeque` buffer (4 slots) and
/// allocator rounding. Measured as a whole in docs/destinations.md ("Memory").
const QUEUE_OVERHEAD: usize = 2 * size_of::<usize>()
    + size_of::<Queue>()
    + 2 * (size_of::<(Arc<str>, Arc<Queue>)>() + 1)
    + 4 * size_of::<Pending>()
    + 4 * 16;

/// The queue was deleted (idle past its grace period, or a private queue whose subscription
/// ended) between lookup and use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted;

/// ACK or NACK named no message awaiting acknowledgement by that subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAck;

/// ACK or NACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Nack,
}

/// A queue's size right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Waiting for a consumer.
    pub ready: usize,
    /// Delivered, awaiting ACK or NACK.
    pub unacked: usize,
    pub consumers: usize,
    /// Bytes of waiting and unacknowledged messages.
    pub bytes: usize,
}

/// A point-to-point queue, or the private queue of one client-ack topic subscription.
pub struct Queue {
    name: Arc<str>,
    /// Private to one topic subscription: never in the router's map, always drops the oldest
    /// on overflow, discarded with its subscription.
    private: bool,
    shared: Arc<Shared>,
    /// Where publishers blocked by this queue's own bounds wait.
    room: Room,
    /// The session that made it, whose `max_queues_per_session` count it holds (named
    /// queues only).
    creator: Option<Creator>,
    /// Its messages live in a store, which feeds this queue as its consumers have room
    /// (`routing::durable`): it holds only what it was fed.
    durable: bool,
    /// Wakes the store's feeder when its consumers may have room for more.
    feed_wake: Notify,
    state: Mutex<State>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.name)
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

/// How often at most a full queue says so in the log.
const FULL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct State {
    ready: VecDeque<Pending>,
    ready_bytes: usize,
    /// Ready messages with an `expires` header (the sweep looks only at queues with some).
    expiring: usize,
    /// Unacknowledged messages of all consumers, and their bytes.
    unacked: usize,
    unacked_bytes: usize,
    consumers: Vec<Consumer>,
    /// Round-robin position: the consumer tried first for the next message.
    cursor: usize,
    /// Since when the queue has been empty without consumers.
    idle_since: Option<Instant>,
    deleted: bool,
    /// When this queue last logged that it is full, so a flood logs once per interval.
    last_full_warning: Option<Instant>,
    /// A durable queue's store is feeding it (see `Queue::claim_feed`).
    feeding: bool,
}

/// How many messages a durable queue's feeder may hand over now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedRoom {
    /// This many: what its consumers have room for, minus what already waits.
    Room(usize),
    /// It has no consumers left: the feeder stops (a new consumer starts another).
    Stop,
}

impl Queue {
    /// A named queue made for `creator`; its overhead is charged to the node's total until
    /// [`Queue::release_quota`].
    pub(super) fn named(name: &str, creator: Creator, shared: Arc<Shared>, durable: bool) -> Queue {
        shared.charge(Queue::overhead(name));
        let mut queue = Queue::new(name, false, Some(creator), shared);
        queue.durable = durable;
        queue
    }

    /// The private queue of a client-ack topic subscription: bounded with the subscription
    /// count, so neither counted nor charged as a queue.
    pub(super) fn private(name: &str, shared: Arc<Shared>) -> Queue {
        Queue::new(name, true, None, shared)
    }

    fn new(name: &str, private: bool, creator: Option<Creator>, shared: Arc<Shared>) -> Queue {
        let state = State {
            idle_since: Some(Instant::now()),
            ..State::default()
        };
        Queue {
            name: Arc::from(name),
            private,
            shared,
            room: Room::default(),
            creator,
            durable: false,
            feed_wake: Notify::new(),
            state: Mutex::new(state),
        }
    }

    pub(super) fn overhead(name: &str) -> usize {
        QUEUE_OVERHEAD + 2 * name.len()
    }

    /// The queue has left the router's map: gives back its place in the queue counts and its
    /// overhead, and wakes anyone waiting on it (they publish again, to a new queue).
    pub(super) fn release_quota(&self) {
        if let Some(creator) = &self.creator {
            quota::release(&self.stats().queues, creator);
            self.shared.release(Queue::overhead(&self.name));
        }
        self.room.free();
    }

    /// The destination it serves.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn stats(&self) -> &QueueStats {
        &self.shared.stats.queues
    }

    /// Takes a message: applies the bounds, then delivers what it can.
    pub fn enqueue(&self, msg: Arc<QueuedMessage>) -> Result<Enqueued, Deleted> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(Deleted);
        }
        let waiting_before = st.ready.len();
        let refused = self.make_room(&mut st, msg.size());
        // `make_room` only ever removes waiting messages, so fewer means some were dropped.
        if refused.is_some() || st.ready.len() < waiting_before {
            self.warn_full(&mut st, refused.is_some());
        }
        if let Some(bound) = refused {
            let policy = self.policy();
            return Ok(match policy {
                QueueOverflow::Block => {
                    QueueStats::count(&self.stats().blocked_sends, 1);
                    Enqueued::Blocked(self.room_for(bound).clone())
                }
                QueueOverflow::Reject => {
                    QueueStats::count(&self.stats().rejected_sends, 1);
                    Enqueued::Rejected(bound)
                }
                QueueOverflow::DropOldest => {
                    QueueStats::count(&self.stats().overflow_dropped, 1);
                    Enqueued::Dropped
                }
            });
        }
        self.shared.charge(msg.size());
        self.push_ready(&mut st, Pending::new(msg), false);
        self.dispatch(&mut st);
        self.note_idle(&mut st);
        Ok(Enqueued::Accepted)
    }

    /// Logs, at most once per `FULL_WARNING_INTERVAL` per queue, that the queue is losing or
    /// refusing messages: the counters say how many, the log says that it is happening.
    fn warn_full(&self, st: &mut State, refusing: bool) {
        if self.private {
            return;
        }
        let now = Instant::now();
        if st
            .last_full_warning
            .is_some_and(|at| now.duration_since(at) < FULL_WARNING_INTERVAL)
        {
            return;
        }
        st.last_full_warning = Some(now);
        let policy = if refusing && self.policy() == QueueOverflow::Block {
            "holding back its producers"
        } else if refusing {
            "refusing SENDs"
        } else {
            "dropping its oldest messages"
        };
        tracing::warn!(queue = %self.name, "queue full: {policy} (consumers are slower than producers)");
    }

    /// The overflow policy in force: private queues always drop the oldest.
    fn policy(&self) -> QueueOverflow {
        if self.private {
            QueueOverflow::DropOldest
        } else {
            self.shared.limits.overflow
        }
    }

    /// Where a publisher refused at `bound` waits: room in this queue, or (for the node's
    /// total) in any queue.
    fn room_for(&self, bound: Bound) -> &Room {
        match bound {
            Bound::TotalBytes => &self.shared.node_room,
            _ => &self.room,
        }
    }

    /// Makes room for `size` more bytes: under `drop_oldest` (and always for private
    /// queues) drops waiting messages from the head. Returns the bound still broken, if any;
    /// under `block`, its room is marked waited on.
    fn make_room(&self, st: &mut State, size: usize) -> Option<Bound> {
        let limits = &self.shared.limits;
        let broken = |st: &State| {
            if st.ready.len() + st.unacked >= limits.max_messages {
                Some(Bound::Messages)
            } else if st.ready_bytes + st.unacked_bytes + size > limits.max_bytes {
                Some(Bound::QueueBytes)
            } else if self.shared.total_bytes() + size > limits.max_total_bytes {
                Some(Bound::TotalBytes)
            } else {
                None
            }
        };
        let mut bound = broken(st)?;
        match self.policy() {
            QueueOverflow::DropOldest => {
                while let Some(dropped) = self.pop_ready(st) {
                    self.freed(dropped.msg.size());
                    QueueStats::count(&self.stats().overflow_dropped, 1);
                    match broken(st) {
                        Some(still) => bound = still,
                        None => return None,
                    }
                }
            }
            QueueOverflow::Block => {
                self.room_for(bound).mark_waiting();
                // Other queues free node bytes without this queue's lock: look again after
                // marking, so room freed in between is either seen here or wakes the
                // publisher (see `Room::mark_waiting`). This queue's own bounds cannot
                // change under its lock.
                if bound == Bound::TotalBytes {
                    return broken(st);
                }
            }
            QueueOverflow::Reject => {}
        }
        Some(bound)
    }

    /// `bytes` of messages left this queue for good: room for publishers, here and node-wide.
    fn freed(&self, bytes: usize) {
        self.shared.release(bytes);
        self.room.free();
    }

    /// Adds a consumer. It gets nothing until its session calls [`Queue::resume`], so that
    /// the session can answer the SUBSCRIBE first.
    pub fn add_consumer(&self, spec: ConsumerSpec) -> Result<(), Deleted> {
        let mut st = self.state.lock();
        if st.deleted {
            return Err(Deleted);
        }
        let key = self.shared.next_consumer.fetch_add(1, Ordering::Relaxed);
        st.consumers.push(Consumer::new(key, spec));
        self.note_idle(&mut st);
        self.wake_feed();
        Ok(())
    }

    /// Removes a consumer. Its unacknowledged messages go back to the head of the queue, in
    /// delivery order, marked redelivered, and are delivered to the remaining consumers (a
    /// private queue is discarded instead). Returns how many messages it held.
    pub fn remove_consumer(&self, subscriber: &Subscriber) -> usize {
        let mut st = self.state.lock();
        let Some(index) = st
            .consumers
            .iter()
            .position(|c| c.subscriber == *subscriber)
        else {
            return 0;
        };
        let consumer = st.consumers.remove(index);
        if index < st.cursor {
            st.cursor -= 1;
        }
        let held = consumer.unacked.len();
        let pending: Vec<Pending> = consumer.unacked.into_values().collect();
        self.forget_unacked(&mut st, &pending);
        if self.durable {
            // Back to the store at once, for a consumer here or on any node.
            self.give_back(pending);
            if st.consumers.is_empty() {
                while let Some(p) = self.pop_ready(&mut st) {
                    self.give_back(vec![p]);
                }
            }
            self.dispatch(&mut st);
            self.note_idle(&mut st);
            self.wake_feed();
            return held;
        }
        if self.private {
            self.freed(pending.iter().map(|p| p.msg.size()).sum());
            self.discard_ready(&mut st);
            st.deleted = true;
            return held;
        }
        self.requeue(&mut st, pending, None);
        self.dispatch(&mut st);
        self.note_idle(&mut st);
        held
    }

    /// ACK or NACK of the message delivered to `subscriber` as `seq` (and, if `cumulative`,
    /// of every earlier one it holds). ACK forgets them; NACK puts them back at the head of
    /// the queue for another consumer if one has room. Delivers nothing itself: the session
    /// calls [`Queue::resume`] once it has answered the frame. Returns how many were settled.
    pub fn settle(
        &self,
        subscriber: &Subscriber,
        seq: u64,
        cumulative: bool,
        settle: Settle,
    ) -> Result<usize, UnknownAck> {
        let mut st = self.state.lock();
        let consumer = st
            .consumers
            .iter_mut()
            .find(|c| c.subscriber == *subscriber)
            .ok_or(UnknownAck)?;
        if !consumer.unacked.contains_key(&seq) {
            return Err(UnknownAck);
        }
        let key = consumer.key;
        let settled: Vec<Pending> = if cumulative {
            let later = consumer.unacked.split_off(&(seq + 1));
            std::mem::replace(&mut consumer.unacked, later)
                .into_values()
                .collect()
        } else {
            consumer.unacked.remove(&seq).into_iter().collect()
        };
        self.forget_unacked(&mut st, &settled);
        let n = settled.len();
        match settle {
            Settle::Ack => {
                self.freed(settled.iter().map(|p| p.msg.size()).sum());
                settled.iter().for_each(|p| p.msg.ack_stored());
                QueueStats::count(&self.stats().acked, n as u64);
            }
            // The store redelivers it (flagged, from its delivery count), or dead-letters it.
            Settle::Nack if self.durable => self.give_back(settled),
            Settle::Nack => self.requeue(&mut st, settled, Some(key)),
        }
        self.wake_feed();
        Ok(n)
    }

    /// Whether `seq` awaits acknowledgement by `subscriber`.
    pub fn is_pending(&self, subscriber: &Subscriber, seq: u64) -> bool {
        let st = self.state.lock();
        st.consumers
            .iter()
            .find(|c| c.subscriber == *subscriber)
            .is_some_and(|c| c.unacked.contains_key(&seq))
    }

    /// The delivery number of the unacknowledged message `message_id` held by `subscriber`
    /// (STOMP 1.0 and 1.1 acknowledge by `message-id`).
    pub fn find_unacked(&self, subscriber: &Subscriber, message_id: &str) -> Option<u64> {
        let st = self.state.lock();
        let consumer = st.consumers.iter().find(|c| c.subscriber == *subscriber)?;
        consumer
            .unacked
            .iter()
            .find(|(_, p)| p.msg.id() == message_id)
            .map(|(seq, _)| *seq)
    }

    /// The session of `subscriber` can take messages again: clears its blocked mark and
    /// delivers what waits (to any consumer with room).
    pub fn resume(&self, subscriber: &Subscriber) {
        let mut st = self.state.lock();
        if let Some(c) = st
            .consumers
            .iter_mut()
            .find(|c| c.subscriber == *subscriber)
        {
            c.blocked = false;
        }
        self.dispatch(&mut st);
        self.wake_feed();
    }

    pub fn depth(&self) -> QueueDepth {
        let st = self.state.lock();
        QueueDepth {
            ready: st.ready.len(),
            unacked: st.unacked,
            consumers: st.consumers.len(),
            bytes: st.ready_bytes + st.unacked_bytes,
        }
    }

    /// Drops waiting messages whose `expires` time has passed; returns how many.
    pub(super) fn purge_expired(&self, now_ms: u64) -> usize {
        let mut st = self.state.lock();
        if st.expiring == 0 {
            return 0;
        }
        let before = st.ready.len();
        let (mut freed, mut expiring) = (0, 0);
        st.ready.retain(|p| {
            if is_expired(p.msg.expires(), now_ms) {
                freed += p.msg.size();
                p.msg.ack_stored();
                return false;
            }
            expiring += usize::from(p.msg.expires().is_some());
            true
        });
        let expired = before - st.ready.len();
        st.ready_bytes -= freed;
        st.expiring = expiring;
        let stats = self.stats();
        QueueStats::add(&stats.depth, -(expired as i64));
        self.freed(freed);
        QueueStats::count(&self.shared.stats.messages_expired, expired as u64);
        self.note_idle(&mut st);
        expired
    }

    /// Marks the queue deleted if it has been empty, without consumers, for `grace`.
    pub(super) fn delete_if_idle(&self, now: Instant, grace: Duration) -> bool {
        let mut st = self.state.lock();
        let idle = !st.feeding
            && st
                .idle_since
                .is_some_and(|since| now.saturating_duration_since(since) >= grace);
        if idle && !st.deleted {
            st.deleted = true;
            return true;
        }
        false
    }

    /// Delivers waiting messages, head first, round-robin over the consumers with room,
    /// until the queue is empty or no consumer takes one.
    fn dispatch(&self, st: &mut State) {
        let mut now = None;
        while let Some(head) = st.ready.front() {
            if head.msg.expires().is_some() {
                let now = *now.get_or_insert_with(now_ms);
                if is_expired(head.msg.expires(), now) {
                    if let Some(p) = self.pop_ready(st) {
                        self.freed(p.msg.size());
                        p.msg.ack_stored();
                        QueueStats::count(&self.shared.stats.messages_expired, 1);
                    }
                    continue;
                }
            }
            if !self.deliver_head(st) {
                break;
            }
        }
    }

    /// Hands the head message to the next consumer with room, preferring any consumer but
    /// the one that NACKed it. False if none took it.
    fn deliver_head(&self, st: &mut State) -> bool {
        let n = st.consumers.len();
        let avoid = st.ready.front().and_then(|p| p.avoid);
        let mut fallback = None;
        for i in 0..n {
            let index = (st.cursor + i) % n;
            let consumer = &st.consumers[index];
            if !consumer.has_room() {
                continue;
            }
            if avoid == Some(consumer.key) {
                fallback = Some(index);
                continue;
            }
            if self.offer_head(st, index) {
                st.cursor = (index + 1) % n;
                return true;
            }
        }
        if let Some(index) = fallback {
            if self.offer_head(st, index) {
                st.cursor = (index + 1) % n;
                return true;
            }
        }
        false
    }

    /// Offers the head message to consumer `index`; true if its outbox took it.
    fn offer_head(&self, st: &mut State, index: usize) -> bool {
        let State {
            ready, consumers, ..
        } = &mut *st;
        let (Some(head), Some(consumer)) = (ready.front(), consumers.get_mut(index)) else {
            return false;
        };
        let seq = consumer.next_seq;
        let ack = consumer.ack.is_client().then(|| {
            AckId {
                tag: consumer.tag,
                seq,
            }
            .to_string()
        });
        let frame = match &consumer.shown_destination {
            // Shared by the private queues of every subscription it reached: cached.
            None if self.private => head.msg.render(
                consumer.subscriber.version,
                &consumer.subscriber.id,
                ack.as_deref(),
                head.redelivered,
            ),
            shown => head.msg.render_once(
                shown.as_deref(),
                consumer.subscriber.version,
                &consumer.subscriber.id,
                ack.as_deref(),
                head.redelivered,
            ),
        };
        match consumer.subscriber.outbox.offer(frame) {
            Offered::Queued => {}
            Offered::Full => {
                consumer.blocked = true;
                return false;
            }
            Offered::Closed => {
                consumer.closed = true;
                return false;
            }
        }
        let client = consumer.ack.is_client();
        let Some(mut pending) = self.pop_ready(st) else {
            return false;
        };
        let stats = self.stats();
        QueueStats::count(&stats.delivered, 1);
        if pending.redelivered {
            QueueStats::count(&stats.redelivered, 1);
        }
        if client {
            pending.avoid = None;
            st.unacked += 1;
            st.unacked_bytes += pending.msg.size();
            QueueStats::add(&stats.unacked, 1);
            let consumer = &mut st.consumers[index];
            consumer.next_seq += 1;
            consumer.unacked.insert(seq, pending);
        } else {
            self.freed(pending.msg.size());
            pending.msg.ack_stored();
            // Its consumer's credit is back (see `Queue::feed_room`).
            self.wake_feed();
        }
        true
    }

    /// Gives messages of a durable queue back to their store, at once.
    fn give_back(&self, pending: Vec<Pending>) {
        QueueStats::count(&self.stats().requeued, pending.len() as u64);
        for p in pending {
            self.freed(p.msg.size());
            p.msg.nak_stored();
        }
    }

    fn wake_feed(&self) {
        if self.durable {
            self.feed_wake.notify_one();
        }
    }

    /// Whether the caller is to start this durable queue's feeder: it has consumers and
    /// nobody feeds it yet. Claimed under the queue's lock, so one feeder at a time.
    pub fn claim_feed(&self) -> bool {
        let mut st = self.state.lock();
        if !self.durable || st.feeding || st.deleted || st.consumers.is_empty() {
            return false;
        }
        st.feeding = true;
        true
    }

    /// What the feeder may hand over now: per consumer with room, its prefetch (of a client
    /// mode, less what it holds unacknowledged), minus what already waits here. `Stop` once
    /// no consumer is left: the feeder ends, and the next consumer claims a new one.
    pub fn feed_room(&self) -> FeedRoom {
        let mut st = self.state.lock();
        let room = self.room(&st);
        if room == FeedRoom::Stop {
            st.feeding = false;
        }
        room
    }

    /// [`Queue::feed_room`] for a feeder in the middle of a pull, which goes on reading it
    /// whatever the answer: `Stop` does not let another feeder start yet.
    pub fn feed_room_now(&self) -> FeedRoom {
        self.room(&self.state.lock())
    }

    fn room(&self, st: &State) -> FeedRoom {
        if st.consumers.is_empty() || st.deleted {
            return FeedRoom::Stop;
        }
        let credit: usize = st
            .consumers
            .iter()
            .filter(|c| c.has_room())
            .map(|c| {
                let held = if c.ack.is_client() {
                    c.unacked.len()
                } else {
                    0
                };
                c.prefetch.saturating_sub(held)
            })
            .sum();
        // What it holds is bounded like any queue's (large prefetch counts, large messages).
        let limits = &self.shared.limits;
        if st.ready_bytes + st.unacked_bytes >= limits.max_bytes
            || self.shared.total_bytes() >= limits.max_total_bytes
        {
            return FeedRoom::Room(0);
        }
        let held = st.ready.len() + st.unacked;
        let credit = credit.min(limits.max_messages.saturating_sub(held));
        FeedRoom::Room(credit.saturating_sub(st.ready.len()))
    }

    /// Completes when the consumers may have room for more (see [`Queue::feed_room`]). A
    /// wake-up between two waits is kept, so none is lost.
    pub async fn feed_room_changed(&self) {
        self.feed_wake.notified().await;
    }

    /// A message the store handed over, delivered like any other. Refused (and so given
    /// back to the store when dropped) once the queue has no consumers.
    pub fn enqueue_stored(
        &self,
        msg: Arc<QueuedMessage>,
        redelivered: bool,
    ) -> Result<(), Arc<QueuedMessage>> {
        let mut st = self.state.lock();
        if st.deleted || st.consumers.is_empty() {
            return Err(msg);
        }
        self.shared.charge(msg.size());
        let mut pending = Pending::new(msg);
        pending.redelivered = redelivered;
        self.push_ready(&mut st, pending, false);
        self.dispatch(&mut st);
        Ok(())
    }

    /// Puts settled or orphaned messages back at the head, in their order, redelivered.
    fn requeue(&self, st: &mut State, pending: Vec<Pending>, avoid: Option<u64>) {
        QueueStats::count(&self.stats().requeued, pending.len() as u64);
        for mut p in pending.into_iter().rev() {
            p.redelivered = true;
            p.avoid = avoid;
            self.push_ready(st, p, true);
        }
    }

    /// Bookkeeping for messages leaving the unacknowledged set.
    fn forget_unacked(&self, st: &mut State, pending: &[Pending]) {
        let bytes: usize = pending.iter().map(|p| p.msg.size()).sum();
        st.unacked -= pending.len();
        st.unacked_bytes -= bytes;
        QueueStats::add(&self.stats().unacked, -(pending.len() as i64));
    }

    fn push_ready(&self, st: &mut State, p: Pending, front: bool) {
        st.ready_bytes += p.msg.size();
        if p.msg.expires().is_some() {
            st.expiring += 1;
        }
        QueueStats::add(&self.stats().depth, 1);
        if front {
            st.ready.push_front(p);
        } else {
            st.ready.push_back(p);
        }
    }

    fn pop_ready(&self, st: &mut State) -> Option<Pending> {
        let p = st.ready.pop_front()?;
        st.ready_bytes -= p.msg.size();
        if p.msg.expires().is_some() {
            st.expiring -= 1;
        }
        QueueStats::add(&self.stats().depth, -1);
        Some(p)
    }

    /// Drops every waiting message (bytes included in the node total).
    fn discard_ready(&self, st: &mut State) {
        while let Some(p) = self.pop_ready(st) {
            self.freed(p.msg.size());
        }
    }

    /// Starts or stops the idle clock: idle means empty and without consumers.
    fn note_idle(&self, st: &mut State) {
        let idle = st.ready.is_empty() && st.consumers.is_empty();
        match (idle, st.idle_since) {
            (true, None) => st.idle_since = Some(Instant::now()),
            (false, Some(_)) => st.idle_since = None,
            _ => {}
        }
    }
}

impl Drop for Queue {
    /// Whatever a queue still holds when it goes (a private queue dropped with its topic
    /// subscription) leaves the node's gauges with it.
    fn drop(&mut self) {
        let st = self.state.get_mut();
        let stats = &self.shared.stats.queues;
        QueueStats::add(&stats.depth, -(st.ready.len() as i64));
        QueueStats::add(&stats.unacked, -(st.unacked as i64));
        self.shared.release(st.ready_bytes + st.unacked_bytes);
    }
}
