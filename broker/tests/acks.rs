//! Acknowledgement modes `client` and `client-individual`, ACK and NACK, `prefetch-count`,
//! on queues and on topics, over real sockets.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use herald_protocol::{Command, Frame};

transport_tests!(
    prefetch_one_alternates_between_two_client_ack_consumers,
    client_ack_is_cumulative,
    client_individual_acks_only_that_message,
    nack_redelivers_the_message,
    nack_prefers_another_consumer,
    unknown_ack_id_is_an_error,
    acking_twice_is_an_error,
    unsubscribe_returns_unacked_messages,
    topic_client_ack_nack_redelivers_to_the_same_subscription,
    topic_prefetch_holds_messages_until_acked,
    invalid_ack_mode_or_prefetch_is_an_error,
    stomp_1_1_competing_consumers_ack_by_the_ack_header_value,
);

const INDIVIDUAL: [(&str, &str); 1] = [("ack", "client-individual")];

async fn publish_n(server: &TestServer, transport: Transport, destination: &str, n: usize) {
    let mut producer = server.client(transport).await;
    for i in 0..n {
        producer
            .publish_confirmed(destination, &format!("m{i}"))
            .await;
    }
}

async fn prefetch_one_alternates_between_two_client_ack_consumers(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let prefetch = [("ack", "client-individual"), ("prefetch-count", "1")];
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/alt", &prefetch).await;
    let mut b = server.client(transport).await;
    b.subscribe_with("s", "/queue/alt", &prefetch).await;
    publish_n(&server, transport, "/queue/alt", 10).await;

    // Each holds one message; the other eight wait.
    let mut held_a = a.expect_body("m0").await;
    let mut held_b = b.expect_body("m1").await;
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
    assert_eq!(
        server.node.router.queues.depth("/queue/alt").unwrap().ready,
        8
    );
    for n in (2..10).step_by(2) {
        a.settle_confirmed(Command::Ack, &held_a).await;
        held_a = a.expect_body(&format!("m{n}")).await;
        b.settle_confirmed(Command::Ack, &held_b).await;
        held_b = b.expect_body(&format!("m{}", n + 1)).await;
    }
    a.settle_confirmed(Command::Ack, &held_a).await;
    b.settle_confirmed(Command::Ack, &held_b).await;
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
    let depth = server.node.router.queues.depth("/queue/alt").unwrap();
    assert_eq!((depth.ready, depth.unacked), (0, 0));
    assert_eq!(server.node.stats.queues.acked.load(Ordering::Relaxed), 10);
}

async fn client_ack_is_cumulative(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/cum", &[("ack", "client")])
        .await;
    publish_n(&server, transport, "/queue/cum", 3).await;
    let mut messages = Vec::new();
    for n in 0..3 {
        messages.push(a.expect_body(&format!("m{n}")).await);
    }
    a.settle_confirmed(Command::Ack, &messages[1]).await;
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/cum")
            .unwrap()
            .unacked,
        1
    );
    // m0 was settled by the ACK of m1: acknowledging it now is an error.
    a.settle_confirmed(Command::Ack, &messages[2]).await;
    a.send(&settle_frame(Command::Ack, &messages[0])).await;
    a.expect_error_then_close("unknown ack id").await;
}

async fn client_individual_acks_only_that_message(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/ind", &INDIVIDUAL).await;
    publish_n(&server, transport, "/queue/ind", 3).await;
    let mut messages = Vec::new();
    for n in 0..3 {
        messages.push(a.expect_body(&format!("m{n}")).await);
    }
    a.settle_confirmed(Command::Ack, &messages[1]).await;
    a.leave().await;
    let mut b = server.client(transport).await;
    b.subscribe("s", "/queue/ind").await;
    for n in [0, 2] {
        let message = b.expect_body(&format!("m{n}")).await;
        assert_eq!(message.headers.get("redelivered"), Some("true"));
    }
    b.expect_silence(QUIET).await;
}

async fn nack_redelivers_the_message(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/nack", &INDIVIDUAL).await;
    publish_n(&server, transport, "/queue/nack", 1).await;
    let first = a.expect_body("m0").await;
    assert_eq!(first.headers.get("redelivered"), None);
    a.settle_confirmed(Command::Nack, &first).await;
    let again = a.expect_body("m0").await;
    assert_eq!(again.headers.get("redelivered"), Some("true"));
    assert_eq!(
        again.headers.get("message-id"),
        first.headers.get("message-id"),
        "the same message"
    );
    assert_ne!(again.headers.get("ack"), first.headers.get("ack"));
    a.settle_confirmed(Command::Ack, &again).await;
    a.expect_silence(QUIET).await;
    assert_eq!(
        server.node.stats.queues.redelivered.load(Ordering::Relaxed),
        1
    );
}

async fn nack_prefers_another_consumer(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/pass", &INDIVIDUAL).await;
    publish_n(&server, transport, "/queue/pass", 1).await;
    let held = a.expect_body("m0").await;
    let mut b = server.client(transport).await;
    b.subscribe_with("s", "/queue/pass", &INDIVIDUAL).await;
    a.settle_confirmed(Command::Nack, &held).await;
    let message = b.expect_body("m0").await;
    assert_eq!(message.headers.get("redelivered"), Some("true"));
    a.expect_silence(QUIET).await;
}

async fn unknown_ack_id_is_an_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    for id in ["nope", "1-1", "99-1", ""] {
        let mut client = server.client(transport).await;
        client.subscribe_with("s", "/queue/u", &INDIVIDUAL).await;
        client
            .send(
                &Frame::new(Command::Ack)
                    .header("id", id)
                    .header("receipt", "r-ack"),
            )
            .await;
        let error = client.expect_error_then_close("unknown ack id").await;
        assert_eq!(error.headers.get("receipt-id"), Some("r-ack"));
    }
    let mut client = server.client(transport).await;
    client.send(&Frame::new(Command::Nack)).await;
    client.expect_error_then_close("missing id header").await;
}

