//! Point-to-point `/queue/` destinations (semantics.md §2, §3; peers §2.1).

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{PASS, bodies, drain};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::Out;
use crate::{case, ensure};

const QUEUES: &[Need] = &[Need::Queues];

pub fn cases() -> Vec<Case> {
    vec![
        case!("queue.point_to_point", ["queue"], point_to_point).needs(QUEUES),
        case!(
            "queue.buffered_until_subscribed",
            ["queue"],
            buffered_until_subscribed
        )
        .needs(QUEUES),
        case!("queue.message_headers", ["queue"], message_headers).needs(QUEUES),
        case!("queue.order_preserved", ["queue"], order_preserved).needs(QUEUES),
        case!(
            "queue.expired_message_dropped",
            ["queue", "herald"],
            expired_message_dropped
        )
        .needs(QUEUES),
    ]
}

/// semantics.md §2: each message goes to exactly one of the queue's subscribers, and with two
/// subscribers both get some (round-robin).
async fn point_to_point(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("p2p");
    let mut a = ctx.connect().await?;
    a.subscribe(&queue, "s1", ctx.wait()).await?;
    let mut b = ctx.connect().await?;
    b.subscribe(&queue, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    for n in 0..10 {
        publisher.publish(&queue, &format!("m{n}")).await?;
    }
    ctx.sync(&mut publisher).await?;
    let got_a = bodies(&drain(&mut a, &ctx).await?)?;
    let got_b = bodies(&drain(&mut b, &ctx).await?)?;
    let mut all: Vec<&String> = got_a.iter().chain(&got_b).collect();
    all.sort();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    ensure!(
        all.len() == 10 && unique.len() == 10,
        "10 messages arrived as {got_a:?} and {got_b:?}: each must reach exactly one subscriber"
    );
    ensure!(
        !got_a.is_empty() && !got_b.is_empty(),
        "one subscriber got everything ({got_a:?} / {got_b:?}), expected round-robin"
    );
    PASS
}

/// semantics.md §2: a queue buffers while no subscriber exists.
async fn buffered_until_subscribed(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("buf");
    let mut publisher = ctx.connect().await?;
    for n in 0..3 {
        publisher.publish(&queue, &format!("m{n}")).await?;
    }
    ctx.sync(&mut publisher).await?;
    let mut sub = ctx.connect().await?;
    sub.subscribe(&queue, "s1", ctx.wait()).await?;
    for n in 0..3 {
        sub.expect_body(&format!("m{n}"), ctx.wait()).await?;
    }
    PASS
}

/// Peers §6.1 #24 for queues: `destination`, `message-id`, `subscription`.
async fn message_headers(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("hdr");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&queue, "qs", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher
        .send_out(
            &Out::new("SEND")
                .h("destination", &queue)
                .h("x-app", "1")
                .body("q"),
        )
        .await?;
    let message = sub.expect_body("q", ctx.wait()).await?;
    ensure!(
        message.header("destination") == Some(queue.as_str()),
        "destination {:?}",
        message.header("destination")
    );
    message.need("message-id")?;
    ensure!(
        message.header("subscription") == Some("qs"),
        "subscription {:?}",
        message.header("subscription")
    );
    ensure!(
        message.header("x-app") == Some("1"),
        "x-app lost: {message}"
    );
    PASS
}

/// One publisher, one subscriber: order is kept.
async fn order_preserved(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("order");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&queue, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let mut bytes = Vec::new();
    for n in 0..100 {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &queue)
                .body(n.to_string())
                .bytes(),
        );
    }
    publisher.send(&bytes).await?;
    for n in 0..100 {
        sub.expect_body(&n.to_string(), ctx.wait()).await?;
    }
    PASS
}

/// semantics.md §3: `expires` (epoch ms) drops a message not delivered by then.
async fn expired_message_dropped(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("exp");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_millis();
    let mut publisher = ctx.connect().await?;
    let expired = Out::new("SEND")
        .h("destination", &queue)
        .h("expires", &(now - 1000).to_string())
        .body("stale");
    let fresh = Out::new("SEND")
        .h("destination", &queue)
        .h("expires", &(now + 600_000).to_string())
        .body("fresh");
    publisher.send_out(&expired).await?;
    publisher.send_out(&fresh).await?;
    ctx.sync(&mut publisher).await?;
    let mut sub = ctx.connect().await?;
    sub.subscribe(&queue, "s1", ctx.wait()).await?;
    let got = bodies(&drain(&mut sub, &ctx).await?)?;
    ensure!(
        got == ["fresh"],
        "received {got:?}, expected only \"fresh\""
    );
    PASS
}
