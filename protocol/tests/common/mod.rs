//! Helpers shared by the integration tests: drive `parse` over a whole input, drive a `Decoder`
//! with chunks or explicit split points, and check that the decoder's shortcuts never disagree
//! with the parser.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use herald_protocol::{
    Decoded, Decoder, Frame, Limits, ParseError, ParseOptions, Parsed, Version, encode_to_bytes,
    parse,
};

pub fn options(version: Version) -> ParseOptions {
    ParseOptions {
        version,
        limits: Limits::DEFAULT,
    }
}

pub fn limited(version: Version, limits: Limits) -> ParseOptions {
    ParseOptions { version, limits }
}

/// What a byte stream decoded to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Frames and heart-beats, in order.
    pub items: Vec<Decoded>,
    /// `Ok(n)`: the input ended with `n` bytes of an unfinished frame (0: it ended cleanly).
    /// `Err`: the stream failed there.
    pub end: Result<usize, ParseError>,
}

impl Outcome {
    /// The frames only: how heart-beat runs are grouped depends on how the bytes arrived.
    pub fn frames(&self) -> Vec<Frame> {
        frames(&self.items)
    }
}

pub fn frames(items: &[Decoded]) -> Vec<Frame> {
    items
        .iter()
        .filter_map(|item| match item {
            Decoded::Frame(frame) => Some(frame.clone()),
            Decoded::HeartBeat => None,
        })
        .collect()
}

/// Runs [`parse`] over the whole input, frame after frame, copying the bodies.
pub fn parse_stream(input: &[u8], options: &ParseOptions) -> Outcome {
    let mut items = Vec::new();
    let mut at = 0;
    loop {
        let rest = &input[at..];
        match parse(rest, options) {
            Ok(Parsed::Frame(parsed)) => {
                assert!(parsed.consumed > 0 && parsed.consumed <= rest.len());
                assert!(
                    parsed.body.end < parsed.consumed,
                    "the NUL follows the body"
                );
                items.push(Decoded::Frame(Frame {
                    command: parsed.command,
                    headers: parsed.headers,
                    body: Bytes::copy_from_slice(&rest[parsed.body]),
                }));
                at += parsed.consumed;
            }
            Ok(Parsed::HeartBeat { consumed }) => {
                assert!(consumed > 0 && consumed <= rest.len());
                items.push(Decoded::HeartBeat);
                at += consumed;
            }
            Ok(Parsed::Incomplete(incomplete)) => {
                assert!(incomplete.needed > rest.len());
                return Outcome {
                    items,
                    end: Ok(rest.len()),
                };
            }
            Err(error) => {
                return Outcome {
                    items,
                    end: Err(error),
                };
            }
        }
    }
}

/// Feeds `input` to a fresh [`Decoder`] in pieces ending at `splits` (sorted, deduplicated
/// offsets; out-of-range ones are ignored), decoding everything available after each piece.
pub fn decode_split(input: &[u8], options: &ParseOptions, splits: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(*options);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut from = 0;
    let mut ends: Vec<usize> = splits
        .iter()
        .copied()
        .filter(|&s| s > 0 && s < input.len())
        .collect();
    ends.sort_unstable();
    ends.dedup();
    ends.push(input.len());
    for to in ends {
        buf.extend_from_slice(&input[from..to]);
        from = to;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        items,
                        end: Err(error),
                    };
                }
            }
        }
    }
    Outcome {
        items,
        end: Ok(buf.len()),
    }
}

/// Feeds `input` to a fresh [`Decoder`] `chunk` bytes at a time.
pub fn decode_chunks(input: &[u8], options: &ParseOptions, chunk: usize) -> Outcome {
    let chunk = chunk.max(1);
    let splits: Vec<usize> = (chunk..input.len()).step_by(chunk).collect();
    decode_split(input, options, &splits)
}

