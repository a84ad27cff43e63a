//! The trie of pattern subscriptions (after nats-server's sublist `level`/`node`).

use std::collections::HashMap;
use std::hash::Hash;

use super::pattern::{Segment, SegmentKey};
use super::subset::SubSet;

/// One trie node: the subscribers whose pattern ends here, and the children per next segment.
#[derive(Debug)]
pub(crate) struct Node<T> {
    literal: HashMap<Box<str>, Box<Node<T>>>,
    /// `*` and `{name}`: both match exactly one whole segment, so they share a child.
    one: Option<Box<Node<T>>>,
    /// `**` / `#`.
    any: Option<Box<Node<T>>>,
    /// Glob and regex segments, keyed by source text; rare, so a list tested one by one.
    patterns: Vec<(Segment, Box<Node<T>>)>,
    subs: SubSet<T>,
    /// Reached through an `any` edge: stays active while it absorbs more segments.
    is_any: bool,
}

impl<T> Node<T> {
    pub(crate) fn new(is_any: bool) -> Self {
        Self {
            literal: HashMap::new(),
            one: None,
            any: None,
            patterns: Vec::new(),
            subs: SubSet::default(),
            is_any,
        }
    }

    fn is_prunable(&self) -> bool {
        self.literal.is_empty()
            && self.one.is_none()
            && self.any.is_none()
            && self.patterns.is_empty()
            && self.subs.is_empty()
    }

    /// Nodes below this one (the root is not counted): 0 once everything is removed.
    pub(crate) fn descendants(&self) -> usize {
        let children = self
            .literal
            .values()
            .chain(&self.one)
            .chain(&self.any)
            .chain(self.patterns.iter().map(|(_, n)| n));
        children.map(|c| 1 + c.descendants()).sum()
    }
}

impl<T: Eq + Hash> Node<T> {
    /// Adds one (pattern, `t`) pair; true if `t` is new at the pattern's node (results change).
    pub(crate) fn insert(&mut self, segments: &[Segment], t: T) -> bool {
        let mut node = self;
        for seg in segments {
            node = match seg {
                Segment::Literal(tok) => node
                    .literal
                    .entry(tok.clone())
                    .or_insert_with(|| Box::new(Node::new(false))),
                Segment::One => node.one.get_or_insert_with(|| Box::new(Node::new(false))),
                Segment::Any => node.any.get_or_insert_with(|| Box::new(Node::new(true))),
                Segment::Glob(_) | Segment::Regex(_) => {
                    let found = node
                        .patterns
                        .iter()
                        .position(|(s, _)| s.pattern_source() == seg.pattern_source());
                    let i = found.unwrap_or_else(|| {
                        node.patterns
                            .push((seg.clone(), Box::new(Node::new(false))));
                        node.patterns.len() - 1
                    });
                    &mut node.patterns[i].1
                }
            };
        }
        node.subs.insert(t)
    }

