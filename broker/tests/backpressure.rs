//! Overload pushes back instead of losing messages: a topic publisher stops being read while
//! a subscriber's outbox is above its mark, a producer stops being read while its queue is
//! full, and a message as large as the frame limit reaches subscribers on the defaults.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Client, TestServer, Transport, config, eventually, send_batch, send_frame, show};
use herald::config::{Config, OverflowPolicy};
use herald_protocol::{Command, Frame};

transport_tests!(
    a_1mib_message_reaches_reading_subscribers_on_the_defaults,
    a_publisher_pauses_until_its_subscriber_reads_and_nothing_is_lost,
    a_stuck_subscriber_is_closed_after_max_pause_and_publishing_goes_on,
    a_full_queue_pauses_its_producer_until_a_consumer_makes_room,
    a_producer_blocked_past_block_timeout_gets_queue_full,
);

/// Long enough for any wait of these tests on a busy machine; never reached when it works.
const PATIENCE: Duration = Duration::from_secs(30);

fn numbered(seq: usize, len: usize) -> String {
    format!("{seq:08}-{}", "m".repeat(len - 9))
}

async fn a_1mib_message_reaches_reading_subscribers_on_the_defaults(transport: Transport) {
    // Only the ports differ from the defaults (outbox mark 512 KiB, frame limit 4 MiB).
    let server = TestServer::start(config()).await;
    let mut subscribers = Vec::new();
    for id in ["a", "b"] {
        let mut subscriber = server.client(transport).await;
        subscriber.subscribe(id, "/topic/big").await;
        subscribers.push((id, subscriber));
    }
    let mut publisher = server.client(transport).await;
    let bodies = [numbered(0, 1 << 20), numbered(1, 1 << 20)];
    for body in &bodies {
        publisher.publish("/topic/big", body).await;
    }
    publisher
        .send_with_receipt(send_frame("/topic/big", "done"))
        .await;
    for (id, subscriber) in &mut subscribers {
        for body in &bodies {
            subscriber.expect_message(id, "/topic/big", body).await;
        }
        subscriber.expect_message(id, "/topic/big", "done").await;
    }
    assert_eq!(server.node.stats.closes("slow_consumer"), 0);
}

fn small_outbox(pause_ms: u64) -> Config {
    let mut config = config();
    config.outbox.max_bytes = 64 * 1024;
    config.outbox.max_pause_ms = pause_ms;
    config.outbox.max_stall_ms = 60_000;
    config.outbox.overflow = OverflowPolicy::Close;
    config
}

async fn a_publisher_pauses_until_its_subscriber_reads_and_nothing_is_lost(transport: Transport) {
    const COUNT: usize = 4_000;
    let server = TestServer::start(small_outbox(60_000)).await;
    let stats = std::sync::Arc::clone(&server.node.stats);
    // A small receive buffer: the server's writes to it block after little data.
    let mut subscriber = server.open_with_recv_buffer(transport, 4096).await;
    subscriber.connect().await;
    subscriber.subscribe("s", "/topic/flow").await;
    let mut publisher = server.client(transport).await;
    // 4 MB at full speed, far more than the 64 KiB outbox and the socket buffers hold.
    let publishing = tokio::spawn(async move {
        // In pieces of 256 KiB: one WebSocket message may carry at most one frame limit.
        for first in (0..COUNT).step_by(256) {
            let bodies = (first..(first + 256).min(COUNT)).map(|seq| numbered(seq, 1024));
            publisher
                .send_bytes(&send_batch("/topic/flow", bodies))
                .await;
        }
        publisher
            .send_with_receipt(send_frame("/topic/flow", "done"))
            .await;
        publisher
    });
    // The subscriber reads nothing until the publisher has been paused for it.
    eventually("the publisher to pause", PATIENCE, || {
        stats.backpressure_pauses.load(Ordering::Relaxed) > 0
    })
    .await;
    for seq in 0..COUNT {
        subscriber
            .expect_message("s", "/topic/flow", &numbered(seq, 1024))
            .await;
    }
    subscriber.expect_message("s", "/topic/flow", "done").await;
    publishing.await.expect("the publisher finished");
    assert_eq!(stats.closes("slow_consumer"), 0);
    assert_eq!(stats.messages_dropped.load(Ordering::Relaxed), 0);
}

