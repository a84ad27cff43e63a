use proptest::prelude::*;

use super::*;

fn slash(p: &str) -> Pattern {
    Pattern::parse(p, Separator::Slash).unwrap()
}

fn dot(p: &str) -> Pattern {
    Pattern::parse(p, Separator::Dot).unwrap()
}

/// Asserts the naive and the linear matcher agree, and returns their answer.
fn m(p: &Pattern, dest: &str) -> bool {
    let naive = p.matches(dest);
    assert_eq!(naive, p.matches_linear(dest), "{p} vs {dest}");
    naive
}

#[test]
fn glob_star_within_segment_with_slash_separator() {
    let p = slash("price.*");
    assert!(m(&p, "price.IBM"));
    assert!(m(&p, "price."));
    assert!(!m(&p, "price"));
    assert!(!m(&p, "price.IBM/x"));
    // The same with the prefix kept in the destination.
    let p = slash("/topic/price.*");
    assert!(m(&p, "/topic/price.IBM"));
    assert!(!m(&p, "/topic/stock.IBM"));
}

#[test]
fn star_alone_is_exactly_one_segment() {
    let p = slash("a/*");
    assert!(m(&p, "a/b"));
    assert!(m(&p, "a/"), "an empty segment is a segment");
    assert!(!m(&p, "a"), "not zero");
    assert!(!m(&p, "a/b/c"), "not two");
    assert!(m(&slash("*/b"), "x/b"));
    assert!(!m(&slash("*/b"), "b"));
}

#[test]
fn double_star_and_hash_match_zero_or_more() {
    for any in ["**", "#"] {
        let p = slash(&format!("a/{any}"));
        assert!(m(&p, "a"), "{any}: zero");
        assert!(m(&p, "a/b"));
        assert!(m(&p, "a/b/c/d"));
        assert!(!m(&p, "b/a"));
        let p = slash(&format!("a/{any}/z"));
        assert!(m(&p, "a/z"));
        assert!(m(&p, "a/b/c/z"));
        assert!(!m(&p, "a/b/c"));
        assert!(m(&slash(any), ""));
        assert!(m(&slash(any), "x/y"));
    }
    // Consecutive `**` merge into one.
    assert_eq!(slash("a/**/#/**/b").segments().len(), 3);
}

#[test]
fn variable_is_one_segment() {
    let p = slash("user/{name}/inbox");
    assert!(m(&p, "user/alice/inbox"));
    assert!(!m(&p, "user/inbox"));
    assert!(!m(&p, "user/a/b/inbox"));
    assert!(matches!(p.segments()[1], Segment::One));
}

#[test]
fn regex_variable_is_anchored() {
    let p = slash("order/{id:\\d+}");
    assert!(m(&p, "order/42"));
    assert!(!m(&p, "order/42a"));
    assert!(!m(&p, "order/a42"));
    assert!(!m(&p, "order/"));
    assert!(!m(&p, "order/4/2"));
    // Alternation stays inside the anchors.
    let p = slash("{x:a|ab}");
    assert!(m(&p, "ab"));
    assert!(!m(&p, "abc"));
}

#[test]
fn regex_with_separator_or_braces_inside() {
    let p = dot("v.{n:\\d+\\.\\d+}");
    assert_eq!(p.segments().len(), 2);
    assert!(!m(&p, "v.1.2"), "a segment never holds the separator");
    let p = slash("{code:[a-z]{2}}");
    assert!(m(&p, "fr"));
    assert!(!m(&p, "fra"));
    let p = slash("{x:\\{}");
    assert!(m(&p, "{"));
}

#[test]
fn mixed_variable_segment() {
    let p = slash("{a}-{b:\\d}.json");
    assert!(m(&p, "x-1.json"));
    assert!(m(&p, "-1.json"));
    assert!(!m(&p, "x-12.json"));
    assert!(!m(&p, "x-1xjson"), "`.` outside braces is literal");
}

#[test]
fn question_mark_is_exactly_one_char() {
    let p = slash("a?c");
    assert!(m(&p, "abc"));
    assert!(m(&p, "aéc"), "one char, not one byte");
    assert!(!m(&p, "ac"));
    assert!(!m(&p, "abbc"));
    assert!(m(&slash("?"), "x"));
    assert!(!m(&slash("?"), ""));
}

