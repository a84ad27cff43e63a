//! A session's bounded outbound queue. Routing pushes encoded frames in from any task; the
//! session task drains everything queued in one go and writes it with one flush.
//!
//! Two kinds of message share it, each bounded by `max_bytes` on its own:
//! - pushed messages (topics): past the bound the overflow policy applies (close the session,
//!   or drop the oldest pushed messages);
//! - offered messages (queues, client-ack subscriptions): past the bound the offer is refused
//!   and the message stays with its queue, which hands it to another subscriber or waits.
//!   A refusal is remembered until the next drain, so the session knows to ask its queues
//!   for more once it has written what it has.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

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
    max_bytes: usize,
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
    overflowed: bool,
    closed: bool,
}

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
}

impl Outbox {
    pub fn new(max_bytes: usize, policy: OverflowPolicy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            overflow: Notify::new(),
            max_bytes,
            policy,
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues a routed message, applying the byte bound and the overflow policy.
    pub fn push_message(&self, frame: OutFrame) -> Pushed {
        let pushed = {
            let mut state = self.state.lock();
            if state.closed || state.overflowed {
                return Pushed::Closed;
            }
            let len = frame.bytes.len();
            let mut dropped = 0;
            if state.pushed_bytes() + len > self.max_bytes {
                match self.policy {
                    OverflowPolicy::Close => {
                        // Free the memory now; the session sees `overflowed` and closes.
                        state.frames = VecDeque::new();
                        state.bytes = 0;
                        state.offered_bytes = 0;
                        state.overflowed = true;
                        drop(state);
                        self.ready.notify_one();
                        self.overflow.notify_one();
                        return Pushed::Overflowed;
                    }
                    OverflowPolicy::DropOldest => {
                        dropped = state.drop_oldest_until(self.max_bytes.saturating_sub(len));
                    }
                }
            }
            state.push(frame, Kind::Pushed);
            if dropped == 0 {
                Pushed::Queued
            } else {
                self.dropped.fetch_add(dropped as u64, Ordering::Relaxed);
                Pushed::QueuedAfterDropping(dropped)
            }
        };
        self.ready.notify_one();
        pushed
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
        Drained {
            frames: entries.into_iter().map(|e| e.frame).collect(),
            overflowed: state.overflowed,
            refused: std::mem::take(&mut state.refused),
        }
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
        let mut state = self.state.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
        state.offered_bytes = 0;
    }

    /// Messages dropped under `drop_oldest` so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl State {
    fn push(&mut self, frame: OutFrame, kind: Kind) {
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
    use super::*;

    fn frame(len: usize) -> OutFrame {
        OutFrame {
            bytes: Bytes::from(vec![b'x'; len]),
            text: true,
        }
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
        assert_eq!(outbox.push_message(frame(60)), Pushed::Overflowed);
        assert_eq!(outbox.push_message(frame(1)), Pushed::Closed);
        let drained = outbox.drain();
        assert!(drained.overflowed);
        assert!(drained.frames.is_empty());
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
    fn drain_empties_and_resets_the_byte_count() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        outbox.push_message(frame(90));
        assert_eq!(outbox.drain().frames.len(), 1);
        assert_eq!(outbox.push_message(frame(90)), Pushed::Queued);
    }
}
