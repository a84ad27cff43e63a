//! The subscribers of one destination or pattern node: a counted set with O(1) insert and
//! remove, whatever its size.

use std::collections::HashMap;
use std::collections::hash_map;
use std::hash::Hash;
use std::slice;

/// Past this many distinct members a set switches from a vector to a hash map (nats-server
/// switches representation at 256 for iteration; here the iteration is the cached snapshot,
/// so the switch only bounds the linear scans).
const PROMOTE_ABOVE: usize = 16;
/// Back to a vector below this many members; the gap stops add/remove at the boundary from
/// converting on every call.
const DEMOTE_BELOW: usize = 8;

/// Members with a count: the trie holds a multiset of (pattern, subscriber) pairs, and two
/// spellings of one pattern (`a/*` and `a/{x}`) share a node, so each needs its own count.
#[derive(Debug)]
pub(crate) enum SubSet<T> {
    Small(Vec<(T, u32)>),
    Large(HashMap<T, u32>),
}

impl<T> Default for SubSet<T> {
    fn default() -> Self {
        Self::Small(Vec::new())
    }
}

impl<T> SubSet<T> {
    /// Number of distinct members.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Small(v) => v.len(),
            Self::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Distinct members, in no particular order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        match self {
            Self::Small(v) => Iter::Small(v.iter()),
            Self::Large(map) => Iter::Large(map.keys()),
        }
    }
}

impl<T: Eq + Hash> SubSet<T> {
    /// Adds one copy of `t`; true if `t` was not a member before.
    pub(crate) fn insert(&mut self, t: T) -> bool {
        match self {
            Self::Small(v) => {
                if let Some((_, n)) = v.iter_mut().find(|(m, _)| *m == t) {
                    *n += 1;
                    return false;
                }
                if v.len() < PROMOTE_ABOVE {
                    v.push((t, 1));
                } else {
                    let mut map: HashMap<T, u32> = v.drain(..).collect();
                    map.insert(t, 1);
                    *self = Self::Large(map);
                }
                true
            }
            Self::Large(map) => {
                let n = map.entry(t).or_insert(0);
                *n += 1;
                *n == 1
            }
        }
    }

    /// Removes one copy of `t`: `None` if it was not a member, `Some(true)` if that was its
    /// last copy (the set's membership changed), `Some(false)` if copies remain.
    pub(crate) fn remove(&mut self, t: &T) -> Option<bool> {
        match self {
            Self::Small(v) => {
                let i = v.iter().position(|(m, _)| m == t)?;
                v[i].1 -= 1;
                if v[i].1 > 0 {
                    return Some(false);
                }
                v.swap_remove(i);
                if v.is_empty() {
                    // Free the buffer: emptied sets of long-lived nodes should not keep it.
                    *v = Vec::new();
                }
                Some(true)
            }
            Self::Large(map) => {
                let n = map.get_mut(t)?;
                *n -= 1;
                if *n > 0 {
                    return Some(false);
                }
                map.remove(t);
                if map.len() < DEMOTE_BELOW {
                    *self = Self::Small(map.drain().collect());
                } else if map.capacity() > 4 * map.len() {
                    // Give memory back after a mass unsubscribe; the factor 4 keeps the O(n)
                    // rehash amortised.
                    map.shrink_to(2 * map.len());
                }
                Some(true)
            }
        }
    }
}

pub(crate) enum Iter<'a, T> {
    Small(slice::Iter<'a, (T, u32)>),
    Large(hash_map::Keys<'a, T, u32>),
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        match self {
            Self::Small(it) => it.next().map(|(t, _)| t),
            Self::Large(it) => it.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Small(it) => it.size_hint(),
            Self::Large(it) => it.size_hint(),
        }
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_copies_and_switches_representation() {
        let mut s = SubSet::default();
        assert!(s.insert(1));
        assert!(!s.insert(1));
        assert_eq!(s.remove(&1), Some(false));
        assert_eq!(s.remove(&1), Some(true));
        assert_eq!(s.remove(&1), None);
        for i in 0..100 {
            assert!(s.insert(i));
        }
        assert!(matches!(s, SubSet::Large(_)));
        assert_eq!(s.len(), 100);
        for i in 0..95 {
            assert_eq!(s.remove(&i), Some(true));
        }
        assert!(matches!(s, SubSet::Small(_)));
        let mut rest: Vec<_> = s.iter().copied().collect();
        rest.sort_unstable();
        assert_eq!(rest, [95, 96, 97, 98, 99]);
    }
}
