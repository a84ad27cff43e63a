//! One test per STOMP framing rule (STOMP 1.2 specification, with the 1.0/1.1 differences),
//! each citing the rule it checks. Conformance checklist numbers refer to
//! `shared/reference/peers.md` section 6.1.

mod common;

use bytes::{Bytes, BytesMut};
use common::{
    decode_checked, decode_chunks, decode_one, decode_split, header_list, options, pairs,
    parse_err, parse_one, parse_stream, round_trip,
};
use herald_protocol::{
    Command, Decoded, Decoder, Frame, Headers, Incomplete, MessageTemplate, ParseError,
    ParseOptions, Parsed, Version, encode_to_bytes, parse,
};

const V10: Version = Version::V1_0;
const V11: Version = Version::V1_1;
const V12: Version = Version::V1_2;

fn send(headers: &[(&str, &str)], body: &[u8]) -> Frame {
    let mut frame = Frame::new(Command::Send).body(Bytes::copy_from_slice(body));
    for (n, v) in headers {
        frame.headers.push(n, v);
    }
    frame
}

// ---------------------------------------------------------------------------------------------
// Line ends and heart-beats
// ---------------------------------------------------------------------------------------------

/// Spec "Augmented BNF": `EOL = [CR] LF`; a frame written with LF only.
#[test]
fn lf_line_endings() {
    let input = b"SEND\ndestination:/queue/a\nreceipt:7\n\nhello\0";
    let (frame, consumed) = parse_one(input, &options(V12));
    assert_eq!(consumed, input.len());
    assert_eq!(frame.command, Command::Send);
    assert_eq!(
        header_list(&frame),
        pairs(&[("destination", "/queue/a"), ("receipt", "7")])
    );
    assert_eq!(frame.body, Bytes::from_static(b"hello"));
}

/// Spec "Augmented BNF" (1.2): `EOL = [CR] LF`, so CRLF ends the command line, every header
/// line and the blank line, and the CR is not part of the value (checklist 5).
#[test]
fn crlf_line_endings() {
    let input = b"SEND\r\ndestination:/queue/a\r\nreceipt:7\r\n\r\nhello\0";
    for version in Version::ALL {
        let (frame, consumed) = parse_one(input, &options(version));
        assert_eq!(consumed, input.len(), "{version}");
        assert_eq!(frame.command, Command::Send);
        assert_eq!(
            header_list(&frame),
            pairs(&[("destination", "/queue/a"), ("receipt", "7")])
        );
        assert_eq!(frame.body, Bytes::from_static(b"hello"));
    }
    // LF and CRLF may be mixed in one frame.
    let mixed = b"SEND\r\na:1\nb:2\r\n\n\0";
    let (frame, _) = parse_one(mixed, &options(V12));
    assert_eq!(header_list(&frame), pairs(&[("a", "1"), ("b", "2")]));
}

/// Spec "Heart-beating": a heart-beat is an EOL; a lone LF before a frame is reported as a
/// heart-beat and consumed, not taken for an empty command.
#[test]
fn heart_beat_lf_is_reported() {
    assert_eq!(
        parse(b"\n", &options(V12)),
        Ok(Parsed::HeartBeat { consumed: 1 })
    );
    assert_eq!(
        parse(b"\nSEND\n\n\0", &options(V12)),
        Ok(Parsed::HeartBeat { consumed: 1 })
    );
    let mut buf = BytesMut::from(&b"\n"[..]);
    let mut decoder = Decoder::new(options(V12));
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Decoded::HeartBeat)));
    assert!(buf.is_empty());
    assert_eq!(decoder.decode(&mut buf), Ok(None));
}

