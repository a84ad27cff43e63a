//! The subscription index: literal destinations in a concurrent hash map, patterns in a trie,
//! and a bounded cache of immutable match snapshots (ARCHITECTURE.md, "Subscription trie").
//!
//! # Locks
//! Literal destinations live in one `DashMap` (its own shard locks, held while a `Ref` or
//! `RefMut` it returns lives); patterns in one trie; the cache in shards of its own. The order
//! is literal-map shard → `patterns` → cache shard, and no thread ever holds two locks of one
//! kind at once. A cache hit takes only its cache shard (read). Nothing here is async, so no
//! lock is ever held across an `.await`.
//!
//! A miss caches its result only if no literal change touched its cache shard since the miss
//! began (`Cache::insert_unless_removed`): a literal change updates the map, then removes the
//! destination from the cache, and a miss that read the map before the update either cached
//! before the removal (and is removed) or sees the removal count moved (and caches nothing).
//! Holding the literal-map shard lock across the miss, as a plain sharded map could, is not
//! possible here: a destination without literal subscribers has no entry to hold.
//!
//! # Cache invalidation
//! A literal subscribe/unsubscribe drops only `cache[destination]`. A pattern
//! subscribe/unsubscribe drops exactly the cached destinations the pattern matches, found with
//! the pattern's linear-time matcher (not the naive one, which an adversarial `**/x/**/x/…`
//! makes exponential). Clearing the whole cache would be simpler, but then every session
//! subscribing to some `/topic/news.*` would force every hot topic of 10,000 subscribers to
//! rebuild its snapshot; the scan costs O(cache size) matcher calls per pattern change, which
//! happens at subscribe time, not per publish. Dropped entries are rebuilt lazily by the next
//! `matches`, so a change never copies a subscriber list (O(1) per subscribe/unsubscribe,
//! whatever the fan-out).

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::slice;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use parking_lot::RwLock;

use super::cache::Cache;
use super::node::Node;
use super::pattern::{
    Pattern, PatternError, PatternLimits, SegmentKey, Separator, is_literal, segment_keys,
};
use super::subset::SubSet;

/// How often pruning a literal destination looks at whether the map should shrink.
const SHRINK_CHECK_EVERY: usize = 64;

/// Index of subscriptions by destination pattern, answering "who subscribes to this
/// destination?" with a shared immutable snapshot.
///
/// `T` is the subscriber handle (the broker uses a session id plus a subscription key); the
/// index keeps a multiset of `(pattern, T)` pairs, and [`matches`](Self::matches) returns each
/// `T` that has at least one pair matching, once. A pair's pattern is identified by its
/// [`Pattern::canonical`] spelling: after `insert("a/{id}", t)`, `remove("a/*", &t)` removes it.
/// All methods take `&self`.
pub struct SubscriptionTrie<T> {
    separator: Separator,
    limits: PatternLimits,
    /// Literal destinations; dashmap hashes with a randomly keyed `RandomState`, like every
    /// map here: destinations come from clients, so the hashing must resist flooding.
    literals: DashMap<Box<str>, SubSet<T>>,
    /// The result cache, split by destination hash.
    shards: Box<[Shard<T>]>,
    /// Picks the cache shard of a destination (randomly keyed, for the same reason).
    shard_hasher: RandomState,
    patterns: RwLock<Node<T>>,
    generation: AtomicU64,
    len: AtomicUsize,
    /// Literal destinations pruned so far (see [`SubscriptionTrie::pruned`]).
    prunings: AtomicUsize,
    /// Shared by every empty result, cached ones included (nats `emptyResult`).
    empty: Arc<[T]>,
}

struct Shard<T> {
    cache: RwLock<Cache<T>>,
}

