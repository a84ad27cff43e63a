//! A corpus of malformed inputs, each with the exact `ParseError` it must produce, run through
//! `parse` over the whole input and through a `Decoder` fed in chunks of 1, 7 and all bytes.
//! Every case breaks exactly one rule or limit, so the error does not depend on how the bytes
//! arrive. Also: no input panics, and no strict prefix of a valid frame is an error.

mod common;

use bytes::BytesMut;
use common::{decode_checked, decode_chunks, limited, options, parse_stream};
use herald_protocol::{
    Command, Decoded, Decoder, Limits, ParseError, ParseOptions, Parsed, Version, parse,
};

const V10: Version = Version::V1_0;
const V11: Version = Version::V1_1;
const V12: Version = Version::V1_2;
const MIB4: usize = 4 * 1024 * 1024;

struct Case {
    name: String,
    input: Vec<u8>,
    options: ParseOptions,
    /// Complete frames before the error.
    frames_before: usize,
    error: ParseError,
}

fn case(name: &str, version: Version, input: impl AsRef<[u8]>, error: ParseError) -> Case {
    Case {
        name: name.to_owned(),
        input: input.as_ref().to_vec(),
        options: options(version),
        frames_before: 0,
        error,
    }
}

fn with_limits(mut case: Case, limits: Limits) -> Case {
    case.options.limits = limits;
    case
}

fn after_frames(mut case: Case, frames: usize) -> Case {
    case.frames_before = frames;
    case
}

/// Default limits with one of them changed.
fn limits(frame: usize, headers: usize, line: usize, body: usize) -> Limits {
    Limits {
        max_frame_bytes: frame,
        max_headers: headers,
        max_header_line_bytes: line,
        max_body_bytes: body,
    }
}

