//! Deciding what patterns have in common: whether some destination matches two patterns, or
//! whether every destination one matches is matched by others. Access rules need this for
//! pattern subscriptions (`/topic/*/x` against a rule on `/topic/secret/**`).
//!
//! A pattern is turned into the exact set of destinations it matches, as a regular language
//! over bytes, and compiled to a DFA; questions are answered by a breadth-first search of the
//! product of DFAs for a destination with the asked-for property (a witness). Every feature
//! of patterns is covered, with either separator: a token never holds the separator, so `*`,
//! `?`, `{name}` become `[^sep]*` or `[^sep]`, a `{name:regex}` becomes the regex with the
//! separator taken out of every character it may match, and `**` becomes any run of tokens.
//!
//! To spell "split at the separator" as a regular expression, a pattern's language is written
//! over the destination followed by one separator: each token is "text, separator", so
//! `a/**` is `a/([^/]*/)*` and matches `a` + `/`, `a/b/c` + `/`. Each DFA reads the same
//! destination; at its end each is fed its own separator.
//!
//! Not decidable here, reported as [`Undecidable`]: regex segments with anchors or word
//! boundaries (`^`, `$`, `\b`: their meaning depends on the token, which the byte-level
//! language does not see), and DFAs or searches past fixed size bounds.

use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::nfa::thompson;
use regex_automata::util::primitives::StateID;
use regex_automata::util::start;
use regex_automata::{Anchored, MatchKind};
use regex_syntax::hir::{Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange};
use regex_syntax::hir::{Hir, HirKind, Repetition};

use super::parse::{find_close, split_variable};
use super::{GlobToken, Pattern, Segment};

/// Bytes a compiled DFA may take (a pattern's, a rule's). Checking a subscription runs on the
/// session's task: at this bound an adversarial regex costs ~15 ms to build (release build),
/// while real patterns take a few KiB.
const DFA_BYTES: usize = 256 << 10;
/// Product states a search may visit before giving up.
const SEARCH_STATES: usize = 4096;

/// Why a question about patterns was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Undecidable {
    #[error("a regex segment uses anchors or word boundaries")]
    LookAround,
    #[error("the pattern is too complex to compare with others")]
    TooLarge,
}

/// The destinations a pattern matches, as a DFA.
#[derive(Debug, Clone)]
pub struct Language {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
    /// Fed after the destination: the pattern's separator.
    terminator: u8,
}

