//! Property tests: encoding then decoding gives the frame back in every version, whatever the
//! split of the byte stream and with heart-beats between frames; arbitrary bytes never make
//! the parser or the decoder panic or buffer past the frame limit.

mod common;

use bytes::{Bytes, BytesMut};
use common::{
    assert_re_encodes, decode_checked, decode_chunks, decode_one, decode_split, limited, options,
    parse_one, parse_stream,
};
use herald_protocol::{Command, Decoded, Frame, Limits, Version, encode, encode_to_bytes};
use proptest::prelude::*;
use proptest::sample::{Index, select};

/// Characters rich in what framing and escaping care about, plus anything at all.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => select(vec![
            ':', '\n', '\r', '\\', ' ', '\0', 'a', 'b', 'c', 'n', 'r', 't', '-', '0', 'é', '€',
            '\u{1F600}',
        ]),
        1 => any::<char>(),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(text_char(), 0..=max).prop_map(|chars| chars.into_iter().collect())
}

/// Turns a generated header into one that a `command` frame of `version` can carry, so that
/// `decode(encode(f)) == f` is a fair expectation:
///
/// - Without escaping (all of 1.0, and CONNECT/CONNECTED/STOMP in every version) a raw CR or
///   LF would end the line and a raw `:` in a name would end the name; the encoder writes
///   them as spaces (see `v1_0_encoding_cannot_inject_headers` in rules.rs), so they cannot
///   round-trip and are dropped here.
/// - 1.1 has no `\r` escape, and the encoder writes a CR as a space rather than raw: dropped.
/// - No version can carry a NUL in a header (the encoder writes a space): dropped.
/// - A name must not be empty (`:value` is a malformed header line) and must not be
///   `content-length`, which is framing: the encoder derives it from the body and the parser
///   consumes it.
fn representable(
    version: Version,
    command: Command,
    mut name: String,
    mut value: String,
) -> (String, String) {
    name.retain(|c| c != '\0');
    value.retain(|c| c != '\0');
    if !command.escapes_headers(version) {
        name.retain(|c| !matches!(c, '\r' | '\n' | ':'));
        value.retain(|c| !matches!(c, '\r' | '\n'));
    } else if version == Version::V1_1 {
        name.retain(|c| c != '\r');
        value.retain(|c| c != '\r');
    }
    if name.is_empty() {
        name.push('h');
    }
    if name == "content-length" {
        name.push('2');
    }
    (name, value)
}

fn body_byte() -> impl Strategy<Value = u8> {
    prop_oneof![select(vec![0u8, b'\n', b'\r', b':', b'\\']), any::<u8>(),]
}

/// Any command, 0–8 headers, and a body only on SEND, MESSAGE and ERROR.
fn frame(version: Version) -> impl Strategy<Value = Frame> {
    (
        select(Command::ALL.to_vec()),
        prop::collection::vec((text(8), text(12)), 0..=8),
        prop::collection::vec(body_byte(), 0..48),
    )
        .prop_map(move |(command, headers, body)| {
            let mut frame = Frame::new(command);
            for (name, value) in headers {
                let (name, value) = representable(version, command, name, value);
                frame.headers.push(&name, &value);
            }
            if command.may_have_body() {
                frame.body = Bytes::from(body);
            }
            frame
        })
}

fn version() -> impl Strategy<Value = Version> {
    select(Version::ALL.to_vec())
}

fn versioned_frame() -> impl Strategy<Value = (Version, Frame)> {
    version().prop_flat_map(|v| (Just(v), frame(v)))
}

/// Zero or more heart-beat EOLs.
fn eols() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(select(vec![&b"\n"[..], &b"\r\n"[..]]), 0..4).prop_map(|r| r.concat())
}

fn splits(len: usize, indices: &[Index]) -> Vec<usize> {
    indices.iter().map(|i| i.index(len + 1)).collect()
}

/// Small limits, so that arbitrary input reaches every limit.
fn small_limits() -> impl Strategy<Value = Limits> {
    (8usize..96, 0usize..6, 1usize..48, 0usize..64).prop_map(|(frame, headers, line, body)| {
        Limits {
            max_frame_bytes: frame,
            max_headers: headers,
            max_header_line_bytes: line,
            max_body_bytes: body,
        }
    })
}

