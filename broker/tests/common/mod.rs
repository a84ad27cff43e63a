//! Integration-test harness: an in-process Herald node per test on ephemeral loopback ports,
//! and a small STOMP client over TCP or WebSocket that decodes with `herald_protocol`.
//!
//! Every wait has a timeout and panics with a message saying what was expected, so a broken
//! broker fails a test instead of hanging it.

// Each test file uses a different part of the harness.
#![allow(dead_code)]

// Cluster tests: real nats-server and herald processes.
pub mod herald_process;
pub mod nats;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use herald::config::Config;
use herald::node::Node;
use herald::server::Server;
use herald_protocol::{Command, Decoded, Decoder, Frame, Limits, ParseOptions, Version, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// How long any single expected event may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// The window of a negative check ("nothing arrives").
pub const QUIET: Duration = Duration::from_millis(200);
/// What the broker's `server` header says.
pub const SERVER: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));
/// What a browser client offers.
pub const STOMP_SUBPROTOCOLS: &str = "v10.stomp, v11.stomp, v12.stomp";

/// Defines one `#[tokio::test]` per transport for each named `async fn name(Transport)`:
/// `name::tcp` and `name::ws`.
#[macro_export]
macro_rules! transport_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn tcp() {
                super::$name($crate::common::Transport::Tcp).await
            }
            #[tokio::test]
            async fn ws() {
                super::$name($crate::common::Transport::Ws).await
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Ws,
}

/// The test configuration: both listeners on ephemeral loopback ports, everything else at
/// its default except a drain time short enough for tests.
pub fn config() -> Config {
    let mut config = Config::default();
    config.websocket.bind = "127.0.0.1:0".parse().unwrap();
    config.tcp.bind = "127.0.0.1:0".parse().unwrap();
    config.shutdown.drain_ms = 3_000;
    config
}

fn init_tracing() {
    // Logs only when asked for: RUST_LOG=herald=debug cargo test -p herald --test session
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// One in-process node, serving in a spawned task until [`TestServer::stop`] or drop.
#[derive(Debug)]
pub struct TestServer {
    pub node: Arc<Node>,
    pub tcp_addr: SocketAddr,
    pub ws_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        init_tracing();
        config.validate().expect("the test configuration is valid");
        let server = Server::bind(config).await.expect("bind the test server");
        let tcp_addr = server.tcp_addr().expect("tcp listener enabled");
        let ws_addr = server.ws_addr().expect("websocket listener enabled");
        let node = server.node();
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = tokio::spawn(server.serve(async move {
            let _ = stopped.await;
        }));
        TestServer {
            node,
            tcp_addr,
            ws_addr,
            stop: Some(stop),
            serving: Some(serving),
        }
    }

    pub async fn with_defaults() -> TestServer {
        TestServer::start(config()).await
    }

    /// Triggers the stop future; returns the task running `serve`, which ends after the drain.
    pub fn stop(&mut self) -> JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.serving.take().expect("stop called once")
    }

    /// A transport connection on which nothing has been sent yet (no CONNECT).
    /// Waits until one session has been counted as closed for `reason`.
    pub async fn close_counted(&self, reason: &str) {
        eventually("the close to be counted", TIMEOUT, || {
            self.node.stats.closes(reason) == 1
        })
        .await;
    }

    pub async fn open(&self, transport: Transport) -> Client {
        match transport {
            Transport::Tcp => Client::tcp(self.tcp_addr, None).await,
            Transport::Ws => Client::ws(self.ws_addr, None).await,
        }
    }

    /// Like [`TestServer::open`] with a small socket receive buffer, for slow consumers.
    pub async fn open_with_recv_buffer(&self, transport: Transport, bytes: u32) -> Client {
        match transport {
            Transport::Tcp => Client::tcp(self.tcp_addr, Some(bytes)).await,
            Transport::Ws => Client::ws(self.ws_addr, Some(bytes)).await,
        }
    }

    /// A STOMP 1.2 session: CONNECT sent and CONNECTED received.
    pub async fn client(&self, transport: Transport) -> Client {
        let mut client = self.open(transport).await;
        client.connect().await;
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(serving) = &self.serving {
            serving.abort();
        }
    }
}