async fn acking_twice_is_an_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/twice", &INDIVIDUAL).await;
    publish_n(&server, transport, "/queue/twice", 1).await;
    let message = a.expect_body("m0").await;
    a.settle_confirmed(Command::Ack, &message).await;
    a.settle(Command::Nack, &message).await;
    a.expect_error_then_close("unknown ack id").await;
}

async fn unsubscribe_returns_unacked_messages(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/back", &INDIVIDUAL).await;
    publish_n(&server, transport, "/queue/back", 2).await;
    let m0 = a.expect_body("m0").await;
    a.expect_body("m1").await;
    a.unsubscribe("s").await;
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/back")
            .unwrap()
            .ready,
        2
    );
    // The old ack id died with its subscription, even under a reused subscription id.
    a.subscribe_with("s", "/queue/back", &INDIVIDUAL).await;
    a.expect_body("m0").await;
    a.expect_body("m1").await;
    a.send(&settle_frame(Command::Ack, &m0)).await;
    a.expect_error_then_close("unknown ack id").await;
}

async fn topic_client_ack_nack_redelivers_to_the_same_subscription(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("t", "/topic/news.*", &INDIVIDUAL).await;
    let mut other = server.client(transport).await;
    other.subscribe("o", "/topic/news.*").await;
    publish_n(&server, transport, "/topic/news.x", 1).await;
    other.expect_message("o", "/topic/news.x", "m0").await;
    let first = a.expect_message("t", "/topic/news.x", "m0").await;
    assert!(first.headers.contains("ack"), "{}", show(&first));
    a.settle_confirmed(Command::Nack, &first).await;
    let again = a.expect_message("t", "/topic/news.x", "m0").await;
    assert_eq!(again.headers.get("redelivered"), Some("true"));
    a.settle_confirmed(Command::Ack, &again).await;
    a.expect_silence(QUIET).await;
    other.expect_silence(QUIET).await;
}

async fn topic_prefetch_holds_messages_until_acked(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with(
        "t",
        "/topic/ticks",
        &[("ack", "client"), ("prefetch-count", "2")],
    )
    .await;
    publish_n(&server, transport, "/topic/ticks", 5).await;
    a.expect_body("m0").await;
    let m1 = a.expect_body("m1").await;
    a.expect_silence(QUIET).await;
    // Cumulative: settles m0 and m1, making room for two more.
    a.settle_confirmed(Command::Ack, &m1).await;
    a.expect_body("m2").await;
    let m3 = a.expect_body("m3").await;
    a.expect_silence(QUIET).await;
    a.settle_confirmed(Command::Ack, &m3).await;
    let m4 = a.expect_body("m4").await;
    a.settle_confirmed(Command::Ack, &m4).await;
    a.unsubscribe("t").await;
    let stats = &server.node.stats.queues;
    assert_eq!(stats.bytes.load(Ordering::Relaxed), 0);
    assert_eq!(stats.unacked.load(Ordering::Relaxed), 0);
}

async fn invalid_ack_mode_or_prefetch_is_an_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client
        .send(&subscribe_frame("s", "/queue/x").header("ack", "manual"))
        .await;
    client.expect_error_then_close("invalid ack mode").await;
    let mut client = server.client(transport).await;
    client
        .send(&subscribe_frame("s", "/queue/x").header("prefetch-count", "-1"))
        .await;
    client
        .expect_error_then_close("invalid prefetch-count")
        .await;
}

/// Issue 12, item 16: a 1.1 client (stomp.py) that puts the MESSAGE's `ack` value in
/// `message-id` was refused with `unknown ack id` and closed, and two competing consumers got
/// message 0 twice and nothing else. Either identifier is accepted on 1.0/1.1: each consumer
/// holds one message at a time, and every ACK lets its next one through.
async fn stomp_1_1_competing_consumers_ack_by_the_ack_header_value(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let prefetch = [("ack", "client-individual"), ("prefetch-count", "1")];
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let mut consumer = server.open(transport).await;
        consumer.connect_with(connect_frame("1.1")).await;
        consumer.subscribe_with("s", "/queue/v11c", &prefetch).await;
        consumers.push(consumer);
    }
    publish_n(&server, transport, "/queue/v11c", 10).await;
    let mut received: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    for _ in 0..5 {
        for (consumer, bodies) in consumers.iter_mut().zip(&mut received) {
            let message = consumer.expect(Command::Message).await;
            let ack = message.headers.get("ack").expect("ack header");
            assert_ne!(message.headers.get("message-id"), Some(ack));
            consumer
                .send_with_receipt(
                    Frame::new(Command::Ack)
                        .header("subscription", "s")
                        .header("message-id", ack),
                )
                .await;
            bodies.push(String::from_utf8_lossy(&message.body).into_owned());
        }
    }
    for consumer in &mut consumers {
        consumer.expect_silence(QUIET).await;
    }
    // Alternating, each message once.
    let expected: [Vec<String>; 2] =
        [0, 1].map(|first| (first..10).step_by(2).map(|n| format!("m{n}")).collect());
    assert_eq!(received, expected);
    let depth = server.node.router.queues.depth("/queue/v11c").unwrap();
    assert_eq!((depth.ready, depth.unacked), (0, 0));
    assert_eq!(server.node.stats.queues.acked.load(Ordering::Relaxed), 10);
}