fn repeat(byte: u8, n: usize) -> Vec<u8> {
    vec![byte; n]
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn corpus() -> Vec<Case> {
    use ParseError::*;
    let mut cases = vec![
        // Spec "Client Frames" / checklist 18: unknown commands.
        case("unknown command", V12, b"FOO\n\n\0", UnknownCommand),
        case(
            "lowercase command",
            V12,
            b"send\ndestination:/q\n\n\0",
            UnknownCommand,
        ),
        case(
            "mixed-case command",
            V12,
            b"Subscribe\nid:1\n\n\0",
            UnknownCommand,
        ),
        case(
            "abbreviated command",
            V12,
            b"SUB\nid:1\n\n\0",
            UnknownCommand,
        ),
        case(
            "command with trailing space",
            V12,
            b"SEND \n\n\0",
            UnknownCommand,
        ),
        case(
            "command with leading space",
            V12,
            b" SEND\n\n\0",
            UnknownCommand,
        ),
        // A CR that is not followed by LF is not an EOL, so it is part of the command name.
        case("CR inside command", V12, b"SE\rND\n\n\0", UnknownCommand),
        case(
            "two CRs after command",
            V12,
            b"SEND\r\r\n\n\0",
            UnknownCommand,
        ),
        case("NUL as command", V12, b"\0\n\n\0", UnknownCommand),
        case("non-UTF-8 command", V12, b"\xffSEND\n\n\0", UnknownCommand),
        case(
            "unknown command in 1.0",
            V10,
            b"PUBLISH\ndestination:/q\n\n\0",
            UnknownCommand,
        ),
        after_frames(
            case(
                "unknown command after a frame",
                V12,
                b"SEND\n\nok\0\nHELLO\n\n\0",
                UnknownCommand,
            ),
            1,
        ),
        // Spec "content-length": exactly that many octets, then a NUL (checklist 15).
        case(
            "content-length shorter than body",
            V12,
            b"SEND\ncontent-length:3\n\nabcd\0",
            MissingNul,
        ),
        case(
            "content-length body followed by LF",
            V12,
            b"SEND\ncontent-length:3\n\nabc\n\0",
            MissingNul,
        ),
        case(
            "zero content-length then a body",
            V12,
            b"SUBSCRIBE\ncontent-length:0\n\nx\0",
            MissingNul,
        ),
        case(
            "content-length body, no NUL in 1.0",
            V10,
            b"MESSAGE\ncontent-length:1\n\n\0x",
            MissingNul,
        ),
        // Spec "content-length" is an octet count over the body size limit: refused from the
        // headers alone, before any of the body arrives.
        with_limits(
            case(
                "content-length over body limit, headers only",
                V12,
                b"SEND\ncontent-length:17\n\n",
                BodyTooLarge { limit: 16 },
            ),
            limits(MIB4, 64, 8192, 16),
        ),
        with_limits(
            case(
                "content-length over body limit, with body",
                V12,
                cat(&[b"SEND\ncontent-length:17\n\n", &repeat(b'b', 17), b"\0"]),
                BodyTooLarge { limit: 16 },
            ),
            limits(MIB4, 64, 8192, 16),
        ),
        case(
            "content-length usize::MAX",
            V12,
            format!("SEND\ncontent-length:{}\n\n", usize::MAX),
            BodyTooLarge { limit: MIB4 },
        ),
        // Spec "Size Limits" (checklist 17): whole frame.
        with_limits(
            case(
                "content-length frame over frame limit, headers only",
                V12,
                b"SEND\ncontent-length:40\n\n",
                FrameTooLarge { limit: 48 },
            ),
            limits(48, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "NUL-terminated frame over frame limit",
                V12,
                cat(&[b"SEND\n\n", &repeat(b'x', 50), b"\0"]),
                FrameTooLarge { limit: 48 },
            ),
            limits(48, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "unterminated body over frame limit",
                V12,
                cat(&[b"SEND\n\n", &repeat(b'x', 200)]),
                FrameTooLarge { limit: 48 },
            ),
            limits(48, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "headers over frame limit, empty body",
                V12,
                cat(&[b"SEND\n", &b"a:xxxxxxxxxxxxxxxxxxxx\n".repeat(3), b"\n\0"]),
                FrameTooLarge { limit: 48 },
            ),
            limits(48, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "headers over frame limit, content-length 0",
                V12,
                cat(&[
                    b"SEND\n",
                    &b"a:xxxxxxxxxxxxxxxxxxxx\n".repeat(3),
                    b"content-length:0\n\n\0",
                ]),
                FrameTooLarge { limit: 48 },
            ),
            limits(48, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "headers of a body-less frame fill the frame limit",
                V12,
                b"SUBSCRIBE\nid:12\n\n\0",
                FrameTooLarge { limit: 16 },
            ),
            limits(16, 64, 8192, MIB4),
        ),
        with_limits(
            case(
                "unterminated command line over frame limit",
                V12,
                repeat(b'S', 40),
                FrameTooLarge { limit: 16 },
            ),
            limits(16, 64, 64, MIB4),
        ),
        // Header count, repeats and content-length included.
        with_limits(
            case(
                "too many headers",
                V12,
                b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0",
                TooManyHeaders { limit: 3 },
            ),
            limits(MIB4, 3, 8192, MIB4),
        ),
        with_limits(
            case(
                "too many repeated headers",
                V12,
                b"SEND\na:1\na:1\na:1\na:1\n",
                TooManyHeaders { limit: 3 },
            ),
            limits(MIB4, 3, 8192, MIB4),
        ),
        with_limits(
            case(
                "content-length counts as a header",
                V12,
                b"SEND\na:1\nb:2\nc:3\ncontent-length:0\n\n\0",
                TooManyHeaders { limit: 3 },
            ),
            limits(MIB4, 3, 8192, MIB4),
        ),
        with_limits(
            case(
                "no headers allowed",
                V10,
                b"CONNECT\nlogin:a\n\n\0",
                TooManyHeaders { limit: 0 },
            ),
            limits(MIB4, 0, 8192, MIB4),
        ),
        // Header line length, without its EOL.
        with_limits(
            case(
                "header line too long",
                V12,
                cat(&[b"SEND\na:", &repeat(b'v', 15), b"\n\n\0"]),
                HeaderLineTooLong { limit: 16 },
            ),
            limits(MIB4, 64, 16, MIB4),
        ),
        with_limits(
            case(
                "header line too long with CRLF",
                V12,
                cat(&[b"SEND\r\na:", &repeat(b'v', 15), b"\r\n\r\n\0"]),
                HeaderLineTooLong { limit: 16 },
            ),
            limits(MIB4, 64, 16, MIB4),
        ),
        with_limits(
            case(
                "header line never ends",
                V12,
                cat(&[b"SEND\na:", &repeat(b'v', 300)]),
                HeaderLineTooLong { limit: 16 },
            ),
            limits(MIB4, 64, 16, MIB4),
        ),
        with_limits(
            case(
                "command line too long",
                V12,
                cat(&[&repeat(b'S', 17), b"\n\n\0"]),
                HeaderLineTooLong { limit: 16 },
            ),
            limits(MIB4, 64, 16, MIB4),
        ),
        with_limits(
            case(
                "command line never ends",
                V12,
                repeat(b'S', 300),
                HeaderLineTooLong { limit: 16 },
            ),
            limits(MIB4, 64, 16, MIB4),
        ),
        // Body size without content-length.
        with_limits(
            case(
                "NUL-terminated body too large",
                V12,
                cat(&[b"SEND\n\n", &repeat(b'x', 9), b"\0"]),
                BodyTooLarge { limit: 8 },
            ),
            limits(MIB4, 64, 8192, 8),
        ),
        with_limits(
            case(
                "unterminated body too large",
                V12,
                cat(&[b"MESSAGE\n\n", &repeat(b'x', 100)]),
                BodyTooLarge { limit: 8 },
            ),
            limits(MIB4, 64, 8192, 8),
        ),
        // Spec "Value Encoding": undefined escapes are fatal (checklist 10).
        case(
            "undefined escape \\t in value",
            V12,
            b"SEND\na:b\\tc\n\n\0",
            InvalidEscape { escape: 't' },
        ),
        case(
            "undefined escape \\t in 1.1",
            V11,
            b"SEND\na:b\\tc\n\n\0",
            InvalidEscape { escape: 't' },
        ),
        case(
            "undefined escape in name",
            V12,
            b"SEND\na\\t:b\n\n\0",
            InvalidEscape { escape: 't' },
        ),
        case(
            "escape \\r in 1.1",
            V11,
            b"SEND\na:b\\r\n\n\0",
            InvalidEscape { escape: 'r' },
        ),
        case(
            "uppercase escape",
            V12,
            b"SEND\na:\\N\n\n\0",
            InvalidEscape { escape: 'N' },
        ),
        case(
            "escaped colon is \\c, not \\:",
            V12,
            b"MESSAGE\na:\\:\n\n\0",
            InvalidEscape { escape: ':' },
        ),
        case(
            "undefined escape on ERROR",
            V12,
            b"ERROR\nmessage:\\x\n\n\0",
            InvalidEscape { escape: 'x' },
        ),
        case(
            "trailing backslash",
            V12,
            b"SEND\na:b\\\n\n\0",
            InvalidEscape { escape: ' ' },
        ),
        case(
            "trailing backslash in name",
            V11,
            b"SEND\na\\:b\n\n\0",
            InvalidEscape { escape: ' ' },
        ),
        // Spec header BNF: `name ":" value` with a non-empty name.
        case(
            "header without colon",
            V12,
            b"SEND\nabc\n\n\0",
            MalformedHeader,
        ),
        case(
            "header without colon in 1.0",
            V10,
            b"SEND\nabc\n\n\0",
            MalformedHeader,
        ),
        case(
            "header without colon, CRLF",
            V12,
            b"SEND\r\nabc\r\n\r\n\0",
            MalformedHeader,
        ),
        case("empty header name", V12, b"SEND\n:v\n\n\0", MalformedHeader),
        case("lone colon", V11, b"SEND\n:\n\n\0", MalformedHeader),
        case(
            "1.1 blank line with a bare CR",
            V11,
            b"SEND\n\r\r\n\0",
            MalformedHeader,
        ),
        case(
            "missing blank line before body",
            V12,
            b"SEND\na:1\nbody\0\n",
            MalformedHeader,
        ),
        // Spec "Value Encoding": headers are UTF-8.
        case(
            "invalid UTF-8 in value",
            V12,
            b"SEND\na:\xff\n\n\0",
            InvalidUtf8,
        ),
        case(
            "invalid UTF-8 in name",
            V12,
            b"SEND\n\xc3:v\n\n\0",
            InvalidUtf8,
        ),
        case(
            "overlong UTF-8",
            V11,
            b"SEND\na:\xc0\xaf\n\n\0",
            InvalidUtf8,
        ),
        case(
            "invalid UTF-8 in unescaped CONNECT",
            V12,
            b"CONNECT\nlogin:\xfe\n\n\0",
            InvalidUtf8,
        ),
        case(
            "invalid UTF-8 in 1.0",
            V10,
            b"SEND\na:\xed\xa0\x80\n\n\0",
            InvalidUtf8,
        ),
        // The name and the value are each UTF-8 on their own: a name ending inside a character
        // that its value completes is invalid, although the two together are valid (found by
        // fuzzing; slicing there panicked).
        case(
            "CONNECT name ends inside a UTF-8 character",
            V12,
            b"CONNECT\naccept-version:1.2\nx\xc6:\x88y\n\n\0",
            InvalidUtf8,
        ),
        case(
            "escaped name ends inside a UTF-8 character",
            V12,
            b"SEND\nx\xc6:\x88y\n\n\0",
            InvalidUtf8,
        ),
        case(
            "1.0 name ends inside a UTF-8 character",
            V10,
            b"SEND\nx\xe2\x82:\xacy\n\n\0",
            InvalidUtf8,
        ),
        case(
            "value ends inside a UTF-8 character the next name completes",
            V11,
            b"SEND\na:x\xc6\n\x88:y\n\n\0",
            InvalidUtf8,
        ),
        case(
            "character split around a content-length header",
            V12,
            b"SEND\na:x\xc6\ncontent-length:0\n\x88:y\n\n\0",
            InvalidUtf8,
        ),
        // A NUL ends a frame for every reader: inside a header it would cut a relayed frame
        // and let the rest pass for a frame of its own.
        case(
            "NUL in a value forging an ERROR",
            V12,
            b"SEND\ndestination:/topic/a\nx:y\0ERROR\nmessage:forged\n\n\0",
            NulInHeader,
        ),
        case("NUL in a name", V11, b"SEND\nx\0y:z\n\n\0", NulInHeader),
        case(
            "NUL at the end of a value",
            V10,
            b"SEND\na:b\0\n\n\0",
            NulInHeader,
        ),
        case(
            "NUL next to an escape",
            V12,
            b"SEND\na:\\n\0\n\n\0",
            NulInHeader,
        ),
        case(
            "NUL in a 1.2 CONNECT value",
            V12,
            b"CONNECT\nlogin:a\0b\n\n\0",
            NulInHeader,
        ),
        // Spec EOL = [CR] LF: a CR not followed by LF (checklist 5).
        case("bare CR at start", V12, b"\rSEND\n\n\0", BareCarriageReturn),
        case("two CRs", V12, b"\r\r\n", BareCarriageReturn),
        after_frames(
            case(
                "bare CR between frames",
                V12,
                b"SEND\n\n\0\rSEND\n\n\0",
                BareCarriageReturn,
            ),
            1,
        ),
        after_frames(
            case(
                "bare CR after heart-beats",
                V11,
                b"SEND\n\n\0\n\r\n\rX",
                BareCarriageReturn,
            ),
            1,
        ),
        case(
            "bare CR in a 1.2 value",
            V12,
            b"SEND\na:b\rc\n\n\0",
            BareCarriageReturn,
        ),
        case(
            "bare CR in a 1.2 name",
            V12,
            b"SEND\na\rb:c\n\n\0",
            BareCarriageReturn,
        ),
        case(
            "two CRs before LF in 1.2",
            V12,
            b"SEND\na:b\r\r\n\n\0",
            BareCarriageReturn,
        ),
        case(
            "bare CR in a 1.2 CONNECT value",
            V12,
            b"CONNECT\nlogin:a\rb\n\n\0",
            BareCarriageReturn,
        ),
        case(
            "1.2 blank line with a bare CR",
            V12,
            b"SEND\n\r\r\n\0",
            BareCarriageReturn,
        ),
    ];

    // Spec "content-length": a non-negative decimal octet count, nothing else (checklist 15).
    // Each value is refused as soon as its header line is complete.
    let bad_lengths = [
        "abc",
        "-1",
        "+5",
        " 5",
        "5 ",
        "1 0",
        "",
        "0x5",
        "5.0",
        "\u{ff11}",
        "99999999999999999999999",
        "5\\c",
    ];
    for value in bad_lengths {
        for (suffix, rest) in [("", &b"\nabcde\0"[..]), (", header only", &b""[..])] {
            cases.push(case(
                &format!("content-length {value:?}{suffix}"),
                V12,
                cat(&[b"SEND\ncontent-length:", value.as_bytes(), b"\n", rest]),
                ParseError::InvalidContentLength,
            ));
        }
    }

    // No command in any version may carry a NUL in a header name or value.
    for command in Command::ALL {
        for version in Version::ALL {
            for (what, line) in [("name", "a\0b:c"), ("value", "a:b\0c")] {
                cases.push(case(
                    &format!("{command} NUL in a {what} {version}"),
                    version,
                    format!("{command}\nh:1\n{line}\n\n\0"),
                    ParseError::NulInHeader,
                ));
            }
        }
    }

    // Spec "Body": only SEND, MESSAGE and ERROR may have one (checklist 16). Refused once the
    // first body byte (or a non-zero content-length) is seen.
    let no_body = Command::ALL.into_iter().filter(|c| !c.may_have_body());
    for command in no_body {
        let error = ParseError::BodyNotAllowed { command };
        let inputs: [(&str, String); 5] = [
            ("body", format!("{command}\na:1\n\nbody\0")),
            ("unterminated body", format!("{command}\na:1\n\nb")),
            ("EOL as body", format!("{command}\n\n\n\0")),
            (
                "body with content-length",
                format!("{command}\ncontent-length:4\n\nbody\0"),
            ),
            (
                "content-length, headers only",
                format!("{command}\ncontent-length:4\n\n"),
            ),
        ];
        for (what, input) in inputs {
            for version in Version::ALL {
                cases.push(case(
                    &format!("{command} {what} {version}"),
                    version,
                    input.as_bytes(),
                    error.clone(),
                ));
            }
        }
    }
    cases
}

fn describe(case: &Case) -> String {
    format!(
        "case {:?} ({}) on {:?}",
        case.name,
        case.options.version,
        String::from_utf8_lossy(&case.input)
    )
}

fn check_outcome(case: &Case, outcome: &common::Outcome, how: &str) {
    assert_eq!(
        outcome.end,
        Err(case.error.clone()),
        "{how}: {}",
        describe(case)
    );
    assert_eq!(
        outcome.frames().len(),
        case.frames_before,
        "{how}: {}",
        describe(case)
    );
}

#[test]
fn corpus_covers_every_error() {
    let cases = corpus();
    let kinds = [
        "UnknownCommand",
        "BodyNotAllowed",
        "MissingNul",
        "InvalidContentLength",
        "FrameTooLarge",
        "TooManyHeaders",
        "HeaderLineTooLong",
        "BodyTooLarge",
        "InvalidEscape",
        "MalformedHeader",
        "InvalidUtf8",
        "NulInHeader",
        "BareCarriageReturn",
    ];
    for kind in kinds {
        assert!(
            cases
                .iter()
                .any(|c| format!("{:?}", c.error).starts_with(kind)),
            "no case for {kind}"
        );
    }
    let mut names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names are unique");
}

/// Every case through `parse`, frame after frame over the whole input.
#[test]
fn corpus_through_parse() {
    for case in corpus() {
        let outcome = parse_stream(&case.input, &case.options);
        check_outcome(&case, &outcome, "parse");
    }
}

/// Every case through a `Decoder` fed one byte at a time; before each call `parse` is asked
/// about the same buffer and must agree.
#[test]
fn corpus_through_decoder_byte_by_byte() {
    for case in corpus() {
        let outcome = decode_checked(&case.input, &case.options);
        check_outcome(&case, &outcome, "decoder, 1-byte reads");
        assert_eq!(
            outcome,
            decode_chunks(&case.input, &case.options, 1),
            "{}",
            describe(&case)
        );
    }
}

#[test]
fn corpus_through_decoder_in_7_byte_chunks() {
    for case in corpus() {
        let outcome = decode_chunks(&case.input, &case.options, 7);
        check_outcome(&case, &outcome, "decoder, 7-byte reads");
    }
}

#[test]
fn corpus_through_decoder_whole() {
    for case in corpus() {
        let outcome = decode_chunks(&case.input, &case.options, case.input.len());
        check_outcome(&case, &outcome, "decoder, one read");
        // Given the same buffer, the decoder reports exactly what parse does.
        assert_eq!(
            outcome,
            parse_stream(&case.input, &case.options),
            "{}",
            describe(&case)
        );
    }
}

/// Single-byte substitutions, deletions and duplications of every corpus input never panic,
/// and the decoder still agrees with the parser and stays within the limits.
#[test]
fn corpus_mutations_never_panic() {
    let replacements = [0u8, b'\r', b'\n', b':', b'\\', 0xff, b'c', b'9'];
    for case in corpus().into_iter().filter(|c| c.input.len() <= 64) {
        for at in 0..case.input.len() {
            let mut variants = Vec::new();
            for &b in &replacements {
                let mut v = case.input.clone();
                v[at] = b;
                variants.push(v);
            }
            let mut deleted = case.input.clone();
            deleted.remove(at);
            variants.push(deleted);
            let mut doubled = case.input.clone();
            doubled.insert(at, case.input[at]);
            variants.push(doubled);
            for v in variants {
                let whole = parse_stream(&v, &case.options);
                let decoded = decode_chunks(&v, &case.options, v.len());
                assert_eq!(decoded, whole);
                decode_checked(&v, &case.options);
            }
        }
    }
}

/// Checklist 15/17: errors are raised from the headers, before the body arrives.
#[test]
fn limits_fail_before_the_body_arrives() {
    let small_body = limited(V12, limits(MIB4, 64, 8192, 16));
    let mut decoder = Decoder::new(small_body);
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:17\n"[..]);
    assert_eq!(
        decoder.decode(&mut buf),
        Ok(None),
        "blank line not seen yet"
    );
    buf.extend_from_slice(b"\n");
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ParseError::BodyTooLarge { limit: 16 })
    );

    // 16 is allowed: the decoder waits for exactly 17 + headers + NUL bytes.
    match parse(b"SEND\ncontent-length:16\n\n", &small_body) {
        Ok(Parsed::Incomplete(incomplete)) => assert_eq!(incomplete.needed, 24 + 16 + 1),
        other => panic!("{other:?}"),
    }

    let small_frame = limited(V12, limits(48, 64, 8192, MIB4));
    // 24 bytes of headers + 24 of body + NUL = 49.
    assert_eq!(
        parse(b"SEND\ncontent-length:24\n\n", &small_frame),
        Err(ParseError::FrameTooLarge { limit: 48 })
    );
    match parse(b"SEND\ncontent-length:23\n\n", &small_frame) {
        Ok(Parsed::Incomplete(incomplete)) => assert_eq!(incomplete.needed, 48),
        other => panic!("{other:?}"),
    }
}

