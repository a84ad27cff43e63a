//! Splitting and classifying pattern segments, and compiling regex segments.

use regex::{Regex, RegexBuilder};

use super::{Glob, PatternError, PatternLimits, Segment, SegmentRegex, Separator, is_literal};

/// What a segment is, before any regex is compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Literal,
    One,
    Any,
    Glob,
    Regex,
}

/// Splits `s` into classified segments, merging consecutive `**` (`**/**` means `**`, and the
/// merge keeps matching linear in the number of distinct positions).
pub(super) fn classify_all<'a>(
    s: &'a str,
    separator: Separator,
    limits: &PatternLimits,
) -> Result<Vec<(&'a str, Kind)>, PatternError> {
    limits.check_len(s)?;
    let max = limits.segment_limit();
    let mut out: Vec<(&str, Kind)> = Vec::new();
    for text in split_segments(s, separator.as_char())? {
        let kind = classify(text)?;
        if kind == Kind::Any && out.last().is_some_and(|(_, k)| *k == Kind::Any) {
            continue;
        }
        if out.len() == max {
            return Err(PatternError::TooManySegments { max });
        }
        out.push((text, kind));
    }
    Ok(out)
}

/// Splits on `sep` outside braces. Returns an error for an unclosed `{`.
fn split_segments(s: &str, sep: char) -> Result<Vec<&str>, PatternError> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if depth > 0 => {
                chars.next();
            }
            '{' => depth += 1,
            // A stray `}` outside braces is ordinary text.
            '}' if depth > 0 => depth -= 1,
            c if c == sep && depth == 0 => {
                out.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(PatternError::UnclosedBrace);
    }
    out.push(&s[start..]);
    Ok(out)
}

/// Byte index of the `}` closing the `{` at `open`, honouring nesting and `\` escapes.
pub(super) fn find_close(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut chars = s[open..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits the inside of `{…}` into its name and optional regex.
pub(super) fn split_variable<'a>(
    inner: &'a str,
    segment: &str,
) -> Result<(&'a str, Option<&'a str>), PatternError> {
    let (name, regex) = match inner.split_once(':') {
        Some((name, regex)) => (name, Some(regex)),
        None => (inner, None),
    };
    if name.is_empty() || name.contains(['{', '}']) {
        return Err(PatternError::BadVariable {
            segment: segment.into(),
        });
    }
    Ok((name, regex))
}

fn classify(seg: &str) -> Result<Kind, PatternError> {
    match seg {
        "*" => return Ok(Kind::One),
        "**" | "#" => return Ok(Kind::Any),
        _ => {}
    }
    if is_literal(seg) {
        return Ok(Kind::Literal);
    }
    let mut whole_plain_variable = false;
    let mut has_variable = false;
    let mut i = 0;
    while let Some(c) = seg[i..].chars().next() {
        match c {
            '{' => {
                let close = find_close(seg, i).ok_or(PatternError::UnclosedBrace)?;
                let (_, regex) = split_variable(&seg[i + 1..close], seg)?;
                whole_plain_variable = i == 0 && close == seg.len() - 1 && regex.is_none();
                has_variable = true;
                i = close + 1;
            }
            '#' => {
                return Err(PatternError::MisplacedHash {
                    segment: seg.into(),
                });
            }
            c => i += c.len_utf8(),
        }
    }
    Ok(match (whole_plain_variable, has_variable) {
        (true, _) => Kind::One,
        (false, true) => Kind::Regex,
        (false, false) => Kind::Glob,
    })
}

pub(super) fn build_segment(
    text: &str,
    kind: Kind,
    limits: &PatternLimits,
) -> Result<Segment, PatternError> {
    Ok(match kind {
        Kind::Literal => Segment::Literal(text.into()),
        Kind::One => Segment::One,
        Kind::Any => Segment::Any,
        Kind::Glob => Segment::Glob(Glob::new(text)),
        Kind::Regex => Segment::Regex(SegmentRegex {
            source: text.into(),
            regex: compile_segment(text, limits)?,
        }),
    })
}

/// Translates a regex segment (`{id:\d+}`, `{a}-{b}`, `v{n:\d}*`) into one anchored regex.
fn compile_segment(seg: &str, limits: &PatternLimits) -> Result<Regex, PatternError> {
    let invalid = |reason: String| PatternError::InvalidRegex {
        segment: seg.into(),
        reason,
    };
    let mut re = String::from("^(?:");
    let mut i = 0;
    while let Some(c) = seg[i..].chars().next() {
        match c {
            '{' => {
                let close = find_close(seg, i).ok_or(PatternError::UnclosedBrace)?;
                match split_variable(&seg[i + 1..close], seg)?.1 {
                    // `(?s)`: a segment may hold a newline (an escaped header value).
                    None => re.push_str("(?s:.*)"),
                    Some(user) => {
                        // Parsed alone first, so that an unbalanced `a)|(b` cannot escape the
                        // group and the anchors around it.
                        regex_syntax::Parser::new()
                            .parse(user)
                            .map_err(|e| invalid(e.to_string()))?;
                        re.push_str("(?:");
                        re.push_str(user);
                        re.push(')');
                    }
                }
                i = close + 1;
                continue;
            }
            '*' => re.push_str("(?s:.*)"),
            '?' => re.push_str("(?s:.)"),
            c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
        i += c.len_utf8();
    }
    re.push_str(")$");
    RegexBuilder::new(&re)
        .size_limit(limits.regex_size_limit)
        .dfa_size_limit(limits.regex_size_limit)
        .build()
        .map_err(|e| invalid(e.to_string()))
}
