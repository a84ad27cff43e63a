//! Transactions (spec "BEGIN", "COMMIT", "ABORT"; peers §6.1 #30–#32; semantics.md §3).

use super::{PASS, bodies, connected_error, drain, leave, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

const TX: &[Need] = &[Need::Transactions];
const TX_ACKS: &[Need] = &[Need::Transactions, Need::Acks, Need::Queues];

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "tx.commit_delivers_in_order",
            ["tx", "topic"],
            commit_delivers
        )
        .needs(TX),
        case!("tx.abort_discards", ["tx", "topic"], abort_discards).needs(TX),
        case!(
            "tx.send_receipt_before_commit",
            ["tx", "receipt"],
            send_receipt_before_commit
        )
        .needs(TX),
        case!("tx.begin_twice_error", ["tx", "error"], begin_twice_error).needs(TX),
        case!(
            "tx.commit_unknown_error",
            ["tx", "error"],
            commit_unknown_error
        )
        .needs(TX),
        case!(
            "tx.abort_unknown_error",
            ["tx", "error"],
            abort_unknown_error
        )
        .needs(TX),
        case!(
            "tx.begin_without_transaction_header",
            ["tx", "error"],
            begin_without_transaction_header
        )
        .needs(TX),
        case!("tx.disconnect_aborts", ["tx"], disconnect_aborts).needs(TX),
        case!("tx.connection_loss_aborts", ["tx"], connection_loss_aborts).needs(TX),
        case!("tx.ack_aborted", ["tx", "ack", "queue"], ack_aborted).needs(TX_ACKS),
        case!("tx.ack_committed", ["tx", "ack", "queue"], ack_committed).needs(TX_ACKS),
    ]
}

/// A subscriber on a fresh topic and a publisher that has begun transaction `t1`.
async fn setup(ctx: &Ctx) -> Result<(String, Conn, Conn), String> {
    let topic = ctx.topic("tx");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher
        .send_out(&Out::new("BEGIN").h("transaction", "t1"))
        .await?;
    Ok((topic, sub, publisher))
}

fn tx_send(topic: &str, body: &str) -> Out {
    Out::new("SEND")
        .h("destination", topic)
        .h("transaction", "t1")
        .body(body)
}

/// Peers §6.1 #30: nothing is delivered before COMMIT; then everything, in order.
async fn commit_delivers(ctx: Ctx) -> CaseResult {
    let (topic, mut sub, mut publisher) = setup(&ctx).await?;
    for body in ["a", "b", "c"] {
        publisher.send_out(&tx_send(&topic, body)).await?;
    }
    ctx.sync(&mut publisher).await?;
    sub.expect_silence(ctx.quiet())
        .await
        .map_err(|e| format!("before COMMIT: {e}"))?;
    publisher
        .subscribe_out(Out::new("COMMIT").h("transaction", "t1"), ctx.wait())
        .await?;
    let got = bodies(&drain(&mut sub, &ctx).await?)?;
    ensure!(got == ["a", "b", "c"], "after COMMIT received {got:?}");
    PASS
}

/// Peers §6.1 #30: ABORT discards the transaction's SENDs.
async fn abort_discards(ctx: Ctx) -> CaseResult {
    let (topic, mut sub, mut publisher) = setup(&ctx).await?;
    publisher.send_out(&tx_send(&topic, "never")).await?;
    publisher
        .subscribe_out(Out::new("ABORT").h("transaction", "t1"), ctx.wait())
        .await?;
    publisher.publish(&topic, "outside").await?;
    let got = bodies(&drain(&mut sub, &ctx).await?)?;
    ensure!(got == ["outside"], "after ABORT received {got:?}");
    PASS
}

/// A receipt on a SEND in a transaction confirms receipt, not delivery.
async fn send_receipt_before_commit(ctx: Ctx) -> CaseResult {
    let (topic, mut sub, mut publisher) = setup(&ctx).await?;
    publisher
        .subscribe_out(tx_send(&topic, "held"), ctx.wait())
        .await?;
    sub.expect_silence(ctx.quiet()).await?;
    publisher
        .send_out(&Out::new("COMMIT").h("transaction", "t1"))
        .await?;
    sub.expect_body("held", ctx.wait()).await?;
    PASS
}

