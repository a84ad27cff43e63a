//! Reversible percent escaping, shared by subject tokens and headers: a character that may
//! not appear where it is written becomes `%XX` per UTF-8 byte, and `%` itself always does,
//! so decoding is unambiguous. Each caller says which characters its place forbids.

use std::borrow::Cow;

use bytes::BytesMut;

/// Where escaped text is written: a `String`, or the buffer of an outgoing message.
pub(crate) trait Sink {
    fn put(&mut self, text: &str);
}

impl Sink for String {
    fn put(&mut self, text: &str) {
        self.push_str(text);
    }
}

impl Sink for BytesMut {
    fn put(&mut self, text: &str) {
        self.extend_from_slice(text.as_bytes());
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Writes `text`, escaping `%` and every character `forbidden` names.
pub(crate) fn escape_into(out: &mut impl Sink, text: &str, forbidden: impl Fn(char) -> bool) {
    let mut plain = 0;
    for (i, c) in text.char_indices() {
        if c == '%' || forbidden(c) {
            out.put(&text[plain..i]);
            escape_char(out, c);
            plain = i + c.len_utf8();
        }
    }
    out.put(&text[plain..]);
}

/// Writes `c` as `%XX` per UTF-8 byte.
pub(crate) fn escape_char(out: &mut impl Sink, c: char) {
    let mut utf8 = [0; 4];
    for &byte in c.encode_utf8(&mut utf8).as_bytes() {
        let hex = [
            b'%',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ];
        // Three ASCII bytes.
        out.put(std::str::from_utf8(&hex).unwrap_or_default());
    }
}

/// Decodes `%XX` sequences; `None` if one is malformed or the bytes are not UTF-8. Borrows
/// when there is nothing to decode (the common case).
pub(crate) fn unescape(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('%') {
        return Some(Cow::Borrowed(text));
    }
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, ..] = after else { return None };
            bytes.push(hex_value(*high)? << 4 | hex_value(*low)?);
            rest = &after[2..];
        } else {
            bytes.push(byte);
            rest = after;
        }
    }
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn escaped(text: &str, forbidden: impl Fn(char) -> bool) -> String {
        let mut out = String::new();
        escape_into(&mut out, text, forbidden);
        out
    }

    #[test]
    fn escapes_the_escape_char_and_what_the_caller_forbids() {
        assert_eq!(
            escaped("a.b%c é", |c| c == '.' || c == 'é'),
            "a%2Eb%25c %C3%A9"
        );
        assert_eq!(unescape("a%2Eb%25c %C3%A9").unwrap(), "a.b%c é");
        assert!(matches!(unescape("plain"), Some(Cow::Borrowed("plain"))));
    }

    #[test]
    fn malformed_escapes_are_refused() {
        for bad in ["%", "%4", "%zz", "a%2", "%C3"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(text in "\\PC*|[%. a\\u{e9}\\r\\n]*") {
            let out = escaped(&text, |c| c.is_whitespace() || c == '.');
            prop_assert!(!out.contains([' ', '.', '\n']));
            prop_assert_eq!(unescape(&out).unwrap(), text);
        }
    }
}
