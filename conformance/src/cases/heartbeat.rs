//! Heart-beating both ways (spec "Heart-beating"; peers §6.1 #19–#21; semantics.md §1).
//!
//! The cases ask for 1-second beats and read the server's offer from CONNECTED, so they judge
//! any broker by the spec arithmetic: the server sends every max(sx, cy) and expects the
//! client every max(cx, sy).

use std::time::Duration;

use herald_protocol::Command;
use tokio::time::{Instant, sleep};

use super::PASS;
use crate::ctx::Ctx;
use crate::runner::{Case, CaseResult, Verdict};
use crate::wire::{Conn, Out};
use crate::{case, ensure};

pub fn cases() -> Vec<Case> {
    vec![
        case!("heartbeat.none_when_0_0", ["heartbeat"], none_when_0_0),
        case!(
            "heartbeat.none_when_absent",
            ["heartbeat"],
            none_when_absent
        ),
        case!("heartbeat.server_sends", ["heartbeat"], server_sends),
        case!(
            "heartbeat.server_not_more_often_than_agreed",
            ["heartbeat", "herald"],
            server_not_more_often
        ),
        case!("heartbeat.client_timeout", ["heartbeat"], client_timeout),
        case!(
            "heartbeat.client_timeout_error",
            ["heartbeat", "error", "herald"],
            client_timeout_error
        ),
        case!(
            "heartbeat.client_eols_keep_alive",
            ["heartbeat"],
            client_eols_keep_alive
        ),
        case!(
            "heartbeat.client_frames_keep_alive",
            ["heartbeat"],
            client_frames_keep_alive
        ),
        case!(
            "heartbeat.partial_frame_keeps_alive",
            ["heartbeat", "frames"],
            partial_frame_keeps_alive
        ),
        case!(
            "heartbeat.ws_pings_keep_alive",
            ["heartbeat", "ws", "herald"],
            ws_pings_keep_alive
        )
        .ws_only(),
    ]
}

/// How long the "no heart-beats" cases listen.
const LISTEN: Duration = Duration::from_millis(2500);

