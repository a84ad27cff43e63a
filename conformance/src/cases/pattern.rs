//! Subscription patterns (semantics.md §2 "Patterns"). `pattern.word_wildcard` and
//! `pattern.literal_is_exact` hold for RabbitMQ too; the others are Herald's syntax with the
//! default `/` separator.

use super::{PASS, bodies, connected_error, drain};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("pattern.word_wildcard", ["pattern", "topic"], word_wildcard),
        case!(
            "pattern.literal_is_exact",
            ["pattern", "topic"],
            literal_is_exact
        ),
        case!(
            "pattern.star_is_one_segment",
            ["pattern", "topic", "herald"],
            star_is_one_segment
        ),
        case!(
            "pattern.star_within_segment",
            ["pattern", "topic", "herald"],
            star_within_segment
        ),
        case!(
            "pattern.double_star",
            ["pattern", "topic", "herald"],
            double_star
        ),
        case!(
            "pattern.hash_segment",
            ["pattern", "topic", "herald"],
            hash_segment
        ),
        case!(
            "pattern.question_mark",
            ["pattern", "topic", "herald"],
            question_mark
        ),
        case!(
            "pattern.named_segment",
            ["pattern", "topic", "herald"],
            named_segment
        ),
        case!(
            "pattern.regex_segment",
            ["pattern", "topic", "herald"],
            regex_segment
        ),
        case!(
            "pattern.overlapping_subscriptions",
            ["pattern", "topic", "herald"],
            overlapping_subscriptions
        ),
        case!(
            "pattern.send_with_wildcard_refused",
            ["pattern", "error", "herald"],
            send_with_wildcard_refused
        ),
        case!(
            "pattern.invalid_pattern_refused",
            ["pattern", "error", "herald"],
            invalid_pattern_refused
        ),
    ]
}

