//! Pattern subscriptions and odd destination names across nodes (semantics.md §2 "Patterns",
//! §6): what a pattern matches on one node it matches for a publish on the other, once per
//! subscription, with the destination unchanged. Herald's pattern syntax, so `herald`-tagged.

use super::{await_route, measured_messages, subscribe};
use crate::cases::PASS;
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Conn;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "cluster.pattern_across_nodes",
            ["cluster", "pattern", "herald"],
            pattern_across_nodes
        ),
        case!(
            "cluster.double_star_across_nodes",
            ["cluster", "pattern", "herald"],
            double_star_across_nodes
        ),
        case!(
            "cluster.glob_across_nodes",
            ["cluster", "pattern", "herald"],
            glob_across_nodes
        ),
        case!(
            "cluster.order_across_destinations",
            ["cluster", "pattern", "herald"],
            order_across_destinations
        ),
        case!(
            "cluster.overlapping_patterns_across_nodes",
            ["cluster", "pattern", "herald"],
            overlapping_patterns_across_nodes
        ),
        case!(
            "cluster.odd_names_across_nodes",
            ["cluster", "topic", "herald"],
            odd_names_across_nodes
        ),
        case!(
            "cluster.long_destination_across_nodes",
            ["cluster", "topic", "herald"],
            long_destination_across_nodes
        ),
    ]
}

/// Publishes to each destination from `publisher` (body = its index) and returns, sorted,
/// `(body, subscription, destination)` of every MESSAGE `subscriber` gets; an error if they
/// did not come in publish order (semantics.md §2: one publisher's messages reach a subscriber
/// in order, whatever their destinations, also when they cross nodes through different NATS
/// subscriptions). One message's copies for several subscriptions may come in any order.
async fn publish_all(
    ctx: &Ctx,
    publisher: &mut Conn,
    subscriber: &mut Conn,
    destinations: &[&str],
) -> Result<Vec<(String, String, String)>, String> {
    for (n, destination) in destinations.iter().enumerate() {
        publisher.publish(destination, &n.to_string()).await?;
    }
    ctx.sync(publisher).await?;
    let mut got: Vec<_> = measured_messages(subscriber, ctx)
        .await?
        .iter()
        .map(|m| {
            let header = |name| m.header(name).unwrap_or_default().to_owned();
            (m.body_text(), header("subscription"), header("destination"))
        })
        .collect();
    let indices: Vec<usize> = got
        .iter()
        .filter_map(|(body, ..)| body.parse().ok())
        .collect();
    ensure!(
        indices.is_sorted(),
        "not in publish order (bodies are publish indices): {got:?}"
    );
    got.sort();
    Ok(got)
}

/// What [`publish_all`] should return when `arrivals` (the index of a destination, the
/// subscription it reaches) arrive.
fn expected(destinations: &[&str], arrivals: &[(usize, &str)]) -> Vec<(String, String, String)> {
    let mut want: Vec<_> = arrivals
        .iter()
        .map(|&(n, id)| (n.to_string(), id.to_owned(), destinations[n].to_owned()))
        .collect();
    want.sort();
    want
}

/// A publisher on `--url` and a subscriber on the peer, subscribed to each `(id, pattern)`;
/// every `probes` destination is routed before this returns.
async fn pattern_pair(
    ctx: &Ctx,
    patterns: &[(&str, &str)],
    probes: &[&str],
) -> Result<(Conn, Conn), String> {
    let mut subscriber = ctx.connect_peer().await?;
    for (id, pattern) in patterns {
        subscribe(&mut subscriber, pattern, id, ctx).await?;
    }
    let mut publisher = ctx.connect().await?;
    for probe in probes {
        await_route(ctx, &mut publisher, &mut subscriber, probe).await?;
    }
    Ok((publisher, subscriber))
}

/// semantics.md §6: `…/*` on the peer gets a literal publish on `--url` that it matches, and
/// not one it does not.
async fn pattern_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("p");
    let (y, deep, beside) = (format!("{b}/y"), format!("{b}/y/z"), format!("{b}x"));
    let pattern = format!("{b}/*");
    let (mut publisher, mut subscriber) =
        pattern_pair(&ctx, &[("s1", &pattern)], &[&format!("{b}/probe")]).await?;
    let destinations = [y.as_str(), &deep, &beside];
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let want = expected(&destinations, &[(0, "s1")]);
    ensure!(got == want, "{pattern} received {got:?}, expected {want:?}");
    PASS
}

/// `…/**` matches zero or more segments across nodes too: the base itself, one segment,
/// several, and an empty last segment; not a longer first segment.
async fn double_star_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("g");
    let (one, two, empty, beside) = (
        format!("{b}/x"),
        format!("{b}/x/y"),
        format!("{b}/"),
        format!("{b}x"),
    );
    let pattern = format!("{b}/**");
    let (mut publisher, mut subscriber) =
        pattern_pair(&ctx, &[("all", &pattern)], &[&format!("{b}/probe")]).await?;
    let destinations = [b.as_str(), &one, &two, &empty, &beside];
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let want = expected(
        &destinations,
        &[(0, "all"), (1, "all"), (2, "all"), (3, "all")],
    );
    ensure!(got == want, "{pattern} received {got:?}, expected {want:?}");
    PASS
}

