//! Topics across nodes (semantics.md §2, §6): delivery both ways, fan-out once per subscription,
//! headers and body unchanged, order, unique message ids, receipts, unsubscribe; and queue
//! messages once.

use std::collections::HashSet;

use super::{
    await_route, expect_measured, measured_bodies, measured_bodies_of, measured_messages,
    subscribe, with_receipt,
};
use crate::cases::PASS;
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("cluster.topic_to_peer", ["cluster", "topic"], topic_to_peer),
        case!(
            "cluster.topic_from_peer",
            ["cluster", "topic"],
            topic_from_peer
        ),
        case!(
            "cluster.headers_and_body_across_nodes",
            ["cluster", "topic", "escaping"],
            headers_and_body_across_nodes
        ),
        case!(
            "cluster.fanout_once_each",
            ["cluster", "topic"],
            fanout_once_each
        ),
        case!(
            "cluster.order_across_nodes",
            ["cluster", "topic"],
            order_across_nodes
        ),
        case!(
            "cluster.message_ids_unique",
            ["cluster", "topic"],
            message_ids_unique
        ),
        case!(
            "cluster.receipt_for_cross_node_send",
            ["cluster", "topic", "receipt"],
            receipt_for_cross_node_send
        ),
        case!(
            "cluster.unsubscribe_across_nodes",
            ["cluster", "topic", "subscribe"],
            unsubscribe_across_nodes
        ),
        case!(
            "cluster.queue_once_across_nodes",
            ["cluster", "queue"],
            queue_once_across_nodes
        )
        .needs(&[Need::Queues]),
    ]
}

/// Sessions on each node: `(publisher, subscriber)`, the publisher on the peer when
/// `from_peer`; the subscriber is subscribed to `topic` as `s1` and routed to.
async fn routed_pair(ctx: &Ctx, topic: &str, from_peer: bool) -> Result<(Conn, Conn), String> {
    let (mut publisher, mut subscriber) = if from_peer {
        (ctx.connect_peer().await?, ctx.connect().await?)
    } else {
        (ctx.connect().await?, ctx.connect_peer().await?)
    };
    subscribe(&mut subscriber, topic, "s1", ctx).await?;
    await_route(ctx, &mut publisher, &mut subscriber, topic).await?;
    Ok((publisher, subscriber))
}

/// A publish on one node reaches a subscriber on the other, once, with its destination and
/// subscription.
async fn one_way(ctx: Ctx, from_peer: bool) -> CaseResult {
    let topic = ctx.topic("x");
    let (mut publisher, mut subscriber) = routed_pair(&ctx, &topic, from_peer).await?;
    publisher.publish(&topic, "across").await?;
    let message = expect_measured(&mut subscriber, "across", &ctx).await?;
    ensure!(
        message.header("destination") == Some(topic.as_str())
            && message.header("subscription") == Some("s1"),
        "MESSAGE across nodes: {message}"
    );
    let rest = measured_bodies(&mut subscriber, &ctx).await?;
    ensure!(rest.is_empty(), "then also {rest:?}");
    PASS
}

/// semantics.md §6: a topic message published on `--url` reaches a subscriber on the peer.
async fn topic_to_peer(ctx: Ctx) -> CaseResult {
    one_way(ctx, false).await
}

/// semantics.md §6: a topic message published on the peer reaches a subscriber on `--url`.
async fn topic_from_peer(ctx: Ctx) -> CaseResult {
    one_way(ctx, true).await
}