#[test]
fn glob_mixes() {
    let p = slash("a*b?c*");
    assert!(m(&p, "abxc"));
    assert!(m(&p, "aXXbYcZZ"));
    assert!(!m(&p, "abc"));
    assert!(m(&slash("**x"), "x"), "`**` inside a segment is a glob");
    assert!(m(&slash("**x"), "aax"));
}

#[test]
fn literal_equality() {
    let p = slash("a/b.c");
    assert!(p.is_literal());
    assert!(m(&p, "a/b.c"));
    assert!(!m(&p, "a/b.cd"));
    assert!(!m(&p, "a/b"));
    assert!(!m(&p, "a/b.c/"));
    assert!(is_literal("/topic/a.b-c"));
    for w in ["a*", "a?", "a{", "a#"] {
        assert!(has_wildcards(w), "{w}");
    }
}

#[test]
fn dot_separator() {
    let p = dot("price.*");
    assert!(m(&p, "price.IBM"));
    assert!(!m(&p, "price.IBM.NY"));
    assert!(m(&dot("price.#"), "price.IBM.NY"));
    assert!(m(&dot("price.#"), "price"));
    assert!(m(&dot("a/b.*"), "a/b.c"), "`/` is ordinary text with `.`");
    assert!(!m(&dot("a/b.*"), "a.b.c"));
}

#[test]
fn errors() {
    let err = |p: &str| Pattern::parse(p, Separator::Slash).unwrap_err();
    assert_eq!(err("a/{b"), PatternError::UnclosedBrace);
    assert!(matches!(err("a#"), PatternError::MisplacedHash { .. }));
    assert!(matches!(err("{}"), PatternError::BadVariable { .. }));
    assert!(matches!(err("{:\\d}"), PatternError::BadVariable { .. }));
    assert!(matches!(err("{x:(}"), PatternError::InvalidRegex { .. }));
    assert!(matches!(
        err("{x:a)|(b}"),
        PatternError::InvalidRegex { .. }
    ));
    assert!(matches!(
        err("{x:\\p{Nope}}"),
        PatternError::InvalidRegex { .. }
    ));
    let many = vec!["a"; 33].join("/");
    assert!(matches!(
        err(&many),
        PatternError::TooManySegments { max: 32 }
    ));
    assert!(matches!(
        err(&"a".repeat(5000)),
        PatternError::TooLong { .. }
    ));
    // A regex that compiles to a huge program is refused, not compiled without bound.
    assert!(matches!(
        err("{x:\\w{1000}}"),
        PatternError::InvalidRegex { .. }
    ));
}

#[test]
fn linear_matcher_is_not_exponential() {
    let p = slash(&["**", "x"].repeat(15).join("/"));
    let dest = vec!["x"; 120].join("/");
    assert!(p.matches_linear(&dest));
    assert!(!p.matches_linear(&format!("{dest}/y")));
}

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "ab", "", "*", "**", "#", "?", "a*", "*b", "a?", "?*?", "{x}", "{n:\\d+}",
        "{x}b", "a.b", "a.*",
    ])
}

fn token() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "ab", "ba", "", "1", "12", "a.b", "a.", "aab",
    ])
}

proptest! {
    #[test]
    fn linear_agrees_with_naive(
        segs in prop::collection::vec(segment(), 1..6),
        toks in prop::collection::vec(token(), 1..7),
        dot_sep: bool,
    ) {
        let sep = if dot_sep { Separator::Dot } else { Separator::Slash };
        let c = sep.as_char().to_string();
        let p = Pattern::parse(&segs.join(&c), sep).unwrap();
        let dest = toks.join(&c);
        prop_assert_eq!(p.matches(&dest), p.matches_linear(&dest));
    }

    #[test]
    fn glob_agrees_with_naive(glob in "[ab*?]{0,6}", s in "[abé]{0,6}") {
        let g = Glob::new(&glob);
        prop_assert_eq!(g.matches(&s), naive_glob(&g.tokens, &s));
    }
}
