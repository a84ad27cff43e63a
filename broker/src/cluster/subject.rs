//! NATS subjects of the cluster (docs/cluster.md, "Subjects"), `<c>` being `[cluster] name`:
//!
//! | what | subject |
//! |---|---|
//! | topic destination | `<c>.t.<prefix>.<segment>.<segment>…` |
//! | topic destination whose subject would be too long | `<c>.l.<prefix>` |
//! | user destinations of user `u` | `<c>.u.<u>` |
//! | sessions on node `n` | `<c>.n.<n>` |
//! | presence questions | `<c>.presence` |
//!
//! A topic destination is split into its broadcast prefix (one token) and the rest, split on
//! the configured separator (one token per segment, an empty segment too). Every token is
//! escaped reversibly ([`escape_token`]), so the mapping is one-to-one and a subject gives its
//! destination back. A subscription pattern maps to NATS filters that match at least every
//! subject whose destination the pattern matches: exactly where NATS wildcards say the same
//! thing, broader where they cannot (the trie then filters locally).
//!
//! A subject longer than [`MAX_SUBJECT_LEN`] cannot cross NATS; a topic destination that
//! would need one is published on its prefix's long subject instead, the destination in a
//! header, and every node with interest that could match such a destination (a pattern with
//! wildcards, or a literal that long) subscribes that subject too.

use std::borrow::Cow;

use super::escape::{Sink, escape_into, unescape};
use crate::routing::{Pattern, Segment, Separator, is_literal};

/// The longest subject the link publishes or subscribes: nats-server closes a connection
/// whose protocol line (`HPUB <subject> <sizes>`, `SUB <subject> <sid>`) passes its
/// `max_control_line`, 4 KiB by default. A filter only matches subjects at least as long as
/// itself, so a filter longer than this could only match messages never published.
pub const MAX_SUBJECT_LEN: usize = 4000;

/// The token an empty segment becomes (a NATS token may not be empty); escaping never
/// produces a lone `%` otherwise.
const EMPTY_TOKEN: &str = "%";

/// Writes `segment` as one NATS token: `%`, `.`, `*`, `>`, whitespace and control characters
/// escaped, an empty segment spelled [`EMPTY_TOKEN`].
pub(crate) fn escape_token(out: &mut impl Sink, segment: &str) {
    if segment.is_empty() {
        out.put(EMPTY_TOKEN);
    } else {
        escape_into(out, segment, |c| {
            matches!(c, '.' | '*' | '>') || c.is_whitespace() || c.is_control()
        });
    }
}

/// The segment a token stands for; `None` if it was not written by [`escape_token`].
pub(crate) fn unescape_token(token: &str) -> Option<Cow<'_, str>> {
    match token {
        EMPTY_TOKEN => Some(Cow::Borrowed("")),
        "" => None,
        token => unescape(token),
    }
}

/// The subject presence questions of cluster `name` go to.
pub fn presence_subject(name: &str) -> String {
    format!("{name}.presence")
}

/// The subjects of one cluster, with their fixed beginnings computed once.
#[derive(Debug, Clone)]
pub struct Subjects {
    /// `<c>.t.`
    topics: Box<str>,
    /// `<c>.l.`
    long_topics: Box<str>,
    /// `<c>.u.`
    users: Box<str>,
    /// `<c>.n.`
    nodes: Box<str>,
    /// `<c>.presence`
    presence: Box<str>,
    /// `<c>.disconnect`
    disconnect: Box<str>,
    /// The broadcast prefixes, in the order routing tries them.
    prefixes: Vec<String>,
    separator: Separator,
}

impl Subjects {
    /// The subjects of cluster `name` (a valid subject prefix: tokens without wildcards or
    /// whitespace) for the given broadcast prefixes and separator, which every node of the
    /// cluster must share.
    pub fn new(name: &str, broadcast_prefixes: &[String], separator: Separator) -> Subjects {
        Subjects {
            topics: format!("{name}.t.").into(),
            long_topics: format!("{name}.l.").into(),
            users: format!("{name}.u.").into(),
            nodes: format!("{name}.n.").into(),
            presence: presence_subject(name).into(),
            disconnect: format!("{name}.disconnect").into(),
            prefixes: broadcast_prefixes.to_vec(),
            separator,
        }
    }

    /// The subject presence questions go to.
    pub fn presence(&self) -> &str {
        &self.presence
    }

    /// The subject questions to disconnect a user go to.
    pub fn disconnect(&self) -> &str {
        &self.disconnect
    }

    /// The subject of the sessions of node `node`.
    pub fn node(&self, node: &str) -> String {
        let mut subject = String::from(&*self.nodes);
        escape_token(&mut subject, node);
        subject
    }

