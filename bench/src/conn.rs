//! One lean client connection: a plain TCP stream, or our own minimal WebSocket client
//! ([`crate::wsframe`]) on one, with a `BytesMut` of received STOMP bytes. Full frames come
//! from a STOMP [`Decoder`] ([`Conn::next_frame`]); subscribers that only count MESSAGE frames
//! use [`Conn::next_delivery`], which skips the header parse for them.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use herald_protocol::{
    Command, Decoded, Decoder, Frame, Limits, ParseOptions, Version, encode_to_bytes,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::stamp;
use crate::target::{Endpoint, Transport, Url};
use crate::wsframe::{self, Event, MaskRng, Unframer};

/// Read buffer of a connection: enough for many small frames, small enough for thousands.
const READ_BUFFER: usize = 4 * 1024;
/// Bytes fed before `feed` writes without waiting for a flush: lets a publisher batch its
/// SENDs while bounding what a connection holds. Allocated only as used.
const WRITE_BUFFER: usize = 64 * 1024;
/// How long a close may take before the socket is simply dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// What [`Conn::next_delivery`] hands a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// A MESSAGE frame, found without parsing its headers; `stamp` is the send timestamp at
    /// the start of its body ([`stamp::read`]), if it has one.
    Message { stamp: Option<u64> },
    /// An ERROR frame; `message` is its `message` header (empty without one).
    Error { message: String },
    /// Any other frame (RECEIPT, CONNECTED, ...), decoded and dropped.
    Other,
}

/// The WebSocket state of a ws:// connection.
#[derive(Debug)]
struct Ws {
    /// Framed bytes read from the socket and not yet unframed: at most a partial frame header
    /// or control frame between reads, since data payloads go straight to the STOMP buffer.
    raw: BytesMut,
    unframer: Unframer,
    rng: MaskRng,
    /// The server's close frame has arrived: the stream has ended.
    closed: bool,
    /// Our close frame is queued (or written).
    close_sent: bool,
    /// A pong or close reply waits in `out`: written as soon as the socket takes it, without
    /// waiting for the owner's next flush.
    control_pending: bool,
}

impl Ws {
    /// Queues a control frame in `out`.
    fn queue_control(&mut self, out: &mut BytesMut, opcode: u8, payload: &[u8]) {
        wsframe::encode_client_frame(out, opcode, payload, self.rng.next_key());
        self.control_pending = true;
    }

    fn queue_close(&mut self, out: &mut BytesMut) {
        if !self.close_sent {
            self.close_sent = true;
            self.queue_control(out, wsframe::OP_CLOSE, &wsframe::CLOSE_NORMAL);
        }
    }
}

