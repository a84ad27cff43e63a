//! Why a session ended: one type used by the log line, the statistics and the ERROR text.

use std::fmt;

/// The end of a session.
#[derive(Debug)]
pub enum CloseReason {
    /// DISCONNECT received.
    Disconnect,
    /// The peer closed the connection.
    PeerClosed,
    /// Reading or writing failed.
    Io(std::io::Error),
    /// The peer broke the protocol or a limit: ERROR, then close.
    Protocol(ErrorReply),
    /// No CONNECT within the configured time.
    ConnectTimeout,
    /// No input within the heart-beat read window.
    HeartbeatTimeout,
    /// The outbound queue passed its byte bound.
    SlowConsumer,
    /// A write made no progress for the configured time.
    WriteStalled,
    /// The server is shutting down.
    Shutdown,
    /// A bug: the session's task panicked.
    Internal,
    /// The operator closed the user's sessions (HTTP API), for this reason.
    Kicked(String),
}

/// What an ERROR frame says: a short `message`, a detail for the body, and the `receipt-id`
/// when the failing frame asked for a receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub message: String,
    pub detail: String,
    pub receipt: Option<String>,
    /// Extra headers, such as `version` when no protocol version is common.
    pub headers: Vec<(&'static str, String)>,
}

impl ErrorReply {
    pub fn new(message: impl Into<String>, detail: impl Into<String>) -> ErrorReply {
        ErrorReply {
            message: message.into(),
            detail: detail.into(),
            receipt: None,
            headers: Vec::new(),
        }
    }

    /// The same error answering a frame that carried `receipt`.
    pub fn for_receipt(mut self, receipt: Option<&str>) -> ErrorReply {
        self.receipt = receipt.map(str::to_owned);
        self
    }
}

impl CloseReason {
    /// A stable label for statistics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            CloseReason::Disconnect => "disconnect",
            CloseReason::PeerClosed => "peer_closed",
            CloseReason::Io(_) => "io_error",
            CloseReason::Protocol(_) => "protocol_error",
            CloseReason::ConnectTimeout => "connect_timeout",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::WriteStalled => "write_stalled",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Internal => "internal_error",
            CloseReason::Kicked(_) => "kicked",
        }
    }

    /// The ERROR frame the client should get before the connection closes, if any.
    pub fn error_reply(&self) -> Option<ErrorReply> {
        let (message, detail) = match self {
            CloseReason::Protocol(reply) => return Some(reply.clone()),
            CloseReason::Kicked(reason) => {
                return Some(ErrorReply::new("disconnected", reason.clone()));
            }
            CloseReason::ConnectTimeout => ("connect timeout", "no CONNECT frame in time"),
            CloseReason::HeartbeatTimeout => (
                "heart-beat timeout",
                "nothing received within the negotiated heart-beat window",
            ),
            CloseReason::SlowConsumer => (
                "slow consumer",
                "the outbound queue for this connection passed its bound, or stayed above its high-water mark longer than outbox.max_pause_ms",
            ),
            CloseReason::Shutdown => (
                "server shutting down",
                "the server is shutting down; messages already routed to this connection were sent first; reconnect and retry",
            ),
            CloseReason::Internal => (
                "internal error",
                "the server hit a bug handling this connection; it has been logged",
            ),
            _ => return None,
        };
        Some(ErrorReply::new(message, detail))
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Io(e) => write!(f, "i/o error: {e}"),
            CloseReason::Protocol(reply) => write!(f, "protocol error: {}", reply.message),
            other => f.write_str(other.label()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CLOSE_LABELS;

    /// Statistics count a close only under a label they know: every reason has its own.
    #[test]
    fn every_reason_has_a_counted_label() {
        let reasons = [
            CloseReason::Disconnect,
            CloseReason::PeerClosed,
            CloseReason::Io(std::io::Error::other("reset")),
            CloseReason::Protocol(ErrorReply::new("bad frame", "")),
            CloseReason::ConnectTimeout,
            CloseReason::HeartbeatTimeout,
            CloseReason::SlowConsumer,
            CloseReason::WriteStalled,
            CloseReason::Shutdown,
            CloseReason::Internal,
            CloseReason::Kicked("banned".into()),
        ];
        let mut labels: Vec<&str> = reasons.iter().map(CloseReason::label).collect();
        labels.sort_unstable();
        labels.dedup();
        let mut counted = CLOSE_LABELS.to_vec();
        counted.sort_unstable();
        assert_eq!(labels, counted);
    }
}
