//! A raw STOMP wire client for TCP and WebSocket.
//!
//! Cases send exact bytes (built with [`Out`] or written by hand) and read back what the server
//! sends, decoded by `herald-protocol`'s parser: frames with their raw bytes and arrival time,
//! heart-beat EOLs, and the end of the connection. A background task reads continuously, so a
//! case that is still writing a large frame does not miss an ERROR the server sent meanwhile.

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use herald_protocol::{Command, Frame, Limits, ParseOptions, Parsed, Version, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The STOMP WebSocket sub-protocols a browser client (stompjs) offers.
pub const ALL_SUBPROTOCOLS: &[&str] = &["v10.stomp", "v11.stomp", "v12.stomp"];

/// How a connection reaches the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ws,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }
}

/// One broker address: `tcp://host:port` or `ws://host:port/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub transport: Transport,
    /// `host:port`.
    pub authority: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let (transport, rest) = if let Some(rest) = url.strip_prefix("tcp://") {
            (Transport::Tcp, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (Transport::Ws, rest)
        } else {
            return Err(format!(
                "{url}: expected tcp://HOST:PORT or ws://HOST:PORT/PATH"
            ));
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || !authority.contains(':') {
            return Err(format!("{url}: the address needs a host and a port"));
        }
        if transport == Transport::Tcp && rest.len() != authority.len() {
            return Err(format!("{url}: a tcp:// address has no path"));
        }
        Ok(Target {
            url: url.to_owned(),
            transport,
            authority: authority.to_owned(),
        })
    }

    /// The same server's WebSocket URL with another path (for upgrade tests).
    pub fn with_path(&self, path: &str) -> String {
        format!("ws://{}{}", self.authority, path)
    }
}

/// The kind of a WebSocket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsKind {
    Text,
    Binary,
}

/// A frame the server sent.
#[derive(Debug, Clone)]
pub struct Received {
    pub frame: Frame,
    /// The frame exactly as received, NUL included.
    pub raw: Bytes,
    pub at: Instant,
    /// Over WebSocket, the kind of the message that completed the frame.
    pub ws: Option<WsKind>,
}

impl Received {
    pub fn command(&self) -> Command {
        self.frame.command
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.frame.headers.get(name)
    }

    /// The header, or an error naming it.
    pub fn need(&self, name: &str) -> Result<&str, String> {
        self.header(name)
            .ok_or_else(|| format!("{} has no {name} header: {}", self.command(), self))
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.frame.body).into_owned()
    }

    /// The raw header block (command line and headers, before the blank line) as text.
    pub fn raw_head(&self) -> String {
        let raw = &self.raw[..];
        let end = find(raw, b"\n\n")
            .or_else(|| find(raw, b"\r\n\r\n"))
            .unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.frame.command)?;
        for (name, value) in self.frame.headers.iter() {
            write!(f, " {name}:{value:?}")?;
        }
        if !self.frame.body.is_empty() {
            let body = self.body_text();
            let short: String = body.chars().take(120).collect();
            write!(f, " body:{short:?}")?;
            if short.len() < body.len() {
                write!(f, "…")?;
            }
        }
        Ok(())
    }
}

/// Something that happened on a connection.
#[derive(Debug, Clone)]
pub enum Event {
    Frame(Received),
    HeartBeat(Instant),
    /// Bytes the client could not parse as STOMP.
    Garbage(String),
    /// The connection ended: `how` says whether by EOF, WebSocket close or error.
    Closed {
        at: Instant,
        how: String,
    },
}

/// How `content-length` is written by [`Out`].
#[derive(Debug, Clone)]
enum Length {
    /// The body's length when there is a body.
    Auto,
    None,
    Explicit(String),
}

/// An outgoing frame, written byte for byte as built: header names and values are NOT
/// escaped (the case writes escapes itself), `content-length` is added for a non-empty body
/// unless told otherwise.
#[derive(Debug, Clone)]
pub struct Out {
    command: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    length: Length,
    eol: &'static str,
}

impl Out {
    pub fn new(command: &str) -> Out {
        Out {
            command: command.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            length: Length::Auto,
            eol: "\n",
        }
    }