/// CONNECT 1.2 with this `heart-beat` (None: no header); returns the session and the
/// server's `sx,sy` (0,0 when absent).
async fn connect_beating(ctx: &Ctx, heart_beat: Option<&str>) -> Result<(Conn, u64, u64), String> {
    let mut frame = Out::new("CONNECT")
        .h("accept-version", "1.2")
        .h("host", &ctx.opts.host);
    if let Some(value) = heart_beat {
        frame = frame.h("heart-beat", value);
    }
    let conn = ctx.connect_with(ctx.with_credentials(frame)).await?;
    let connected = conn.connected.as_ref().ok_or("no CONNECTED recorded")?;
    let (sx, sy) = match connected.header("heart-beat") {
        None => (0, 0),
        Some(value) => value
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .ok_or_else(|| format!("CONNECTED heart-beat:{value:?} is not <ms>,<ms>"))?,
    };
    Ok((conn, sx, sy))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The interval the cases ask for (`--heartbeat-ms`).
fn asked(ctx: &Ctx) -> u64 {
    ctx.opts.heartbeat_ms
}

/// `Err(skip)` when the broker agreed to an interval too long to wait out: more than twice
/// what the case asked for (a broker that imposes 10 s beats would otherwise cost minutes).
fn within_patience(ctx: &Ctx, agreed: Duration) -> Result<(), CaseResult> {
    if agreed > ms(asked(ctx) * 2) {
        return Err(Ok(Verdict::Skip(format!(
            "the broker agreed to {} ms heart-beats, more than twice the {} ms asked for; \
             --heartbeat-ms {} waits them out",
            agreed.as_millis(),
            asked(ctx),
            agreed.as_millis()
        ))));
    }
    Ok(())
}

/// Peers §6.1 #21: `heart-beat:0,0` → no beats from the server.
async fn none_when_0_0(ctx: Ctx) -> CaseResult {
    let (mut conn, _, _) = connect_beating(&ctx, Some("0,0")).await?;
    let beats = conn.heartbeats_for(LISTEN).await?;
    ensure!(
        beats.is_empty(),
        "{} heart-beats within {} ms after heart-beat:0,0",
        beats.len(),
        LISTEN.as_millis()
    );
    PASS
}

/// Peers §6.1 #21: no `heart-beat` header means 0,0.
async fn none_when_absent(ctx: Ctx) -> CaseResult {
    let (mut conn, _, _) = connect_beating(&ctx, None).await?;
    let beats = conn.heartbeats_for(LISTEN).await?;
    ensure!(
        beats.is_empty(),
        "{} heart-beats within {} ms without a heart-beat header",
        beats.len(),
        LISTEN.as_millis()
    );
    PASS
}

/// Peers §6.1 #19: with `heart-beat:0,N` the server beats every max(sx, N) ms (N from
/// `--heartbeat-ms`, 1000 by default).
async fn server_sends(ctx: Ctx) -> CaseResult {
    let asking = format!("0,{}", asked(&ctx));
    let (mut conn, sx, _) = connect_beating(&ctx, Some(&asking)).await?;
    if sx == 0 {
        return Ok(Verdict::Skip(
            "the server offers no heart-beats (CONNECTED heart-beat sx = 0)".into(),
        ));
    }
    let every = ms(sx.max(asked(&ctx)));
    if let Err(skip) = within_patience(&ctx, every) {
        return skip;
    }
    let slack = every / 2 + ms(300);
    let start = conn.connected.as_ref().map_or_else(Instant::now, |c| c.at);
    let beats = conn.heartbeats_for(every * 3 + ms(500)).await?;
    ensure!(
        beats.len() >= 2,
        "{} heart-beats in {} ms, agreed interval {} ms",
        beats.len(),
        (every * 3 + ms(500)).as_millis(),
        every.as_millis()
    );
    let mut last = start;
    for beat in beats {
        let gap = beat - last;
        ensure!(
            gap <= every + slack,
            "{} ms without a heart-beat, agreed interval {} ms",
            gap.as_millis(),
            every.as_millis()
        );
        last = beat;
    }
    PASS
}

/// semantics.md §1: the server beats every max(sx, cy), not as often as the client asks.
async fn server_not_more_often(ctx: Ctx) -> CaseResult {
    // Asking for beats ten times as often as the other cases.
    let often = (asked(&ctx) / 10).max(1);
    let (mut conn, sx, _) = connect_beating(&ctx, Some(&format!("0,{often}"))).await?;
    if sx == 0 {
        return Ok(Verdict::Skip("the server offers no heart-beats".into()));
    }
    let every = ms(sx.max(often));
    if let Err(skip) = within_patience(&ctx, every) {
        return skip;
    }
    let beats = conn.heartbeats_for(every * 2 + ms(500)).await?;
    ensure!(!beats.is_empty(), "no heart-beat at all");
    for pair in beats.windows(2) {
        let gap = pair[1] - pair[0];
        ensure!(
            gap * 10 >= every * 8,
            "heart-beats {} ms apart, agreed interval {} ms",
            gap.as_millis(),
            every.as_millis()
        );
    }
    PASS
}

/// Connects with `heart-beat:N,0` (`--heartbeat-ms`); returns the session and the read
/// window the server agreed to, `Ok(None)` when it expects no beats, `Err(skip)` when the
/// window is too long to wait out.
async fn client_must_beat(ctx: &Ctx) -> Result<Option<(Conn, Duration)>, CaseResult> {
    let (conn, _, sy) = connect_beating(ctx, Some(&format!("{},0", asked(ctx))))
        .await
        .map_err(Err)?;
    if sy == 0 {
        return Ok(None);
    }
    let window = ms(sy.max(asked(ctx)));
    within_patience(ctx, window)?;
    Ok(Some((conn, window)))
}

fn no_read_window() -> CaseResult {
    Ok(Verdict::Skip(
        "the server does not ask for client heart-beats (CONNECTED heart-beat sy = 0)".into(),
    ))
}

/// Peers §6.1 #20: a client silent beyond the read window is disconnected, with a margin.
async fn client_timeout(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    let started = conn.connected.as_ref().map_or_else(Instant::now, |c| c.at);
    let (frames, closed) = conn.wait_closed(window * 4 + ctx.wait()).await;
    let closed = closed.ok_or_else(|| {
        format!(
            "a silent client was not disconnected within {} ms (window {} ms)",
            (window * 4 + ctx.wait()).as_millis(),
            window.as_millis()
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
        after >= window,
        "disconnected after {} ms, inside the {} ms window",
        after.as_millis(),
        window.as_millis()
    );
    PASS
}

/// semantics.md §1: the timeout is an ERROR `heart-beat timeout`, then close.
async fn client_timeout_error(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    let error = conn.expect(Command::Error, window * 4 + ctx.wait()).await?;
    ensure!(
        error.header("message") == Some("heart-beat timeout"),
        "ERROR message {:?}, expected \"heart-beat timeout\"",
        error.header("message")
    );
    conn.expect_closed(ctx.wait()).await?;
    PASS
}

/// Keeps the session alive for three windows by calling `beat` every half window, then
/// checks it still answers.
async fn stays_alive<F>(ctx: &Ctx, conn: &mut Conn, window: Duration, mut beat: F) -> CaseResult
where
    F: FnMut(usize) -> Vec<u8>,
{
    let until = Instant::now() + window * 3;
    let mut n = 0;
    while Instant::now() < until {
        let bytes = beat(n);
        if bytes.is_empty() {
            conn.send_ping().await?;
        } else {
            conn.send(&bytes).await?;
        }
        n += 1;
        sleep(window / 2).await;
        // Anything but heart-beats or RECEIPTs (answers to frame beats) is wrong.
        while let Some(event) = conn.next_event_until(Instant::now()).await {
            match event {
                crate::wire::Event::Closed { how, .. } => {
                    return Err(format!(
                        "closed ({how}) although the client kept beating every {} ms",
                        (window / 2).as_millis()
                    ));
                }
                crate::wire::Event::Frame(f) if f.command() != Command::Receipt => {
                    return Err(format!("unexpected {f}"));
                }
                _ => {}
            }
        }
    }
    ctx.sync(conn).await?;
    PASS
}

/// Spec: EOLs (LF or CRLF) from the client count as heart-beats.
async fn client_eols_keep_alive(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    stays_alive(&ctx, &mut conn, window, |n| {
        if n % 2 == 0 {
            b"\n".to_vec()
        } else {
            b"\r\n".to_vec()
        }
    })
    .await
}

/// Spec: any data counts as a heart-beat, frames included.
async fn client_frames_keep_alive(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    let topic = ctx.topic("alive");
    stays_alive(&ctx, &mut conn, window, |n| {
        Out::new("SEND")
            .h("destination", &topic)
            .body(format!("beat {n}"))
            .bytes()
    })
    .await
}

/// semantics.md §1: any inbound byte counts as life, also the bytes of a frame that trickles in
/// over several windows.
async fn partial_frame_keeps_alive(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    let frame = Out::new("SEND")
        .h("destination", &ctx.topic("trickle"))
        .h("receipt", "trickled")
        .body("slow")
        .bytes();
    let pause = window * 3 / frame.len() as u32 + Duration::from_millis(1);
    let pause = pause.min(window / 3);
    for byte in frame.chunks(1) {
        conn.send(byte).await?;
        sleep(pause).await;
    }
    conn.expect_receipt("trickled", ctx.wait())
        .await
        .map_err(|e| {
            format!(
                "a frame sent one byte every {} ms (read window {} ms): {e}",
                pause.as_millis(),
                window.as_millis()
            )
        })?;
    PASS
}

/// semantics.md §1 ("any inbound byte counts as life"): WebSocket pings keep a session alive.
async fn ws_pings_keep_alive(ctx: Ctx) -> CaseResult {
    let (mut conn, window) = match client_must_beat(&ctx).await {
        Ok(Some(beating)) => beating,
        Ok(None) => return no_read_window(),
        Err(skip) => return skip,
    };
    stays_alive(&ctx, &mut conn, window, |_| Vec::new()).await
}
