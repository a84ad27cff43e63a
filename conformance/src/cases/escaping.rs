//! Header value encoding per version (spec "Value Encoding"; peers §6.1 #9–#12; semantics.md §2
//! "Header values round-trip exactly").

use herald_protocol::Command;

use super::{PASS, connected_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::{Conn, Out, Received};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("escaping.round_trip", ["escaping"], round_trip),
        case!("escaping.header_name", ["escaping"], header_name),
        case!(
            "escaping.padding_preserved",
            ["escaping", "frames"],
            padding_preserved
        ),
        case!(
            "escaping.undefined_escape",
            ["escaping", "error"],
            undefined_escape
        ),
        case!(
            "escaping.trailing_backslash",
            ["escaping", "error"],
            trailing_backslash
        ),
        case!("escaping.round_trip_1_1", ["escaping"], round_trip_1_1),
        case!(
            "escaping.cr_escape_undefined_in_1_1",
            ["escaping", "error"],
            cr_escape_undefined_in_1_1
        ),
        case!("escaping.none_in_1_0", ["escaping"], none_in_1_0),
        case!("escaping.receipt_id", ["escaping", "receipt"], receipt_id),
        case!("escaping.destination", ["escaping", "topic"], destination),
        case!(
            "escaping.subscription_id",
            ["escaping", "subscribe"],
            subscription_id
        ),
        case!(
            "escaping.mixed_versions",
            ["escaping", "topic"],
            mixed_versions
        ),
    ]
}

/// A session of `accept_version` subscribed to `topic` as `s1`.
async fn subscriber(ctx: &Ctx, accept_version: Option<&str>, topic: &str) -> Result<Conn, String> {
    let mut conn = ctx.connect_with(ctx.connect_frame(accept_version)).await?;
    conn.subscribe(topic, "s1", ctx.wait()).await?;
    Ok(conn)
}

/// Publishes `raw_header` (already encoded, e.g. `x-esc:a\\nb`) from a 1.2 session to a
/// 1.2 subscriber and returns the MESSAGE.
async fn relay(ctx: &Ctx, raw_header: &str) -> Result<Received, String> {
    let topic = ctx.topic("esc");
    let mut sub = subscriber(ctx, Some("1.2"), &topic).await?;
    let mut publisher = ctx.connect().await?;
    let bytes = format!("SEND\ndestination:{topic}\n{raw_header}\n\nbody\0");
    publisher.send(bytes.as_bytes()).await?;
    sub.expect_body("body", ctx.wait()).await
}

/// Peers §6.1 #9: `\r \n \c \\` decode on SEND and are escaped again on MESSAGE.
async fn round_trip(ctx: Ctx) -> CaseResult {
    let message = relay(&ctx, r"x-esc:a\r\n\c\\b").await?;
    ensure!(
        message.header("x-esc") == Some("a\r\n:\\b"),
        "x-esc decoded to {:?}, expected \"a\\r\\n:\\\\b\"",
        message.header("x-esc")
    );
    let head = message.raw_head();
    ensure!(
        head.contains(r"x-esc:a\r\n\c\\b"),
        "MESSAGE does not carry the value escaped as x-esc:a\\r\\n\\c\\\\b: {head:?}"
    );
    PASS
}

/// Escapes apply to header names too: `x\cname` is the name `x:name`.
async fn header_name(ctx: Ctx) -> CaseResult {
    let message = relay(&ctx, r"x\cname:v\\1").await?;
    ensure!(
        message.header("x:name") == Some("v\\1"),
        "header x:name is {:?}: {message}",
        message.header("x:name")
    );
    PASS
}

/// Peers §6.1 #12: leading and trailing spaces in values are kept.
async fn padding_preserved(ctx: Ctx) -> CaseResult {
    let message = relay(&ctx, "x-pad:  padded value  ").await?;
    ensure!(
        message.header("x-pad") == Some("  padded value  "),
        "x-pad is {:?}, expected \"  padded value  \"",
        message.header("x-pad")
    );
    PASS
}

/// Peers §6.1 #10: an undefined escape such as `\t` is a fatal error.
async fn undefined_escape(ctx: Ctx) -> CaseResult {
    let bytes = format!("SEND\ndestination:{}\nx-bad:a\\tb\n\nx\0", ctx.topic("t"));
    connected_error(&ctx, bytes.as_bytes()).await?;
    PASS
}

/// A backslash ending a value escapes nothing: error.
async fn trailing_backslash(ctx: Ctx) -> CaseResult {
    let bytes = format!("SEND\ndestination:{}\nx-bad:ab\\\n\nx\0", ctx.topic("t"));
    connected_error(&ctx, bytes.as_bytes()).await?;
    PASS
}

