//! Acknowledgement modes `client` and `client-individual`, NACK, prefetch (spec "SUBSCRIBE
//! ack Header", "ACK", "NACK"; peers §6.1 #26–#29; semantics.md §3).

use super::{PASS, bodies, drain, leave};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out, Received};
use crate::{case, ensure};

const QUEUE_ACKS: &[Need] = &[Need::Queues, Need::Acks];
const ACKS: &[Need] = &[Need::Acks];

pub fn cases() -> Vec<Case> {
    vec![
        case!("ack.client_individual", ["ack", "queue"], client_individual).needs(QUEUE_ACKS),
        case!("ack.client_cumulative", ["ack", "queue"], client_cumulative).needs(QUEUE_ACKS),
        case!("ack.nack_redelivers", ["ack", "queue"], nack_redelivers).needs(QUEUE_ACKS),
        case!("ack.prefetch_count", ["ack", "queue"], prefetch_count).needs(QUEUE_ACKS),
        case!(
            "ack.unsubscribe_requeues",
            ["ack", "queue"],
            unsubscribe_requeues
        )
        .needs(QUEUE_ACKS),
        case!(
            "ack.topic_client_ack_nack",
            ["ack", "topic"],
            topic_client_ack_nack
        )
        .needs(ACKS),
    ]
}

/// A session subscribed to `destination` with this ack mode (and extra headers).
async fn subscriber(
    ctx: &Ctx,
    destination: &str,
    ack: &str,
    extra: &[(&str, &str)],
) -> Result<Conn, String> {
    let mut conn = ctx.connect().await?;
    let mut frame = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", destination)
        .h("ack", ack);
    for (name, value) in extra {
        frame = frame.h(name, value);
    }
    conn.subscribe_out(frame, ctx.wait()).await?;
    Ok(conn)
}

async fn publish_n(ctx: &Ctx, destination: &str, n: usize) -> Result<(), String> {
    let mut publisher = ctx.connect().await?;
    for i in 0..n {
        publisher.publish(destination, &format!("m{i}")).await?;
    }
    ctx.sync(&mut publisher).await?;
    Ok(())
}

/// The MESSAGE's `ack` header, required in client modes.
fn ack_id(message: &Received) -> Result<String, String> {
    message
        .need("ack")
        .map(str::to_owned)
        .map_err(|e| format!("client-ack MESSAGE without ack header: {e}"))
}

/// Sends ACK or NACK for `message`, without a receipt (a redelivery may precede one).
async fn ack(conn: &mut Conn, command: &str, message: &Received) -> Result<(), String> {
    let id = ack_id(message)?;
    conn.send_out(&Out::new(command).h("id", &id)).await
}

/// Peers §6.1 #27, #29: only the ACKed message is settled; the others come back, marked
/// `redelivered:true`, to the next subscriber once the first one leaves.
async fn client_individual(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("ci");
    let mut a = subscriber(&ctx, &queue, "client-individual", &[]).await?;
    publish_n(&ctx, &queue, 3).await?;
    let mut messages = Vec::new();
    for n in 0..3 {
        messages.push(a.expect_body(&format!("m{n}"), ctx.wait()).await?);
    }
    ack(&mut a, "ACK", &messages[1]).await?;
    leave(&ctx, a).await?;
    let mut b = subscriber(&ctx, &queue, "auto", &[]).await?;
    for body in ["m0", "m2"] {
        let message = b.expect_body(body, ctx.wait()).await?;
        ensure!(
            message.header("redelivered") == Some("true"),
            "redelivered {body} lacks redelivered:true: {message}"
        );
    }
    b.expect_silence(ctx.quiet()).await?;
    PASS
}

/// Peers §6.1 #26: in `client` mode an ACK settles every earlier message too.
async fn client_cumulative(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("cc");
    let mut a = subscriber(&ctx, &queue, "client", &[]).await?;
    publish_n(&ctx, &queue, 3).await?;
    let mut messages = Vec::new();
    for n in 0..3 {
        messages.push(a.expect_body(&format!("m{n}"), ctx.wait()).await?);
    }
    ack(&mut a, "ACK", &messages[1]).await?;
    leave(&ctx, a).await?;
    let mut b = subscriber(&ctx, &queue, "auto", &[]).await?;
    let got = bodies(&drain(&mut b, &ctx).await?)?;
    ensure!(
        got == ["m2"],
        "after a cumulative ACK of m1, redelivered {got:?}, expected [m2]"
    );
    PASS
}

/// semantics.md §3: NACK returns the message, which comes again with `redelivered:true`.
async fn nack_redelivers(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("nack");
    let mut a = subscriber(&ctx, &queue, "client-individual", &[]).await?;
    publish_n(&ctx, &queue, 1).await?;
    let first = a.expect_body("m0", ctx.wait()).await?;
    ack(&mut a, "NACK", &first).await?;
    let again = a.expect_body("m0", ctx.wait()).await?;
    ensure!(
        again.header("redelivered") == Some("true"),
        "redelivery lacks redelivered:true: {again}"
    );
    ack(&mut a, "ACK", &again).await?;
    a.expect_silence(ctx.quiet()).await?;
    PASS
}

/// semantics.md §3: `prefetch-count:1` allows one unacknowledged message at a time.
async fn prefetch_count(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("prefetch");
    let mut a = subscriber(
        &ctx,
        &queue,
        "client-individual",
        &[("prefetch-count", "1")],
    )
    .await?;
    publish_n(&ctx, &queue, 3).await?;
    for n in 0..3 {
        let message = a.expect_body(&format!("m{n}"), ctx.wait()).await?;
        a.expect_silence(ctx.quiet())
            .await
            .map_err(|e| format!("with m{n} unacknowledged and prefetch-count:1: {e}"))?;
        ack(&mut a, "ACK", &message).await?;
    }
    PASS
}

/// semantics.md §3: UNSUBSCRIBE returns unacknowledged messages to the queue.
async fn unsubscribe_requeues(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("unsub");
    let mut a = subscriber(&ctx, &queue, "client-individual", &[]).await?;
    publish_n(&ctx, &queue, 1).await?;
    a.expect_body("m0", ctx.wait()).await?;
    a.unsubscribe("s1", ctx.wait()).await?;
    let mut b = subscriber(&ctx, &queue, "auto", &[]).await?;
    let message = b.expect_body("m0", ctx.wait()).await?;
    ensure!(
        message.header("redelivered") == Some("true"),
        "requeued message lacks redelivered:true: {message}"
    );
    PASS
}

/// semantics.md §3: a topic subscription in client mode has `ack` headers, and NACK redelivers
/// to the same subscription.
async fn topic_client_ack_nack(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("tack");
    let mut a = subscriber(&ctx, &topic, "client-individual", &[]).await?;
    publish_n(&ctx, &topic, 1).await?;
    let first = a.expect_body("m0", ctx.wait()).await?;
    ack(&mut a, "NACK", &first).await?;
    let again = a.expect_body("m0", ctx.wait()).await?;
    ensure!(
        again.header("subscription") == Some("s1"),
        "redelivered to {:?}",
        again.header("subscription")
    );
    ack(&mut a, "ACK", &again).await?;
    a.expect_silence(ctx.quiet()).await?;
    PASS
}
