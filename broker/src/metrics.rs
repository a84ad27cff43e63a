//! Every counter the broker keeps, and every metric exported from them, defined in one
//! place. The hot paths count into plain atomics (and two histograms); [`render`] turns them,
//! with what the layers above know ([`Outside`]), into the Prometheus text format when
//! `/metrics` is scraped. No label names a destination or a user: label values come from
//! fixed lists, so the number of series stays bounded whatever clients do.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Instant;

use herald_protocol::Command;
use prometheus::{Histogram, HistogramOpts};

mod export;
pub use export::{LinkSample, Outside, StoreCounts, render};

/// The transports sessions arrive on, as `transport` labels.
pub const TRANSPORT_LABELS: [&str; 2] = ["ws", "tcp"];

/// Why sessions end, one counter each: the labels `session::close::CloseReason::label` gives
/// (metrics imports nothing above it, so it counts labels, not reasons).
pub const CLOSE_LABELS: [&str; 11] = [
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
    "kicked",
];

/// What became of messages kept for offline users (`[[users.offline]]`): the `outcome`
/// labels, in [`OfflineOutcome`] order.
pub const OFFLINE_LABELS: [&str; 4] = ["stored", "delivered", "expired", "dropped"];

/// One [`OFFLINE_LABELS`] entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfflineOutcome {
    /// Kept for a user with no session subscribed anywhere.
    Stored,
    /// Taken from the store into a subscription's queue.
    Delivered,
    /// Found older than its `keep_ms`, or past its `expires`, when drained: never delivered.
    Expired,
    /// The user's oldest, dropped at `max_per_user` for a newer one.
    Dropped,
}

#[derive(Debug)]
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
    /// Offline delivery, by [`OfflineOutcome`].
    offline: [AtomicU64; OFFLINE_LABELS.len()],
    /// Open connections by transport (index into [`TRANSPORT_LABELS`]).
    connections: [AtomicI64; TRANSPORT_LABELS.len()],
    /// Sessions started (a connection established, before its CONNECT) by transport.
    sessions_opened: [AtomicU64; TRANSPORT_LABELS.len()],
    /// Frames decoded from clients, by command (index `Command as usize`).
    frames_in: [AtomicU64; Command::ALL.len()],
    /// Frames written to clients, by command (heart-beats are not frames).
    frames_out: [AtomicU64; Command::ALL.len()],
    /// STOMP bytes read from clients (WebSocket framing excluded).
    pub bytes_in: AtomicU64,
    /// STOMP bytes written to clients, heart-beats included (WebSocket framing excluded).
    pub bytes_out: AtomicU64,
    /// SENDs refused by the access rules.
    pub access_denied_sends: AtomicU64,
    /// SUBSCRIBEs refused by the access rules.
    pub access_denied_subscribes: AtomicU64,
    /// Topic publishes that reached no subscriber on this node (in a cluster, other nodes
    /// may have had some).
    pub topic_unheard: AtomicU64,
    /// Subscriptions of this node's sessions (topic and queue), as routing counts them.
    pub subscriptions: AtomicI64,
    /// Topic destinations and patterns with at least one local subscription.
    pub topic_destinations: AtomicI64,
    /// Local subscribers one topic publish reached (the message was encoded once for all).
    pub fanout: Histogram,
    /// From a frame entering a session's outbox (the oldest of a written batch, one batch
    /// in 16 per outbox) to the batch handed to the socket.
    pub write_latency: Histogram,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            connections_open: AtomicI64::default(),
            connections_accepted: AtomicU64::default(),
            connections_refused: AtomicU64::default(),
            messages_published: AtomicU64::default(),
            messages_delivered: AtomicU64::default(),
            messages_dropped: AtomicU64::default(),
            messages_expired: AtomicU64::default(),
            user_messages_unrouted: AtomicU64::default(),
            auth_failures: AtomicU64::default(),
            backpressure_pauses: AtomicU64::default(),
            backpressure_timeouts: AtomicU64::default(),
            queues: QueueStats::default(),
            transaction_bytes: AtomicI64::default(),
            cluster_link_up: AtomicI64::default(),
            cluster_disconnects: AtomicU64::default(),
            cluster_reconnects: AtomicU64::default(),
            cluster_connect_errors: AtomicU64::default(),
            cluster_auth_errors: AtomicU64::default(),
            cluster_slow_consumer: AtomicU64::default(),
            cluster_oversized_refused: AtomicU64::default(),
            cluster_queue_drops: AtomicU64::default(),
            closes: Default::default(),
            offline: Default::default(),
            connections: Default::default(),
            sessions_opened: Default::default(),
            frames_in: Default::default(),
            frames_out: Default::default(),
            bytes_in: AtomicU64::default(),
            bytes_out: AtomicU64::default(),
            access_denied_sends: AtomicU64::default(),
            access_denied_subscribes: AtomicU64::default(),
            topic_unheard: AtomicU64::default(),
            subscriptions: AtomicI64::default(),
            topic_destinations: AtomicI64::default(),
            fanout: histogram(
                "herald_fanout_subscribers",
                "Local subscribers one topic publish reached.",
                &FANOUT_BUCKETS,
            ),
            write_latency: histogram(
                "herald_publish_to_socket_seconds",
                "From a message entering a session's outbound queue (routing done) to its batch \
                 written to the socket: the oldest frame of one written batch in 16 per \
                 connection, its first included.",
                &LATENCY_BUCKETS,
            ),
        }
    }
}

