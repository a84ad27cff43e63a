//! Subscription patterns (semantics.md section 2, "Patterns").
//!
//! A destination suffix (after the kind prefix such as `/topic/`) is split into segments by the
//! configured [`Separator`]. Splitting is exact: empty segments are ordinary segments
//! (`a//b` has three), unlike Spring's AntPathMatcher, which drops them. In a pattern each
//! segment is one of
//!
//! | segment | matches |
//! |---|---|
//! | `*` | exactly one whole segment (an empty one too) |
//! | `**` or `#` | zero or more whole segments |
//! | `{name}` | exactly one whole segment, like `*` |
//! | `{name:regex}` | one segment that the regex matches entirely |
//! | text with `*` / `?` | a glob within the segment: `*` zero or more chars, `?` exactly one |
//! | text mixing `{…}` with other text | one segment, `{name}` acting as `*` (compiled to a regex) |
//! | anything else | that exact text |
//!
//! A separator inside `{…}` does not split (so `{v:\d+\.\d+}` is one segment with `.` too); a
//! `\` inside braces escapes the next character, so a regex may hold an unbalanced `\{`.
//! `#` is only meaningful as a whole segment; elsewhere it is rejected, because SEND to a
//! destination holding `#` is refused, so such a subscription could never match anything.

use std::fmt;

use regex::Regex;

use parse::{Kind, build_segment, classify_all};

pub mod overlap;
mod parse;

/// The character that splits a destination into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Separator {
    /// `/`, Spring's default (AntPathMatcher).
    #[default]
    Slash,
    /// `.`, RabbitMQ's and Spring's `setPathSeparator(".")`.
    Dot,
}

impl Separator {
    /// The separator character.
    pub const fn as_char(self) -> char {
        match self {
            Self::Slash => '/',
            Self::Dot => '.',
        }
    }
}

/// Whether `destination` holds none of `* ? { #`, i.e. is matched by plain equality.
pub fn is_literal(destination: &str) -> bool {
    !destination
        .bytes()
        .any(|b| matches!(b, b'*' | b'?' | b'{' | b'#'))
}

/// Whether `destination` holds any of `* ? { #` (SEND to such a destination is refused).
pub fn has_wildcards(destination: &str) -> bool {
    !is_literal(destination)
}

/// Hard ceiling on [`PatternLimits::max_segments`]: the linear matcher keeps its states in a
/// `u128` bit set (one bit per pattern position, plus one for "all consumed").
pub const MAX_SEGMENTS_CAP: usize = 127;

/// Bounds on the cost of parsing, storing and matching one subscription pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternLimits {
    /// Longest pattern, in bytes.
    pub max_len: usize,
    /// Most segments in a pattern (clamped to [`MAX_SEGMENTS_CAP`]).
    pub max_segments: usize,
    /// `regex::RegexBuilder::size_limit` (and `dfa_size_limit`) for each regex segment.
    pub regex_size_limit: usize,
}

impl Default for PatternLimits {
    fn default() -> Self {
        Self {
            max_len: 4096,
            // nats-server tokenizes into a [32]string stack array for the same reason.
            max_segments: 32,
            regex_size_limit: 32 * 1024,
        }
    }
}

impl PatternLimits {
    fn segment_limit(&self) -> usize {
        self.max_segments.min(MAX_SEGMENTS_CAP)
    }

    /// Checks the limits of a literal destination without allocating (the subscribe hot path).
    pub(crate) fn check_literal(&self, s: &str, sep: Separator) -> Result<(), PatternError> {
        self.check_len(s)?;
        let segments = s.bytes().filter(|&b| b as char == sep.as_char()).count() + 1;
        let max = self.segment_limit();
        if segments > max {
            return Err(PatternError::TooManySegments { max });
        }
        Ok(())
    }

    fn check_len(&self, s: &str) -> Result<(), PatternError> {
        if s.len() > self.max_len {
            return Err(PatternError::TooLong {
                len: s.len(),
                max: self.max_len,
            });
        }
        Ok(())
    }
}

/// Why a subscription pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("destination is {len} bytes long, more than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("destination has more than {max} segments")]
    TooManySegments { max: usize },
    #[error("unclosed `{{` in destination")]
    UnclosedBrace,
    #[error("`#` must be a whole segment, in `{segment}`")]
    MisplacedHash { segment: String },
    #[error("bad variable in `{segment}`: a name is required and may not hold braces")]
    BadVariable { segment: String },
    #[error("invalid regex in `{segment}`: {reason}")]
    InvalidRegex { segment: String, reason: String },
}

/// One parsed segment of a [`Pattern`].
#[derive(Debug, Clone)]
pub enum Segment {
    /// Exact text.
    Literal(Box<str>),
    /// `*` or `{name}`: exactly one whole segment.
    One,
    /// `**` or `#`: zero or more whole segments (consecutive ones are merged at parse).
    Any,
    /// `*` and `?` within a segment.
    Glob(Glob),
    /// `{name:regex}`, or a segment mixing `{…}` with other text.
    Regex(SegmentRegex),
}

