//! ERROR frames and what earns one (spec "ERROR", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK";
//! peers §6.1 #22–#23, #28; semantics.md §1–§3).

use herald_protocol::Command;

use super::{PASS, connected_error, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("error.message_header", ["error"], message_header),
        case!(
            "error.body_has_content_type_and_length",
            ["error"],
            body_has_content_type_and_length
        ),
        case!(
            "error.body_has_detail",
            ["error", "herald"],
            body_has_detail
        ),
        case!(
            "error.nothing_processed_after_error",
            ["error"],
            nothing_processed_after_error
        ),
        case!(
            "error.send_without_destination",
            ["error"],
            send_without_destination
        ),
        case!(
            "error.subscribe_without_id",
            ["error", "subscribe"],
            subscribe_without_id
        ),
        case!(
            "error.subscribe_without_destination",
            ["error", "subscribe"],
            subscribe_without_destination
        ),
        case!(
            "error.unsubscribe_without_id",
            ["error", "subscribe"],
            unsubscribe_without_id
        ),
        case!(
            "error.duplicate_subscription_id",
            ["error", "subscribe"],
            duplicate_subscription_id
        ),
        case!(
            "error.send_unknown_destination",
            ["error"],
            send_unknown_destination
        ),
        case!(
            "error.subscribe_unknown_destination",
            ["error", "subscribe"],
            subscribe_unknown_destination
        ),
        case!(
            "error.unknown_destination_message",
            ["error", "herald"],
            unknown_destination_message
        ),
        case!(
            "error.invalid_ack_mode",
            ["error", "subscribe", "herald"],
            invalid_ack_mode
        ),
        case!("error.ack_unknown_id", ["error", "ack"], ack_unknown_id),
        case!("error.ack_without_id", ["error", "ack"], ack_without_id),
        case!("error.nack_unknown_id", ["error", "ack"], nack_unknown_id),
    ]
}

/// Spec "ERROR": the frame SHOULD carry `message`; the connection closes after it.
async fn message_header(ctx: Ctx) -> CaseResult {
    let error = connected_error(&ctx, &Out::new("FOO").bytes()).await?;
    ensure!(
        !error.need("message")?.is_empty(),
        "ERROR has an empty message header"
    );
    PASS
}

/// Spec "ERROR": a body SHOULD come with `content-type` and `content-length`.
async fn body_has_content_type_and_length(ctx: Ctx) -> CaseResult {
    let error = connected_error(&ctx, &Out::new("FOO").bytes()).await?;
    if error.frame.body.is_empty() {
        return PASS;
    }
    error.need("content-type")?;
    let head = error.raw_head();
    ensure!(
        head.contains(&format!("\ncontent-length:{}", error.frame.body.len())),
        "ERROR with a {}-byte body has no matching content-length: {head:?}",
        error.frame.body.len()
    );
    PASS
}

/// semantics.md §1: ERROR carries a short `message` and a body with the detail.
async fn body_has_detail(ctx: Ctx) -> CaseResult {
    let error = connected_error(&ctx, &Out::new("FOO").bytes()).await?;
    ensure!(
        !error.frame.body.is_empty(),
        "ERROR without a body: {error}"
    );
    ensure!(
        error.header("content-type") == Some("text/plain"),
        "ERROR content-type {:?}",
        error.header("content-type")
    );
    PASS
}

/// Frames written after the failing one are not processed: no RECEIPT follows the ERROR.
async fn nothing_processed_after_error(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    let mut bytes = Out::new("FOO").bytes();
    bytes.extend(
        Out::new("SUBSCRIBE")
            .h("id", "s1")
            .h("destination", &ctx.topic("late"))
            .h("receipt", "late")
            .bytes(),
    );
    send_expect_error(&ctx, &mut conn, &bytes).await?;
    PASS
}

/// SEND requires `destination`.
async fn send_without_destination(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("SEND").body("nowhere").bytes()).await?;
    PASS
}

/// Peers §6.1 #22: SUBSCRIBE requires `id` (1.2).
async fn subscribe_without_id(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SUBSCRIBE").h("destination", &ctx.topic("x"));
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// Peers §6.1 #22: SUBSCRIBE requires `destination`.
async fn subscribe_without_destination(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("SUBSCRIBE").h("id", "s1").bytes()).await?;
    PASS
}

/// UNSUBSCRIBE requires `id` (1.2).
async fn unsubscribe_without_id(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.subscribe(&ctx.topic("x"), "s1", ctx.wait()).await?;
    let frame = Out::new("UNSUBSCRIBE").h("destination", &ctx.topic("x"));
    send_expect_error(&ctx, &mut conn, &frame.bytes()).await?;
    PASS
}

/// Peers §6.1 #23: a subscription id used twice on one connection is an error.
async fn duplicate_subscription_id(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.subscribe(&ctx.topic("a"), "dup", ctx.wait()).await?;
    let frame = Out::new("SUBSCRIBE")
        .h("id", "dup")
        .h("destination", &ctx.topic("b"));
    send_expect_error(&ctx, &mut conn, &frame.bytes()).await?;
    PASS
}

/// semantics.md §2: a destination outside every prefix is ERROR (and, as every ERROR, close).
async fn send_unknown_destination(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SEND")
        .h("destination", &format!("/nowhere/{}", ctx.unique("x")))
        .body("lost");
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// semantics.md §2: SUBSCRIBE outside every prefix is ERROR + close.
async fn subscribe_unknown_destination(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &format!("/nowhere/{}", ctx.unique("x")));
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// semantics.md §2: the ERROR says `unknown destination`.
async fn unknown_destination_message(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SEND")
        .h("destination", &format!("/nowhere/{}", ctx.unique("x")))
        .body("lost");
    let error = connected_error(&ctx, &frame.bytes()).await?;
    ensure!(
        error.header("message") == Some("unknown destination"),
        "ERROR message {:?}, expected \"unknown destination\"",
        error.header("message")
    );
    PASS
}

/// semantics.md §3: `ack` is auto, client or client-individual; anything else is an error.
async fn invalid_ack_mode(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &ctx.topic("x"))
        .h("ack", "sometimes");
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// Peers §6.1 #28, semantics.md §3: ACK of an id no MESSAGE carried is an error.
async fn ack_unknown_id(ctx: Ctx) -> CaseResult {
    let frame = Out::new("ACK").h("id", &ctx.unique("never-sent"));
    let error = connected_error(&ctx, &frame.bytes()).await?;
    ensure!(error.command() == Command::Error, "not an ERROR");
    PASS
}

/// ACK requires `id` (1.2).
async fn ack_without_id(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("ACK").bytes()).await?;
    PASS
}

/// NACK of an id no MESSAGE carried is an error.
async fn nack_unknown_id(ctx: Ctx) -> CaseResult {
    let frame = Out::new("NACK").h("id", &ctx.unique("never-sent"));
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}
