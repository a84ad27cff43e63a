//! Framing: EOLs, header syntax, repeated headers, bodies, `content-length`, commands
//! (spec "STOMP Frames", "Augmented BNF", "Header content-length"; peers §6.1 #5–#8,
//! #13–#16, #18).

use super::{PASS, connected_error, subscribe_r1};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::{Out, WsKind};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("frames.crlf_line_endings", ["frames"], crlf_line_endings),
        case!(
            "frames.bare_cr_in_header",
            ["frames", "error"],
            bare_cr_in_header
        ),
        case!(
            "frames.eols_between_frames",
            ["frames", "heartbeat"],
            eols_between_frames
        ),
        case!(
            "frames.split_at_every_byte",
            ["frames"],
            split_at_every_byte
        ),
        case!(
            "frames.header_value_with_colon",
            ["frames"],
            header_value_with_colon
        ),
        case!(
            "frames.repeated_header_first_wins",
            ["frames"],
            repeated_header_first_wins
        ),
        case!(
            "frames.repeated_content_length_first_wins",
            ["frames"],
            repeated_content_length_first_wins
        ),
        case!("frames.empty_header_value", ["frames"], empty_header_value),
        case!(
            "frames.utf8_headers_and_body",
            ["frames"],
            utf8_headers_and_body
        ),
        case!(
            "frames.nul_in_body_with_content_length",
            ["frames"],
            nul_in_body_with_content_length
        ),
        case!("frames.binary_body", ["frames"], binary_body),
        case!(
            "frames.body_without_content_length",
            ["frames"],
            body_without_content_length
        ),
        case!("frames.large_body", ["frames"], large_body),
        case!(
            "frames.content_length_too_short",
            ["frames", "error"],
            content_length_too_short
        ),
        case!(
            "frames.content_length_too_long",
            ["frames", "error"],
            content_length_too_long
        ),
        case!(
            "frames.content_length_not_a_number",
            ["frames", "error"],
            content_length_not_a_number
        ),
        case!(
            "frames.content_length_negative",
            ["frames", "error"],
            content_length_negative
        ),
        case!(
            "frames.body_on_subscribe",
            ["frames", "error"],
            body_on_subscribe
        ),
        case!(
            "frames.body_on_unsubscribe",
            ["frames", "error"],
            body_on_unsubscribe
        ),
        case!(
            "frames.unknown_command",
            ["frames", "error"],
            unknown_command
        ),
        case!(
            "frames.lowercase_command",
            ["frames", "error"],
            lowercase_command
        ),
        case!(
            "frames.server_command_from_client",
            ["frames", "error"],
            server_command_from_client
        ),
        case!(
            "frames.header_without_colon",
            ["frames", "error"],
            header_without_colon
        ),
        case!(
            "frames.invalid_utf8_header",
            ["frames", "error", "herald"],
            invalid_utf8_header
        ),
    ]
}

/// Subscribes a fresh session to a fresh topic, publishes `send` (a SEND without
/// destination, which this adds first) from another session, and returns the MESSAGE.
async fn round_trip(ctx: &Ctx, send: Out) -> Result<crate::wire::Received, String> {
    let topic = ctx.topic("rt");
    let mut subscriber = ctx.connect().await?;
    subscriber.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let bytes = send.bytes();
    // Put the destination header right after the command line.
    let at = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("frame without a command line")?
        + 1;
    let mut frame = bytes[..at].to_vec();
    frame.extend_from_slice(format!("destination:{topic}\n").as_bytes());
    frame.extend_from_slice(&bytes[at..]);
    publisher.send(&frame).await?;
    let message = subscriber.expect_message(ctx.wait()).await?;
    ensure!(
        message.header("destination") == Some(topic.as_str()),
        "MESSAGE destination is not {topic}: {message}"
    );
    Ok(message)
}

/// Peers §6.1 #5: frames with CRLF line ends, CONNECT included, are accepted.
async fn crlf_line_endings(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("crlf");
    let mut conn = ctx
        .connect_with(ctx.connect_frame(Some("1.2")).crlf())
        .await?;
    let subscribe = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &topic)
        .h("receipt", "r1")
        .crlf();
    conn.send_out(&subscribe).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    let send = Out::new("SEND")
        .h("destination", &topic)
        .h("x-crlf", "yes")
        .body("crlf body")
        .crlf();
    conn.send_out(&send).await?;
    let message = conn.expect_body("crlf body", ctx.wait()).await?;
    ensure!(
        message.header("x-crlf") == Some("yes"),
        "header lost or carries a CR: {message}"
    );
    PASS
}

/// Peers §6.1 #5: in 1.2 a CR not followed by LF inside a header line is an error.
async fn bare_cr_in_header(ctx: Ctx) -> CaseResult {
    let bytes = format!("SEND\ndestination:{}\nx-cr:a\rb\n\nbody\0", ctx.topic("cr"));
    connected_error(&ctx, bytes.as_bytes()).await?;
    PASS
}