impl Segment {
    /// Whether this single-segment matcher accepts `token`. Not meaningful for `Any`, which
    /// spans segments and is handled by the callers.
    pub(crate) fn matches_token(&self, token: &str) -> bool {
        match self {
            Self::Literal(text) => **text == *token,
            Self::One | Self::Any => true,
            Self::Glob(glob) => glob.matches(token),
            Self::Regex(regex) => regex.regex.is_match(token),
        }
    }

    /// The same as `matches_token`, with an obviously correct (exponential) glob matcher.
    fn naive_matches_token(&self, token: &str) -> bool {
        match self {
            Self::Glob(glob) => naive_glob(&glob.tokens, token),
            other => other.matches_token(token),
        }
    }

    /// The source text of a glob or regex segment (what the trie keys those children by).
    pub(crate) fn pattern_source(&self) -> Option<&str> {
        match self {
            Self::Glob(glob) => Some(&glob.source),
            Self::Regex(regex) => Some(&regex.source),
            _ => None,
        }
    }
}

/// A segment with `*` (zero or more characters) and `?` (exactly one character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: Box<str>,
    tokens: Box<[GlobToken]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobToken {
    Star,
    AnyChar,
    Char(char),
}

impl Glob {
    fn new(source: &str) -> Self {
        let tokens = source
            .chars()
            .map(|c| match c {
                '*' => GlobToken::Star,
                '?' => GlobToken::AnyChar,
                c => GlobToken::Char(c),
            })
            .collect();
        Self {
            source: source.into(),
            tokens,
        }
    }