/// Subscriber counts; a publish to nobody lands in the first bucket.
const FANOUT_BUCKETS: [f64; 12] = [
    0.0, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10_000.0, 50_000.0,
];

/// Seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 10.0,
];

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
        .expect("a valid histogram definition")
}

/// What one written batch held, tallied before the write so that the frames can move.
#[derive(Debug, Default)]
pub struct Written {
    bytes: u64,
    frames: [u32; Command::ALL.len()],
}

impl Written {
    /// Tallies encoded frames; a server frame's command is told by its first byte (CONNECTED,
    /// MESSAGE, RECEIPT, ERROR), a lone end of line is a heart-beat.
    pub fn of<'a>(frames: impl Iterator<Item = &'a [u8]>) -> Written {
        let mut written = Written::default();
        for frame in frames {
            written.bytes += frame.len() as u64;
            let command = match frame.first() {
                Some(b'M') => Command::Message,
                Some(b'R') => Command::Receipt,
                Some(b'E') => Command::Error,
                Some(b'C') => Command::Connected,
                _ => continue,
            };
            written.frames[command as usize] += 1;
        }
        written
    }

    /// MESSAGE frames among them.
    pub fn messages(&self) -> u32 {
        self.frames[Command::Message as usize]
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl Stats {
    /// A connection was admitted on `transport` (one of [`TRANSPORT_LABELS`]); `false` when
    /// it closed.
    /// Open connections by transport.
    pub fn connections_by_transport(&self) -> impl Iterator<Item = (&'static str, i64)> + '_ {
        TRANSPORT_LABELS
            .iter()
            .zip(&self.connections)
            .map(|(t, n)| (*t, n.load(Ordering::Relaxed)))
    }

    pub fn record_connection(&self, transport: &str, open: bool) {
        if let Some(i) = TRANSPORT_LABELS.iter().position(|t| *t == transport) {
            self.connections[i].fetch_add(if open { 1 } else { -1 }, Ordering::Relaxed);
        }
    }

    /// A session started on `transport`.
    pub fn record_session_opened(&self, transport: &str) {
        if let Some(i) = TRANSPORT_LABELS.iter().position(|t| *t == transport) {
            self.sessions_opened[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A frame decoded from a client.
    pub fn record_frame_in(&self, command: Command) {
        self.frames_in[command as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// `bytes` read from a client.
    pub fn record_bytes_in(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A batch written to a client; `since` is when its oldest frame was queued.
    pub fn record_written(&self, written: &Written, since: Option<Instant>) {
        self.bytes_out.fetch_add(written.bytes, Ordering::Relaxed);
        for (counter, &n) in self.frames_out.iter().zip(&written.frames) {
            if n != 0 {
                counter.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        }
        if let Some(since) = since {
            self.write_latency.observe(since.elapsed().as_secs_f64());
        }
    }

    /// A SEND (`send`) or SUBSCRIBE refused by the access rules.
    pub fn record_access_denied(&self, send: bool) {
        let counter = match send {
            true => &self.access_denied_sends,
            false => &self.access_denied_subscribes,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A local subscription added (`on`) or removed; `first_or_last` when it was the first
    /// on its topic destination or the last, so that distinct destinations are counted too.
    pub fn record_subscription(&self, topic: bool, on: bool, first_or_last: bool) {
        let delta = if on { 1 } else { -1 };
        self.subscriptions.fetch_add(delta, Ordering::Relaxed);
        if topic && first_or_last {
            self.topic_destinations.fetch_add(delta, Ordering::Relaxed);
        }
    }

    /// How many frames of `command` clients sent.
    pub fn frames_in(&self, command: Command) -> u64 {
        self.frames_in[command as usize].load(Ordering::Relaxed)
    }

    /// How many frames of `command` were written to clients.
    pub fn frames_out(&self, command: Command) -> u64 {
        self.frames_out[command as usize].load(Ordering::Relaxed)
    }

    /// One topic publish: `delivered` MESSAGE frames queued and `dropped` older ones dropped
    /// for them, or nothing delivered because the message had `expired` on arrival.
    pub fn record_publish(&self, delivered: usize, dropped: usize, expired: bool) {
        if expired {
            self.record_expired();
            return;
        }
        self.messages_published.fetch_add(1, Ordering::Relaxed);
        self.fanout.observe(delivered as f64);
        if delivered == 0 {
            self.topic_unheard.fetch_add(1, Ordering::Relaxed);
        }
        self.messages_delivered
            .fetch_add(delivered as u64, Ordering::Relaxed);
        self.messages_dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
    }

    /// Routed messages a slow consumer's outbox held when it overflowed.
    pub fn record_dropped(&self, messages: u64) {
        self.messages_dropped.fetch_add(messages, Ordering::Relaxed);
    }

    /// A user-destination SEND that no session of the user (or session id) was subscribed to.
    pub fn record_user_unrouted(&self) {
        self.user_messages_unrouted.fetch_add(1, Ordering::Relaxed);
    }

    /// A message kept for, delivered to or expired for an offline user.
    pub fn record_offline(&self, outcome: OfflineOutcome) {
        self.offline[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Offline delivery counts, in [`OFFLINE_LABELS`] order.
    pub fn offline(&self) -> [u64; OFFLINE_LABELS.len()] {
        std::array::from_fn(|i| self.offline[i].load(Ordering::Relaxed))
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
