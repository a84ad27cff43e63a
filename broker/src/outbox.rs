//! A session's bounded outbound queue. Routing pushes encoded frames in from any task; the
//! session task drains everything queued in one go and writes it with one flush.

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

#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Stores one permit, so any number of pushes between two drains wake the session once.
    ready: Notify,
    max_bytes: usize,
    policy: OverflowPolicy,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Entry>,
    bytes: usize,
    overflowed: bool,
    closed: bool,
}

#[derive(Debug)]
struct Entry {
    frame: OutFrame,
    /// Messages may be dropped under `drop_oldest`; the session's own frames (RECEIPT,
    /// ERROR) never are.
    droppable: bool,
}

/// The result of [`Outbox::drain`].
#[derive(Debug, Default)]
pub struct Drained {
    pub frames: Vec<OutFrame>,
    /// The queue overflowed under policy `close`: the session must close as a slow consumer.
    pub overflowed: bool,
}

impl Outbox {
    pub fn new(max_bytes: usize, policy: OverflowPolicy) -> Outbox {
        Outbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
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
            if state.bytes + len > self.max_bytes {
                match self.policy {
                    OverflowPolicy::Close => {
                        // Free the memory now; the session sees `overflowed` and closes.
                        state.frames = VecDeque::new();
                        state.bytes = 0;
                        state.overflowed = true;
                        drop(state);
                        self.ready.notify_one();
                        return Pushed::Overflowed;
                    }
                    OverflowPolicy::DropOldest => {
                        dropped = state.drop_oldest_until(self.max_bytes.saturating_sub(len));
                    }
                }
            }
            state.push(frame, true);
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

    /// Queues one of the session's own frames (CONNECTED, RECEIPT, ERROR) behind the messages
    /// already queued, so frame order is kept. Not subject to the bound: a session produces
    /// these only in answer to frames it reads, which reading pauses for while writes block.
    pub fn push_control(&self, frame: OutFrame) {
        {
            let mut state = self.state.lock();
            if state.closed {
                return;
            }
            state.push(frame, false);
        }
        self.ready.notify_one();
    }

    /// Takes everything queued.
    pub fn drain(&self) -> Drained {
        let mut state = self.state.lock();
        let entries = std::mem::take(&mut state.frames);
        state.bytes = 0;
        Drained {
            frames: entries.into_iter().map(|e| e.frame).collect(),
            overflowed: state.overflowed,
        }
    }

    /// Waits until something was pushed since the last wake-up.
    pub async fn ready(&self) {
        self.ready.notified().await
    }

    /// Refuses further pushes; called when the session ends.
    pub fn close(&self) {
        let mut state = self.state.lock();
        state.closed = true;
        state.frames = VecDeque::new();
        state.bytes = 0;
    }

    /// Messages dropped under `drop_oldest` so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl State {
    fn push(&mut self, frame: OutFrame, droppable: bool) {
        self.bytes += frame.bytes.len();
        self.frames.push_back(Entry { frame, droppable });
    }

    /// Drops the oldest droppable messages until at most `target` bytes are queued; returns
    /// how many it dropped.
    fn drop_oldest_until(&mut self, target: usize) -> usize {
        let mut dropped = 0;
        let mut index = 0;
        while self.bytes > target && index < self.frames.len() {
            if self.frames[index].droppable {
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
        let lens: Vec<usize> = outbox
            .drain()
            .frames
            .iter()
            .map(|f| f.bytes.len())
            .collect();
        assert_eq!(lens, [10, 40, 40]);
        assert_eq!(outbox.dropped(), 1);
    }

    #[test]
    fn drain_empties_and_resets_the_byte_count() {
        let outbox = Outbox::new(100, OverflowPolicy::Close);
        outbox.push_message(frame(90));
        assert_eq!(outbox.drain().frames.len(), 1);
        assert_eq!(outbox.push_message(frame(90)), Pushed::Queued);
    }
}
