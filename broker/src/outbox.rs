//! A session's bounded outbound queue. Routing pushes encoded frames in from any task; the
//! session task drains everything queued in one go and writes it with one flush.
//!
//! Two kinds of message share it, each bounded by `max_bytes` on its own:
//! - pushed messages (topics): `max_bytes` is a high-water mark. Under policy `close` a push
//!   that leaves the outbox above it is still queued but reported as congested, so the
//!   publishing session pauses until this outbox is drained (back-pressure instead of loss).
//!   Only past the hard bound (`max_bytes` plus one largest frame, so any message the broker
//!   accepts fits into an outbox just under the mark) or when a publisher's pause runs out is
//!   the session closed as a slow consumer. Under `drop_oldest` the oldest pushed messages
//!   make room instead and nobody pauses;
//! - offered messages (queues, client-ack subscriptions): past the bound the offer is refused
//!   and the message stays with its queue, which hands it to another subscriber or waits.
//!   A refusal is remembered until the next drain, so the session knows to ask its queues
//!   for more once it has written what it has.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::config::OverflowPolicy;

/// One encoded frame waiting to be written.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub bytes: Bytes,
    /// Whether a WebSocket may carry it as a text message (it is valid UTF-8).
    pub text: bool,
}

/// What happened to a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// Queued, and the outbox is now above its high-water mark: the publisher should wait
    /// for [`Outbox::uncongested`] before it routes more.
    Congested,
    /// Queued after dropping this many older messages (policy `drop_oldest`).
    QueuedAfterDropping(usize),
    /// The queue was full under policy `close`: the session is being closed as a slow
    /// consumer and the message is discarded.
    Overflowed,
    /// The session is closing; the message is discarded.
    Closed,
}

/// What happened to an offered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    Queued,
    /// No room: the message was not queued and is still the caller's.
    Full,
    /// The session is closing: the message was not queued.
    Closed,
}

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Stores one permit, so any number of pushes between two drains wake the session once.
    ready: Notify,
    /// Fired once when the queue overflows under policy `close`, so a session blocked in a
    /// write to a client that stopped reading learns it must close.
    overflow: Notify,
    /// Wakes publishers paused on this outbox when it is drained or closed.
    drained: Notify,
    max_bytes: usize,
    /// How far pushed messages may pass `max_bytes` before the session is closed.
    burst_bytes: usize,
    policy: OverflowPolicy,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Entry>,
    /// Bytes of every queued frame.
    bytes: usize,
    /// Bytes of the offered messages among them.
    offered_bytes: usize,
    /// An offer was refused since the last drain.
    refused: bool,
    /// A publisher was told this outbox is congested since the last drain.
    congested: bool,
    overflowed: bool,
    closed: bool,
    /// When the first frame since the last drain was queued, for the write latency metric;
    /// set for one batch in [`LATENCY_SAMPLE`] (the first included), so a fan-out does not
    /// read the clock once per subscriber per message.
    since: Option<Instant>,
    /// Batches begun (pushes into an empty outbox), for the sampling.
    batches: u32,
}

/// One batch in this many is timed from queue to socket.
const LATENCY_SAMPLE: u32 = 16;

#[derive(Debug)]
struct Entry {
    frame: OutFrame,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A pushed message: may be dropped under `drop_oldest`.
    Pushed,
    /// An offered message: never dropped, its queue counts it as delivered.
    Offered,
    /// The session's own frames (RECEIPT, ERROR): never dropped.
    Control,
}

/// The result of [`Outbox::drain`].
#[derive(Debug, Default)]
pub struct Drained {
    pub frames: Vec<OutFrame>,
    /// The queue overflowed under policy `close`: the session must close as a slow consumer.
    pub overflowed: bool,
    /// An offer was refused since the previous drain: the session should ask its queues to
    /// deliver again once it has written these frames.
    pub refused: bool,
    /// When the oldest of these frames was queued, for a sampled batch.
    pub since: Option<Instant>,
}