/// Opens a TCP connection to `addr`, optionally with a small receive buffer.
pub async fn tcp_connect(addr: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(bytes) = recv_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    within(TIMEOUT, "TCP connect", socket.connect(addr))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// The WebSocket upgrade request and what it offers.
#[derive(Debug, Clone)]
pub struct Upgrade<'a> {
    pub path: &'a str,
    pub subprotocols: Option<&'a str>,
    pub origin: Option<&'a str>,
}

impl Default for Upgrade<'_> {
    fn default() -> Self {
        Upgrade {
            path: "/ws",
            subprotocols: Some(STOMP_SUBPROTOCOLS),
            origin: None,
        }
    }
}

/// Performs a WebSocket handshake on a fresh connection; the error is tungstenite's (an HTTP
/// refusal is `Error::Http(response)`).
pub async fn ws_handshake(
    addr: SocketAddr,
    upgrade: &Upgrade<'_>,
    recv_buffer: Option<u32>,
) -> Result<(WebSocketStream<TcpStream>, Response), WsError> {
    let stream = tcp_connect(addr, recv_buffer).await;
    let mut request = format!("ws://{addr}{}", upgrade.path)
        .into_client_request()
        .unwrap();
    if let Some(offered) = upgrade.subprotocols {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(offered).unwrap(),
        );
    }
    if let Some(origin) = upgrade.origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(origin).unwrap());
    }
    within(
        TIMEOUT,
        "WebSocket handshake",
        tokio_tungstenite::client_async(request, stream),
    )
    .await
}

/// Awaits `future` or panics saying what did not happen in time.
pub async fn within<F: std::future::Future>(limit: Duration, what: &str, future: F) -> F::Output {
    match tokio::time::timeout(limit, future).await {
        Ok(output) => output,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}

/// Polls `condition` every few milliseconds until it holds; for state that has no event.
pub async fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The WebSocket message type a frame arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// What the client can receive.
#[derive(Debug)]
pub enum Event {
    /// A frame and, over WebSocket, the type of the message that completed it.
    Frame(Frame, Option<MessageKind>),
    /// One or more EOLs.
    HeartBeat,
    /// A WebSocket pong.
    Pong(Bytes),
}

/// How the server ended the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// TCP: end of stream.
    Eof,
    /// WebSocket: a close frame with this code (`None`: a close frame without a code).
    WsClose(Option<CloseCode>),
    /// The connection ended without a clean close (reset, or WebSocket stream cut).
    Abort(String),
}

enum Io {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A STOMP test client.
pub struct Client {
    pub transport: Transport,
    io: Io,
    buf: BytesMut,
    last_kind: Option<MessageKind>,
    decoder: Decoder,
    /// The version frames are encoded and decoded with (1.2 until CONNECTED says otherwise).
    version: Version,
    closed: Option<Closed>,
    next_receipt: u64,
    /// The response to the WebSocket upgrade.
    pub upgrade_response: Option<Response>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

fn client_decoder(version: Version) -> Decoder {
    Decoder::new(ParseOptions {
        version,
        limits: Limits {
            max_frame_bytes: 64 << 20,
            max_headers: 1024,
            max_header_line_bytes: 1 << 20,
            max_body_bytes: 64 << 20,
        },
    })
}

impl Client {
    fn new(transport: Transport, io: Io, upgrade_response: Option<Response>) -> Client {
        Client {
            transport,
            io,
            buf: BytesMut::new(),
            last_kind: None,
            decoder: client_decoder(Version::V1_2),
            version: Version::V1_2,
            closed: None,
            next_receipt: 1,
            upgrade_response,
        }
    }

    pub async fn tcp(addr: SocketAddr, recv_buffer: Option<u32>) -> Client {
        let stream = tcp_connect(addr, recv_buffer).await;
        stream.set_nodelay(true).unwrap();
        Client::new(Transport::Tcp, Io::Tcp(stream), None)
    }

    pub async fn ws(addr: SocketAddr, recv_buffer: Option<u32>) -> Client {
        Client::ws_with(addr, &Upgrade::default(), recv_buffer).await
    }

