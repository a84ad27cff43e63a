//! Publish-subscribe on `/topic/` (spec "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "MESSAGE"; peers
//! §6.1 #24–#25, #37; semantics.md §2 "Messages").

use std::collections::HashSet;

use super::{PASS, bodies, drain, leave};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("topic.delivery", ["topic", "subscribe"], delivery),
        case!("topic.message_ids_unique", ["topic"], message_ids_unique),
        case!("topic.fanout", ["topic"], fanout),
        case!(
            "topic.two_subscriptions_one_session",
            ["topic", "subscribe"],
            two_subscriptions_one_session
        ),
        case!(
            "topic.user_headers_pass_through",
            ["topic"],
            user_headers_pass_through
        ),
        case!("topic.order_preserved", ["topic"], order_preserved),
        case!("topic.no_retention", ["topic"], no_retention),
        case!(
            "topic.other_destination_not_delivered",
            ["topic"],
            other_destination
        ),
        case!(
            "topic.publisher_receives_own",
            ["topic"],
            publisher_receives_own
        ),
        case!(
            "topic.unsubscribe_stops_delivery",
            ["topic", "subscribe"],
            unsubscribe_stops_delivery
        ),
        case!(
            "topic.unsubscribe_keeps_others",
            ["topic", "subscribe"],
            unsubscribe_keeps_others
        ),
        case!(
            "topic.resubscribe_same_id",
            ["topic", "subscribe"],
            resubscribe_same_id
        ),
        case!(
            "topic.disconnected_subscriber_removed",
            ["topic", "subscribe"],
            disconnected_subscriber_removed
        ),
        case!(
            "topic.broker_headers_not_forwarded",
            ["topic", "herald"],
            broker_headers_not_forwarded
        ),
        case!(
            "topic.unsubscribe_unknown_id",
            ["topic", "subscribe", "herald"],
            unsubscribe_unknown_id
        ),
    ]
}

/// Peers §6.1 #24: MESSAGE has `destination` (as sent), `message-id`, `subscription`, the
/// body with `content-length`, and no `ack` header in auto mode.
async fn delivery(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("news");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "sub-0", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&topic, "hello").await?;
    let message = sub.expect_body("hello", ctx.wait()).await?;
    ensure!(
        message.header("destination") == Some(topic.as_str()),
        "destination {:?}, expected {topic}",
        message.header("destination")
    );
    ensure!(!message.need("message-id")?.is_empty(), "empty message-id");
    ensure!(
        message.header("subscription") == Some("sub-0"),
        "subscription {:?}, expected sub-0",
        message.header("subscription")
    );
    ensure!(
        message.header("ack").is_none(),
        "auto-ack MESSAGE has an ack header: {message}"
    );
    ensure!(
        message.raw_head().contains("\ncontent-length:5"),
        "MESSAGE lacks content-length:5: {:?}",
        message.raw_head()
    );
    PASS
}

/// Spec "MESSAGE": `message-id` is unique.
async fn message_ids_unique(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("ids");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    for n in 0..20 {
        sub.publish(&topic, &format!("m{n}")).await?;
    }
    let mut ids = HashSet::new();
    for n in 0..20 {
        let message = sub.expect_body(&format!("m{n}"), ctx.wait()).await?;
        let id = message.need("message-id")?.to_owned();
        ensure!(ids.insert(id.clone()), "message-id {id:?} used twice");
    }
    PASS
}

/// semantics.md §2: every subscription of a topic gets a copy.
async fn fanout(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("fan");
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut sub = ctx.connect().await?;
        sub.subscribe(&topic, "s1", ctx.wait()).await?;
        subs.push(sub);
    }
    let mut publisher = ctx.connect().await?;
    publisher.publish(&topic, "to all").await?;
    for sub in &mut subs {
        sub.expect_body("to all", ctx.wait()).await?;
        sub.expect_silence(ctx.quiet()).await?;
    }
    PASS
}

/// semantics.md §2: two subscriptions of one session to one destination get one MESSAGE each.
async fn two_subscriptions_one_session(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("twice");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "a", ctx.wait()).await?;
    sub.subscribe(&topic, "b", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&topic, "double").await?;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let message = sub.expect_body("double", ctx.wait()).await?;
        ids.push(message.need("subscription")?.to_owned());
    }
    ids.sort();
    ensure!(ids == ["a", "b"], "subscriptions {ids:?}, expected a and b");
    sub.expect_silence(ctx.quiet()).await?;
    PASS
}

/// Peers §6.1 #25: user-defined SEND headers and `content-type` reach the MESSAGE.
async fn user_headers_pass_through(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("hdrs");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let send = Out::new("SEND")
        .h("destination", &topic)
        .h("content-type", "application/json")
        .h("x-app-id", "42")
        .h("priority-class", "two words")
        .body("{\"ok\":true}");
    publisher.send_out(&send).await?;
    let message = sub.expect_body("{\"ok\":true}", ctx.wait()).await?;
    for (name, value) in [
        ("content-type", "application/json"),
        ("x-app-id", "42"),
        ("priority-class", "two words"),
    ] {
        ensure!(
            message.header(name) == Some(value),
            "{name} is {:?}, expected {value:?}",
            message.header(name)
        );
    }
    PASS
}