    /// Appends a header, raw.
    pub fn h(mut self, name: &str, value: &str) -> Out {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: impl AsRef<[u8]>) -> Out {
        self.body = body.as_ref().to_vec();
        self
    }

    /// No `content-length`, even with a body.
    pub fn no_length(mut self) -> Out {
        self.length = Length::None;
        self
    }

    /// This exact `content-length` value, whatever the body.
    pub fn length(mut self, value: &str) -> Out {
        self.length = Length::Explicit(value.to_owned());
        self
    }

    /// CRLF line ends.
    pub fn crlf(mut self) -> Out {
        self.eol = "\r\n";
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 128);
        out.extend_from_slice(self.command.as_bytes());
        out.extend_from_slice(self.eol.as_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(self.eol.as_bytes());
        }
        let length = match &self.length {
            Length::Auto if !self.body.is_empty() => Some(self.body.len().to_string()),
            Length::Auto | Length::None => None,
            Length::Explicit(value) => Some(value.clone()),
        };
        if let Some(length) = length {
            out.extend_from_slice(b"content-length:");
            out.extend_from_slice(length.as_bytes());
            out.extend_from_slice(self.eol.as_bytes());
        }
        out.extend_from_slice(self.eol.as_bytes());
        out.extend_from_slice(&self.body);
        out.push(0);
        out
    }
}

type WsStream = WebSocketStream<TcpStream>;

enum Writer {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<WsStream, Message>),
}

/// One connection to the broker.
pub struct Conn {
    writer: Writer,
    events: UnboundedReceiver<Event>,
    reader: JoinHandle<()>,
    pub transport: Transport,
    /// The sub-protocol the server chose in the WebSocket handshake.
    pub subprotocol: Option<String>,
    /// The CONNECTED frame, once received through [`Conn::expect`] or a helper.
    pub connected: Option<Received>,
    next_receipt: u64,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("transport", &self.transport)
            .field("subprotocol", &self.subprotocol)
            .finish_non_exhaustive()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Conn {
    /// Opens a connection; over WebSocket offering `subprotocols` (none: no header).
    pub async fn open(target: &Target, subprotocols: &[&str]) -> Result<Conn, String> {
        Conn::open_url(
            target.transport,
            &target.url,
            subprotocols,
            &target.authority,
        )
        .await
    }

    /// Opens a connection to `url` (for WebSocket paths other than the target's).
    pub async fn open_url(
        transport: Transport,
        url: &str,
        subprotocols: &[&str],
        authority: &str,
    ) -> Result<Conn, String> {
        let stream = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (tx, rx) = unbounded_channel();
        match transport {
            Transport::Tcp => {
                let (read, write) = stream.into_split();
                let reader = tokio::spawn(read_tcp(read, tx));
                Ok(Conn::new(Writer::Tcp(write), rx, reader, transport, None))
            }
            Transport::Ws => {
                let mut request = url
                    .into_client_request()
                    .map_err(|e| format!("{url}: {e}"))?;
                if !subprotocols.is_empty() {
                    let offer = HeaderValue::from_str(&subprotocols.join(", "))
                        .map_err(|e| format!("sub-protocol header: {e}"))?;
                    request
                        .headers_mut()
                        .insert("Sec-WebSocket-Protocol", offer);
                }
                let (ws, response) = tokio_tungstenite::client_async(request, stream)
                    .await
                    .map_err(|e| describe_handshake_error(url, e))?;
                let subprotocol = response
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let (sink, stream) = ws.split();
                let reader = tokio::spawn(read_ws(stream, tx));
                Ok(Conn::new(
                    Writer::Ws(sink),
                    rx,
                    reader,
                    transport,
                    subprotocol,
                ))
            }
        }
    }

    fn new(
        writer: Writer,
        events: UnboundedReceiver<Event>,
        reader: JoinHandle<()>,
        transport: Transport,
        subprotocol: Option<String>,
    ) -> Conn {
        Conn {
            writer,
            events,
            reader,
            transport,
            subprotocol,
            connected: None,
            next_receipt: 0,
        }
    }

    /// A receipt id not used before on this connection.
    pub fn receipt_id(&mut self) -> String {
        self.next_receipt += 1;
        format!("rcpt-{}", self.next_receipt)
    }

    /// Sends bytes: over TCP as they are, over WebSocket as one message (text when they are
    /// valid UTF-8, binary otherwise).
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) -> Result<(), String> {
        let bytes = bytes.as_ref();
        match &mut self.writer {
            Writer::Tcp(w) => {
                w.write_all(bytes)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                w.flush().await.map_err(|e| format!("write: {e}"))
            }
            Writer::Ws(_) => {
                let kind = if std::str::from_utf8(bytes).is_ok() {
                    WsKind::Text
                } else {
                    WsKind::Binary
                };
                self.send_ws(&[(kind, bytes)]).await
            }
        }
    }

