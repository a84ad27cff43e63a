//! CONNECT/STOMP, version negotiation, the CONNECTED frame, DISCONNECT (spec "Connecting",
//! "Protocol Negotiation", "DISCONNECT"; semantics.md section 1).

use std::time::Duration;

use herald_protocol::Command;
use tokio::time::Instant;

use super::{PASS, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("connect.connected", ["connect"], connected),
        case!("negotiation.highest_common", ["connect"], highest_common),
        case!(
            "negotiation.order_independent",
            ["connect"],
            order_independent
        ),
        case!("negotiation.each_version", ["connect"], each_version),
        case!(
            "negotiation.no_common_version",
            ["connect", "error"],
            no_common_version
        ),
        case!(
            "negotiation.no_common_version_lists_all",
            ["connect", "error", "herald"],
            no_common_version_lists_all
        ),
        case!(
            "negotiation.missing_accept_version_is_1_0",
            ["connect"],
            missing_accept_version
        ),
        case!("connect.stomp_command", ["connect"], stomp_command),
        case!("connect.host_optional", ["connect"], host_optional),
        case!(
            "connect.headers_not_unescaped",
            ["connect", "escaping"],
            headers_not_unescaped
        ),
        case!(
            "connect.frame_before_connect",
            ["connect", "error"],
            frame_before_connect
        ),
        case!(
            "connect.connect_twice",
            ["connect", "error", "herald"],
            connect_twice
        ),
        case!(
            "connect.timeout_without_connect",
            ["connect", "limits"],
            timeout_without_connect
        ),
        case!(
            "connect.herald_connected_headers",
            ["connect", "herald"],
            herald_connected_headers
        ),
        case!(
            "connect.session_ids_differ",
            ["connect", "herald"],
            session_ids_differ
        ),
        case!(
            "connect.invalid_heart_beat_header",
            ["connect", "heartbeat", "error", "herald"],
            invalid_heart_beat_header
        ),
        case!(
            "disconnect.receipt_then_close",
            ["connect", "receipt"],
            disconnect_receipt
        ),
        case!(
            "disconnect.without_receipt",
            ["connect"],
            disconnect_without_receipt
        ),
        case!(
            "disconnect.pending_messages_flushed",
            ["connect", "receipt", "herald"],
            disconnect_pending_messages_flushed
        ),
        case!(
            "disconnect.later_frames_ignored",
            ["connect"],
            disconnect_later_frames_ignored
        ),
    ]
}

/// The `version` of a CONNECTED frame after CONNECT with `accept-version`.
async fn negotiated(ctx: &Ctx, accept_version: &str) -> Result<Option<String>, String> {
    let conn = ctx.connect_version(accept_version).await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    Ok(connected.header("version").map(str::to_owned))
}

/// Spec "CONNECTED Frame": `version` is required; `heart-beat`, when present, is `<n>,<n>`.
async fn connected(ctx: Ctx) -> CaseResult {
    let conn = ctx.connect().await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    ensure!(
        connected.header("version") == Some("1.2"),
        "CONNECT accept-version:1.2 answered with {connected}"
    );
    if let Some(beat) = connected.header("heart-beat") {
        let valid = beat
            .split_once(',')
            .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok());
        ensure!(valid, "CONNECTED heart-beat:{beat:?} is not <ms>,<ms>");
    }
    PASS
}

/// Peers §6.1 #1: `accept-version:1.0,1.1,2.0` → 1.1, the highest common version.
async fn highest_common(ctx: Ctx) -> CaseResult {
    let version = negotiated(&ctx, "1.0,1.1,2.0").await?;
    ensure!(
        version.as_deref() == Some("1.1"),
        "accept-version:1.0,1.1,2.0 negotiated {version:?}, expected 1.1"
    );
    PASS
}

/// The highest common version wins whatever the order of the list.
async fn order_independent(ctx: Ctx) -> CaseResult {
    let version = negotiated(&ctx, "1.2,1.0,1.1").await?;
    ensure!(
        version.as_deref() == Some("1.2"),
        "accept-version:1.2,1.0,1.1 negotiated {version:?}, expected 1.2"
    );
    PASS
}