/// semantics.md §2: order from one publisher to one subscription is preserved.
async fn order_preserved(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("order");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let mut bytes = Vec::new();
    for n in 0..200 {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &topic)
                .body(format!("{n}"))
                .bytes(),
        );
    }
    publisher.send(&bytes).await?;
    for n in 0..200 {
        sub.expect_body(&n.to_string(), ctx.wait()).await?;
    }
    PASS
}

/// A topic keeps nothing: a message sent before the subscription is not delivered.
async fn no_retention(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("old");
    let mut publisher = ctx.connect().await?;
    publisher.publish(&topic, "before").await?;
    ctx.sync(&mut publisher).await?;
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    sub.expect_silence(ctx.quiet()).await?;
    publisher.publish(&topic, "after").await?;
    sub.expect_body("after", ctx.wait()).await?;
    PASS
}

/// A literal subscription does not get other destinations, even ones it is a prefix of.
async fn other_destination(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("lit");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&format!("{topic}x"), "longer").await?;
    publisher.publish(&ctx.topic("li"), "shorter").await?;
    publisher.publish(&topic, "exact").await?;
    let got = bodies(&drain(&mut sub, &ctx).await?)?;
    ensure!(
        got == ["exact"],
        "received {got:?}, expected only \"exact\""
    );
    PASS
}

/// A publisher subscribed to its own topic gets its own message.
async fn publisher_receives_own(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("self");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    conn.publish(&topic, "echo").await?;
    conn.expect_body("echo", ctx.wait()).await?;
    PASS
}

/// Peers §6.1 #37: after UNSUBSCRIBE no MESSAGE for that id.
async fn unsubscribe_stops_delivery(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("unsub");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&topic, "one").await?;
    sub.expect_body("one", ctx.wait()).await?;
    sub.unsubscribe("s1", ctx.wait()).await?;
    publisher.publish(&topic, "two").await?;
    ctx.sync(&mut publisher).await?;
    sub.expect_silence(ctx.quiet()).await?;
    PASS
}

/// UNSUBSCRIBE of one id leaves the session's other subscriptions alone.
async fn unsubscribe_keeps_others(ctx: Ctx) -> CaseResult {
    let (a, b) = (ctx.topic("keep-a"), ctx.topic("keep-b"));
    let mut sub = ctx.connect().await?;
    sub.subscribe(&a, "a", ctx.wait()).await?;
    sub.subscribe(&b, "b", ctx.wait()).await?;
    sub.unsubscribe("a", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&a, "to a").await?;
    publisher.publish(&b, "to b").await?;
    let message = sub.expect_body("to b", ctx.wait()).await?;
    ensure!(
        message.header("subscription") == Some("b"),
        "subscription {:?}",
        message.header("subscription")
    );
    sub.expect_silence(ctx.quiet()).await?;
    PASS
}

/// A subscription id is free again after UNSUBSCRIBE.
async fn resubscribe_same_id(ctx: Ctx) -> CaseResult {
    let (a, b) = (ctx.topic("re-a"), ctx.topic("re-b"));
    let mut sub = ctx.connect().await?;
    sub.subscribe(&a, "s1", ctx.wait()).await?;
    sub.unsubscribe("s1", ctx.wait()).await?;
    sub.subscribe(&b, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.publish(&a, "old").await?;
    publisher.publish(&b, "new").await?;
    let got = bodies(&drain(&mut sub, &ctx).await?)?;
    ensure!(got == ["new"], "received {got:?}, expected only \"new\"");
    PASS
}

/// A subscriber that disconnected is gone; publishing to its topic still works for others.
async fn disconnected_subscriber_removed(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("gone");
    let mut leaving = ctx.connect().await?;
    leaving.subscribe(&topic, "s1", ctx.wait()).await?;
    leave(&ctx, leaving).await?;
    let mut staying = ctx.connect().await?;
    staying.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    for n in 0..3 {
        publisher.publish(&topic, &format!("m{n}")).await?;
    }
    ctx.sync(&mut publisher).await?;
    for n in 0..3 {
        staying.expect_body(&format!("m{n}"), ctx.wait()).await?;
    }
    PASS
}

/// semantics.md §2: the broker owns `subscription`, `message-id`, `ack`, and `receipt` is an
/// instruction, not content: a publisher cannot forge them.
async fn broker_headers_not_forwarded(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("owned");
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "real", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    let send = Out::new("SEND")
        .h("destination", &topic)
        .h("subscription", "forged")
        .h("message-id", "forged")
        .h("ack", "forged")
        .h("receipt", "pub-r")
        .body("owned");
    publisher.send_out(&send).await?;
    publisher.expect_receipt("pub-r", ctx.wait()).await?;
    let message = sub.expect_body("owned", ctx.wait()).await?;
    let all = |name: &str| message.frame.headers.get_all(name).count();
    ensure!(
        message.header("subscription") == Some("real") && all("subscription") == 1,
        "subscription headers: {message}"
    );
    ensure!(
        message.header("message-id") != Some("forged") && all("message-id") == 1,
        "message-id headers: {message}"
    );
    ensure!(all("ack") == 0, "auto-ack MESSAGE carries ack: {message}");
    ensure!(
        all("receipt") == 0,
        "MESSAGE carries the SEND's receipt: {message}"
    );
    PASS
}

/// UNSUBSCRIBE of an unknown id is not an error (as in Spring).
async fn unsubscribe_unknown_id(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.unsubscribe("never-subscribed", ctx.wait()).await?;
    PASS
}
