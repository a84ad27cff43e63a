//! Every case, one module per group. Each module's `cases()` lists its cases in run order.

mod ack;
mod auth;
mod cluster;
mod connect;
mod errors;
mod escaping;
mod frames;
mod heartbeat;
mod limits;
mod pattern;
mod queue;
mod receipt;
mod topic;
mod tx;
mod user;
mod ws;

use herald_protocol::Command;

use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Verdict};
use crate::wire::{Conn, Out, Received};

/// The whole suite, in run order.
pub fn all() -> Vec<Case> {
    [
        connect::cases(),
        frames::cases(),
        escaping::cases(),
        heartbeat::cases(),
        receipt::cases(),
        errors::cases(),
        limits::cases(),
        topic::cases(),
        pattern::cases(),
        ws::cases(),
        queue::cases(),
        ack::cases(),
        tx::cases(),
        user::cases(),
        auth::cases(),
        cluster::cases(),
    ]
    .concat()
}

/// A passing case.
pub const PASS: CaseResult = Ok(Verdict::Pass);

/// Connects (1.2), sends `bytes`, and expects ERROR with a `message` header, then close.
pub async fn connected_error(ctx: &Ctx, bytes: &[u8]) -> Result<Received, String> {
    let mut conn = ctx.connect().await?;
    send_expect_error(ctx, &mut conn, bytes).await
}

/// Sends `bytes` and expects ERROR with a `message` header, then close.
pub async fn send_expect_error(
    ctx: &Ctx,
    conn: &mut Conn,
    bytes: &[u8],
) -> Result<Received, String> {
    // The server may close while a large write is still going: its answer is what counts.
    let written = conn.send(bytes).await;
    let error = conn
        .expect_error_and_close(ctx.wait())
        .await
        .map_err(|e| match &written {
            Err(w) => format!("{e} (and the write failed: {w})"),
            Ok(()) => e,
        })?;
    error.need("message")?;
    Ok(error)
}

/// Ends a session the way a polite client does when the test is not about DISCONNECT:
/// DISCONNECT without receipt, then wait for the server to close.
pub async fn leave(ctx: &Ctx, mut conn: Conn) -> Result<(), String> {
    conn.send(crate::wire::Out::new("DISCONNECT").bytes())
        .await?;
    conn.expect_closed(ctx.wait())
        .await
        .map_err(|e| format!("after DISCONNECT: {e}"))
}

/// The next frames on `conn` until `quiet` passes with nothing new; a close is an error.
pub async fn drain(conn: &mut Conn, ctx: &Ctx) -> Result<Vec<Received>, String> {
    let mut frames = Vec::new();
    loop {
        match conn.next_frame(ctx.quiet()).await {
            Ok(frame) => frames.push(frame),
            Err(e) if e.starts_with("no frame within") => return Ok(frames),
            Err(e) => return Err(e),
        }
    }
}

/// SUBSCRIBE `s1` to `topic` with receipt `r1`, as raw bytes, for cases that write it together
/// with other frames or cut it up.
pub fn subscribe_r1(topic: &str) -> Vec<u8> {
    Out::new("SUBSCRIBE")
        .h("id", "s1")
        .h("destination", topic)
        .h("receipt", "r1")
        .bytes()
}

/// The bodies of MESSAGE frames, as text; any other frame is an error.
pub fn bodies(frames: &[Received]) -> Result<Vec<String>, String> {
    frames
        .iter()
        .map(|f| {
            if f.command() == Command::Message {
                Ok(f.body_text())
            } else {
                Err(format!("expected only MESSAGE frames, got {f}"))
            }
        })
        .collect()
}
