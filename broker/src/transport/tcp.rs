//! STOMP over TCP, plain or TLS (`stomp+ssl`).

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::stream::Stream;
use super::{CloseKind, FrameIo};
use crate::outbox::OutFrame;

/// Bytes reserved for a read; an idle connection holds no read buffer at all.
const READ_CHUNK: usize = 4096;

#[derive(Debug)]
pub struct TcpIo {
    stream: Stream,
    /// Frames fed since the last flush: written with one syscall per batch.
    pending: BytesMut,
}

impl TcpIo {
    /// `stream` has Nagle's algorithm off (batching is done by `flush`).
    pub fn new(stream: Stream) -> TcpIo {
        TcpIo {
            stream,
            pending: BytesMut::new(),
        }
    }
}

impl FrameIo for TcpIo {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        let Stream::Plain(stream) = &mut self.stream else {
            // TLS buffers records itself; the idle-buffer saving below does not apply.
            if buf.capacity() - buf.len() < READ_CHUNK / 4 {
                buf.reserve(READ_CHUNK);
            }
            return Ok(self.stream.read_buf(buf).await? > 0);
        };
        // Wait for readability before reserving, so idle connections keep no buffer.
        stream.readable().await?;
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match stream.try_read_buf(buf) {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(e),
        }
    }

    async fn feed(&mut self, frame: OutFrame) -> io::Result<()> {
        self.pending.extend_from_slice(&frame.bytes);
        Ok(())
    }

    /// Cancel-safe: bytes leave `pending` only once written, so a flush interrupted (a slow
    /// consumer being closed) resumes where it stopped and the stream stays framed.
    async fn flush(&mut self) -> io::Result<()> {
        while !self.pending.is_empty() {
            let written = self.stream.write(&self.pending).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.pending.advance(written);
        }
        // Let go of a large batch's buffer rather than keep it per idle connection.
        self.pending = BytesMut::new();
        Ok(())
    }

    async fn close(&mut self, _kind: CloseKind, linger: Duration) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await?;
        // Read until the peer closes (or the linger ends): closing with unread input would
        // reset the connection and could destroy the ERROR or RECEIPT just sent.
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(linger, async {
            while let Ok(n) = self.stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }
}
