//! The queue structure without sockets: real outboxes, frames decoded back.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::FutureExt;
use herald_protocol::{Decoded, Decoder, Frame, Headers, ParseOptions, Version};
use tokio::sync::futures::Notified;

use super::*;
use crate::config::{OverflowPolicy, QueueOverflow, QueuesConfig};
use crate::metrics::Stats;
use crate::outbox::Outbox;
use crate::routing::subscriber::Subscriber;

pub(super) fn router_with(config: QueuesConfig) -> (QueueRouter, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let ids = Arc::new(MessageIds::new("t"));
    (QueueRouter::new(&config, ids, Arc::clone(&stats)), stats)
}

pub(super) fn router() -> (QueueRouter, Arc<Stats>) {
    router_with(QueuesConfig::default())
}

/// A consumer on its own outbox of `outbox_bytes`.
pub(super) struct Consumer {
    pub(super) subscriber: Subscriber,
    outbox: Arc<Outbox>,
}

impl Consumer {
    pub(super) fn new(session: u64, outbox_bytes: usize) -> Consumer {
        let outbox = Arc::new(Outbox::new(outbox_bytes, OverflowPolicy::Close));
        Consumer {
            subscriber: Subscriber::new(session, "s", Version::V1_2, Arc::clone(&outbox)),
            outbox,
        }
    }

    pub(super) fn spec(&self, ack: AckMode, prefetch: usize) -> ConsumerSpec {
        ConsumerSpec {
            subscriber: self.subscriber.clone(),
            ack,
            prefetch,
            tag: 7,
            shown_destination: None,
        }
    }

    /// Subscribes and lets the queue deliver (as the session does after its RECEIPT).
    fn join(&self, router: &QueueRouter, name: &str, ack: AckMode, prefetch: usize) -> Arc<Queue> {
        let queue = router
            .subscribe(name, self.spec(ack, prefetch), &Creator::default(), false)
            .unwrap();
        queue.resume(&self.subscriber);
        queue
    }

    /// Every MESSAGE queued for this consumer, decoded; `drained.refused` alongside.
    pub(super) fn take(&self) -> (Vec<Frame>, bool) {
        let drained = self.outbox.drain();
        let mut decoder = Decoder::new(ParseOptions::default());
        let mut frames = Vec::new();
        for out in drained.frames {
            let mut buf = BytesMut::from(&out.bytes[..]);
            match decoder.decode(&mut buf) {
                Ok(Some(Decoded::Frame(frame))) => frames.push(frame),
                other => panic!("not a frame: {other:?}"),
            }
        }
        (frames, drained.refused)
    }

    pub(super) fn bodies(&self) -> Vec<String> {
        self.take().0.iter().map(body).collect()
    }
}

fn body(frame: &Frame) -> String {
    String::from_utf8(frame.body.to_vec()).unwrap()
}

pub(super) fn seq(frame: &Frame) -> u64 {
    AckId::parse(frame.headers.get("ack").expect("ack header"))
        .unwrap()
        .seq
}

fn send(router: &QueueRouter, name: &str, body: &str) -> Enqueued {
    router.publish(name, &Headers::new(), body.as_bytes(), &Creator::default())
}

fn send_n(router: &QueueRouter, name: &str, n: usize) {
    for i in 0..n {
        assert_eq!(send(router, name, &format!("m{i}")), Enqueued::Accepted);
    }
}

/// Waiting and unacknowledged messages, and their bytes (the node's total less what the
/// router's queues themselves are charged).
fn gauge(router: &QueueRouter, stats: &Stats) -> (i64, i64, i64) {
    let q = &stats.queues;
    (
        q.depth.load(Ordering::Relaxed),
        q.unacked.load(Ordering::Relaxed),
        q.bytes.load(Ordering::Relaxed) - queue_overheads(router) as i64,
    )
}