    /// The compiled glob/regex segments already stored along `keys` (`None` elsewhere and past
    /// the first missing child), for [`Pattern::parse_known`](super::pattern::Pattern).
    pub(crate) fn known_segments(&self, keys: &[SegmentKey<'_>]) -> Vec<Option<Segment>> {
        let mut out = Vec::with_capacity(keys.len());
        let mut node = Some(self);
        for key in keys {
            let (segment, next) = match (node, *key) {
                (None, _) => (None, None),
                (Some(n), SegmentKey::Literal(tok)) => (None, n.literal.get(tok).map(|c| &**c)),
                (Some(n), SegmentKey::One) => (None, n.one.as_deref()),
                (Some(n), SegmentKey::Any) => (None, n.any.as_deref()),
                (Some(n), SegmentKey::Pattern(source)) => {
                    match n
                        .patterns
                        .iter()
                        .find(|(s, _)| s.pattern_source() == Some(source))
                    {
                        Some((s, c)) => (Some(s.clone()), Some(&**c)),
                        None => (None, None),
                    }
                }
            };
            out.push(segment);
            node = next;
        }
        out
    }

    /// Removes one (pattern, `t`) pair, pruning nodes left empty on the way back up. Returns
    /// what [`SubSet::remove`] does. `path` receives the compiled segments walked (regexes
    /// included), so the caller can invalidate cache entries without recompiling anything.
    pub(crate) fn remove(
        &mut self,
        keys: &[SegmentKey<'_>],
        t: &T,
        path: &mut Vec<Segment>,
    ) -> Option<bool> {
        let Some((key, rest)) = keys.split_first() else {
            return self.subs.remove(t);
        };
        // Each arm: find the child, recurse, then drop the child if it became empty.
        match *key {
            SegmentKey::Literal(tok) => {
                let child = self.literal.get_mut(tok)?;
                path.push(Segment::Literal(tok.into()));
                let removed = child.remove(rest, t, path)?;
                if child.is_prunable() {
                    self.literal.remove(tok);
                    if self.literal.capacity() > 4 * self.literal.len().max(4) {
                        self.literal.shrink_to_fit();
                    }
                }
                Some(removed)
            }
            SegmentKey::One => {
                path.push(Segment::One);
                Self::remove_in_slot(&mut self.one, rest, t, path)
            }
            SegmentKey::Any => {
                path.push(Segment::Any);
                Self::remove_in_slot(&mut self.any, rest, t, path)
            }
            SegmentKey::Pattern(source) => {
                let i = self
                    .patterns
                    .iter()
                    .position(|(s, _)| s.pattern_source() == Some(source))?;
                path.push(self.patterns[i].0.clone());
                let removed = self.patterns[i].1.remove(rest, t, path)?;
                if self.patterns[i].1.is_prunable() {
                    self.patterns.swap_remove(i);
                }
                Some(removed)
            }
        }
    }

    fn remove_in_slot(
        slot: &mut Option<Box<Node<T>>>,
        rest: &[SegmentKey<'_>],
        t: &T,
        path: &mut Vec<Segment>,
    ) -> Option<bool> {
        let child = slot.as_mut()?;
        let removed = child.remove(rest, t, path)?;
        if child.is_prunable() {
            *slot = None;
        }
        Some(removed)
    }

    /// Pushes the non-empty subscriber sets of every pattern that matches `destination`.
    ///
    /// An NFA walk (nats `matchLevel`, but iterative): the set of active nodes advances one
    /// token at a time. Unlike nats's `>` (one or more), `**` also matches zero tokens, so a
    /// node's `any` child is active whenever the node is. The active set is deduplicated each
    /// step, so the cost is O(tokens * trie nodes) at worst, never exponential in the number of
    /// `**` segments.
    pub(crate) fn collect<'a>(
        &'a self,
        destination: &str,
        separator: char,
        out: &mut Vec<&'a SubSet<T>>,
    ) {
        if self.is_prunable() {
            return; // no pattern subscriptions at all: skip tokenizing
        }
        let mut active: Vec<&Node<T>> = Vec::new();
        push_with_any(&mut active, self);
        let mut next: Vec<&Node<T>> = Vec::new();
        for token in destination.split(separator) {
            let mut stays = false;
            for &node in &active {
                if node.is_any {
                    stays = true;
                    next.push(node);
                }
                if let Some(child) = node.literal.get(token) {
                    push_with_any(&mut next, child);
                }
                if let Some(child) = &node.one {
                    push_with_any(&mut next, child);
                }
                for (seg, child) in &node.patterns {
                    if seg.matches_token(token) {
                        push_with_any(&mut next, child);
                    }
                }
            }
            // The trie is a tree, so a node can be reached twice in one step only as an `any`
            // node (staying, and entered from its parent again).
            if stays {
                next.sort_unstable_by_key(|n| *n as *const Node<T>);
                next.dedup_by_key(|n| *n as *const Node<T>);
            }
            std::mem::swap(&mut active, &mut next);
            next.clear();
            if active.is_empty() {
                return;
            }
        }
        out.extend(
            active
                .into_iter()
                .map(|n| &n.subs)
                .filter(|s| !s.is_empty()),
        );
    }
}

/// Activates `node` and, since `**` matches zero segments, its chain of `any` children.
fn push_with_any<'a, T>(active: &mut Vec<&'a Node<T>>, node: &'a Node<T>) {
    let mut node = node;
    active.push(node);
    while let Some(any) = &node.any {
        active.push(any);
        node = any;
    }
}