    /// The segment text, e.g. `price.*`.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Greedy wildcard matching that backtracks only to the last `*`: O(len(pattern) *
    /// len(token)) at worst, linear in practice, no allocation.
    pub fn matches(&self, token: &str) -> bool {
        let pat = &self.tokens;
        let (mut p, mut i) = (0, 0);
        // (pattern index after the last `*`, token index that `*` has absorbed up to)
        let mut star: Option<(usize, usize)> = None;
        while let Some(c) = token[i..].chars().next() {
            match pat.get(p) {
                Some(GlobToken::AnyChar) => {
                    p += 1;
                    i += c.len_utf8();
                }
                Some(GlobToken::Char(want)) if *want == c => {
                    p += 1;
                    i += c.len_utf8();
                }
                Some(GlobToken::Star) => {
                    p += 1;
                    star = Some((p, i));
                }
                _ => match star {
                    // Let the last `*` absorb one more character and retry from there.
                    Some((after_star, absorbed)) => {
                        let skipped = token[absorbed..].chars().next().map_or(0, char::len_utf8);
                        star = Some((after_star, absorbed + skipped));
                        p = after_star;
                        i = absorbed + skipped;
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|t| *t == GlobToken::Star)
    }
}

/// Reference glob matcher for the oracle: plain recursion.
fn naive_glob(pat: &[GlobToken], s: &str) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((GlobToken::Star, rest)) => s
            .char_indices()
            .map(|(i, _)| i)
            .chain([s.len()])
            .any(|i| naive_glob(rest, &s[i..])),
        Some((GlobToken::AnyChar, rest)) => {
            let mut chars = s.chars();
            chars.next().is_some() && naive_glob(rest, chars.as_str())
        }
        Some((GlobToken::Char(c), rest)) => s.strip_prefix(*c).is_some_and(|r| naive_glob(rest, r)),
    }
}

/// A segment compiled to one anchored regex.
#[derive(Debug, Clone)]
pub struct SegmentRegex {
    source: Box<str>,
    regex: Regex,
}

impl SegmentRegex {
    /// The segment text, e.g. `{id:\d+}`.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A parsed subscription destination.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: Box<str>,
    separator: Separator,
    segments: Vec<Segment>,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Pattern {
    /// Parses `s` with the default [`PatternLimits`].
    pub fn parse(s: &str, separator: Separator) -> Result<Self, PatternError> {
        Self::parse_with_limits(s, separator, &PatternLimits::default())
    }

    /// Parses `s`, refusing anything over `limits`; regex segments are compiled here, once.
    pub fn parse_with_limits(
        s: &str,
        separator: Separator,
        limits: &PatternLimits,
    ) -> Result<Self, PatternError> {
        Self::parse_known(s, separator, limits, Vec::new())
    }

    /// Parses `s`, taking segment i from `known[i]` where that is `Some`: the trie hands back
    /// the regexes it already holds, so a thousand subscribers of one regex pattern compile it
    /// once (a Unicode-aware regex costs ~50-150 µs to compile).
    pub(crate) fn parse_known(
        s: &str,
        separator: Separator,
        limits: &PatternLimits,
        mut known: Vec<Option<Segment>>,
    ) -> Result<Self, PatternError> {
        let segments = classify_all(s, separator, limits)?
            .into_iter()
            .enumerate()
            .map(
                |(i, (text, kind))| match known.get_mut(i).and_then(Option::take) {
                    Some(segment) => Ok(segment),
                    None => build_segment(text, kind, limits),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(Self {
            source: s.into(),
            separator,
            segments,
        })
    }

    /// Reassembles a pattern from segments already compiled (the trie's removal path).
    pub(crate) fn from_segments(s: &str, separator: Separator, segments: Vec<Segment>) -> Self {
        Self {
            source: s.into(),
            separator,
            segments,
        }
    }

    /// The text the pattern was parsed from.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn separator(&self) -> Separator {
        self.separator
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// The pattern with `{name}` spelled `*` and `#` spelled `**` (runs of `**` are already
    /// merged). The index identifies a (pattern, subscriber) pair by this form, since equivalent
    /// spellings share one trie node: `a/*` and `a/{id}` are the same subscription pattern.
    pub fn canonical(&self) -> String {
        let sep = self.separator.as_char().to_string();
        let parts: Vec<&str> = self
            .segments
            .iter()
            .map(|s| match s {
                Segment::Literal(text) => text,
                Segment::One => "*",
                Segment::Any => "**",
                Segment::Glob(g) => g.as_str(),
                Segment::Regex(r) => r.as_str(),
            })
            .collect();
        parts.join(&sep)
    }

    /// Whether every segment is literal (the pattern is matched by equality).
    pub fn is_literal(&self) -> bool {
        self.segments
            .iter()
            .all(|s| matches!(s, Segment::Literal(_)))
    }

    /// NAIVE reference matcher: plain recursion, exponential in the number of `**` segments at
    /// worst. It is the oracle of the property tests and must stay off every hot path.
    pub fn matches(&self, destination: &str) -> bool {
        let tokens: Vec<&str> = destination.split(self.separator.as_char()).collect();
        naive_match(&self.segments, &tokens)
    }

    /// Linear-time matcher (O(segments * tokens)): a bit-parallel NFA over pattern positions.
    /// Used to invalidate cache entries, where an adversarial pattern must not cost more.
    pub(crate) fn matches_linear(&self, destination: &str) -> bool {
        let segs = &self.segments;
        let n = segs.len();
        // Bit i set: the first i segments have consumed the tokens so far.
        let any_mask: u128 = segs
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s, Segment::Any))
            .fold(0, |m, (i, _)| m | 1 << i);
        // `**` may match zero segments: position i of an `Any` also reaches i + 1.
        let close = |mut set: u128| {
            for i in 0..n {
                if set & any_mask & (1 << i) != 0 {
                    set |= 1 << (i + 1);
                }
            }
            set
        };
        let mut states = close(1);
        for token in destination.split(self.separator.as_char()) {
            let mut next = 0u128;
            for (i, seg) in segs.iter().enumerate() {
                if states & (1 << i) == 0 {
                    continue;
                }
                if matches!(seg, Segment::Any) {
                    next |= 1 << i;
                } else if seg.matches_token(token) {
                    next |= 1 << (i + 1);
                }
            }
            states = close(next);
            if states == 0 {
                return false;
            }
        }
        states & (1 << n) != 0
    }
}

fn naive_match(segs: &[Segment], tokens: &[&str]) -> bool {
    match segs.split_first() {
        None => tokens.is_empty(),
        Some((Segment::Any, rest)) => (0..=tokens.len()).any(|k| naive_match(rest, &tokens[k..])),
        Some((seg, rest)) => match tokens.split_first() {
            Some((token, more)) => seg.naive_matches_token(token) && naive_match(rest, more),
            None => false,
        },
    }
}

/// A segment as the trie keys it, without compiling anything (the removal path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SegmentKey<'a> {
    Literal(&'a str),
    One,
    Any,
    /// A glob or regex segment, by its source text.
    Pattern(&'a str),
}

/// Splits and classifies `s` without compiling regexes: what removal needs to find a node.
pub(crate) fn segment_keys<'a>(
    s: &'a str,
    separator: Separator,
    limits: &PatternLimits,
) -> Result<Vec<SegmentKey<'a>>, PatternError> {
    Ok(classify_all(s, separator, limits)?
        .into_iter()
        .map(|(text, kind)| match kind {
            Kind::Literal => SegmentKey::Literal(text),
            Kind::One => SegmentKey::One,
            Kind::Any => SegmentKey::Any,
            Kind::Glob | Kind::Regex => SegmentKey::Pattern(text),
        })
        .collect())
}

#[cfg(test)]
mod tests;