/// Byte soup built from the pieces of STOMP frames, so random input gets past the command
/// line and into headers, escapes, content-length and bodies.
fn stomp_soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens: Vec<&'static [u8]> = vec![
        b"SEND",
        b"MESSAGE",
        b"SUBSCRIBE",
        b"CONNECT",
        b"ERROR",
        b"ACK",
        b"send",
        b"\n",
        b"\n",
        b"\n",
        b"\r\n",
        b"\r",
        b":",
        b":",
        b"\\",
        b"\\n",
        b"\\c",
        b"\\r",
        b"\\t",
        b"\0",
        b"\0",
        b"content-length:",
        b"content-length:",
        b"3",
        b"0",
        b"12",
        b"-1",
        b"a",
        b"xyz",
        b" ",
        b"\xff",
        "é".as_bytes(),
        // Pieces of multi-byte characters, so names and values can end inside one.
        b"\xc6",
        b"\x88",
        b"\xe2\x82",
        b"\xac",
        b"CONNECT\naccept-version:1.2\n",
        b"SEND\ndestination:/topic/a\n",
    ];
    prop::collection::vec(
        prop_oneof![
            4 => select(tokens).prop_map(|t| t.to_vec()),
            1 => any::<u8>().prop_map(|b| vec![b]),
        ],
        0..64,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Frames whose header lines are made of the pieces header decoding cares about: escapes,
/// colons, CR, NUL, and parts of multi-byte characters; under every command, CONNECT included.
fn frame_soup() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"a",
        b"b",
        b":",
        b":",
        b"\\n",
        b"\\c",
        b"\\r",
        b"\\t",
        b"\\",
        b"\0",
        b"\r",
        b" ",
        b"\xc6",
        b"\x88",
        b"\xe2\x82",
        b"\xac",
        "é".as_bytes(),
        b"content-length",
        b"0",
    ];
    let line = prop::collection::vec(select(pieces), 1..6).prop_map(|p| p.concat());
    (
        select(Command::ALL.to_vec()),
        prop::collection::vec(line, 0..4),
        prop::collection::vec(body_byte(), 0..8),
    )
        .prop_map(|(command, lines, body)| {
            let mut frame = format!("{command}\n").into_bytes();
            for line in lines {
                frame.extend_from_slice(&line);
                frame.push(b'\n');
            }
            frame.push(b'\n');
            if command.may_have_body() {
                frame.extend(body.into_iter().filter(|&b| b != 0));
            }
            frame.push(0);
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `decode(encode(f)) == f` for every version, through `parse` and through a `Decoder`,
    /// and `encode` appends exactly what `encode_to_bytes` returns.
    #[test]
    fn encode_then_decode_is_identity((version, frame) in versioned_frame()) {
        let wire = encode_to_bytes(&frame, version);
        prop_assert_eq!(decode_one(&wire, &options(version)), frame.clone());
        let (parsed, consumed) = parse_one(&wire, &options(version));
        prop_assert_eq!(parsed, frame.clone());
        prop_assert_eq!(consumed, wire.len());

        let mut out = BytesMut::from(&b"prefix"[..]);
        encode(&frame, version, &mut out);
        prop_assert_eq!(&out[..6], b"prefix");
        prop_assert_eq!(&out[6..], &wire[..]);
    }

    /// Wherever the byte stream is cut, the decoder returns the same frame and nothing else.
    #[test]
    fn any_split_points_give_the_same_frame(
        (version, frame) in versioned_frame(),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let wire = encode_to_bytes(&frame, version);
        let outcome = decode_split(&wire, &options(version), &splits(wire.len(), &cuts));
        prop_assert_eq!(outcome.items, vec![Decoded::Frame(frame)]);
        prop_assert_eq!(outcome.end, Ok(0));
    }

    /// One byte at a time the decoder agrees with `parse` at every step (see
    /// `common::decode_checked`) and ends with the frame.
    #[test]
    fn byte_by_byte_decoding_agrees_with_parse((version, frame) in versioned_frame()) {
        let wire = encode_to_bytes(&frame, version);
        let outcome = decode_checked(&wire, &options(version));
        prop_assert_eq!(outcome.items, vec![Decoded::Frame(frame)]);
        prop_assert_eq!(outcome.end, Ok(0));
    }

    /// Several frames with heart-beat EOLs before, between and after them: in one buffer they
    /// decode to exactly that sequence (one heart-beat per run of EOLs), and cut anywhere they
    /// decode to the same frames.
    #[test]
    fn frames_with_heart_beats_between_decode_in_order(
        (version, lead, frames) in version().prop_flat_map(|v| (
            Just(v),
            eols(),
            prop::collection::vec((frame(v), eols()), 1..5),
        )),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let opts = options(version);
        let mut wire = lead.clone();
        let mut expected = Vec::new();
        if !lead.is_empty() {
            expected.push(Decoded::HeartBeat);
        }
        for (frame, run) in &frames {
            wire.extend_from_slice(&encode_to_bytes(frame, version));
            wire.extend_from_slice(run);
            expected.push(Decoded::Frame(frame.clone()));
            if !run.is_empty() {
                expected.push(Decoded::HeartBeat);
            }
        }
        let whole = decode_chunks(&wire, &opts, wire.len());
        prop_assert_eq!(&whole.items, &expected);
        prop_assert_eq!(&whole.end, &Ok(0));
        prop_assert_eq!(&parse_stream(&wire, &opts), &whole);

        let cut = decode_split(&wire, &opts, &splits(wire.len(), &cuts));
        let only_frames: Vec<Frame> = frames.into_iter().map(|(f, _)| f).collect();
        prop_assert_eq!(cut.frames(), only_frames);
        prop_assert_eq!(cut.end, Ok(0));
    }

    /// Arbitrary bytes never panic `parse` or the `Decoder`; fed one byte at a time the decoder
    /// agrees with `parse`, never waits with more than `max_frame_bytes` buffered, and every
    /// frame it returns is within the limits.
    #[test]
    fn arbitrary_bytes_stay_within_limits(
        input in prop::collection::vec(any::<u8>(), 0..200),
        limits in small_limits(),
        version in version(),
    ) {
        let opts = limited(version, limits);
        let whole = parse_stream(&input, &opts);
        prop_assert_eq!(&decode_chunks(&input, &opts, input.len()), &whole);
        decode_checked(&input, &opts);
        decode_chunks(&input, &opts, 7);
    }

    /// The same with input made of STOMP pieces, which gets much further into the parser.
    #[test]
    fn stomp_like_bytes_stay_within_limits(
        input in stomp_soup(),
        limits in small_limits(),
        version in version(),
    ) {
        let opts = limited(version, limits);
        let whole = parse_stream(&input, &opts);
        prop_assert_eq!(&decode_chunks(&input, &opts, input.len()), &whole);
        decode_checked(&input, &opts);
        decode_chunks(&input, &opts, 7);
        // And with default limits, where the frames are usually complete.
        let opts = options(version);
        prop_assert_eq!(&decode_chunks(&input, &opts, input.len()), &parse_stream(&input, &opts));
        decode_checked(&input, &opts);
    }
}

proptest! {
    // More cases: few inputs are complete frames with a header cut inside a character.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Arbitrary bytes, or STOMP-like ones, cut at arbitrary points: the decoder never panics,
    /// returns the frames it returns in one piece, and every frame it returns re-encodes, in
    /// every version, to bytes that decode to the same frame (see `common::assert_re_encodes`).
    #[test]
    fn decoded_frames_re_encode_to_themselves(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200),
            stomp_soup(),
            frame_soup(),
        ],
        cuts in prop::collection::vec(any::<Index>(), 0..8),
        version in version(),
    ) {
        let opts = options(version);
        let whole = decode_chunks(&input, &opts, input.len());
        let cut = decode_split(&input, &opts, &splits(input.len(), &cuts));
        prop_assert_eq!(cut.frames(), whole.frames());
        prop_assert_eq!(cut.end.is_err(), whole.end.is_err());
        for frame in whole.frames() {
            assert_re_encodes(&frame);
        }
    }
}
