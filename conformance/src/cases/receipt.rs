//! Receipts (spec "Header receipt", "RECEIPT"; peers §6.1 #33–#34; semantics.md §1 "RECEIPT after
//! the frame has taken effect, in frame order").

use herald_protocol::Command;

use super::{PASS, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("receipt.subscribe", ["receipt", "subscribe"], subscribe),
        case!("receipt.send", ["receipt"], send),
        case!("receipt.unsubscribe", ["receipt", "subscribe"], unsubscribe),
        case!("receipt.in_frame_order", ["receipt"], in_frame_order),
        case!(
            "receipt.subscription_active_at_receipt",
            ["receipt", "subscribe", "topic"],
            subscription_active_at_receipt
        ),
        case!(
            "receipt.after_own_message",
            ["receipt", "topic", "herald"],
            after_own_message
        ),
        case!(
            "receipt.on_error_frame",
            ["receipt", "error"],
            on_error_frame
        ),
    ]
}

async fn answered(ctx: &Ctx, frame: Out) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.send_out(&frame.h("receipt", "rcpt-77")).await?;
    conn.expect_receipt("rcpt-77", ctx.wait()).await?;
    PASS
}

/// SUBSCRIBE `receipt` → RECEIPT with that `receipt-id`.
async fn subscribe(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &ctx.topic("r"));
    answered(&ctx, frame).await
}

/// SEND `receipt` → RECEIPT.
async fn send(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SEND")
        .h("destination", &ctx.topic("r"))
        .body("receipted");
    answered(&ctx, frame).await
}

/// UNSUBSCRIBE `receipt` → RECEIPT.
async fn unsubscribe(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.subscribe(&ctx.topic("r"), "s1", ctx.wait()).await?;
    conn.send_out(&Out::new("UNSUBSCRIBE").h("id", "s1").h("receipt", "u1"))
        .await?;
    conn.expect_receipt("u1", ctx.wait()).await?;
    PASS
}

/// Receipts for frames written together come back in frame order.
async fn in_frame_order(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    let mut bytes = Vec::new();
    for n in 0..30 {
        let topic = ctx.topic(&format!("o{}", n % 5));
        let frame = match n % 3 {
            0 => Out::new("SUBSCRIBE")
                .h("id", &format!("s{n}"))
                .h("destination", &topic),
            1 => Out::new("SEND")
                .h("destination", &ctx.topic("unheard"))
                .body(format!("m{n}")),
            _ => Out::new("UNSUBSCRIBE").h("id", &format!("s{}", n - 2)),
        };
        bytes.extend(frame.h("receipt", &format!("r{n}")).bytes());
    }
    conn.send(&bytes).await?;
    for n in 0..30 {
        conn.expect_receipt(&format!("r{n}"), ctx.wait()).await?;
    }
    PASS
}

/// Once the SUBSCRIBE receipt is in, a message published from elsewhere is delivered.
async fn subscription_active_at_receipt(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("active");
    let mut publisher = ctx.connect().await?;
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    publisher.publish(&topic, "first").await?;
    sub.expect_body("first", ctx.wait()).await?;
    PASS
}

/// semantics.md §1: a SEND's receipt follows its effect, so a session subscribed to its own
/// destination sees the MESSAGE before the RECEIPT.
async fn after_own_message(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("own");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    let send = Out::new("SEND")
        .h("destination", &topic)
        .h("receipt", "after")
        .body("mine");
    conn.send_out(&send).await?;
    conn.expect_body("mine", ctx.wait())
        .await
        .map_err(|e| format!("MESSAGE must precede the RECEIPT: {e}"))?;
    conn.expect_receipt("after", ctx.wait()).await?;
    PASS
}

/// Peers §6.1 #34: a failing frame with `receipt:x` gets ERROR `receipt-id:x` and `message`,
/// then the connection closes.
async fn on_error_frame(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    let bad = Out::new("SEND")
        .h("receipt", "bad-1")
        .body("no destination");
    let error = send_expect_error(&ctx, &mut conn, &bad.bytes()).await?;
    ensure!(
        error.header("receipt-id") == Some("bad-1"),
        "ERROR receipt-id {:?}, expected \"bad-1\": {error}",
        error.header("receipt-id")
    );
    ensure!(error.command() == Command::Error, "not an ERROR");
    PASS
}