#[derive(Debug)]
pub struct Conn {
    stream: TcpStream,
    /// `None` for tcp://.
    ws: Option<Ws>,
    /// Fed and not yet written: STOMP frames, framed and masked for WebSocket.
    out: BytesMut,
    /// Received STOMP bytes.
    buf: BytesMut,
    stomp: Stomp,
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
        let mut stream = socket
            .connect(endpoint.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", endpoint.addr))?;
        let _ = stream.set_nodelay(true);
        let ws = match endpoint.url.transport {
            Transport::Tcp => None,
            Transport::Ws => {
                let mut raw = BytesMut::new();
                wsframe::handshake(
                    &mut stream,
                    &host_header(&endpoint.url),
                    &endpoint.url.path,
                    &mut raw,
                )
                .await
                .map_err(|e| format!("{e} ({})", endpoint.url.ws_url()))?;
                let seed = stamp::now_ns() ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                Some(Ws {
                    raw,
                    unframer: Unframer::default(),
                    rng: MaskRng::new(seed),
                    closed: false,
                    close_sent: false,
                    control_pending: false,
                })
            }
        };
        let mut conn = Conn {
            stream,
            ws,
            out: BytesMut::new(),
            buf: BytesMut::new(),
            stomp: Stomp::new(),
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
        self.stomp.frame(&mut self.buf)
    }

    /// The next delivery for a subscriber that counts messages; `None` once the peer has
    /// closed. MESSAGE frames are recognised by their command line, framed by `content-length`
    /// (or the NUL) without parsing any other header, and reduced to their send timestamp;
    /// anything else goes through the full decoder. Heart-beats are skipped. Cancel-safe, and
    /// may be mixed freely with [`Conn::next_frame`] on the same connection.
    pub async fn next_delivery(&mut self) -> Result<Option<Delivery>, String> {
        loop {
            if let Some(delivery) = self.buffered_delivery()? {
                return Ok(Some(delivery));
            }
            if !self.read_more().await? {
                return Ok(None);
            }
        }
    }

    /// The next delivery already in the buffer, without reading (see [`Conn::next_delivery`]).
    pub fn buffered_delivery(&mut self) -> Result<Option<Delivery>, String> {
        self.stomp.delivery(&mut self.buf)
    }

    /// Appends what the socket has to the buffer (unframed, for WebSocket); `false` at end of
    /// stream. Cancel-safe: the only await is one read into a buffer the connection keeps.
    pub async fn read_more(&mut self) -> Result<bool, String> {
        let Conn {
            stream,
            ws,
            out,
            buf,
            ..
        } = self;
        let Some(ws) = ws else {
            if buf.capacity() - buf.len() < READ_BUFFER / 4 {
                buf.reserve(READ_BUFFER);
            }
            let n = stream
                .read_buf(buf)
                .await
                .map_err(|e| format!("read: {e}"))?;
            return Ok(n > 0);
        };
        loop {
            if ws.closed {
                return Ok(false);
            }
            let before = buf.len();
            loop {
                match ws.unframer.unframe(&mut ws.raw, buf) {
                    Ok(Event::NeedMore) => break,
                    Ok(Event::Ping(payload)) => ws.queue_control(out, wsframe::OP_PONG, &payload),
                    Ok(Event::Pong) => {}
                    Ok(Event::Close) => {
                        ws.closed = true;
                        ws.queue_close(out);
                        break;
                    }
                    Err(e) => return Err(format!("websocket read: {e}")),
                }
            }
            if ws.control_pending {
                // Without blocking: what the socket does not take now goes with the next flush.
                match stream.try_write(out) {
                    Ok(n) => out.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("websocket write: {e}")),
                }
                ws.control_pending = !out.is_empty();
            }
            if buf.len() > before {
                return Ok(true);
            }
            if ws.closed {
                return Ok(false);
            }
            if ws.raw.capacity() - ws.raw.len() < READ_BUFFER / 4 {
                ws.raw.reserve(READ_BUFFER);
            }
            let n = stream
                .read_buf(&mut ws.raw)
                .await
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                return Ok(false);
            }
        }
    }

    /// Queues an encoded frame without flushing (unless [`WRITE_BUFFER`] bytes are queued).
    /// Over WebSocket it goes as one text message if it is UTF-8, else as a binary one.
    pub async fn feed(&mut self, frame: Bytes) -> io::Result<()> {
        match &mut self.ws {
            None => self.out.extend_from_slice(&frame),
            Some(ws) => {
                let opcode = if std::str::from_utf8(&frame).is_ok() {
                    wsframe::OP_TEXT
                } else {
                    wsframe::OP_BINARY
                };
                wsframe::encode_client_frame(&mut self.out, opcode, &frame, ws.rng.next_key());
            }
        }
        if self.out.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    /// Writes everything queued. Cancel-safe: what was written is gone from the queue.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            if self.stream.write_buf(&mut self.out).await? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        if let Some(ws) = &mut self.ws {
            ws.control_pending = false;
        }
        Ok(())
    }

    pub async fn send(&mut self, frame: Bytes) -> io::Result<()> {
        self.feed(frame).await?;
        self.flush().await
    }

    /// Closes politely (WebSocket close handshake or TCP shutdown), bounded in time.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(CLOSE_LINGER, async {
            let Some(ws) = &mut self.ws else {
                let _ = self.stream.shutdown().await;
                return;
            };
            ws.queue_close(&mut self.out);
            if self.flush().await.is_err() {
                return;
            }
            // Until the server's close frame (or the end of the stream); data is dropped.
            while let Ok(true) = self.read_more().await {
                self.buf.clear();
            }
        })
        .await;
    }
}

