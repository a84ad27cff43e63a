//! The link's NATS subscriptions, read together so that the order NATS sent in can be
//! restored.
//!
//! async-nats reads its one connection in order and hands each message to its subscription's
//! channel at once. Each channel is in socket order, but a reader per channel would interleave
//! the channels its own way: a message to `/topic/a` could overtake an earlier one to
//! `/topic/b` that one session subscribed to both. [`Inlets::sweep`] instead empties every
//! channel that has something, again and again, until none has. When it returns, every
//! message handed to any channel before a message it took is in hand too (the connection is
//! read in order), so sorting what it took by publish order (`order.rs`) gives the order NATS
//! sent. Only channels woken since they were last emptied are looked at, each through a
//! waker of its own, so a sweep costs what arrived, not the number of subscriptions.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// One inlet, for as long as it is added.
pub(crate) type InletId = u64;

/// Streams (NATS subscriptions), each with a tag saying what it is for.
pub(crate) struct Inlets<S, T> {
    inlets: HashMap<InletId, Inlet<S, T>>,
    last_id: InletId,
    woken: Arc<Woken>,
}

struct Inlet<S, T> {
    stream: S,
    tag: T,
    waker: Arc<InletWaker>,
}

/// The inlets woken since they were last emptied, and a wake-up for the reader.
#[derive(Debug, Default)]
pub(crate) struct Woken {
    ids: Mutex<Vec<InletId>>,
    notify: Notify,
}

impl Woken {
    /// Waits until some inlet has been woken since the last sweep (at once if one was).
    pub(crate) async fn wait(&self) {
        self.notify.notified().await;
    }
}

struct InletWaker {
    id: InletId,
    /// In `Woken::ids` already: woken once until the sweep takes it.
    queued: AtomicBool,
    woken: Weak<Woken>,
}

impl Wake for InletWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(woken) = self.woken.upgrade() {
            woken.ids.lock().push(self.id);
            woken.notify.notify_one();
        }
    }
}

impl<S, T> Default for Inlets<S, T> {
    fn default() -> Self {
        Inlets {
            inlets: HashMap::new(),
            last_id: 0,
            woken: Arc::default(),
        }
    }
}

impl<S: Stream + Unpin, T> Inlets<S, T> {
    /// What the reader waits on between sweeps.
    pub(crate) fn woken(&self) -> Arc<Woken> {
        Arc::clone(&self.woken)
    }

    /// Adds `stream`; the next sweep reads it.
    pub(crate) fn add(&mut self, tag: T, stream: S) -> InletId {
        self.last_id += 1;
        let id = self.last_id;
        let waker = Arc::new(InletWaker {
            id,
            queued: AtomicBool::new(false),
            woken: Arc::downgrade(&self.woken),
        });
        // Looked at once whatever it holds; from then on its waker says when.
        Waker::from(Arc::clone(&waker)).wake();
        self.inlets.insert(id, Inlet { stream, tag, waker });
        id
    }

    /// Removes an inlet; what its stream still held is dropped with it.
    pub(crate) fn remove(&mut self, id: InletId) -> Option<(T, S)> {
        self.inlets
            .remove(&id)
            .map(|inlet| (inlet.tag, inlet.stream))
    }

