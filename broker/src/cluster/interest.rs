//! Which NATS subscriptions this node wants, as a desired state that routing's interest
//! calls update at once (no await, no I/O) and the link's reconciling task catches up with.
//!
//! Several patterns may share a filter (`/topic/a/*` and `/topic/a/{id}` are both
//! `t.P.a.*`), so a filter is wanted while at least one pattern needs it. Only what changed
//! since the reconciler last looked is remembered, once per filter or user: a burst of on and
//! off costs no more memory than the filters it touches, however long it lasts.

use std::collections::{HashMap, HashSet};

/// One NATS subscription the node may want.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Want {
    /// A topic filter subject.
    Topic(Box<str>),
    /// The subject of this user's destinations.
    User(Box<str>),
}

#[derive(Debug, Default)]
pub(crate) struct Interest {
    /// Each pattern with local interest, and its filters.
    patterns: HashMap<Box<str>, Box<[Box<str>]>>,
    /// Each wanted subscription, with how many patterns want it (1 for a user).
    wanted: HashMap<Want, usize>,
    /// Subscriptions whose wanted-ness may have changed since the last `take_changes`.
    changed: HashSet<Want>,
    /// Counts changes, so a caller can wait until the reconciler has caught up with one.
    generation: u64,
}

impl Interest {
    /// Local interest in `pattern` started or ended; `filters` gives its NATS filters (asked
    /// only when it starts). Repeats are ignored. Returns whether the reconciler has work.
    pub(crate) fn topic(
        &mut self,
        pattern: &str,
        on: bool,
        filters: impl FnOnce() -> Vec<String>,
    ) -> bool {
        if on == self.patterns.contains_key(pattern) {
            return false;
        }
        let filters: Box<[Box<str>]> = if on {
            let filters: Box<[Box<str>]> = filters().into_iter().map(Into::into).collect();
            self.patterns.insert(pattern.into(), filters.clone());
            filters
        } else {
            self.patterns.remove(pattern).unwrap_or_default()
        };
        let mut changed = false;
        for filter in filters {
            changed |= self.count(Want::Topic(filter), on);
        }
        changed
    }

    /// This node's first session of `user` started, or its last ended.
    pub(crate) fn user(&mut self, user: &str, on: bool) -> bool {
        let want = Want::User(user.into());
        if on == self.wanted.contains_key(&want) {
            return false;
        }
        self.count(want, on)
    }

    /// Counts one more (or one fewer) reason to want `want`; notes it when that starts or
    /// stops.
    fn count(&mut self, want: Want, on: bool) -> bool {
        let edge = if on {
            let count = self.wanted.entry(want.clone()).or_default();
            *count += 1;
            *count == 1
        } else {
            match self.wanted.get_mut(&want) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    self.wanted.remove(&want);
                    true
                }
                None => false,
            }
        };
        if edge {
            self.changed.insert(want);
            self.generation += 1;
        }
        edge
    }

    /// How many changes there were so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Everything wanted is to be subscribed again (a new NATS client has none).
    pub(crate) fn resubscribe_all(&mut self) {
        self.changed.extend(self.wanted.keys().cloned());
        self.generation += 1;
    }

    /// What may have changed since the last call, each with whether it is wanted now.
    pub(crate) fn take_changes(&mut self) -> Vec<(Want, bool)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|want| {
                let on = self.wanted.contains_key(&want);
                (want, on)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(filter: &str) -> Want {
        Want::Topic(filter.into())
    }

    #[test]
    fn a_filter_is_wanted_while_one_of_its_patterns_is() {
        let mut interest = Interest::default();
        assert!(interest.topic("/topic/a/*", true, || vec!["t.a.*".into()]));
        assert!(!interest.topic("/topic/a/{id}", true, || vec!["t.a.*".into()]));
        assert!(!interest.topic("/topic/a/*", true, || unreachable!("already on")));
        assert_eq!(interest.take_changes(), [(topic("t.a.*"), true)]);
        assert_eq!(interest.generation(), 1);
        assert!(!interest.topic("/topic/a/*", false, Vec::new));
        assert!(interest.take_changes().is_empty());
        assert!(interest.topic("/topic/a/{id}", false, Vec::new));
        assert_eq!(interest.take_changes(), [(topic("t.a.*"), false)]);
        assert!(!interest.topic("/topic/a/{id}", false, Vec::new));
    }

    #[test]
    fn a_burst_of_on_and_off_leaves_one_change_per_filter() {
        let mut interest = Interest::default();
        for _ in 0..10_000 {
            interest.topic("/topic/a/**", true, || vec!["t.a".into(), "t.a.>".into()]);
            interest.user("alice", true);
            interest.topic("/topic/a/**", false, Vec::new);
            interest.user("alice", false);
        }
        assert!(interest.patterns.is_empty() && interest.wanted.is_empty());
        let mut changes = interest.take_changes();
        changes.sort_by_key(|(want, _)| format!("{want:?}"));
        assert_eq!(
            changes,
            [
                (topic("t.a"), false),
                (topic("t.a.>"), false),
                (Want::User("alice".into()), false)
            ]
        );
        interest.user("bob", true);
        assert!(!interest.user("bob", true));
        assert_eq!(interest.take_changes(), [(Want::User("bob".into()), true)]);
        interest.resubscribe_all();
        assert_eq!(interest.take_changes(), [(Want::User("bob".into()), true)]);
    }
}
