//! A message between nodes as NATS carries it: subject (see `subject.rs`), headers, payload.
//!
//! NATS headers (docs/cluster.md, "Headers"):
//! - `Herald-Message-Id`: the publishing node's message id, which every node delivers;
//! - `Herald-Destination`: for user and session messages, the destination after the user
//!   prefix (`/queue/x`); a topic's destination is its subject, unless that would be too
//!   long and the message goes on the prefix's long subject (see `subject.rs`);
//! - `Herald-Session`: for session messages, the session id;
//! - `Herald-Seq`: `<origin>.<n>`, the publishing link (random per start) and the message's
//!   number in that link's publish order (see `order.rs`);
//! - `Herald-Header`, repeated: each STOMP header as `name:value`, in frame order. One NATS
//!   name for all of them, because a NATS header map keeps the order of a repeated name but
//!   not the order between names, and STOMP frames are ordered; and so that a STOMP header
//!   can never pass for one of Herald's.
//!
//! Escaping is reversible (`%XX`, see `escape.rs`): NATS values may not hold CR or LF, and
//! lose whitespace at either end (a line starting with whitespace continues the previous
//! one); names here never hold `:`. So in STOMP names `:`, whitespace and control characters
//! are escaped, in values CR, LF and a whitespace character at either end.
//!
//! On the way out, a message is encoded once into one buffer (the link's outbox holds it,
//! see `link.rs`); the publisher turns it into what the NATS client takes, the body a slice
//! of that buffer. On the way in, the body is the NATS payload as received.

use std::borrow::Cow;

use async_nats::{HeaderMap, HeaderName, Subject};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use herald_protocol::Headers;

use super::escape::{Sink, escape_char, escape_into, unescape};
use super::order::Seq;
use super::subject::{MAX_SUBJECT_LEN, Subjects};
use crate::routing::cluster::{Audience, Crossing};

/// The header names, by their code in an encoded message.
const NAMES: [&str; 5] = [
    "Herald-Message-Id",
    "Herald-Destination",
    "Herald-Session",
    "Herald-Header",
    "Herald-Seq",
];
const MESSAGE_ID: u8 = 0;
const DESTINATION: u8 = 1;
const SESSION: u8 = 2;
const HEADER: u8 = 3;
const SEQ: u8 = 4;

/// A header name without allocating (a `&str` key would be copied at every lookup).
fn name(code: u8) -> HeaderName {
    HeaderName::from_static(NAMES[usize::from(code)])
}

/// Writes a header value: `%`, CR and LF escaped, and the first and last character if they
/// are whitespace (what the receiving client trims stops there). Anything else, tabs and
/// inner whitespace included, passes as is, so a value grows only by what NATS forbids (the
/// link checks the size after escaping, see [`nats_size`]).
fn escape_value(out: &mut impl Sink, value: &str) {
    let mut chars = value.char_indices();
    let first = chars.next().filter(|(_, c)| c.is_whitespace());
    let last = chars.next_back().filter(|(_, c)| c.is_whitespace());
    let start = first.map_or(0, |(_, c)| c.len_utf8());
    let end = last.map_or(value.len(), |(i, _)| i);
    if let Some((_, c)) = first {
        escape_char(out, c);
    }
    escape_into(out, &value[start..end], |c| matches!(c, '\r' | '\n'));
    if let Some((_, c)) = last {
        escape_char(out, c);
    }
}

/// Writes one STOMP header as a `Herald-Header` value.
fn escape_header(out: &mut impl Sink, name: &str, value: &str) {
    escape_into(out, name, |c| {
        c == ':' || c.is_whitespace() || c.is_control()
    });
    out.put(":");
    escape_value(out, value);
}

/// Why a message cannot go to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsent {
    /// A topic destination without a broadcast prefix.
    NotATopic,
    /// Its user or node subject is longer than [`MAX_SUBJECT_LEN`].
    SubjectTooLong,
}