/// Peers §6.1 #6: EOLs between frames and after the NUL are ignored.
async fn eols_between_frames(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("eols");
    let mut conn = ctx.connect().await?;
    let mut bytes = b"\n\r\n".to_vec();
    bytes.extend(subscribe_r1(&topic));
    bytes.extend_from_slice(b"\n\n\r\n");
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .body("one")
            .bytes(),
    );
    bytes.extend_from_slice(b"\r\n");
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .body("two")
            .bytes(),
    );
    bytes.extend_from_slice(b"\n");
    conn.send(&bytes).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    conn.expect_body("one", ctx.wait()).await?;
    conn.expect_body("two", ctx.wait()).await?;
    PASS
}

/// Peers §6.1 #7: frames arriving one byte at a time (one TCP write or WebSocket message per
/// byte) parse as a whole.
async fn split_at_every_byte(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("bytes");
    let mut conn = ctx.connect().await?;
    let mut bytes = subscribe_r1(&topic);
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .h("x-split", "é✓")
            .body("split ✓ body")
            .bytes(),
    );
    let parts: Vec<(WsKind, &[u8])> = bytes.chunks(1).map(|byte| (WsKind::Binary, byte)).collect();
    conn.send_ws(&parts).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    let message = conn.expect_body("split ✓ body", ctx.wait()).await?;
    ensure!(
        message.header("x-split") == Some("é✓"),
        "header changed: {message}"
    );
    PASS
}

/// Peers §6.1 #8: the first colon splits name and value: `x-colon:b:c` has value `b:c`.
async fn header_value_with_colon(ctx: Ctx) -> CaseResult {
    let message = round_trip(&ctx, Out::new("SEND").h("x-colon", "b:c").body("c")).await?;
    ensure!(
        message.header("x-colon") == Some("b:c"),
        "x-colon is {:?}, expected \"b:c\"",
        message.header("x-colon")
    );
    PASS
}

/// Peers §6.1 #13: of a repeated header the first entry counts.
async fn repeated_header_first_wins(ctx: Ctx) -> CaseResult {
    let send = Out::new("SEND")
        .h("x-rep", "World")
        .h("x-rep", "Hello")
        .body("r");
    let message = round_trip(&ctx, send).await?;
    ensure!(
        message.header("x-rep") == Some("World"),
        "first x-rep is {:?}, expected \"World\" (first entry wins): {message}",
        message.header("x-rep")
    );
    PASS
}

/// Spec "Repeated Header Entries" applies to `content-length` too: the first one frames the
/// body, and the MESSAGE carries one `content-length`, recomputed.
async fn repeated_content_length_first_wins(ctx: Ctx) -> CaseResult {
    let send = Out::new("SEND")
        .no_length()
        .h("content-length", "3")
        .h("content-length", "1")
        .body("abc");
    let message = round_trip(&ctx, send).await?;
    ensure!(
        message.body_text() == "abc",
        "body {:?}, expected \"abc\"",
        message.body_text()
    );
    let head = message.raw_head();
    let lengths = head.matches("\ncontent-length:").count();
    ensure!(
        lengths == 1 && head.contains("\ncontent-length:3"),
        "MESSAGE must carry exactly one content-length:3: {head:?}"
    );
    PASS
}

/// An empty header value is a value: `x-empty:` arrives as `x-empty:`.
async fn empty_header_value(ctx: Ctx) -> CaseResult {
    let message = round_trip(&ctx, Out::new("SEND").h("x-empty", "").body("e")).await?;
    ensure!(
        message.header("x-empty") == Some(""),
        "x-empty is {:?}, expected \"\"",
        message.header("x-empty")
    );
    PASS
}

/// Spec "Value Encoding": UTF-8 in header values and bodies arrives unchanged.
async fn utf8_headers_and_body(ctx: Ctx) -> CaseResult {
    let value = "héllo ✓ 日本語 🚀";
    let body = "ünïcødé body ✓ 🚀";
    let send = Out::new("SEND")
        .h("x-utf8", value)
        .h("content-type", "text/plain;charset=utf-8")
        .body(body);
    let message = round_trip(&ctx, send).await?;
    ensure!(
        message.header("x-utf8") == Some(value),
        "x-utf8 is {:?}",
        message.header("x-utf8")
    );
    ensure!(
        message.frame.body.as_ref() == body.as_bytes(),
        "body changed: {message}"
    );
    PASS
}

/// Peers §6.1 #14: a body with NUL octets and `content-length` arrives whole.
async fn nul_in_body_with_content_length(ctx: Ctx) -> CaseResult {
    let body = b"a\0b\0\0c\0";
    let message = round_trip(&ctx, Out::new("SEND").body(body)).await?;
    ensure!(
        message.frame.body.as_ref() == body,
        "body {:?}, expected {:?}",
        message.frame.body,
        body
    );
    ensure!(
        message.raw_head().contains("\ncontent-length:7"),
        "MESSAGE with NULs in its body lacks content-length:7: {:?}",
        message.raw_head()
    );
    PASS
}

/// Every byte value survives in a body sent with `content-length`.
async fn binary_body(ctx: Ctx) -> CaseResult {
    let body: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let message = round_trip(
        &ctx,
        Out::new("SEND")
            .h("content-type", "application/octet-stream")
            .body(&body),
    )
    .await?;
    ensure!(
        message.frame.body.as_ref() == body.as_slice(),
        "binary body changed ({} bytes received, {} sent)",
        message.frame.body.len(),
        body.len()
    );
    PASS
}