    pub async fn ws_with(
        addr: SocketAddr,
        upgrade: &Upgrade<'_>,
        recv_buffer: Option<u32>,
    ) -> Client {
        let (stream, response) = ws_handshake(addr, upgrade, recv_buffer)
            .await
            .unwrap_or_else(|e| panic!("WebSocket upgrade failed: {e}"));
        Client::new(Transport::Ws, Io::Ws(Box::new(stream)), Some(response))
    }

    /// The version this client encodes and decodes with.
    pub fn set_version(&mut self, version: Version) {
        self.version = version;
        self.decoder = client_decoder(version);
    }

    // ---- sending ----

    /// Encodes and sends one frame (over WebSocket as one message: text when valid UTF-8).
    pub async fn send(&mut self, frame: &Frame) {
        let mut out = BytesMut::new();
        encode(frame, self.version, &mut out);
        self.send_bytes(&out).await;
    }

    /// Sends raw bytes: one write over TCP, one message over WebSocket.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.send_bytes_within(TIMEOUT, bytes).await;
    }

    /// [`Client::send_bytes`] given `limit` to complete: for a write the broker may
    /// legitimately hold back for longer (back-pressure pauses a publisher).
    pub async fn send_bytes_within(&mut self, limit: Duration, bytes: &[u8]) {
        match &mut self.io {
            Io::Tcp(stream) => within(limit, "a TCP write", stream.write_all(bytes))
                .await
                .expect("TCP write"),
            Io::Ws(_) => {
                let message = match std::str::from_utf8(bytes) {
                    Ok(text) => Message::text(text),
                    Err(_) => Message::binary(Bytes::copy_from_slice(bytes)),
                };
                self.send_ws_within(limit, message).await;
            }
        }
    }

    /// Sends one WebSocket message as given.
    pub async fn send_ws(&mut self, message: Message) {
        self.send_ws_within(TIMEOUT, message).await;
    }

    async fn send_ws_within(&mut self, limit: Duration, message: Message) {
        let Io::Ws(stream) = &mut self.io else {
            panic!("send_ws on a TCP client");
        };
        within(limit, "a WebSocket send", stream.send(message))
            .await
            .expect("WebSocket send");
    }

    /// A fresh receipt id.
    pub fn receipt_id(&mut self) -> String {
        let id = format!("r-{}", self.next_receipt);
        self.next_receipt += 1;
        id
    }

    /// Sends `frame` with a fresh `receipt` and waits for its RECEIPT, which must be the next
    /// frame; returns the receipt id.
    pub async fn send_with_receipt(&mut self, frame: Frame) -> String {
        let receipt = self.receipt_id();
        self.send(&frame.header("receipt", &receipt)).await;
        self.expect_receipt(&receipt).await;
        receipt
    }

    /// Leaves cleanly: DISCONNECT with a receipt, then the close.
    pub async fn leave(mut self) {
        self.send_with_receipt(Frame::new(Command::Disconnect))
            .await;
        self.expect_clean_close().await;
    }

    /// CONNECT with `accept-version:1.2`, then CONNECTED.
    pub async fn connect(&mut self) -> Frame {
        self.connect_with(connect_frame("1.2")).await
    }

    /// Sends `frame` (a CONNECT or STOMP) and expects CONNECTED; adopts its version.
    pub async fn connect_with(&mut self, frame: Frame) -> Frame {
        self.send(&frame).await;
        let connected = self.expect(Command::Connected).await;
        let version = connected
            .headers
            .get("version")
            .and_then(Version::from_token)
            .unwrap_or_else(|| panic!("CONNECTED without a known version: {connected:?}"));
        self.set_version(version);
        connected
    }

    /// SUBSCRIBE with a receipt; the subscription is active once this returns.
    pub async fn subscribe(&mut self, id: &str, destination: &str) {
        self.send_with_receipt(subscribe_frame(id, destination))
            .await;
    }

    pub async fn unsubscribe(&mut self, id: &str) {
        self.send_with_receipt(Frame::new(Command::Unsubscribe).header("id", id))
            .await;
    }