/// Encodes a message for the other nodes. Layout: subject and header block, each after its
/// `u32` length, then the body.
pub(crate) fn encode(subjects: &Subjects, message: &Crossing<'_>) -> Result<Bytes, Unsent> {
    let text: usize = message
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 8)
        .sum();
    let mut buf = BytesMut::with_capacity(
        message.destination.len() * 2 + message.message_id.len() + text + message.body.len() + 64,
    );
    let subject = buf.len();
    buf.put_u32(0);
    match message.audience {
        Audience::Topic => {
            if !subjects.write_topic(&mut buf, message.destination) {
                return Err(Unsent::NotATopic);
            }
        }
        Audience::User { name } => subjects.write_user(&mut buf, name),
        Audience::Session { node, .. } => subjects.write_node(&mut buf, node),
    }
    // A topic too long for a subject goes on its prefix's long subject, named in a header.
    let mut destination_header = message.audience != Audience::Topic;
    if buf.len() - subject - 4 > MAX_SUBJECT_LEN {
        if message.audience != Audience::Topic {
            return Err(Unsent::SubjectTooLong);
        }
        buf.truncate(subject + 4);
        subjects.write_long_topic(&mut buf, message.destination);
        destination_header = true;
    }
    patch_length(&mut buf, subject);
    let block = buf.len();
    buf.put_u32(0);
    put_entry(&mut buf, MESSAGE_ID, |out| {
        escape_value(out, message.message_id)
    });
    if let Audience::Session { session, .. } = message.audience {
        put_entry(&mut buf, SESSION, |out| escape_value(out, session));
    }
    if destination_header {
        put_entry(&mut buf, DESTINATION, |out| {
            escape_value(out, message.destination);
        });
    }
    for (name, value) in message.headers.iter() {
        put_entry(&mut buf, HEADER, |out| escape_header(out, name, value));
    }
    patch_length(&mut buf, block);
    buf.extend_from_slice(message.body);
    Ok(buf.freeze())
}

/// Writes the length of what follows the `u32` at `at` into it.
fn patch_length(buf: &mut BytesMut, at: usize) {
    let len = u32::try_from(buf.len() - at - 4).unwrap_or(u32::MAX);
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_entry(buf: &mut BytesMut, code: u8, write: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(code);
    let at = buf.len();
    buf.put_u32(0);
    write(buf);
    patch_length(buf, at);
}

/// An encoded message ready for the NATS client.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub subject: Subject,
    pub headers: HeaderMap,
    pub payload: Bytes,
    /// Bytes NATS counts against its `max_payload`: header block and payload.
    pub size: usize,
}

/// Longest `Herald-Seq` value: 16 hex digits, `.`, a `u64`.
const SEQ_LEN: usize = 16 + 1 + 20;

/// The `Herald-Seq` value of `seq`: the origin as 16 hex digits, `.`, the number.
pub(crate) fn seq_value(seq: Seq) -> String {
    use std::fmt::Write;
    let mut value = String::with_capacity(SEQ_LEN);
    let _ = write!(value, "{:016x}.", seq.origin);
    value.push_str(itoa::Buffer::new().format(seq.n));
    value
}

/// A message's `Herald-Seq`; `None` if it has none or not one a link wrote.
pub(crate) fn seq(map: &HeaderMap) -> Option<Seq> {
    let (origin, n) = map.get(name(SEQ))?.as_str().split_once('.')?;
    // `from_str_radix` would also take a sign.
    if origin.len() != 16 || !origin.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // `parse` would also take a sign.
    if !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Seq {
        origin: u64::from_str_radix(origin, 16).ok()?,
        n: n.parse().ok()?,
    })
}

/// The bytes NATS will count against its `max_payload` for what [`encode`] wrote, once
/// [`decode`] has added its longest `Herald-Seq` value: header block and payload.
pub(crate) fn nats_size(encoded: &Bytes) -> usize {
    let mut record = encoded.clone();
    let (Some(_subject), Some(mut block)) = (take(&mut record), take(&mut record)) else {
        return encoded.len();
    };
    let mut size = 12 + NAMES[usize::from(SEQ)].len() + SEQ_LEN + 4 + record.len();
    while block.has_remaining() {
        let code = block.get_u8();
        let Some(value) = take(&mut block) else {
            break;
        };
        size += NAMES.get(usize::from(code)).map_or(0, |n| n.len()) + value.len() + 4;
    }
    size
}

