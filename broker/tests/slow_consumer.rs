//! Slow consumers over both transports: a subscriber that stops reading is closed (policy
//! `close`) or loses its oldest messages (policy `drop_oldest`), while a subscriber that keeps
//! reading gets every message.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Client, Event, TestServer, Transport, config, show};
use herald::config::{Config, OverflowPolicy};
use herald_protocol::{Command, Frame};
use tokio::time::Instant;

transport_tests!(
    stalled_subscriber_is_closed_and_others_get_everything,
    drop_oldest_keeps_the_stalled_session_open,
);

/// Messages per publish round: about 48 KiB, within the 64 KiB outbox of the reading
/// subscriber even if it drains nothing while the round is routed.
const BATCH: usize = 48;
/// Receive buffer of the subscriber that stops reading: small, so the server's writes to it
/// stall after little data.
const SLOW_RECV_BUFFER: u32 = 4 * 1024;

fn slow_config(policy: OverflowPolicy, stall_ms: u64) -> Config {
    let mut config = config();
    config.outbox.max_bytes = 64 * 1024;
    config.outbox.max_stall_ms = stall_ms;
    config.outbox.overflow = policy;
    config
}

/// A 1 KiB body that starts with its sequence number.
fn body(seq: usize) -> String {
    format!("{seq:08}-{}", "x".repeat(1024 - 9))
}

fn seq_of(frame: &Frame) -> usize {
    std::str::from_utf8(&frame.body[..8])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a numbered message: {}", show(frame)))
}

/// Publishes one batch of numbered messages, the last with a receipt, and checks that the
/// reading subscriber gets each of them in order.
async fn publish_batch(publisher: &mut Client, reader: &mut Client, next_seq: &mut usize) {
    let first = *next_seq;
    for seq in first..first + BATCH {
        let send = common::send_frame("/topic/flood", &body(seq));
        if seq + 1 == first + BATCH {
            publisher.send_with_receipt(send).await;
        } else {
            publisher.send(&send).await;
        }
    }
    for seq in first..first + BATCH {
        reader
            .expect_message("fast", "/topic/flood", &body(seq))
            .await;
    }
    *next_seq = first + BATCH;
}

/// Reads whatever is left until the connection ends; returns the frames.
/// Subscribers `slow` (a small receive buffer; it reads nothing unless told to) and `fast` on
/// `/topic/flood`, and a publisher.
async fn flood(server: &TestServer, transport: Transport) -> (Client, Client, Client) {
    let mut slow = server
        .open_with_recv_buffer(transport, SLOW_RECV_BUFFER)
        .await;
    slow.connect().await;
    slow.subscribe("slow", "/topic/flood").await;
    let mut fast = server.client(transport).await;
    fast.subscribe("fast", "/topic/flood").await;
    let publisher = server.client(transport).await;
    (slow, fast, publisher)
}

async fn drain(client: &mut Client) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(event) = client.event().await {
        if let Event::Frame(frame, _) = event {
            frames.push(frame);
        }
    }
    frames
}

async fn stalled_subscriber_is_closed_and_others_get_everything(transport: Transport) {
    let server = TestServer::start(slow_config(OverflowPolicy::Close, 500)).await;
    let stats = &server.node.stats;
    // From here on `slow` reads nothing until the end of the test.
    let (mut slow, mut fast, mut publisher) = flood(&server, transport).await;

    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.closes("slow_consumer") + stats.closes("write_stalled") == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled subscriber was not closed after {seq} messages of 1 KiB"
        );
        publish_batch(&mut publisher, &mut fast, &mut seq).await;
    }
    assert_eq!(
        stats.closes("slow_consumer") + stats.closes("write_stalled"),
        1
    );
    // The others carry on.
    for _ in 0..4 {
        publish_batch(&mut publisher, &mut fast, &mut seq).await;
    }
    fast.expect_silence(common::QUIET).await;

    // The stalled subscriber got an in-order prefix of the messages, then at most an ERROR,
    // then the end of the connection (a stalled write may have cut the last frame short).
    let frames = drain(&mut slow).await;
    assert!(slow.closed().is_some());
    let mut expected_seq = 0;
    for (i, frame) in frames.iter().enumerate() {
        match frame.command {
            Command::Message => {
                assert_eq!(seq_of(frame), expected_seq, "{}", show(frame));
                assert_eq!(frame.headers.get("subscription"), Some("slow"));
                expected_seq += 1;
            }
            Command::Error => {
                assert_eq!(i + 1, frames.len(), "ERROR must be the last frame");
                assert_eq!(frame.headers.get("message"), Some("slow consumer"));
            }
            _ => panic!("unexpected {}", show(frame)),
        }
    }
    assert!(
        expected_seq < seq,
        "the stalled subscriber cannot have got everything"
    );
    assert_eq!(stats.connections_open.load(Ordering::Relaxed), 2);
}

async fn drop_oldest_keeps_the_stalled_session_open(transport: Transport) {
    // The stall time is long: only the byte bound acts while the subscriber does not read.
    let server = TestServer::start(slow_config(OverflowPolicy::DropOldest, 30_000)).await;
    let stats = &server.node.stats;
    let (mut slow, mut fast, mut publisher) = flood(&server, transport).await;

    let mut seq = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.messages_dropped.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "nothing was dropped after {seq} messages of 1 KiB"
        );
        assert_eq!(
            stats.closes("slow_consumer") + stats.closes("write_stalled"),
            0,
            "drop_oldest must not close the session"
        );
        publish_batch(&mut publisher, &mut fast, &mut seq).await;
    }
    for _ in 0..4 {
        publish_batch(&mut publisher, &mut fast, &mut seq).await;
    }
    let dropped = stats.messages_dropped.load(Ordering::Relaxed);
    let last = seq - 1;

    // Now the slow subscriber reads: messages in increasing order, ending with the newest,
    // with exactly the dropped ones missing.
    let mut received = 0;
    let mut previous = None;
    loop {
        let message = slow.expect(Command::Message).await;
        assert_eq!(message.headers.get("subscription"), Some("slow"));
        let n = seq_of(&message);
        if let Some(previous) = previous {
            assert!(n > previous, "message {n} after {previous}");
        }
        previous = Some(n);
        received += 1;
        if n == last {
            break;
        }
    }
    assert_eq!(
        received + dropped as usize,
        seq,
        "received + dropped = published"
    );
    // Still open and in sync.
    slow.subscribe("other", "/topic/other").await;
    assert_eq!(stats.closes("slow_consumer"), 0);
    assert_eq!(stats.closes("write_stalled"), 0);
    assert_eq!(stats.connections_open.load(Ordering::Relaxed), 3);
}