/// Spec "Size Limits": a body that never ends is refused once the buffer passes the frame limit,
/// not buffered forever; a frame that could still fit is waited for.
#[test]
fn unterminated_body_fails_at_the_frame_limit() {
    for max in [16usize, 48, 100] {
        let options = limited(V12, limits(max, 64, 8192, MIB4));
        let mut decoder = Decoder::new(options);
        let mut buf = BytesMut::from(&b"SEND\n\n"[..]);
        let failed_at = loop {
            match decoder.decode(&mut buf) {
                Ok(None) => buf.extend_from_slice(b"x"),
                Err(error) => {
                    assert_eq!(error, ParseError::FrameTooLarge { limit: max });
                    break buf.len();
                }
                other => panic!("{other:?}"),
            }
            assert!(buf.len() <= max + 1, "still waiting past the limit");
        };
        // Below `max` bytes a NUL could still complete a frame within the limit.
        assert!(
            failed_at == max || failed_at == max + 1,
            "failed at {failed_at}"
        );
    }
}

/// Spec "Size Limits": a header line with no LF is refused once it is longer than the limit,
/// instead of waiting for an LF that never comes.
#[test]
fn endless_header_line_fails_at_the_line_limit() {
    for (prefix, line_start) in [
        (&b""[..], 0usize),
        (&b"SEND\n"[..], 5),
        (&b"SEND\na:1\n"[..], 9),
    ] {
        let options = limited(V12, limits(MIB4, 64, 16, MIB4));
        let mut decoder = Decoder::new(options);
        let mut buf = BytesMut::from(prefix);
        let failed_at = loop {
            match decoder.decode(&mut buf) {
                Ok(None) => buf.extend_from_slice(b"x"),
                Err(error) => {
                    assert_eq!(error, ParseError::HeaderLineTooLong { limit: 16 });
                    break buf.len();
                }
                other => panic!("{other:?}"),
            }
        };
        // 16 bytes, a CR and the LF fit in 18; the 18th byte not being a LF settles it.
        assert_eq!(failed_at, line_start + 18);
    }
}