/// semantics.md §2 "Header values round-trip exactly", across nodes: escaped names and values
/// (colon, CR, LF, backslash), padding, an empty value, UTF-8, and a binary body with NULs.
async fn headers_and_body_across_nodes(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("h");
    let (mut publisher, mut subscriber) = routed_pair(&ctx, &topic, false).await?;
    // (raw header line, decoded name, decoded value)
    let headers = [
        (r"x-esc:a\r\n\c\\b", "x-esc", "a\r\n:\\b"),
        (r"x\cname:colon in the name", "x:name", "colon in the name"),
        ("x-padded:  two spaces  ", "x-padded", "  two spaces  "),
        ("x-empty:", "x-empty", ""),
        (
            "x-utf8:d\u{e9}j\u{e0} \u{20ac}",
            "x-utf8",
            "d\u{e9}j\u{e0} \u{20ac}",
        ),
        (
            "content-type:application/octet-stream",
            "content-type",
            "application/octet-stream",
        ),
    ];
    let body: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    let mut frame = format!("SEND\ndestination:{topic}\n");
    for (raw, _, _) in &headers {
        frame.push_str(raw);
        frame.push('\n');
    }
    frame.push_str(&format!("content-length:{}\n\n", body.len()));
    let mut bytes = frame.into_bytes();
    bytes.extend_from_slice(&body);
    bytes.push(0);
    publisher.send(&bytes).await?;
    let mut messages = measured_messages(&mut subscriber, &ctx).await?;
    ensure!(
        messages.len() == 1,
        "{} MESSAGEs arrived, expected one",
        messages.len()
    );
    let message = messages.remove(0);
    for (_, name, value) in headers {
        ensure!(
            message.header(name) == Some(value),
            "header {name:?} arrived as {:?}, expected {value:?}",
            message.header(name)
        );
    }
    ensure!(
        message.frame.body.as_ref() == body.as_slice(),
        "the body changed across nodes ({} bytes, expected {})",
        message.frame.body.len(),
        body.len()
    );
    PASS
}

/// semantics.md §6: with two subscribers on each node and a publisher on each, every
/// subscriber gets each message exactly once (a node never echoes its own publish back
/// through the other).
async fn fanout_once_each(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("fan");
    let mut subscribers = Vec::new();
    for peer in [false, false, true, true] {
        let mut conn = if peer {
            ctx.connect_peer().await?
        } else {
            ctx.connect().await?
        };
        subscribe(&mut conn, &topic, "s1", &ctx).await?;
        subscribers.push(conn);
    }
    let mut on_url = ctx.connect().await?;
    let mut on_peer = ctx.connect_peer().await?;
    // Each publisher's messages must route to the other node before measuring.
    await_route(&ctx, &mut on_url, &mut subscribers[2], &topic).await?;
    await_route(&ctx, &mut on_peer, &mut subscribers[0], &topic).await?;
    on_url.publish(&topic, "from url").await?;
    on_peer.publish(&topic, "from peer").await?;
    let received = measured_bodies_of(subscribers.iter_mut().collect(), &ctx).await?;
    for (n, mut got) in received.into_iter().enumerate() {
        got.sort();
        let node = if n < 2 { "--url" } else { "the peer" };
        ensure!(
            got == ["from peer", "from url"],
            "subscriber {n} on {node} received {got:?}"
        );
    }
    PASS
}

/// semantics.md §2, §6: 1,000 messages from one publisher arrive on the other node in order,
/// each once.
async fn order_across_nodes(ctx: Ctx) -> CaseResult {
    const COUNT: usize = 1000;
    let topic = ctx.topic("order");
    let (mut publisher, mut subscriber) = routed_pair(&ctx, &topic, false).await?;
    let mut bytes = Vec::new();
    for n in 0..COUNT {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &topic)
                .body(n.to_string())
                .bytes(),
        );
    }
    publisher.send(&bytes).await?;
    for n in 0..COUNT {
        expect_measured(&mut subscriber, &n.to_string(), &ctx)
            .await
            .map_err(|e| format!("message {n} of {COUNT}: {e}"))?;
    }
    let rest = measured_bodies(&mut subscriber, &ctx).await?;
    ensure!(rest.is_empty(), "after the {COUNT} messages also {rest:?}");
    PASS
}