/// Decodes what [`encode`] wrote, adding its `Herald-Seq` value (from [`seq_value`]);
/// `None` only for a buffer it did not write.
pub(crate) fn decode(mut record: Bytes, seq: String) -> Option<Outgoing> {
    let subject = Subject::from_utf8(take(&mut record)?).ok()?;
    let mut block = take(&mut record)?;
    let mut headers = HeaderMap::new();
    // `NATS/1.0\r\n`, each `name: value\r\n`, then `\r\n`.
    let mut size = 12;
    while block.has_remaining() {
        let code = block.get_u8();
        let value = take(&mut block)?;
        let value = std::str::from_utf8(&value).ok()?;
        let name_len = NAMES.get(usize::from(code))?.len();
        size += name_len + value.len() + 4;
        headers.append(name(code), value);
    }
    size += NAMES[usize::from(SEQ)].len() + seq.len() + 4;
    headers.append(name(SEQ), seq);
    Some(Outgoing {
        subject,
        headers,
        size: size + record.len(),
        payload: record,
    })
}

/// Splits off a part written after its `u32` length.
fn take(buf: &mut Bytes) -> Option<Bytes> {
    if buf.remaining() < 4 {
        return None;
    }
    let len = usize::try_from(buf.get_u32()).ok()?;
    (len <= buf.len()).then(|| buf.split_to(len))
}

/// A message from another node, read from its NATS headers.
#[derive(Debug)]
pub(crate) struct Incoming<'a> {
    pub message_id: Cow<'a, str>,
    /// The destination after the user prefix (user and session messages).
    pub destination: Option<Cow<'a, str>>,
    /// The session a session message is for.
    pub session: Option<Cow<'a, str>>,
    /// The STOMP headers, in frame order.
    pub headers: Headers,
}

/// Reads the headers of a message from another node; `None` if they were not written by a
/// Herald node (no message id, or a value that does not decode).
pub(crate) fn incoming(map: &HeaderMap) -> Option<Incoming<'_>> {
    let value = |code| map.get(name(code)).map(|v| unescape(v.as_str()));
    let message_id = value(MESSAGE_ID)??;
    let destination = value(DESTINATION).map(|v| v.ok_or(())).transpose().ok()?;
    let session = value(SESSION).map(|v| v.ok_or(())).transpose().ok()?;
    Some(Incoming {
        message_id,
        destination,
        session,
        headers: stomp_headers(map)?,
    })
}

/// Adds `headers` to `map` as `Herald-Header` values, in frame order (the queue store
/// carries STOMP headers this way too).
pub(crate) fn put_stomp_headers(map: &mut HeaderMap, headers: &Headers) {
    for (name, value) in headers.iter() {
        let mut entry = String::with_capacity(name.len() + value.len() + 1);
        escape_header(&mut entry, name, value);
        map.append(self::name(HEADER), entry);
    }
}

