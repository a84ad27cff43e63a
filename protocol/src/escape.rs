//! Header escaping per version (spec "Value Encoding").
//!
//! 1.2 escapes `\r`, `\n`, `:` and `\` as `\r`, `\n`, `\c`, `\\`; 1.1 has no `\r`; 1.0 and the
//! CONNECT/CONNECTED frames of every version have no escaping at all.
//!
//! No version can carry a NUL in a header (the parser refuses it: a peer would read it as the
//! end of the frame), so the encoder never writes one, nor a raw CR or LF: what a frame's
//! escaping cannot represent is written as a space.

use bytes::{BufMut, BytesMut};

use crate::{ParseError, Version};

/// How names and values are written and read for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escaping {
    V1_2,
    /// 1.2 without `\r`: when encoding, a CR is written as a space, since a raw one could end
    /// the line for a lenient reader (or, at the end of a value, be read as part of CRLF).
    V1_1,
    /// No escaping. When encoding, characters that cannot be represented raw (CR and LF
    /// anywhere, `:` in a name) are written as a space: passing them would let a header value
    /// inject headers or frames into a 1.0 peer's stream.
    None,
}

impl Escaping {
    pub(crate) fn for_frame(escapes: bool, version: Version) -> Escaping {
        match (escapes, version) {
            (false, _) | (_, Version::V1_0) => Escaping::None,
            (true, Version::V1_1) => Escaping::V1_1,
            (true, Version::V1_2) => Escaping::V1_2,
        }
    }
}

/// Decodes one raw name or value into `out`; an escape the version does not define is an
/// error (spec: "MUST be treated as a fatal protocol error"). UTF-8 is the caller's to check.
pub(crate) fn unescape_into(
    out: &mut Vec<u8>,
    raw: &[u8],
    escaping: Escaping,
) -> Result<(), ParseError> {
    if escaping == Escaping::None {
        out.extend_from_slice(raw);
        return Ok(());
    }
    let mut rest = raw;
    while let Some(at) = memchr::memchr(b'\\', rest) {
        out.extend_from_slice(&rest[..at]);
        let decoded = match (rest.get(at + 1), escaping) {
            (Some(b'n'), _) => b'\n',
            (Some(b'c'), _) => b':',
            (Some(b'\\'), _) => b'\\',
            (Some(b'r'), Escaping::V1_2) => b'\r',
            (Some(&other), _) => {
                return Err(ParseError::InvalidEscape {
                    escape: char::from(other),
                });
            }
            (None, _) => return Err(ParseError::InvalidEscape { escape: ' ' }),
        };
        out.push(decoded);
        rest = &rest[at + 2..];
    }
    out.extend_from_slice(rest);
    Ok(())
}

/// Which part of a header is written: only names may not contain a raw `:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Name,
    Value,
}

/// Writes one name or value with the escaping of `escaping`; a NUL, and a CR or LF that the
/// escaping cannot represent, become spaces (see the module documentation).
pub(crate) fn escape_into(out: &mut BytesMut, text: &str, escaping: Escaping, part: Part) {
    let bytes = text.as_bytes();
    if !needs_escaping(bytes) {
        out.put_slice(bytes);
        return;
    }
    for &b in bytes {
        match (escaping, b) {
            (Escaping::V1_2, b'\r') => out.put_slice(b"\\r"),
            (Escaping::V1_2 | Escaping::V1_1, b'\n') => out.put_slice(b"\\n"),
            (Escaping::V1_2 | Escaping::V1_1, b':') => out.put_slice(b"\\c"),
            (Escaping::V1_2 | Escaping::V1_1, b'\\') => out.put_slice(b"\\\\"),
            (_, 0) | (Escaping::V1_1 | Escaping::None, b'\r') | (Escaping::None, b'\n') => {
                out.put_u8(b' ');
            }
            (Escaping::None, b':') if part == Part::Name => out.put_u8(b' '),
            _ => out.put_u8(b),
        }
    }
}

fn needs_escaping(bytes: &[u8]) -> bool {
    memchr::memchr3(b'\r', b'\n', b':', bytes).is_some()
        || memchr::memchr2(b'\\', 0, bytes).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unescape(raw: &str, escaping: Escaping) -> Result<String, ParseError> {
        let mut out = Vec::new();
        unescape_into(&mut out, raw.as_bytes(), escaping)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn escape(text: &str, escaping: Escaping, part: Part) -> String {
        let mut out = BytesMut::new();
        escape_into(&mut out, text, escaping, part);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn v1_2_defines_four_escapes() {
        assert_eq!(
            unescape(r"a\r\n\c\\b", Escaping::V1_2).unwrap(),
            "a\r\n:\\b"
        );
        assert_eq!(
            escape("a\r\n:\\b", Escaping::V1_2, Part::Value),
            r"a\r\n\c\\b"
        );
    }

    #[test]
    fn v1_1_has_no_carriage_return_escape() {
        assert_eq!(unescape(r"a\n\c\\", Escaping::V1_1).unwrap(), "a\n:\\");
        assert_eq!(
            unescape(r"\r", Escaping::V1_1),
            Err(ParseError::InvalidEscape { escape: 'r' })
        );
        assert_eq!(escape("a\rb", Escaping::V1_1, Part::Value), "a b");
    }

    #[test]
    fn undefined_escape_is_an_error() {
        // Spec "Value Encoding": undefined escapes such as \t are fatal.
        assert_eq!(
            unescape(r"a\tb", Escaping::V1_2),
            Err(ParseError::InvalidEscape { escape: 't' })
        );
        assert!(unescape("trailing\\", Escaping::V1_2).is_err());
    }

    #[test]
    fn no_escaping_keeps_backslashes_literal() {
        // Spec: CONNECT/CONNECTED headers and 1.0 frames are not decoded.
        assert_eq!(unescape(r"a\tb\n", Escaping::None).unwrap(), r"a\tb\n");
    }

    #[test]
    fn unrepresentable_characters_become_spaces_without_escaping() {
        assert_eq!(escape("a\nb:c", Escaping::None, Part::Value), "a b:c");
        assert_eq!(escape("a:b\r", Escaping::None, Part::Name), "a b ");
    }

    #[test]
    fn nul_becomes_a_space_in_every_version() {
        for escaping in [Escaping::V1_2, Escaping::V1_1, Escaping::None] {
            for part in [Part::Name, Part::Value] {
                assert_eq!(escape("y\0ERROR", escaping, part), "y ERROR");
            }
        }
    }
}