fn valid_frames() -> Vec<(ParseOptions, Vec<u8>)> {
    let small = limits(64, 4, 32, 16);
    vec![
        (options(V12), b"SEND\ndestination:/q\n\nhello\0".to_vec()),
        (
            options(V12),
            b"SEND\r\ndestination:/q\r\ncontent-length:4\r\n\r\n\0\n\r\0\0".to_vec(),
        ),
        (
            options(V12),
            b"MESSAGE\na\\c\\n\\r\\\\:x\\cy\n\n\0".to_vec(),
        ),
        (options(V11), b"MESSAGE\na:b\rc\nd\\n:\n\n\0".to_vec()),
        (options(V10), b"CONNECT\nlogin:a\\t\n\n\0".to_vec()),
        (options(V12), b"DISCONNECT\n\n\0".to_vec()),
        (options(V12), b"ACK\nid:1\ncontent-length:0\n\n\0".to_vec()),
        (options(V12), b"SUBSCRIBE\r\nid:0\r\n\r\n\0".to_vec()),
        // Exactly at the limits.
        (
            limited(V12, small),
            cat(&[
                b"SEND\na:",
                &repeat(b'v', 30),
                b"\nb:1\nc:2\n\n",
                &repeat(b'x', 16),
                b"\0",
            ]),
        ),
        (
            limited(V12, small),
            cat(&[b"ERROR\ncontent-length:16\n\n", &repeat(0, 16), b"\0"]),
        ),
    ]
}

