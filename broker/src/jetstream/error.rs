//! What can go wrong at start (`OpenError`) and per operation (`StoreError`).

/// Why the queue store could not start. Each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the NATS server has no JetStream, which queues.store = \"jetstream\" needs: start \
         nats-server with -js (or a `jetstream {{}}` block in its configuration)"
    )]
    NoJetStream,
    #[error(
        "JetStream did not answer within queues.jetstream.request_timeout_ms ({0} ms); is a \
         NATS server reachable?"
    )]
    TimedOut(u64),
    /// JetStream knows fewer servers than the stream's replicas.
    #[error(
        "JetStream cannot place queues.jetstream.replicas = {replicas} copies (fewer servers \
         with JetStream than that in the cluster): {message}"
    )]
    NoPeers { replicas: usize, message: String },
    /// Still out of reach or without a leader when `start_wait_ms` ran out.
    #[error(
        "JetStream was not ready within queues.jetstream.start_wait_ms ({waited_ms} ms): {last}"
    )]
    NotReady {
        waited_ms: u64,
        last: Box<OpenError>,
    },
    /// JetStream answers "temporarily unavailable": its servers have no leader.
    #[error(
        "JetStream is unavailable: its servers have no leader (are most of them up and \
         routed to each other?)"
    )]
    NoLeader,
    /// The stream exists with a setting that cannot be changed in place.
    #[error(
        "stream {stream} exists with {field} = {existing}, but Herald needs {wanted}; delete \
         it (nats stream rm {stream}) or name another with queues.jetstream.stream"
    )]
    Incompatible {
        stream: String,
        field: &'static str,
        existing: String,
        wanted: String,
    },
    #[error("stream {stream}: {message}")]
    JetStream { stream: String, message: String },
}

impl OpenError {
    /// Whether asking again later may succeed: JetStream out of reach, electing a leader, or
    /// still meeting its servers.
    pub(super) fn may_pass(&self) -> bool {
        matches!(
            self,
            OpenError::TimedOut(_) | OpenError::NoLeader | OpenError::NoPeers { .. }
        )
    }
}

/// Why one publish, pull, acknowledgement or consumer creation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The queue's subject would pass the longest Herald uses.
    #[error("queue name too long for the store ({len} bytes as a NATS subject; at most {max})")]
    QueueNameTooLong { len: usize, max: usize },
    /// The STOMP headers, as NATS headers, pass what JetStream stores with a message.
    #[error("headers too large for the queue store ({size} bytes as NATS headers; at most {max})")]
    HeadersTooLarge { size: usize, max: usize },
    /// Headers and body pass the NATS server's `max_payload`.
    #[error("message too large for the NATS server's max_payload")]
    TooLarge,
    /// The stream is at `max_bytes` or `max_messages` (nothing stored is dropped for it).
    #[error("queue store full (queues.jetstream.max_bytes or max_messages): {0}")]
    Full(String),
    /// No answer within `request_timeout_ms` (NATS unreachable, or JetStream busy).
    #[error("JetStream did not answer in time")]
    TimedOut,
    /// The queue's consumer exists for another subject (a consumer name collision, or a
    /// consumer made by something else).
    #[error("consumer {consumer}: {message}")]
    Consumer { consumer: String, message: String },
    #[error("JetStream: {0}")]
    JetStream(String),
}
