//! An ordered header list: every entry is kept, the first of a repeated name wins on lookup.
//!
//! All names and values live in one `String` with an index beside it, so a parsed frame costs
//! two allocations whatever its header count.

use std::fmt;

/// Ordered STOMP headers. Spec "Repeated Header Entries": all entries are kept, and a lookup
/// returns the first one.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    entries: Vec<Entry>,
}

/// Byte offsets into `Headers::text`: name is `start..colon`, value is `colon..end`.
#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    colon: usize,
    end: usize,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Headers with room for `entries` entries holding `text_bytes` bytes of names and values.
    pub fn with_capacity(entries: usize, text_bytes: usize) -> Headers {
        Headers {
            text: String::with_capacity(text_bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// Appends an entry; an earlier entry of the same name keeps precedence.
    pub fn push(&mut self, name: &str, value: &str) {
        let start = self.text.len();
        self.text.push_str(name);
        let colon = self.text.len();
        self.text.push_str(value);
        self.entries.push(Entry {
            start,
            colon,
            end: self.text.len(),
        });
    }

    /// The value of the first entry named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The values of every entry named `name`, in frame order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every entry as `(name, value)`, in frame order, repeats included.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries
            .iter()
            .map(|e| (&self.text[e.start..e.colon], &self.text[e.colon..e.end]))
    }

    /// Number of entries, repeats included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Removes every entry named `name`; returns how many were removed.
    pub fn remove(&mut self, name: &str) -> usize {
        let before = self.entries.len();
        let text = &self.text;
        self.entries.retain(|e| &text[e.start..e.colon] != name);
        before - self.entries.len()
    }

    /// Replaces every entry named `name` by one entry at the end.
    pub fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.push(name, value);
    }
}

/// Builds [`Headers`] from raw bytes for the parser: names and values are decoded into one
/// byte buffer whose UTF-8 is checked once at the end instead of per name and value (escapes
/// are ASCII, so decoding cannot turn valid UTF-8 into invalid or back). Valid text is not
/// enough: a name may end inside a character that its value completes (`x\xc6` + `\x88y`),
/// so every boundary between names and values must also fall between characters.
pub(crate) struct HeadersBuilder {
    text: Vec<u8>,
    entries: Vec<Entry>,
}

impl HeadersBuilder {
    pub(crate) fn with_capacity(entries: usize, text_bytes: usize) -> HeadersBuilder {
        HeadersBuilder {
            text: Vec::with_capacity(text_bytes),
            entries: Vec::with_capacity(entries),
        }
    }

    /// The buffer that names and values are decoded into.
    pub(crate) fn text_mut(&mut self) -> &mut Vec<u8> {
        &mut self.text
    }

    /// Records the entry whose name runs from `start` to `colon` and whose value runs from
    /// `colon` to the current end of the text.
    pub(crate) fn commit_entry(&mut self, start: usize, colon: usize) {
        self.entries.push(Entry {
            start,
            colon,
            end: self.text.len(),
        });
    }

    /// The headers, or `None` when a name or a value on its own is not valid UTF-8.
    pub(crate) fn finish(self) -> Option<Headers> {
        let text = String::from_utf8(self.text).ok()?;
        // Whole text valid and every cut on a character boundary: each part is valid.
        let cuts_between_chars = self.entries.iter().all(|e| {
            text.is_char_boundary(e.start)
                && text.is_char_boundary(e.colon)
                && text.is_char_boundary(e.end)
        });
        cuts_between_chars.then_some(Headers {
            text,
            entries: self.entries,
        })
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> FromIterator<(&'a str, &'a str)> for Headers {
    fn from_iter<I: IntoIterator<Item = (&'a str, &'a str)>>(iter: I) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.push(name, value);
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_repeated_header_wins_and_all_are_kept() {
        // Spec "Repeated Header Entries": only the first is used; we still keep the rest.
        let h: Headers = [("foo", "World"), ("foo", "Hello"), ("bar", "")]
            .into_iter()
            .collect();
        assert_eq!(h.get("foo"), Some("World"));
        assert_eq!(h.get_all("foo").collect::<Vec<_>>(), ["World", "Hello"]);
        assert_eq!(h.get("bar"), Some(""));
        assert_eq!(h.get("baz"), None);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn remove_and_set() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(h.remove("a"), 2);
        assert_eq!(h.iter().collect::<Vec<_>>(), [("b", "2")]);
        h.set("b", "4");
        h.set("c", "5");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("b", "4"), ("c", "5")]);
    }

    #[test]
    fn equality_ignores_removed_text() {
        let mut a: Headers = [("x", "1"), ("y", "2")].into_iter().collect();
        a.remove("x");
        let b: Headers = [("y", "2")].into_iter().collect();
        assert_eq!(a, b);
    }
}
