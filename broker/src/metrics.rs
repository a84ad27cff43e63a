//! Every counter the broker keeps, defined in one place. The operations work exports them to
//! Prometheus; until then they are readable in-process (and by tests).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::routing::topic::Fanout;
use crate::session::close::CloseReason;

/// Close reasons in [`CloseReason::label`] order of [`CLOSE_LABELS`].
pub const CLOSE_LABELS: [&str; 9] = [
    "disconnect",
    "peer_closed",
    "io_error",
    "protocol_error",
    "connect_timeout",
    "heartbeat_timeout",
    "slow_consumer",
    "write_stalled",
    "shutdown",
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
    closes: [AtomicU64; CLOSE_LABELS.len()],
}

impl Stats {
    pub fn record_publish(&self, fanout: &Fanout) {
        self.messages_published.fetch_add(1, Ordering::Relaxed);
        self.messages_delivered
            .fetch_add(fanout.delivered as u64, Ordering::Relaxed);
        self.messages_dropped
            .fetch_add(fanout.dropped as u64, Ordering::Relaxed);
    }

    pub fn record_close(&self, reason: &CloseReason) {
        let label = reason.label();
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
