//! User destinations with Spring semantics (semantics.md §4; peers §1.5, §6.1 #39). Herald-only.

use super::{PASS, bodies, connected_error, drain};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

const USER: &[Need] = &[Need::UserDestinations];
const USER_AUTH: &[Need] = &[Need::UserDestinations, Need::Authentication, Need::Users(1)];
const TWO_USERS: &[Need] = &[Need::UserDestinations, Need::Authentication, Need::Users(2)];

pub fn cases() -> Vec<Case> {
    vec![
        case!("user.by_session_id", ["user", "herald"], by_session_id).needs(USER),
        case!("user.topic_kind", ["user", "herald"], topic_kind).needs(USER),
        case!(
            "user.no_session_dropped_with_receipt",
            ["user", "receipt", "herald"],
            no_session_dropped_with_receipt
        )
        .needs(USER),
        case!(
            "user.resolved_destination_reaches_session",
            ["user", "herald"],
            resolved_destination_reaches_session
        )
        .needs(USER),
        case!(
            "user.resolved_destination_of_other_denied",
            ["user", "error", "herald"],
            resolved_destination_of_other_denied
        )
        .needs(USER),
        case!(
            "user.every_session_of_user",
            ["user", "auth", "herald"],
            every_session_of_user
        )
        .needs(USER_AUTH),
        case!(
            "user.session_id_targets_one_session",
            ["user", "auth", "herald"],
            session_id_targets_one_session
        )
        .needs(USER_AUTH),
        case!(
            "user.other_users_not_reached",
            ["user", "auth", "herald"],
            other_users_not_reached
        )
        .needs(TWO_USERS),
    ]
}

pub(super) fn session_of(conn: &Conn) -> Result<String, String> {
    conn.connected
        .as_ref()
        .and_then(|c| c.header("session"))
        .map(str::to_owned)
        .ok_or_else(|| "CONNECTED has no session header".to_owned())
}

/// A session subscribed to `/user/<kind>/<name>`.
async fn user_subscriber(
    ctx: &Ctx,
    conn: Option<Conn>,
    kind: &str,
    name: &str,
) -> Result<Conn, String> {
    let mut conn = match conn {
        Some(conn) => conn,
        None => ctx.connect().await?,
    };
    conn.subscribe(&format!("/user/{kind}/{name}"), "u1", ctx.wait())
        .await?;
    Ok(conn)
}

/// semantics.md §4: `/user/<sessionId>/queue/x` reaches that session's `/user/queue/x`
/// subscription, shown as `destination:/user/queue/x`.
async fn by_session_id(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("inbox");
    let mut a = user_subscriber(&ctx, None, "queue", &name).await?;
    let session = session_of(&a)?;
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/user/{session}/queue/{name}"), "for you")
        .await?;
    let message = a.expect_body("for you", ctx.wait()).await?;
    let shown = format!("/user/queue/{name}");
    ensure!(
        message.header("destination") == Some(shown.as_str()),
        "destination {:?}, expected {shown}",
        message.header("destination")
    );
    PASS
}

/// semantics.md §4: any kind prefix works after `/user`, e.g. `/user/topic/x`.
async fn topic_kind(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("feed");
    let mut a = user_subscriber(&ctx, None, "topic", &name).await?;
    let session = session_of(&a)?;
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/user/{session}/topic/{name}"), "topical")
        .await?;
    let message = a.expect_body("topical", ctx.wait()).await?;
    let shown = format!("/user/topic/{name}");
    ensure!(
        message.header("destination") == Some(shown.as_str()),
        "destination {:?}, expected {shown}",
        message.header("destination")
    );
    PASS
}

/// semantics.md §4: no matching session → dropped, yet the RECEIPT comes and no ERROR.
async fn no_session_dropped_with_receipt(ctx: Ctx) -> CaseResult {
    let mut sender = ctx.connect().await?;
    let send = Out::new("SEND")
        .h(
            "destination",
            &format!("/user/{}/queue/x", ctx.unique("nobody")),
        )
        .body("into the void");
    // `subscribe_out` adds the receipt and waits for it.
    sender.subscribe_out(send, ctx.wait()).await?;
    PASS
}

/// semantics.md §4: the resolved name `/queue/x-user<sessionId>` is an ordinary destination
/// that reaches the session.
async fn resolved_destination_reaches_session(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("resolved");
    let mut a = user_subscriber(&ctx, None, "queue", &name).await?;
    let session = session_of(&a)?;
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/queue/{name}-user{session}"), "resolved")
        .await?;
    a.expect_body("resolved", ctx.wait()).await?;
    PASS
}

/// semantics.md §4: subscribing to another session's resolved destination is `access denied`.
async fn resolved_destination_of_other_denied(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("private");
    let a = user_subscriber(&ctx, None, "queue", &name).await?;
    let session = session_of(&a)?;
    let frame = Out::new("SUBSCRIBE")
        .h("id", "spy")
        .h("destination", &format!("/queue/{name}-user{session}"));
    let error = connected_error(&ctx, &frame.bytes()).await?;
    ensure!(
        error.header("message") == Some("access denied"),
        "ERROR message {:?}, expected \"access denied\"",
        error.header("message")
    );
    PASS
}

/// semantics.md §4: `/user/<name>/queue/x` reaches every session of user `<name>`.
async fn every_session_of_user(ctx: Ctx) -> CaseResult {
    let (user, _) = ctx.user(0)?;
    let name = ctx.unique("tabs");
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let conn = ctx.connect_user(0).await?;
        tabs.push(user_subscriber(&ctx, Some(conn), "queue", &name).await?);
    }
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/user/{user}/queue/{name}"), "every tab")
        .await?;
    for tab in &mut tabs {
        tab.expect_body("every tab", ctx.wait()).await?;
    }
    PASS
}

/// semantics.md §4: a session id in place of the user name targets that session only.
async fn session_id_targets_one_session(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("one");
    let first = ctx.connect_user(0).await?;
    let mut first = user_subscriber(&ctx, Some(first), "queue", &name).await?;
    let second = ctx.connect_user(0).await?;
    let mut second = user_subscriber(&ctx, Some(second), "queue", &name).await?;
    let session = session_of(&first)?;
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/user/{session}/queue/{name}"), "just one")
        .await?;
    first.expect_body("just one", ctx.wait()).await?;
    second.expect_silence(ctx.quiet()).await?;
    PASS
}

/// semantics.md §4: another user's sessions do not get the message.
async fn other_users_not_reached(ctx: Ctx) -> CaseResult {
    let (user, _) = ctx.user(0)?;
    let name = ctx.unique("mine");
    let other = ctx.connect_user(1).await?;
    let mut other = user_subscriber(&ctx, Some(other), "queue", &name).await?;
    let own = ctx.connect_user(0).await?;
    let mut own = user_subscriber(&ctx, Some(own), "queue", &name).await?;
    let mut sender = ctx.connect().await?;
    sender
        .publish(&format!("/user/{user}/queue/{name}"), "private")
        .await?;
    own.expect_body("private", ctx.wait()).await?;
    let got = bodies(&drain(&mut other, &ctx).await?)?;
    ensure!(got.is_empty(), "another user received {got:?}");
    PASS
}
