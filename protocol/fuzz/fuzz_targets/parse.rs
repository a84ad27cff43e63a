//! Fuzzes the parser and decoder: no input may panic, every frame split anywhere decodes the
//! same, and every decoded frame re-encodes to bytes that decode to the same frame.
//!
//! Run: `cd protocol/fuzz && cargo +nightly fuzz run parse corpus/parse`

#![no_main]

use bytes::BytesMut;
use herald_protocol::{Decoded, Decoder, Limits, ParseOptions, Version, encode_to_bytes, parse};
use libfuzzer_sys::fuzz_target;

/// Small limits so that the limit paths are reached by short inputs.
const LIMITS: Limits = Limits {
    max_frame_bytes: 4096,
    max_headers: 16,
    max_header_line_bytes: 256,
    max_body_bytes: 2048,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
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
        // 1.2 can represent every header; 1.0 and 1.1 cannot (see the encoder's docs).
        let reencoded = encode_to_bytes(frame, Version::V1_2);
        let relaxed = ParseOptions {
            version: Version::V1_2,
            limits: Limits::DEFAULT,
        };
        let (again, error) = decode_all(&reencoded, reencoded.len(), relaxed);
        if version == Version::V1_2 {
            assert_eq!(error, None, "re-encoded frame failed: {reencoded:?}");
            assert_eq!(again, vec![Decoded::Frame(frame.clone())]);
        }
    }
});

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