/// Spec "Heart-beating" and BNF `EOL = [CR] LF`: CRLF is a heart-beat too, and a lone CR
/// waits for its LF rather than being an error (checklist 6).
#[test]
fn heart_beat_crlf_is_reported() {
    assert_eq!(
        parse(b"\r\n", &options(V12)),
        Ok(Parsed::HeartBeat { consumed: 2 })
    );
    assert_eq!(
        parse(b"\r", &options(V12)),
        Ok(Parsed::Incomplete(Incomplete {
            needed: 2,
            body_start: None
        }))
    );
    let outcome = decode_chunks(b"\r\n", &options(V12), 1);
    assert_eq!(outcome.items, [Decoded::HeartBeat]);
    assert_eq!(outcome.end, Ok(0));
    // A CRLF that arrived in two reads, then a LF: each is reported as soon as it is complete.
    let mut decoder = Decoder::new(options(V12));
    let mut buf = BytesMut::new();
    let steps = [
        (b'\r', None),
        (b'\n', Some(Decoded::HeartBeat)),
        (b'\n', Some(Decoded::HeartBeat)),
    ];
    for (byte, expected) in steps {
        buf.extend_from_slice(&[byte]);
        assert_eq!(decoder.decode(&mut buf), Ok(expected));
    }
    assert!(buf.is_empty());
}

/// Spec "Heart-beating": a run of EOLs (LF and CRLF mixed) is consumed in one report; a
/// trailing CR whose LF has not arrived yet is left in the buffer.
#[test]
fn heart_beat_runs_are_one_report() {
    assert_eq!(
        parse(b"\n\r\n\n\r\nSEND\n\n\0", &options(V12)),
        Ok(Parsed::HeartBeat { consumed: 6 })
    );
    assert_eq!(
        parse(b"\n\n\r", &options(V12)),
        Ok(Parsed::HeartBeat { consumed: 2 })
    );
    let outcome = parse_stream(b"\n\r\n\n", &options(V12));
    assert_eq!(outcome.items, [Decoded::HeartBeat]);
    assert_eq!(outcome.end, Ok(0));
}

