//! Point-to-point `/queue/` destinations over real sockets: one consumer per message,
//! round-robin, buffering, bounds, expiry, redelivery on a consumer's death, deletion of
//! idle queues.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use herald::config::{QueueOverflow, QueueSemantics};
use herald_protocol::{Command, Frame};

transport_tests!(
    two_consumers_share_a_queue_without_duplicates_or_loss,
    a_dead_consumers_unacked_messages_go_to_the_other_consumer,
    messages_wait_for_the_first_subscriber,
    message_ids_are_unique_across_topics_and_queues,
    a_full_queue_drops_its_oldest_messages,
    a_full_queue_rejects_sends_under_reject,
    expired_messages_are_not_delivered,
    empty_queues_are_deleted_after_the_grace_period,
    broadcast_semantics_gives_every_subscriber_a_copy,
    a_queue_destination_cannot_be_a_pattern,
    one_session_creates_at_most_max_queues_per_session,
    the_node_holds_at_most_max_queues,
    a_queue_and_its_message_are_charged_their_memory,
);

async fn two_consumers_share_a_queue_without_duplicates_or_loss(transport: Transport) {
    const N: usize = 10_000;
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe("s", "/queue/work").await;
    let mut b = server.client(transport).await;
    b.subscribe("s", "/queue/work").await;
    let mut producer = server.client(transport).await;
    let numbers: Vec<usize> = (0..N).collect();
    for chunk in numbers.chunks(500) {
        let batch = send_batch("/queue/work", chunk.iter().map(usize::to_string));
        producer.send_bytes(&batch).await;
    }

    let mut seen = vec![0u32; N];
    let mut last = [None::<usize>, None];
    let mut counts = [0usize; 2];
    while counts[0] + counts[1] < N {
        let (who, frame) = tokio::select! {
            frame = a.recv() => (0, frame),
            frame = b.recv() => (1, frame),
        };
        assert_eq!(frame.command, Command::Message, "{}", show(&frame));
        assert_eq!(frame.headers.get("destination"), Some("/queue/work"));
        let n: usize = body_text(&frame).parse().unwrap();
        seen[n] += 1;
        // One producer: each consumer sees its share in order.
        assert!(last[who].is_none_or(|prev| prev < n), "out of order: {n}");
        last[who] = Some(n);
        counts[who] += 1;
    }
    let duplicated: Vec<usize> = (0..N).filter(|&n| seen[n] != 1).collect();
    assert!(
        duplicated.is_empty(),
        "not delivered exactly once: {duplicated:?}"
    );
    assert!(
        counts[0] > 0 && counts[1] > 0,
        "one consumer got all: {counts:?}"
    );
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
    let depth = server.node.router.queues.depth("/queue/work").unwrap();
    assert_eq!((depth.ready, depth.unacked, depth.consumers), (0, 0, 2));
}

async fn a_dead_consumers_unacked_messages_go_to_the_other_consumer(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe_with("s", "/queue/jobs", &[("ack", "client-individual")])
        .await;
    let mut producer = server.client(transport).await;
    for n in 0..3 {
        producer
            .publish_confirmed("/queue/jobs", &format!("m{n}"))
            .await;
    }
    for n in 0..3 {
        let message = a.expect_body(&format!("m{n}")).await;
        assert!(message.headers.contains("ack"), "{}", show(&message));
        assert_eq!(message.headers.get("redelivered"), None);
    }
    let mut b = server.client(transport).await;
    b.subscribe("s", "/queue/jobs").await;
    b.expect_silence(QUIET).await;

    drop(a);
    for n in 0..3 {
        let message = b.expect_body(&format!("m{n}")).await;
        assert_eq!(
            message.headers.get("redelivered"),
            Some("true"),
            "{}",
            show(&message)
        );
    }
    producer.publish_confirmed("/queue/jobs", "m3").await;
    let fresh = b.expect_body("m3").await;
    assert_eq!(fresh.headers.get("redelivered"), None);
    let stats = &server.node.stats.queues;
    assert_eq!(stats.redelivered.load(Ordering::Relaxed), 3);
    assert_eq!(stats.requeued.load(Ordering::Relaxed), 3);
}

async fn messages_wait_for_the_first_subscriber(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut producer = server.client(transport).await;
    for n in 0..3 {
        producer
            .publish_confirmed("/queue/later", &format!("m{n}"))
            .await;
    }
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/later")
            .unwrap()
            .ready,
        3
    );
    assert_eq!(server.node.stats.queues.depth.load(Ordering::Relaxed), 3);
    let mut consumer = server.client(transport).await;
    // The RECEIPT of the SUBSCRIBE comes first, then the backlog.
    consumer.subscribe("s", "/queue/later").await;
    for n in 0..3 {
        consumer
            .expect_message("s", "/queue/later", &format!("m{n}"))
            .await;
    }
    consumer.expect_silence(QUIET).await;
    assert_eq!(server.node.stats.queues.depth.load(Ordering::Relaxed), 0);
}

