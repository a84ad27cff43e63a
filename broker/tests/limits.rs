//! Configured limits over both transports: each breach is ERROR (with `receipt-id` when asked)
//! and close (semantics.md section 1, "Limits").

mod common;

use common::{TestServer, Transport, config, encoded, send_frame};
use herald::config::Config;
use herald_protocol::{Command, Frame};

const FRAME_LIMIT: usize = 64 * 1024;

transport_tests!(
    frame_at_the_limit_is_delivered_and_one_byte_more_is_refused,
    frame_before_connect_has_its_own_limit,
    too_many_subscriptions_is_error,
    too_many_headers_is_error,
    header_line_too_long_is_error,
    connections_per_address_are_limited,
);

fn small_frames() -> Config {
    let mut config = config();
    config.limits.max_frame_bytes = FRAME_LIMIT;
    config.limits.max_frame_bytes_before_connect = 4 * 1024;
    config
}

/// A SEND to `destination` whose encoded frame is exactly `size` bytes.
fn send_of_size(destination: &str, size: usize) -> Frame {
    let mut body_len = size;
    loop {
        let frame = Frame::new(Command::Send)
            .header("destination", destination)
            .body(vec![b'x'; body_len]);
        let len = encoded(&frame).len();
        if len == size {
            return frame;
        }
        body_len = body_len + size - len;
    }
}

async fn frame_at_the_limit_is_delivered_and_one_byte_more_is_refused(transport: Transport) {
    let server = TestServer::start(small_frames()).await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("big", "/topic/big").await;
    subscriber.subscribe("marker", "/topic/marker").await;
    let mut publisher = server.client(transport).await;

    let largest = send_of_size("/topic/big", FRAME_LIMIT);
    publisher.send(&largest).await;
    let message = subscriber.expect(Command::Message).await;
    assert_eq!(message.headers.get("subscription"), Some("big"));
    assert_eq!(message.body, largest.body);

    let too_large = send_of_size("/topic/big", FRAME_LIMIT + 1);
    publisher.send(&too_large).await;
    publisher
        .expect_error_then_close(&format!("frame exceeds {FRAME_LIMIT} bytes"))
        .await;

    // The refused frame was not routed: the next message is another publisher's marker.
    let mut other = server.client(transport).await;
    other.publish("/topic/marker", "end").await;
    subscriber
        .expect_message("marker", "/topic/marker", "end")
        .await;
}

async fn frame_before_connect_has_its_own_limit(transport: Transport) {
    let server = TestServer::start(small_frames()).await;
    let pad = "p".repeat(2_500);

    let mut client = server.open(transport).await;
    let connect = common::connect_frame("1.2")
        .header("x-pad-1", &pad)
        .header("x-pad-2", &pad);
    assert!(encoded(&connect).len() > 4 * 1024);
    client.send(&connect).await;
    client
        .expect_error_then_close("frame exceeds 4096 bytes")
        .await;

    // After CONNECT the larger limit applies to the same amount of header text.
    let mut client = server.client(transport).await;
    let send = send_frame("/topic/pad", "x")
        .header("x-pad-1", &pad)
        .header("x-pad-2", &pad);
    client.send_with_receipt(send).await;
}

async fn too_many_subscriptions_is_error(transport: Transport) {
    let mut config = config();
    config.limits.max_subscriptions_per_session = 3;
    let server = TestServer::start(config).await;
    let mut client = server.client(transport).await;
    for i in 0..3 {
        client.subscribe(&format!("s{i}"), "/topic/a").await;
    }
    // Unsubscribing makes room again.
    client.unsubscribe("s1").await;
    client.subscribe("s3", "/topic/b").await;

    client
        .send(&common::subscribe_frame("s4", "/topic/c").header("receipt", "over"))
        .await;
    let error = client
        .expect_error_then_close("too many subscriptions")
        .await;
    assert_eq!(error.headers.get("receipt-id"), Some("over"));
}

async fn too_many_headers_is_error(transport: Transport) {
    let mut config = config();
    config.limits.max_headers = 8;
    let server = TestServer::start(config).await;
    let mut client = server.client(transport).await;
    let mut send = send_frame("/topic/a", "x");
    for i in 0..5 {
        send.headers.push(&format!("h{i}"), "v");
    }
    // With destination, receipt and content-length: eight header lines, accepted.
    client.send_with_receipt(send.clone()).await;
    send.headers.push("h5", "v");
    send.headers.push("h6", "v");
    client.send(&send).await;
    client.expect_error_then_close("more than 8 headers").await;
}

async fn header_line_too_long_is_error(transport: Transport) {
    let mut config = config();
    config.limits.max_header_line_bytes = 1024;
    let server = TestServer::start(config).await;
    let mut client = server.client(transport).await;
    // "x-long:" and 1017 bytes: exactly 1024.
    let fits = send_frame("/topic/a", "x").header("x-long", &"v".repeat(1017));
    client.send_with_receipt(fits).await;
    let long = send_frame("/topic/a", "x").header("x-long", &"v".repeat(1018));
    client.send(&long).await;
    client
        .expect_error_then_close("header line exceeds 1024 bytes")
        .await;
}

async fn connections_per_address_are_limited(transport: Transport) {
    let mut config = config();
    config.limits.max_connections_per_address = 2;
    let server = TestServer::start(config).await;
    let mut first = server.client(transport).await;
    let _second = server.client(transport).await;

    // A client sends CONNECT at once, before it could see the refusal: it still gets the
    // ERROR (over WebSocket after the upgrade), and a clean close rather than a reset.
    let mut refused = server.open(transport).await;
    refused.send(&common::connect_frame("1.2")).await;
    let error = refused
        .expect_error_then_close("too many connections")
        .await;
    assert_eq!(error.headers.get("content-type"), Some("text/plain"));
    assert_eq!(
        server
            .node
            .stats
            .connections_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // A closed connection gives its place back.
    first.send(&Frame::new(Command::Disconnect)).await;
    first.expect_clean_close().await;
    common::eventually("the first connection to end", common::TIMEOUT, || {
        server
            .node
            .stats
            .connections_open
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    })
    .await;
    let mut third = server.client(transport).await;
    third.subscribe("s", "/topic/a").await;
}
