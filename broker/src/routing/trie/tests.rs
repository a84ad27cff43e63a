use std::thread;

use super::*;

fn sorted(v: Arc<[u32]>) -> Vec<u32> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

fn trie(cache: usize) -> SubscriptionTrie<u32> {
    SubscriptionTrie::new(Separator::Slash, cache)
}

#[test]
fn literal_and_pattern_subscribers_combine_once() {
    for cache in [0, 16] {
        let t = trie(cache);
        t.insert("a/b", 1).unwrap();
        t.insert("a/*", 2).unwrap();
        t.insert("a/**", 3).unwrap();
        t.insert("a/{x}", 3).unwrap();
        t.insert("**", 4).unwrap();
        assert_eq!(sorted(t.matches("a/b")), [1, 2, 3, 4]);
        assert_eq!(sorted(t.matches("a")), [3, 4]);
        assert_eq!(sorted(t.matches("a/b/c")), [3, 4]);
        assert_eq!(sorted(t.matches("z")), [4]);
        assert_eq!(t.len(), 5);
    }
}

#[test]
fn empty_results_are_cached_and_shared() {
    let t = trie(16);
    assert!(t.matches("nobody").is_empty());
    assert_eq!(t.cached_destinations(), 1);
    assert!(Arc::ptr_eq(&t.matches("nobody"), &t.matches("nobody/else")));
}

#[test]
fn cache_hit_returns_the_same_snapshot_until_a_change() {
    let t = trie(16);
    t.insert("a/b", 1).unwrap();
    let first = t.matches("a/b");
    assert!(Arc::ptr_eq(&first, &t.matches("a/b")));
    t.insert("a/b", 2).unwrap();
    let second = t.matches("a/b");
    assert_eq!(sorted(second), [1, 2]);
    assert_eq!(&*first, &[1], "an old snapshot is immutable");
}

#[test]
fn literal_change_touches_only_its_key() {
    let t = trie(16);
    t.insert("a", 1).unwrap();
    t.insert("b", 2).unwrap();
    let b = t.matches("b");
    t.matches("a");
    t.insert("a", 3).unwrap();
    assert_eq!(t.cached_destinations(), 1);
    assert!(Arc::ptr_eq(&b, &t.matches("b")));
    assert_eq!(sorted(t.matches("a")), [1, 3]);
}

#[test]
fn pattern_change_invalidates_only_matching_keys() {
    let t = trie(16);
    for d in ["x/1", "x/2", "y/1"] {
        t.matches(d);
    }
    t.insert("x/*", 7).unwrap();
    assert_eq!(t.cached_destinations(), 1, "y/1 stays cached");
    assert_eq!(&*t.matches("x/1"), &[7]);
    assert!(t.matches("y/1").is_empty());
    assert!(t.remove("x/*", &7));
    assert!(t.matches("x/1").is_empty());
    assert!(t.matches("x/2").is_empty());
}

#[test]
fn duplicate_pairs_and_equivalent_spellings_are_counted() {
    let t = trie(16);
    t.insert("a/*", 1).unwrap();
    t.insert("a/{x}", 1).unwrap();
    assert!(t.remove("a/*", &1));
    assert_eq!(&*t.matches("a/b"), &[1], "the `{{x}}` pair remains");
    assert!(t.remove("a/{x}", &1));
    assert!(!t.remove("a/{x}", &1));
    assert!(t.matches("a/b").is_empty());
    assert_eq!(t.node_count(), 0);
}

#[test]
fn generation_bumps_on_every_change_only() {
    let t = trie(16);
    let g0 = t.generation();
    t.insert("a", 1).unwrap();
    t.insert("a/*", 1).unwrap();
    assert_eq!(t.generation(), g0 + 2);
    t.matches("a");
    assert!(!t.remove("nope", &1));
    assert!(t.insert("{x", 1).is_err());
    assert_eq!(t.generation(), g0 + 2);
    assert_eq!(t.remove_many([("a", 1), ("a/*", 1), ("a", 1)]), 2);
    assert_eq!(t.generation(), g0 + 3, "one bump per batch");
}

