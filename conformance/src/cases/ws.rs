//! STOMP over WebSocket (semantics.md §1 "WebSocket sub-protocols"; peers §5.2, §6.1 #7, #38).
//! Every case here runs on WebSocket targets only.

use herald_protocol::Command;

use super::{PASS, bodies, drain, subscribe_r1};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::{Conn, Out, WsKind};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "ws.subprotocol_highest",
            ["ws", "connect"],
            subprotocol_highest
        )
        .ws_only(),
        case!(
            "ws.subprotocol_subset",
            ["ws", "connect"],
            subprotocol_subset
        )
        .ws_only(),
        case!(
            "ws.subprotocol_1_0_only",
            ["ws", "connect"],
            subprotocol_1_0_only
        )
        .ws_only(),
        case!(
            "ws.no_subprotocol_offered",
            ["ws", "connect"],
            no_subprotocol_offered
        )
        .ws_only(),
        case!(
            "ws.frame_split_across_messages",
            ["ws", "frames"],
            frame_split_across_messages
        )
        .ws_only(),
        case!(
            "ws.several_frames_in_one_message",
            ["ws", "frames"],
            several_frames_in_one_message
        )
        .ws_only(),
        case!(
            "ws.heartbeat_only_messages",
            ["ws", "heartbeat"],
            heartbeat_only_messages
        )
        .ws_only(),
        case!(
            "ws.binary_messages_accepted",
            ["ws", "frames"],
            binary_messages_accepted
        )
        .ws_only(),
        case!(
            "ws.text_and_binary_mixed",
            ["ws", "frames"],
            text_and_binary_mixed
        )
        .ws_only(),
        case!(
            "ws.utf8_split_inside_character",
            ["ws", "frames"],
            utf8_split_inside_character
        )
        .ws_only(),
        case!("ws.utf8_message_as_text", ["ws"], utf8_message_as_text).ws_only(),
        case!(
            "ws.binary_body_as_binary",
            ["ws", "herald"],
            binary_body_as_binary
        )
        .ws_only(),
        case!(
            "ws.error_then_close_frame",
            ["ws", "error", "herald"],
            error_then_close_frame
        )
        .ws_only(),
        case!(
            "ws.unknown_path_refused",
            ["ws", "herald"],
            unknown_path_refused
        )
        .ws_only(),
    ]
}

async fn open_offering(ctx: &Ctx, offer: &[&str]) -> Result<Conn, String> {
    Conn::open(&ctx.target, offer).await
}

async fn chosen(ctx: &Ctx, offer: &[&str]) -> Result<Option<String>, String> {
    let mut conn = open_offering(ctx, offer).await?;
    // The session works with the chosen protocol.
    conn.send_out(&ctx.connect_frame(Some("1.0,1.1,1.2")))
        .await?;
    conn.expect(Command::Connected, ctx.wait()).await?;
    Ok(conn.subprotocol.clone())
}

/// Peers §6.1 #38: offering `v10.stomp, v11.stomp, v12.stomp` → `v12.stomp` echoed.
async fn subprotocol_highest(ctx: Ctx) -> CaseResult {
    let got = chosen(&ctx, &["v10.stomp", "v11.stomp", "v12.stomp"]).await?;
    ensure!(
        got.as_deref() == Some("v12.stomp"),
        "server chose sub-protocol {got:?}, expected v12.stomp"
    );
    PASS
}

/// The highest of those offered is echoed: `v10.stomp, v11.stomp` → `v11.stomp`.
async fn subprotocol_subset(ctx: Ctx) -> CaseResult {
    let got = chosen(&ctx, &["v10.stomp", "v11.stomp"]).await?;
    ensure!(
        got.as_deref() == Some("v11.stomp"),
        "server chose sub-protocol {got:?}, expected v11.stomp"
    );
    PASS
}

/// `v10.stomp` alone is echoed.
async fn subprotocol_1_0_only(ctx: Ctx) -> CaseResult {
    let got = chosen(&ctx, &["v10.stomp"]).await?;
    ensure!(
        got.as_deref() == Some("v10.stomp"),
        "server chose sub-protocol {got:?}, expected v10.stomp"
    );
    PASS
}

/// semantics.md §1: a client offering no sub-protocol is accepted.
async fn no_subprotocol_offered(ctx: Ctx) -> CaseResult {
    let got = chosen(&ctx, &[]).await?;
    ensure!(
        got.is_none(),
        "server chose {got:?} although none was offered"
    );
    PASS
}

/// semantics.md §1: one frame may be split across several WebSocket messages, anywhere.
async fn frame_split_across_messages(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("split");
    let mut conn = open_offering(&ctx, crate::wire::ALL_SUBPROTOCOLS).await?;
    let connect = ctx.connect_frame(Some("1.2")).bytes();
    let (a, rest) = connect.split_at(3);
    let (b, c) = rest.split_at(rest.len() / 2);
    conn.send_ws(&[(WsKind::Text, a), (WsKind::Text, b), (WsKind::Text, c)])
        .await?;
    conn.expect(Command::Connected, ctx.wait()).await?;
    let mut bytes = subscribe_r1(&topic);
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .body("in pieces")
            .bytes(),
    );
    let cuts = [1, 10, 11, bytes.len() / 2, bytes.len() - 3, bytes.len() - 1];
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push((WsKind::Text, &bytes[start..cut]));
        start = cut;
    }
    parts.push((WsKind::Text, &bytes[start..]));
    conn.send_ws(&parts).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    conn.expect_body("in pieces", ctx.wait()).await?;
    PASS
}