impl<T> fmt::Debug for SubscriptionTrie<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionTrie")
            .field("separator", &self.separator)
            .field("shards", &self.shards.len())
            .field("len", &self.len.load(Ordering::Relaxed))
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Eq + Hash + Send + Sync> SubscriptionTrie<T> {
    /// An index caching the results of up to `cache_capacity` destinations (0: no cache).
    pub fn new(separator: Separator, cache_capacity: usize) -> Self {
        Self::with_limits(separator, cache_capacity, PatternLimits::default())
    }

    /// [`new`](Self::new) with explicit pattern limits.
    pub fn with_limits(separator: Separator, cache_capacity: usize, limits: PatternLimits) -> Self {
        Self::sharded(separator, 1, cache_capacity, limits)
    }

    /// `shards` cache shards, each with `cache_capacity / shards` (rounded up) entries.
    pub(crate) fn sharded(
        separator: Separator,
        shards: usize,
        cache_capacity: usize,
        limits: PatternLimits,
    ) -> Self {
        let shards = shards.max(1);
        let per_shard = cache_capacity.div_ceil(shards);
        Self {
            separator,
            limits,
            literals: DashMap::new(),
            shards: (0..shards)
                .map(|_| Shard {
                    cache: RwLock::new(Cache::new(per_shard)),
                })
                .collect(),
            shard_hasher: RandomState::new(),
            patterns: RwLock::new(Node::new(false)),
            generation: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            prunings: AtomicUsize::new(0),
            empty: Arc::from(Vec::new()),
        }
    }

    pub fn separator(&self) -> Separator {
        self.separator
    }

    /// Adds the pair (`pattern`, `subscriber`). Adding a pair twice needs two removals.
    pub fn insert(&self, pattern: &str, subscriber: T) -> Result<(), PatternError> {
        if is_literal(pattern) {
            self.limits.check_literal(pattern, self.separator)?;
            // `get_mut` first: a destination that has subscribers needs no key allocated.
            let existing = self.literals.get_mut(pattern);
            let changed = match existing {
                Some(mut set) => set.insert(subscriber),
                None => (self.literals.entry(pattern.into()).or_default()).insert(subscriber),
            };
            if changed {
                self.shard(pattern).cache.write().remove(pattern);
            }
            self.changed(1, true);
        } else {
            let keys = segment_keys(pattern, self.separator, &self.limits)?;
            let known = if keys.iter().any(|k| matches!(k, SegmentKey::Pattern(_))) {
                self.patterns.read().known_segments(&keys)
            } else {
                Vec::new()
            };
            // Missing regexes are compiled here, outside the write lock: publishers' cache
            // misses never wait for a compilation. If the trie changes in between, the segment
            // is the same source text anyway.
            let parsed = Pattern::parse_known(pattern, self.separator, &self.limits, known)?;
            let mut trie = self.patterns.write();
            if trie.insert(parsed.segments(), subscriber) {
                self.invalidate_all(slice::from_ref(&parsed));
            }
            self.changed(1, true);
        }
        Ok(())
    }

    /// Removes one (`pattern`, `subscriber`) pair; false if there was none.
    pub fn remove(&self, pattern: &str, subscriber: &T) -> bool {
        if !is_literal(pattern) {
            return self.remove_many([(pattern, subscriber.clone())]) == 1;
        }
        // The common case, kept free of the batch's allocations.
        let Some(left) = self.remove_literal(pattern, subscriber) else {
            return false;
        };
        if left {
            self.shard(pattern).cache.write().remove(pattern);
        }
        self.changed(1, false);
        true
    }

    /// Removes many pairs at once (a session closing): one write lock per touched cache shard
    /// and one for the pattern trie, one cache invalidation round. Returns how many pairs were
    /// removed.
    pub fn remove_many<I, S>(&self, pairs: I) -> usize
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
    {
        let mut patterned: Vec<(S, T)> = Vec::new();
        // Destinations whose membership changed, by cache shard.
        let mut stale: Vec<Vec<S>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        let mut removed = 0;
        for (p, t) in pairs {
            if !is_literal(p.as_ref()) {
                patterned.push((p, t));
                continue;
            }
            if let Some(left) = self.remove_literal(p.as_ref(), &t) {
                removed += 1;
                if left {
                    stale[self.shard_index(p.as_ref())].push(p);
                }
            }
        }
        for (shard, stale) in self.shards.iter().zip(&stale) {
            if !stale.is_empty() {
                let mut cache = shard.cache.write();
                for dest in stale {
                    cache.remove(dest.as_ref());
                }
            }
        }
        if !patterned.is_empty() {
            let mut trie = self.patterns.write();
            let mut stale: Vec<Pattern> = Vec::new();
            for (p, t) in &patterned {
                // A pattern that does not parse was never inserted.
                let Ok(keys) = segment_keys(p.as_ref(), self.separator, &self.limits) else {
                    continue;
                };
                let mut path = Vec::with_capacity(keys.len());
                let Some(left) = trie.remove(&keys, t, &mut path) else {
                    continue;
                };
                removed += 1;
                if left {
                    stale.push(Pattern::from_segments(p.as_ref(), self.separator, path));
                }
            }
            if !stale.is_empty() {
                self.invalidate_all(&stale);
            }
        }
        if removed > 0 {
            self.changed(removed, false);
        }
        removed
    }

    /// The subscribers matching `destination` (a literal destination suffix), each once.
    ///
    /// A cache hit costs one hash lookup under a shared lock and an `Arc` clone. A miss looks
    /// the destination up in its literal map, walks the pattern trie, and caches the result
    /// (empty results too).
    pub fn matches(&self, destination: &str) -> Arc<[T]> {
        let shard = self.shard(destination);
        let seen = {
            let cache = shard.cache.read();
            if let Some(hit) = cache.get(destination) {
                return hit;
            }
            cache.removals()
        };
        let literal = self.literals.get(destination);
        // The pattern lock stays held until the result is cached, so no pattern change can
        // land between computing it and caching it (pattern changes invalidate under it); a
        // literal change in between makes the cache decline the result (module docs).
        let patterns = self.patterns.read();
        let result = self.compute(literal.as_deref(), &patterns, destination);
        drop(literal);
        let mut cache = shard.cache.write();
        cache.insert_unless_removed(seen, destination, Arc::clone(&result));
        result
    }

    fn compute(
        &self,
        literal: Option<&SubSet<T>>,
        patterns: &Node<T>,
        destination: &str,
    ) -> Arc<[T]> {
        let mut sources: Vec<&SubSet<T>> = Vec::new();
        sources.extend(literal);
        patterns.collect(destination, self.separator.as_char(), &mut sources);
        match sources.as_slice() {
            [] => Arc::clone(&self.empty),
            [only] => only.iter().cloned().collect(),
            many => {
                // One subscriber may hold several matching pairs: report it once.
                let total = many.iter().map(|s| s.len()).sum();
                let mut seen: HashSet<&T> = HashSet::with_capacity(total);
                many.iter()
                    .flat_map(|s| s.iter())
                    .filter(|t| seen.insert(*t))
                    .cloned()
                    .collect()
            }
        }
    }

    /// Number of (pattern, subscriber) pairs.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bumped after every change, once its cache invalidation is done. A per-session cache
    /// reads it *before* calling [`matches`](Self::matches), stores the pair, and trusts the
    /// stored result while the generation is unchanged.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Literal destinations plus pattern-trie nodes held: 0 once every pair is removed (the
    /// pruning test). Takes every lock in turn; not for hot paths.
    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        self.literals.len() + self.patterns.read().descendants()
    }

    /// Destinations currently cached, over all shards (for tests).
    #[doc(hidden)]
    pub fn cached_destinations(&self) -> usize {
        self.shards.iter().map(|s| s.cache.read().len()).sum()
    }

    /// Called after the change and its cache invalidation, never before: a reader who sees
    /// the new generation must also see the invalidated cache.
    fn changed(&self, pairs: usize, added: bool) {
        if added {
            self.len.fetch_add(pairs, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(pairs, Ordering::Relaxed);
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Drops the cached destinations that `patterns` match, in every shard.
    /// Assumes the `patterns` write lock is held (lock order: patterns → cache).
    fn invalidate_all(&self, patterns: &[Pattern]) {
        for shard in &self.shards {
            shard.cache.write().invalidate_matching(patterns);
        }
    }

    fn shard_index(&self, destination: &str) -> usize {
        match self.shards.len() {
            1 => 0,
            // Modulo bias is irrelevant at shard counts this small.
            n => (self.shard_hasher.hash_one(destination) % n as u64) as usize,
        }
    }

    fn shard(&self, destination: &str) -> &Shard<T> {
        &self.shards[self.shard_index(destination)]
    }

    /// Removes one copy of `t` from a literal destination, dropping the destination once it
    /// has no subscriber (pruning). Returns what [`SubSet::remove`] does.
    fn remove_literal(&self, destination: &str, t: &T) -> Option<bool> {
        let (left, emptied) = {
            let mut set = self.literals.get_mut(destination)?;
            let left = set.remove(t)?;
            (left, set.is_empty())
        };
        // Looked at again under the write lock: a subscribe may have landed in between.
        if emptied
            && self
                .literals
                .remove_if(destination, |_, set| set.is_empty())
                .is_some()
        {
            self.pruned();
        }
        Some(left)
    }

    /// A literal destination left the map. After mass disconnects the map gives its memory
    /// back: checked once per [`SHRINK_CHECK_EVERY`] prunings (`len` and `capacity` lock every
    /// shard), and only when the map is 4 times too big, which keeps the rehash amortised.
    fn pruned(&self) {
        if self.prunings.fetch_add(1, Ordering::Relaxed) % SHRINK_CHECK_EVERY != 0 {
            return;
        }
        if self.literals.capacity() > 4 * self.literals.len().max(64) {
            self.literals.shrink_to_fit();
        }
    }
}

/// A [`SubscriptionTrie`] with its result cache spread over N shards.
///
/// Literal subscriptions (the common case, in a `DashMap` whatever N) and result caches are
/// split by destination hash, so subscribes, unsubscribes and cache misses on different
/// destinations take different locks. Pattern subscriptions live in one trie shared by all shards, consulted on every
/// cache miss (a hit already includes their subscribers, so a publish costs one lookup and one
/// `Arc` clone, never a merge). The trade-off: a pattern subscribe or unsubscribe write-locks
/// the shared trie, blocking misses on every shard for its duration, and scans the caches of
/// all shards; a sharded pattern trie would need a publish to consult every shard instead.
/// Patterns are rarer and longer-lived than literal subscriptions, so the shared trie wins.
#[derive(Debug)]
pub struct ShardedTrie<T>(SubscriptionTrie<T>);

impl<T: Clone + Eq + Hash + Send + Sync> ShardedTrie<T> {
    /// `shards` (at least 1) cache shards sharing `cache_capacity` cache entries evenly.
    pub fn new(separator: Separator, shards: usize, cache_capacity: usize) -> Self {
        Self::with_limits(separator, shards, cache_capacity, PatternLimits::default())
    }

    pub fn with_limits(
        separator: Separator,
        shards: usize,
        cache_capacity: usize,
        limits: PatternLimits,
    ) -> Self {
        Self(SubscriptionTrie::sharded(
            separator,
            shards,
            cache_capacity,
            limits,
        ))
    }

    pub fn shards(&self) -> usize {
        self.0.shards.len()
    }

    pub fn separator(&self) -> Separator {
        self.0.separator()
    }

    /// See [`SubscriptionTrie::insert`].
    pub fn insert(&self, pattern: &str, subscriber: T) -> Result<(), PatternError> {
        self.0.insert(pattern, subscriber)
    }

    /// See [`SubscriptionTrie::remove`].
    pub fn remove(&self, pattern: &str, subscriber: &T) -> bool {
        self.0.remove(pattern, subscriber)
    }

    /// See [`SubscriptionTrie::remove_many`].
    pub fn remove_many<I, S>(&self, pairs: I) -> usize
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
    {
        self.0.remove_many(pairs)
    }

    /// See [`SubscriptionTrie::matches`].
    pub fn matches(&self, destination: &str) -> Arc<[T]> {
        self.0.matches(destination)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// See [`SubscriptionTrie::generation`].
    pub fn generation(&self) -> u64 {
        self.0.generation()
    }

    #[doc(hidden)]
    pub fn node_count(&self) -> usize {
        self.0.node_count()
    }

    #[doc(hidden)]
    pub fn cached_destinations(&self) -> usize {
        self.0.cached_destinations()
    }
}

#[cfg(test)]
mod tests;
