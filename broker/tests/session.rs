//! Session behaviour over both transports: CONNECT, version negotiation, ERROR and close,
//! DISCONNECT, SUBSCRIBE/UNSUBSCRIBE checks and receipt ordering (semantics.md section 1).

mod common;

use common::{
    Client, SERVER, TestServer, Transport, connect_frame, encoded, header_names, send_frame, show,
    subscribe_frame,
};
use herald_protocol::{Command, Frame};

transport_tests!(
    connect_is_accepted,
    stomp_is_accepted_as_connect,
    highest_common_version_is_chosen,
    no_common_version_is_error_then_close,
    frame_before_connect_is_error_then_close,
    error_carries_receipt_id_of_failing_frame,
    error_before_connect_carries_receipt_id,
    disconnect_with_receipt_answers_then_closes,
    disconnect_without_receipt_closes,
    subscribe_without_id_is_error,
    subscribe_without_destination_is_error,
    duplicate_subscription_id_is_error,
    second_connect_is_error,
    unknown_command_is_error,
    unsubscribe_stops_delivery,
    receipts_follow_frame_order_within_one_write,
);

async fn connect_is_accepted(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(transport).await;
    client.send(&connect_frame("1.0,1.1,1.2")).await;
    let connected = client.expect(Command::Connected).await;
    assert_eq!(
        header_names(&connected),
        ["version", "heart-beat", "session", "server"],
        "{}",
        show(&connected)
    );
    assert_eq!(connected.headers.get("version"), Some("1.2"));
    assert_eq!(connected.headers.get("heart-beat"), Some("10000,10000"));
    assert_eq!(connected.headers.get("server"), Some(SERVER));
    let session = connected.headers.get("session").unwrap();
    assert!(
        session.starts_with(&format!("{}-", server.node.id)),
        "session {session:?} should start with the node id {}",
        server.node.id
    );
    assert!(connected.body.is_empty());

    // A second session gets a different id.
    let mut other = server.open(transport).await;
    let other_connected = other.connect().await;
    assert_ne!(other_connected.headers.get("session"), Some(session));
}

async fn stomp_is_accepted_as_connect(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(transport).await;
    let stomp = Frame::new(Command::Stomp)
        .header("accept-version", "1.1,1.2")
        .header("host", "localhost");
    let connected = client.connect_with(stomp).await;
    assert_eq!(connected.headers.get("version"), Some("1.2"));
    assert_eq!(connected.headers.get("server"), Some(SERVER));
    // The session works: a SUBSCRIBE with a receipt is answered.
    client.subscribe("s", "/topic/a").await;
}

async fn highest_common_version_is_chosen(transport: Transport) {
    let server = TestServer::with_defaults().await;
    for (accept_version, chosen) in [
        (Some("1.0,1.1"), "1.1"),
        (Some("1.0"), "1.0"),
        (Some("1.1,1.0,1.2"), "1.2"),
        (Some("1.2,2.0"), "1.2"),
        (Some("0.9, 1.1 ,3.0"), "1.1"),
        // Absent: the client speaks 1.0.
        (None, "1.0"),
    ] {
        let mut client = server.open(transport).await;
        let mut connect = Frame::new(Command::Connect).header("host", "localhost");
        if let Some(list) = accept_version {
            connect.headers.push("accept-version", list);
        }
        let connected = client.connect_with(connect).await;
        assert_eq!(
            connected.headers.get("version"),
            Some(chosen),
            "accept-version {accept_version:?}"
        );
        // The session speaks that version: a receipt comes back.
        client.subscribe("s", "/topic/v").await;
    }
}

async fn no_common_version_is_error_then_close(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(transport).await;
    client.send(&connect_frame("2.0,3.1")).await;
    let error = client
        .expect_error_then_close("unsupported protocol version")
        .await;
    assert_eq!(error.headers.get("version"), Some("1.0,1.1,1.2"));
    assert_eq!(error.headers.get("content-type"), Some("text/plain"));
    assert_eq!(error.headers.get("receipt-id"), None);
    server.close_counted("protocol_error").await;
}

async fn frame_before_connect_is_error_then_close(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(transport).await;
    client.send(&send_frame("/topic/a", "early")).await;
    let error = client.expect_error_then_close("expected CONNECT").await;
    assert_eq!(error.headers.get("receipt-id"), None);
    assert!(
        String::from_utf8_lossy(&error.body).contains("SEND"),
        "{}",
        show(&error)
    );
}

async fn error_carries_receipt_id_of_failing_frame(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    let subscribe = Frame::new(Command::Subscribe)
        .header("destination", "/topic/a")
        .header("receipt", "r-77");
    client.send(&subscribe).await;
    let error = client.expect_error_then_close("missing id header").await;
    assert_eq!(error.headers.get("receipt-id"), Some("r-77"));
}

