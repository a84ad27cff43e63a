//! The topic filters this node subscribes, by id, to deliver each message once.
//!
//! NATS delivers a message once per matching subscription: a node subscribed to both
//! `t.P.a.*` and `t.P.a.b` receives a message on `t.P.a.b` twice. Each copy's receiver asks
//! [`FilterIndex::first_match`] and delivers only if its own filter is the matching one with
//! the smallest id. Ids only grow, so a filter added later never takes a subject over from
//! one already delivering it.

use std::collections::HashMap;
use std::str::Split;

/// A filter's id: the order it was subscribed in.
pub type FilterId = u64;

/// NATS filters (`*` one token, `>` one or more at the end) in a token trie.
#[derive(Debug, Default)]
pub struct FilterIndex {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    literals: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    /// A filter ending with `>` here.
    rest: Option<FilterId>,
    /// A filter ending here.
    end: Option<FilterId>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literals.is_empty() && self.star.is_none() && self.rest.is_none() && self.end.is_none()
    }

    /// The smallest id among the filters below this node matching the remaining `tokens`.
    fn first_match(&self, mut tokens: Split<'_, char>) -> Option<FilterId> {
        let Some(token) = tokens.next() else {
            return self.end;
        };
        let literal = self
            .literals
            .get(token)
            .and_then(|child| child.first_match(tokens.clone()));
        let star = self
            .star
            .as_ref()
            .and_then(|child| child.first_match(tokens));
        [self.rest, literal, star].into_iter().flatten().min()
    }

    /// Removes `filter`'s id; returns it if it was there. Prunes emptied children.
    fn remove(&mut self, mut tokens: Split<'_, char>) -> Option<FilterId> {
        match tokens.next() {
            None => self.end.take(),
            Some(">") if tokens.clone().next().is_none() => self.rest.take(),
            Some("*") => {
                let child = self.star.as_mut()?;
                let removed = child.remove(tokens);
                if child.is_empty() {
                    self.star = None;
                }
                removed
            }
            Some(token) => {
                let child = self.literals.get_mut(token)?;
                let removed = child.remove(tokens);
                if child.is_empty() {
                    self.literals.remove(token);
                }
                removed
            }
        }
    }
}

impl FilterIndex {
    /// Adds `filter` under `id`, replacing the id it had.
    pub fn insert(&mut self, filter: &str, id: FilterId) {
        let mut node = &mut self.root;
        let mut tokens = filter.split('.').peekable();
        while let Some(token) = tokens.next() {
            if token == ">" && tokens.peek().is_none() {
                node.rest = Some(id);
                return;
            }
            node = if token == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.literals.entry(token.into()).or_default()
            };
        }
        node.end = Some(id);
    }

    /// Removes `filter`; returns its id if it was there.
    pub fn remove(&mut self, filter: &str) -> Option<FilterId> {
        self.root.remove(filter.split('.'))
    }

    /// The smallest id among the filters matching `subject`.
    pub fn first_match(&self, subject: &str) -> Option<FilterId> {
        self.root.first_match(subject.split('.'))
    }
}

/// Whether NATS filter `filter` matches `subject`.
pub(crate) fn filter_matches(filter: &str, subject: &str) -> bool {
    let mut subject = subject.split('.');
    let mut filter = filter.split('.').peekable();
    while let Some(token) = filter.next() {
        let Some(given) = subject.next() else {
            return false;
        };
        if token == ">" && filter.peek().is_none() {
            return true;
        }
        if token != "*" && token != given {
            return false;
        }
    }
    subject.next().is_none()
}

/// Whether some subject matches both NATS filters.
pub(crate) fn overlap(a: &str, b: &str) -> bool {
    let (mut a, mut b) = (a.split('.').peekable(), b.split('.').peekable());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if (x == ">" && a.peek().is_none()) || (y == ">" && b.peek().is_none()) {
                    return true;
                }
                if x != "*" && y != "*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_smallest_matching_id_wins() {
        let mut index = FilterIndex::default();
        index.insert("h.t.P.a.*", 2);
        index.insert("h.t.P.a.b", 5);
        index.insert("h.t.P.>", 7);
        assert_eq!(index.first_match("h.t.P.a.b"), Some(2));
        assert_eq!(index.first_match("h.t.P.a"), Some(7));
        assert_eq!(index.first_match("h.t.P"), None);
        assert_eq!(index.first_match("h.t.Q.a"), None);
        assert_eq!(index.remove("h.t.P.a.*"), Some(2));
        assert_eq!(index.first_match("h.t.P.a.b"), Some(5));
        assert_eq!(index.remove("h.t.P.a.*"), None);
        index.remove("h.t.P.a.b");
        index.remove("h.t.P.>");
        assert!(
            index.root.is_empty(),
            "emptied nodes are pruned: {:?}",
            index.root
        );
    }

    #[test]
    fn matching_and_overlap() {
        assert!(filter_matches("a.*.c", "a.b.c"));
        assert!(filter_matches("a.>", "a.b.c"));
        assert!(!filter_matches("a.>", "a"));
        assert!(!filter_matches("a.*", "a.b.c"));
        assert!(!filter_matches("a.b", "a"));
        assert!(!filter_matches("a", "a.b"));
        assert!(overlap("a.*", "*.b") && overlap("a.>", "a.b.c") && overlap("a.b", "a.b"));
        assert!(!overlap("a.*", "b.*") && !overlap("a.>", "a") && !overlap("a.*", "a.*.c"));
    }

    proptest! {
        /// Two filters overlap exactly when some subject over their tokens matches both.
        #[test]
        fn overlap_is_a_shared_subject(a in filter(), b in filter()) {
            let mut subjects = (1..6).flat_map(|len| {
                (0..3usize.pow(len)).map(move |mut n| {
                    (0..len).map(|_| { let t = ["a", "b", "c"][n % 3]; n /= 3; t })
                        .collect::<Vec<_>>().join(".")
                })
            });
            let shared = subjects.any(|s| filter_matches(&a, &s) && filter_matches(&b, &s));
            prop_assert_eq!(overlap(&a, &b), shared, "{} / {}", a, b);
        }
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof!["[ab]", Just("*".to_owned())]
    }

    fn filter() -> impl Strategy<Value = String> {
        (prop::collection::vec(token(), 1..4), any::<bool>()).prop_map(|(tokens, rest)| {
            let mut filter = tokens.join(".");
            if rest {
                filter.push_str(".>");
            }
            filter
        })
    }

    proptest! {
        /// Against a scan of every filter with the reference matcher, through inserts and
        /// removals.
        #[test]
        fn first_match_is_the_smallest_matching_id(
            filters in prop::collection::vec(filter(), 1..12),
            removed in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            subjects in prop::collection::vec("[ab](\\.[ab]){0,4}", 1..12),
        ) {
            let mut index = FilterIndex::default();
            let mut live: Vec<(String, FilterId)> = Vec::new();
            for (id, filter) in filters.into_iter().enumerate() {
                if !live.iter().any(|(f, _)| *f == filter) {
                    index.insert(&filter, id as FilterId);
                    live.push((filter, id as FilterId));
                }
            }
            for r in removed {
                let (filter, id) = live.remove(r.index(live.len()));
                prop_assert_eq!(index.remove(&filter), Some(id));
                if live.is_empty() {
                    break;
                }
            }
            for subject in subjects {
                let expected = live
                    .iter()
                    .filter(|(f, _)| filter_matches(f, &subject))
                    .map(|(_, id)| *id)
                    .min();
                prop_assert_eq!(index.first_match(&subject), expected, "{}", subject);
            }
        }
    }
}