/// Spec BNF `frame = command EOL *(header EOL) EOL *OCTET NUL *( EOL )`: EOLs after a frame's
/// NUL are heart-beats, not part of the frame nor the start of the next one (checklist 6).
#[test]
fn heart_beats_after_nul() {
    let input = b"SEND\n\nA\0\n\r\n\nSEND\n\nB\0\r\n";
    let (first, consumed) = parse_one(input, &options(V12));
    assert_eq!(consumed, 8, "the frame stops at its NUL");
    assert_eq!(first.body, Bytes::from_static(b"A"));
    let outcome = parse_stream(input, &options(V12));
    let expected = vec![
        Decoded::Frame(send(&[], b"A")),
        Decoded::HeartBeat,
        Decoded::Frame(send(&[], b"B")),
        Decoded::HeartBeat,
    ];
    assert_eq!(outcome.items, expected);
    assert_eq!(outcome.end, Ok(0));
    assert_eq!(decode_chunks(input, &options(V12), input.len()), outcome);
    // Byte by byte the runs may be reported in pieces, but the frames are the same.
    let bytewise = decode_checked(input, &options(V12));
    assert_eq!(bytewise.frames(), outcome.frames());
    assert_eq!(bytewise.end, Ok(0));
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// Spec: a frame is a byte stream with no relation to reads; checklist 7 ("frame split at
/// every byte boundary ... parsed identically"). Fed one byte at a time, and cut once at
/// every possible point, the decoder returns the same frame.
#[test]
fn frame_split_at_every_byte_boundary() {
    let frames = [
        (
            V12,
            b"SEND\r\ndestination:/q\\c1\r\ncontent-length:5\r\n\r\na\0b\0c\0\r\n".to_vec(),
        ),
        (
            V12,
            b"MESSAGE\nsubscription:0\nx:a\\nb\n\nbody text\0".to_vec(),
        ),
        (
            V11,
            b"SUBSCRIBE\nid:1\ndestination:/topic/t\n\n\0\n".to_vec(),
        ),
        (
            V10,
            b"CONNECT\naccept-version:1.0\nlogin:a\\b\n\n\0".to_vec(),
        ),
    ];
    for (version, input) in frames {
        let opts = options(version);
        let whole = decode_chunks(&input, &opts, input.len());
        assert!(matches!(whole.items[0], Decoded::Frame(_)), "{whole:?}");
        assert_eq!(whole.end, Ok(0));

        let bytewise = decode_checked(&input, &opts);
        assert_eq!(bytewise.frames(), whole.frames());
        assert_eq!(bytewise.end, Ok(0));

        for split in 1..input.len() {
            let outcome = decode_split(&input, &opts, &[split]);
            assert_eq!(outcome.frames(), whole.frames(), "split at {split}");
            assert_eq!(outcome.end, Ok(0), "split at {split}");
        }
    }
}

/// Checklist 7 ("many frames in one WS message"): one buffer holding several frames yields
/// them all, in order, and nothing is left.
#[test]
fn many_frames_in_one_buffer() {
    let input = b"SEND\ndestination:/a\n\n1\0SEND\ndestination:/b\ncontent-length:1\n\n2\0\
BEGIN\ntransaction:t\n\n\0ACK\nid:9\n\n\0";
    let outcome = decode_chunks(input, &options(V12), input.len());
    let expected = vec![
        Decoded::Frame(send(&[("destination", "/a")], b"1")),
        Decoded::Frame(send(&[("destination", "/b")], b"2")),
        Decoded::Frame(Frame::new(Command::Begin).header("transaction", "t")),
        Decoded::Frame(Frame::new(Command::Ack).header("id", "9")),
    ];
    assert_eq!(outcome.items, expected);
    assert_eq!(outcome.end, Ok(0));
    assert_eq!(parse_stream(input, &options(V12)), outcome);
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// Spec "Body" / "content-length": the body is exactly `content-length` octets, NULs included,
/// and is still followed by a NUL (checklist 14).
#[test]
fn content_length_body_may_contain_nul() {
    let input = b"SEND\ndestination:/q\ncontent-length:7\n\n\0a\0\0b\0\0\0NEXT";
    let (frame, consumed) = parse_one(input, &options(V12));
    assert_eq!(frame.body, Bytes::from_static(b"\0a\0\0b\0\0"));
    assert_eq!(consumed, input.len() - 4);
    match parse(input, &options(V12)) {
        Ok(Parsed::Frame(parsed)) => assert_eq!(parsed.body, 38..45),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        decode_one(&input[..consumed], &options(V12)).body,
        frame.body
    );
    // A zero content-length means an empty body followed directly by the NUL.
    let (empty, consumed) = parse_one(b"SEND\ncontent-length:0\n\n\0", &options(V12));
    assert!(empty.body.is_empty());
    assert_eq!(consumed, 24);
}

/// Spec "Body": without `content-length` the body runs up to the first NUL octet.
#[test]
fn body_runs_to_first_nul_without_content_length() {
    let input = b"SEND\ndestination:/q\n\nabc\0SEND\n\nd\0";
    let (frame, consumed) = parse_one(input, &options(V12));
    assert_eq!(frame.body, Bytes::from_static(b"abc"));
    assert_eq!(consumed, 25);
    // While no NUL has arrived the parser says where the body starts, so a caller can resume
    // its NUL search.
    assert_eq!(
        parse(b"SEND\ndestination:/q\n\nabc", &options(V12)),
        Ok(Parsed::Incomplete(Incomplete {
            needed: 25,
            body_start: Some(21)
        }))
    );
    let expected = vec![send(&[("destination", "/q")], b"abc"), send(&[], b"d")];
    for chunk in [1, 7, input.len()] {
        let outcome = decode_chunks(input, &options(V12), chunk);
        assert_eq!(outcome.frames(), expected, "chunks of {chunk}");
        assert_eq!(outcome.end, Ok(0));
    }
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// Spec BNF `header = header-name ":" header-value`: the first colon splits, later colons
/// belong to the value (checklist 8).
#[test]
fn header_value_may_contain_colons() {
    for version in Version::ALL {
        let (frame, _) = parse_one(
            b"SEND\na:b:c\nurl:http://h:80/\nz::\n\n\0",
            &options(version),
        );
        assert_eq!(
            header_list(&frame),
            pairs(&[("a", "b:c"), ("url", "http://h:80/"), ("z", ":")]),
            "{version}"
        );
    }
}

/// Spec 1.2 "Value Encoding": `\r` `\n` `\c` `\\` decode to CR, LF, `:` and `\`, in names and
/// values (checklist 9).
#[test]
fn escaping_v1_2() {
    let input = b"SEND\nk\\c\\\\\\n\\r:v\\r\\n\\c\\\\end\n\n\0";
    let (frame, _) = parse_one(input, &options(V12));
    assert_eq!(header_list(&frame), pairs(&[("k:\\\n\r", "v\r\n:\\end")]));
    // An escaped backslash followed by `n` is a backslash and an `n`, not a LF.
    let (frame, _) = parse_one(b"SEND\na:\\\\n\n\n\0", &options(V12));
    assert_eq!(frame.headers.get("a"), Some("\\n"));
}

/// Spec 1.1 "Value Encoding": only `\n`, `\c` and `\\` are defined; `\r` is an undefined
/// escape, hence a fatal error.
#[test]
fn escaping_v1_1() {
    let (frame, _) = parse_one(b"SEND\nk\\c:v\\n\\c\\\\\n\n\0", &options(V11));
    assert_eq!(header_list(&frame), pairs(&[("k:", "v\n:\\")]));
    assert_eq!(
        parse_err(b"SEND\na:x\\ry\n\n\0", &options(V11)),
        ParseError::InvalidEscape { escape: 'r' }
    );
    // 1.2 accepts the same bytes.
    let (frame, _) = parse_one(b"SEND\na:x\\ry\n\n\0", &options(V12));
    assert_eq!(frame.headers.get("a"), Some("x\ry"));
}

/// STOMP 1.0 has no escaping: backslashes are literal, even before letters 1.2 would reject.
#[test]
fn escaping_v1_0_none() {
    let (frame, _) = parse_one(b"SEND\nk\\c:v\\n\\c\\\\\\t\\r\\\n\n\0", &options(V10));
    assert_eq!(
        header_list(&frame),
        pairs(&[("k\\c", "v\\n\\c\\\\\\t\\r\\")])
    );
}

/// Spec 1.2 "Value Encoding": "The CONNECT and CONNECTED frames do not escape" — STOMP is
/// CONNECT under another name ("CONNECT or STOMP Frame"); in every version (checklist 11).
#[test]
fn connect_connected_stomp_are_never_unescaped() {
    for version in Version::ALL {
        for command in [Command::Connect, Command::Stomp, Command::Connected] {
            let input = format!("{command}\nlogin:a\\nb\\c\\\\\\t\\\npass\\c:x\n\n\0");
            let (frame, _) = parse_one(input.as_bytes(), &options(version));
            assert_eq!(frame.command, command);
            assert_eq!(
                header_list(&frame),
                pairs(&[("login", "a\\nb\\c\\\\\\t\\"), ("pass\\c", "x")]),
                "{command} {version}"
            );
        }
    }
    // The encoder agrees: a value with `:` and `\` is written raw.
    let connect = Frame::new(Command::Connect).header("passcode", "p:a\\s");
    for version in Version::ALL {
        assert_eq!(
            &encode_to_bytes(&connect, version)[..],
            b"CONNECT\npasscode:p:a\\s\n\n\0"
        );
        assert_eq!(round_trip(&connect, version), connect);
    }
}

/// Spec 1.2 "Value Encoding": "Implementations MUST NOT trim or pad header values" — leading
/// and trailing spaces (and tabs) are kept (checklist 12).
#[test]
fn header_whitespace_is_preserved() {
    for version in Version::ALL {
        let (frame, _) = parse_one(
            b"SEND\n foo : bar \nbaz:\t two  words\t\n\n\0",
            &options(version),
        );
        assert_eq!(
            header_list(&frame),
            pairs(&[(" foo ", " bar "), ("baz", "\t two  words\t")]),
            "{version}"
        );
        assert_eq!(frame.headers.get("foo"), None);
    }
}

/// Spec 1.2 "Repeated Header Entries": only the first entry is used, and every entry is kept
/// in order (checklist 13).
#[test]
fn repeated_headers_first_wins_all_kept() {
    let (frame, _) = parse_one(
        b"MESSAGE\nfoo:World\nfoo:Hello\nbar:1\nfoo:!\n\n\0",
        &options(V12),
    );
    assert_eq!(frame.headers.get("foo"), Some("World"));
    assert_eq!(
        frame.headers.get_all("foo").collect::<Vec<_>>(),
        ["World", "Hello", "!"]
    );
    assert_eq!(frame.headers.len(), 4);
    // The encoder writes all of them back in order.
    assert_eq!(
        &encode_to_bytes(&frame, V12)[..],
        b"MESSAGE\nfoo:World\nfoo:Hello\nbar:1\nfoo:!\n\n\0"
    );
}

/// Spec BNF `header-value = *<any OCTET except CR or LF or ":">`: a value may be empty.
#[test]
fn empty_header_value_is_allowed() {
    let (frame, _) = parse_one(b"SEND\nempty:\nx:1\n\n\0", &options(V12));
    assert_eq!(header_list(&frame), pairs(&[("empty", ""), ("x", "1")]));
    assert_eq!(frame.headers.get("empty"), Some(""));
    let frame = Frame::new(Command::Send).header("empty", "");
    assert_eq!(&encode_to_bytes(&frame, V12)[..], b"SEND\nempty:\n\n\0");
    assert_eq!(round_trip(&frame, V12), frame);
}

/// Spec "Frames and Headers": commands are case-sensitive; every command is recognised by its
/// exact name and nothing else is (checklist 18).
#[test]
fn commands_are_case_sensitive() {
    for command in Command::ALL {
        let input = format!("{command}\n\n\0");
        let (frame, consumed) = parse_one(input.as_bytes(), &options(V12));
        assert_eq!(frame.command, command);
        assert_eq!(consumed, input.len());
        let lower = format!("{}\n\n\0", command.as_str().to_lowercase());
        assert_eq!(
            parse_err(lower.as_bytes(), &options(V12)),
            ParseError::UnknownCommand
        );
        let padded = format!("{command} \n\n\0");
        assert_eq!(
            parse_err(padded.as_bytes(), &options(V12)),
            ParseError::UnknownCommand
        );
    }
    assert_eq!(
        parse_err(b"Send\n\n\0", &options(V12)),
        ParseError::UnknownCommand
    );
}

/// Spec "content-length": framing, not content. The parser consumes it (the first one when
/// repeated) and it never appears in `headers`.
#[test]
fn content_length_is_consumed() {
    let input = b"SEND\ncontent-length:3\na:1\ncontent-length:99\n\nxyz\0";
    let (frame, consumed) = parse_one(input, &options(V12));
    assert_eq!(consumed, input.len());
    assert_eq!(header_list(&frame), pairs(&[("a", "1")]));
    assert!(!frame.headers.contains("content-length"));
    assert_eq!(frame.body, Bytes::from_static(b"xyz"));
    for version in Version::ALL {
        let (frame, _) = parse_one(b"SEND\ncontent-length:1\n\nq\0", &options(version));
        assert!(frame.headers.is_empty(), "{version}");
        assert_eq!(frame.body, Bytes::from_static(b"q"));
    }
}

/// Spec "content-length": "SHOULD be included" on frames with a body; Herald writes it on
/// every frame with a body, never on an empty one, and ignores a stale one in `headers`.
#[test]
fn encoder_writes_content_length_for_every_body() {
    for version in Version::ALL {
        for command in [Command::Send, Command::Message, Command::Error] {
            let frame = Frame::new(command)
                .header("content-length", "999")
                .header("a", "1")
                .body(&b"x\0y"[..]);
            let wire = encode_to_bytes(&frame, version);
            let expected = format!("{command}\na:1\ncontent-length:3\n\nx\0y\0");
            assert_eq!(&wire[..], expected.as_bytes(), "{version}");
            let mut back = frame.clone();
            back.headers.remove("content-length");
            assert_eq!(decode_one(&wire, &options(version)), back);
        }
        let empty = Frame::new(Command::Send).header("content-length", "5");
        assert_eq!(&encode_to_bytes(&empty, version)[..], b"SEND\n\n\0");
    }
}

/// Spec "Value Encoding": the encoder escapes per version, and what it writes parses back to
/// the same frame.
#[test]
fn encoder_escapes_per_version() {
    let frame = Frame::new(Command::Message)
        .header("a:b", "c\\d\ne:f")
        .header("cr", "x\ry");
    let v12 = encode_to_bytes(&frame, V12);
    assert_eq!(&v12[..], b"MESSAGE\na\\cb:c\\\\d\\ne\\cf\ncr:x\\ry\n\n\0");
    assert_eq!(round_trip(&frame, V12), frame);

    // 1.1 has no `\r` escape: a CR is written as a space, never raw (a lenient reader could
    // take it for a line end).
    let v11 = encode_to_bytes(&frame, V11);
    assert_eq!(&v11[..], b"MESSAGE\na\\cb:c\\\\d\\ne\\cf\ncr:x y\n\n\0");
    assert_eq!(
        header_list(&decode_one(&v11, &options(V11))),
        pairs(&[("a:b", "c\\d\ne:f"), ("cr", "x y")])
    );

    // 1.0 cannot represent CR, LF, or `:` in a name: they become spaces.
    let v10 = encode_to_bytes(&frame, V10);
    assert_eq!(&v10[..], b"MESSAGE\na b:c\\d e:f\ncr:x y\n\n\0");
    assert_eq!(
        header_list(&decode_one(&v10, &options(V10))),
        pairs(&[("a b", "c\\d e:f"), ("cr", "x y")])
    );
}

/// STOMP 1.0 has no escaping, so a CR or LF in a value could end the header line and inject
/// headers or whole frames; the encoder writes them as spaces instead, and a NUL too (no
/// version can carry one).
#[test]
fn v1_0_encoding_cannot_inject_headers() {
    let evil = "x\ninjected:1\n\nBODY\0MESSAGE\r\nfake:2";
    let frame = Frame::new(Command::Message).header("destination", evil);
    let wire = encode_to_bytes(&frame, V10);
    assert_eq!(
        &wire[..],
        b"MESSAGE\ndestination:x injected:1  BODY MESSAGE  fake:2\n\n\0"
    );
    let outcome = parse_stream(&wire, &options(V10));
    assert_eq!(outcome.end, Ok(0));
    let frames = outcome.frames();
    assert_eq!(frames.len(), 1);
    assert_eq!(
        header_list(&frames[0]),
        pairs(&[("destination", "x injected:1  BODY MESSAGE  fake:2")])
    );
    assert!(frames[0].body.is_empty());
    // The same holds for names, and for CONNECT/CONNECTED in any version.
    let frame = Frame::new(Command::Connected).header("a\nb:c", "d\re");
    for version in Version::ALL {
        assert_eq!(
            &encode_to_bytes(&frame, version)[..],
            b"CONNECTED\na b c:d e\n\n\0"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// MessageTemplate
// ---------------------------------------------------------------------------------------------

fn publisher_headers() -> Headers {
    [
        ("destination", "/ignored"),
        ("content-type", "text/plain"),
        ("message-id", "ignored"),
        ("subscription", "ignored"),
        ("x-custom", "a:b"),
        ("ack", "ignored"),
        ("content-length", "1234"),
        ("x-custom", "second"),
    ]
    .into_iter()
    .collect()
}

/// Spec "MESSAGE": `destination`, `message-id` and `subscription` are required, `ack` present
/// in client ack modes, the publisher's own headers passed through (checklist 24, 25);
/// `render` and `render_into` write the same bytes and they parse back.
#[test]
fn message_template_renders_a_message() {
    let headers = publisher_headers();
    let body = b"hi\0there";
    for version in Version::ALL {
        let template = MessageTemplate::new(version, "/topic/a:b", "m-1", &headers, body);
        for ack in [None, Some("ack-7")] {
            let rendered = template.render("sub-0", ack);
            let mut into = BytesMut::from(&b"PREFIX"[..]);
            template.render_into("sub-0", ack, &mut into);
            assert_eq!(&into[..6], b"PREFIX");
            assert_eq!(&into[6..], &rendered[..]);

            let frame = decode_one(&rendered, &options(version));
            assert_eq!(frame.command, Command::Message);
            let mut expected = vec![
                ("destination", "/topic/a:b"),
                ("message-id", "m-1"),
                ("subscription", "sub-0"),
            ];
            if let Some(ack) = ack {
                expected.push(("ack", ack));
            }
            expected.extend([
                ("content-type", "text/plain"),
                ("x-custom", "a:b"),
                ("x-custom", "second"),
            ]);
            assert_eq!(header_list(&frame), pairs(&expected), "{version} {ack:?}");
            assert_eq!(frame.body, Bytes::from_static(body));
        }
    }
    // 1.2 escaping applies to the template's headers.
    let template = MessageTemplate::new(V12, "/a:b", "m\n1", &Headers::new(), b"");
    assert_eq!(
        &template.render("s:1", Some("k"))[..],
        b"MESSAGE\ndestination:/a\\cb\nmessage-id:m\\n1\nsubscription:s\\c1\nack:k\n\n\0"
    );
}

/// `MessageTemplate::render` shares one buffer for repeated renders of the same subscription
/// id, and still renders a correct, distinct frame for another id.
#[test]
fn message_template_shares_memory_for_same_subscription() {
    let template = MessageTemplate::new(V12, "/topic/t", "m-9", &Headers::new(), b"payload");
    let first = template.render("sub-0", None);
    let second = template.render("sub-0", None);
    assert_eq!(first, second);
    assert_eq!(first.as_ptr(), second.as_ptr(), "same id shares one buffer");

    let other = template.render("sub-1", None);
    assert_ne!(other.as_ptr(), first.as_ptr());
    let frame = decode_one(&other, &options(V12));
    assert_eq!(
        header_list(&frame),
        pairs(&[
            ("destination", "/topic/t"),
            ("message-id", "m-9"),
            ("subscription", "sub-1"),
        ])
    );
    assert_eq!(frame.body, Bytes::from_static(b"payload"));
    // The shared buffer is still the first id's frame.
    assert_eq!(
        decode_one(&template.render("sub-0", None), &options(V12))
            .headers
            .get("subscription"),
        Some("sub-0")
    );
    // A render with an ack header is not the shared frame.
    let acked = template.render("sub-0", Some("a-1"));
    assert_ne!(acked.as_ptr(), first.as_ptr());
    assert_eq!(
        decode_one(&acked, &options(V12)).headers.get("ack"),
        Some("a-1")
    );
}

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

/// The decoder hands out bodies as slices of the bytes read, not copies.
#[test]
fn decoder_body_is_zero_copy() {
    let input = b"SEND\ncontent-length:5\n\nab\0cd\0SEND\n\nxyz\0";
    let mut buf = BytesMut::from(&input[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let mut decoder = Decoder::new(options(V12));

    let Ok(Some(Decoded::Frame(first))) = decoder.decode(&mut buf) else {
        panic!("first frame")
    };
    assert_eq!(first.body, Bytes::from_static(b"ab\0cd"));
    let at = first.body.as_ptr() as usize;
    assert!(at >= start && at + first.body.len() <= end);
    assert_eq!(at, start + 23, "the body is where it was read");

    let Ok(Some(Decoded::Frame(second))) = decoder.decode(&mut buf) else {
        panic!("second frame")
    };
    assert_eq!(second.body, Bytes::from_static(b"xyz"));
    let at = second.body.as_ptr() as usize;
    assert!(at >= start && at + second.body.len() <= end);
    assert_eq!(at, start + 29 + 6);
    assert!(buf.is_empty());
}

/// Spec "Value Encoding": the version is known only after CONNECT; `set_options` makes the
/// decoder unescape the following frames for the negotiated version.
#[test]
fn decoder_set_options_changes_escaping() {
    let mut buf = BytesMut::from(
        &b"CONNECT\naccept-version:1.0\nhost:h\\n\n\n\0SEND\na:x\\ny\n\n\0SEND\nb:\\r\n\n\0"[..],
    );
    let mut decoder = Decoder::new(ParseOptions::default());
    let got = decoder.decode(&mut buf);
    let Ok(Some(Decoded::Frame(connect))) = got else {
        panic!("connect: {got:?}")
    };
    assert_eq!(connect.headers.get("host"), Some("h\\n"));

    // Under 1.2 the next SEND would be unescaped; after switching to 1.0 it is literal.
    assert_eq!(
        parse_one(&buf, &options(V12)).0.headers.get("a"),
        Some("x\ny")
    );
    decoder.set_options(options(V10));
    assert_eq!(decoder.options().version, V10);
    let Ok(Some(Decoded::Frame(send))) = decoder.decode(&mut buf) else {
        panic!("send")
    };
    assert_eq!(send.headers.get("a"), Some("x\\ny"));

    // And switching to 1.1 makes `\r` an error.
    decoder.set_options(options(V11));
    assert_eq!(
        decoder.decode(&mut buf),
        Err(ParseError::InvalidEscape { escape: 'r' })
    );
}
