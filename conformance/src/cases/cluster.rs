//! Two nodes of one cluster (SEMANTICS §6): the suite connects to `--url` and `--peer-url`.
//! Skipped without `--peer-url`, and under `--profile herald` until Herald clusters.

use std::time::Duration;

use tokio::time::Instant;

use super::{PASS, bodies, drain};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

const CLUSTER: &[Need] = &[Need::Cluster];
const CLUSTER_QUEUES: &[Need] = &[Need::Cluster, Need::Queues];
const CLUSTER_USERS: &[Need] = &[Need::Cluster, Need::UserDestinations];

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "cluster.topic_across_nodes",
            ["cluster", "topic"],
            topic_across_nodes
        )
        .needs(CLUSTER),
        case!(
            "cluster.fanout_no_duplicates",
            ["cluster", "topic"],
            fanout_no_duplicates
        )
        .needs(CLUSTER),
        case!(
            "cluster.order_across_nodes",
            ["cluster", "topic"],
            order_across_nodes
        )
        .needs(CLUSTER),
        case!(
            "cluster.unsubscribe_across_nodes",
            ["cluster", "topic", "subscribe"],
            unsubscribe_across_nodes
        )
        .needs(CLUSTER),
        case!(
            "cluster.pattern_across_nodes",
            ["cluster", "pattern", "herald"],
            pattern_across_nodes
        )
        .needs(CLUSTER),
        case!(
            "cluster.queue_once_across_nodes",
            ["cluster", "queue"],
            queue_once_across_nodes
        )
        .needs(CLUSTER_QUEUES),
        case!(
            "cluster.user_across_nodes",
            ["cluster", "user", "herald"],
            user_across_nodes
        )
        .needs(CLUSTER_USERS),
    ]
}

/// Publishes probes to `destination` from `publisher` until `subscriber` gets one (interest
/// travels between nodes asynchronously), then drains the remaining probes.
async fn await_route(
    ctx: &Ctx,
    publisher: &mut Conn,
    subscriber: &mut Conn,
    destination: &str,
) -> Result<(), String> {
    let deadline = Instant::now() + ctx.wait() * 3;
    let mut n = 0;
    while Instant::now() < deadline {
        publisher
            .publish(destination, &format!("probe-{n}"))
            .await?;
        n += 1;
        if let Ok(message) = subscriber.next_frame(Duration::from_millis(100)).await {
            ensure!(
                message.body_text().starts_with("probe-"),
                "unexpected {message}"
            );
            ctx.sync(publisher).await?;
            drain(subscriber, ctx).await?;
            return Ok(());
        }
    }
    Err(format!(
        "no probe published on one node reached a subscriber on the other within {} ms",
        (ctx.wait() * 3).as_millis()
    ))
}

/// SEMANTICS §6: a topic message published on one node reaches subscribers on another.
async fn topic_across_nodes(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("x");
    let mut remote = ctx.connect_peer().await?;
    remote.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    let send = Out::new("SEND")
        .h("destination", &topic)
        .h("x-header", "a:b")
        .body("across");
    publisher.send_out(&send).await?;
    let message = remote.expect_body("across", ctx.wait()).await?;
    ensure!(
        message.header("x-header") == Some("a:b") && message.header("subscription") == Some("s1"),
        "headers changed across nodes: {message}"
    );
    PASS
}

/// SEMANTICS §6: local and remote subscribers each get exactly one copy (no echo).
async fn fanout_no_duplicates(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("both");
    let mut local = ctx.connect().await?;
    local.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut remote = ctx.connect_peer().await?;
    remote.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    drain(&mut local, &ctx).await?;
    publisher.publish(&topic, "once").await?;
    for (name, conn) in [("local", &mut local), ("remote", &mut remote)] {
        let got = bodies(&drain(conn, &ctx).await?)?;
        ensure!(got == ["once"], "{name} subscriber received {got:?}");
    }
    PASS
}

/// SEMANTICS §2: order from one publisher is preserved across nodes.
async fn order_across_nodes(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("order");
    let mut remote = ctx.connect_peer().await?;
    remote.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    let mut bytes = Vec::new();
    for n in 0..200 {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &topic)
                .body(n.to_string())
                .bytes(),
        );
    }
    publisher.send(&bytes).await?;
    for n in 0..200 {
        remote.expect_body(&n.to_string(), ctx.wait()).await?;
    }
    PASS
}

/// After UNSUBSCRIBE on the remote node nothing more arrives there.
async fn unsubscribe_across_nodes(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("unsub");
    let mut remote = ctx.connect_peer().await?;
    remote.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    await_route(&ctx, &mut publisher, &mut remote, &topic).await?;
    remote.unsubscribe("s1", ctx.wait()).await?;
    publisher.publish(&topic, "late").await?;
    ctx.sync(&mut publisher).await?;
    remote.expect_silence(ctx.quiet()).await?;
    PASS
}

/// Pattern subscriptions match messages from other nodes.
async fn pattern_across_nodes(ctx: Ctx) -> CaseResult {
    let base = ctx.topic("p");
    let mut remote = ctx.connect_peer().await?;
    let subscribe = Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", &format!("{base}/*"));
    remote.subscribe_out(subscribe, ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let concrete = format!("{base}/x");
    await_route(&ctx, &mut publisher, &mut remote, &concrete).await?;
    publisher.publish(&format!("{base}/y"), "matched").await?;
    let message = remote.expect_body("matched", ctx.wait()).await?;
    ensure!(
        message.header("destination") == Some(format!("{base}/y").as_str()),
        "destination {:?}",
        message.header("destination")
    );
    PASS
}

/// Each queue message reaches exactly one subscriber, whichever node it is on.
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
    let mut got = bodies(&drain(&mut local, &ctx).await?)?;
    got.extend(bodies(&drain(&mut remote, &ctx).await?)?);
    got.sort();
    let mut expected: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    expected.sort();
    ensure!(got == expected, "queue messages across nodes: {got:?}");
    PASS
}

/// SEMANTICS §4, §6: `/user/<session>/queue/x` reaches a session on the other node.
async fn user_across_nodes(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("u");
    let mut remote = ctx.connect_peer().await?;
    remote
        .subscribe(&format!("/user/queue/{name}"), "u1", ctx.wait())
        .await?;
    let session = remote
        .connected
        .as_ref()
        .and_then(|c| c.header("session"))
        .ok_or("CONNECTED has no session header")?
        .to_owned();
    let mut sender = ctx.connect().await?;
    let destination = format!("/user/{session}/queue/{name}");
    let deadline = Instant::now() + ctx.wait() * 3;
    while Instant::now() < deadline {
        sender.publish(&destination, "to the other node").await?;
        if let Ok(message) = remote.next_frame(Duration::from_millis(200)).await {
            ensure!(
                message.body_text() == "to the other node",
                "unexpected {message}"
            );
            return PASS;
        }
    }
    Err(format!(
        "{destination} sent on one node never reached the session on the other"
    ))
}