/// The STOMP headers of `map`'s `Herald-Header` values, in frame order; `None` if one does
/// not decode.
pub(crate) fn stomp_headers(map: &HeaderMap) -> Option<Headers> {
    let mut headers = Headers::with_capacity(
        map.get_all(name(HEADER)).count(),
        map.get_all(name(HEADER)).map(|v| v.as_str().len()).sum(),
    );
    for entry in map.get_all(name(HEADER)) {
        let (name, value) = entry.as_str().split_once(':')?;
        headers.push(&unescape(name)?, &unescape(value)?);
    }
    Some(headers)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::routing::Separator;

    const SEQ_7: Seq = Seq {
        origin: 0x0123_4567_89ab_cdef,
        n: 7,
    };

    #[test]
    fn a_seq_value_reads_back_and_anything_else_is_refused() {
        for origin in [0, 1, u64::MAX] {
            let seq = Seq { origin, n: 42 };
            let mut map = HeaderMap::new();
            map.insert(name(SEQ), seq_value(seq));
            assert_eq!(super::seq(&map), Some(seq));
        }
        for bad in [
            "",
            "1.2",
            "0123456789abcdeg.1",
            "0123456789abcdef.",
            "0123456789abcdef.-1",
            "+123456789abcdef.1",
        ] {
            let mut map = HeaderMap::new();
            map.insert(name(SEQ), bad);
            assert_eq!(super::seq(&map), None, "{bad}");
        }
        assert_eq!(super::seq(&HeaderMap::new()), None);
    }

    fn subjects() -> Subjects {
        Subjects::new("herald", &["/topic/".to_owned()], Separator::Slash)
    }

    /// What the receiving client makes of a header map: async-nats writes `name: value`
    /// lines and its parser splits at the first `:`, splits lines at LF (dropping a CR before
    /// it) and trims whitespace at both ends of the value (async-nats 0.46, connection.rs).
    fn through_the_wire(map: &HeaderMap) -> HeaderMap {
        let mut text = String::new();
        for (name, values) in map.iter() {
            for value in values {
                text.push_str(&format!("{name}: {value}\r\n"));
            }
        }
        let mut parsed = HeaderMap::new();
        for line in text.lines() {
            let (name, value) = line.split_once(':').expect("a line per header");
            assert!(
                !name.is_empty() && name.bytes().all(|b| (33..127).contains(&b) && b != b':'),
                "bad NATS header name {name:?}"
            );
            parsed.append(name, value.trim());
        }
        parsed
    }

    fn round_trip(message: &Crossing<'_>) -> (Outgoing, HeaderMap) {
        let record = encode(&subjects(), message).expect("encodable");
        let outgoing = decode(record, seq_value(SEQ_7)).expect("decodes");
        let received = through_the_wire(&outgoing.headers);
        (outgoing, received)
    }

    #[test]
    fn a_session_message_carries_its_session_and_destination() {
        let headers: Headers = [("content-type", "text/plain"), ("x", "1"), ("x", "2 ")]
            .into_iter()
            .collect();
        let body = Bytes::from_static(b"hello");
        let message = Crossing {
            audience: Audience::Session {
                node: "n2",
                session: "n2-00ff",
            },
            destination: "/queue/a b ",
            message_id: "n1-7",
            headers: &headers,
            body: &body,
        };
        let (outgoing, received) = round_trip(&message);
        assert_eq!(outgoing.subject.as_str(), "herald.n.n2");
        assert_eq!(outgoing.payload, body);
        let names: Vec<_> = outgoing
            .headers
            .iter()
            .map(|(n, _)| n.to_string())
            .collect();
        assert_eq!(names.len(), 5, "{names:?}");
        let incoming = incoming(&received).unwrap();
        assert_eq!(seq(&received), Some(SEQ_7));
        assert_eq!(incoming.message_id, "n1-7");
        assert_eq!(incoming.session.as_deref(), Some("n2-00ff"));
        assert_eq!(incoming.destination.as_deref(), Some("/queue/a b "));
        assert_eq!(incoming.headers, headers);
        let expected_size = 12
            + outgoing
                .headers
                .iter()
                .flat_map(|(n, vs)| {
                    vs.iter()
                        .map(move |v| n.to_string().len() + v.as_str().len() + 4)
                })
                .sum::<usize>()
            + body.len();
        assert_eq!(outgoing.size, expected_size);
    }

    #[test]
    fn topics_name_their_destination_only_when_too_long_for_a_subject() {
        let headers = Headers::new();
        let body = Bytes::new();
        let mut message = Crossing {
            audience: Audience::Topic,
            destination: "/topic/a",
            message_id: "m",
            headers: &headers,
            body: &body,
        };
        let (outgoing, received) = round_trip(&message);
        assert_eq!(outgoing.subject.as_str(), "herald.t./topic/.a");
        let read = incoming(&received).unwrap();
        assert_eq!((read.destination, read.session), (None, None));
        message.destination = "/elsewhere/a";
        assert_eq!(encode(&subjects(), &message), Err(Unsent::NotATopic));
        let long = format!("/topic/{}", " ".repeat(MAX_SUBJECT_LEN / 3));
        message.destination = &long;
        let (outgoing, received) = round_trip(&message);
        assert_eq!(outgoing.subject.as_str(), "herald.l./topic/");
        assert_eq!(
            incoming(&received).unwrap().destination.as_deref(),
            Some(&*long)
        );
        let name = "u".repeat(MAX_SUBJECT_LEN);
        message.audience = Audience::User { name: &name };
        assert_eq!(encode(&subjects(), &message), Err(Unsent::SubjectTooLong));
    }

    #[test]
    fn values_grow_only_by_what_nats_forbids() {
        let escaped = |value: &str| {
            let mut out = String::new();
            escape_value(&mut out, value);
            out
        };
        assert_eq!(escaped("\t".repeat(6_000).as_str()).len(), 6_000 + 4);
        assert_eq!(escaped("a\tb c"), "a\tb c");
        assert_eq!(escaped(" a b "), "%20a b%20");
        assert_eq!(escaped("\u{a0}"), "%C2%A0");
        assert_eq!(escaped("x\r\ny%"), "x%0D%0Ay%25");
    }

    #[test]
    fn foreign_messages_are_refused() {
        assert!(incoming(&HeaderMap::new()).is_none());
        let mut map = HeaderMap::new();
        map.insert(name(MESSAGE_ID), "m");
        map.insert(name(HEADER), "no colon");
        assert!(incoming(&map).is_none());
        map.insert(name(HEADER), "a:%zz");
        assert!(incoming(&map).is_none());
        assert!(decode(Bytes::from_static(b"\0\0\0\x09abc"), String::new()).is_none());
        map.insert(name(HEADER), "a:b");
        assert!(incoming(&map).is_some());
        map.insert(name(SEQ), "no number");
        assert!(
            seq(&map).is_none(),
            "read apart: the link counts it malformed"
        );
    }

    proptest! {
        /// Any `Herald-Seq` value (a NATS client can send anything): read when it is 16 hex
        /// digits, `.` and a decimal `u64`, refused otherwise, never a panic.
        #[test]
        fn any_seq_value_is_read_or_refused(
            value in "[0-9a-fA-F]{15,17}\\.[0-9+-]{0,21}|[0-9a-fA-F.+-]{0,40}|\\PC{0,40}"
        ) {
            let mut map = HeaderMap::new();
            map.insert(name(SEQ), value.as_str());
            let well_formed = value.split_once('.').is_some_and(|(origin, n)| {
                origin.len() == 16
                    && origin.bytes().all(|b| b.is_ascii_hexdigit())
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
                    && n.parse::<u64>().is_ok()
            });
            prop_assert_eq!(seq(&map).is_some(), well_formed, "{}", value);
        }
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{0,6}", "[ :%\\r\\n\\t\u{a0}\u{2028}a\\\\]{0,6}"]
    }

    proptest! {
        /// `nats_size`, which the link checks against `max_payload` before taking a
        /// message, is never below what NATS gets (the longest sequence number assumed), and
        /// equal with it.
        #[test]
        fn nats_size_is_what_nats_counts(
            entries in prop::collection::vec((text(), text()), 0..8),
            destination in text(),
            body_len in 0..64usize,
            seq in any::<u64>(),
        ) {
            let headers: Headers = entries.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body = Bytes::from(vec![b'x'; body_len]);
            let message = Crossing {
                audience: Audience::Session { node: "abcdefghijklmnop", session: "abcdefghijklmnop-0123456789abcdef" },
                destination: &format!("/queue/{destination}"),
                message_id: "abcdefghijklmnop-abcdef-18446744073709551615",
                headers: &headers,
                body: &body,
            };
            let encoded = encode(&subjects(), &message).unwrap();
            let predicted = nats_size(&encoded);
            let size = decode(encoded.clone(), seq_value(Seq { origin: 0x0123_4567_89ab_cdef, n: seq })).unwrap().size;
            prop_assert!(size <= predicted, "{size} > {predicted}");
            let longest = decode(encoded, seq_value(Seq { origin: u64::MAX, n: u64::MAX })).unwrap().size;
            prop_assert_eq!(longest, predicted);
        }

        /// Any headers, repeats and order included, and any user destination survive the
        /// trip through NATS; the body is the same bytes.
        #[test]
        fn headers_round_trip(
            entries in prop::collection::vec((text(), text()), 0..8),
            user in text(),
            destination in text(),
            message_id in text(),
            body in prop::collection::vec(any::<u8>(), 0..32),
        ) {
            let headers: Headers = entries.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
            let body = Bytes::from(body);
            let message = Crossing {
                audience: Audience::User { name: &user },
                destination: &destination,
                message_id: &message_id,
                headers: &headers,
                body: &body,
            };
            let (outgoing, received) = round_trip(&message);
            prop_assert_eq!(outgoing.subject.as_str(), subjects().user(&user));
            prop_assert_eq!(&outgoing.payload, &body);
            let incoming = incoming(&received).unwrap();
            prop_assert_eq!(&incoming.message_id, &message_id);
            prop_assert_eq!(incoming.destination.as_deref(), Some(destination.as_str()));
            prop_assert_eq!(incoming.headers, headers);
        }
    }
}