#[test]
fn removal_prunes_every_node() {
    let t = trie(16);
    let pats = ["a/b/c", "a/*/c", "a/**/c/**", "a/{id:\\d+}", "a/b?/x*", "#"];
    for (i, p) in pats.iter().enumerate() {
        t.insert(p, i as u32).unwrap();
    }
    assert!(t.node_count() > 0);
    assert_eq!(
        t.remove_many(pats.iter().enumerate().map(|(i, p)| (*p, i as u32))),
        pats.len()
    );
    assert_eq!(t.node_count(), 0);
    assert!(t.is_empty());
}

#[test]
fn regex_removal_needs_no_recompile_and_invalidates() {
    let t = trie(16);
    t.insert("o/{id:\\d+}", 1).unwrap();
    assert_eq!(&*t.matches("o/12"), &[1]);
    assert!(t.matches("o/x").is_empty());
    assert!(t.remove("o/{id:\\d+}", &1));
    assert!(t.matches("o/12").is_empty());
}

#[test]
fn invalid_patterns_are_refused() {
    let t = trie(16);
    assert!(matches!(
        t.insert("a/{x:(}", 1),
        Err(PatternError::InvalidRegex { .. })
    ));
    let deep = vec!["a"; 40].join("/");
    assert!(matches!(
        t.insert(&deep, 1),
        Err(PatternError::TooManySegments { .. })
    ));
    assert!(t.is_empty());
    assert_eq!(t.node_count(), 0);
}

#[test]
fn many_stars_stay_polynomial() {
    let t = trie(0);
    let p = ["**", "x"].repeat(15).join("/");
    t.insert(&p, 1).unwrap();
    let dest = vec!["x"; 200].join("/");
    assert_eq!(&*t.matches(&dest), &[1]);
    assert!(t.matches(&format!("{dest}/y")).is_empty());
}

#[test]
fn churn_on_a_large_destination_is_constant_time() {
    // O(n) per change would take 50,000 * 200,000 steps here: this would not finish.
    let t = trie(16);
    for i in 0..50_000 {
        t.insert("hot", i).unwrap();
    }
    assert_eq!(t.matches("hot").len(), 50_000);
    for i in 50_000..150_000 {
        t.insert("hot", i).unwrap();
        assert!(t.remove("hot", &i));
    }
    assert_eq!(t.matches("hot").len(), 50_000);
}

#[test]
fn sharded_matches_like_unsharded() {
    let s = ShardedTrie::new(Separator::Dot, 4, 64);
    assert_eq!(s.shards(), 4);
    for i in 0..100u32 {
        s.insert(&format!("d.{i}"), i).unwrap();
    }
    s.insert("d.*", 1000).unwrap();
    for i in 0..100u32 {
        assert_eq!(sorted(s.matches(&format!("d.{i}"))), [i, 1000]);
    }
    assert!(s.cached_destinations() <= 64);
    let removed = s.remove_many((0..100u32).map(|i| (format!("d.{i}"), i)));
    assert_eq!(removed, 100);
    assert!(s.remove("d.*", &1000));
    assert_eq!(s.node_count(), 0);
    assert!(s.matches("d.5").is_empty());
}

#[test]
fn concurrent_publishers_and_subscribers() {
    let t = ShardedTrie::new(Separator::Slash, 4, 128);
    t.insert("t/**", u32::MAX).unwrap();
    thread::scope(|s| {
        for w in 0..2u32 {
            let t = &t;
            s.spawn(move || {
                for i in 0..2_000 {
                    let dest = format!("t/{}", i % 50);
                    t.insert(&dest, w * 10_000 + i).unwrap();
                    assert!(t.remove(&dest, &(w * 10_000 + i)));
                }
            });
        }
        for _ in 0..2 {
            let t = &t;
            s.spawn(move || {
                for i in 0..5_000 {
                    let got = t.matches(&format!("t/{}", i % 50));
                    assert!(got.contains(&u32::MAX));
                }
            });
        }
    });
    // A miss that raced a literal change and cached its stale result would show here.
    for i in 0..50 {
        assert_eq!(&*t.matches(&format!("t/{i}")), &[u32::MAX]);
    }
    assert_eq!(t.len(), 1);
}
