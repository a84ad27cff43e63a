//! Size and count limits (spec "Size Limits"; peers §6.1 #17; semantics.md §1 "Limits"). The
//! broker's settings come from the `--max-*` options, whose defaults are Herald's (and, for
//! frame sizes, RabbitMQ's).

use super::{PASS, connected_error, send_expect_error};
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Need, Verdict};
use crate::wire::Out;
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!(
            "limits.frame_too_large",
            ["limits", "error"],
            frame_too_large
        ),
        case!(
            "limits.frame_too_large_without_content_length",
            ["limits", "error"],
            frame_too_large_without_content_length
        ),
        case!(
            "limits.frame_before_connect_too_large",
            ["limits", "error", "connect"],
            frame_before_connect_too_large
        ),
        case!(
            "limits.frame_at_limit_accepted",
            ["limits", "herald"],
            frame_at_limit_accepted
        ),
        case!(
            "limits.too_many_headers",
            ["limits", "error", "herald"],
            too_many_headers
        ),
        case!(
            "limits.header_line_too_long",
            ["limits", "error", "herald"],
            header_line_too_long
        ),
        case!(
            "limits.frame_in_oversized_ws_message",
            ["limits", "error", "ws", "herald"],
            frame_in_oversized_ws_message
        )
        .ws_only(),
        case!(
            "limits.connections_per_address",
            ["limits", "error", "connect", "herald"],
            connections_per_address
        ),
        case!(
            "limits.subscriptions_per_session",
            ["limits", "error", "subscribe", "herald"],
            subscriptions_per_session
        ),
        case!(
            "limits.transactions_per_session",
            ["limits", "error", "tx", "herald"],
            transactions_per_session
        )
        .needs(&[Need::Transactions]),
    ]
}

/// A SEND to `destination` whose encoded size is exactly `total` bytes (with
/// `content-length`), or `None` if `total` is too small for one.
fn send_of_size(destination: &str, total: usize) -> Option<Vec<u8>> {
    let fixed = "SEND\n".len()
        + "destination:\n".len()
        + destination.len()
        + "content-length:\n\n".len()
        + 1;
    let mut body = total.checked_sub(fixed)?;
    // The digits of content-length count too.
    for _ in 0..3 {
        body = total.checked_sub(fixed + body.to_string().len())?;
    }
    let frame = Out::new("SEND")
        .h("destination", destination)
        .body(vec![b'x'; body])
        .bytes();
    (frame.len() == total).then_some(frame)
}