/// One producer's 100,000 messages wait for a subscriber and reach it in order, through the
/// bounded outbox (the queue hands over only what the connection can take).
#[tokio::test]
async fn a_backlog_of_100000_drains_in_order_to_a_late_subscriber() {
    const N: usize = 100_000;
    let mut config = config();
    config.queues.max_messages_per_queue = 200_000;
    // Each waiting message costs ~330 bytes of memory, counted against the queue.
    config.queues.max_bytes_per_queue = 64 << 20;
    let server = TestServer::start(config).await;
    let mut producer = server.client(Transport::Tcp).await;
    let numbers: Vec<usize> = (0..N - 1).collect();
    for chunk in numbers.chunks(2000) {
        let batch = send_batch("/queue/backlog", chunk.iter().map(usize::to_string));
        producer.send_bytes(&batch).await;
    }
    producer
        .publish_confirmed("/queue/backlog", &(N - 1).to_string())
        .await;
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/backlog")
            .unwrap()
            .ready,
        N
    );

    let mut consumer = server.client(Transport::Tcp).await;
    consumer.subscribe("s", "/queue/backlog").await;
    for n in 0..N {
        let frame = consumer.expect(Command::Message).await;
        assert_eq!(body_text(&frame), n.to_string(), "{}", show(&frame));
    }
    consumer.expect_silence(QUIET).await;
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/backlog")
            .unwrap()
            .ready,
        0
    );
    assert_eq!(server.node.stats.closes("slow_consumer"), 0);
}

async fn message_ids_are_unique_across_topics_and_queues(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut consumer = server.client(transport).await;
    consumer.subscribe("t", "/topic/ids").await;
    consumer.subscribe("q", "/queue/ids").await;
    let mut producer = server.client(transport).await;
    let mut ids = HashSet::new();
    for n in 0..5 {
        producer.publish("/topic/ids", &n.to_string()).await;
        producer.publish("/queue/ids", &n.to_string()).await;
    }
    for _ in 0..10 {
        let message = consumer.expect(Command::Message).await;
        let id = message.headers.get("message-id").unwrap().to_owned();
        assert!(id.starts_with(&format!("{}-", server.node.id)), "{id}");
        assert!(ids.insert(id), "duplicate message-id: {}", show(&message));
    }
}

async fn a_full_queue_drops_its_oldest_messages(transport: Transport) {
    let mut config = config();
    config.queues.max_messages_per_queue = 3;
    config.queues.overflow = QueueOverflow::DropOldest;
    let server = TestServer::start(config).await;
    let mut producer = server.client(transport).await;
    for n in 0..5 {
        producer
            .publish_confirmed("/queue/bounded", &format!("m{n}"))
            .await;
    }
    assert_eq!(
        server
            .node
            .router
            .queues
            .depth("/queue/bounded")
            .unwrap()
            .ready,
        3
    );
    let mut consumer = server.client(transport).await;
    consumer.subscribe("s", "/queue/bounded").await;
    for n in 2..5 {
        consumer.expect_body(&format!("m{n}")).await;
    }
    consumer.expect_silence(QUIET).await;
    let stats = &server.node.stats.queues;
    assert_eq!(stats.overflow_dropped.load(Ordering::Relaxed), 2);
    assert_eq!(stats.rejected_sends.load(Ordering::Relaxed), 0);
}

async fn a_full_queue_rejects_sends_under_reject(transport: Transport) {
    let mut config = config();
    config.queues.max_messages_per_queue = 2;
    config.queues.overflow = QueueOverflow::Reject;
    let server = TestServer::start(config).await;
    let mut producer = server.client(transport).await;
    for n in 0..2 {
        producer
            .publish_confirmed("/queue/strict", &format!("m{n}"))
            .await;
    }
    producer
        .send(&send_frame("/queue/strict", "m2").header("receipt", "r-full"))
        .await;
    let error = producer.expect_error_then_close("queue full").await;
    assert_eq!(error.headers.get("receipt-id"), Some("r-full"));
    assert!(
        body_text(&error).contains("/queue/strict"),
        "{}",
        show(&error)
    );
    let mut consumer = server.client(transport).await;
    consumer.subscribe("s", "/queue/strict").await;
    consumer.expect_body("m0").await;
    consumer.expect_body("m1").await;
    consumer.expect_silence(QUIET).await;
    let stats = &server.node.stats.queues;
    assert_eq!(stats.rejected_sends.load(Ordering::Relaxed), 1);
    assert_eq!(stats.overflow_dropped.load(Ordering::Relaxed), 0);
}

