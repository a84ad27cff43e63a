//! A durable queue without a store: what it pulls room for, and how it settles what a store
//! handed over (recorded by a fake settlement).

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::Headers;
use parking_lot::Mutex;

use super::tests::{Consumer, router};
use super::*;
use crate::routing::durable::{Settlement, StoredHandle};

/// What happened to each stored message, by id.
type Log = Arc<Mutex<Vec<(String, &'static str)>>>;

#[derive(Debug)]
struct Recorded {
    id: String,
    log: Log,
}

impl Settlement for Recorded {
    fn ack(self: Box<Self>) {
        self.log.lock().push((self.id, "ack"));
    }

    fn nak(self: Box<Self>) {
        self.log.lock().push((self.id, "nak"));
    }
}

fn stored(id: &str, headers: Headers, log: &Log) -> Arc<QueuedMessage> {
    let handle = StoredHandle::new(Box::new(Recorded {
        id: id.to_owned(),
        log: Arc::clone(log),
    }));
    Arc::new(QueuedMessage::from_store(
        id.to_owned(),
        "/queue/d",
        headers,
        Bytes::from_static(b"x"),
        handle,
    ))
}

fn join_durable(router: &QueueRouter, c: &Consumer, ack: AckMode, prefetch: usize) -> Arc<Queue> {
    let queue = router
        .subscribe("/queue/d", c.spec(ack, prefetch), &Creator::default(), true)
        .unwrap();
    queue.resume(&c.subscriber);
    queue
}

fn taken(log: &Log) -> Vec<(String, &'static str)> {
    std::mem::take(&mut *log.lock())
}

#[test]
fn room_is_prefetch_less_unacknowledged_and_acks_reach_the_store() {
    let (router, _) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = join_durable(&router, &c, AckMode::ClientIndividual, 3);
    assert!(queue.claim_feed());
    assert!(!queue.claim_feed(), "one feeder at a time");
    assert_eq!(queue.feed_room(), FeedRoom::Room(3));
    let log = Log::default();
    for id in ["a", "b"] {
        queue
            .enqueue_stored(stored(id, Headers::new(), &log), false)
            .unwrap();
    }
    let frames = c.take().0;
    assert_eq!(frames.len(), 2);
    assert_eq!(queue.feed_room(), FeedRoom::Room(1));
    let first = super::tests::seq(&frames[0]);
    queue
        .settle(&c.subscriber, first, false, Settle::Ack)
        .unwrap();
    assert_eq!(taken(&log), [("a".to_owned(), "ack")]);
    assert_eq!(queue.feed_room(), FeedRoom::Room(2));
}

#[test]
fn nack_and_leaving_give_messages_back_at_once_instead_of_requeueing() {
    let (router, _) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = join_durable(&router, &c, AckMode::Client, 10);
    assert!(queue.claim_feed());
    let log = Log::default();
    for id in ["a", "b", "c"] {
        queue
            .enqueue_stored(stored(id, Headers::new(), &log), id == "c")
            .unwrap();
    }
    let frames = c.take().0;
    assert_eq!(frames[2].headers.get("redelivered"), Some("true"));
    // Cumulative NACK of the second: the first two go back to the store, not to this queue.
    let second = super::tests::seq(&frames[1]);
    queue
        .settle(&c.subscriber, second, true, Settle::Nack)
        .unwrap();
    assert_eq!(
        taken(&log),
        [("a".to_owned(), "nak"), ("b".to_owned(), "nak")]
    );
    assert!(c.take().0.is_empty(), "nothing is redelivered locally");
    assert_eq!(queue.depth().ready, 0);
    // The consumer leaves holding "c": given back, and the feeder is told to stop.
    assert_eq!(queue.remove_consumer(&c.subscriber), 1);
    assert_eq!(taken(&log), [("c".to_owned(), "nak")]);
    assert_eq!(queue.feed_room(), FeedRoom::Stop);
    // Nobody to take it: refused, and given back when dropped.
    let refused = queue.enqueue_stored(stored("d", Headers::new(), &log), false);
    drop(refused);
    assert_eq!(taken(&log), [("d".to_owned(), "nak")]);
    // A new consumer claims a new feeder.
    let again = join_durable(&router, &c, AckMode::Auto, 1);
    assert!(again.claim_feed());
}

#[test]
fn auto_mode_acknowledges_on_hand_over_and_expired_messages_are_acknowledged_unseen() {
    let (router, _) = router();
    let c = Consumer::new(1, 1 << 20);
    let queue = join_durable(&router, &c, AckMode::Auto, 5);
    let log = Log::default();
    let mut past = Headers::new();
    past.push("expires", "1");
    queue
        .enqueue_stored(stored("old", past, &log), false)
        .unwrap();
    queue
        .enqueue_stored(stored("new", Headers::new(), &log), false)
        .unwrap();
    assert_eq!(c.bodies(), ["x"]);
    assert_eq!(
        taken(&log),
        [("old".to_owned(), "ack"), ("new".to_owned(), "ack")]
    );
    assert_eq!(queue.feed_room(), FeedRoom::Room(5));
}

#[test]
fn room_stops_at_the_queue_bounds_whatever_the_prefetch() {
    let (router, _) = super::tests::router_with(crate::config::QueuesConfig {
        max_messages_per_queue: 2,
        ..Default::default()
    });
    let c = Consumer::new(1, 1 << 20);
    let queue = join_durable(&router, &c, AckMode::ClientIndividual, 1000);
    assert_eq!(queue.feed_room(), FeedRoom::Room(2));
    let log = Log::default();
    queue
        .enqueue_stored(stored("a", Headers::new(), &log), false)
        .unwrap();
    assert_eq!(queue.feed_room(), FeedRoom::Room(1));
}
