//! Every counter the broker keeps, defined in one place. The operations work exports them to
//! Prometheus; until then they are readable in-process (and by tests).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Why sessions end, one counter each: the labels `session::close::CloseReason::label` gives
/// (metrics imports nothing above it, so it counts labels, not reasons).
pub const CLOSE_LABELS: [&str; 10] = [
    "disconnect",
    "peer_closed",
    "io_error",
    "protocol_error",
    "connect_timeout",
    "heartbeat_timeout",
    "slow_consumer",
    "write_stalled",
    "shutdown",
    "internal_error",
];

#[derive(Debug, Default)]
pub struct Stats {
    pub connections_open: AtomicI64,
    pub connections_accepted: AtomicU64,
    /// Refused at accept: connection limits.
    pub connections_refused: AtomicU64,
    pub messages_published: AtomicU64,
    pub messages_delivered: AtomicU64,
    /// Messages dropped from outbound queues under `drop_oldest`.
    pub messages_dropped: AtomicU64,
    /// Queue messages whose `expires` time passed before they could be delivered (topic
    /// messages already expired on arrival count here too).
    pub messages_expired: AtomicU64,
    /// SENDs to a user destination (`/user/<name>/...`) that reached no session.
    pub user_messages_unrouted: AtomicU64,
    /// CONNECTs refused for wrong credentials (unknown login or wrong passcode).
    pub auth_failures: AtomicU64,
    /// Times a publishing session stopped reading because a subscriber's outbox was above
    /// its high-water mark.
    pub backpressure_pauses: AtomicU64,
    /// Subscribers closed as slow consumers because a publisher waited `outbox.max_pause_ms`
    /// for them.
    pub backpressure_timeouts: AtomicU64,
    /// Point-to-point queues and the messages they hold.
    pub queues: QueueStats,
    /// Bytes held by open transactions, all sessions together; the
    /// `limits.max_transaction_bytes_total` bound is checked against it.
    pub transaction_bytes: AtomicI64,
    /// 1 while this node's NATS link is up, 0 while it is down or not yet made (stays 0 on
    /// a single node).
    pub cluster_link_up: AtomicI64,
    /// Times the NATS link went down.
    pub cluster_disconnects: AtomicU64,
    /// Times the NATS link came back after being up before.
    pub cluster_reconnects: AtomicU64,
    /// Failed attempts to reach a NATS server (unreachable, TLS, refused credentials).
    pub cluster_connect_errors: AtomicU64,
    /// Of those, attempts NATS refused for this node's credentials.
    pub cluster_auth_errors: AtomicU64,
    /// Messages from NATS dropped because a subscription's channel was full.
    pub cluster_slow_consumer: AtomicU64,
    /// SENDs refused because they were larger than the cluster link carries.
    pub cluster_oversized_refused: AtomicU64,
    /// Messages from other nodes a full queue of this node did not take.
    pub cluster_queue_drops: AtomicU64,
    closes: [AtomicU64; CLOSE_LABELS.len()],
}

impl Stats {
    /// One topic publish: `delivered` MESSAGE frames queued and `dropped` older ones dropped
    /// for them, or nothing delivered because the message had `expired` on arrival.
    pub fn record_publish(&self, delivered: usize, dropped: usize, expired: bool) {
        if expired {
            self.record_expired();
            return;
        }
        self.messages_published.fetch_add(1, Ordering::Relaxed);
        self.messages_delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        self.messages_dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }

    /// A user-destination SEND that no session of the user (or session id) was subscribed to.
    pub fn record_user_unrouted(&self) {
        self.user_messages_unrouted.fetch_add(1, Ordering::Relaxed);
    }

    /// A SEND refused for being larger than the cluster link carries.
    pub fn record_cluster_oversized(&self) {
        self.cluster_oversized_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A message from another node that a full queue here did not take.
    pub fn record_cluster_queue_drop(&self) {
        self.cluster_queue_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// A publishing session paused for a congested subscriber.
    pub fn record_backpressure_pause(&self) {
        self.backpressure_pauses.fetch_add(1, Ordering::Relaxed);
    }

    /// A CONNECT refused for wrong credentials.
    pub fn record_auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A message already expired when it arrived: dropped, never delivered.
    pub fn record_expired(&self) {
        self.messages_expired.fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended for the reason labelled `label` (one of [`CLOSE_LABELS`]).
    pub fn record_close(&self, label: &str) {
        if let Some(i) = CLOSE_LABELS.iter().position(|l| *l == label) {
            self.closes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many sessions ended for the reason labelled `label`.
    pub fn closes(&self, label: &str) -> u64 {
        CLOSE_LABELS
            .iter()
            .position(|l| *l == label)
            .map_or(0, |i| self.closes[i].load(Ordering::Relaxed))
    }
}

/// Queue counters and gauges. Gauges are kept exact under each queue's own lock; reading one
/// is a relaxed load, so a reader may see a queue's update before another's.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Named queues in existence (private queues of client-ack topic subscriptions excluded).
    pub queues: AtomicI64,
    /// Messages waiting in queues for a subscriber, all queues together.
    pub depth: AtomicI64,
    /// Messages delivered and awaiting ACK or NACK, all queues together.
    pub unacked: AtomicI64,
    /// Memory charged to queues, all together: their waiting and unacknowledged messages
    /// and the queues themselves; the `queues.max_total_bytes` bound is checked against it.
    pub bytes: AtomicI64,
    /// Accepted SENDs to queues.
    pub sends: AtomicU64,
    /// MESSAGE frames handed to connections from queues (redeliveries included).
    pub delivered: AtomicU64,
    /// Deliveries of messages that had been delivered before (`redelivered:true`).
    pub redelivered: AtomicU64,
    /// Unacknowledged messages returned to a queue (NACK, UNSUBSCRIBE, disconnect).
    pub requeued: AtomicU64,
    /// Messages acknowledged by ACK.
    pub acked: AtomicU64,
    /// Messages dropped to respect a queue bound (policy `drop_oldest`, and always for the
    /// private queues of client-ack topic subscriptions).
    pub overflow_dropped: AtomicU64,
    /// SENDs refused because the queue was full (policy `reject`), or because a queue
    /// count bound kept their queue from being created.
    pub rejected_sends: AtomicU64,
    /// SENDs told to wait for room (policy `block`); a SEND tried again counts again.
    pub blocked_sends: AtomicU64,
    /// Queue creations refused by `queues.max_queues` or `queues.max_queues_per_session`
    /// (by a SEND or a SUBSCRIBE).
    pub refused_creations: AtomicU64,
    /// Empty queues deleted after their grace period.
    pub deleted: AtomicU64,
}

impl QueueStats {
    pub(crate) fn add(gauge: &AtomicI64, delta: i64) {
        if delta != 0 {
            gauge.fetch_add(delta, Ordering::Relaxed);
        }
    }

    pub(crate) fn count(counter: &AtomicU64, n: u64) {
        if n != 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Bytes held by all queues now.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed).max(0) as usize
    }
}
