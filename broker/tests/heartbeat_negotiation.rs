//! Heart-beat negotiation on tokio's paused clock (issue 12, item 15): the server's offer
//! follows what the client asks, down to `stomp.heartbeat_floor_ms`, with the configured
//! values when the client asks for nothing.
//!
//! A session runs here over an in-memory transport rather than a socket: on the paused clock
//! time jumps to the next timer as soon as every task waits, which only an in-memory
//! transport guarantees to happen after the bytes sent have arrived (see heartbeat.rs). So the
//! intervals below are exact, on the configuration's defaults (10 s offer, 1 s floor,
//! tolerance 2).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use herald::config::Config;
use herald::node::Node;
use herald::outbox::OutFrame;
use herald::session::Session;
use herald::transport::{CloseKind, FrameIo};
use herald_protocol::{
    Command, Decoded, Decoder, Frame, Limits, ParseOptions, Version, encode_to_bytes,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The session's side of an in-memory connection: chunks in, flushed batches out.
struct MemoryIo {
    inbound: mpsc::UnboundedReceiver<Vec<u8>>,
    outbound: mpsc::UnboundedSender<Vec<u8>>,
    pending: Vec<u8>,
}

impl FrameIo for MemoryIo {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        match self.inbound.recv().await {
            Some(chunk) => {
                buf.extend_from_slice(&chunk);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn feed(&mut self, frame: OutFrame) -> io::Result<()> {
        self.pending.extend_from_slice(&frame.bytes);
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        let batch = std::mem::take(&mut self.pending);
        self.outbound
            .send(batch)
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    async fn close(&mut self, _kind: CloseKind, _linger: Duration) -> io::Result<()> {
        self.flush().await
    }
}

/// What the client side sees.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Frame(Frame),
    HeartBeat,
    Closed,
}

/// The client's side of the in-memory connection.
struct Peer {
    to_session: Option<mpsc::UnboundedSender<Vec<u8>>>,
    from_session: mpsc::UnboundedReceiver<Vec<u8>>,
    buf: BytesMut,
    decoder: Decoder,
}

impl Peer {
    /// Starts a session of a node with `config` and returns its peer.
    fn start(config: Config) -> Peer {
        let node = Arc::new(Node::new(config));
        let (to_session, inbound) = mpsc::unbounded_channel();
        let (outbound, from_session) = mpsc::unbounded_channel();
        let io = MemoryIo {
            inbound,
            outbound,
            pending: Vec::new(),
        };
        let peer = SocketAddr::from((Ipv4Addr::LOCALHOST, 40_000));
        tokio::spawn(Session::new(node, peer, "memory").run(io));
        Peer {
            to_session: Some(to_session),
            from_session,
            buf: BytesMut::new(),
            decoder: Decoder::new(ParseOptions {
                version: Version::V1_2,
                limits: Limits::DEFAULT,
            }),
        }
    }

    fn send(&self, bytes: &[u8]) {
        let sender = self.to_session.as_ref().expect("connection open");
        sender.send(bytes.to_vec()).expect("session reading");
    }

    /// CONNECT 1.2 with this `heart-beat` header; returns CONNECTED.
    async fn connect(&mut self, heart_beat: &str) -> Frame {
        let connect = Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("heart-beat", heart_beat);
        self.send(&encode_to_bytes(&connect, Version::V1_2));
        match self.next().await {
            Seen::Frame(frame) if frame.command == Command::Connected => frame,
            other => panic!("expected CONNECTED, got {other:?}"),
        }
    }

    /// The next thing the session wrote, or its end.
    async fn next(&mut self) -> Seen {
        loop {
            match self
                .decoder
                .decode(&mut self.buf)
                .expect("server bytes decode")
            {
                Some(Decoded::Frame(frame)) => return Seen::Frame(frame),
                Some(Decoded::HeartBeat) => return Seen::HeartBeat,
                None => {}
            }
            match self.from_session.recv().await {
                Some(batch) => self.buf.extend_from_slice(&batch),
                None => return Seen::Closed,
            }
        }
    }

    /// The next thing seen and how long after `since` it came.
    async fn next_after(&mut self, since: Instant) -> (Seen, Duration) {
        let seen = self.next().await;
        (seen, since.elapsed())
    }

    /// Skips heart-beats to the `heart-beat timeout` ERROR and the close; returns how long
    /// after `since` the ERROR came.
    async fn timed_out_after(&mut self, since: Instant) -> Duration {
        loop {
            match self.next_after(since).await {
                (Seen::HeartBeat, _) => continue,
                (Seen::Frame(frame), after) if frame.command == Command::Error => {
                    assert_eq!(frame.headers.get("message"), Some("heart-beat timeout"));
                    assert_eq!(self.next().await, Seen::Closed);
                    return after;
                }
                (other, _) => panic!("expected the heart-beat timeout ERROR, got {other:?}"),
            }
        }
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

/// The case: a client asking for beats every second both ways was offered 10 s, got
/// its first beat after 10 s, and was closed only 20 s after going silent.
#[tokio::test(start_paused = true)]
async fn one_second_request_is_honoured_both_ways() {
    let mut peer = Peer::start(Config::default());
    let connected = peer.connect("1000,1000").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("1000,1000"));
    let start = Instant::now();
    // The server beats every second while the client keeps quiet...
    assert_eq!(peer.next_after(start).await, (Seen::HeartBeat, ms(1_000)));
    // ...and closes it two seconds (tolerance 2) after its last input, the CONNECT.
    assert_eq!(peer.timed_out_after(start).await, ms(2_000));
}

/// Client beats inside the window keep the session open; the window follows the client's
/// promised interval (1.5 s × 2), not the configured 10 s.
#[tokio::test(start_paused = true)]
async fn the_read_window_follows_the_clients_promise() {
    let mut peer = Peer::start(Config::default());
    let connected = peer.connect("1500,0").await;
    // The server's send side is off (the client wants none): the configured value is offered.
    assert_eq!(connected.headers.get("heart-beat"), Some("10000,1500"));
    for _ in 0..5 {
        tokio::time::sleep(ms(2_900)).await;
        peer.send(b"\n");
    }
    let last_beat = Instant::now();
    assert_eq!(peer.timed_out_after(last_beat).await, ms(3_000));
}

/// A request below the floor gets the floor; a request for nothing gets the configuration
/// and no beats at all.
#[tokio::test(start_paused = true)]
async fn below_the_floor_gets_the_floor_and_nothing_gets_the_configuration() {
    let mut config = Config::default();
    config.stomp.heartbeat_floor_ms = 2_000;
    config.stomp.heartbeat_send_ms = 5_000;
    config.stomp.heartbeat_receive_ms = 6_000;
    let mut peer = Peer::start(config.clone());
    let connected = peer.connect("10,500").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("2000,2000"));
    let start = Instant::now();
    assert_eq!(peer.next_after(start).await, (Seen::HeartBeat, ms(2_000)));

    let mut quiet = Peer::start(config);
    let connected = quiet.connect("0,0").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("5000,6000"));
    // No beat and no timeout within an hour of silence.
    let waited = tokio::time::timeout(Duration::from_secs(3_600), quiet.next()).await;
    assert!(waited.is_err(), "expected silence, got {waited:?}");
}

/// A configured 0 keeps that direction off whatever the client asks.
#[tokio::test(start_paused = true)]
async fn configured_zero_turns_a_direction_off() {
    let mut config = Config::default();
    config.stomp.heartbeat_send_ms = 0;
    let mut peer = Peer::start(config);
    let connected = peer.connect("0,1000").await;
    assert_eq!(connected.headers.get("heart-beat"), Some("0,10000"));
    let waited = tokio::time::timeout(Duration::from_secs(3_600), peer.next()).await;
    assert!(waited.is_err(), "expected silence, got {waited:?}");
}
