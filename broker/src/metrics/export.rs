//! The Prometheus text exposition of [`Stats`] and of what the layers above know: every
//! exported name, help text and label is written here. A scrape builds a fresh registry from
//! the counters (a few dozen series, microseconds), so the hot paths keep counting into
//! plain atomics and never touch Prometheus types, the two histograms aside.

use std::sync::atomic::Ordering;

use herald_protocol::Command;
use prometheus::core::Collector;
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use super::{CLOSE_LABELS, OFFLINE_LABELS, Stats, TRANSPORT_LABELS};

/// What the layers above `metrics` know, read when scraped.
#[derive(Debug, Clone, Default)]
pub struct Outside {
    /// Whether `/readyz` answers 200 now.
    pub ready: bool,
    /// `limits.max_connections`, for alerts on the share in use.
    pub connection_limit: usize,
    /// The link to the other nodes; `None` on a single node.
    pub link: Option<LinkSample>,
    /// The JetStream queue store; `None` under `queues.store = "memory"`.
    pub store: Option<StoreCounts>,
}

/// What the JetStream queue store has done since start (monotonic counts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Messages stored (dead letters included).
    pub published: u64,
    /// Messages handed out by pulls (redeliveries included).
    pub delivered: u64,
    /// Of those, redeliveries.
    pub redelivered: u64,
    pub acked: u64,
    pub nacked: u64,
    pub terminated: u64,
    /// Messages moved to their dead-letter queue.
    pub dead_lettered: u64,
    /// Messages dead-lettered under `dead_letter = "drop"`, from their own dead-letter queue
    /// (which would loop), or that their dead-letter queue could never store.
    pub dead_dropped: u64,
    /// Messages past their `expires` when pulled: acknowledged unseen.
    pub expired: u64,
    /// Messages whose `Herald-Header` values do not decode: terminated unseen.
    pub malformed: u64,
}

/// The cluster link's state and message counts since it started.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinkSample {
    pub connected: bool,
    /// Local messages taken in for other nodes.
    pub forwarded: u64,
    /// Local messages not sent (link down, buffer overflowed, subject too long).
    pub dropped: u64,
    /// Local messages too large for NATS once encoded.
    pub oversized: u64,
    /// Messages from other nodes handed to routing.
    pub delivered: u64,
    /// Messages on the cluster's subjects not written by Herald, skipped.
    pub malformed: u64,
    /// Messages from other nodes dropped: read faster than delivered.
    pub inbound_dropped: u64,
}