    /// SEND without a receipt.
    pub async fn publish(&mut self, destination: &str, body: &str) {
        self.send(&send_frame(destination, body)).await;
    }

    /// SEND with a receipt: once this returns, the message has been routed.
    pub async fn publish_confirmed(&mut self, destination: &str, body: &str) {
        self.send_with_receipt(send_frame(destination, body)).await;
    }

    // ---- receiving ----

    /// The next event of any kind; `None` once the connection has closed.
    pub async fn next_event(&mut self) -> Option<Event> {
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(Decoded::Frame(frame))) => {
                    return Some(Event::Frame(frame, self.last_kind));
                }
                Ok(Some(Decoded::HeartBeat)) => return Some(Event::HeartBeat),
                Ok(None) => {}
                Err(e) => panic!(
                    "{:?}: the server sent bytes that do not decode: {e}; buffer {:?}",
                    self.transport,
                    String::from_utf8_lossy(&self.buf)
                ),
            }
            if self.closed.is_some() {
                // Bytes left in `buf` are a frame cut off by the close; see `leftover`.
                return None;
            }
            if let Some(event) = self.read_more().await {
                return Some(event);
            }
        }
    }

    /// Reads once from the connection. Cancel-safe: nothing is awaited after a read.
    async fn read_more(&mut self) -> Option<Event> {
        match &mut self.io {
            Io::Tcp(stream) => {
                self.buf.reserve(16 * 1024);
                match stream.read_buf(&mut self.buf).await {
                    Ok(0) => {
                        // Answer the server's close so its linger ends now.
                        let _ = stream.shutdown().await;
                        self.closed = Some(Closed::Eof);
                    }
                    Ok(_) => {}
                    Err(e) => self.closed = Some(Closed::Abort(e.to_string())),
                }
                None
            }
            Io::Ws(stream) => match stream.next().await {
                Some(Ok(Message::Text(text))) => {
                    self.buf.extend_from_slice(text.as_bytes());
                    self.last_kind = Some(MessageKind::Text);
                    None
                }
                Some(Ok(Message::Binary(data))) => {
                    self.buf.extend_from_slice(&data);
                    self.last_kind = Some(MessageKind::Binary);
                    None
                }
                Some(Ok(Message::Pong(data))) => Some(Event::Pong(data)),
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => None,
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(Closed::WsClose(frame.map(|f| f.code)));
                    // Reading on sends tungstenite's close reply and sees the stream end.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = stream.next().await {}
                    })
                    .await;
                    None
                }
                None => {
                    self.closed = Some(Closed::Abort("stream ended without close".into()));
                    None
                }
                Some(Err(e)) => {
                    self.closed = Some(Closed::Abort(e.to_string()));
                    None
                }
            },
        }
    }

    /// The next event, within [`TIMEOUT`].
    pub async fn event(&mut self) -> Option<Event> {
        let transport = self.transport;
        within(
            TIMEOUT,
            &format!("an event on the {transport:?} client"),
            self.next_event(),
        )
        .await
    }

    /// The next frame (heart-beats and pongs skipped) and the WebSocket message type it came in.
    pub async fn recv_with_kind(&mut self) -> (Frame, Option<MessageKind>) {
        self.recv_with_kind_within(TIMEOUT).await
    }

    /// The next frame, heart-beats skipped, given `limit` to come: for an event the broker
    /// legitimately takes longer than [`TIMEOUT`] to cause (a redelivery after an ack wait).
    pub async fn recv_within(&mut self, limit: Duration) -> Frame {
        self.recv_with_kind_within(limit).await.0
    }

    async fn recv_with_kind_within(&mut self, limit: Duration) -> (Frame, Option<MessageKind>) {
        let transport = self.transport;
        let next = async {
            loop {
                match self.next_event().await {
                    Some(Event::Frame(frame, kind)) => return Ok((frame, kind)),
                    Some(Event::HeartBeat | Event::Pong(_)) => continue,
                    None => return Err(self.closed.clone()),
                }
            }
        };
        match within(limit, &format!("a frame on the {transport:?} client"), next).await {
            Ok(received) => received,
            Err(closed) => panic!(
                "{transport:?}: expected a frame, the connection closed: {closed:?}; {} bytes of an incomplete frame",
                self.buf.len()
            ),
        }
    }

    /// The next frame, heart-beats skipped.
    pub async fn recv(&mut self) -> Frame {
        self.recv_with_kind().await.0
    }

    /// The next frame, which must have `command`.
    pub async fn expect(&mut self, command: Command) -> Frame {
        let frame = self.recv().await;
        assert_eq!(
            frame.command,
            command,
            "{:?}: expected {command}, got {}",
            self.transport,
            show(&frame)
        );
        frame
    }

    /// The next frame, which must be RECEIPT with `receipt-id`.
    pub async fn expect_receipt(&mut self, receipt_id: &str) {
        let frame = self.expect(Command::Receipt).await;
        assert_eq!(
            frame.headers.get("receipt-id"),
            Some(receipt_id),
            "{}",
            show(&frame)
        );
    }

    /// The next frame, which must be ERROR with this `message`.
    pub async fn expect_error(&mut self, message: &str) -> Frame {
        let frame = self.expect(Command::Error).await;
        assert_eq!(
            frame.headers.get("message"),
            Some(message),
            "{:?}: wrong ERROR: {}",
            self.transport,
            show(&frame)
        );
        assert!(
            !frame.body.is_empty(),
            "ERROR without detail: {}",
            show(&frame)
        );
        frame
    }

    /// ERROR with this `message`, then the connection closes cleanly.
    pub async fn expect_error_then_close(&mut self, message: &str) -> Frame {
        let frame = self.expect_error(message).await;
        self.expect_clean_close().await;
        frame
    }

    /// The next frame, which must be MESSAGE from `destination` on `subscription` with `body`.
    pub async fn expect_message(
        &mut self,
        subscription: &str,
        destination: &str,
        body: &str,
    ) -> Frame {
        let frame = self.expect(Command::Message).await;
        assert_eq!(
            (
                frame.headers.get("subscription"),
                frame.headers.get("destination"),
                &frame.body[..]
            ),
            (Some(subscription), Some(destination), body.as_bytes()),
            "{:?}: unexpected MESSAGE {}",
            self.transport,
            show(&frame)
        );
        assert!(frame.headers.contains("message-id"), "{}", show(&frame));
        frame
    }

    /// Waits for the connection to end; any frame arriving first fails the test (heart-beats
    /// are skipped).
    pub async fn expect_closed(&mut self) -> Closed {
        let transport = self.transport;
        let closing = async {
            loop {
                match self.next_event().await {
                    Some(Event::Frame(frame, _)) => {
                        panic!(
                            "{transport:?}: expected the connection to close, got {}",
                            show(&frame)
                        )
                    }
                    Some(_) => continue,
                    None => return self.closed.clone().unwrap(),
                }
            }
        };
        within(
            TIMEOUT,
            &format!("the {transport:?} connection to close"),
            closing,
        )
        .await
    }

    /// The connection ends the normal way: TCP end of stream, or WebSocket close code 1000.
    pub async fn expect_clean_close(&mut self) {
        let closed = self.expect_closed().await;
        let expected = match self.transport {
            Transport::Tcp => Closed::Eof,
            Transport::Ws => Closed::WsClose(Some(CloseCode::Normal)),
        };
        assert_eq!(closed, expected, "{:?}: wrong close", self.transport);
        assert_eq!(
            self.leftover(),
            0,
            "{:?}: the close cut a frame off: {:?}",
            self.transport,
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Nothing but heart-beats arrives within `window`, and the connection stays open.
    pub async fn expect_silence(&mut self, window: Duration) {
        let transport = self.transport;
        let watch = async {
            loop {
                match self.next_event().await {
                    Some(Event::Frame(frame, _)) => {
                        panic!("{transport:?}: expected nothing, got {}", show(&frame))
                    }
                    Some(_) => continue,
                    None => panic!(
                        "{transport:?}: expected nothing, the connection closed: {:?}",
                        self.closed
                    ),
                }
            }
        };
        let _ = tokio::time::timeout(window, watch).await;
    }

    /// Whether the server has closed the connection (as far as this client has read).
    pub fn closed(&self) -> Option<&Closed> {
        self.closed.as_ref()
    }

    /// Bytes of an incomplete frame: after a close, what the close cut off.
    pub fn leftover(&self) -> usize {
        self.buf.len()
    }
}

/// A frame as text, for assertion messages.
pub fn show(frame: &Frame) -> String {
    let headers: Vec<String> = frame
        .headers
        .iter()
        .map(|(n, v)| format!("{n}:{v:?}"))
        .collect();
    let body = if frame.body.len() > 200 {
        format!("<{} bytes>", frame.body.len())
    } else {
        format!("{:?}", String::from_utf8_lossy(&frame.body))
    };
    format!("{} [{}] {body}", frame.command, headers.join(", "))
}

/// The header names of a frame, in order.
pub fn header_names(frame: &Frame) -> Vec<&str> {
    frame.headers.iter().map(|(n, _)| n).collect()
}

pub fn connect_frame(accept_version: &str) -> Frame {
    Frame::new(Command::Connect)
        .header("accept-version", accept_version)
        .header("host", "localhost")
}

pub fn subscribe_frame(id: &str, destination: &str) -> Frame {
    Frame::new(Command::Subscribe)
        .header("id", id)
        .header("destination", destination)
}

pub fn begin(id: &str) -> Frame {
    Frame::new(Command::Begin).header("transaction", id)
}

pub fn commit(id: &str) -> Frame {
    Frame::new(Command::Commit).header("transaction", id)
}

pub fn abort(id: &str) -> Frame {
    Frame::new(Command::Abort).header("transaction", id)
}

pub fn send_frame(destination: &str, body: &str) -> Frame {
    Frame::new(Command::Send)
        .header("destination", destination)
        .body(body.to_owned())
}

/// Encodes a frame as STOMP 1.2 bytes.
pub fn encoded(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode(frame, Version::V1_2, &mut out);
    out
}

// ---- queues, acknowledgements, transactions ----

impl Client {
    /// SUBSCRIBE with extra headers (`ack`, `prefetch-count`, …) and a receipt.
    pub async fn subscribe_with(&mut self, id: &str, destination: &str, headers: &[(&str, &str)]) {
        let mut frame = subscribe_frame(id, destination);
        for (name, value) in headers {
            frame.headers.push(name, value);
        }
        self.send_with_receipt(frame).await;
    }

    /// The next frame, which must be a MESSAGE with `body`; returned for its headers.
    pub async fn expect_body(&mut self, body: &str) -> Frame {
        let frame = self.expect(Command::Message).await;
        assert_eq!(
            String::from_utf8_lossy(&frame.body),
            body,
            "{:?}: unexpected MESSAGE {}",
            self.transport,
            show(&frame)
        );
        frame
    }

    /// ACK (or NACK, with `command`) of `message` by its `ack` header, without a receipt.
    pub async fn settle(&mut self, command: Command, message: &Frame) {
        self.send(&settle_frame(command, message)).await;
    }

    /// ACK or NACK of `message` with a receipt; returns once the RECEIPT has arrived, which
    /// comes before any message the acknowledgement lets through.
    pub async fn settle_confirmed(&mut self, command: Command, message: &Frame) {
        self.send_with_receipt(settle_frame(command, message)).await;
    }
}

/// ACK or NACK naming `message` by its `ack` header.
pub fn settle_frame(command: Command, message: &Frame) -> Frame {
    let id = message
        .headers
        .get("ack")
        .unwrap_or_else(|| panic!("MESSAGE without an ack header: {}", show(message)));
    Frame::new(command).header("id", id)
}

/// A SEND of each body to `destination`, encoded back to back, for one large write.
pub fn send_batch(destination: &str, bodies: impl IntoIterator<Item = String>) -> BytesMut {
    let mut out = BytesMut::new();
    for body in bodies {
        encode(&send_frame(destination, &body), Version::V1_2, &mut out);
    }
    out
}

/// Adds a user with this password and these roles to `config`.
pub fn add_user(config: &mut Config, login: &str, password: &str, roles: &[&str]) {
    config.auth.users.push(herald::config::UserConfig {
        login: login.to_owned(),
        passcode_hash: herald::auth::hash_password(password).unwrap(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    });
}

/// An access rule for these actions on these destinations that applies to no one yet: set its
/// users, roles, `authenticated` or `anonymous`.
pub fn access_rule(
    actions: &[herald::config::AccessAction],
    destinations: &[&str],
) -> herald::config::AccessRule {
    herald::config::AccessRule {
        actions: actions.to_vec(),
        destinations: destinations.iter().map(|d| (*d).to_owned()).collect(),
        users: Vec::new(),
        roles: Vec::new(),
        authenticated: false,
        anonymous: false,
    }
}

/// CONNECT 1.2 with `login` and `passcode`.
pub fn login_frame(login: &str, passcode: &str) -> Frame {
    connect_frame("1.2")
        .header("login", login)
        .header("passcode", passcode)
}

impl TestServer {
    /// A session logged in as `login`; returns it with its CONNECTED frame.
    pub async fn login(
        &self,
        transport: Transport,
        login: &str,
        passcode: &str,
    ) -> (Client, Frame) {
        let mut client = self.open(transport).await;
        let connected = client.connect_with(login_frame(login, passcode)).await;
        (client, connected)
    }
}

impl Client {
    /// A TCP client whose connection starts with `preamble` (a PROXY protocol header).
    pub async fn tcp_with_preamble(addr: SocketAddr, preamble: &[u8]) -> Client {
        let mut stream = tcp_connect(addr, None).await;
        stream.set_nodelay(true).unwrap();
        stream.write_all(preamble).await.unwrap();
        Client::new(Transport::Tcp, Io::Tcp(stream), None)
    }

    /// A WebSocket client whose upgrade request carries these extra headers.
    pub async fn ws_with_headers(addr: SocketAddr, headers: &[(&str, &str)]) -> Client {
        let stream = tcp_connect(addr, None).await;
        Client::ws_upgrade(addr, stream, headers).await
    }

    /// A WebSocket client upgraded on `stream`, a connection to `addr`: the request offers the
    /// STOMP sub-protocols and carries these extra headers.
    async fn ws_upgrade(addr: SocketAddr, stream: TcpStream, headers: &[(&str, &str)]) -> Client {
        let mut request = format!("ws://{addr}/ws").into_client_request().unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(STOMP_SUBPROTOCOLS),
        );
        for (name, value) in headers {
            request.headers_mut().append(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let (stream, response) = within(
            TIMEOUT,
            "WebSocket handshake",
            tokio_tungstenite::client_async(request, stream),
        )
        .await
        .unwrap_or_else(|e| panic!("WebSocket upgrade failed: {e}"));
        Client::new(Transport::Ws, Io::Ws(Box::new(stream)), Some(response))
    }
}

impl TestServer {
    /// A connection from another loopback address (`127.0.0.<n>`), on which nothing has been
    /// sent yet: per-address rules (login throttle, limits) see a different client.
    pub async fn open_from(&self, transport: Transport, local: std::net::Ipv4Addr) -> Client {
        let addr = match transport {
            Transport::Tcp => self.tcp_addr,
            Transport::Ws => self.ws_addr,
        };
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((local, 0))).unwrap();
        let stream = within(TIMEOUT, "TCP connect", socket.connect(addr))
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {addr} from {local}: {e}"));
        stream.set_nodelay(true).unwrap();
        match transport {
            Transport::Tcp => Client::new(Transport::Tcp, Io::Tcp(stream), None),
            Transport::Ws => Client::ws_upgrade(addr, stream, &[]).await,
        }
    }
}

/// The session id a CONNECTED frame names.
pub fn session_of(connected: &Frame) -> String {
    connected
        .headers
        .get("session")
        .expect("CONNECTED names the session")
        .to_owned()
}

/// A frame's body as text (invalid UTF-8 replaced).
pub fn body_text(frame: &Frame) -> String {
    String::from_utf8_lossy(&frame.body).into_owned()
}
