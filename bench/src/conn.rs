//! One lean client connection: a WebSocket (4 KiB read buffer) or a plain TCP stream, a
//! `BytesMut` of received bytes and a STOMP [`Decoder`].

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use herald_protocol::{Command, Decoded, Decoder, Frame, ParseOptions, Version, encode_to_bytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::target::{Endpoint, Transport};

/// Read buffer of a connection: enough for many small frames, small enough for thousands.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes fed before tungstenite writes without a flush: lets a publisher batch its SENDs.
/// Allocated only as used, so subscribers that write little keep it small.
const WRITE_BUFFER: usize = 64 * 1024;
/// Bound on a WebSocket connection's unsent bytes.
const MAX_WRITE_BUFFER: usize = 4 * 1024 * 1024;
/// How long a close may take before the socket is simply dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Io {
    Ws(Box<WebSocketStream<TcpStream>>),
    Tcp { stream: TcpStream, out: BytesMut },
}

#[derive(Debug)]
pub struct Conn {
    io: Io,
    buf: BytesMut,
    decoder: Decoder,
}

impl Conn {
    /// TCP connect (from the connection's source address), WebSocket upgrade for ws://, then
    /// CONNECT, returning once CONNECTED has arrived.
    pub async fn open(endpoint: &Endpoint, index: usize) -> Result<Conn, String> {
        let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        if let Some(source) = endpoint.source_addr(index) {
            socket
                .bind(source)
                .map_err(|e| format!("bind {source}: {e}"))?;
        }
        let stream = socket
            .connect(endpoint.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
        let _ = stream.set_nodelay(true);
        let io = match endpoint.url.transport {
            Transport::Tcp => Io::Tcp {
                stream,
                out: BytesMut::new(),
            },
            Transport::Ws => {
                let mut request = endpoint
                    .url
                    .ws_url()
                    .into_client_request()
                    .map_err(|e| format!("websocket request: {e}"))?;
                request.headers_mut().insert(
                    "Sec-WebSocket-Protocol",
                    HeaderValue::from_static("v12.stomp"),
                );
                let config = WebSocketConfig::default()
                    .read_buffer_size(READ_BUFFER)
                    .write_buffer_size(WRITE_BUFFER)
                    .max_write_buffer_size(MAX_WRITE_BUFFER);
                let (ws, _) =
                    tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                        .await
                        .map_err(|e| format!("websocket handshake: {e}"))?;
                Io::Ws(Box::new(ws))
            }
        };
        let mut conn = Conn {
            io,
            buf: BytesMut::new(),
            decoder: Decoder::new(ParseOptions::default()),
        };
        conn.send(endpoint.connect_frame.clone())
            .await
            .map_err(|e| format!("sending CONNECT: {e}"))?;
        match conn.next_frame().await? {
            Some(frame) if frame.command == Command::Connected => Ok(conn),
            Some(frame) => Err(unexpected("CONNECTED", &frame)),
            None => Err("closed before CONNECTED".to_owned()),
        }
    }

    /// SUBSCRIBE with a receipt, returning once the RECEIPT has arrived.
    pub async fn subscribe(&mut self, destination: &str, id: &str) -> Result<(), String> {
        self.subscribe_with(destination, id, "auto", None).await
    }

    /// SUBSCRIBE with an ack mode and, if given, a `prefetch-count` header (the name both
    /// Herald and RabbitMQ read), returning once the RECEIPT has arrived.
    pub async fn subscribe_with(
        &mut self,
        destination: &str,
        id: &str,
        ack: &str,
        prefetch: Option<u64>,
    ) -> Result<(), String> {
        let mut frame = Frame::new(Command::Subscribe)
            .header("id", id)
            .header("destination", destination)
            .header("ack", ack);
        if let Some(prefetch) = prefetch {
            frame = frame.header("prefetch-count", &prefetch.to_string());
        }
        let frame = frame.header("receipt", "sub");
        self.send(encode_to_bytes(&frame, Version::V1_2))
            .await
            .map_err(|e| format!("sending SUBSCRIBE: {e}"))?;
        self.expect_receipt("sub").await
    }

    /// DISCONNECT with a receipt: once it arrives, the broker has handled every earlier frame.
    pub async fn disconnect(&mut self) -> Result<(), String> {
        let frame = Frame::new(Command::Disconnect).header("receipt", "bye");
        self.send(encode_to_bytes(&frame, Version::V1_2))
            .await
            .map_err(|e| format!("sending DISCONNECT: {e}"))?;
        self.expect_receipt("bye").await
    }

    /// Reads until the RECEIPT for `id`; other frames are skipped, ERROR fails.
    async fn expect_receipt(&mut self, id: &str) -> Result<(), String> {
        loop {
            match self.next_frame().await? {
                Some(f)
                    if f.command == Command::Receipt && f.headers.get("receipt-id") == Some(id) =>
                {
                    return Ok(());
                }
                Some(f) if f.command == Command::Error => return Err(unexpected("RECEIPT", &f)),
                Some(_) => {}
                None => return Err(format!("closed before RECEIPT {id}")),
            }
        }
    }

    /// The next frame; `None` once the peer has closed. Heart-beats are skipped. Cancel-safe:
    /// everything read so far stays in the connection.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            if let Some(frame) = self.buffered_frame()? {
                return Ok(Some(frame));
            }
            if !self.read_more().await? {
                return Ok(None);
            }
        }
    }

    /// The next frame already in the buffer, without reading; heart-beats are skipped.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, String> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Decoded::Frame(frame))) => return Ok(Some(frame)),
                Ok(Some(Decoded::HeartBeat)) => continue,
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("bad frame from broker: {e}")),
            }
        }
    }

    /// Appends what the socket has to the buffer; `false` at end of stream. Cancel-safe.
    pub async fn read_more(&mut self) -> Result<bool, String> {
        match &mut self.io {
            Io::Tcp { stream, .. } => {
                if self.buf.capacity() - self.buf.len() < READ_BUFFER / 4 {
                    self.buf.reserve(READ_BUFFER);
                }
                let n = stream
                    .read_buf(&mut self.buf)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                Ok(n > 0)
            }
            Io::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(false),
                    Some(Ok(Message::Text(text))) => {
                        append(&mut self.buf, text.as_bytes());
                        return Ok(true);
                    }
                    Some(Ok(Message::Binary(data))) => {
                        append(&mut self.buf, &data);
                        return Ok(true);
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                    Some(Err(e)) => return Err(format!("websocket read: {e}")),
                }
            },
        }
    }

    /// Queues an encoded frame without flushing.
    pub async fn feed(&mut self, frame: Bytes) -> std::io::Result<()> {
        match &mut self.io {
            Io::Tcp { out, .. } => {
                out.extend_from_slice(&frame);
                Ok(())
            }
            Io::Ws(ws) => {
                let message = match Utf8Bytes::try_from(frame.clone()) {
                    Ok(text) => Message::Text(text),
                    Err(_) => Message::Binary(frame),
                };
                ws.feed(message).await.map_err(std::io::Error::other)
            }
        }
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.io {
            Io::Tcp { stream, out } => {
                stream.write_all(out).await?;
                out.clear();
                Ok(())
            }
            Io::Ws(ws) => ws.flush().await.map_err(std::io::Error::other),
        }
    }

    pub async fn send(&mut self, frame: Bytes) -> std::io::Result<()> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Closes politely (WebSocket close handshake or TCP shutdown), bounded in time.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            match &mut self.io {
                Io::Tcp { stream, .. } => {
                    let _ = stream.shutdown().await;
                }
                Io::Ws(ws) => {
                    // The inherent close (with a close frame), not `SinkExt::close` on the Box.
                    let _ = WebSocketStream::close(ws, None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                }
            }
        })
        .await;
    }
}

/// Appends a WebSocket message. Reserving at least 1 KiB lets the buffer reclaim its own
/// allocation once earlier frames are dropped, instead of allocating per message.
fn append(buf: &mut BytesMut, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        buf.reserve(data.len().max(1024));
    }
    buf.extend_from_slice(data);
}

fn unexpected(wanted: &str, frame: &Frame) -> String {
    let mut text = format!("expected {wanted}, got {}", frame.command);
    if let Some(message) = frame.headers.get("message") {
        text.push_str(": ");
        text.push_str(message);
    }
    text
}
