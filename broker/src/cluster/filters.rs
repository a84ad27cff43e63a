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

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Reference NATS matching of one filter against one subject.
    pub(crate) fn filter_matches(filter: &str, subject: &str) -> bool {
        let filter: Vec<&str> = filter.split('.').collect();
        let subject: Vec<&str> = subject.split('.').collect();
        for (i, token) in filter.iter().enumerate() {
            match (*token, subject.get(i)) {
                (">", Some(_)) if i + 1 == filter.len() => return true,
                ("*", Some(_)) => {}
                (token, Some(s)) if token == *s => {}
                _ => return false,
            }
        }
        filter.len() == subject.len()
    }

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
    fn reference_matcher() {
        assert!(filter_matches("a.*.c", "a.b.c"));
        assert!(filter_matches("a.>", "a.b.c"));
        assert!(!filter_matches("a.>", "a"));
        assert!(!filter_matches("a.*", "a.b.c"));
        assert!(!filter_matches("a.b", "a"));
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
