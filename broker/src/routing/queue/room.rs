//! Producer flow control: a publisher refused for lack of room waits on a [`Room`] until room
//! may have appeared, then tries again.
//!
//! A queue has one `Room` for its own bounds, and the router one for the node's total bytes.
//! Everything that frees room calls [`Room::free`]; it costs one relaxed load unless a
//! publisher has blocked since the last wake-up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// Where a blocked publisher waits. Cheap to clone; clones wait on the same room.
#[derive(Debug, Clone, Default)]
pub struct Room {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    notify: Notify,
    /// A publisher blocked since the last wake-up: only then does freeing room notify.
    waiting: AtomicBool,
}

impl Room {
    /// Completes when room may have appeared (spurious wake-ups happen: publish again).
    /// Enable it (`Notified::enable`) before the publish that may block, so a wake-up
    /// between that publish and the `.await` is not lost.
    pub fn notified(&self) -> Notified<'_> {
        self.inner.notify.notified()
    }

    /// A publisher is about to be told to wait. `SeqCst` pairs with [`Room::free`]: a
    /// publisher that marks, then looks at the bound again, either sees the freed room or
    /// is woken by the freer.
    pub(super) fn mark_waiting(&self) {
        self.inner.waiting.store(true, Ordering::SeqCst);
    }

    /// Room was freed: wakes every publisher waiting, if any blocked since the last call.
    /// The first look is a plain load (`SeqCst` to pair with `mark_waiting`; as cheap as a
    /// relaxed one on x86), so nothing is written while nobody waits.
    pub(super) fn free(&self) {
        if self.inner.waiting.load(Ordering::SeqCst)
            && self.inner.waiting.swap(false, Ordering::SeqCst)
        {
            self.inner.notify.notify_waiters();
        }
    }
}

impl PartialEq for Room {
    /// The same room, not an equal one.
    fn eq(&self, other: &Room) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Room {}