impl Language {
    /// The destinations `prefix` + (a destination suffix `pattern` matches): the topic
    /// router matches patterns after the broadcast prefix.
    pub fn of(prefix: &str, pattern: &Pattern) -> Result<Language, Undecidable> {
        let sep = pattern.separator().as_char();
        let mut parts = vec![Hir::literal(prefix.as_bytes())];
        for segment in pattern.segments() {
            match segment {
                Segment::Any => {
                    parts.push(star(Hir::concat(vec![star(not_sep(sep)), separator(sep)])))
                }
                other => {
                    parts.push(token(other, sep)?);
                    parts.push(separator(sep));
                }
            }
        }
        let hir = Hir::concat(parts);
        let nfa = thompson::Compiler::new()
            .configure(
                thompson::Config::new()
                    .nfa_size_limit(Some(DFA_BYTES))
                    .which_captures(thompson::WhichCaptures::None),
            )
            .build_from_hir(&hir)
            .map_err(|_| Undecidable::TooLarge)?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    // The whole language, not leftmost-first's pruned one.
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .dfa_size_limit(Some(DFA_BYTES))
                    .determinize_size_limit(Some(DFA_BYTES)),
            )
            .build_from_nfa(&nfa)
            .map_err(|_| Undecidable::TooLarge)?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .map_err(|_| Undecidable::TooLarge)?;
        Ok(Language {
            dfa,
            start,
            terminator: sep as u8,
        })
    }

    /// Whether `destination` is in the language (the tests' link to `Pattern::matches`).
    #[cfg(test)]
    pub fn matches(&self, destination: &str) -> bool {
        let state = destination
            .bytes()
            .fold(self.start, |s, b| self.dfa.next_state(s, b));
        self.accepts(state)
    }

    /// Whether the destination read so far, ending here, is in the language.
    fn accepts(&self, state: StateID) -> bool {
        let state = self.dfa.next_state(state, self.terminator);
        self.dfa.is_match_state(self.dfa.next_eoi_state(state))
    }

    /// Whether some destination is in both languages.
    pub fn overlaps(&self, other: &Language) -> Result<bool, Undecidable> {
        Ok(self.find(&[other], |accepted| accepted[0])?.is_some())
    }

    /// A destination in this language for which `wanted` holds of which of `others` accept
    /// it (`accepted[i]`: `others[i]` does); `None` if there is none.
    pub fn find(
        &self,
        others: &[&Language],
        wanted: impl Fn(&[bool]) -> bool,
    ) -> Result<Option<String>, Undecidable> {
        // Product states, each with how it was reached (for the witness).
        let mut seen: HashMap<Vec<StateID>, usize> = HashMap::new();
        let mut states: Vec<Visited> = Vec::new();
        let mut queue = VecDeque::new();
        let first: Vec<StateID> = std::iter::once(self.start)
            .chain(others.iter().map(|o| o.start))
            .collect();
        seen.insert(first.clone(), 0);
        states.push((first, None));
        queue.push_back(0);
        let mut accepted = vec![false; others.len()];
        let alphabet = representatives(std::iter::once(self).chain(others.iter().copied()));
        while let Some(at) = queue.pop_front() {
            let current = states[at].0.clone();
            if self.accepts(current[0]) {
                for (i, other) in others.iter().enumerate() {
                    accepted[i] = other.accepts(current[i + 1]);
                }
                if wanted(&accepted) {
                    return Ok(Some(witness(&states, at)));
                }
            }
            for &byte in &alphabet {
                let next = self.dfa.next_state(current[0], byte);
                if self.dfa.is_dead_state(next) {
                    continue;
                }
                let mut product = Vec::with_capacity(current.len());
                product.push(next);
                for (i, other) in others.iter().enumerate() {
                    product.push(other.dfa.next_state(current[i + 1], byte));
                }
                if seen.contains_key(&product) {
                    continue;
                }
                if states.len() == SEARCH_STATES {
                    return Err(Undecidable::TooLarge);
                }
                seen.insert(product.clone(), states.len());
                queue.push_back(states.len());
                states.push((product, Some((at, byte))));
            }
        }
        Ok(None)
    }
}

/// One byte for each set of bytes that no DFA among `languages` tells apart (each DFA's
/// byte classes, refined together): the search need not try the others.
fn representatives<'a>(languages: impl Iterator<Item = &'a Language> + Clone) -> Vec<u8> {
    let mut seen = HashSet::new();
    (0..=u8::MAX)
        .filter(|&byte| {
            let classes: Vec<u8> = languages
                .clone()
                .map(|l| l.dfa.byte_classes().get(byte))
                .collect();
            seen.insert(classes)
        })
        .collect()
}

/// A product state (one DFA state per language) and the state and byte it was reached from.
type Visited = (Vec<StateID>, Option<(usize, u8)>);

