//! Heart-beats and the CONNECT timeout over both transports.
//!
//! These run on the real clock with intervals of a few hundred milliseconds. Tokio's paused
//! clock does not mix with real loopback sockets: it advances to the next timer as soon as
//! one non-blocking poll of the sockets finds nothing, and loopback delivery can lag a write
//! (softirq work deferred under load), so a timer would fire before data already sent. The
//! negotiation's exact intervals are checked on the paused clock over an in-memory transport
//! in heartbeat_negotiation.rs.

mod common;

use std::time::Duration;

use common::{Client, Event, TestServer, Transport, config, connect_frame, show};
use herald::config::Config;
use tokio::time::Instant;

transport_tests!(
    server_sends_heart_beats_at_the_negotiated_interval,
    server_interval_follows_the_request,
    request_below_the_floor_gets_the_floor,
    no_heart_beats_when_the_client_asks_for_none,
    silent_client_is_closed_after_the_read_window,
    client_heart_beats_keep_the_session_open,
    any_frame_counts_as_life,
    connect_timeout_closes_a_silent_connection,
    invalid_heart_beat_header_is_error,
);

/// The server's offer follows what the client asks, down to 100 ms; where the client asks for
/// nothing it offers to send every 200 ms and to receive every 300 ms. The read window is the
/// agreed client interval times 2.
fn beats() -> Config {
    let mut config = config();
    config.stomp.heartbeat_send_ms = 200;
    config.stomp.heartbeat_receive_ms = 300;
    config.stomp.heartbeat_floor_ms = 100;
    config.stomp.heartbeat_tolerance = 2.0;
    config
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// Waits for the next event, which must be a heart-beat; returns when it came.
async fn next_beat(client: &mut Client) -> Instant {
    match client.event().await {
        Some(Event::HeartBeat) => Instant::now(),
        Some(Event::Frame(frame, _)) => panic!("expected a heart-beat, got {}", show(&frame)),
        other => panic!("expected a heart-beat, got {other:?}"),
    }
}

fn assert_between(what: &str, actual: Duration, low: Duration, high: Duration) {
    assert!(
        actual >= low && actual < high,
        "{what} after {actual:?}, expected between {low:?} and {high:?}"
    );
}

async fn server_sends_heart_beats_at_the_negotiated_interval(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    let connected = client
        .connect_with(connect_frame("1.2").header("heart-beat", "0,200"))
        .await;
    // CONNECTED states the server's offer: the client's 200 ms, and the configured 300 ms
    // where the client promises nothing.
    assert_eq!(connected.headers.get("heart-beat"), Some("200,300"));
    let start = Instant::now();
    for _ in 0..4 {
        next_beat(&mut client).await;
    }
    // Four beats every 200 ms; loose bounds for a loaded machine, tight enough to tell
    // "every 200 ms" from "every 10 s" or "all at once".
    assert_between("four heart-beats", start.elapsed(), ms(700), ms(2_000));
    // And the session still works between beats.
    client.subscribe("s", "/topic/a").await;
}

async fn server_interval_follows_the_request(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    // The client wants beats every 600 ms: the server offers and sends exactly that.
    let connected = client
        .connect_with(connect_frame("1.2").header("heart-beat", "0,600"))
        .await;
    assert_eq!(connected.headers.get("heart-beat"), Some("600,300"));
    let start = Instant::now();
    let first = next_beat(&mut client).await;
    assert_between("first heart-beat", first - start, ms(500), ms(1_500));
    let second = next_beat(&mut client).await;
    assert_between("second heart-beat", second - first, ms(400), ms(1_500));
}

async fn request_below_the_floor_gets_the_floor(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    let connected = client
        .connect_with(connect_frame("1.2").header("heart-beat", "0,10"))
        .await;
    assert_eq!(connected.headers.get("heart-beat"), Some("100,300"));
    let start = Instant::now();
    for _ in 0..4 {
        next_beat(&mut client).await;
    }
    // Every 100 ms, not every 10 ms.
    assert_between("four heart-beats", start.elapsed(), ms(350), ms(2_000));
}

async fn no_heart_beats_when_the_client_asks_for_none(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    client
        .connect_with(connect_frame("1.2").header("heart-beat", "0,0"))
        .await;
    // Beats would come every 200 ms, a read timeout after 600: neither happens.
    let quiet = tokio::time::timeout(ms(800), client.next_event()).await;
    assert!(quiet.is_err(), "expected silence, got {quiet:?}");
    client.subscribe("s", "/topic/a").await;
}

async fn silent_client_is_closed_after_the_read_window(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    // The client promises a beat every 300 ms: the window is 300 ms x tolerance 2.
    client
        .connect_with(connect_frame("1.2").header("heart-beat", "300,0"))
        .await;
    let start = Instant::now();
    client.expect_error_then_close("heart-beat timeout").await;
    assert_between("heart-beat timeout", start.elapsed(), ms(580), ms(2_000));
    server.close_counted("heartbeat_timeout").await;
}

async fn client_heart_beats_keep_the_session_open(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    client
        .connect_with(connect_frame("1.2").header("heart-beat", "300,0"))
        .await;
    // A second of EOLs every 100 ms, well inside the 600 ms window.
    let start = Instant::now();
    while start.elapsed() < ms(1_000) {
        tokio::time::sleep(ms(100)).await;
        client.send_bytes(b"\n").await;
    }
    client.subscribe("s", "/topic/a").await;
    assert_eq!(server.node.stats.closes("heartbeat_timeout"), 0);
    // Then silence: closed one window after the last input.
    let silent = Instant::now();
    client.expect_error_then_close("heart-beat timeout").await;
    assert_between("heart-beat timeout", silent.elapsed(), ms(580), ms(2_000));
}

async fn any_frame_counts_as_life(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    client
        .connect_with(connect_frame("1.2").header("heart-beat", "200,0"))
        .await;
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < ms(1_000) {
        tokio::time::sleep(ms(100)).await;
        client.subscribe(&format!("s{i}"), "/topic/a").await;
        i += 1;
    }
    client.expect_error_then_close("heart-beat timeout").await;
}

async fn connect_timeout_closes_a_silent_connection(transport: Transport) {
    let mut config = beats();
    config.stomp.connect_timeout_ms = 300;
    let server = TestServer::start(config).await;
    let start = Instant::now();
    let mut client = server.open(transport).await;
    client.expect_error_then_close("connect timeout").await;
    assert_between("connect timeout", start.elapsed(), ms(280), ms(2_000));
    server.close_counted("connect_timeout").await;
}

async fn invalid_heart_beat_header_is_error(transport: Transport) {
    let server = TestServer::start(beats()).await;
    let mut client = server.open(transport).await;
    client
        .send(&connect_frame("1.2").header("heart-beat", "soon,never"))
        .await;
    client
        .expect_error_then_close("invalid heart-beat header")
        .await;
}