async fn error_before_connect_carries_receipt_id(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(transport).await;
    client
        .send(&send_frame("/topic/a", "early").header("receipt", "early-1"))
        .await;
    let error = client.expect_error_then_close("expected CONNECT").await;
    assert_eq!(error.headers.get("receipt-id"), Some("early-1"));

    // A refused CONNECT with a receipt names it too.
    let mut client = server.open(transport).await;
    client
        .send(&connect_frame("9.9").header("receipt", "c-1"))
        .await;
    let error = client
        .expect_error_then_close("unsupported protocol version")
        .await;
    assert_eq!(error.headers.get("receipt-id"), Some("c-1"));
}

async fn disconnect_with_receipt_answers_then_closes(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.subscribe("s", "/topic/a").await;
    client
        .send(&Frame::new(Command::Disconnect).header("receipt", "bye"))
        .await;
    let receipt = client.expect(Command::Receipt).await;
    assert_eq!(header_names(&receipt), ["receipt-id"]);
    assert_eq!(receipt.headers.get("receipt-id"), Some("bye"));
    client.expect_clean_close().await;
    common::eventually("the disconnect to be counted", common::TIMEOUT, || {
        server.node.stats.closes("disconnect") == 1
    })
    .await;
}

async fn disconnect_without_receipt_closes(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.send(&Frame::new(Command::Disconnect)).await;
    client.expect_clean_close().await;
}

async fn subscribe_without_id_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client
        .send(&Frame::new(Command::Subscribe).header("destination", "/topic/a"))
        .await;
    client.expect_error_then_close("missing id header").await;
}

async fn subscribe_without_destination_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client
        .send(&Frame::new(Command::Subscribe).header("id", "s-1"))
        .await;
    client
        .expect_error_then_close("missing destination header")
        .await;
}

async fn duplicate_subscription_id_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.subscribe("s-1", "/topic/a").await;
    client
        .send(&subscribe_frame("s-1", "/topic/b").header("receipt", "dup"))
        .await;
    let error = client
        .expect_error_then_close("duplicate subscription id")
        .await;
    assert_eq!(error.headers.get("receipt-id"), Some("dup"));
}

async fn second_connect_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.send(&connect_frame("1.2")).await;
    client.expect_error_then_close("already connected").await;
}

async fn unknown_command_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client
        .send_bytes(b"PUBLISH\ndestination:/topic/a\n\n\0")
        .await;
    client.expect_error_then_close("unknown command").await;
}

async fn unsubscribe_stops_delivery(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    let mut publisher = server.client(transport).await;
    subscriber.subscribe("news", "/topic/news").await;
    subscriber.subscribe("marker", "/topic/marker").await;

    publisher.publish("/topic/news", "first").await;
    subscriber
        .expect_message("news", "/topic/news", "first")
        .await;

    subscriber.unsubscribe("news").await;
    publisher.publish("/topic/news", "after unsubscribe").await;
    // One publisher keeps its order: had "news" been delivered, it would come first.
    publisher.publish("/topic/marker", "marker").await;
    subscriber
        .expect_message("marker", "/topic/marker", "marker")
        .await;
    subscriber.expect_silence(common::QUIET).await;

    // Unsubscribing an unknown id is not an error.
    subscriber.unsubscribe("never-subscribed").await;
}

async fn receipts_follow_frame_order_within_one_write(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    let frames = [
        subscribe_frame("s-1", "/topic/loop").header("receipt", "1"),
        // Delivered to this very session: the MESSAGE precedes the SEND's receipt.
        send_frame("/topic/loop", "hello").header("receipt", "2"),
        Frame::new(Command::Unsubscribe)
            .header("id", "s-1")
            .header("receipt", "3"),
        // No subscriber any more.
        send_frame("/topic/loop", "nobody").header("receipt", "4"),
        subscribe_frame("s-2", "/topic/other").header("receipt", "5"),
    ];
    let mut batch = Vec::new();
    for frame in &frames {
        batch.extend_from_slice(&encoded(frame));
    }
    client.send_bytes(&batch).await;

    client.expect_receipt("1").await;
    let message = client.expect_message("s-1", "/topic/loop", "hello").await;
    assert_eq!(message.headers.get("receipt"), None, "{}", show(&message));
    for id in ["2", "3", "4", "5"] {
        client.expect_receipt(id).await;
    }
    client.expect_silence(common::QUIET).await;
}

/// Not a transport test: a client that never connects at all is still counted once closed.
#[tokio::test]
async fn peer_close_before_connect_is_counted() {
    let server = TestServer::with_defaults().await;
    let client = server.open(Transport::Tcp).await;
    drop::<Client>(client);
    server.close_counted("peer_closed").await;
}