/// The bytes that lead to product state `at`, as text (lossy for a witness that stops inside
/// a character, which a search in byte order can produce).
fn witness(states: &[Visited], mut at: usize) -> String {
    let mut bytes = Vec::new();
    while let Some((from, byte)) = states[at].1 {
        bytes.push(byte);
        at = from;
    }
    bytes.reverse();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One token, as matched by a single-segment matcher (never holding the separator).
fn token(segment: &Segment, sep: char) -> Result<Hir, Undecidable> {
    Ok(match segment {
        Segment::Literal(text) => Hir::literal(text.as_bytes()),
        Segment::One | Segment::Any => star(not_sep(sep)),
        Segment::Glob(glob) => Hir::concat(
            glob.tokens
                .iter()
                .map(|t| match t {
                    GlobToken::Star => star(not_sep(sep)),
                    GlobToken::AnyChar => not_sep(sep),
                    GlobToken::Char(c) => Hir::literal(c.to_string().into_bytes()),
                })
                .collect(),
        ),
        Segment::Regex(regex) => regex_segment(&regex.source, sep)?,
    })
}

/// A segment with `{…}` (see `parse::compile_segment`, which this follows): `{name}` and `*`
/// any text, `?` one character, `{name:regex}` the regex, anything else itself.
fn regex_segment(source: &str, sep: char) -> Result<Hir, Undecidable> {
    let mut parts = Vec::new();
    let mut i = 0;
    while let Some(c) = source[i..].chars().next() {
        match c {
            '{' => {
                // The segment parsed when the pattern did: braces close and variables are
                // well formed; a failure here would be a parser bug, and refusing is safe.
                let close = find_close(source, i).ok_or(Undecidable::TooLarge)?;
                let (_, regex) = split_variable(&source[i + 1..close], source)
                    .map_err(|_| Undecidable::TooLarge)?;
                parts.push(match regex {
                    None => star(not_sep(sep)),
                    Some(regex) => {
                        let hir = regex_syntax::Parser::new()
                            .parse(regex)
                            .map_err(|_| Undecidable::TooLarge)?;
                        if !hir.properties().look_set().is_empty() {
                            return Err(Undecidable::LookAround);
                        }
                        without(&hir, sep)
                    }
                });
                i = close + 1;
                continue;
            }
            '*' => parts.push(star(not_sep(sep))),
            '?' => parts.push(not_sep(sep)),
            c => parts.push(Hir::literal(c.to_string().into_bytes())),
        }
        i += c.len_utf8();
    }
    Ok(Hir::concat(parts))
}

/// `hir` restricted to texts without `sep`: `sep` removed from every class, and literals that
/// hold it made to fail. Exact for expressions without look-arounds (checked by the caller):
/// a text avoids `sep` exactly when every character matched on its way does.
fn without(hir: &Hir, sep: char) -> Hir {
    match hir.kind() {
        HirKind::Empty | HirKind::Look(_) => hir.clone(),
        HirKind::Literal(literal) => {
            if literal.0.contains(&(sep as u8)) {
                Hir::fail()
            } else {
                hir.clone()
            }
        }
        HirKind::Class(Class::Unicode(class)) => {
            let mut class = class.clone();
            class.difference(&ClassUnicode::new([ClassUnicodeRange::new(sep, sep)]));
            Hir::class(Class::Unicode(class))
        }
        HirKind::Class(Class::Bytes(class)) => {
            let mut class = class.clone();
            let sep = sep as u8;
            class.difference(&ClassBytes::new([ClassBytesRange::new(sep, sep)]));
            Hir::class(Class::Bytes(class))
        }
        HirKind::Repetition(rep) => Hir::repetition(Repetition {
            min: rep.min,
            max: rep.max,
            greedy: rep.greedy,
            sub: Box::new(without(&rep.sub, sep)),
        }),
        // Groups do not change the language.
        HirKind::Capture(capture) => without(&capture.sub, sep),
        HirKind::Concat(subs) => Hir::concat(subs.iter().map(|h| without(h, sep)).collect()),
        HirKind::Alternation(subs) => {
            Hir::alternation(subs.iter().map(|h| without(h, sep)).collect())
        }
    }
}

fn not_sep(sep: char) -> Hir {
    let mut class = ClassUnicode::new([ClassUnicodeRange::new(sep, sep)]);
    class.negate();
    Hir::class(Class::Unicode(class))
}

fn separator(sep: char) -> Hir {
    Hir::literal(sep.to_string().into_bytes())
}

fn star(hir: Hir) -> Hir {
    Hir::repetition(Repetition {
        min: 0,
        max: None,
        greedy: true,
        sub: Box::new(hir),
    })
}

#[cfg(test)]
pub(crate) mod tests;