/// A body without `content-length` runs to the first NUL.
async fn body_without_content_length(ctx: Ctx) -> CaseResult {
    let message = round_trip(&ctx, Out::new("SEND").no_length().body("no length given")).await?;
    ensure!(
        message.body_text() == "no length given",
        "body changed: {message}"
    );
    PASS
}

/// A body of half the frame limit (at most 1 MiB) arrives whole.
async fn large_body(ctx: Ctx) -> CaseResult {
    let size = (ctx.opts.max_frame_bytes / 2).min(1 << 20);
    let body: Vec<u8> = b"0123456789abcdefghijklmnopqrstuvwxyz"
        .iter()
        .copied()
        .cycle()
        .take(size)
        .collect();
    let message = round_trip(&ctx, Out::new("SEND").body(&body)).await?;
    ensure!(
        message.frame.body.as_ref() == body.as_slice(),
        "{size}-byte body changed ({} bytes received)",
        message.frame.body.len()
    );
    PASS
}

/// Peers §6.1 #15: the octet after `content-length` bytes must be NUL.
async fn content_length_too_short(ctx: Ctx) -> CaseResult {
    let send = Out::new("SEND")
        .h("destination", &ctx.topic("cl"))
        .body("abcd")
        .length("2");
    connected_error(&ctx, &send.bytes()).await?;
    PASS
}

/// Peers §6.1 #15: a `content-length` past the NUL reads into what follows, where no NUL is.
async fn content_length_too_long(ctx: Ctx) -> CaseResult {
    let mut bytes = Out::new("SEND")
        .h("destination", &ctx.topic("cl"))
        .body("ab")
        .length("5")
        .bytes();
    bytes.extend_from_slice(b"\n\n\n\n\n\n\n\n");
    connected_error(&ctx, &bytes).await?;
    PASS
}

/// Peers §6.1 #15: a non-numeric `content-length` is an error.
async fn content_length_not_a_number(ctx: Ctx) -> CaseResult {
    let send = Out::new("SEND")
        .h("destination", &ctx.topic("cl"))
        .body("abc")
        .length("three");
    connected_error(&ctx, &send.bytes()).await?;
    PASS
}

/// Peers §6.1 #15: a negative `content-length` is an error.
async fn content_length_negative(ctx: Ctx) -> CaseResult {
    let send = Out::new("SEND")
        .h("destination", &ctx.topic("cl"))
        .body("abc")
        .length("-1");
    connected_error(&ctx, &send.bytes()).await?;
    PASS
}

/// Peers §6.1 #16: SUBSCRIBE must not have a body.
async fn body_on_subscribe(ctx: Ctx) -> CaseResult {
    let subscribe = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &ctx.topic("b"))
        .no_length()
        .body("not allowed");
    connected_error(&ctx, &subscribe.bytes()).await?;
    PASS
}

/// Peers §6.1 #16: UNSUBSCRIBE must not have a body, even with `content-length`.
async fn body_on_unsubscribe(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.subscribe(&ctx.topic("b"), "s1", ctx.wait()).await?;
    let unsubscribe = Out::new("UNSUBSCRIBE").h("id", "s1").body("nope");
    super::send_expect_error(&ctx, &mut conn, &unsubscribe.bytes()).await?;
    PASS
}

/// Peers §6.1 #18: an unknown command is ERROR + close.
async fn unknown_command(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("FOO").h("x", "y").bytes()).await?;
    PASS
}

/// Spec "Frames and Headers": commands are case-sensitive; `send` is unknown.
async fn lowercase_command(ctx: Ctx) -> CaseResult {
    let send = Out::new("send")
        .h("destination", &ctx.topic("lc"))
        .body("x");
    connected_error(&ctx, &send.bytes()).await?;
    PASS
}

/// A server command (MESSAGE) sent by a client is an error.
async fn server_command_from_client(ctx: Ctx) -> CaseResult {
    let message = Out::new("MESSAGE")
        .h("destination", &ctx.topic("m"))
        .h("message-id", "1")
        .h("subscription", "s1")
        .body("x");
    connected_error(&ctx, &message.bytes()).await?;
    PASS
}

/// A header line without a colon is malformed.
async fn header_without_colon(ctx: Ctx) -> CaseResult {
    let bytes = format!(
        "SEND\ndestination:{}\nno-colon-here\n\nx\0",
        ctx.topic("nc")
    );
    connected_error(&ctx, bytes.as_bytes()).await?;
    PASS
}

/// Spec "Value Encoding": headers are UTF-8; invalid UTF-8 is ERROR + close.
async fn invalid_utf8_header(ctx: Ctx) -> CaseResult {
    let mut bytes = format!("SEND\ndestination:{}\nx-bad:", ctx.topic("u8")).into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, b'a']);
    bytes.extend_from_slice(b"\n\nx\0");
    connected_error(&ctx, &bytes).await?;
    PASS
}
