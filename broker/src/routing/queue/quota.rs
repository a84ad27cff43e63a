//! Bounds on how many named queues exist: per node (`queues.max_queues`) and per session for
//! the queues it created (`queues.max_queues_per_session`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

use super::fifo::Bound;

/// Counts the queues one session created that still exist. The session makes one and
/// passes it to every `publish` and `subscribe`; each queue keeps a clone and gives its
/// count back when it is deleted, even after the session has ended.
#[derive(Debug, Clone, Default)]
pub struct Creator(Arc<AtomicUsize>);

impl Creator {
    /// Queues this creator made that still exist.
    pub fn queues(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Takes one queue from the node's count (`node`, the `queues` gauge) and the creator's,
/// or says which bound is reached and takes nothing.
pub(super) fn reserve(
    node: &AtomicI64,
    max_queues: usize,
    creator: &Creator,
    max_per_creator: usize,
) -> Result<(), Bound> {
    // Increment first, then check: concurrent creations in other shards cannot both pass.
    if creator.0.fetch_add(1, Ordering::Relaxed) >= max_per_creator {
        creator.0.fetch_sub(1, Ordering::Relaxed);
        return Err(Bound::SessionQueues);
    }
    if node.fetch_add(1, Ordering::Relaxed) >= max_queues as i64 {
        node.fetch_sub(1, Ordering::Relaxed);
        creator.0.fetch_sub(1, Ordering::Relaxed);
        return Err(Bound::Queues);
    }
    Ok(())
}

/// Gives back what [`reserve`] took, once the queue is deleted.
pub(super) fn release(node: &AtomicI64, creator: &Creator) {
    node.fetch_sub(1, Ordering::Relaxed);
    creator.0.fetch_sub(1, Ordering::Relaxed);
}
