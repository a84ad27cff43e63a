//! Fuzzes the parser and decoder: no input may panic, every frame split anywhere decodes the
//! same, and every decoded frame re-encodes, in every version, to header lines free of NUL
//! and CR and to bytes that decode to one frame with as many headers, the same frame wherever
//! that version can represent it.
//!
//! The first byte picks the version (and so the header escaping), the chunk size, and a
//! command line put before the rest, so that most inputs reach the header decoding of
//! escaped frames and of CONNECT, whose headers are never escaped.
//!
//! Run: `cd protocol/fuzz && cargo +nightly fuzz run parse corpus/parse`

#![no_main]

use bytes::BytesMut;
use herald_protocol::{
    Decoded, Decoder, Frame, Limits, ParseOptions, Version, encode_to_bytes, parse,
};
use libfuzzer_sys::fuzz_target;

/// Small limits so that the limit paths are reached by short inputs.
const LIMITS: Limits = Limits {
    max_frame_bytes: 4096,
    max_headers: 16,
    max_header_line_bytes: 256,
    max_body_bytes: 2048,
};

/// Command lines put before the input: none, an escaped frame, and CONNECT.
const PREFIXES: [&[u8]; 4] = [b"", b"SEND\n", b"MESSAGE\n", b"CONNECT\n"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let input = &[PREFIXES[usize::from(selector / 48 % 4)], rest].concat()[..];
    let version = Version::ALL[usize::from(selector % 3)];
    let options = ParseOptions {
        version,
        limits: LIMITS,
    };
    let _ = parse(input, &options);

    let whole = decode_all(input, input.len().max(1), options);
    // The same bytes fed in small chunks must give the same frames, and fail if and only if
    // the whole input fails (which limit trips first may differ with the chunking).
    let chunk = usize::from(selector / 3 % 16) + 1;
    let chunked = decode_all(input, chunk, options);
    assert_eq!(chunked.0, whole.0);
    assert_eq!(chunked.1.is_some(), whole.1.is_some());

    for frame in whole.0.iter().filter_map(|d| match d {
        Decoded::Frame(f) => Some(f),
        Decoded::HeartBeat => None,
    }) {
        for version in Version::ALL {
            let reencoded = encode_to_bytes(frame, version);
            // A reader that ends the frame at the first NUL, or a line at a CR, must still see
            // every header whole.
            let head_end = reencoded
                .windows(2)
                .position(|w| w == b"\n\n")
                .expect("a blank line ends the headers");
            assert!(
                !reencoded[..head_end].iter().any(|&b| b == 0 || b == b'\r'),
                "{version}: NUL or CR in the header lines of {reencoded:?}"
            );
            let relaxed = ParseOptions {
                version,
                limits: Limits::DEFAULT,
            };
            let (again, error) = decode_all(&reencoded, reencoded.len(), relaxed);
            assert_eq!(
                error, None,
                "{version}: re-encoded frame failed: {reencoded:?}"
            );
            let [Decoded::Frame(again)] = &again[..] else {
                panic!("{version}: {frame:?} re-encoded as {reencoded:?} gave {again:?}");
            };
            assert_eq!(
                (again.command, &again.body, again.headers.len()),
                (frame.command, &frame.body, frame.headers.len()),
                "{version}: re-encoded as {reencoded:?}"
            );
            if representable(frame, version) {
                assert_eq!(again, frame, "{version}: re-encoded as {reencoded:?}");
            }
        }
    }
});

/// Whether `version` writes every header of `frame` as it is; the encoder writes what it
/// cannot represent (CR, LF and `:` in names without escaping, CR in 1.1, NUL anywhere) as
/// spaces.
fn representable(frame: &Frame, version: Version) -> bool {
    let escapes = frame.command.escapes_headers(version);
    let bad = |c: char, in_name: bool| match c {
        '\0' => true,
        '\n' => !escapes,
        '\r' => !escapes || version == Version::V1_1,
        ':' => in_name && !escapes,
        _ => false,
    };
    frame
        .headers
        .iter()
        .all(|(n, v)| !n.chars().any(|c| bad(c, true)) && !v.chars().any(|c| bad(c, false)))
}

/// Feeds `input` in chunks of `chunk` bytes; returns what was decoded and the first error.
fn decode_all(
    input: &[u8],
    chunk: usize,
    options: ParseOptions,
) -> (Vec<Decoded>, Option<herald_protocol::ParseError>) {
    let mut decoder = Decoder::new(options);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                // A run of EOLs may arrive as one heart-beat or several; count it once.
                Ok(Some(Decoded::HeartBeat)) if out.last() == Some(&Decoded::HeartBeat) => {}
                Ok(Some(decoded)) => out.push(decoded),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
        // Bounded memory: the buffer never holds more than one frame's limit unparsed.
        assert!(buf.len() <= LIMITS.max_frame_bytes + chunk);
    }
    (out, None)
}