impl Outbox {
    /// An outbox whose pushed messages may pass `max_bytes` by as much again.
    pub fn new(max_bytes: usize, policy: OverflowPolicy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
            drained: Notify::new(),
            max_bytes,
            burst_bytes: max_bytes,
            policy,
            dropped: AtomicU64::new(0),
        }
    }

    /// Lets pushed messages pass `max_bytes` by `burst_bytes` (at least one largest frame)
    /// before the session is closed.
    pub fn with_burst_bytes(mut self, burst_bytes: usize) -> Outbox {
        self.burst_bytes = burst_bytes;
        self
    }

    /// Queues a routed message, applying the byte bounds and the overflow policy.
    pub fn push_message(&self, frame: OutFrame) -> Pushed {
        let pushed = {
            let mut state = self.state.lock();
            if state.closed || state.overflowed {
                return Pushed::Closed;
            }
            let len = frame.bytes.len();
            match self.policy {
                OverflowPolicy::Close => {
                    if state.pushed_bytes() + len > self.max_bytes + self.burst_bytes {
                        drop(state);
                        self.overflow_now();
                        return Pushed::Overflowed;
                    }
                    state.push(frame, Kind::Pushed);
                    if state.pushed_bytes() > self.max_bytes {
                        state.congested = true;
                        Pushed::Congested
                    } else {
                        Pushed::Queued
                    }
                }
                OverflowPolicy::DropOldest => {
                    let mut dropped = 0;
                    if state.pushed_bytes() + len > self.max_bytes {
                        dropped = state.drop_oldest_until(self.max_bytes.saturating_sub(len));
                    }
                    state.push(frame, Kind::Pushed);
                    if dropped == 0 {
                        Pushed::Queued
                    } else {
                        self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                        Pushed::QueuedAfterDropping(dropped)
                    }
                }
            }
        };
        self.ready.notify_one();
        pushed
    }

    /// Marks the outbox overflowed and frees its memory now; the session sees `overflowed`
    /// and closes as a slow consumer.
    fn overflow_now(&self) {
        {
            let mut state = self.state.lock();
            let discarded = state
                .frames
                .iter()
                .filter(|e| e.kind == Kind::Pushed)
                .count();
            self.dropped.fetch_add(discarded as u64, Ordering::Relaxed);
            state.frames = VecDeque::new();
            state.bytes = 0;
            state.offered_bytes = 0;
            state.overflowed = true;
        }
        self.ready.notify_one();
        self.overflow.notify_one();
        self.drained.notify_waiters();
    }

    /// Whether pushed messages are above the high-water mark (publishers should wait).
    pub fn is_congested(&self) -> bool {
        if self.policy == OverflowPolicy::DropOldest {
            return false;
        }
        let state = self.state.lock();
        !state.closed && !state.overflowed && state.pushed_bytes() > self.max_bytes
    }

    /// Waits until the outbox is no longer congested: drained, closed or overflowed.
    pub async fn uncongested(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            // Registered before the check, so a drain in between is not missed.
            drained.as_mut().enable();
            if !self.is_congested() {
                return;
            }
            drained.await;
        }
    }

    /// Closes the session as a slow consumer if its outbox is still congested: a publisher
    /// waited for it as long as it may. Returns whether it did.
    pub fn close_if_congested(&self) -> bool {
        if !self.is_congested() {
            return false;
        }
        self.overflow_now();
        true
    }

    /// Queues a message only if there is room for it among the offered messages (or none
    /// is queued, so that a message larger than the bound still goes out on its own). Never
    /// drops anything and never closes the session.
    pub fn offer(&self, frame: OutFrame) -> Offered {
        {
            let mut state = self.state.lock();
            if state.closed || state.overflowed {
                return Offered::Closed;
            }
            let len = frame.bytes.len();
            if state.offered_bytes > 0 && state.offered_bytes + len > self.max_bytes {
                state.refused = true;
                return Offered::Full;
            }
            state.offered_bytes += len;
            state.push(frame, Kind::Offered);
        }
        self.ready.notify_one();
        Offered::Queued
    }

    /// Queues one of the session's own frames (CONNECTED, RECEIPT, ERROR) behind the messages
    /// already queued, so frame order is kept. Not subject to the bound: a session produces
    /// these only in answer to frames it reads, which reading pauses for while writes block.
    pub fn push_control(&self, frame: OutFrame) {
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.push(frame, Kind::Control);
        }
        self.ready.notify_one();
    }

    /// Takes everything queued.
    pub fn drain(&self) -> Drained {
        let mut state = self.state.lock();
        let entries = std::mem::take(&mut state.frames);
        state.bytes = 0;
        state.offered_bytes = 0;
        let drained = Drained {
            frames: entries.into_iter().map(|e| e.frame).collect(),
            overflowed: state.overflowed,
            refused: std::mem::take(&mut state.refused),
            since: state.since.take(),
        };
        let wake_publishers = std::mem::take(&mut state.congested);
        drop(state);
        if wake_publishers {
            self.drained.notify_waiters();
        }
        drained
    }

    /// Waits until something was pushed since the last wake-up.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Waits until the queue has overflowed under policy `close`.
    pub async fn overflowed(&self) {
        self.overflow.notified().await
    }

    /// Refuses further pushes; called when the session ends.
    pub fn close(&self) {
        {
            let mut state = self.state.lock();
            state.closed = true;
            state.frames = VecDeque::new();
            state.bytes = 0;
            state.offered_bytes = 0;
        }
        self.drained.notify_waiters();
    }

    /// Routed messages dropped so far: under `drop_oldest` to make room, under `close` those
    /// it held when it overflowed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl State {
    fn push(&mut self, frame: OutFrame, kind: Kind) {
        if self.frames.is_empty() {
            if self.batches % LATENCY_SAMPLE == 0 {
                self.since = Some(Instant::now());
            }
            self.batches = self.batches.wrapping_add(1);
        }
        self.bytes += frame.bytes.len();
        self.frames.push_back(Entry { frame, kind });
    }

    /// Bytes that count against the bound of pushed messages: all but the offered ones.
    fn pushed_bytes(&self) -> usize {
        self.bytes - self.offered_bytes
    }

    /// Drops the oldest pushed messages until at most `target` bytes of pushed messages and
    /// control frames are queued; returns how many it dropped.
    fn drop_oldest_until(&mut self, target: usize) -> usize {
        let mut dropped = 0;
        let mut index = 0;
        while self.pushed_bytes() > target && index < self.frames.len() {
            if self.frames[index].kind == Kind::Pushed {
                if let Some(entry) = self.frames.remove(index) {
                    self.bytes -= entry.frame.bytes.len();
                    dropped += 1;
                }
            } else {
                index += 1;
            }
        }
        dropped
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn frame(len: usize) -> OutFrame {
        OutFrame {
            bytes: Bytes::from(vec![b'x'; len]),
            text: true,
        }
    }

    /// One batch in `LATENCY_SAMPLE` is timed, from its first frame, starting with the first.
    #[test]
    fn one_batch_in_sixteen_is_timed_from_its_first_frame() {
        let outbox = Outbox::new(1 << 20, OverflowPolicy::Close);
        let mut timed = Vec::new();
        for batch in 0..2 * LATENCY_SAMPLE {
            outbox.push_message(frame(10));
            outbox.push_message(frame(10));
            if outbox.drain().since.is_some() {
                timed.push(batch);
            }
        }
        assert_eq!(timed, [0, LATENCY_SAMPLE]);
    }

    /// The byte lengths of the frames a drain takes, in order.
    fn drained_lengths(outbox: &Outbox) -> Vec<usize> {
        outbox
            .drain()
            .frames
            .iter()
            .map(|f| f.bytes.len())
            .collect()
    }

    #[test]
    fn overflow_under_close_policy_discards_and_flags() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        assert_eq!(outbox.push_message(frame(60)), Pushed::Queued);
        assert_eq!(outbox.push_message(frame(60)), Pushed::Congested);
        assert_eq!(outbox.push_message(frame(90)), Pushed::Overflowed);
        assert_eq!(outbox.push_message(frame(1)), Pushed::Closed);
        let drained = outbox.drain();
        assert!(drained.overflowed);
        assert!(drained.frames.is_empty());
        assert_eq!(
            outbox.dropped(),
            2,
            "the two it held are counted as dropped"
        );
    }

    #[test]
    fn drop_oldest_keeps_control_frames_and_the_newest_messages() {
        let outbox = Outbox::new(100, OverflowPolicy::DropOldest);
        outbox.push_message(frame(40));
        outbox.push_control(frame(10));
        outbox.push_message(frame(40));
        assert_eq!(
            outbox.push_message(frame(40)),
            Pushed::QueuedAfterDropping(1)
        );
        let lens = drained_lengths(&outbox);
        assert_eq!(lens, [10, 40, 40]);
        assert_eq!(outbox.dropped(), 1);
    }

    #[test]
    fn offers_have_their_own_bound_and_are_refused_not_lost() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        assert_eq!(outbox.offer(frame(60)), Offered::Queued);
        assert_eq!(outbox.offer(frame(60)), Offered::Full);
        // Pushed messages are bounded apart from offered ones.
        assert_eq!(outbox.push_message(frame(90)), Pushed::Queued);
        let drained = outbox.drain();
        assert_eq!(drained.frames.len(), 2);
        assert!(drained.refused);
        assert!(!drained.overflowed);
        assert!(!outbox.drain().refused, "the refusal is reported once");
        // An empty outbox takes a message larger than the bound, alone.
        assert_eq!(outbox.offer(frame(500)), Offered::Queued);
        assert_eq!(outbox.offer(frame(1)), Offered::Full);
        outbox.close();
        assert_eq!(outbox.offer(frame(1)), Offered::Closed);
    }

    #[test]
    fn drop_oldest_never_drops_offered_messages() {
        let outbox = Outbox::new(100, OverflowPolicy::DropOldest);
        assert_eq!(outbox.offer(frame(80)), Offered::Queued);
        outbox.push_message(frame(60));
        assert_eq!(
            outbox.push_message(frame(60)),
            Pushed::QueuedAfterDropping(1)
        );
        let lens = drained_lengths(&outbox);
        assert_eq!(lens, [80, 60]);
    }

    #[test]
    fn a_message_larger_than_the_mark_is_queued_not_fatal() {
        // The default outbox mark is 512 KiB and the frame limit 4 MiB: a 1 MiB message
        // must reach a reading subscriber.
        let outbox = Outbox::new(512, OverflowPolicy::Close).with_burst_bytes(4096);
        assert_eq!(outbox.push_message(frame(1024)), Pushed::Congested);
        assert_eq!(outbox.push_message(frame(3000)), Pushed::Congested);
        assert_eq!(outbox.push_message(frame(1000)), Pushed::Overflowed);
        let outbox = Outbox::new(512, OverflowPolicy::Close).with_burst_bytes(4096);
        assert_eq!(outbox.push_message(frame(4096)), Pushed::Congested);
        assert_eq!(drained_lengths(&outbox), [4096]);
        assert!(!outbox.is_congested());
    }

    #[tokio::test(start_paused = true)]
    async fn a_drain_wakes_publishers_waiting_for_room() {
        let outbox = Arc::new(Outbox::new(100, OverflowPolicy::Close));
        outbox.push_message(frame(150));
        assert!(outbox.is_congested());
        let waiter = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.uncongested().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        outbox.drain();
        waiter.await.unwrap();
        // Uncongested already: returns at once.
        outbox.uncongested().await;
    }

    #[test]
    fn a_publisher_out_of_patience_closes_a_congested_subscriber_only() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        outbox.push_message(frame(50));
        assert!(!outbox.close_if_congested());
        outbox.push_message(frame(60));
        assert!(outbox.close_if_congested());
        let drained = outbox.drain();
        assert!(drained.overflowed && drained.frames.is_empty());
        assert_eq!(outbox.push_message(frame(1)), Pushed::Closed);
    }

    #[test]
    fn drop_oldest_never_reports_congestion() {
        let outbox = Outbox::new(100, OverflowPolicy::DropOldest);
        for _ in 0..10 {
            assert_ne!(outbox.push_message(frame(60)), Pushed::Congested);
        }
        assert!(!outbox.is_congested());
    }

    #[test]
    fn drain_empties_and_resets_the_byte_count() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        outbox.push_message(frame(90));
        assert_eq!(outbox.drain().frames.len(), 1);
        assert_eq!(outbox.push_message(frame(90)), Pushed::Queued);
    }
}