/// STOMP 1.1 decodes `\n \c \\` and escapes them on MESSAGE.
async fn round_trip_1_1(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("esc11");
    let mut sub = subscriber(&ctx, Some("1.1"), &topic).await?;
    let mut publisher = ctx.connect_version("1.1").await?;
    let bytes = format!("SEND\ndestination:{topic}\nx-esc:a\\n\\c\\\\b\n\nbody\0");
    publisher.send(bytes.as_bytes()).await?;
    let message = sub.expect_body("body", ctx.wait()).await?;
    ensure!(
        message.header("x-esc") == Some("a\n:\\b"),
        "1.1 x-esc decoded to {:?}",
        message.header("x-esc")
    );
    PASS
}

/// STOMP 1.1 defines no `\r` escape, so it is an undefined escape there.
async fn cr_escape_undefined_in_1_1(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect_version("1.1").await?;
    let bytes = format!("SEND\ndestination:{}\nx-bad:a\\rb\n\nx\0", ctx.topic("t"));
    super::send_expect_error(&ctx, &mut conn, bytes.as_bytes()).await?;
    PASS
}

/// STOMP 1.0 has no escaping: a backslash is an ordinary character both ways.
async fn none_in_1_0(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("esc10");
    let mut sub = subscriber(&ctx, None, &topic).await?;
    let mut publisher = ctx.connect_with(ctx.connect_frame(None)).await?;
    let bytes = format!("SEND\ndestination:{topic}\nx-raw:a\\tb\\c\n\nbody\0");
    publisher.send(bytes.as_bytes()).await?;
    let message = sub.expect_body("body", ctx.wait()).await?;
    ensure!(
        message.header("x-raw") == Some("a\\tb\\c"),
        "1.0 x-raw arrived as {:?}, expected the literal a\\tb\\c",
        message.header("x-raw")
    );
    PASS
}

/// A `receipt` value with an escaped colon comes back decoded, escaped on the wire.
async fn receipt_id(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    let bytes = format!(
        "SEND\ndestination:{}\nreceipt:r\\c1\n\nx\0",
        ctx.topic("rid")
    );
    conn.send(bytes.as_bytes()).await?;
    let receipt = conn.expect(Command::Receipt, ctx.wait()).await?;
    ensure!(
        receipt.header("receipt-id") == Some("r:1"),
        "receipt-id is {:?}, expected \"r:1\"",
        receipt.header("receipt-id")
    );
    ensure!(
        receipt.raw_head().contains("receipt-id:r\\c1"),
        "receipt-id not escaped on the wire: {:?}",
        receipt.raw_head()
    );
    PASS
}

/// A destination with an escaped colon is the same destination for SUBSCRIBE and SEND.
async fn destination(ctx: Ctx) -> CaseResult {
    let raw = format!("{}\\cpart", ctx.topic("d"));
    let decoded = raw.replace("\\c", ":");
    let mut sub = ctx.connect().await?;
    let subscribe = Out::new("SUBSCRIBE").h("id", "s1").h("destination", &raw);
    sub.subscribe_out(subscribe, ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher
        .send_out(&Out::new("SEND").h("destination", &raw).body("colon"))
        .await?;
    let message = sub.expect_body("colon", ctx.wait()).await?;
    ensure!(
        message.header("destination") == Some(decoded.as_str()),
        "MESSAGE destination {:?}, expected {decoded:?}",
        message.header("destination")
    );
    PASS
}

/// A subscription id with an escaped colon comes back in `subscription`.
async fn subscription_id(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("sid");
    let mut conn = ctx.connect().await?;
    let subscribe = Out::new("SUBSCRIBE")
        .h("id", "sub\\c1")
        .h("destination", &topic);
    conn.subscribe_out(subscribe, ctx.wait()).await?;
    conn.publish(&topic, "sid").await?;
    let message = conn.expect_body("sid", ctx.wait()).await?;
    ensure!(
        message.header("subscription") == Some("sub:1"),
        "subscription is {:?}, expected \"sub:1\"",
        message.header("subscription")
    );
    PASS
}

/// Subscribers of 1.0, 1.1 and 1.2 each get a value with a colon in their own encoding.
async fn mixed_versions(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("mixed");
    let mut subs = Vec::new();
    for version in [None, Some("1.1"), Some("1.2")] {
        subs.push((version, subscriber(&ctx, version, &topic).await?));
    }
    let mut publisher = ctx.connect().await?;
    let bytes = format!("SEND\ndestination:{topic}\nx-colon:a\\cb\n\nmixed\0");
    publisher.send(bytes.as_bytes()).await?;
    for (version, sub) in &mut subs {
        let message = sub.expect_body("mixed", ctx.wait()).await?;
        ensure!(
            message.header("x-colon") == Some("a:b"),
            "{} subscriber got x-colon {:?}: {:?}",
            version.unwrap_or("1.0"),
            message.header("x-colon"),
            message.raw_head()
        );
    }
    PASS
}
