//! Property tests: the subscription index answers exactly what the naive matcher computes over
//! every inserted (pattern, subscriber) pair, through any interleaving of inserts, removals
//! (single and batched) and queries (which warm the cache), and prunes itself to nothing.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use herald::routing::{Pattern, Separator, ShardedTrie, SubscriptionTrie};
use proptest::prelude::*;

type Sub = u8;

/// The two index types behind one face, so every property runs on both.
trait Index {
    fn insert(&self, p: &str, s: Sub) -> bool;
    fn remove(&self, p: &str, s: Sub) -> bool;
    fn remove_many(&self, pairs: Vec<(String, Sub)>) -> usize;
    fn matches(&self, d: &str) -> Arc<[Sub]>;
    fn len(&self) -> usize;
    fn node_count(&self) -> usize;
}

impl Index for SubscriptionTrie<Sub> {
    fn insert(&self, p: &str, s: Sub) -> bool {
        SubscriptionTrie::insert(self, p, s).is_ok()
    }
    fn remove(&self, p: &str, s: Sub) -> bool {
        SubscriptionTrie::remove(self, p, &s)
    }
    fn remove_many(&self, pairs: Vec<(String, Sub)>) -> usize {
        SubscriptionTrie::remove_many(self, pairs)
    }
    fn matches(&self, d: &str) -> Arc<[Sub]> {
        SubscriptionTrie::matches(self, d)
    }
    fn len(&self) -> usize {
        SubscriptionTrie::len(self)
    }
    fn node_count(&self) -> usize {
        SubscriptionTrie::node_count(self)
    }
}

impl Index for ShardedTrie<Sub> {
    fn insert(&self, p: &str, s: Sub) -> bool {
        ShardedTrie::insert(self, p, s).is_ok()
    }
    fn remove(&self, p: &str, s: Sub) -> bool {
        ShardedTrie::remove(self, p, &s)
    }
    fn remove_many(&self, pairs: Vec<(String, Sub)>) -> usize {
        ShardedTrie::remove_many(self, pairs)
    }
    fn matches(&self, d: &str) -> Arc<[Sub]> {
        ShardedTrie::matches(self, d)
    }
    fn len(&self) -> usize {
        ShardedTrie::len(self)
    }
    fn node_count(&self) -> usize {
        ShardedTrie::node_count(self)
    }
}

/// The oracle: a multiset of pairs, matched with `Pattern::matches` (naive recursion). Pairs
/// are identified by the pattern's canonical spelling (`{x}` is `*`, `#` is `**`), as the index
/// documents.
struct Model {
    sep: Separator,
    pairs: HashMap<(String, Sub), usize>,
    /// Parsed once: compiling regexes in a debug build dominates the test's time otherwise.
    parsed: RefCell<HashMap<String, Option<Pattern>>>,
}

impl Model {
    fn new(sep: Separator) -> Self {
        Self {
            sep,
            pairs: HashMap::new(),
            parsed: RefCell::default(),
        }
    }

    fn parse(&self, p: &str) -> Option<Pattern> {
        self.parsed
            .borrow_mut()
            .entry(p.to_owned())
            .or_insert_with(|| Pattern::parse(p, self.sep).ok())
            .clone()
    }

    fn key(&self, p: &str, s: Sub) -> (String, Sub) {
        (self.parse(p).unwrap().canonical(), s)
    }

    fn insert(&mut self, p: &str, s: Sub) {
        *self.pairs.entry(self.key(p, s)).or_default() += 1;
    }

    /// Invalid patterns were never inserted, so there is nothing to remove.
    fn remove(&mut self, p: &str, s: Sub) -> bool {
        if self.parse(p).is_none() {
            return false;
        }
        let key = self.key(p, s);
        match self.pairs.get_mut(&key) {
            Some(n) => {
                *n -= 1;
                if *n == 0 {
                    self.pairs.remove(&key);
                }
                true
            }
            None => false,
        }
    }

    fn matches(&self, d: &str) -> BTreeSet<Sub> {
        self.pairs
            .keys()
            .filter(|(p, _)| self.parse(p).unwrap().matches(d))
            .map(|(_, s)| *s)
            .collect()
    }

    fn len(&self) -> usize {
        self.pairs.values().sum()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Insert(usize, Sub),
    Remove(usize, Sub),
    RemoveMany(Vec<(usize, Sub)>),
    Query(usize),
}

/// Pattern segments: literals, every wildcard kind, and two invalid ones (`a#`, `{x:(}`).
fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "12", "", "a.b", "*", "**", "#", "{x}", "{n:\\d+}", "a*", "*b", "?", "a?",
        "{x}2", "a.*", "a#", "{x:(}",
    ])
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["a", "b", "12", "", "ab", "a2", "b2", "a.b", "a.", "1"])
}

