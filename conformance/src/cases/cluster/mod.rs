//! Two nodes of one cluster (semantics.md §6): each case connects to its `--url` (node A) and to
//! the peer (node B, `--peer-url`). Without `--peer-url` the peer is the `--url` itself: a
//! single broker is a cluster of one, and every case must hold there too.
//!
//! Interest travels between nodes asynchronously: a subscription made on one node may not yet
//! route what the other node publishes. Each case therefore first sends probes until one
//! arrives ([`await_route`]), then measures. Probes go to the measured destination itself,
//! marked with the [`PROBE`] header, because a node's interest is per destination or pattern:
//! a probe on another destination could be routed while the measured one is not yet. The
//! helpers here skip probes, so one arriving late never counts as a measured message.

mod pattern;
mod topic;
mod user;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::future::try_join_all;
use herald_protocol::Command;
use tokio::time::Instant;

use super::drain;
use crate::ctx::Ctx;
use crate::runner::Case;
use crate::wire::{Conn, Out, Received};

pub fn cases() -> Vec<Case> {
    [topic::cases(), pattern::cases(), user::cases()].concat()
}

/// The header that marks a probe.
const PROBE: &str = "x-conformance-probe";

/// How long a probe waits for its MESSAGE before the next one is sent.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// How long interest may take to reach the other node: generous (a loaded CI machine may be
/// slow), yet short enough that a cluster that never routes fails each case in seconds.
fn route_limit(ctx: &Ctx) -> Duration {
    ctx.wait() * 3
}

fn is_probe(frame: &Received) -> bool {
    frame.command() == Command::Message && frame.header(PROBE).is_some()
}

/// Sends probes to `destination` from `publisher` until `subscriber` receives one of them
/// (probes of an earlier call may still be arriving: they do not count).
async fn await_route(
    ctx: &Ctx,
    publisher: &mut Conn,
    subscriber: &mut Conn,
    destination: &str,
) -> Result<(), String> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let ours = format!("{call}-");
    let limit = route_limit(ctx);
    let deadline = Instant::now() + limit;
    let mut n = 0u32;
    while Instant::now() < deadline {
        let probe = Out::new("SEND")
            .h("destination", destination)
            .h(PROBE, &format!("{ours}{n}"))
            .body("probe");
        publisher.send_out(&probe).await?;
        n += 1;
        let wait_until = Instant::now() + PROBE_INTERVAL;
        loop {
            let left = wait_until.saturating_duration_since(Instant::now());
            match subscriber.next_frame(left).await {
                Ok(frame) if is_probe(&frame) => {
                    if frame.header(PROBE).is_some_and(|p| p.starts_with(&ours)) {
                        return Ok(());
                    }
                }
                Ok(frame) => return Err(format!("waiting for a probe to {destination}: {frame}")),
                Err(e) if e.starts_with("no frame within") => break,
                Err(e) => return Err(format!("waiting for a probe to {destination}: {e}")),
            }
        }
    }
    Err(format!(
        "none of {n} probes to {destination} reached the subscriber on the other node within {} ms",
        limit.as_millis()
    ))
}

/// The next frame on `conn` that is not a probe.
async fn next_measured(conn: &mut Conn, wait: Duration) -> Result<Received, String> {
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = conn.next_frame(left).await?;
        if !is_probe(&frame) {
            return Ok(frame);
        }
    }
}

/// The next frame that is not a probe must be a MESSAGE with this body.
async fn expect_measured(conn: &mut Conn, body: &str, ctx: &Ctx) -> Result<Received, String> {
    let frame = next_measured(conn, ctx.wait())
        .await
        .map_err(|e| format!("expected a MESSAGE {body:?}: {e}"))?;
    if frame.command() != Command::Message || frame.frame.body.as_ref() != body.as_bytes() {
        return Err(format!("expected a MESSAGE {body:?}, got {frame}"));
    }
    Ok(frame)
}

/// Every frame until `conn` stays quiet, probes left out; anything but a MESSAGE is an error.
async fn measured_messages(conn: &mut Conn, ctx: &Ctx) -> Result<Vec<Received>, String> {
    let frames: Vec<Received> = drain(conn, ctx)
        .await?
        .into_iter()
        .filter(|f| !is_probe(f))
        .collect();
    match frames.iter().find(|f| f.command() != Command::Message) {
        Some(other) => Err(format!("expected only MESSAGE frames, got {other}")),
        None => Ok(frames),
    }
}

/// The bodies of the messages that arrive until `conn` stays quiet, probes left out.
async fn measured_bodies(conn: &mut Conn, ctx: &Ctx) -> Result<Vec<String>, String> {
    Ok(measured_messages(conn, ctx)
        .await?
        .iter()
        .map(Received::body_text)
        .collect())
}

/// [`measured_bodies`] of several connections, watched for quiet at the same time.
async fn measured_bodies_of(conns: Vec<&mut Conn>, ctx: &Ctx) -> Result<Vec<Vec<String>>, String> {
    try_join_all(conns.into_iter().map(|conn| measured_bodies(conn, ctx))).await
}

/// Sends `frame` with a receipt and waits for that RECEIPT, skipping probes that arrive
/// before it (on a subscriber a late probe may).
async fn with_receipt(conn: &mut Conn, frame: Out, ctx: &Ctx) -> Result<(), String> {
    let receipt = conn.receipt_id();
    conn.send_out(&frame.h("receipt", &receipt)).await?;
    let got = next_measured(conn, ctx.wait())
        .await
        .map_err(|e| format!("waiting for RECEIPT {receipt}: {e}"))?;
    if got.command() == Command::Receipt && got.header("receipt-id") == Some(receipt.as_str()) {
        Ok(())
    } else {
        Err(format!("expected RECEIPT {receipt}, got {got}"))
    }
}

/// SUBSCRIBE `destination` as `id` (auto ack) and wait for its RECEIPT, skipping probes.
async fn subscribe(conn: &mut Conn, destination: &str, id: &str, ctx: &Ctx) -> Result<(), String> {
    let frame = Out::new("SUBSCRIBE")
        .h("id", id)
        .h("destination", destination);
    with_receipt(conn, frame, ctx).await
}