/// Patterns no NATS wildcard expresses exactly (`?` in a segment, a `**` before the last
/// segment) still get exactly what they match from the other node.
async fn glob_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("q");
    let (question, inner) = (format!("{b}/m?/x"), format!("{b}/**/z"));
    let (mut publisher, mut subscriber) = pattern_pair(
        &ctx,
        &[("q", &question), ("g", &inner)],
        &[&format!("{b}/mp/x"), &format!("{b}/probe/z")],
    )
    .await?;
    let d = [
        format!("{b}/mn/x"),
        format!("{b}/mno/x"),
        format!("{b}/mn/y"),
        format!("{b}/z"),
        format!("{b}/a/b/z"),
        format!("{b}/a/b/y"),
    ];
    let destinations: Vec<&str> = d.iter().map(String::as_str).collect();
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let want = expected(&destinations, &[(0, "q"), (3, "g"), (4, "g")]);
    ensure!(got == want, "received {got:?}, expected {want:?}");
    PASS
}

/// semantics.md §2: one publisher's messages reach a subscriber in the order sent, whatever
/// their destinations: 1,000 messages spread over destinations that reach the peer through
/// different NATS subscriptions (`…/**` is two NATS filters; a literal beside it is a third).
async fn order_across_destinations(ctx: Ctx) -> CaseResult {
    const COUNT: usize = 1000;
    let b = ctx.topic("r");
    let other = ctx.topic("r2");
    let (x, deep) = (format!("{b}/x"), format!("{b}/x/y"));
    let all = format!("{b}/**");
    let (mut publisher, mut subscriber) = pattern_pair(
        &ctx,
        &[("all", &all), ("other", &other)],
        &[&b, &x, &deep, &other],
    )
    .await?;
    let targets = [b.as_str(), &x, &deep, &other];
    let destinations: Vec<&str> = (0..COUNT).map(|n| targets[(n * 7 + n / 3) % 4]).collect();
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    ensure!(got.len() == COUNT, "{} of {COUNT} arrived", got.len());
    PASS
}

/// semantics.md §2: overlapping subscriptions of one session each get their copy, also when the
/// publish comes from another node (which must not deliver it once per matching filter).
async fn overlapping_patterns_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("o");
    let (star, all, exact) = (format!("{b}/*"), format!("{b}/**"), format!("{b}/x"));
    let (x, deep) = (format!("{b}/x"), format!("{b}/x/y"));
    let (mut publisher, mut subscriber) = pattern_pair(
        &ctx,
        &[("star", &star), ("all", &all), ("exact", &exact)],
        &[&x, &format!("{b}/p/q")],
    )
    .await?;
    let destinations = [x.as_str(), &deep];
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let want = expected(
        &destinations,
        &[(0, "all"), (0, "exact"), (0, "star"), (1, "all")],
    );
    ensure!(got == want, "received {got:?}, expected {want:?}");
    PASS
}

/// Destination names with what a subject mapping must escape (`.`, space, `>`, an empty
/// segment, `%` and `~`, non-ASCII) arrive unchanged at literal subscriptions and at `*` on
/// the other node, each at its own subscription only.
async fn odd_names_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("n");
    let suffixes = ["a.b", "a b", "a>b", "", "%2E~_", "\u{e9}t\u{e9}", ".", ">"];
    let d: Vec<String> = suffixes.iter().map(|s| format!("{b}/{s}")).collect();
    let destinations: Vec<&str> = d.iter().map(String::as_str).collect();
    let ids: Vec<String> = (0..d.len()).map(|n| format!("l{n}")).collect();
    let star = format!("{b}/*");
    let mut patterns: Vec<(&str, &str)> = ids
        .iter()
        .map(String::as_str)
        .zip(destinations.iter().copied())
        .collect();
    patterns.push(("star", &star));
    let (mut publisher, mut subscriber) = pattern_pair(&ctx, &patterns, &destinations).await?;
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let arrivals: Vec<(usize, &str)> = (0..d.len())
        .flat_map(|n| [(n, ids[n].as_str()), (n, "star")])
        .collect();
    let want = expected(&destinations, &arrivals);
    ensure!(got == want, "received {got:?}, expected {want:?}");
    PASS
}

/// A destination near Herald's 4,096-byte subscription limit, full of characters a subject
/// must escape (so its subject would exceed nats-server's 4,096-byte control line), reaches a
/// literal subscription and `…/**` on the other node unchanged.
async fn long_destination_across_nodes(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("l");
    let segment = "a.b ".repeat(96);
    let long = format!("{b}/{}", [segment.as_str(); 10].join("/"));
    let all = format!("{b}/**");
    let (mut publisher, mut subscriber) =
        pattern_pair(&ctx, &[("literal", &long), ("all", &all)], &[&long]).await?;
    let destinations = [long.as_str()];
    let got = publish_all(&ctx, &mut publisher, &mut subscriber, &destinations).await?;
    let want = expected(&destinations, &[(0, "literal"), (0, "all")]);
    ensure!(
        got == want,
        "received {} messages {:?}",
        got.len(),
        got.iter()
            .map(|(body, id, d)| (body, id, d.len()))
            .collect::<Vec<_>>()
    );
    PASS
}