    /// Sends a built frame.
    pub async fn send_out(&mut self, out: &Out) -> Result<(), String> {
        self.send(out.bytes()).await
    }

    /// Sends several WebSocket messages of the given kinds (a text part that is not valid
    /// UTF-8 goes as binary); over TCP the parts are written one after the other.
    pub async fn send_ws(&mut self, parts: &[(WsKind, &[u8])]) -> Result<(), String> {
        match &mut self.writer {
            Writer::Tcp(w) => {
                for (_, part) in parts {
                    w.write_all(part).await.map_err(|e| format!("write: {e}"))?;
                    w.flush().await.map_err(|e| format!("write: {e}"))?;
                }
                Ok(())
            }
            Writer::Ws(sink) => {
                for (kind, part) in parts {
                    let message = match (kind, std::str::from_utf8(part)) {
                        (WsKind::Text, Ok(text)) => Message::text(text),
                        _ => Message::binary(Bytes::copy_from_slice(part)),
                    };
                    sink.feed(message)
                        .await
                        .map_err(|e| format!("websocket write: {e}"))?;
                }
                sink.flush()
                    .await
                    .map_err(|e| format!("websocket write: {e}"))
            }
        }
    }

    /// Sends a WebSocket ping (no-op over TCP).
    pub async fn send_ping(&mut self) -> Result<(), String> {
        match &mut self.writer {
            Writer::Tcp(_) => Ok(()),
            Writer::Ws(sink) => sink
                .send(Message::Ping(Bytes::from_static(b"hc")))
                .await
                .map_err(|e| format!("websocket ping: {e}")),
        }
    }

    /// The next event before `deadline`, or `None` at the deadline.
    pub async fn next_event_until(&mut self, deadline: Instant) -> Option<Event> {
        match timeout_at(deadline, self.events.recv()).await {
            Ok(Some(event)) => Some(event),
            // The reader ended without a Closed event (it was aborted): treat as closed.
            Ok(None) => Some(Event::Closed {
                at: Instant::now(),
                how: "reader stopped".into(),
            }),
            Err(_) => None,
        }
    }

    /// The next frame within `wait`, skipping heart-beats.
    pub async fn next_frame(&mut self, wait: Duration) -> Result<Received, String> {
        let deadline = Instant::now() + wait;
        loop {
            match self.next_event_until(deadline).await {
                None => return Err(format!("no frame within {} ms", wait.as_millis())),
                Some(Event::HeartBeat(_)) => {}
                Some(Event::Frame(frame)) => {
                    if frame.command() == Command::Connected && self.connected.is_none() {
                        self.connected = Some(frame.clone());
                    }
                    return Ok(frame);
                }
                Some(Event::Garbage(e)) => return Err(format!("unparseable server output: {e}")),
                Some(Event::Closed { how, .. }) => {
                    return Err(format!(
                        "connection closed ({how}) while a frame was expected"
                    ));
                }
            }
        }
    }

    /// The next frame, which must be `command`.
    pub async fn expect(&mut self, command: Command, wait: Duration) -> Result<Received, String> {
        let frame = self
            .next_frame(wait)
            .await
            .map_err(|e| format!("expected {command}: {e}"))?;
        if frame.command() != command {
            return Err(format!("expected {command}, got {frame}"));
        }
        Ok(frame)
    }

