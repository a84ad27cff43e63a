//! Bounded result cache: literal destination -> immutable snapshot of its subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::pattern::Pattern;

/// Above this many patterns removed in one batch, invalidation clears the cache instead of
/// testing every (entry, pattern) pair.
const CLEAR_ABOVE_PATTERNS: usize = 64;

#[derive(Debug)]
struct Entry<T> {
    result: Arc<[T]>,
    /// Second-chance bit: set by hits under the read lock, cleared by the eviction sweep.
    referenced: AtomicBool,
}

#[derive(Debug)]
pub(crate) struct Cache<T> {
    map: HashMap<Box<str>, Entry<T>>,
    capacity: usize,
    /// Bumped by every [`Cache::remove`]: a miss computed while a literal changed may be
    /// stale, and [`Cache::insert_unless_removed`] then declines it.
    removals: u64,
}

impl<T> Cache<T> {
    /// A cache of at most `capacity` destinations; 0 disables caching.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::new(),
            capacity,
            removals: 0,
        }
    }

    /// The cached snapshot for `destination`. Takes `&self` so hits share a read lock.
    pub(crate) fn get(&self, destination: &str) -> Option<Arc<[T]>> {
        let entry = self.map.get(destination)?;
        // Read before writing: hot entries stay referenced, so their cache line is not
        // written on every publish.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(&entry.result))
    }

    /// The current [`Cache::remove`] count, read with the miss it goes with.
    pub(crate) fn removals(&self) -> u64 {
        self.removals
    }

    /// Caches `result` unless an entry was removed since [`Cache::removals`] returned
    /// `seen`: the result may predate the change that removal stood for. Declining is
    /// always safe; the next miss computes again.
    pub(crate) fn insert_unless_removed(&mut self, seen: u64, destination: &str, result: Arc<[T]>) {
        if self.removals == seen {
            self.insert(destination, result);
        }
    }

    pub(crate) fn insert(&mut self, destination: &str, result: Arc<[T]>) {
        if self.capacity == 0 {
            return;
        }
        if self.map.len() >= self.capacity && !self.map.contains_key(destination) {
            self.evict();
        }
        let entry = Entry {
            result,
            referenced: AtomicBool::new(false),
        };
        self.map.insert(destination.into(), entry);
    }

    /// Frees a quarter of the capacity. Entries not hit since the previous sweep go first
    /// (CLOCK-style second chance, cheaper than LRU because hits need no write lock); if that
    /// is not enough, arbitrary entries go too (hash order is effectively random, as in
    /// nats-server's random sweep).
    fn evict(&mut self) {
        let target = self.capacity - self.capacity.div_ceil(4);
        self.map
            .retain(|_, e| e.referenced.swap(false, Ordering::Relaxed));
        let mut excess = self.map.len().saturating_sub(target);
        self.map.retain(|_, _| {
            let drop = excess > 0;
            excess -= usize::from(drop);
            !drop
        });
    }

    /// Forgets one destination (a literal subscribe or unsubscribe on it).
    pub(crate) fn remove(&mut self, destination: &str) {
        self.map.remove(destination);
        self.removals += 1;
    }

    /// Forgets every destination that one of `patterns` matches (a pattern subscribe or
    /// unsubscribe). Uses the linear matcher: an adversarial pattern costs O(segments *
    /// tokens) per entry, never exponential.
    pub(crate) fn invalidate_matching(&mut self, patterns: &[Pattern]) {
        if patterns.len() > CLEAR_ABOVE_PATTERNS {
            self.map.clear();
        } else {
            self.map
                .retain(|key, _| !patterns.iter().any(|p| p.matches_linear(key)));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::Separator;

    fn arc(v: &[u32]) -> Arc<[u32]> {
        Arc::from(v)
    }

    #[test]
    fn bounded_and_keeps_hot_entries() {
        let mut c = Cache::new(8);
        for i in 0..8 {
            c.insert(&format!("d{i}"), arc(&[i]));
        }
        // Hit d0: it survives the sweep the next insert triggers.
        assert_eq!(&*c.get("d0").unwrap(), &[0]);
        c.insert("d8", arc(&[8]));
        assert!(c.len() <= 8);
        assert!(c.get("d0").is_some());
        assert!(c.get("d8").is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut c = Cache::new(0);
        c.insert("d", arc(&[1]));
        assert!(c.get("d").is_none());
    }

    #[test]
    fn declines_a_result_computed_across_a_removal() {
        let mut c = Cache::new(8);
        let seen = c.removals();
        c.remove("d");
        c.insert_unless_removed(seen, "d", arc(&[1]));
        assert!(c.get("d").is_none());
        c.insert_unless_removed(c.removals(), "d", arc(&[2]));
        assert_eq!(&*c.get("d").unwrap(), &[2]);
    }

    #[test]
    fn invalidates_only_matching_entries() {
        let mut c = Cache::new(8);
        for d in ["a/b", "a/c", "x/b"] {
            c.insert(d, arc(&[]));
        }
        let p = Pattern::parse("a/*", Separator::Slash).unwrap();
        c.invalidate_matching(&[p]);
        assert!(c.get("a/b").is_none());
        assert!(c.get("a/c").is_none());
        assert!(c.get("x/b").is_some());
    }
}