/// semantics.md §1: one message may hold several frames and heart-beat EOLs.
async fn several_frames_in_one_message(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("batch");
    let mut conn = ctx.connect().await?;
    let mut bytes = subscribe_r1(&topic);
    bytes.extend_from_slice(b"\n");
    for n in 0..5 {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &topic)
                .body(format!("b{n}"))
                .bytes(),
        );
        bytes.extend_from_slice(b"\r\n\n");
    }
    conn.send_ws(&[(WsKind::Text, &bytes)]).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    let got = bodies(&drain(&mut conn, &ctx).await?)?;
    ensure!(
        got == ["b0", "b1", "b2", "b3", "b4"],
        "received {got:?}, expected b0..b4"
    );
    PASS
}

/// Messages holding only EOLs are heart-beats, not errors.
async fn heartbeat_only_messages(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.send_ws(&[
        (WsKind::Text, b"\n"),
        (WsKind::Text, b"\r\n"),
        (WsKind::Binary, b"\n\n"),
    ])
    .await?;
    ctx.sync(&mut conn).await?;
    PASS
}

/// semantics.md §1: binary WebSocket messages carry frames as well as text ones.
async fn binary_messages_accepted(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("bin");
    let mut conn = open_offering(&ctx, crate::wire::ALL_SUBPROTOCOLS).await?;
    let connect = ctx.connect_frame(Some("1.2")).bytes();
    conn.send_ws(&[(WsKind::Binary, &connect)]).await?;
    conn.expect(Command::Connected, ctx.wait()).await?;
    let mut bytes = subscribe_r1(&topic);
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .body("binary sent")
            .bytes(),
    );
    conn.send_ws(&[(WsKind::Binary, &bytes)]).await?;
    conn.expect_receipt("r1", ctx.wait()).await?;
    conn.expect_body("binary sent", ctx.wait()).await?;
    PASS
}

/// A frame may start in a text message and end in a binary one.
async fn text_and_binary_mixed(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("mixed");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    let bytes = Out::new("SEND")
        .h("destination", &topic)
        .body("half and half")
        .bytes();
    let (a, b) = bytes.split_at(bytes.len() / 2);
    conn.send_ws(&[(WsKind::Text, a), (WsKind::Binary, b)])
        .await?;
    conn.expect_body("half and half", ctx.wait()).await?;
    PASS
}

/// A split inside a multi-byte UTF-8 character (two binary messages) loses nothing.
async fn utf8_split_inside_character(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("utf8split");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    let body = "split ✓ here";
    let bytes = Out::new("SEND").h("destination", &topic).body(body).bytes();
    let check = "✓".as_bytes();
    let at = bytes
        .windows(check.len())
        .position(|w| w == check)
        .ok_or("test bug: no ✓")?
        + 1;
    let (a, b) = bytes.split_at(at);
    conn.send_ws(&[(WsKind::Binary, a), (WsKind::Binary, b)])
        .await?;
    conn.expect_body(body, ctx.wait()).await?;
    PASS
}

/// A MESSAGE whose frame is valid UTF-8 goes out as a text message.
async fn utf8_message_as_text(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("text");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    conn.publish(&topic, "plain text ✓").await?;
    let message = conn.expect_body("plain text ✓", ctx.wait()).await?;
    ensure!(
        message.ws == Some(WsKind::Text),
        "UTF-8 MESSAGE arrived as {:?}",
        message.ws
    );
    PASS
}

/// semantics.md §1: a body that is not valid UTF-8 goes out as a binary message.
async fn binary_body_as_binary(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("binout");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    let body = [0xffu8, 0x00, 0xfe, b'x'];
    conn.send_out(&Out::new("SEND").h("destination", &topic).body(body))
        .await?;
    let message = conn.expect_message(ctx.wait()).await?;
    ensure!(
        message.frame.body.as_ref() == body,
        "body changed: {message}"
    );
    ensure!(
        message.ws == Some(WsKind::Binary),
        "non-UTF-8 MESSAGE arrived as {:?}",
        message.ws
    );
    PASS
}

/// After ERROR the server ends the WebSocket with a close frame, code 1000.
async fn error_then_close_frame(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.send_out(&Out::new("FOO")).await?;
    conn.expect(Command::Error, ctx.wait()).await?;
    let deadline = tokio::time::Instant::now() + ctx.wait();
    loop {
        match conn.next_event_until(deadline).await {
            None => return Err("no close after ERROR".into()),
            Some(crate::wire::Event::Closed { how, .. }) => {
                ensure!(
                    how == "websocket close 1000",
                    "connection ended by {how}, expected a WebSocket close frame with code 1000"
                );
                return PASS;
            }
            Some(crate::wire::Event::HeartBeat(_)) => {}
            Some(other) => return Err(format!("unexpected {other:?} after ERROR")),
        }
    }
}

/// semantics.md §1: only the configured paths upgrade (`/ws` by default).
async fn unknown_path_refused(ctx: Ctx) -> CaseResult {
    let url = ctx.target.with_path("/no-such-endpoint");
    match Conn::open_url(
        ctx.target.transport,
        &url,
        crate::wire::ALL_SUBPROTOCOLS,
        &ctx.target.authority,
    )
    .await
    {
        Ok(_) => Err(format!("{url} accepted the WebSocket upgrade")),
        Err(e) if e.contains("refused") => PASS,
        Err(e) => Err(format!("{url}: expected an HTTP refusal, got: {e}")),
    }
}
