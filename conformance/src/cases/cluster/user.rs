//! User destinations across nodes (semantics.md §4, §6): `/user/<name>/…` reaches every session
//! of the user on every node, `/user/<sessionId>/…` the one session wherever it is. Spring's
//! semantics, so `herald`-tagged.

use super::{await_route, expect_measured, measured_bodies_of, subscribe, with_receipt};
use crate::cases::PASS;
use crate::cases::user::session_of;
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "cluster.user_every_session_across_nodes",
            ["cluster", "user", "auth", "herald"],
            user_every_session_across_nodes
        )
        .needs(&[Need::UserDestinations, Need::Authentication, Need::Users(1)]),
        case!(
            "cluster.user_session_id_across_nodes",
            ["cluster", "user", "herald"],
            user_session_id_across_nodes
        )
        .needs(&[Need::UserDestinations]),
    ]
}

/// The next measured MESSAGE on `tab` is `body`, shown as `destination`.
async fn expect_shown(
    tab: &mut Conn,
    body: &str,
    destination: &str,
    ctx: &Ctx,
) -> Result<(), String> {
    let message = expect_measured(tab, body, ctx).await?;
    ensure!(
        message.header("destination") == Some(destination),
        "destination {:?}, expected {destination}",
        message.header("destination")
    );
    Ok(())
}

/// semantics.md §4, §6: `/user/<name>/queue/x` sent on the peer reaches the user's session on
/// `--url` and the one on the peer, each once; the SEND's RECEIPT comes.
async fn user_every_session_across_nodes(ctx: Ctx) -> CaseResult {
    let (user, _) = ctx.user(0)?;
    let name = ctx.unique("tabs");
    let own = format!("/user/queue/{name}");
    let mut here = ctx.connect_user(0).await?;
    subscribe(&mut here, &own, "u1", &ctx).await?;
    let mut there = ctx.connect_peer_user(0).await?;
    subscribe(&mut there, &own, "u1", &ctx).await?;
    let mut sender = ctx.connect_peer().await?;
    let destination = format!("/user/{user}/queue/{name}");
    await_route(&ctx, &mut sender, &mut here, &destination).await?;
    let send = Out::new("SEND")
        .h("destination", &destination)
        .body("every tab");
    with_receipt(&mut sender, send, &ctx).await?;
    for (node, tab) in [("--url", &mut here), ("the peer", &mut there)] {
        expect_shown(tab, "every tab", &own, &ctx)
            .await
            .map_err(|e| format!("the session on {node}: {e}"))?;
    }
    let rest = measured_bodies_of(vec![&mut here, &mut there], &ctx).await?;
    ensure!(
        rest.iter().all(Vec::is_empty),
        "then also (--url, peer): {rest:?}"
    );
    PASS
}

/// semantics.md §4, §6: `/user/<sessionId>/queue/x` sent on the peer reaches that session on
/// `--url` (shown as `/user/queue/x`), not another session subscribed the same way; the
/// SEND's RECEIPT comes.
async fn user_session_id_across_nodes(ctx: Ctx) -> CaseResult {
    let name = ctx.unique("one");
    let own = format!("/user/queue/{name}");
    let mut target = ctx.connect().await?;
    subscribe(&mut target, &own, "u1", &ctx).await?;
    let mut other = ctx.connect().await?;
    subscribe(&mut other, &own, "u1", &ctx).await?;
    let session = session_of(&target)?;
    let mut sender = ctx.connect_peer().await?;
    let destination = format!("/user/{session}/queue/{name}");
    await_route(&ctx, &mut sender, &mut target, &destination).await?;
    let send = Out::new("SEND")
        .h("destination", &destination)
        .body("just this one");
    with_receipt(&mut sender, send, &ctx).await?;
    expect_shown(&mut target, "just this one", &own, &ctx).await?;
    let rest = measured_bodies_of(vec![&mut target, &mut other], &ctx).await?;
    ensure!(
        rest[0].is_empty(),
        "the session then also received {:?}",
        rest[0]
    );
    ensure!(rest[1].is_empty(), "another session received {:?}", rest[1]);
    PASS
}