    /// The next frame must be RECEIPT with this `receipt-id`.
    pub async fn expect_receipt(&mut self, id: &str, wait: Duration) -> Result<Received, String> {
        let frame = self.expect(Command::Receipt, wait).await?;
        match frame.header("receipt-id") {
            Some(got) if got == id => Ok(frame),
            other => Err(format!("expected RECEIPT receipt-id:{id}, got {other:?}")),
        }
    }

    /// The connection must end within `wait`, with no frame before (heart-beats allowed).
    pub async fn expect_closed(&mut self, wait: Duration) -> Result<(), String> {
        let deadline = Instant::now() + wait;
        loop {
            match self.next_event_until(deadline).await {
                None => {
                    return Err(format!(
                        "connection still open {} ms later",
                        wait.as_millis()
                    ));
                }
                Some(Event::HeartBeat(_)) => {}
                Some(Event::Closed { .. }) => return Ok(()),
                Some(Event::Frame(frame)) => {
                    return Err(format!("expected the connection to close, got {frame}"));
                }
                Some(Event::Garbage(e)) => return Err(format!("unparseable server output: {e}")),
            }
        }
    }

    /// The next frame must be ERROR and the connection must then close.
    pub async fn expect_error_and_close(&mut self, wait: Duration) -> Result<Received, String> {
        let error = self.expect(Command::Error, wait).await?;
        self.expect_closed(wait)
            .await
            .map_err(|e| format!("after {error}: {e}"))?;
        Ok(error)
    }

    /// How the connection ended, if it did within `wait`; frames before the end are returned.
    pub async fn wait_closed(&mut self, wait: Duration) -> (Vec<Received>, Option<Instant>) {
        let deadline = Instant::now() + wait;
        let mut frames = Vec::new();
        loop {
            match self.next_event_until(deadline).await {
                None => return (frames, None),
                Some(Event::Closed { at, .. }) => return (frames, Some(at)),
                Some(Event::Frame(frame)) => frames.push(frame),
                Some(Event::HeartBeat(_) | Event::Garbage(_)) => {}
            }
        }
    }

    /// No frame and no close for `period` (heart-beats allowed).
    pub async fn expect_silence(&mut self, period: Duration) -> Result<(), String> {
        let deadline = Instant::now() + period;
        loop {
            match self.next_event_until(deadline).await {
                None => return Ok(()),
                Some(Event::HeartBeat(_)) => {}
                Some(Event::Frame(frame)) => return Err(format!("unexpected frame: {frame}")),
                Some(Event::Garbage(e)) => return Err(format!("unparseable server output: {e}")),
                Some(Event::Closed { how, .. }) => {
                    return Err(format!("connection closed unexpectedly ({how})"));
                }
            }
        }
    }

    /// Heart-beats received during `period`; a frame or close is an error.
    pub async fn heartbeats_for(&mut self, period: Duration) -> Result<Vec<Instant>, String> {
        let deadline = Instant::now() + period;
        let mut beats = Vec::new();
        loop {
            match self.next_event_until(deadline).await {
                None => return Ok(beats),
                Some(Event::HeartBeat(at)) => beats.push(at),
                Some(Event::Frame(frame)) => return Err(format!("unexpected frame: {frame}")),
                Some(Event::Garbage(e)) => return Err(format!("unparseable server output: {e}")),
                Some(Event::Closed { how, .. }) => {
                    return Err(format!("connection closed unexpectedly ({how})"));
                }
            }
        }
    }
}

fn describe_handshake_error(url: &str, e: WsError) -> String {
    match e {
        WsError::Http(response) => format!(
            "websocket upgrade at {url} refused: HTTP {}",
            response.status()
        ),
        other => format!("websocket upgrade at {url} failed: {other}"),
    }
}

/// Turns the server's byte stream into events. The parse version follows the CONNECTED frame.
struct ServerParser {
    buf: BytesMut,
    options: ParseOptions,
    broken: bool,
}

impl ServerParser {
    fn new() -> ServerParser {
        ServerParser {
            buf: BytesMut::new(),
            options: ParseOptions {
                version: Version::V1_2,
                limits: Limits {
                    max_frame_bytes: 256 << 20,
                    max_headers: 1 << 20,
                    max_header_line_bytes: 16 << 20,
                    max_body_bytes: 256 << 20,
                },
            },
            broken: false,
        }
    }