/// The Host header for a ws:// URL: host and port, an IPv6 address in brackets.
fn host_header(url: &Url) -> String {
    if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    }
}

fn unexpected(wanted: &str, frame: &Frame) -> String {
    let mut text = format!("expected {wanted}, got {}", frame.command);
    if let Some(message) = frame.headers.get("message") {
        text.push_str(": ");
        text.push_str(message);
    }
    text
}

/// The STOMP side of a connection's input: full frames through the [`Decoder`], deliveries
/// through a lean scan of MESSAGE frames, both taking from the front of one buffer.
#[derive(Debug)]
struct Stomp {
    decoder: Decoder,
    /// Where an unfinished lean scan of the frame at the front of the buffer stands.
    lean: Resume,
    /// The decoder has looked at part of the frame at the front of the buffer (it returned
    /// `None`) and remembers how far it got; if the lean scan takes that frame instead, the
    /// decoder must forget.
    decoder_partial: bool,
}

impl Stomp {
    fn new() -> Stomp {
        Stomp {
            decoder: Decoder::new(ParseOptions::default()),
            lean: Resume::default(),
            decoder_partial: false,
        }
    }

    /// The next full frame in `buf`; heart-beats are skipped.
    fn frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, String> {
        loop {
            let decoded = self.decoder.decode(buf);
            self.decoder_partial = matches!(decoded, Ok(None));
            if !self.decoder_partial {
                // The front of the buffer is gone (or the stream is broken): no scan to resume.
                self.lean = Resume::default();
            }
            match decoded {
                Ok(Some(Decoded::Frame(frame))) => return Ok(Some(frame)),
                Ok(Some(Decoded::HeartBeat)) => continue,
                Ok(None) => return Ok(None),
                Err(e) => return Err(format!("bad frame from broker: {e}")),
            }
        }
    }

    /// The next delivery in `buf`; heart-beats are skipped.
    fn delivery(&mut self, buf: &mut BytesMut) -> Result<Option<Delivery>, String> {
        loop {
            if buf.len() < self.lean.needed {
                return Ok(None);
            }
            match lean_scan(buf, self.lean, &self.decoder.options().limits) {
                Scan::Message { stamp, consumed } => {
                    buf.advance(consumed);
                    self.took_front();
                    return Ok(Some(Delivery::Message { stamp }));
                }
                Scan::HeartBeat(consumed) => {
                    buf.advance(consumed);
                    self.took_front();
                }
                Scan::Incomplete(resume) => {
                    self.lean = resume;
                    return Ok(None);
                }
                Scan::Full => {
                    return Ok(self.frame(buf)?.map(|frame| match frame.command {
                        Command::Message => Delivery::Message {
                            stamp: stamp::read(&frame.body),
                        },
                        Command::Error => Delivery::Error {
                            message: frame.headers.get("message").unwrap_or("").to_owned(),
                        },
                        _ => Delivery::Other,
                    }));
                }
            }
        }
    }

    /// The lean scan took the front of the buffer.
    fn took_front(&mut self) {
        self.lean = Resume::default();
        if self.decoder_partial {
            let options = *self.decoder.options();
            self.decoder.set_options(options);
            self.decoder_partial = false;
        }
    }
}