/// Joined segments; the separator is applied later, once the case's separator is known.
fn parts(
    s: impl Strategy<Value = &'static str>,
    max: usize,
) -> impl Strategy<Value = Vec<&'static str>> {
    prop::collection::vec(s, 1..=max)
}

fn ops(patterns: usize, dests: usize) -> impl Strategy<Value = Vec<Op>> {
    let sub = 0..4u8;
    let op = prop_oneof![
        4 => (0..patterns, sub.clone()).prop_map(|(p, s)| Op::Insert(p, s)),
        2 => (0..patterns, sub.clone()).prop_map(|(p, s)| Op::Remove(p, s)),
        1 => prop::collection::vec((0..patterns, sub), 0..6).prop_map(Op::RemoveMany),
        3 => (0..dests).prop_map(Op::Query),
    ];
    prop::collection::vec(op, 1..60)
}

#[derive(Debug)]
struct Case {
    sep: Separator,
    patterns: Vec<String>,
    dests: Vec<String>,
    ops: Vec<Op>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::collection::vec(parts(segment(), 4), 1..10),
        prop::collection::vec(parts(token(), 5), 1..10),
    )
        .prop_flat_map(|(dot, patterns, dests)| {
            let sep = if dot {
                Separator::Dot
            } else {
                Separator::Slash
            };
            let c = sep.as_char().to_string();
            let patterns: Vec<String> = patterns.iter().map(|p| p.join(&c)).collect();
            let dests: Vec<String> = dests.iter().map(|d| d.join(&c)).collect();
            ops(patterns.len(), dests.len()).prop_map(move |ops| Case {
                sep,
                patterns: patterns.clone(),
                dests: dests.clone(),
                ops,
            })
        })
}

fn check(index: &dyn Index, model: &Model, d: &str) -> Result<(), TestCaseError> {
    let got = index.matches(d);
    let set: BTreeSet<Sub> = got.iter().copied().collect();
    prop_assert_eq!(set.len(), got.len(), "duplicates in {:?}", got);
    prop_assert_eq!(set, model.matches(d), "destination {:?}", d);
    Ok(())
}

fn run(index: &dyn Index, case: &Case) -> Result<(), TestCaseError> {
    let sep = case.sep;
    let mut model = Model::new(sep);
    // Queried up front too, so empty results are cached before the first insert.
    for d in &case.dests {
        check(index, &model, d)?;
    }
    for op in &case.ops {
        match op {
            Op::Insert(p, s) => {
                let p = &case.patterns[*p];
                let ok = index.insert(p, *s);
                prop_assert_eq!(ok, model.parse(p).is_some(), "insert {:?}", p);
                if ok {
                    model.insert(p, *s);
                }
            }
            Op::Remove(p, s) => {
                let p = &case.patterns[*p];
                prop_assert_eq!(index.remove(p, *s), model.remove(p, *s), "remove {:?}", p);
            }
            Op::RemoveMany(pairs) => {
                let pairs: Vec<(String, Sub)> = pairs
                    .iter()
                    .map(|(p, s)| (case.patterns[*p].clone(), *s))
                    .collect();
                let expected = pairs.iter().filter(|(p, s)| model.remove(p, *s)).count();
                prop_assert_eq!(index.remove_many(pairs), expected);
            }
            Op::Query(d) => check(index, &model, &case.dests[*d])?,
        }
        prop_assert_eq!(index.len(), model.len());
    }
    for d in &case.dests {
        check(index, &model, d)?;
    }
    // Remove everything, half in one batch and the rest one by one: nothing may remain.
    let mut all: Vec<(String, Sub)> = Vec::new();
    for ((p, s), n) in &model.pairs {
        all.extend(std::iter::repeat_n((p.clone(), *s), *n));
    }
    let rest = all.split_off(all.len() / 2);
    prop_assert_eq!(index.remove_many(all.clone()), all.len());
    for (p, s) in &rest {
        prop_assert!(index.remove(p, *s));
    }
    prop_assert_eq!(index.len(), 0);
    prop_assert_eq!(index.node_count(), 0);
    for d in &case.dests {
        prop_assert!(index.matches(d).is_empty());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn trie_without_cache_matches_naive(case in case()) {
        run(&SubscriptionTrie::new(case.sep, 0), &case)?;
    }

    #[test]
    fn trie_with_tiny_cache_matches_naive(case in case()) {
        // Capacity 2: evictions all the time, on top of invalidations.
        run(&SubscriptionTrie::new(case.sep, 2), &case)?;
    }

    #[test]
    fn trie_with_cache_matches_naive(case in case()) {
        run(&SubscriptionTrie::new(case.sep, 64), &case)?;
    }

    #[test]
    fn sharded_trie_matches_naive(case in case()) {
        run(&ShardedTrie::new(case.sep, 3, 16), &case)?;
    }
}