/// Each version alone is accepted as itself (1.0 CONNECTED may omit `version`).
async fn each_version(ctx: Ctx) -> CaseResult {
    for offered in ["1.0", "1.1", "1.2"] {
        let version = negotiated(&ctx, offered).await?;
        let ok = match (offered, version.as_deref()) {
            ("1.0", None) => true,
            (offered, Some(got)) => got == offered,
            _ => false,
        };
        ensure!(ok, "accept-version:{offered} negotiated {version:?}");
    }
    PASS
}

/// Peers §6.1 #2: no common version → ERROR (with the supported `version` list), then close.
async fn no_common_version(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.open().await?;
    let error = send_expect_error(&ctx, &mut conn, &ctx.connect_frame(Some("3.0")).bytes()).await?;
    let versions = error.need("version")?;
    ensure!(
        versions.split(',').any(|v| v.trim() == "1.2"),
        "ERROR version:{versions:?} does not list 1.2"
    );
    PASS
}

/// semantics.md §1: the ERROR lists exactly `version:1.0,1.1,1.2`.
async fn no_common_version_lists_all(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.open().await?;
    let error =
        send_expect_error(&ctx, &mut conn, &ctx.connect_frame(Some("2.0,3.0")).bytes()).await?;
    let versions = error.need("version")?;
    ensure!(versions == "1.0,1.1,1.2", "ERROR version:{versions:?}");
    PASS
}

/// Peers §6.1 #3: without `accept-version` the session is STOMP 1.0.
async fn missing_accept_version(ctx: Ctx) -> CaseResult {
    let conn = ctx.connect_with(ctx.connect_frame(None)).await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    let version = connected.header("version");
    ensure!(
        version.is_none() || version == Some("1.0"),
        "CONNECT without accept-version negotiated {version:?}, expected 1.0"
    );
    PASS
}

/// Peers §6.1 #4: STOMP is CONNECT by another name.
async fn stomp_command(ctx: Ctx) -> CaseResult {
    let frame = ctx.with_credentials(
        Out::new("STOMP")
            .h("accept-version", "1.2")
            .h("host", &ctx.opts.host),
    );
    let conn = ctx.connect_with(frame).await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    ensure!(
        connected.header("version") == Some("1.2"),
        "STOMP accept-version:1.2 answered with {connected}"
    );
    PASS
}

/// semantics.md §1: `host` is optional.
async fn host_optional(ctx: Ctx) -> CaseResult {
    let frame = ctx.with_credentials(Out::new("CONNECT").h("accept-version", "1.2"));
    ctx.connect_with(frame).await?;
    PASS
}

/// Peers §6.1 #11: CONNECT headers are not unescaped, so `\t` in one is no error.
async fn headers_not_unescaped(ctx: Ctx) -> CaseResult {
    let frame = ctx.connect_frame(Some("1.2")).h("x-hc-raw", r"a\tb\q");
    ctx.connect_with(frame).await.map_err(|e| {
        format!("CONNECT with header x-hc-raw:a\\tb\\q (escapes must not be decoded): {e}")
    })?;
    PASS
}

/// semantics.md §1: a frame before CONNECT is ERROR + close.
async fn frame_before_connect(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.open().await?;
    let send = Out::new("SEND")
        .h("destination", &ctx.topic("early"))
        .body("too early");
    send_expect_error(&ctx, &mut conn, &send.bytes()).await?;
    PASS
}

/// A second CONNECT on a session is ERROR + close.
async fn connect_twice(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    send_expect_error(&ctx, &mut conn, &ctx.connect_frame(Some("1.2")).bytes()).await?;
    PASS
}

/// semantics.md §1 limits: no CONNECT within the connect time → the server closes (an ERROR
/// first is allowed). `--connect-timeout-ms` tells the suite the broker's setting.
async fn timeout_without_connect(ctx: Ctx) -> CaseResult {
    let limit = Duration::from_millis(ctx.opts.connect_timeout_ms);
    let started = Instant::now();
    let mut conn = ctx.open().await?;
    let (frames, closed) = conn.wait_closed(limit + ctx.wait() * 2).await;
    let closed = closed.ok_or_else(|| {
        format!(
            "connection without CONNECT still open after {} ms",
            (limit + ctx.wait() * 2).as_millis()
        )
    })?;
    for frame in &frames {
        ensure!(
            frame.command() == Command::Error,
            "unexpected {frame} before the close"
        );
    }
    let after = closed - started;
    ensure!(
        after + Duration::from_millis(200) >= limit / 2,
        "closed after {} ms, well before the {} ms connect timeout",
        after.as_millis(),
        limit.as_millis()
    );
    PASS
}

