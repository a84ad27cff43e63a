//! Transports: how a session's frames travel. The session code is the same for WebSocket and
//! TCP; each transport implements [`FrameIo`], over a plain or TLS [`stream::Stream`].

pub mod proxy;
pub mod static_files;
pub mod stream;
pub mod tcp;
pub mod tls;
pub mod ws;

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;

use crate::outbox::OutFrame;

/// How a connection ends, for transports that can say so (WebSocket close codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseKind {
    /// The session ended normally, or after an ERROR frame that says why.
    Normal,
    /// The server is shutting down (WebSocket 1001).
    GoingAway,
}

/// A transport-level unit of input (a WebSocket message) passed its size limit. Returned by
/// [`FrameIo::read`] inside an `io::Error`, so the session can answer with an ERROR frame
/// instead of treating it as a broken connection.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputTooLarge(pub String);

impl InputTooLarge {
    /// The limit message, if `error` is this error.
    pub fn find(error: &io::Error) -> Option<&InputTooLarge> {
        error.get_ref().and_then(|inner| inner.downcast_ref())
    }
}

/// One connection's byte stream as the session sees it.
pub trait FrameIo: Send {
    /// Waits for input and appends any STOMP bytes to `buf`. `Ok(false)` is the end of the
    /// stream. Input that carries no STOMP bytes (a WebSocket ping) returns `Ok(true)` with
    /// nothing appended: it still counts as life.
    fn read(&mut self, buf: &mut BytesMut) -> impl Future<Output = io::Result<bool>> + Send;

    /// Queues one encoded frame (or a heart-beat EOL) for writing.
    fn feed(&mut self, frame: OutFrame) -> impl Future<Output = io::Result<()>> + Send;

    /// Writes everything fed so far.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Ends the connection after what was flushed, then waits up to `linger` for the peer
    /// to close its side, so that the last frame is not lost to a reset.
    fn close(
        &mut self,
        kind: CloseKind,
        linger: Duration,
    ) -> impl Future<Output = io::Result<()>> + Send;
}