/// The whole exposition, in Prometheus text format 0.0.4.
pub fn render(stats: &Stats, outside: &Outside) -> String {
    let out = Exposition::default();
    let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let gauge = |gauge: &std::sync::atomic::AtomicI64| gauge.load(Ordering::Relaxed);
    let queues = &stats.queues;

    out.gauges(
        "herald_connections",
        "Open client connections, by transport.",
        "transport",
        stats.connections_by_transport(),
    );
    out.gauge(
        "herald_connections_limit",
        "limits.max_connections: client connections this node admits at most.",
        i64::try_from(outside.connection_limit).unwrap_or(i64::MAX),
    );
    out.counter(
        "herald_connections_accepted_total",
        "Client connections admitted.",
        get(&stats.connections_accepted),
    );
    out.counter(
        "herald_connections_refused_total",
        "Client connections refused by limits.max_connections or limits.max_connections_per_address.",
        get(&stats.connections_refused),
    );
    out.counters(
        "herald_sessions_opened_total",
        "Sessions started (connection established, before CONNECT), by transport.",
        "transport",
        TRANSPORT_LABELS
            .iter()
            .zip(&stats.sessions_opened)
            .map(|(t, n)| (*t, get(n))),
    );
    out.counters(
        "herald_sessions_closed_total",
        "Sessions ended, by reason.",
        "reason",
        CLOSE_LABELS.iter().map(|r| (*r, stats.closes(r))),
    );
    out.counter(
        "herald_heartbeat_timeouts_total",
        "Sessions closed because the client sent nothing within its heart-beat window.",
        stats.closes("heartbeat_timeout"),
    );
    out.counter(
        "herald_auth_failures_total",
        "CONNECTs refused for wrong credentials.",
        get(&stats.auth_failures),
    );
    out.counters(
        "herald_access_denied_total",
        "Frames refused by the access rules, by action.",
        "action",
        [
            ("send", get(&stats.access_denied_sends)),
            ("subscribe", get(&stats.access_denied_subscribes)),
        ],
    );
    out.counters(
        "herald_frames_received_total",
        "STOMP frames decoded from clients, by command.",
        "command",
        client_commands().map(|c| (c.as_str(), stats.frames_in(c))),
    );
    out.counters(
        "herald_frames_sent_total",
        "STOMP frames written to clients, by command.",
        "command",
        server_commands().map(|c| (c.as_str(), stats.frames_out(c))),
    );
    out.counter(
        "herald_received_bytes_total",
        "STOMP bytes read from clients (WebSocket framing excluded).",
        get(&stats.bytes_in),
    );
    out.counter(
        "herald_sent_bytes_total",
        "STOMP bytes written to clients, heart-beats included (WebSocket framing excluded).",
        get(&stats.bytes_out),
    );
    out.gauge(
        "herald_subscriptions",
        "Subscriptions of this node's sessions, topics and queues.",
        gauge(&stats.subscriptions),
    );
    out.gauges(
        "herald_destinations",
        "Topic destinations and patterns with a local subscription, and named queues.",
        "kind",
        [
            ("topic", gauge(&stats.topic_destinations)),
            ("queue", gauge(&queues.queues)),
        ],
    );
    out.counter(
        "herald_messages_published_total",
        "Messages routed: topic publishes (from local sessions and from other nodes) and \
         SENDs queues took.",
        get(&stats.messages_published),
    );
    out.counters(
        "herald_messages_delivered_total",
        "MESSAGE frames queued for subscribers, by destination kind.",
        "kind",
        [
            ("topic", get(&stats.messages_delivered)),
            ("queue", get(&queues.delivered)),
        ],
    );
    out.counters(
        "herald_messages_dropped_total",
        "Messages lost or refused, by reason.",
        "reason",
        [
            // Lost to a slow subscriber: older messages dropped under drop_oldest; under
            // close, the one its full outbox refused and those it held.
            ("slow_consumer", get(&stats.messages_dropped)),
            (
                "no_subscriber",
                get(&stats.topic_unheard) + get(&stats.user_messages_unrouted),
            ),
            ("expired", get(&stats.messages_expired)),
            (
                "overflow",
                get(&queues.overflow_dropped) + get(&queues.rejected_sends),
            ),
            ("access_denied", get(&stats.access_denied_sends)),
        ],
    );
    out.counters(
        "herald_offline_messages_total",
        "Messages of opted-in user destinations kept while the user was offline, by outcome.",
        "outcome",
        OFFLINE_LABELS.into_iter().zip(stats.offline()),
    );
    out.gauge(
        "herald_queue_messages",
        "Messages waiting in queues, all queues together.",
        gauge(&queues.depth),
    );
    out.gauge(
        "herald_queue_unacked",
        "Queue messages delivered and awaiting ACK or NACK.",
        gauge(&queues.unacked),
    );
    out.gauge(
        "herald_queue_bytes",
        "Memory charged to queues (queues.max_total_bytes bounds it).",
        gauge(&queues.bytes),
    );
    out.counter(
        "herald_queue_redeliveries_total",
        "Queue deliveries of messages delivered before (redelivered:true).",
        get(&queues.redelivered),
    );
    out.counter(
        "herald_queue_acks_total",
        "Queue messages acknowledged.",
        get(&queues.acked),
    );
    out.counter(
        "herald_queue_blocked_sends_total",
        "SENDs told to wait for room in a full queue (policy block).",
        get(&queues.blocked_sends),
    );
    out.counter(
        "herald_backpressure_pauses_total",
        "Times a publishing session stopped reading for a congested subscriber.",
        get(&stats.backpressure_pauses),
    );
    out.counter(
        "herald_backpressure_timeouts_total",
        "Subscribers closed as slow consumers after a publisher waited outbox.max_pause_ms.",
        get(&stats.backpressure_timeouts),
    );
    out.gauge(
        "herald_transaction_bytes",
        "Bytes held by open transactions.",
        gauge(&stats.transaction_bytes),
    );
    out.gauge(
        "herald_ready",
        "1 while /readyz answers 200.",
        i64::from(outside.ready),
    );
    cluster(&out, stats, outside.link.as_ref());
    queue_store(&out, outside.store.unwrap_or_default());
    out.histogram(&stats.fanout);
    out.histogram(&stats.write_latency);
    out.finish()
}

/// The link's state and traffic; a single node exports state `standalone` and zeros.
fn cluster(out: &Exposition, stats: &Stats, link: Option<&LinkSample>) {
    let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let state = match link {
        None => "standalone",
        Some(link) if link.connected => "connected",
        Some(_) => "disconnected",
    };
    out.gauges(
        "herald_cluster_link_state",
        "1 for the state the link to the other nodes is in.",
        "state",
        ["standalone", "connected", "disconnected"].map(|s| (s, i64::from(s == state))),
    );
    let link = link.copied().unwrap_or_default();
    out.counters(
        "herald_cluster_messages_total",
        "Messages crossing nodes: out (taken in for other nodes), in (from other nodes, \
         handed to routing).",
        "direction",
        [("out", link.forwarded), ("in", link.delivered)],
    );
    out.counters(
        "herald_cluster_messages_dropped_total",
        "Messages the link lost or refused, by reason.",
        "reason",
        [
            ("not_sent", link.dropped),
            (
                "oversized",
                link.oversized + get(&stats.cluster_oversized_refused),
            ),
            ("inbound_full", link.inbound_dropped),
            ("nats_slow_consumer", get(&stats.cluster_slow_consumer)),
            ("queue_full", get(&stats.cluster_queue_drops)),
            ("malformed", link.malformed),
        ],
    );
    out.counter(
        "herald_cluster_disconnects_total",
        "Times the NATS connection went down.",
        get(&stats.cluster_disconnects),
    );
    out.counter(
        "herald_cluster_connect_errors_total",
        "Failed attempts to reach a NATS server.",
        get(&stats.cluster_connect_errors),
    );
}