/// Feeds `input` one byte at a time to a [`Decoder`] and, before every `decode` call, asks
/// [`parse`] about the same buffer: the decoder's shortcuts (`needed`, the resumed NUL search)
/// must never change the answer. Also checks the limits: the buffer is never left waiting for
/// more bytes once it holds more than `max_frame_bytes`, and no frame breaks a limit.
pub fn decode_checked(input: &[u8], options: &ParseOptions) -> Outcome {
    let limits = options.limits;
    let mut decoder = Decoder::new(*options);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for &byte in input {
        buf.extend_from_slice(&[byte]);
        loop {
            let before = buf.clone();
            let expected = parse(&before, options);
            let got = decoder.decode(&mut buf);
            match (expected, got) {
                (Ok(Parsed::Incomplete(incomplete)), Ok(None)) => {
                    assert!(incomplete.needed > before.len(), "needed {incomplete:?}");
                    assert!(
                        incomplete.needed <= limits.max_frame_bytes.saturating_add(1),
                        "asks for {} bytes, limit {}",
                        incomplete.needed,
                        limits.max_frame_bytes
                    );
                    assert!(
                        buf.len() <= limits.max_frame_bytes,
                        "waiting with {} bytes buffered, limit {}: {:?}",
                        buf.len(),
                        limits.max_frame_bytes,
                        String::from_utf8_lossy(&buf)
                    );
                    break;
                }
                (Ok(Parsed::Frame(parsed)), Ok(Some(Decoded::Frame(frame)))) => {
                    assert!(parsed.consumed <= limits.max_frame_bytes, "{parsed:?}");
                    assert!(parsed.body.len() <= limits.max_body_bytes, "{parsed:?}");
                    assert!(parsed.headers.len() <= limits.max_headers, "{parsed:?}");
                    assert_eq!(frame.command, parsed.command);
                    assert_eq!(frame.headers, parsed.headers);
                    assert_eq!(&frame.body[..], &before[parsed.body.clone()]);
                    assert_eq!(buf.len(), before.len() - parsed.consumed);
                    items.push(Decoded::Frame(frame));
                }
                (Ok(Parsed::HeartBeat { consumed }), Ok(Some(Decoded::HeartBeat))) => {
                    assert_eq!(buf.len(), before.len() - consumed);
                    items.push(Decoded::HeartBeat);
                }
                (Err(expected), Err(got)) => {
                    assert_eq!(got, expected, "on {:?}", String::from_utf8_lossy(&before));
                    return Outcome {
                        items,
                        end: Err(got),
                    };
                }
                (expected, got) => panic!(
                    "decoder and parser disagree on {:?}: parse {expected:?}, decoder {got:?}",
                    String::from_utf8_lossy(&before)
                ),
            }
        }
    }
    Outcome {
        items,
        end: Ok(buf.len()),
    }
}

/// Decodes a buffer that must hold exactly one frame and nothing else.
pub fn decode_one(input: &[u8], options: &ParseOptions) -> Frame {
    let outcome = decode_chunks(input, options, input.len());
    match (outcome.items.as_slice(), &outcome.end) {
        ([Decoded::Frame(frame)], Ok(0)) => frame.clone(),
        _ => panic!(
            "expected one frame from {:?}, got {outcome:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Parses a buffer that must start with one complete frame; returns it and its length.
pub fn parse_one(input: &[u8], options: &ParseOptions) -> (Frame, usize) {
    match parse(input, options) {
        Ok(Parsed::Frame(parsed)) => (
            Frame {
                command: parsed.command,
                headers: parsed.headers,
                body: Bytes::copy_from_slice(&input[parsed.body]),
            },
            parsed.consumed,
        ),
        other => panic!(
            "expected a frame from {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Parses a buffer that must fail with an error at its start.
pub fn parse_err(input: &[u8], options: &ParseOptions) -> ParseError {
    match parse(input, options) {
        Err(error) => error,
        other => panic!(
            "expected an error from {:?}, got {other:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// Encodes `frame` for `version` and decodes it back with the same version.
pub fn round_trip(frame: &Frame, version: Version) -> Frame {
    decode_one(&encode_to_bytes(frame, version), &options(version))
}

/// The `(name, value)` pairs of a frame, owned, for exact comparisons.
pub fn header_list(frame: &Frame) -> Vec<(String, String)> {
    frame
        .headers
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Whether `version` can write every header of `frame` as it is: without escaping (1.0, and
/// CONNECT/CONNECTED/STOMP in every version) no CR or LF, nor `:` in a name; in 1.1 no CR
/// (it has no `\r` escape); never a NUL. The encoder writes what it cannot represent as
/// spaces.
pub fn representable(frame: &Frame, version: Version) -> bool {
    let escapes = frame.command.escapes_headers(version);
    frame.headers.iter().all(|(name, value)| {
        let bad = |c: char, in_name: bool| match c {
            '\0' => true,
            '\n' => !escapes,
            '\r' => !escapes || version == Version::V1_1,
            ':' => in_name && !escapes,
            _ => false,
        };
        !name.chars().any(|c| bad(c, true)) && !value.chars().any(|c| bad(c, false))
    })
}

/// Re-encodes a decoded `frame` in every version and decodes it back: always exactly one
/// frame with the same command, body and number of headers (nothing a header holds can end
/// a line or the frame early), and the very same frame wherever it is [`representable`].
/// The header lines hold no NUL and no CR at all: a reader that ends the frame at the first
/// NUL, or the line at a CR, must still see every header whole.
pub fn assert_re_encodes(frame: &Frame) {
    for version in Version::ALL {
        let wire = encode_to_bytes(frame, version);
        let head_end = wire
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("a blank line ends the headers");
        assert!(
            !wire[..head_end].iter().any(|&b| b == 0 || b == b'\r'),
            "{version}: NUL or CR in the header lines of {:?}",
            String::from_utf8_lossy(&wire)
        );
        let again = decode_one(&wire, &options(version));
        assert_eq!(
            (again.command, &again.body, again.headers.len()),
            (frame.command, &frame.body, frame.headers.len()),
            "{version}: {frame:?} re-encoded as {:?}",
            String::from_utf8_lossy(&wire)
        );
        if representable(frame, version) {
            assert_eq!(
                &again,
                frame,
                "{version}: {:?}",
                String::from_utf8_lossy(&wire)
            );
        }
    }
}
