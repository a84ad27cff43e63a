use proptest::prelude::*;

use super::*;
use crate::pattern::Separator;

fn slash(p: &str) -> Pattern {
    Pattern::parse(p, Separator::Slash).unwrap()
}

fn dot(p: &str) -> Pattern {
    Pattern::parse(p, Separator::Dot).unwrap()
}

fn lang(p: &Pattern) -> Language {
    Language::of("", p).unwrap()
}

fn overlap(a: &Pattern, b: &Pattern) -> bool {
    lang(a).overlaps(&lang(b)).unwrap()
}

/// Issue 12's patterns (and `/topic/secre?`) that reach `/topic/secret/**` without
/// containing its text.
pub(crate) const REACHING_SECRET: [&str; 7] = [
    "/topic/*/x",
    "/topic/secre?/x",
    "/topic/{a}/x",
    "/topic/{a:s.*}/x",
    "/topic/s*/x",
    "/topic/**",
    // `/topic/secret/**` matches `/topic/secret` itself.
    "/topic/secre?",
];

#[test]
fn the_patterns_of_the_issue_overlap_the_secret_topics() {
    let secret = slash("/topic/secret/**");
    for sub in REACHING_SECRET.into_iter().chain(["/topic/#", "/**/x"]) {
        assert!(overlap(&slash(sub), &secret), "{sub}");
        let witness = lang(&slash(sub)).find(&[&lang(&secret)], |a| a[0]).unwrap();
        let witness = witness.unwrap();
        assert!(
            slash(sub).matches(&witness) && secret.matches(&witness),
            "{witness}"
        );
    }
    for sub in [
        "/topic/public/*",
        "/topic/{a:p.*}/x",
        "/topic/secre",
        "/topic/secret?/**",
        "/topic/{a:[^s].*}/x",
        "/queue/**",
    ] {
        assert!(!overlap(&slash(sub), &secret), "{sub}");
    }
}

#[test]
fn zero_segments_of_double_star_count() {
    // `/topic/secret/**` matches `/topic/secret` itself.
    assert!(overlap(&slash("/topic/*"), &slash("/topic/secret/**")));
    assert!(!overlap(&slash("/topic/*/*"), &slash("/topic/a")));
}

#[test]
fn a_regex_never_spans_a_separator() {
    // `.` in the regex could match `/`, but a token never holds the separator.
    assert!(!overlap(
        &slash("/topic/{a:secret.x}"),
        &slash("/topic/secret/x")
    ));
    assert!(overlap(
        &slash("/topic/{a:secret.x}"),
        &slash("/topic/secret.x")
    ));
    assert!(!overlap(&slash("/t/{a:a/b|c}"), &slash("/t/a/b")));
    assert!(overlap(&slash("/t/{a:a/b|c}"), &slash("/t/c")));
}

#[test]
fn separators_differ_between_subscriptions_and_rules() {
    // With `.`, one token may hold `/`: `*` reaches `/topic/secret/x`.
    let secret = slash("/topic/secret/**");
    let sub = Language::of("/topic/", &dot("*")).unwrap();
    assert!(sub.overlaps(&lang(&secret)).unwrap());
    let sub = Language::of("/topic/", &dot("public.*")).unwrap();
    assert!(!sub.overlaps(&lang(&secret)).unwrap());
    assert!(sub.matches("/topic/public.x/y"));
    assert!(!sub.matches("/topic/public.x.y"));
}

#[test]
fn anchors_in_a_regex_are_undecidable() {
    for p in ["/t/{a:^x}", "/t/{a:x$}", "/t/{a:\\bx}"] {
        assert_eq!(
            Language::of("", &slash(p)).unwrap_err(),
            Undecidable::LookAround,
            "{p}"
        );
    }
}

#[test]
fn containment_in_a_union() {
    // Every destination of `/t/*` is matched by `/t/a*` or `/t/{x:(?s)[^a].*}` or `/t/`.
    let sub = lang(&slash("/t/*"));
    let a = lang(&slash("/t/a*"));
    let not_a = lang(&slash("/t/{x:(?s)[^a].*}"));
    let empty = lang(&slash("/t/"));
    let outside = |acc: &[bool]| !acc.iter().any(|&x| x);
    assert_eq!(sub.find(&[&a, &not_a, &empty], outside).unwrap(), None);
    let witness = sub.find(&[&a, &not_a], outside).unwrap();
    assert_eq!(witness.as_deref(), Some("/t/"));
    // Without `(?s)`, `.` leaves out a newline: `/t/` + NUL + newline is outside.
    let not_a_line = lang(&slash("/t/{x:[^a].*}"));
    let witness = sub.find(&[&a, &not_a_line, &empty], outside).unwrap();
    assert_eq!(witness.as_deref(), Some("/t/\0\n"));
}

fn segment() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a",
        "b",
        "ab",
        "",
        "*",
        "**",
        "#",
        "?",
        "a*",
        "*b",
        "a?",
        "?*?",
        "{x}",
        "{n:[ab]+}",
        "{x}b",
        "a.b",
        "a.*",
        "{r:a|b.}",
        "{r:(?i)A}",
        "{r:[^a]}",
    ])
}

fn pattern() -> impl Strategy<Value = Pattern> {
    (prop::collection::vec(segment(), 1..5), any::<bool>()).prop_map(|(segs, dot_sep)| {
        let sep = if dot_sep {
            Separator::Dot
        } else {
            Separator::Slash
        };
        Pattern::parse(&segs.join(&sep.as_char().to_string()), sep).unwrap()
    })
}

/// Every destination over `a`, `b`, `/`, `.` of at most `len` characters.
pub(crate) fn destinations(len: usize) -> Vec<String> {
    let mut all = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..len {
        last = last
            .iter()
            .flat_map(|d| ['a', 'b', '/', '.'].map(|c| format!("{d}{c}")))
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The language is exactly what the (naive, obviously correct) matcher matches.
    #[test]
    fn the_language_is_the_matchers(p in pattern(), d in "[ab/.]{0,7}") {
        prop_assert_eq!(lang(&p).matches(&d), p.matches(&d), "{} vs {:?}", p, d);
    }

    /// Overlap agrees with brute force: a common destination found by enumeration means
    /// overlap, and an overlap comes with a witness both matchers accept.
    #[test]
    fn overlap_agrees_with_brute_force(p in pattern(), q in pattern()) {
        let found = lang(&p).find(&[&lang(&q)], |a| a[0]).unwrap();
        if let Some(witness) = &found {
            prop_assert!(p.matches(witness) && q.matches(witness), "{} {} {:?}", p, q, witness);
        }
        let brute = destinations(5).into_iter().find(|d| p.matches(d) && q.matches(d));
        if let Some(d) = brute {
            prop_assert!(found.is_some(), "{} and {} share {:?}", p, q, d);
        }
    }
}