/// The JetStream queue store's traffic (zeros under the memory store).
fn queue_store(out: &Exposition, store: StoreCounts) {
    out.counters(
        "herald_queue_store_messages_total",
        "Queue messages through JetStream (queues.store = \"jetstream\"), by event: stored, \
         pulled (delivered to this node), redelivered (of those), acked, nacked, terminated, \
         dead_lettered, dead_dropped (dropped at their last delivery), expired (past expires \
         when pulled), malformed (undecodable headers, terminated).",
        "event",
        [
            ("stored", store.published),
            ("pulled", store.delivered),
            ("redelivered", store.redelivered),
            ("acked", store.acked),
            ("nacked", store.nacked),
            ("terminated", store.terminated),
            ("dead_lettered", store.dead_lettered),
            ("dead_dropped", store.dead_dropped),
            ("expired", store.expired),
            ("malformed", store.malformed),
        ],
    );
}

/// Commands clients send.
fn client_commands() -> impl Iterator<Item = Command> {
    Command::ALL.into_iter().filter(|c| !c.is_server())
}

fn server_commands() -> impl Iterator<Item = Command> {
    Command::ALL.into_iter().filter(|c| c.is_server())
}

/// One scrape's registry. Every name is registered once; a clash is a bug in this file
/// (the tests render the whole exposition).
#[derive(Default)]
struct Exposition {
    registry: Registry,
}

impl Exposition {
    fn register(&self, collector: Box<dyn Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::error!(error = %e, "metrics: a metric could not be registered");
        }
    }

    fn counter(&self, name: &str, help: &str, value: u64) {
        self.counters(name, help, "", [("", value)]);
    }

    /// A counter family with one label (none when `label` is empty).
    fn counters<'a>(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        let labels: &[&str] = if label.is_empty() { &[] } else { &[label] };
        let Ok(family) = IntCounterVec::new(Opts::new(name, help), labels) else {
            return tracing::error!(name, "metrics: invalid counter definition");
        };
        for (value_label, value) in values {
            let values: &[&str] = if label.is_empty() {
                &[]
            } else {
                &[value_label]
            };
            family.with_label_values(values).inc_by(value);
        }
        self.register(Box::new(family));
    }

    fn gauge(&self, name: &str, help: &str, value: i64) {
        self.gauges(name, help, "", [("", value)]);
    }

    fn gauges<'a>(
        &self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, i64)>,
    ) {
        let labels: &[&str] = if label.is_empty() { &[] } else { &[label] };
        let Ok(family) = IntGaugeVec::new(Opts::new(name, help), labels) else {
            return tracing::error!(name, "metrics: invalid gauge definition");
        };
        for (value_label, value) in values {
            let values: &[&str] = if label.is_empty() {
                &[]
            } else {
                &[value_label]
            };
            family.with_label_values(values).set(value);
        }
        self.register(Box::new(family));
    }

    fn histogram(&self, histogram: &prometheus::Histogram) {
        // A clone shares the live buckets.
        self.register(Box::new(histogram.clone()));
    }

    fn finish(self) -> String {
        let mut text = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut text) {
            tracing::error!(error = %e, "metrics: cannot encode the exposition");
        }
        String::from_utf8(text).unwrap_or_default()
    }
}

impl std::fmt::Debug for Exposition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exposition")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_indexes_follow_the_declaration_order() {
        for (i, command) in Command::ALL.into_iter().enumerate() {
            assert_eq!(command as usize, i, "{command:?}");
        }
    }

    #[test]
    fn every_family_renders_once_with_help_and_type() {
        let stats = Stats::default();
        stats.record_publish(3, 0, false);
        let text = render(&stats, &Outside::default());
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert!(names.len() >= 30, "{text}");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{text}");
        assert!(names.iter().all(|n| n.starts_with("herald_")), "{names:?}");
        assert!(
            text.contains("herald_fanout_subscribers_bucket{le=\"5\"} 1"),
            "{text}"
        );
        assert!(text.contains("herald_cluster_link_state{state=\"standalone\"} 1"));
    }

    #[test]
    fn written_batches_are_tallied_by_command() {
        let frames: [&[u8]; 4] = [b"MESSAGE\n\n\0", b"\n", b"RECEIPT\n\n\0", b"MESSAGE\n\n\0"];
        let written = super::super::Written::of(frames.into_iter());
        let stats = Stats::default();
        stats.record_written(&written, None);
        assert_eq!(stats.frames_out(Command::Message), 2);
        assert_eq!(stats.frames_out(Command::Receipt), 1);
        assert_eq!(stats.bytes_out.load(Ordering::Relaxed), 31);
    }
}