/// STOMP `message-id` is unique: messages published on both nodes carry distinct ids at a
/// subscriber on each node.
async fn message_ids_unique(ctx: Ctx) -> CaseResult {
    const EACH: usize = 25;
    let topic = ctx.topic("ids");
    let mut local = ctx.connect().await?;
    subscribe(&mut local, &topic, "s1", &ctx).await?;
    let mut remote = ctx.connect_peer().await?;
    subscribe(&mut remote, &topic, "s1", &ctx).await?;
    let mut on_url = ctx.connect().await?;
    let mut on_peer = ctx.connect_peer().await?;
    await_route(&ctx, &mut on_url, &mut remote, &topic).await?;
    await_route(&ctx, &mut on_peer, &mut local, &topic).await?;
    for n in 0..EACH {
        on_url.publish(&topic, &format!("u{n}")).await?;
        on_peer.publish(&topic, &format!("p{n}")).await?;
    }
    let (at_url, at_peer) = tokio::try_join!(
        measured_messages(&mut local, &ctx),
        measured_messages(&mut remote, &ctx)
    )?;
    for (node, messages) in [("--url", at_url), ("the peer", at_peer)] {
        ensure!(
            messages.len() == 2 * EACH,
            "the subscriber on {node} received {} messages, expected {}",
            messages.len(),
            2 * EACH
        );
        let mut ids = HashSet::new();
        for message in &messages {
            let id = message.need("message-id")?;
            ensure!(ids.insert(id.to_owned()), "message-id {id} twice on {node}");
        }
    }
    PASS
}

/// semantics.md §1 "RECEIPT": a SEND with a receipt is answered whether its subscribers are on
/// the other node or nowhere, and the message still arrives.
async fn receipt_for_cross_node_send(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("r");
    let (mut publisher, mut subscriber) = routed_pair(&ctx, &topic, false).await?;
    let send = Out::new("SEND").h("destination", &topic).body("receipted");
    with_receipt(&mut publisher, send, &ctx).await?;
    expect_measured(&mut subscriber, "receipted", &ctx).await?;
    let nowhere = Out::new("SEND")
        .h("destination", &ctx.topic("nobody"))
        .body("unheard");
    with_receipt(&mut publisher, nowhere, &ctx).await?;
    PASS
}

/// Unsubscribing on one node stops delivery from the other: of two subscriptions on the
/// peer, the one left still gets messages; after the last is gone nothing arrives; a new
/// subscription is routed again.
async fn unsubscribe_across_nodes(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("unsub");
    let mut publisher = ctx.connect().await?;
    let mut remote = ctx.connect_peer().await?;
    subscribe(&mut remote, &topic, "s1", &ctx).await?;
    subscribe(&mut remote, &topic, "s2", &ctx).await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    let unsubscribe = |id: &str| Out::new("UNSUBSCRIBE").h("id", id);
    with_receipt(&mut remote, unsubscribe("s1"), &ctx).await?;
    publisher.publish(&topic, "one left").await?;
    let message = expect_measured(&mut remote, "one left", &ctx).await?;
    ensure!(
        message.header("subscription") == Some("s2"),
        "after UNSUBSCRIBE s1: {message}"
    );
    let rest = measured_bodies(&mut remote, &ctx).await?;
    ensure!(rest.is_empty(), "after UNSUBSCRIBE s1 also {rest:?}");

    with_receipt(&mut remote, unsubscribe("s2"), &ctx).await?;
    publisher.publish(&topic, "nobody left").await?;
    ctx.sync(&mut publisher).await?;
    let late = measured_bodies(&mut remote, &ctx).await?;
    ensure!(
        late.is_empty(),
        "after the last UNSUBSCRIBE received {late:?}"
    );

    subscribe(&mut remote, &topic, "s3", &ctx).await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    publisher.publish(&topic, "again").await?;
    let message = expect_measured(&mut remote, "again", &ctx).await?;
    ensure!(
        message.header("subscription") == Some("s3"),
        "after subscribing again: {message}"
    );
    PASS
}

/// semantics.md §3, §6: each queue message reaches exactly one subscriber, whichever node it
/// is on. (Herald's queues are node-local until they move to JetStream: every message then
/// goes to the subscriber on the publishing node; what matters here is "never twice".)
async fn queue_once_across_nodes(ctx: Ctx) -> CaseResult {
    let queue = ctx.queue("q");
    let mut local = ctx.connect().await?;
    local.subscribe(&queue, "s1", ctx.wait()).await?;
    let mut remote = ctx.connect_peer().await?;
    remote.subscribe(&queue, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    for n in 0..20 {
        publisher.publish(&queue, &format!("m{n}")).await?;
    }
    ctx.sync(&mut publisher).await?;
    let mut got = measured_bodies_of(vec![&mut local, &mut remote], &ctx)
        .await?
        .concat();
    got.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    expected.sort();
    ensure!(got == expected, "queue messages across nodes: {got:?}");
    PASS
}