/// A topic message already expired on arrival reaches nobody, and is counted (queues: the
/// shared case `expired_messages_are_never_delivered` in jetstream_queues.rs, both stores).
async fn expired_messages_are_not_delivered(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut producer = server.client(transport).await;
    let mut consumer = server.client(transport).await;
    consumer.subscribe("t", "/topic/exp").await;
    producer
        .send_with_receipt(send_frame("/topic/exp", "stale").header("expires", "1"))
        .await;
    producer.publish_confirmed("/topic/exp", "live").await;
    consumer.expect_body("live").await;
    assert_eq!(
        server.node.stats.messages_expired.load(Ordering::Relaxed),
        1
    );
}

async fn empty_queues_are_deleted_after_the_grace_period(transport: Transport) {
    let mut config = config();
    config.queues.empty_queue_grace_ms = 100;
    let server = TestServer::start(config).await;
    let queues = &server.node.router.queues;
    let mut client = server.client(transport).await;
    // As a per-session user queue would be.
    let name = format!("/queue/updates-user{}", server.node.id);
    client.subscribe("s", &name).await;
    let mut producer = server.client(transport).await;
    producer.publish_confirmed("/queue/kept", "waiting").await;
    assert_eq!(queues.len(), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        queues.len(),
        2,
        "a subscribed queue and a non-empty one stay"
    );

    client.unsubscribe("s").await;
    eventually("the idle queue to be deleted", TIMEOUT, || {
        queues.depth(&name).is_none()
    })
    .await;
    assert_eq!(queues.len(), 1);
    assert!(queues.depth("/queue/kept").is_some());
    assert_eq!(server.node.stats.queues.queues.load(Ordering::Relaxed), 1);

    // Draining the other one makes it idle too; a later SEND creates it again.
    client.subscribe("k", "/queue/kept").await;
    client.expect_body("waiting").await;
    client.send(&Frame::new(Command::Disconnect)).await;
    client.expect_clean_close().await;
    eventually("every queue to be deleted", TIMEOUT, || queues.is_empty()).await;
    producer.publish_confirmed("/queue/kept", "again").await;
    assert_eq!(queues.depth("/queue/kept").unwrap().ready, 1);
}

async fn broadcast_semantics_gives_every_subscriber_a_copy(transport: Transport) {
    let mut config = config();
    config.destinations.queue_semantics = QueueSemantics::Broadcast;
    let server = TestServer::start(config).await;
    let mut a = server.client(transport).await;
    a.subscribe("s", "/queue/all").await;
    let mut b = server.client(transport).await;
    b.subscribe("s", "/queue/all").await;
    let mut producer = server.client(transport).await;
    producer.publish_confirmed("/queue/all", "hello").await;
    a.expect_message("s", "/queue/all", "hello").await;
    b.expect_message("s", "/queue/all", "hello").await;
    assert!(
        server.node.router.queues.is_empty(),
        "no point-to-point queue"
    );
}

async fn a_queue_destination_cannot_be_a_pattern(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.send(&subscribe_frame("s", "/queue/jobs.*")).await;
    client.expect_error_then_close("invalid destination").await;
    let mut client = server.client(transport).await;
    client.publish("/queue/jobs/**", "x").await;
    client.expect_error_then_close("invalid destination").await;
}

/// A throughput figure, not a check (ignored by default): one producer, four
/// client-individual consumers acknowledging every message, over TCP loopback.
///
/// `cargo test --release -p herald --test queues throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn throughput_one_producer_four_client_individual_consumers() {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use bytes::BytesMut;
    use herald_protocol::{Version, encode};

    const N: usize = 400_000;
    const CONSUMERS: usize = 4;
    let mut config = config();
    config.queues.max_messages_per_queue = N + 1;
    config.queues.max_bytes_per_queue = 1 << 30;
    config.queues.max_total_bytes = 1 << 30;
    let server = TestServer::start(config).await;
    let received = Arc::new(AtomicUsize::new(0));
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let mut client = server.client(Transport::Tcp).await;
        let headers = [("ack", "client-individual"), ("prefetch-count", "1000")];
        client.subscribe_with("s", "/queue/bench", &headers).await;
        let received = Arc::clone(&received);
        consumers.push(tokio::spawn(async move {
            let mut acks = BytesMut::new();
            let mut mine = 0;
            loop {
                // Acknowledge what has arrived as soon as the connection goes quiet.
                let wait = if acks.is_empty() { 50 } else { 0 };
                let event =
                    tokio::time::timeout(Duration::from_millis(wait), client.next_event()).await;
                match event {
                    Ok(Some(Event::Frame(frame, _))) => {
                        let ack = settle_frame(Command::Ack, &frame);
                        encode(&ack, Version::V1_2, &mut acks);
                        mine += 1;
                        received.fetch_add(1, Ordering::Relaxed);
                        if acks.len() < 64 * 1024 {
                            continue;
                        }
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("consumer connection closed"),
                    Err(_) => {}
                }
                if !acks.is_empty() {
                    client.send_bytes(&acks).await;
                    acks.clear();
                } else if received.load(Ordering::Relaxed) >= N {
                    return mine;
                }
            }
        }));
    }
    let mut producer = server.client(Transport::Tcp).await;
    let body = "x".repeat(100);
    let started = std::time::Instant::now();
    for _ in 0..N / 1000 {
        let batch = send_batch("/queue/bench", (0..1000).map(|_| body.clone()));
        producer.send_bytes(&batch).await;
    }
    let mut shares = Vec::new();
    for consumer in consumers {
        shares.push(consumer.await.unwrap());
    }
    let elapsed = started.elapsed();
    eventually("every ACK to be applied", TIMEOUT, || {
        server
            .node
            .router
            .queues
            .depth("/queue/bench")
            .unwrap()
            .unacked
            == 0
    })
    .await;
    let depth = server.node.router.queues.depth("/queue/bench").unwrap();
    assert_eq!(shares.iter().sum::<usize>(), N);
    assert_eq!((depth.ready, depth.unacked), (0, 0));
    println!(
        "{N} messages of 100 bytes, 1 producer, {CONSUMERS} client-individual consumers \
         (prefetch 1000): {:.2} s, {:.0} messages/s; shares {shares:?}",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64()
    );
}