    fn feed(&mut self, bytes: &[u8], ws: Option<WsKind>, tx: &UnboundedSender<Event>) {
        if self.broken {
            return;
        }
        self.buf.extend_from_slice(bytes);
        let at = Instant::now();
        // EOLs right after a frame in the same read are the frame's `NUL *(EOL)` trailer
        // (RabbitMQ ends every frame with NUL LF), not heart-beats.
        let mut after_frame = false;
        loop {
            match parse(&self.buf, &self.options) {
                Ok(Parsed::Frame(parsed)) => {
                    let raw = self.buf.split_to(parsed.consumed).freeze();
                    let frame = Frame {
                        command: parsed.command,
                        headers: parsed.headers,
                        body: raw.slice(parsed.body),
                    };
                    if frame.command == Command::Connected {
                        self.options.version = frame
                            .headers
                            .get("version")
                            .and_then(Version::from_token)
                            .unwrap_or(Version::V1_0);
                    }
                    let _ = tx.send(Event::Frame(Received { frame, raw, at, ws }));
                    after_frame = true;
                }
                Ok(Parsed::HeartBeat { consumed }) => {
                    let _ = self.buf.split_to(consumed);
                    if !after_frame {
                        let _ = tx.send(Event::HeartBeat(at));
                    }
                    after_frame = false;
                }
                Ok(Parsed::Incomplete(_)) => return,
                Err(e) => {
                    let head: Vec<u8> = self.buf.iter().take(80).copied().collect();
                    let _ = tx.send(Event::Garbage(format!(
                        "{e} in {:?}",
                        String::from_utf8_lossy(&head)
                    )));
                    self.broken = true;
                    return;
                }
            }
        }
    }
}

async fn read_tcp(mut read: OwnedReadHalf, tx: UnboundedSender<Event>) {
    let mut parser = ServerParser::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match read.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx.send(Event::Closed {
                    at: Instant::now(),
                    how: "EOF".into(),
                });
                return;
            }
            Ok(n) => parser.feed(&chunk[..n], None, &tx),
            Err(e) => {
                let _ = tx.send(Event::Closed {
                    at: Instant::now(),
                    how: format!("read error: {e}"),
                });
                return;
            }
        }
    }
}

async fn read_ws(mut stream: SplitStream<WsStream>, tx: UnboundedSender<Event>) {
    let mut parser = ServerParser::new();
    loop {
        let how = match stream.next().await {
            Some(Ok(Message::Text(text))) => {
                parser.feed(text.as_bytes(), Some(WsKind::Text), &tx);
                continue;
            }
            Some(Ok(Message::Binary(data))) => {
                parser.feed(&data, Some(WsKind::Binary), &tx);
                continue;
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Close(frame))) => match frame {
                Some(frame) => format!("websocket close {}", u16::from(frame.code)),
                None => "websocket close without code".to_owned(),
            },
            Some(Err(e)) => format!("websocket error: {e}"),
            None => "EOF".to_owned(),
        };
        let _ = tx.send(Event::Closed {
            at: Instant::now(),
            how,
        });
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_writes_exact_bytes() {
        let out = Out::new("SEND").h("destination", "/topic/a").body("hi");
        assert_eq!(
            out.bytes(),
            b"SEND\ndestination:/topic/a\ncontent-length:2\n\nhi\0".to_vec()
        );
        let crlf = Out::new("SEND").h("a", "b").no_length().body("x").crlf();
        assert_eq!(crlf.bytes(), b"SEND\r\na:b\r\n\r\nx\0".to_vec());
    }

    #[test]
    fn targets_parse() {
        let ws = Target::parse("ws://127.0.0.1:15674/ws").unwrap();
        assert_eq!(ws.transport, Transport::Ws);
        assert_eq!(ws.authority, "127.0.0.1:15674");
        assert_eq!(ws.with_path("/x"), "ws://127.0.0.1:15674/x");
        assert!(Target::parse("tcp://127.0.0.1:61613").is_ok());
        assert!(Target::parse("http://x:1").is_err());
        assert!(Target::parse("tcp://x:1/p").is_err());
    }
}