/// Peers §6.1 #31: BEGIN of an open transaction id is an error.
async fn begin_twice_error(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.subscribe_out(Out::new("BEGIN").h("transaction", "t1"), ctx.wait())
        .await?;
    send_expect_error(
        &ctx,
        &mut conn,
        &Out::new("BEGIN").h("transaction", "t1").bytes(),
    )
    .await?;
    PASS
}

/// Peers §6.1 #31: COMMIT of an unknown transaction is an error.
async fn commit_unknown_error(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("COMMIT").h("transaction", "nope").bytes()).await?;
    PASS
}

/// ABORT of an unknown transaction is an error.
async fn abort_unknown_error(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("ABORT").h("transaction", "nope").bytes()).await?;
    PASS
}

/// BEGIN requires `transaction`.
async fn begin_without_transaction_header(ctx: Ctx) -> CaseResult {
    connected_error(&ctx, &Out::new("BEGIN").bytes()).await?;
    PASS
}

/// Peers §6.1 #32: DISCONNECT aborts open transactions.
async fn disconnect_aborts(ctx: Ctx) -> CaseResult {
    let (topic, mut sub, mut publisher) = setup(&ctx).await?;
    publisher.send_out(&tx_send(&topic, "orphan")).await?;
    leave(&ctx, publisher).await?;
    sub.expect_silence(ctx.quiet()).await?;
    PASS
}

/// Peers §6.1 #32: losing the connection aborts open transactions.
async fn connection_loss_aborts(ctx: Ctx) -> CaseResult {
    let (topic, mut sub, mut publisher) = setup(&ctx).await?;
    publisher.send_out(&tx_send(&topic, "orphan")).await?;
    ctx.sync(&mut publisher).await?;
    drop(publisher);
    sub.expect_silence(ctx.quiet()).await?;
    PASS
}

/// A client-individual queue subscriber holding one message, and its `ack` id.
async fn holding(ctx: &Ctx, queue: &str) -> Result<(Conn, String), String> {
    let mut a = ctx.connect().await?;
    let subscribe = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", queue)
        .h("ack", "client-individual");
    a.subscribe_out(subscribe, ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(queue, "held").await?;
    let message = a.expect_body("held", ctx.wait()).await?;
    let id = message.need("ack")?.to_owned();
    Ok((a, id))
}

/// Ends `a` and returns what a new subscriber of `queue` receives.
async fn after_leaving(ctx: &Ctx, a: Conn, queue: &str) -> Result<Vec<String>, String> {
    leave(ctx, a).await?;
    let mut b = ctx.connect().await?;
    b.subscribe(queue, "s1", ctx.wait()).await?;
    bodies(&drain(&mut b, ctx).await?)
}

/// semantics.md §3: an ACK in an aborted transaction never happened.
async fn ack_aborted(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("txack");
    let (mut a, id) = holding(&ctx, &queue).await?;
    let mut bytes = Out::new("BEGIN").h("transaction", "t1").bytes();
    bytes.extend(Out::new("ACK").h("id", &id).h("transaction", "t1").bytes());
    bytes.extend(Out::new("ABORT").h("transaction", "t1").bytes());
    a.send(&bytes).await?;
    let got = after_leaving(&ctx, a, &queue).await?;
    ensure!(
        got == ["held"],
        "after an aborted ACK the queue gave {got:?}, expected [held]"
    );
    PASS
}

/// semantics.md §3: an ACK in a committed transaction settles the message.
async fn ack_committed(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("txack");
    let (mut a, id) = holding(&ctx, &queue).await?;
    let mut bytes = Out::new("BEGIN").h("transaction", "t1").bytes();
    bytes.extend(Out::new("ACK").h("id", &id).h("transaction", "t1").bytes());
    bytes.extend(Out::new("COMMIT").h("transaction", "t1").bytes());
    a.send(&bytes).await?;
    let got = after_leaving(&ctx, a, &queue).await?;
    ensure!(
        got.is_empty(),
        "after a committed ACK the queue gave {got:?}"
    );
    PASS
}