/// The ERROR refusing a queue's creation names the bound.
async fn expect_queue_bound(client: &mut Client, key: &str) {
    let error = client.expect_error_then_close("queue full").await;
    let detail = String::from_utf8_lossy(&error.body).into_owned();
    assert!(detail.contains(key), "{detail}");
}

/// Issue 12 item 10: 1 M SENDs to `/queue/q<i>` took the broker from 6 MB to 1.7 GB. On the
/// defaults one session now creates at most 1,024 queues; the SEND that would create one
/// more is refused (not dropped), and SENDs to existing queues still go through.
async fn one_session_creates_at_most_max_queues_per_session(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let max = server.node.config.queues.max_queues_per_session;
    let mut producer = server.client(transport).await;
    for chunk in (0..max).collect::<Vec<_>>().chunks(256) {
        let mut bytes = Vec::new();
        for i in chunk {
            bytes.extend_from_slice(&encoded(&send_frame(&format!("/queue/q{i}"), "m")));
        }
        producer.send_bytes(&bytes).await;
    }
    producer.publish_confirmed("/queue/q0", "again").await;
    assert_eq!(server.node.router.queues.len(), max);
    producer
        .send(&send_frame(&format!("/queue/q{max}"), "one too many"))
        .await;
    expect_queue_bound(&mut producer, "queues.max_queues_per_session").await;
    assert_eq!(server.node.router.queues.len(), max);
    let stats = &server.node.stats.queues;
    assert_eq!(stats.refused_creations.load(Ordering::Relaxed), 1);
    // Another session has its own count.
    let mut other = server.client(transport).await;
    other
        .publish_confirmed(&format!("/queue/q{max}"), "m")
        .await;
}

/// The node-wide bound refuses a SEND or a SUBSCRIBE that would create a queue, whoever
/// created the others.
async fn the_node_holds_at_most_max_queues(transport: Transport) {
    let mut config = config();
    config.queues.max_queues = 3;
    let server = TestServer::start(config).await;
    let mut a = server.client(transport).await;
    a.publish_confirmed("/queue/a1", "m").await;
    a.publish_confirmed("/queue/a2", "m").await;
    let mut b = server.client(transport).await;
    b.subscribe("s", "/queue/b1").await;
    b.publish_confirmed("/queue/a1", "existing queues take SENDs")
        .await;
    b.send(&subscribe_frame("s2", "/queue/b2")).await;
    expect_queue_bound(&mut b, "queues.max_queues").await;
    a.send(&send_frame("/queue/a3", "m")).await;
    expect_queue_bound(&mut a, "queues.max_queues").await;
    assert_eq!(server.node.router.queues.len(), 3);
}

/// `max_total_bytes` counted ~25 bytes for a message with an empty body; a queue and its
/// message are now charged what they cost in memory.
async fn a_queue_and_its_message_are_charged_their_memory(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut producer = server.client(transport).await;
    producer.publish_confirmed("/queue/q1", "").await;
    let charged = server.node.stats.queues.bytes();
    let depth = server.node.router.queues.depth("/queue/q1").unwrap();
    assert!(depth.bytes >= 200, "message charged {}", depth.bytes);
    assert!(
        charged >= depth.bytes + 400,
        "queue charged {}",
        charged - depth.bytes
    );
}
