//! Graceful drain over both transports: on stop, sessions flush what is queued for them, get
//! ERROR `server shutting down` and close (WebSocket 1001 "going away", TCP end of stream),
//! and `serve` returns within the drain time.

mod common;

use std::time::Duration;

use common::{Client, Closed, TestServer, Transport, config, send_frame, within};
use herald::config::Config;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

transport_tests!(
    stop_flushes_queued_messages_then_closes_going_away,
    idle_sessions_close_at_once_and_listeners_stop,
    drain_time_bounds_a_client_that_never_reads,
);

/// More than the loopback socket buffers hold, so much of it is still in the outbox when
/// the server stops (the subscriber does not read until then).
const QUEUED: usize = 5_000;
const DRAIN_MS: u64 = 3_000;

fn drain_config() -> Config {
    let mut config = config();
    config.shutdown.drain_ms = DRAIN_MS;
    // Room for everything queued: nothing may be dropped or closed as slow.
    config.outbox.max_bytes = 16 << 20;
    config.outbox.max_stall_ms = 60_000;
    config
}

fn body(seq: usize) -> String {
    format!("{seq:06}-{}", "q".repeat(1017))
}

/// The close a stopping server gives.
fn going_away(transport: Transport) -> Closed {
    match transport {
        Transport::Tcp => Closed::Eof,
        Transport::Ws => Closed::WsClose(Some(CloseCode::Away)),
    }
}

/// The end a stopping server gives a connected session: ERROR, then the close.
async fn expect_shutdown(client: &mut Client) {
    let error = client.expect_error("server shutting down").await;
    assert!(
        String::from_utf8_lossy(&error.body).contains("shutting down"),
        "{error:?}"
    );
    assert_eq!(client.expect_closed().await, going_away(client.transport));
    assert_eq!(client.leftover(), 0);
}

/// Publishes `count` numbered 1 KiB messages to `/topic/drain`; all routed on return.
async fn flood(publisher: &mut Client, count: usize) {
    let mut batch = Vec::new();
    for seq in 0..count {
        batch.extend_from_slice(&common::encoded(&send_frame("/topic/drain", &body(seq))));
        if batch.len() > 256 * 1024 || seq + 1 == count {
            publisher.send_bytes(&batch).await;
            batch.clear();
        }
    }
    publisher
        .send_with_receipt(send_frame("/topic/drain-done", ""))
        .await;
}

async fn stop_flushes_queued_messages_then_closes_going_away(transport: Transport) {
    let mut server = TestServer::start(drain_config()).await;
    let mut subscriber = server.open_with_recv_buffer(transport, 4096).await;
    subscriber.connect().await;
    subscriber.subscribe("s", "/topic/drain").await;
    let mut publisher = server.client(transport).await;
    flood(&mut publisher, QUEUED).await;

    let start = Instant::now();
    let serving = server.stop();

    for seq in 0..QUEUED {
        subscriber
            .expect_message("s", "/topic/drain", &body(seq))
            .await;
    }
    expect_shutdown(&mut subscriber).await;
    expect_shutdown(&mut publisher).await;

    within(
        Duration::from_millis(DRAIN_MS),
        "serve to return after the drain",
        serving,
    )
    .await
    .expect("serve task");
    assert!(start.elapsed() < Duration::from_millis(DRAIN_MS));
    assert_eq!(server.node.stats.closes("shutdown"), 2);
}

async fn idle_sessions_close_at_once_and_listeners_stop(transport: Transport) {
    let mut server = TestServer::start(drain_config()).await;
    let mut clients = Vec::new();
    for _ in 0..5 {
        let mut client = server.client(transport).await;
        client.subscribe("s", "/topic/idle").await;
        clients.push(client);
    }
    // One connection has not even sent CONNECT: it is closed too, without an ERROR.
    let mut unconnected = server.open(transport).await;
    // The kernel completes a TCP connect before the server accepts it: wait until the server
    // holds all six, or a stop in between would leave the last one to the closing listener.
    let stats = std::sync::Arc::clone(&server.node.stats);
    common::eventually("all six connections accepted", common::TIMEOUT, || {
        stats
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 6
    })
    .await;

    let start = Instant::now();
    let serving = server.stop();
    for client in &mut clients {
        expect_shutdown(client).await;
    }
    // Before CONNECT there is no STOMP session to tell: just the close.
    assert_eq!(unconnected.expect_closed().await, going_away(transport));
    within(Duration::from_secs(2), "serve to return", serving)
        .await
        .expect("serve task");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "idle sessions should not wait for the drain time"
    );
    assert_eq!(server.node.stats.closes("shutdown"), 6);

    // The listeners are gone.
    let addr = match transport {
        Transport::Tcp => server.tcp_addr,
        Transport::Ws => server.ws_addr,
    };
    let refused = tokio::net::TcpStream::connect(addr).await;
    assert!(refused.is_err(), "{transport:?} listener still accepting");
}

async fn drain_time_bounds_a_client_that_never_reads(transport: Transport) {
    let mut config = drain_config();
    config.shutdown.drain_ms = 500;
    let mut server = TestServer::start(config).await;
    let mut subscriber = server.open_with_recv_buffer(transport, 4096).await;
    subscriber.connect().await;
    subscriber.subscribe("s", "/topic/drain").await;
    let mut publisher = server.client(transport).await;
    flood(&mut publisher, QUEUED).await;

    let start = Instant::now();
    let serving = server.stop();
    // The subscriber reads nothing; the publisher answers its close.
    expect_shutdown(&mut publisher).await;
    within(Duration::from_secs(3), "serve to return", serving)
        .await
        .expect("serve task");
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_millis(1_500),
        "serve returned after {elapsed:?}, expected about the 500 ms drain time"
    );
    drop(subscriber);
}