/// Every strict prefix of a valid frame is "need more", never an error: `parse` says how much
/// more (never beyond the frame's end) and a `Decoder` returns `Ok(None)`.
#[test]
fn strict_prefixes_of_valid_frames_are_incomplete() {
    for (options, frame) in valid_frames() {
        let full = match parse(&frame, &options) {
            Ok(Parsed::Frame(parsed)) => parsed,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&frame)),
        };
        assert_eq!(full.consumed, frame.len());
        for len in 0..frame.len() {
            let prefix = &frame[..len];
            match parse(prefix, &options) {
                Ok(Parsed::Incomplete(incomplete)) => {
                    assert!(incomplete.needed > len && incomplete.needed <= frame.len());
                    if let Some(start) = incomplete.body_start {
                        assert_eq!(start, full.body.start, "prefix {len}");
                    }
                }
                other => panic!("prefix {:?}: {other:?}", String::from_utf8_lossy(prefix)),
            }
            let mut buf = BytesMut::from(prefix);
            assert_eq!(Decoder::new(options).decode(&mut buf), Ok(None));
            assert_eq!(buf.len(), len, "nothing consumed");
        }
        let outcome = decode_checked(&frame, &options);
        assert!(matches!(outcome.items.as_slice(), [Decoded::Frame(_)]));
        assert_eq!(outcome.end, Ok(0));
    }
}