fn queue_overheads(router: &QueueRouter) -> usize {
    let shards = router.shards.iter();
    shards
        .map(|s| s.read().keys().map(|n| Queue::overhead(n)).sum::<usize>())
        .sum()
}

#[test]
fn ack_ids_round_trip_and_reject_other_spellings() {
    let id = AckId { tag: 3, seq: 10 };
    assert_eq!(AckId::parse(&id.to_string()), Some(id));
    for bad in ["", "3", "3-", "-1", "03-1", "3-+1", "3-1-2", "a-1", " 3-1"] {
        assert_eq!(AckId::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn buffers_until_a_consumer_comes_then_delivers_in_order() {
    let (router, stats) = router();
    send_n(&router, "/queue/a", 3);
    assert_eq!(router.depth("/queue/a").unwrap().ready, 3);
    assert_eq!(gauge(&router, &stats).0, 3);
    let c = Consumer::new(1, 1 << 20);
    let queue = router
        .subscribe(
            "/queue/a",
            c.spec(AckMode::Auto, 0),
            &Creator::default(),
            false,
        )
        .unwrap();
    assert!(c.bodies().is_empty(), "nothing before resume");
    queue.resume(&c.subscriber);
    let (frames, _) = c.take();
    assert_eq!(
        frames.iter().map(body).collect::<Vec<_>>(),
        ["m0", "m1", "m2"]
    );
    let message = &frames[0];
    assert_eq!(message.headers.get("destination"), Some("/queue/a"));
    assert_eq!(message.headers.get("subscription"), Some("s"));
    assert!(message.headers.get("message-id").unwrap().starts_with("t-"));
    assert_eq!(
        message.headers.get("ack"),
        None,
        "auto mode has no ack header"
    );
    assert_eq!(gauge(&router, &stats), (0, 0, 0));
}

#[test]
fn round_robin_gives_each_message_to_exactly_one_consumer() {
    let (router, _) = router();
    let a = Consumer::new(1, 1 << 20);
    let b = Consumer::new(2, 1 << 20);
    a.join(&router, "/queue/rr", AckMode::Auto, 0);
    b.join(&router, "/queue/rr", AckMode::Auto, 0);
    send_n(&router, "/queue/rr", 6);
    assert_eq!(a.bodies(), ["m0", "m2", "m4"]);
    assert_eq!(b.bodies(), ["m1", "m3", "m5"]);
}

#[test]
fn prefetch_bounds_unacknowledged_messages() {
    let (router, stats) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/p", AckMode::ClientIndividual, 2);
    send_n(&router, "/queue/p", 5);
    let (frames, _) = c.take();
    assert_eq!(frames.iter().map(body).collect::<Vec<_>>(), ["m0", "m1"]);
    assert_eq!(gauge(&router, &stats).0, 3);
    assert_eq!(gauge(&router, &stats).1, 2);
    let n = queue
        .settle(&c.subscriber, seq(&frames[1]), false, Settle::Ack)
        .unwrap();
    assert_eq!(n, 1);
    assert!(c.bodies().is_empty(), "settle alone does not deliver");
    queue.resume(&c.subscriber);
    assert_eq!(c.bodies(), ["m2"]);
    // Acknowledged twice: unknown.
    assert_eq!(
        queue.settle(&c.subscriber, seq(&frames[1]), false, Settle::Ack),
        Err(UnknownAck)
    );
}

#[test]
fn cumulative_ack_settles_every_earlier_message() {
    let (router, stats) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/c", AckMode::Client, 0);
    send_n(&router, "/queue/c", 4);
    let (frames, _) = c.take();
    assert_eq!(frames.len(), 4);
    let n = queue
        .settle(&c.subscriber, seq(&frames[2]), true, Settle::Ack)
        .unwrap();
    assert_eq!(n, 3);
    assert!(!queue.is_pending(&c.subscriber, seq(&frames[0])));
    assert!(queue.is_pending(&c.subscriber, seq(&frames[3])));
    assert_eq!(queue.depth().unacked, 1);
    assert_eq!(stats.queues.acked.load(Ordering::Relaxed), 3);
}

#[test]
fn nack_puts_the_message_back_at_the_head_for_another_consumer() {
    let (router, stats) = router();
    let a = Consumer::new(1, 1 << 20);
    let b = Consumer::new(2, 1 << 20);
    let queue = a.join(&router, "/queue/n", AckMode::ClientIndividual, 0);
    send_n(&router, "/queue/n", 2);
    let (frames, _) = a.take();
    b.join(&router, "/queue/n", AckMode::ClientIndividual, 0);
    queue
        .settle(&a.subscriber, seq(&frames[0]), false, Settle::Nack)
        .unwrap();
    send(&router, "/queue/n", "m2");
    queue.resume(&a.subscriber);
    // m0 went to b (not the NACKer) even though round-robin pointed at a; m2 then to a.
    let (got_b, _) = b.take();
    assert_eq!(got_b.iter().map(body).collect::<Vec<_>>(), ["m0"]);
    assert_eq!(got_b[0].headers.get("redelivered"), Some("true"));
    let (got_a, _) = a.take();
    assert_eq!(got_a.iter().map(body).collect::<Vec<_>>(), ["m2"]);
    assert_eq!(got_a[0].headers.get("redelivered"), None);
    assert_eq!(stats.queues.redelivered.load(Ordering::Relaxed), 1);
}

#[test]
fn nack_with_a_single_consumer_redelivers_to_it() {
    let (router, _) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/n1", AckMode::ClientIndividual, 1);
    send_n(&router, "/queue/n1", 2);
    let (frames, _) = c.take();
    assert_eq!(frames.len(), 1);
    queue
        .settle(&c.subscriber, seq(&frames[0]), false, Settle::Nack)
        .unwrap();
    queue.resume(&c.subscriber);
    let (again, _) = c.take();
    assert_eq!(body(&again[0]), "m0");
    assert_eq!(again[0].headers.get("redelivered"), Some("true"));
    assert_ne!(
        seq(&again[0]),
        seq(&frames[0]),
        "a new delivery, a new ack id"
    );
}

#[test]
fn a_departing_consumer_returns_its_messages_in_order() {
    let (router, stats) = router();
    let a = Consumer::new(1, 1 << 20);
    let queue = a.join(&router, "/queue/d", AckMode::ClientIndividual, 0);
    send_n(&router, "/queue/d", 3);
    let (frames, _) = a.take();
    queue
        .settle(&a.subscriber, seq(&frames[1]), false, Settle::Ack)
        .unwrap();
    send(&router, "/queue/d", "m3");
    assert_eq!(queue.remove_consumer(&a.subscriber), 3);
    assert_eq!(queue.depth().ready, 3);
    let b = Consumer::new(2, 1 << 20);
    b.join(&router, "/queue/d", AckMode::Auto, 0);
    let (frames, _) = b.take();
    let got: Vec<(String, Option<&str>)> = frames
        .iter()
        .map(|f| (body(f), f.headers.get("redelivered")))
        .collect();
    assert_eq!(
        got,
        [
            ("m0".to_owned(), Some("true")),
            ("m2".to_owned(), Some("true")),
            ("m3".to_owned(), Some("true")),
        ]
    );
    assert_eq!(gauge(&router, &stats), (0, 0, 0));
}

#[test]
fn a_full_outbox_keeps_the_message_in_the_queue_until_resumed() {
    let (router, _) = router();
    // Room for about one message per outbox.
    let a = Consumer::new(1, 100);
    let b = Consumer::new(2, 100);
    a.join(&router, "/queue/f", AckMode::Auto, 0);
    send_n(&router, "/queue/f", 2);
    // a took m0, refused m1: it waits.
    assert_eq!(router.depth("/queue/f").unwrap().ready, 1);
    let queue = b.join(&router, "/queue/f", AckMode::Auto, 0);
    assert_eq!(b.bodies(), ["m1"], "the other consumer gets it");
    let (got, refused) = a.take();
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["m0"]);
    assert!(refused);
    send_n(&router, "/queue/f", 2);
    // a is blocked until its session asks again; b is full after one.
    assert_eq!(router.depth("/queue/f").unwrap().ready, 1);
    queue.resume(&a.subscriber);
    assert_eq!(a.bodies(), ["m1"]);
    assert_eq!(router.depth("/queue/f").unwrap().ready, 0);
}

#[test]
fn drop_oldest_keeps_the_newest_messages() {
    let (router, stats) = router_with(QueuesConfig {
        max_messages_per_queue: 3,
        overflow: QueueOverflow::DropOldest,
        ..QueuesConfig::default()
    });
    send_n(&router, "/queue/o", 5);
    assert_eq!(stats.queues.overflow_dropped.load(Ordering::Relaxed), 2);
    let c = Consumer::new(1, 1 << 20);
    c.join(&router, "/queue/o", AckMode::Auto, 0);
    assert_eq!(c.bodies(), ["m2", "m3", "m4"]);
}

#[test]
fn drop_oldest_drops_the_new_message_when_only_unacked_ones_are_left() {
    let (router, _) = router_with(QueuesConfig {
        max_messages_per_queue: 2,
        overflow: QueueOverflow::DropOldest,
        ..QueuesConfig::default()
    });
    let c = Consumer::new(1, 1 << 20);
    c.join(&router, "/queue/u", AckMode::ClientIndividual, 0);
    send_n(&router, "/queue/u", 2);
    assert_eq!(send(&router, "/queue/u", "m2"), Enqueued::Dropped);
    assert_eq!(c.bodies(), ["m0", "m1"]);
}

#[test]
fn reject_refuses_sends_at_each_bound() {
    let (router, stats) = router_with(QueuesConfig {
        max_messages_per_queue: 2,
        // A 900-byte body costs ~1,260 bytes, a queue ~470 (see `queues_and_messages_are_charged…`).
        max_bytes_per_queue: 2000,
        max_total_bytes: 4000,
        overflow: QueueOverflow::Reject,
        ..QueuesConfig::default()
    });
    send_n(&router, "/queue/r", 2);
    assert_eq!(
        send(&router, "/queue/r", "m2"),
        Enqueued::Rejected(Bound::Messages)
    );
    let big = "x".repeat(900);
    assert_eq!(send(&router, "/queue/b1", &big), Enqueued::Accepted);
    assert_eq!(
        send(&router, "/queue/b1", &big),
        Enqueued::Rejected(Bound::QueueBytes)
    );
    assert_eq!(
        send(&router, "/queue/b2", &big),
        Enqueued::Rejected(Bound::TotalBytes)
    );
    assert_eq!(stats.queues.rejected_sends.load(Ordering::Relaxed), 3);
    assert_eq!(router.depth("/queue/r").unwrap().ready, 2);
}

#[test]
fn expired_messages_are_never_delivered() {
    let (router, stats) = router();
    let expiring =
        |at: u64| -> Headers { [("expires", at.to_string().as_str())].into_iter().collect() };
    let past = now_ms() - 1;
    assert_eq!(
        router.publish("/queue/e", &expiring(past), b"stale", &Creator::default()),
        Enqueued::Expired
    );
    // Expires while waiting: dropped at the head, or by the sweep.
    let soon = now_ms() + 30;
    let creator = Creator::default();
    router.publish("/queue/e", &expiring(soon), b"soon", &creator);
    let later = expiring(now_ms() + 600_000);
    router.publish("/queue/e", &later, b"fresh", &creator);
    router.publish("/queue/e2", &expiring(soon), b"soon", &creator);
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(router.sweep(Instant::now()), 0);
    assert_eq!(router.depth("/queue/e2").unwrap().ready, 0, "purged");
    let c = Consumer::new(1, 1 << 20);
    c.join(&router, "/queue/e", AckMode::Auto, 0);
    assert_eq!(c.bodies(), ["fresh"]);
    assert_eq!(stats.messages_expired.load(Ordering::Relaxed), 3);
    assert_eq!(gauge(&router, &stats), (0, 0, 0));
}

#[test]
fn idle_queues_are_deleted_after_the_grace_period() {
    let (router, stats) = router_with(QueuesConfig {
        empty_queue_grace_ms: 1000,
        ..QueuesConfig::default()
    });
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/idle", AckMode::Auto, 0);
    send(&router, "/queue/full", "kept");
    assert_eq!(router.len(), 2);
    let later = Instant::now() + Duration::from_secs(5);
    assert_eq!(router.sweep(later), 0, "one has a consumer, one a message");
    queue.remove_consumer(&c.subscriber);
    assert_eq!(router.sweep(Instant::now()), 0, "within the grace period");
    assert_eq!(router.sweep(later), 1);
    assert_eq!(router.len(), 1);
    assert!(router.depth("/queue/idle").is_none());
    assert_eq!(stats.queues.queues.load(Ordering::Relaxed), 1);
    // A queue deleted under a holder of its handle refuses, and the router makes a new one.
    assert_eq!(
        queue.enqueue(Arc::new(QueuedMessage::new(
            "x".into(),
            "/queue/idle",
            &Headers::new(),
            b"",
            None
        ))),
        Err(Deleted)
    );
    assert_eq!(send(&router, "/queue/idle", "again"), Enqueued::Accepted);
    assert_eq!(router.depth("/queue/idle").unwrap().ready, 1);
}

#[test]
fn a_private_queue_is_discarded_with_its_subscription() {
    let (router, stats) = router_with(QueuesConfig {
        max_messages_per_queue: 2,
        overflow: QueueOverflow::Reject,
        ..QueuesConfig::default()
    });
    let c = Consumer::new(1, 1 << 20);
    let queue = router.private_queue("/topic/t", c.spec(AckMode::ClientIndividual, 1));
    queue.resume(&c.subscriber);
    let message = |body: &str| {
        Arc::new(QueuedMessage::new(
            format!("id-{body}"),
            "/topic/t.x",
            &Headers::new(),
            body.as_bytes(),
            None,
        ))
    };
    for body in ["a", "b", "c"] {
        // Private queues always drop the oldest, whatever the policy.
        assert_eq!(queue.enqueue(message(body)), Ok(Enqueued::Accepted));
    }
    let (frames, _) = c.take();
    assert_eq!(frames[0].headers.get("destination"), Some("/topic/t.x"));
    assert_eq!(frames.iter().map(body).collect::<Vec<_>>(), ["a"]);
    assert_eq!(router.len(), 0, "private queues are not named queues");
    assert_eq!(queue.remove_consumer(&c.subscriber), 1);
    assert_eq!(gauge(&router, &stats), (0, 0, 0));
    assert_eq!(queue.enqueue(message("d")), Err(Deleted));
}

/// Whether a notification enabled earlier has arrived.
fn woken(n: Pin<&mut Notified<'_>>) -> bool {
    n.now_or_never().is_some()
}

fn blocking(max_messages: usize) -> (QueueRouter, Arc<Stats>) {
    router_with(QueuesConfig {
        max_messages_per_queue: max_messages,
        ..QueuesConfig::default()
    })
}

fn room(enqueued: Enqueued) -> Room {
    match enqueued {
        Enqueued::Blocked(room) => room,
        other => panic!("not blocked: {other:?}"),
    }
}

#[test]
fn block_is_the_default_and_takes_nothing_until_a_delivery_makes_room() {
    assert_eq!(QueuesConfig::default().overflow, QueueOverflow::Block);
    let (router, stats) = blocking(2);
    send_n(&router, "/queue/b", 2);
    let room = room(send(&router, "/queue/b", "m2"));
    assert_eq!(router.depth("/queue/b").unwrap().ready, 2, "not enqueued");
    assert_eq!(stats.queues.blocked_sends.load(Ordering::Relaxed), 1);
    assert_eq!(stats.queues.overflow_dropped.load(Ordering::Relaxed), 0);

    // The session's order: enable, publish again (still full), then wait.
    let n = room.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    assert_eq!(
        send(&router, "/queue/b", "m2"),
        Enqueued::Blocked(room.clone())
    );
    assert!(!woken(n.as_mut()), "nothing freed yet");
    let c = Consumer::new(1, 1 << 20);
    c.join(&router, "/queue/b", AckMode::Auto, 0);
    assert!(woken(n.as_mut()), "deliveries made room");
    assert_eq!(send(&router, "/queue/b", "m2"), Enqueued::Accepted);
    assert_eq!(c.bodies(), ["m0", "m1", "m2"]);
}

#[test]
fn an_ack_makes_room_when_unacknowledged_messages_fill_the_queue() {
    let (router, _) = blocking(2);
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/u", AckMode::ClientIndividual, 0);
    send_n(&router, "/queue/u", 2);
    let room = room(send(&router, "/queue/u", "m2"));
    let n = room.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    let (frames, _) = c.take();
    queue.resume(&c.subscriber);
    assert!(
        !woken(n.as_mut()),
        "delivered but unacknowledged: still full"
    );
    queue
        .settle(&c.subscriber, seq(&frames[0]), false, Settle::Ack)
        .unwrap();
    assert!(woken(n.as_mut()));
    assert_eq!(send(&router, "/queue/u", "m2"), Enqueued::Accepted);
}

#[test]
fn the_node_total_blocks_on_one_room_that_any_queue_frees() {
    let (router, _) = router_with(QueuesConfig {
        // A 1,000-byte body costs ~1,360 bytes, a queue ~470.
        max_bytes_per_queue: 4500,
        max_total_bytes: 4500,
        ..QueuesConfig::default()
    });
    let big = "x".repeat(1000);
    assert_eq!(send(&router, "/queue/t1", &big), Enqueued::Accepted);
    assert_eq!(send(&router, "/queue/t2", &big), Enqueued::Accepted);
    let first = room(send(&router, "/queue/t3", &big));
    let second = room(send(&router, "/queue/t1", &big));
    assert_eq!(first, second, "one node-wide room");
    let n = first.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    // Room freed in another queue than the blocked one wakes it.
    Consumer::new(1, 1 << 20).join(&router, "/queue/t2", AckMode::Auto, 0);
    assert!(woken(n.as_mut()));
    assert_eq!(send(&router, "/queue/t3", &big), Enqueued::Accepted);
}

#[test]
fn freeing_room_notifies_only_after_someone_blocked() {
    let (router, _) = blocking(2);
    send_n(&router, "/queue/q", 2);
    let room = room(send(&router, "/queue/q", "m2"));
    let c = Consumer::new(1, 1 << 20);
    c.join(&router, "/queue/q", AckMode::Auto, 0);
    // The wake-up above went to nobody; nobody has blocked since, so the next delivery
    // notifies no one (an unblocked queue pays one load).
    let n = room.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    send_n(&router, "/queue/q", 1);
    assert_eq!(c.bodies().len(), 3);
    assert!(!woken(n.as_mut()));
}

#[test]
fn expiry_and_queue_deletion_wake_blocked_publishers() {
    let (router, _) = router_with(QueuesConfig {
        max_messages_per_queue: 1,
        empty_queue_grace_ms: 1000,
        ..QueuesConfig::default()
    });
    let soon: Headers = [("expires", (now_ms() + 30).to_string().as_str())]
        .into_iter()
        .collect();
    let creator = Creator::default();
    router.publish("/queue/x", &soon, b"soon", &creator);
    let room = room(send(&router, "/queue/x", "next"));
    let n = room.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    std::thread::sleep(Duration::from_millis(40));
    router.sweep(Instant::now());
    assert!(woken(n.as_mut()), "the purge made room");

    // A publisher blocked on a queue that is then deleted tries again (on a new queue).
    let n = room.notified();
    tokio::pin!(n);
    n.as_mut().enable();
    room.mark_waiting();
    assert_eq!(router.sweep(Instant::now() + Duration::from_secs(5)), 1);
    assert!(woken(n.as_mut()));
}

#[test]
fn a_send_that_would_create_one_queue_too_many_is_refused() {
    let (router, stats) = router_with(QueuesConfig {
        max_queues: 3,
        max_queues_per_session: 2,
        empty_queue_grace_ms: 1000,
        ..QueuesConfig::default()
    });
    let (alice, bob) = (Creator::default(), Creator::default());
    let send_as =
        |creator: &Creator, name: &str| router.publish(name, &Headers::new(), b"m", creator);
    assert_eq!(send_as(&alice, "/queue/a1"), Enqueued::Accepted);
    assert_eq!(send_as(&alice, "/queue/a2"), Enqueued::Accepted);
    assert_eq!(
        send_as(&alice, "/queue/a3"),
        Enqueued::Rejected(Bound::SessionQueues)
    );
    assert_eq!(alice.queues(), 2);
    // Queues made by others are no creation of alice's.
    assert_eq!(send_as(&bob, "/queue/b1"), Enqueued::Accepted);
    assert_eq!(send_as(&alice, "/queue/b1"), Enqueued::Accepted);
    assert_eq!(
        send_as(&bob, "/queue/b2"),
        Enqueued::Rejected(Bound::Queues)
    );
    let c = Consumer::new(1, 1 << 20);
    let spec = c.spec(AckMode::Auto, 0);
    assert_eq!(
        router
            .subscribe("/queue/b2", spec.clone(), &bob, false)
            .unwrap_err(),
        Bound::Queues
    );
    assert_eq!(router.len(), 3);
    assert_eq!(stats.queues.refused_creations.load(Ordering::Relaxed), 3);
    assert_eq!(Bound::Queues.config_key(), "queues.max_queues");

    // Deleting an idle queue gives its place back, to the node and to its creator.
    let queue = c.join(&router, "/queue/a1", AckMode::Auto, 0);
    queue.remove_consumer(&c.subscriber);
    assert_eq!(router.sweep(Instant::now() + Duration::from_secs(5)), 1);
    assert_eq!(alice.queues(), 1);
    assert_eq!(send_as(&alice, "/queue/a3"), Enqueued::Accepted);
    assert_eq!(stats.queues.queues.load(Ordering::Relaxed), 3);
}

#[test]
fn queues_and_messages_are_charged_their_overhead_and_give_it_back() {
    let (router, stats) = router_with(QueuesConfig {
        empty_queue_grace_ms: 1000,
        ..QueuesConfig::default()
    });
    let bytes = || stats.queues.bytes.load(Ordering::Relaxed) as usize;
    let c = Consumer::new(1, 1 << 20);
    let queue = c.join(&router, "/queue/m", AckMode::ClientIndividual, 0);
    let empty = bytes();
    assert!(
        empty >= size_of::<Queue>() + 2 * "/queue/m".len(),
        "{empty}"
    );
    assert_eq!(empty, queue_overheads(&router));
    send(&router, "/queue/m", "hello");
    let message = bytes() - empty;
    assert_eq!(message, router.depth("/queue/m").unwrap().bytes);
    assert!(
        message >= size_of::<QueuedMessage>() + "hello".len() + "/queue/m".len(),
        "{message}"
    );
    let (frames, _) = c.take();
    queue
        .settle(&c.subscriber, seq(&frames[0]), false, Settle::Ack)
        .unwrap();
    assert_eq!(bytes(), empty);
    queue.remove_consumer(&c.subscriber);
    router.sweep(Instant::now() + Duration::from_secs(5));
    assert_eq!(bytes(), 0);
}