/// Where an unfinished lean scan stands, so a frame arriving in many reads is not rescanned
/// from its start each time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resume {
    /// Scanning again is pointless before the buffer holds this many bytes.
    needed: usize,
    /// The headers are done and the body (without `content-length`) runs to a NUL not seen
    /// yet: where the body starts and how far it has been searched.
    body: Option<(usize, usize)>,
}

impl Resume {
    fn need(needed: usize) -> Scan {
        Scan::Incomplete(Resume { needed, body: None })
    }
}

/// The outcome of [`lean_scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// A MESSAGE frame of `consumed` bytes (its NUL included).
    Message {
        stamp: Option<u64>,
        consumed: usize,
    },
    /// Heart-beat EOLs.
    HeartBeat(usize),
    Incomplete(Resume),
    /// Not a MESSAGE frame, or one the full decoder must judge (and report).
    Full,
}

/// Looks at the frame at the front of `input` the cheap way: a MESSAGE command line, header
/// lines only searched for their end and for `content-length`, the body taken by that length
/// or up to the NUL. Nothing is checked that a subscriber's count does not need; anything
/// unusual (a bad `content-length`, no NUL after the body, a size over `limits`) is left to
/// the full decoder, which reports it.
fn lean_scan(input: &[u8], resume: Resume, limits: &Limits) -> Scan {
    if let Some((body_start, searched_to)) = resume.body {
        return body_to_nul(input, body_start, searched_to, limits);
    }
    const COMMAND: &[u8] = b"MESSAGE";
    let mut at = match input {
        [] => return Resume::need(1),
        [b'\n', ..] => return Scan::HeartBeat(1),
        [b'\r'] => return Resume::need(2),
        [b'\r', b'\n', ..] => return Scan::HeartBeat(2),
        [b'\r', ..] => return Scan::Full,
        _ if input.len() < COMMAND.len() => {
            return if COMMAND.starts_with(input) {
                Resume::need(input.len() + 1)
            } else {
                Scan::Full
            };
        }
        _ if !input.starts_with(COMMAND) => return Scan::Full,
        [_, _, _, _, _, _, _] => return Resume::need(8),
        [_, _, _, _, _, _, _, b'\n', ..] => 8,
        [_, _, _, _, _, _, _, b'\r'] => return Resume::need(9),
        [_, _, _, _, _, _, _, b'\r', b'\n', ..] => 9,
        _ => return Scan::Full,
    };
    let mut content_length = None;
    loop {
        let Some(eol) = find_byte(&input[at..], b'\n') else {
            if input.len() - at > limits.max_header_line_bytes
                || input.len() > limits.max_frame_bytes
            {
                return Scan::Full;
            }
            return Resume::need(input.len() + 1);
        };
        let line = &input[at..at + eol];
        at += eol + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if content_length.is_none() {
            if let Some(value) = line.strip_prefix(b"content-length:") {
                match parse_length(value) {
                    Some(length) => content_length = Some(length),
                    None => return Scan::Full,
                }
            }
        }
    }
    match content_length {
        None => body_to_nul(input, at, at, limits),
        Some(length) if length > limits.max_body_bytes => Scan::Full,
        Some(length) => {
            let end = at + length;
            match input.get(end) {
                None => Resume::need(end + 1),
                Some(0) => Scan::Message {
                    stamp: stamp::read(&input[at..end]),
                    consumed: end + 1,
                },
                Some(_) => Scan::Full,
            }
        }
    }
}

/// A body without `content-length`, from `body_start` to the first NUL, which is not before
/// `searched_to`.
fn body_to_nul(input: &[u8], body_start: usize, searched_to: usize, limits: &Limits) -> Scan {
    match find_byte(&input[searched_to..], 0) {
        Some(nul) => Scan::Message {
            stamp: stamp::read(&input[body_start..searched_to + nul]),
            consumed: searched_to + nul + 1,
        },
        None if input.len() - body_start > limits.max_body_bytes
            || input.len() > limits.max_frame_bytes =>
        {
            Scan::Full
        }
        None => Scan::Incomplete(Resume {
            needed: input.len() + 1,
            body: Some((body_start, input.len())),
        }),
    }
}