    /// The subject of the user destinations of `user`.
    pub fn user(&self, user: &str) -> String {
        let mut subject = String::new();
        self.write_user(&mut subject, user);
        subject
    }

    pub(crate) fn write_user(&self, out: &mut impl Sink, user: &str) {
        out.put(&self.users);
        escape_token(out, user);
    }

    pub(crate) fn write_node(&self, out: &mut impl Sink, node: &str) {
        out.put(&self.nodes);
        escape_token(out, node);
    }

    /// The broadcast prefix `destination` starts with (the first that does, as routing
    /// picks it) and the rest.
    fn split_prefix<'a>(&self, destination: &'a str) -> Option<(&'a str, &'a str)> {
        self.prefixes
            .iter()
            .find(|p| destination.starts_with(p.as_str()))
            .map(|p| destination.split_at(p.len()))
    }

    /// The subject of a topic destination; `None` if it has no broadcast prefix.
    pub fn topic(&self, destination: &str) -> Option<String> {
        let mut subject = String::with_capacity(self.topics.len() + destination.len() + 8);
        self.write_topic(&mut subject, destination)
            .then_some(subject)
    }

    /// Writes the subject of a topic destination; false (nothing written) if it has no
    /// broadcast prefix.
    pub(crate) fn write_topic(&self, out: &mut impl Sink, destination: &str) -> bool {
        let Some((prefix, rest)) = self.split_prefix(destination) else {
            return false;
        };
        out.put(&self.topics);
        escape_token(out, prefix);
        for segment in rest.split(self.separator.as_char()) {
            out.put(".");
            escape_token(out, segment);
        }
        true
    }

    /// Writes the long subject of a topic destination's prefix; false (nothing written) if
    /// it has no broadcast prefix.
    pub(crate) fn write_long_topic(&self, out: &mut impl Sink, destination: &str) -> bool {
        let Some((prefix, _)) = self.split_prefix(destination) else {
            return false;
        };
        out.put(&self.long_topics);
        escape_token(out, prefix);
        true
    }

    /// The topic destination of a subject; `None` if it is not a topic subject of this
    /// cluster written by [`Subjects::topic`].
    pub fn topic_destination(&self, subject: &str) -> Option<String> {
        let mut tokens = subject.strip_prefix(&*self.topics)?.split('.');
        let mut destination = String::with_capacity(subject.len());
        destination.push_str(&unescape_token(tokens.next()?)?);
        let mut first = true;
        for token in tokens {
            if !first {
                destination.push(self.separator.as_char());
            }
            first = false;
            destination.push_str(&unescape_token(token)?);
        }
        // A destination has at least one segment after its prefix.
        (!first).then_some(destination)
    }

    /// NATS filters covering every destination `pattern` (a topic destination or pattern,
    /// prefix included) matches; `None` if it has no broadcast prefix. Per segment:
    /// a literal is its token, `*`, `{name}`, a glob or a regex segment is `*` (broader but
    /// for `*` and `{name}`), a trailing `**` is both "nothing more" and `>` (Herald's `**`
    /// matches zero segments, NATS's `>` at least one), and a `**` followed by more segments
    /// is `>` (broader: the rest is filtered locally). A filter longer than
    /// [`MAX_SUBJECT_LEN`] is replaced by the prefix's long subject, which a pattern with
    /// wildcards (it may match a destination of any length) also gets.
    pub fn topic_filters(&self, pattern: &str) -> Option<Vec<String>> {
        let mut filters = self.all_topic_filters(pattern)?;
        let before = filters.len();
        filters.retain(|f| f.len() <= MAX_SUBJECT_LEN);
        if filters.len() < before || !is_literal(pattern) {
            let mut long = String::new();
            self.write_long_topic(&mut long, pattern);
            filters.push(long);
        }
        Some(filters)
    }

    fn all_topic_filters(&self, pattern: &str) -> Option<Vec<String>> {
        let (prefix, rest) = self.split_prefix(pattern)?;
        let mut base = String::from(&*self.topics);
        escape_token(&mut base, prefix);
        let Ok(pattern) = Pattern::parse(rest, self.separator) else {
            // Routing refuses such a pattern; if one got here, cover the whole prefix.
            return Some(vec![base + ".>"]);
        };
        let segments = pattern.segments();
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    base.push('.');
                    escape_token(&mut base, text);
                }
                Segment::One | Segment::Glob(_) | Segment::Regex(_) => base.push_str(".*"),
                Segment::Any => {
                    let more = format!("{base}.>");
                    // Zero segments for a trailing `**`: only if some precede it, since a
                    // destination has at least one segment after its prefix.
                    return Some(if i + 1 == segments.len() && i > 0 {
                        vec![base, more]
                    } else {
                        vec![more]
                    });
                }
            }
        }
        Some(vec![base])
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whether NATS filter `filter` (`*` one token, `>` one or more at the end) matches
    /// `subject`.
    fn filter_matches(filter: &str, subject: &str) -> bool {
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

    #[test]
    fn the_reference_matcher() {
        assert!(filter_matches("a.*.c", "a.b.c"));
        assert!(filter_matches("a.>", "a.b.c"));
        assert!(!filter_matches("a.>", "a"));
        assert!(!filter_matches("a.*", "a.b.c"));
        assert!(!filter_matches("a.b", "a"));
        assert!(!filter_matches("a", "a.b"));
    }

    fn subjects(separator: Separator) -> Subjects {
        let prefixes = ["/topic/".to_owned(), "/exchange/".to_owned()];
        Subjects::new("herald", &prefixes, separator)
    }

    #[test]
    fn topic_subjects_by_example() {
        let s = subjects(Separator::Slash);
        let cases = [
            ("/topic/a/b", "herald.t./topic/.a.b"),
            ("/topic/", "herald.t./topic/.%"),
            ("/topic/a//b.c", "herald.t./topic/.a.%.b%2Ec"),
            ("/topic/x y/>/*/%", "herald.t./topic/.x%20y.%3E.%2A.%25"),
            ("/exchange/é", "herald.t./exchange/.é"),
        ];
        for (destination, subject) in cases {
            assert_eq!(s.topic(destination).as_deref(), Some(subject));
            assert_eq!(s.topic_destination(subject).as_deref(), Some(destination));
        }
        assert_eq!(s.topic("/queue/a"), None);
        let dots = subjects(Separator::Dot);
        assert_eq!(
            dots.topic("/topic/a.b/c").unwrap(),
            "herald.t./topic/.a.b/c"
        );
    }

    #[test]
    fn foreign_subjects_give_no_destination() {
        let s = subjects(Separator::Slash);
        for subject in [
            "herald.t./topic/",
            "herald.t./topic/.a..b",
            "herald.t./topic/.%zz",
            "other.t./topic/.a",
            "herald.u.alice",
        ] {
            assert_eq!(s.topic_destination(subject), None, "{subject}");
        }
    }

    #[test]
    fn user_and_node_subjects() {
        let s = subjects(Separator::Slash);
        assert_eq!(s.user("alice"), "herald.u.alice");
        assert_eq!(s.user("a.b c"), "herald.u.a%2Eb%20c");
        assert_eq!(s.user(""), "herald.u.%");
        assert_eq!(s.node("n1"), "herald.n.n1");
        assert_eq!(s.presence(), "herald.presence");
        assert_eq!(s.disconnect(), "herald.disconnect");
    }

    #[test]
    fn pattern_filters_by_example() {
        let s = subjects(Separator::Slash);
        // Without the long subject every pattern with wildcards also gets.
        let filters = |p: &str| {
            let mut filters = s.topic_filters(p).unwrap();
            if !is_literal(p) {
                assert_eq!(filters.pop().as_deref(), Some("herald.l./topic/"));
            }
            filters
        };
        assert_eq!(filters("/topic/a/b"), ["herald.t./topic/.a.b"]);
        assert_eq!(filters("/topic/a/*"), ["herald.t./topic/.a.*"]);
        assert_eq!(filters("/topic/a/{id}/c"), ["herald.t./topic/.a.*.c"]);
        assert_eq!(filters("/topic/a/x?/c*"), ["herald.t./topic/.a.*.*"]);
        assert_eq!(filters("/topic/{v:\\d+}"), ["herald.t./topic/.*"]);
        assert_eq!(
            filters("/topic/a/**"),
            ["herald.t./topic/.a", "herald.t./topic/.a.>"]
        );
        assert_eq!(filters("/topic/a/#"), filters("/topic/a/**"));
        assert_eq!(filters("/topic/**"), ["herald.t./topic/.>"]);
        assert_eq!(filters("/topic/a/**/b/*"), ["herald.t./topic/.a.>"]);
        assert_eq!(filters("/topic/a.b/ /"), ["herald.t./topic/.a%2Eb.%20.%"]);
        assert_eq!(s.topic_filters("/queue/a/*"), None);
        let long = format!("/topic/{}", " ".repeat(MAX_SUBJECT_LEN / 3));
        assert_eq!(s.topic_filters(&long).unwrap(), ["herald.l./topic/"]);
    }

    /// A destination segment: short texts over characters NATS forbids in tokens, the
    /// escape character, both separators and non-ASCII, empty ones included.
    fn segment() -> impl Strategy<Value = String> {
        "[ab.%*> /\\t\u{e9}\u{1F600}]{0,3}"
    }

    fn rest(separator: Separator) -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..5).prop_map(move |segments| {
            segments
                .iter()
                // A segment cannot hold the separator: it would be two.
                .map(|s| s.replace(separator.as_char(), ""))
                .collect::<Vec<_>>()
                .join(&separator.as_char().to_string())
        })
    }

    fn separator() -> impl Strategy<Value = Separator> {
        prop_oneof![Just(Separator::Slash), Just(Separator::Dot)]
    }

    /// A pattern segment: literal, `*`, `**`, `#`, globs, variables and a regex.
    fn pattern_segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ab \u{e9}>%]{0,2}",
            Just("*".to_owned()),
            Just("**".to_owned()),
            Just("#".to_owned()),
            Just("a*".to_owned()),
            Just("?".to_owned()),
            Just("{id}".to_owned()),
            Just("{v:[ab]+}".to_owned()),
        ]
    }

    /// A pattern and a destination it is likely to match: each pattern segment is
    /// instantiated (wildcards by random segments), so most pairs match and the property is
    /// tested where it matters.
    fn pattern_and_destination() -> impl Strategy<Value = (Separator, String, String)> {
        (
            separator(),
            prop::collection::vec((pattern_segment(), segment(), 0..3usize), 1..5),
            any::<bool>(),
        )
            .prop_map(|(separator, parts, instantiate)| {
                let sep = separator.as_char().to_string();
                let clean = |s: &str| s.replace(separator.as_char(), "");
                let pattern: Vec<String> = parts.iter().map(|(p, _, _)| clean(p)).collect();
                let mut destination = Vec::new();
                for (p, random, count) in &parts {
                    let random = clean(random);
                    match p.as_str() {
                        _ if !instantiate => destination.push(random),
                        "**" | "#" => destination.extend(vec![random; *count]),
                        "*" | "{id}" => destination.push(random),
                        "a*" => destination.push(format!("a{random}")),
                        "?" => destination.push("x".to_owned()),
                        "{v:[ab]+}" => destination.push("ab".to_owned()),
                        literal => destination.push(clean(literal)),
                    }
                }
                let destination = if destination.is_empty() {
                    String::new()
                } else {
                    destination.join(&sep)
                };
                (separator, pattern.join(&sep), destination)
            })
    }

    proptest! {
        #[test]
        fn topic_subjects_round_trip(separator in separator(), rest in rest(Separator::Slash)) {
            let s = subjects(separator);
            let rest = if separator == Separator::Dot { rest.replace('/', ".") } else { rest };
            let destination = format!("/topic/{rest}");
            let subject = s.topic(&destination).unwrap();
            let tokens: Vec<&str> = subject.split('.').collect();
            prop_assert!(tokens.iter().all(|t| !t.is_empty()
                && (t.len() == 1 || !t.contains(['*', '>']))
                && !t.contains(char::is_whitespace)), "{subject}");
            prop_assert!(!tokens[3..].contains(&"*") && !tokens[3..].contains(&">"));
            prop_assert_eq!(s.topic_destination(&subject), Some(destination));
        }

        #[test]
        fn user_subjects_are_single_tokens(user in "\\PC{0,8}") {
            let subject = subjects(Separator::Slash).user(&user);
            let token = subject.strip_prefix("herald.u.").unwrap();
            prop_assert!(!token.is_empty() && !token.contains(['.', '*', '>', ' ']));
            prop_assert_eq!(unescape_token(token).unwrap(), user);
        }

        /// Whatever a pattern matches, one of its filters matches the destination's subject.
        #[test]
        fn filters_cover_what_the_pattern_matches(
            (separator, pattern, destination) in pattern_and_destination()
        ) {
            let Ok(parsed) = Pattern::parse(&pattern, separator) else { return Ok(()) };
            let s = subjects(separator);
            let filters = s.topic_filters(&format!("/topic/{pattern}")).unwrap();
            let subject = s.topic(&format!("/topic/{destination}")).unwrap();
            if parsed.matches(&destination) {
                prop_assert!(
                    filters.iter().any(|f| filter_matches(f, &subject)),
                    "{pattern:?} matches {destination:?} but none of {filters:?} matches {subject}"
                );
            }
            // Exact where NATS says the same: a pattern of literals, `*` and `{name}`, with at
            // most a trailing `**`, matches exactly what its filters match.
            let exact = parsed.segments().iter().enumerate().all(|(i, seg)| match seg {
                Segment::Literal(_) | Segment::One => true,
                Segment::Any => i + 1 == parsed.segments().len() && i > 0,
                _ => false,
            });
            if exact {
                prop_assert_eq!(
                    parsed.matches(&destination),
                    filters.iter().any(|f| filter_matches(f, &subject)),
                    "{:?} / {:?} / {:?}", pattern, destination, filters
                );
            }
        }
    }
}