    /// Empties every woken inlet until none is woken, handing each item to `take` with its
    /// inlet's tag. Removes the inlets whose stream ended and returns their tags.
    ///
    /// Must run where tokio's cooperative budget does not apply (`tokio::task::unconstrained`):
    /// a channel out of budget says it is empty and wakes itself at once, which would make
    /// this loop spin.
    pub(crate) fn sweep(&mut self, mut take: impl FnMut(&T, S::Item)) -> Vec<T> {
        let mut ended = Vec::new();
        loop {
            let woken = std::mem::take(&mut *self.woken.ids.lock());
            if woken.is_empty() {
                break;
            }
            for id in woken {
                // Gone since it was woken.
                let Some(inlet) = self.inlets.get_mut(&id) else {
                    continue;
                };
                // Cleared before reading: whatever arrives from now on wakes it again.
                inlet.waker.queued.store(false, Ordering::Release);
                let waker = Waker::from(Arc::clone(&inlet.waker));
                let mut cx = Context::from_waker(&waker);
                loop {
                    match Pin::new(&mut inlet.stream).poll_next(&mut cx) {
                        Poll::Ready(Some(item)) => take(&inlet.tag, item),
                        Poll::Ready(None) => {
                            ended.push(id);
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
            }
        }
        ended
            .into_iter()
            .filter_map(|id| self.remove(id).map(|(tag, _)| tag))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use super::*;

    struct Channel(mpsc::Receiver<u64>);

    impl Stream for Channel {
        type Item = u64;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<u64>> {
            self.0.poll_recv(cx)
        }
    }

    fn channel() -> (mpsc::Sender<u64>, Channel) {
        let (tx, rx) = mpsc::channel(1024);
        (tx, Channel(rx))
    }

    /// Inlets `a` and `b`: their senders and `b`'s id.
    fn two_inlets() -> (
        Inlets<Channel, &'static str>,
        [mpsc::Sender<u64>; 2],
        InletId,
    ) {
        let mut inlets = Inlets::default();
        let (a_tx, a) = channel();
        let (b_tx, b) = channel();
        inlets.add("a", a);
        let b_id = inlets.add("b", b);
        (inlets, [a_tx, b_tx], b_id)
    }

    #[test]
    fn a_sweep_takes_everything_and_only_looks_at_woken_inlets() {
        let (mut inlets, [a_tx, b_tx], b_id) = two_inlets();
        a_tx.try_send(1).unwrap();
        b_tx.try_send(2).unwrap();
        a_tx.try_send(3).unwrap();
        let mut taken = Vec::new();
        assert!(inlets.sweep(|tag, n| taken.push((*tag, n))).is_empty());
        taken.sort_by_key(|&(_, n)| n);
        assert_eq!(taken, [("a", 1), ("b", 2), ("a", 3)]);
        assert!(inlets.woken.ids.lock().is_empty(), "nothing woken");
        b_tx.try_send(4).unwrap();
        assert_eq!(*inlets.woken.ids.lock(), [b_id], "only b woken");
        let mut taken = Vec::new();
        inlets.sweep(|tag, n| taken.push((*tag, n)));
        assert_eq!(taken, [("b", 4)]);
    }

    #[test]
    fn ended_and_removed_inlets() {
        let (mut inlets, [a_tx, b_tx], b_id) = two_inlets();
        a_tx.try_send(1).unwrap();
        drop(a_tx);
        let mut taken = Vec::new();
        assert_eq!(inlets.sweep(|_, n| taken.push(n)), ["a"]);
        assert_eq!(taken, [1], "what it held before it ended is taken");
        b_tx.try_send(2).unwrap();
        assert!(inlets.remove(b_id).is_some());
        assert!(inlets.sweep(|_, n| taken.push(n)).is_empty());
        assert_eq!(taken, [1], "a removed inlet is not read");
        assert!(inlets.inlets.is_empty());
    }

    /// The property the link relies on: one sender writing to several channels in sequence
    /// (as async-nats does), a reader sweeping on another thread. Whenever a sweep returns,
    /// everything sent before the last item it took is in hand: sorted, the items of each
    /// sweep continue the ones before without a gap.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_sweep_returns_continues_the_sequence_without_gaps() {
        const CHANNELS: usize = 7;
        const ITEMS: u64 = 200_000;
        let mut inlets: Inlets<Channel, usize> = Inlets::default();
        let mut senders = Vec::new();
        for tag in 0..CHANNELS {
            let (tx, rx) = channel();
            senders.push(tx);
            inlets.add(tag, rx);
        }
        let writer = tokio::spawn(async move {
            // A cheap pseudo-random channel per item.
            let mut x: u64 = 88_172_645_463_325_252;
            for n in 1..=ITEMS {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                senders[(x % CHANNELS as u64) as usize]
                    .send(n)
                    .await
                    .unwrap();
            }
        });
        let woken = inlets.woken();
        let reader = tokio::task::unconstrained(async move {
            let mut next = 1;
            let mut sweeps = 0;
            while next <= ITEMS {
                woken.wait().await;
                let mut batch = Vec::new();
                inlets.sweep(|_, n| batch.push(n));
                batch.sort_unstable();
                for n in batch {
                    assert_eq!(n, next, "a gap before the last item of a sweep");
                    next += 1;
                }
                sweeps += 1;
            }
            sweeps
        });
        let sweeps = tokio::spawn(reader).await.unwrap();
        writer.await.unwrap();
        assert!(sweeps > 1, "the writer and the reader ran together");
    }
}