/// semantics.md §1: CONNECTED carries `version`, `heart-beat`, `session` and `server:herald/…`.
async fn herald_connected_headers(ctx: Ctx) -> CaseResult {
    let conn = ctx.connect().await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    let server = connected.need("server")?;
    ensure!(server.starts_with("herald/"), "server:{server:?}");
    ensure!(
        !connected.need("session")?.is_empty(),
        "empty session header"
    );
    connected.need("heart-beat")?;
    ensure!(
        connected.header("user-name").is_none(),
        "anonymous session has user-name: {connected}"
    );
    PASS
}

/// Two sessions get different `session` ids.
async fn session_ids_differ(ctx: Ctx) -> CaseResult {
    let a = ctx.connect().await?;
    let b = ctx.connect().await?;
    let session = |c: &crate::wire::Conn| {
        c.connected
            .as_ref()
            .and_then(|f| f.header("session"))
            .map(str::to_owned)
            .ok_or_else(|| "CONNECTED has no session header".to_owned())
    };
    let (sa, sb) = (session(&a)?, session(&b)?);
    ensure!(sa != sb, "two sessions share session id {sa:?}");
    PASS
}

/// A malformed `heart-beat` header is ERROR + close.
async fn invalid_heart_beat_header(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.open().await?;
    let frame = ctx.with_credentials(
        Out::new("CONNECT")
            .h("accept-version", "1.2")
            .h("host", &ctx.opts.host)
            .h("heart-beat", "soon,later"),
    );
    send_expect_error(&ctx, &mut conn, &frame.bytes()).await?;
    PASS
}

/// Peers §6.1 #35: DISCONNECT `receipt:77` → RECEIPT `receipt-id:77`, then close.
async fn disconnect_receipt(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.send_out(&Out::new("DISCONNECT").h("receipt", "77"))
        .await?;
    conn.expect_receipt("77", ctx.wait()).await?;
    conn.expect_closed(ctx.wait())
        .await
        .map_err(|e| format!("after the DISCONNECT receipt: {e}"))?;
    PASS
}

/// semantics.md §1: DISCONNECT without receipt closes, with no ERROR.
async fn disconnect_without_receipt(ctx: Ctx) -> CaseResult {
    let mut conn = ctx.connect().await?;
    conn.send_out(&Out::new("DISCONNECT")).await?;
    conn.expect_closed(ctx.wait()).await?;
    PASS
}

/// semantics.md §1: DISCONNECT with receipt answers RECEIPT after the session's earlier frames
/// took effect, flushes, then closes: MESSAGEs those frames produced come first.
async fn disconnect_pending_messages_flushed(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("flush");
    let mut conn = ctx.connect().await?;
    conn.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut bytes = Vec::new();
    for n in 0..50 {
        bytes.extend(
            Out::new("SEND")
                .h("destination", &topic)
                .body(format!("m{n}"))
                .bytes(),
        );
    }
    bytes.extend(Out::new("DISCONNECT").h("receipt", "bye").bytes());
    conn.send(&bytes).await?;
    for n in 0..50 {
        conn.expect_body(&format!("m{n}"), ctx.wait()).await?;
    }
    conn.expect_receipt("bye", ctx.wait()).await?;
    conn.expect_closed(ctx.wait()).await?;
    PASS
}

/// Peers §6.1 #36: a SEND written after DISCONNECT has no effect.
async fn disconnect_later_frames_ignored(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("after-disconnect");
    let mut subscriber = ctx.connect().await?;
    subscriber.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut conn = ctx.connect().await?;
    let mut bytes = Out::new("DISCONNECT").bytes();
    bytes.extend(
        Out::new("SEND")
            .h("destination", &topic)
            .body("ghost")
            .bytes(),
    );
    conn.send(&bytes).await?;
    conn.expect_closed(ctx.wait()).await?;
    subscriber
        .expect_silence(ctx.quiet())
        .await
        .map_err(|e| format!("a SEND after DISCONNECT was delivered: {e}"))?;
    PASS
}