/// Where `needle` first occurs in `haystack`, looking at 8 bytes at a time (header lines and
/// bodies are tens to hundreds of bytes; a byte loop was most of the scan's time).
fn find_byte(haystack: &[u8], needle: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(needle);
    let mut chunks = haystack.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Zero bytes where the needle is; the lowest one sets its high bit here (a borrow can
        // only mark bytes above a real zero, so the first mark is exact).
        let x = u64::from_le_bytes(word) ^ pattern;
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = chunks.remainder();
    rest.iter().position(|&b| b == needle).map(|i| at + i)
}

/// A `content-length` value: decimal digits only.
fn parse_length(value: &[u8]) -> Option<usize> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

    use super::*;
    use crate::target::connect_frame;

    fn stamped(ns: u64, filler: &[u8]) -> Vec<u8> {
        let mut body = vec![0u8; stamp::LEN];
        stamp::write(&mut body, ns);
        body.extend_from_slice(filler);
        body
    }

    /// Frames of every kind next_delivery meets, with what it should make of them.
    fn sample_stream() -> (Vec<u8>, Vec<Delivery>) {
        let mut input = Vec::new();
        input.extend(b"\n");
        input.extend(
            b"MESSAGE\ndestination:/topic/a\nmessage-id:1\nx-content-length:99\n\
              subscription:sub-0\ncontent-length:20\n\n",
        );
        input.extend(stamped(0x1234, b"\0\0\0\0"));
        input.extend(b"\0\r\n");
        input.extend(b"MESSAGE\r\ndestination:/topic/a\r\nmessage-id:2\r\n\r\n");
        input.extend(stamped(0x5678_9abc_def0, b"yy"));
        input.extend(b"\0\n\n");
        input.extend(b"MESSAGE\nsubscription:s\ncontent-length:5\n\nab\0cd\0");
        input.extend(b"MESSAGE\n\n\0");
        input.extend(b"MESSAGE\r\ncontent-length:16\r\n\r\n");
        input.extend(stamped(7, b""));
        input.extend(b"\0");
        input.extend(b"RECEIPT\nreceipt-id:r\n\n\0\n");
        input.extend(b"ERROR\nmessage:slow consumer\ncontent-length:3\n\nbad\0");
        let expected = vec![
            Delivery::Message {
                stamp: Some(0x1234),
            },
            Delivery::Message {
                stamp: Some(0x5678_9abc_def0),
            },
            Delivery::Message { stamp: None },
            Delivery::Message { stamp: None },
            Delivery::Message { stamp: Some(7) },
            Delivery::Other,
            Delivery::Error {
                message: "slow consumer".to_owned(),
            },
        ];
        (input, expected)
    }

    fn drain(stomp: &mut Stomp, buf: &mut BytesMut, into: &mut Vec<Delivery>) {
        while let Some(delivery) = stomp.delivery(buf).unwrap() {
            into.push(delivery);
        }
    }

    #[test]
    fn deliveries_split_at_every_byte_boundary() {
        let (input, expected) = sample_stream();
        for split in 0..=input.len() {
            let mut stomp = Stomp::new();
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = Vec::new();
            drain(&mut stomp, &mut buf, &mut got);
            buf.extend_from_slice(&input[split..]);
            drain(&mut stomp, &mut buf, &mut got);
            assert_eq!(got, expected, "split at {split}");
            assert!(buf.is_empty(), "split at {split}");
        }
    }

    #[test]
    fn deliveries_arriving_one_byte_at_a_time() {
        let (input, expected) = sample_stream();
        let mut stomp = Stomp::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &byte in &input {
            buf.extend_from_slice(&[byte]);
            drain(&mut stomp, &mut buf, &mut got);
        }
        assert_eq!(got, expected);
        assert!(buf.is_empty());
    }

    #[test]
    fn deliveries_and_full_frames_mix_on_one_buffer() {
        let (input, _) = sample_stream();
        // Alternate the two paths, each left with a partial frame for the other to finish.
        for step in [1, 2, 3, 7, 16, 50] {
            let mut stomp = Stomp::new();
            let mut buf = BytesMut::new();
            let (mut messages, mut others) = (0, Vec::new());
            for (i, piece) in input.chunks(step).enumerate() {
                buf.extend_from_slice(piece);
                if i % 2 == 0 {
                    while let Some(frame) = stomp.frame(&mut buf).unwrap() {
                        match frame.command {
                            Command::Message => messages += 1,
                            command => others.push(command),
                        }
                    }
                } else {
                    while let Some(delivery) = stomp.delivery(&mut buf).unwrap() {
                        match delivery {
                            Delivery::Message { .. } => messages += 1,
                            Delivery::Error { .. } => others.push(Command::Error),
                            Delivery::Other => others.push(Command::Receipt),
                        }
                    }
                }
            }
            assert_eq!(messages, 5, "step {step}");
            assert_eq!(others, [Command::Receipt, Command::Error], "step {step}");
            assert!(buf.is_empty(), "step {step}");
        }
    }

    #[test]
    fn bad_frames_are_reported_by_the_full_decoder() {
        for input in [
            &b"MESSAGE\ncontent-length:x\n\n\0"[..],
            b"MESSAGE\ncontent-length:2\n\nabc\0",
            b"MESSAGEX\n\n\0",
            b"FOO\n\n\0",
            b"\rX",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(Stomp::new().delivery(&mut buf).is_err(), "{input:?}");
        }
        // A body without content-length that outgrows the limit.
        let mut buf = BytesMut::from(&b"MESSAGE\n\n"[..]);
        buf.resize(buf.len() + Limits::DEFAULT.max_body_bytes + 1, b'x');
        assert!(Stomp::new().delivery(&mut buf).is_err());
    }

    #[test]
    fn find_byte_finds_the_first_occurrence() {
        for len in 0..40 {
            for at in 0..=len {
                for other in [0u8, b'\n', b'x', 0x09, 0x0b, 0x8a, 0xff] {
                    let mut hay = vec![other; len];
                    if at < len {
                        hay[at] = b'\n';
                        // A second one later must not win.
                        if at + 3 < len {
                            hay[at + 3] = b'\n';
                        }
                    }
                    let naive = hay.iter().position(|&b| b == b'\n');
                    assert_eq!(find_byte(&hay, b'\n'), naive, "{hay:?}");
                }
            }
        }
        assert_eq!(find_byte(b"abc\0def", 0), Some(3));
        assert_eq!(find_byte(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0), Some(1));
        assert_eq!(find_byte(&[0x01, 0x01, 0x00], 0x00), Some(2));
    }

    #[test]
    fn a_long_body_is_searched_once() {
        let mut stomp = Stomp::new();
        let mut buf = BytesMut::from(&b"MESSAGE\n\n"[..]);
        buf.extend_from_slice(&stamped(99, &[b'x'; 1000]));
        assert_eq!(stomp.delivery(&mut buf), Ok(None));
        assert_eq!(
            stomp.lean,
            Resume {
                needed: buf.len() + 1,
                body: Some((9, buf.len()))
            }
        );
        buf.extend_from_slice(b"\0");
        assert_eq!(
            stomp.delivery(&mut buf),
            Ok(Some(Delivery::Message { stamp: Some(99) }))
        );
    }

    fn endpoint(addr: SocketAddr, transport: Transport) -> Endpoint {
        Endpoint {
            url: Url {
                transport,
                host: addr.ip().to_string(),
                port: addr.port(),
                path: match transport {
                    Transport::Ws => "/ws".to_owned(),
                    Transport::Tcp => String::new(),
                },
            },
            addr,
            source_ips: 0,
            connect_frame: connect_frame("localhost", None, None),
        }
    }

    /// A MESSAGE frame as Herald encodes it, followed by a heart-beat.
    fn message_frame(ns: u64) -> Vec<u8> {
        let body = stamped(ns, b"filler");
        let mut frame = format!(
            "MESSAGE\ndestination:/topic/t\nmessage-id:m\nsubscription:sub-0\n\
             content-length:{}\n\n",
            body.len()
        )
        .into_bytes();
        frame.extend(body);
        frame.extend(b"\0\n");
        frame
    }

    /// The server's side of the handshake: checks the request, accepts `v12.stomp`.
    #[allow(
        clippy::result_large_err,
        reason = "the signature tungstenite's callback has"
    )]
    fn offer_stomp(request: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
        assert_eq!(request.uri().path(), "/ws");
        let offered = request.headers().get("Sec-WebSocket-Protocol");
        assert_eq!(offered.and_then(|v| v.to_str().ok()), Some("v12.stomp"));
        response.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("v12.stomp"),
        );
        Ok(response)
    }

    async fn accept_stomp(tcp: TcpStream) -> WebSocketStream<TcpStream> {
        tokio_tungstenite::accept_hdr_async(tcp, offer_stomp)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn websocket_end_to_end_against_tungstenite() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = accept_stomp(tcp).await;
            // tungstenite rejects unmasked client frames, so each message proves our masking.
            let connect = ws.next().await.unwrap().unwrap();
            assert!(connect.is_text(), "{connect:?}");
            assert!(
                connect
                    .into_data()
                    .starts_with(b"CONNECT\naccept-version:1.2\n")
            );
            // CONNECTED in three fragments, a ping between them.
            let text = OpCode::Data(Data::Text);
            let more = OpCode::Data(Data::Continue);
            ws.send(Message::Frame(WsFrame::message("CONNEC", text, false)))
                .await
                .unwrap();
            ws.send(Message::Ping("one".into())).await.unwrap();
            ws.send(Message::Frame(WsFrame::message(
                "TED\nversion:1.2",
                more,
                false,
            )))
            .await
            .unwrap();
            ws.send(Message::Frame(WsFrame::message("\n\n\0", more, true)))
                .await
                .unwrap();
            ws.send(Message::binary(message_frame(42))).await.unwrap();
            ws.send(Message::Ping("two".into())).await.unwrap();
            // Two pongs and the client's two SENDs, in whatever order.
            let (mut pongs, mut sends) = (Vec::new(), Vec::new());
            while pongs.len() < 2 || sends.len() < 2 {
                match ws.next().await.unwrap().unwrap() {
                    Message::Pong(payload) => pongs.push(payload.to_vec()),
                    message @ (Message::Text(_) | Message::Binary(_)) => sends.push(message),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(pongs, [b"one".to_vec(), b"two".to_vec()]);
            ws.send(Message::text("ERROR\nmessage:bye\n\n\0"))
                .await
                .unwrap();
            // The client's close; tungstenite answers it, then the stream ends.
            let close = ws.next().await.unwrap().unwrap();
            assert!(close.is_close(), "{close:?}");
            assert!(ws.next().await.is_none());
            sends
        });

        let mut conn = Conn::open(&endpoint(addr, Transport::Ws), 3).await.unwrap();
        assert_eq!(
            conn.next_delivery().await,
            Ok(Some(Delivery::Message { stamp: Some(42) }))
        );
        let text = Bytes::from_static(b"SEND\ndestination:/queue/q\n\nhello\0");
        let binary = Bytes::from_static(b"SEND\ndestination:/queue/q\n\n\xff\xfe\0");
        conn.feed(text.clone()).await.unwrap();
        conn.feed(binary.clone()).await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(
            conn.next_delivery().await,
            Ok(Some(Delivery::Error {
                message: "bye".to_owned()
            }))
        );
        conn.close().await;
        let sends = server.await.unwrap();
        assert_eq!(
            sends,
            [
                Message::text("SEND\ndestination:/queue/q\n\nhello\0"),
                Message::binary(binary)
            ]
        );
    }

    #[tokio::test]
    async fn big_messages_cross_many_reads_both_ways() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = "x".repeat(200_000);
        let frame = format!("SEND\ndestination:/queue/q\n\n{body}\0");
        let echo = frame.replacen("SEND", "MESSAGE", 1);
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = accept_stomp(tcp).await;
            ws.next().await.unwrap().unwrap();
            ws.send(Message::text("CONNECTED\nversion:1.2\n\n\0"))
                .await
                .unwrap();
            let send = ws.next().await.unwrap().unwrap();
            ws.send(Message::text(echo)).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
            send
        });
        let mut conn = Conn::open(&endpoint(addr, Transport::Ws), 0).await.unwrap();
        conn.send(Bytes::from(frame.clone())).await.unwrap();
        let got = conn.next_frame().await.unwrap().unwrap();
        assert_eq!(got.command, Command::Message);
        assert_eq!(got.body, body.as_bytes());
        conn.close().await;
        assert_eq!(server.await.unwrap(), Message::text(frame));
    }

    #[tokio::test]
    async fn rejects_a_masked_frame_from_the_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut ws = accept_stomp(tcp).await;
            ws.next().await.unwrap().unwrap();
            // Past tungstenite: a frame as a client would send it.
            let mut raw = BytesMut::new();
            wsframe::encode_client_frame(
                &mut raw,
                wsframe::OP_TEXT,
                b"CONNECTED\n\n\0",
                [1, 2, 3, 4],
            );
            let mut tcp = ws.into_inner();
            tcp.write_all(&raw).await.unwrap();
            let mut rest = Vec::new();
            let _ = tcp.read_to_end(&mut rest).await;
        });
        let error = Conn::open(&endpoint(addr, Transport::Ws), 0)
            .await
            .unwrap_err();
        assert_eq!(error, "websocket read: masked frame from the server");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn refused_upgrade_is_an_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = tcp.read(&mut request).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let error = Conn::open(&endpoint(addr, Transport::Ws), 0)
            .await
            .unwrap_err();
        assert!(
            error.starts_with("websocket handshake: HTTP status 404 Not Found"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn plain_tcp_connections_deliver_too() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut input = BytesMut::new();
            while !input.ends_with(b"\0") {
                tcp.read_buf(&mut input).await.unwrap();
            }
            assert!(input.starts_with(b"CONNECT\n"));
            let mut reply = b"CONNECTED\nversion:1.2\n\n\0".to_vec();
            reply.extend(message_frame(5));
            reply.extend(b"RECEIPT\nreceipt-id:r\n\n\0");
            // In two writes, cutting a frame.
            tcp.write_all(&reply[..40]).await.unwrap();
            tcp.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            tcp.write_all(&reply[40..]).await.unwrap();
            let mut rest = Vec::new();
            tcp.read_to_end(&mut rest).await.unwrap();
            rest
        });
        let mut conn = Conn::open(&endpoint(addr, Transport::Tcp), 0)
            .await
            .unwrap();
        assert_eq!(
            conn.next_delivery().await,
            Ok(Some(Delivery::Message { stamp: Some(5) }))
        );
        let receipt = conn.next_frame().await.unwrap().unwrap();
        assert_eq!(receipt.headers.get("receipt-id"), Some("r"));
        conn.send(Bytes::from_static(b"DISCONNECT\n\n\0"))
            .await
            .unwrap();
        conn.close().await;
        assert_eq!(server.await.unwrap(), b"DISCONNECT\n\n\0");
    }
}