/// Peers §6.1 #17: a frame one byte over the limit (announced by `content-length`) is
/// ERROR + close.
async fn frame_too_large(ctx: Ctx) -> CaseResult {
    let limit = ctx.opts.max_frame_bytes;
    let frame = Out::new("SEND")
        .h("destination", &ctx.topic("big"))
        .body(vec![b'x'; limit + 1]);
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// A body without `content-length` that runs past the limit is ERROR + close.
async fn frame_too_large_without_content_length(ctx: Ctx) -> CaseResult {
    let limit = ctx.opts.max_frame_bytes;
    let frame = Out::new("SEND")
        .h("destination", &ctx.topic("big"))
        .no_length()
        .body(vec![b'x'; limit + 1]);
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// semantics.md §1: before CONNECT a smaller limit applies (64 KiB by default): a CONNECT whose
/// headers add up to more is ERROR + close (or a plain close).
async fn frame_before_connect_too_large(ctx: Ctx) -> CaseResult {
    let limit = ctx.opts.max_frame_bytes_before_connect;
    let line = ctx
        .opts
        .max_header_line_bytes
        .saturating_sub(64)
        .clamp(16, 4000);
    let count = limit / line + 2;
    if count + 4 > ctx.opts.max_headers {
        return Ok(Verdict::Skip(format!(
            "a {limit}-byte CONNECT needs {count} headers of {line} bytes, over --max-headers"
        )));
    }
    let mut connect = ctx.connect_frame(Some("1.2"));
    let value = "v".repeat(line - 10);
    for n in 0..count {
        connect = connect.h(&format!("x-pad-{n:03}"), &value);
    }
    let bytes = connect.bytes();
    ensure!(
        bytes.len() > limit,
        "test bug: CONNECT of only {} bytes",
        bytes.len()
    );
    let mut conn = ctx.open().await?;
    let _ = conn.send(&bytes).await;
    let (frames, closed) = conn.wait_closed(ctx.wait()).await;
    ensure!(
        closed.is_some(),
        "a {}-byte CONNECT (limit {limit}) did not close the connection; got {:?}",
        bytes.len(),
        frames.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
    for frame in &frames {
        ensure!(
            frame.command() == herald_protocol::Command::Error,
            "a {}-byte CONNECT (limit {limit}) was answered with {frame}",
            bytes.len()
        );
    }
    PASS
}

/// A frame of exactly the limit is accepted.
async fn frame_at_limit_accepted(ctx: Ctx) -> CaseResult {
    let topic = ctx.topic("edge");
    let limit = ctx.opts.max_frame_bytes;
    let frame = send_of_size(&topic, limit).ok_or("the frame limit is too small to test")?;
    let body_len = frame.len() - frame.iter().position(|&b| b == b'x').unwrap_or(0) - 1;
    let mut sub = ctx.connect().await?;
    sub.subscribe(&topic, "s1", ctx.wait()).await?;
    let mut publisher = ctx.connect().await?;
    publisher.send(&frame).await?;
    let message = sub.expect_message(ctx.wait()).await?;
    ensure!(
        message.frame.body.len() == body_len && message.frame.body.iter().all(|&b| b == b'x'),
        "the {limit}-byte frame's {body_len}-byte body arrived as {} bytes",
        message.frame.body.len()
    );
    PASS
}

/// A SEND with `count` header lines (destination and receipt included), no body.
fn send_with_headers(ctx: &Ctx, count: usize, receipt: &str) -> Out {
    let mut frame = Out::new("SEND")
        .h("destination", &ctx.topic("hdrs"))
        .h("receipt", receipt);
    for n in 2..count {
        frame = frame.h(&format!("x-h{n}"), "v");
    }
    frame
}

/// semantics.md §1: `--max-headers` headers pass, one more is ERROR + close.
async fn too_many_headers(ctx: Ctx) -> CaseResult {
    let max = ctx.opts.max_headers;
    let mut conn = ctx.connect().await?;
    conn.send_out(&send_with_headers(&ctx, max, "at-limit"))
        .await?;
    conn.expect_receipt("at-limit", ctx.wait())
        .await
        .map_err(|e| format!("a frame with exactly {max} headers: {e}"))?;
    send_expect_error(
        &ctx,
        &mut conn,
        &send_with_headers(&ctx, max + 1, "over").bytes(),
    )
    .await?;
    PASS
}

/// semantics.md §1: a header line of `--max-header-line-bytes` passes, one byte more is
/// ERROR + close.
async fn header_line_too_long(ctx: Ctx) -> CaseResult {
    let max = ctx.opts.max_header_line_bytes;
    let line = |len: usize, receipt: &str| {
        let value = "v".repeat(len - "x-long:".len());
        Out::new("SEND")
            .h("destination", &ctx.topic("long"))
            .h("receipt", receipt)
            .h("x-long", &value)
    };
    let mut conn = ctx.connect().await?;
    conn.send_out(&line(max, "at-limit")).await?;
    conn.expect_receipt("at-limit", ctx.wait())
        .await
        .map_err(|e| format!("a header line of exactly {max} bytes: {e}"))?;
    send_expect_error(&ctx, &mut conn, &line(max + 1, "over").bytes()).await?;
    PASS
}

/// semantics.md §1: `--max-subscriptions` subscriptions pass, one more is ERROR + close.
async fn subscriptions_per_session(ctx: Ctx) -> CaseResult {
    let max = ctx.opts.max_subscriptions;
    let mut conn = ctx.connect().await?;
    let mut bytes = Vec::new();
    for n in 0..max {
        let mut frame = Out::new("SUBSCRIBE")
            .h("id", &format!("s{n}"))
            .h("destination", &ctx.topic(&format!("many{n}")));
        if n + 1 == max {
            frame = frame.h("receipt", "all");
        }
        bytes.extend(frame.bytes());
    }
    conn.send(&bytes).await?;
    conn.expect_receipt("all", ctx.wait())
        .await
        .map_err(|e| format!("{max} subscriptions: {e}"))?;
    let one_more = Out::new("SUBSCRIBE")
        .h("id", "one-more")
        .h("destination", &ctx.topic("many-more"));
    send_expect_error(&ctx, &mut conn, &one_more.bytes()).await?;
    PASS
}

/// semantics.md §1: a frame over the limit is ERROR + close, also when it arrives in one
/// WebSocket message larger than the broker's WebSocket message limit.
async fn frame_in_oversized_ws_message(ctx: Ctx) -> CaseResult {
    let size = ctx.opts.max_ws_message_bytes.max(ctx.opts.max_frame_bytes) + 1;
    let frame = Out::new("SEND")
        .h("destination", &ctx.topic("huge"))
        .body(vec![b'x'; size]);
    connected_error(&ctx, &frame.bytes()).await?;
    PASS
}

/// semantics.md §1: past `--max-connections-per-address` connections, a new one gets ERROR,
/// then close.
async fn connections_per_address(ctx: Ctx) -> CaseResult {
    let max = ctx.opts.max_connections_per_address;
    if max > 200 {
        return Ok(Verdict::Skip(format!(
            "--max-connections-per-address {max} is too many to open (at most 200)"
        )));
    }
    // Let the sessions of earlier cases finish closing.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut open = Vec::new();
    for n in 0..max {
        let conn = ctx
            .connect()
            .await
            .map_err(|e| format!("connection {} of {max}: {e}", n + 1))?;
        open.push(conn);
    }
    let mut conn = ctx
        .open()
        .await
        .map_err(|e| format!("connection {} (over the limit) got no ERROR: {e}", max + 1))?;
    // The server may answer before or after CONNECT.
    let _ = conn.send_out(&ctx.connect_frame(Some("1.2"))).await;
    let error = conn.expect_error_and_close(ctx.wait()).await;
    // Give the places back before the next case connects, whatever the outcome.
    drop(open);
    let deadline = tokio::time::Instant::now() + ctx.wait();
    while ctx.connect().await.is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    error?.need("message")?;
    PASS
}

/// semantics.md §1: `--max-transactions` open transactions pass, one more is ERROR + close.
async fn transactions_per_session(ctx: Ctx) -> CaseResult {
    let max = ctx.opts.max_transactions;
    let mut conn = ctx.connect().await?;
    let mut bytes = Vec::new();
    for n in 0..max {
        let mut frame = Out::new("BEGIN").h("transaction", &format!("t{n}"));
        if n + 1 == max {
            frame = frame.h("receipt", "all");
        }
        bytes.extend(frame.bytes());
    }
    conn.send(&bytes).await?;
    conn.expect_receipt("all", ctx.wait())
        .await
        .map_err(|e| format!("{max} open transactions: {e}"))?;
    let one_more = Out::new("BEGIN").h("transaction", "one-more");
    send_expect_error(&ctx, &mut conn, &one_more.bytes()).await?;
    PASS
}