async fn a_stuck_subscriber_is_closed_after_max_pause_and_publishing_goes_on(transport: Transport) {
    let server = TestServer::start(small_outbox(300)).await;
    let stats = &server.node.stats;
    let mut stuck = server.open_with_recv_buffer(transport, 4096).await;
    stuck.connect().await;
    stuck.subscribe("stuck", "/topic/flow").await;
    let mut reader = server.client(transport).await;
    reader.subscribe("r", "/topic/flow").await;
    let mut publisher = server.client(transport).await;

    // Rounds of 48 KiB with a receipt each, read by `reader`, until the stuck subscriber
    // has been closed; the publisher waits at most 300 ms per pause.
    let mut seq = 0;
    while stats.backpressure_timeouts.load(Ordering::Relaxed) == 0 {
        assert!(seq < 100_000, "the stuck subscriber was never closed");
        let bodies: Vec<String> = (seq..seq + 48).map(|n| numbered(n, 1024)).collect();
        publisher
            .send_bytes(&send_batch("/topic/flow", bodies.iter().cloned()))
            .await;
        publisher
            .send_with_receipt(send_frame("/topic/flow-round", ""))
            .await;
        for body in &bodies {
            reader.expect_message("r", "/topic/flow", body).await;
        }
        seq += 48;
    }
    assert_eq!(stats.backpressure_timeouts.load(Ordering::Relaxed), 1);
    // The publisher and the reader carry on.
    publisher.publish_confirmed("/topic/flow", "after").await;
    reader.expect_message("r", "/topic/flow", "after").await;
    // The stuck subscriber got an in-order prefix, then at most the ERROR.
    let mut expected = 0;
    while let Some(event) = stuck.event().await {
        if let common::Event::Frame(frame, _) = event {
            match frame.command {
                Command::Message => {
                    assert_eq!(&frame.body[..], numbered(expected, 1024).as_bytes());
                    expected += 1;
                }
                Command::Error => {
                    assert_eq!(frame.headers.get("message"), Some("slow consumer"));
                }
                _ => panic!("unexpected {}", show(&frame)),
            }
        }
    }
}

fn small_queue(block_timeout_ms: u64) -> Config {
    let mut config = config();
    config.queues.max_messages_per_queue = 100;
    config.queues.block_timeout_ms = block_timeout_ms;
    config
}

fn queue_send(seq: usize) -> Frame {
    send_frame("/queue/work", &numbered(seq, 64))
}

async fn a_full_queue_pauses_its_producer_until_a_consumer_makes_room(transport: Transport) {
    const COUNT: usize = 300;
    let server = TestServer::start(small_queue(60_000)).await;
    let node = std::sync::Arc::clone(&server.node);
    let mut producer = server.client(transport).await;
    let producing = tokio::spawn(async move {
        let mut batch = bytes::BytesMut::new();
        for seq in 0..COUNT - 1 {
            batch.extend_from_slice(&common::encoded(&queue_send(seq)));
        }
        producer.send_bytes(&batch).await;
        // Confirmed only once the queue took it: after a consumer made room.
        producer.send_with_receipt(queue_send(COUNT - 1)).await;
        producer
    });
    eventually(
        "the queue to fill and its producer to wait",
        PATIENCE,
        || {
            node.router
                .queues
                .depth("/queue/work")
                .is_some_and(|d| d.ready == 100)
                && node.stats.backpressure_pauses.load(Ordering::Relaxed) > 0
        },
    )
    .await;
    assert!(
        !producing.is_finished(),
        "the last SEND was confirmed early"
    );

    let mut consumer = server.client(transport).await;
    consumer.subscribe("c", "/queue/work").await;
    for seq in 0..COUNT {
        consumer
            .expect_message("c", "/queue/work", &numbered(seq, 64))
            .await;
    }
    producing.await.expect("the producer finished");
    let dropped = node.stats.queues.overflow_dropped.load(Ordering::Relaxed);
    assert_eq!(
        dropped, 0,
        "nothing may be dropped under the default policy"
    );
}

async fn a_producer_blocked_past_block_timeout_gets_queue_full(transport: Transport) {
    let server = TestServer::start(small_queue(200)).await;
    let mut producer: Client = server.client(transport).await;
    let mut batch = bytes::BytesMut::new();
    for seq in 0..100 {
        batch.extend_from_slice(&common::encoded(&queue_send(seq)));
    }
    producer.send_bytes(&batch).await;
    producer
        .send(&queue_send(100).header("receipt", "last"))
        .await;
    let error = producer.expect_error("queue full").await;
    assert_eq!(
        error.headers.get("receipt-id"),
        Some("last"),
        "{}",
        show(&error)
    );
    assert!(
        String::from_utf8_lossy(&error.body).contains("queues.block_timeout_ms"),
        "{}",
        show(&error)
    );
    producer.expect_clean_close().await;
    let depth = server
        .node
        .router
        .queues
        .depth("/queue/work")
        .expect("queue");
    assert_eq!(depth.ready, 100);
}