/// Subscribes `pattern` (raw header value), publishes to each destination (body = its
/// index), and checks that exactly the `matching` ones arrive, in order, each with its own
/// destination in the MESSAGE.
async fn check_pattern(ctx: &Ctx, pattern: &str, destinations: &[(&str, bool)]) -> CaseResult {
    let mut sub = ctx.connect().await?;
    let subscribe = Out::new("SUBSCRIBE").h("id", "p").h("destination", pattern);
    sub.subscribe_out(subscribe, ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    for (n, (destination, _)) in destinations.iter().enumerate() {
        publisher
            .send_out(
                &Out::new("SEND")
                    .h("destination", destination)
                    .body(n.to_string()),
            )
            .await?;
    }
    ctx.sync(&mut publisher).await?;
    let frames = drain(&mut sub, ctx).await?;
    let got = bodies(&frames)?;
    let expected: Vec<String> = destinations
        .iter()
        .enumerate()
        .filter(|(_, (_, matches))| *matches)
        .map(|(n, _)| n.to_string())
        .collect();
    if got != expected {
        let name = |list: &[String]| -> Vec<&str> {
            list.iter()
                .filter_map(|n| n.parse::<usize>().ok())
                .filter_map(|n| destinations.get(n).map(|d| d.0))
                .collect()
        };
        return Err(format!(
            "{pattern} received {:?}, expected {:?}",
            name(&got),
            name(&expected)
        ));
    }
    for frame in &frames {
        let n: usize = frame.body_text().parse().map_err(|_| "bad body")?;
        let sent = destinations[n].0;
        ensure!(
            frame.header("destination") == Some(sent),
            "MESSAGE via {pattern} shows destination {:?}, expected {sent}",
            frame.header("destination")
        );
    }
    PASS
}

/// `*` as the last dot-separated word: `<t>.price.*` gets `<t>.price.IBM`, not other words.
async fn word_wildcard(ctx: Ctx) -> CaseResult {
    let base = ctx.topic("w");
    let pattern = format!("{base}.price.*");
    let ibm = format!("{base}.price.IBM");
    let other = format!("{base}.other.IBM");
    let msft = format!("{base}.price.MSFT");
    check_pattern(
        &ctx,
        &pattern,
        &[(&ibm, true), (&other, false), (&msft, true)],
    )
    .await
}

/// semantics.md §2: a destination without wildcards matches by equality only.
async fn literal_is_exact(ctx: Ctx) -> CaseResult {
    let base = ctx.topic("lit");
    let longer = format!("{base}.more");
    let shorter = ctx.topic("li");
    check_pattern(
        &ctx,
        &base,
        &[(&longer, false), (&base, true), (&shorter, false)],
    )
    .await
}

/// `*` alone is exactly one whole segment.
async fn star_is_one_segment(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("s");
    let pattern = format!("{b}/a/*");
    let (one, two, none, empty) = (
        format!("{b}/a/x"),
        format!("{b}/a/x/y"),
        format!("{b}/a"),
        format!("{b}/b/x"),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[(&one, true), (&two, false), (&none, false), (&empty, false)],
    )
    .await
}

/// semantics.md §2: `/topic/price.*` (a glob inside one segment) matches `/topic/price.IBM`.
async fn star_within_segment(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("g");
    let pattern = format!("{b}/price.*");
    let (ibm, dotted, bare, deeper) = (
        format!("{b}/price.IBM"),
        format!("{b}/price.IBM.x"),
        format!("{b}/price."),
        format!("{b}/price.IBM/x"),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[
            (&ibm, true),
            (&dotted, true),
            (&bare, true),
            (&deeper, false),
        ],
    )
    .await
}

/// `**` matches zero or more whole segments.
async fn double_star(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("d");
    let pattern = format!("{b}/**");
    let (zero, one, three, other) = (
        b.clone(),
        format!("{b}/x"),
        format!("{b}/x/y/z"),
        format!("{}/x", ctx.topic("e")),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[(&zero, true), (&one, true), (&three, true), (&other, false)],
    )
    .await
}

/// `#` (RabbitMQ's spelling) as a whole segment is `**`, also in the middle.
async fn hash_segment(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("h");
    let pattern = format!("{b}/#/end");
    let (zero, two, wrong_end) = (
        format!("{b}/end"),
        format!("{b}/x/y/end"),
        format!("{b}/x/y/ending"),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[(&zero, true), (&two, true), (&wrong_end, false)],
    )
    .await
}

/// `?` is exactly one character within a segment.
async fn question_mark(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("q");
    let pattern = format!("{b}/ab?");
    let (abc, ab, abcd, slash) = (
        format!("{b}/abc"),
        format!("{b}/ab"),
        format!("{b}/abcd"),
        format!("{b}/ab/"),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[(&abc, true), (&ab, false), (&abcd, false), (&slash, false)],
    )
    .await
}

/// `{name}` is one whole segment.
async fn named_segment(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("n");
    let pattern = format!("{b}/{{id}}/x");
    let (one, two, other) = (
        format!("{b}/42/x"),
        format!("{b}/4/2/x"),
        format!("{b}/42/y"),
    );
    check_pattern(
        &ctx,
        &pattern,
        &[(&one, true), (&two, false), (&other, false)],
    )
    .await
}

/// `{name:regex}` is one segment the regex matches entirely (the `\` escaped as `\\`).
async fn regex_segment(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("r");
    let pattern = format!("{b}/{{id\\c\\\\d+}}");
    let (digits, mixed, partial) = (format!("{b}/123"), format!("{b}/12a"), format!("{b}/a123"));
    check_pattern(
        &ctx,
        &pattern,
        &[(&digits, true), (&mixed, false), (&partial, false)],
    )
    .await
}

/// semantics.md §2: two patterns of one session matching one destination give two MESSAGEs.
async fn overlapping_subscriptions(ctx: Ctx) -> CaseResult {
    let b = ctx.topic("o");
    let mut sub = ctx.connect().await?;
    for (id, pattern) in [("star", format!("{b}/*")), ("all", format!("{b}/**"))] {
        let subscribe = Out::new("SUBSCRIBE").h("id", id).h("destination", &pattern);
        sub.subscribe_out(subscribe, ctx.wait()).await?;
    }
    let mut publisher = ctx.connect().await?;
    publisher.publish(&format!("{b}/x"), "both").await?;
    publisher.publish(&format!("{b}/x/y"), "deep").await?;
    let frames = drain(&mut sub, &ctx).await?;
    let mut got: Vec<(String, String)> = frames
        .iter()
        .map(|f| {
            (
                f.body_text(),
                f.header("subscription").unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    let expected = [("both", "all"), ("both", "star"), ("deep", "all")];
    ensure!(
        got.iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .eq(expected.iter().copied()),
        "received (body, subscription) {got:?}, expected {expected:?}"
    );
    PASS
}

/// semantics.md §2: SEND to a destination with any of `* ? { #` is ERROR.
async fn send_with_wildcard_refused(ctx: Ctx) -> CaseResult {
    for wildcard in ["*", "?", "{x}", "#"] {
        let frame = Out::new("SEND")
            .h("destination", &format!("{}/{wildcard}", ctx.topic("wild")))
            .body("wild");
        connected_error(&ctx, &frame.bytes())
            .await
            .map_err(|e| format!("SEND to a destination with {wildcard}: {e}"))?;
    }
    PASS
}

/// A malformed pattern (unclosed `{`) is refused with ERROR + close.
async fn invalid_pattern_refused(ctx: Ctx) -> CaseResult {
    let frame = Out::new("SUBSCRIBE")
        .h("id", "bad")
        .h("destination", &format!("{}/{{unclosed", ctx.topic("bad")));
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}
