//! One task per connection: reads and decodes frames, acts on them, and drains the
//! session's outbox to the socket in batches. The same code serves WebSocket and TCP.

mod acks;
pub mod close;
mod commands;
pub mod connect;
mod frames;
mod pause;
#[cfg(test)]
mod tests;
mod transaction;
mod unconfirmed;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use herald_protocol::heartbeat::Negotiated;
use herald_protocol::{
    Command, Decoded, Decoder, Frame, Limits, ParseError, ParseOptions, Version,
};
use std::panic::AssertUnwindSafe;
use tokio::time::{Instant, sleep_until, timeout};
use tracing::{debug, error, info, warn};

use crate::config::{AccessAction, OverflowPolicy};
use crate::metrics::Written;
use crate::node::Node;
use crate::outbox::{OutFrame, Outbox};
use crate::routing::kicks::Kick;
use crate::routing::queue::{AckMode, Creator, Queue};
use crate::routing::router::Route;
use crate::routing::subscriber::Subscriber;
use crate::transport::{CloseKind, FrameIo, InputTooLarge};
use close::{CloseReason, ErrorReply};

/// How long a closing connection waits for the peer to close its side.
const CLOSE_LINGER: Duration = Duration::from_secs(1);
/// A deadline far enough away to mean "never" for a timer that must exist.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// One STOMP session on one connection.
#[derive(Debug)]
pub struct Session {
    node: Arc<Node>,
    /// Routing key of this session.
    key: u64,
    /// The id sent in CONNECTED.
    id: String,
    peer: SocketAddr,
    transport: &'static str,
    outbox: Arc<Outbox>,
    decoder: Decoder,
    /// Set once CONNECT has been accepted.
    version: Option<Version>,
    /// The authenticated user name; `None` for an anonymous session.
    user: Option<String>,
    /// The authenticated user's roles.
    roles: Vec<String>,
    /// Authorization verdicts already reached, by action and destination.
    verdicts: HashMap<(AccessAction, String), bool>,
    /// The `access_token` of the WebSocket URL, until CONNECT.
    url_token: Option<String>,
    /// When the session's token expires: ERROR `token expired`, then close.
    token_expires: Option<Instant>,
    heartbeat: Negotiated,
    /// Active subscriptions by subscription id.
    subscriptions: HashMap<String, Subscription>,
    /// Client-ack subscriptions by the tag in their ack ids.
    acks: acks::AckIndex,
    transactions: transaction::Transactions,
    /// Queues to let deliver once the current frame is answered.
    pumps: Vec<(Arc<Queue>, Subscriber)>,
    /// Reading is paused until what this session routed has room (back-pressure).
    /// Boxed: rare, and inline it would enlarge every idle session.
    pause: Option<Box<pause::Pause>>,
    /// SENDs to durable queues the store has not confirmed yet.
    unconfirmed: Option<Box<unconfirmed::Unconfirmed>>,
    /// `finish` ran to its end: `Drop` has nothing left to clean up.
    closed: bool,
    /// Counts the queues this session created, against `queues.max_queues_per_session`.
    creator: Creator,
    /// How the operator closes this session, once CONNECT named a user.
    kick: Option<Kick>,
    last_read: Instant,
    last_write: Instant,
    /// When the connection was accepted, and what went through it: for the closing log line.
    opened: Instant,
    traffic: Traffic,
}

/// A session's traffic, as its closing log line reports it.
#[derive(Debug, Default)]
struct Traffic {
    frames_in: u64,
    messages_out: u64,
    bytes_out: u64,
}

impl Traffic {
    fn add_written(&mut self, written: &Written) {
        self.messages_out += u64::from(written.messages());
        self.bytes_out += written.bytes();
    }
}

#[derive(Debug)]
struct Subscription {
    /// Where routing put it.
    route: Route,
    subscriber: Subscriber,
    ack: AckMode,
    /// Names the subscription in its ack ids.
    tag: u64,
}

impl Session {
    pub fn new(node: Arc<Node>, peer: SocketAddr, transport: &'static str) -> Session {
        let (key, id) = node.next_session();
        // Past the high-water mark, one largest frame still fits: any message the broker
        // accepts can reach a subscriber that reads.
        let outbox = Arc::new(
            Outbox::new(node.config.outbox.max_bytes, node.config.outbox.overflow)
                .with_burst_bytes(node.config.limits.max_frame_bytes),
        );
        let decoder = Decoder::new(ParseOptions {
            // Only CONNECT and STOMP are valid now, and they are never escaped.
            version: Version::V1_2,
            limits: limits(&node, false),
        });
        let now = Instant::now();
        Session {
            node,
            key,
            id,
            peer,
            transport,
            outbox,
            decoder,
            version: None,
            user: None,
            roles: Vec::new(),
            verdicts: HashMap::new(),
            url_token: None,
            token_expires: None,
            heartbeat: Negotiated {
                server_sends_every: None,
                client_sends_every: None,
            },
            subscriptions: HashMap::new(),
            acks: acks::AckIndex::default(),
            transactions: transaction::Transactions::default(),
            pumps: Vec::new(),
            pause: None,
            unconfirmed: None,
            closed: false,
            creator: Creator::default(),
            kick: None,
            last_read: now,
            last_write: now,
            opened: now,
            traffic: Traffic::default(),
        }
    }

    /// Gives the session the `access_token` of its WebSocket URL, a credential for CONNECT.
    pub fn with_url_token(mut self, token: Option<String>) -> Session {
        self.url_token = token;
        self
    }

    /// Serves the connection until it ends, then cleans up.
    pub async fn run<T: FrameIo>(mut self, mut io: T) {
        // A bug that panics must cost this one connection only: the client gets an ERROR
        // and the session leaves routing as usual (`Drop` does it if even that panics).
        let served = AssertUnwindSafe(self.serve(&mut io)).catch_unwind().await;
        let reason = served.unwrap_or_else(|panic| {
            let what = panic_message(panic.as_ref());
            error!(session = %self.id, peer = %self.peer, panic = what, "session task panicked");
            CloseReason::Internal
        });
        // Boxed: it runs once, and inline its state would enlarge every idle session's task.
        Box::pin(self.finish(&mut io, reason)).await;
    }

    async fn serve<T: FrameIo>(&mut self, io: &mut T) -> CloseReason {
        let mut input = BytesMut::new();
        let connect_by = Instant::now() + ms(self.node.config.stomp.connect_timeout_ms);
        let read_timer = sleep_until(connect_by);
        let beat_timer = sleep_until(Instant::now() + FAR);
        tokio::pin!(read_timer, beat_timer);
        // Replaced by the session's kick token (a child of it) once CONNECT names a user.
        let mut shutdown = self.node.shutdown.clone();
        let outbox = Arc::clone(&self.outbox);
        loop {
            let was_connected = self.version.is_some();
            let was_paused = self.pause.is_some();
            let was_held_back = self.held_back();
            let unread = input.len();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return self.cancelled(),
                () = wait_pause(self.pause.as_deref_mut()), if was_paused => {
                    if let Err(reason) = self.settle_pause() {
                        return reason;
                    }
                    if !self.held_back() {
                        // The frames read before the pause come first.
                        if let Err(reason) = self.consume_input(&mut input).await {
                            return reason;
                        }
                    }
                }
                confirmed = next_confirmed(self.unconfirmed.as_deref_mut()) => {
                    if let Err(reason) = self.on_confirmed(confirmed) {
                        return reason;
                    }
                    if was_held_back && !self.held_back() {
                        if let Err(reason) = self.consume_input(&mut input).await {
                            return reason;
                        }
                    }
                }
                read = io.read(&mut input), if !was_held_back => {
                    match read {
                        Ok(true) => {}
                        Ok(false) => return CloseReason::PeerClosed,
                        Err(e) => return self.read_error(e),
                    }
                    self.node.stats.record_bytes_in(input.len().saturating_sub(unread));
                    // Any inbound byte, or a WebSocket ping, counts as life.
                    self.last_read = Instant::now();
                    if let Err(reason) = self.consume_input(&mut input).await {
                        return reason;
                    }
                }
                () = outbox.ready() => {}
                () = &mut read_timer => {
                    // One timer serves the CONNECT deadline, the heart-beat read window and
                    // the token's expiry (a timer less per idle session).
                    if self.token_expires.is_some_and(|at| at <= Instant::now()) {
                        return CloseReason::Protocol(ErrorReply::new(
                            "token expired",
                            "the token this session authenticated with has expired",
                        ));
                    }
                    match self.read_window_end(connect_by) {
                        Some(deadline) if deadline <= Instant::now() => {
                            return if self.version.is_some() {
                                CloseReason::HeartbeatTimeout
                            } else {
                                CloseReason::ConnectTimeout
                            };
                        }
                        _ => read_timer
                            .as_mut()
                            .reset(self.read_deadline(connect_by).unwrap_or_else(far)),
                    }
                }
                () = &mut beat_timer => {
                    if let Some(every) = self.heartbeat.server_sends_every {
                        if self.last_write + every <= Instant::now() {
                            self.outbox.push_control(OutFrame {
                                bytes: Bytes::from_static(b"\n"),
                                text: true,
                            });
                        }
                    }
                }
            }
            if let Err(reason) = self.write_queued(io).await {
                return reason;
            }
            if let (false, Some(kick)) = (was_connected, &self.kick) {
                shutdown = kick.token().clone();
            }
            if was_held_back && !self.held_back() {
                // Nothing was read meanwhile: the client's heart-beats wait in the socket.
                self.last_read = Instant::now();
            }
            if (!was_connected && self.version.is_some()) || was_held_back != self.held_back() {
                // CONNECT accepted: the read window is now the heart-beat window. A pause
                // suspends it (nothing is read), and its end starts it afresh.
                read_timer
                    .as_mut()
                    .reset(self.read_deadline(connect_by).unwrap_or_else(far));
            }
            if let Some(every) = self.heartbeat.server_sends_every {
                beat_timer.as_mut().reset(self.last_write + every);
            }
        }
    }

    /// Acts on the frames in `input` until it holds no complete frame or the session pauses.
    /// A CONNECT stops decoding: checking credentials waits (login throttle, password hashing
    /// off the runtime), and what follows it is read with the limits and version it sets.
    async fn consume_input(&mut self, input: &mut BytesMut) -> Result<(), CloseReason> {
        let shutdown = self.node.shutdown.clone();
        while let Some(connect) = self.process_input(input)? {
            tokio::select! {
                () = shutdown.cancelled() => return Err(CloseReason::Shutdown),
                // Boxed: it runs once, and inline its state would enlarge every idle
                // session's task.
                connected = Box::pin(self.on_connect(&connect)) => connected?,
            }
        }
        if input.is_empty() {
            // Idle connections keep no read buffer; the next read reserves one.
            *input = BytesMut::new();
        }
        Ok(())
    }

    /// Whether reading waits: a pause, or the stores in flight (a full window, or a frame
    /// that waits for them).
    fn held_back(&self) -> bool {
        let js = &self.node.config.queues.jetstream;
        self.pause.is_some()
            || self.unconfirmed.as_ref().is_some_and(|unconfirmed| {
                unconfirmed.holds_back(js.max_unconfirmed_sends, js.max_unconfirmed_bytes)
            })
    }

    /// A store was confirmed (its RECEIPT goes out) or refused (ERROR, and the session
    /// ends: the client must not believe later SENDs stored either). Once none is in flight,
    /// the frame that waited for them is handled.
    fn on_confirmed(&mut self, confirmed: unconfirmed::Confirmed) -> Result<(), CloseReason> {
        let version = self.version.unwrap_or(Version::V1_2);
        match confirmed.result {
            Ok(()) => {
                if let Some(receipt) = confirmed.receipt {
                    self.outbox.push_control(frames::receipt(&receipt, version));
                }
            }
            Err(refusal) => {
                warn!(session = %self.id, peer = %self.peer, detail = %refusal.detail, "queue store refused a SEND");
                let detail = match confirmed.context {
                    Some(context) => format!("{context}: {}", refusal.detail),
                    None => refusal.detail,
                };
                return Err(CloseReason::Protocol(
                    ErrorReply::new(refusal.message, detail)
                        .for_receipt(confirmed.error_receipt.as_deref()),
                ));
            }
        }
        if let Some(frame) = self.unconfirmed.as_mut().and_then(|u| u.release()) {
            self.handle(frame)?;
        }
        if self.unconfirmed.as_ref().is_some_and(|u| u.is_done()) {
            self.unconfirmed = None;
        }
        Ok(())
    }

    /// Starts or extends a pause until these subscribers' outboxes have room.
    pub(super) fn wait_for_room(&mut self, congested: Vec<Arc<Outbox>>) {
        if congested.is_empty() {
            return;
        }
        self.node.stats.record_backpressure_pause();
        let until = Instant::now() + ms(self.node.config.outbox.max_pause_ms);
        self.pause
            .get_or_insert_with(Box::default)
            .wait_for_outboxes(until, congested);
    }

    /// After a pause's wait: publishes a blocked SEND again, forgets subscribers that have
    /// room, closes those still congested when their time is up, and ends the pause once
    /// nothing is left to wait for.
    fn settle_pause(&mut self) -> Result<(), CloseReason> {
        let now = Instant::now();
        if let Some(held) = self
            .pause
            .as_mut()
            .and_then(|p| p.held.take_if(|h| h.settled.is_some()))
        {
            self.settle_held(held)?;
        }
        if let Some(blocked) = self.pause.as_mut().and_then(|p| p.blocked.take()) {
            self.retry_blocked(blocked, now)?;
        }
        let Some(pause) = self.pause.as_mut() else {
            return Ok(());
        };
        let closed = pause.settle_outboxes(now);
        if closed > 0 {
            self.node
                .stats
                .backpressure_timeouts
                .fetch_add(closed as u64, std::sync::atomic::Ordering::Relaxed);
            warn!(session = %self.id, peer = %self.peer, closed, "subscribers stayed above their outbox mark for outbox.max_pause_ms; closing them as slow consumers");
        }
        if pause.is_over() {
            self.pause = None;
            // Nothing was read while paused: the client's heart-beats wait in the socket.
            self.last_read = Instant::now();
        }
        Ok(())
    }

    /// When silence becomes fatal: the CONNECT deadline, then the heart-beat read window
    /// (none while paused: the session is not reading).
    fn read_window_end(&self, connect_by: Instant) -> Option<Instant> {
        if self.version.is_none() {
            return Some(connect_by);
        }
        if self.held_back() {
            return None;
        }
        self.heartbeat
            .read_timeout(self.node.config.stomp.heartbeat_tolerance)
            .map(|window| self.last_read + window)
    }

    /// When the read timer must next fire: the end of the read window or the token's expiry,
    /// whichever comes first.
    fn read_deadline(&self, connect_by: Instant) -> Option<Instant> {
        match (self.read_window_end(connect_by), self.token_expires) {
            (Some(window), Some(expiry)) => Some(window.min(expiry)),
            (window, expiry) => window.or(expiry),
        }
    }

    /// Decodes and acts on every complete frame in `input`, up to a CONNECT (or STOMP) of a
    /// session not yet connected, which is returned for `serve` to await.
    fn process_input(&mut self, input: &mut BytesMut) -> Result<Option<Frame>, CloseReason> {
        loop {
            if self.held_back() {
                // The rest of `input` waits until the pause ends.
                return Ok(None);
            }
            let decoded = self.decoder.decode(input);
            if let Ok(Some(Decoded::Frame(frame))) = &decoded {
                self.node.stats.record_frame_in(frame.command);
                self.traffic.frames_in += 1;
            }
            match decoded {
                Ok(Some(Decoded::Frame(frame)))
                    if self.version.is_none()
                        && matches!(frame.command, Command::Connect | Command::Stomp) =>
                {
                    return Ok(Some(frame));
                }
                Ok(Some(Decoded::Frame(frame))) => match self.unconfirmed.as_mut() {
                    Some(unconfirmed) if unconfirmed.must_wait(&frame) => unconfirmed.hold(frame),
                    _ => self.handle(frame)?,
                },
                Ok(Some(Decoded::HeartBeat)) => {}
                Ok(None) => return Ok(None),
                Err(e) => return Err(self.parse_error(e)),
            }
        }
    }

    /// A failed read: a size limit of the transport is a protocol error (ERROR, then close);
    /// anything else means the connection is gone.
    fn read_error(&self, error: std::io::Error) -> CloseReason {
        match InputTooLarge::find(&error) {
            Some(too_large) => {
                warn!(session = %self.id, peer = %self.peer, error = %too_large, "limit exceeded");
                CloseReason::Protocol(ErrorReply::new("message too large", too_large.to_string()))
            }
            None => CloseReason::Io(error),
        }
    }

    fn parse_error(&self, error: ParseError) -> CloseReason {
        let limit = matches!(
            error,
            ParseError::FrameTooLarge { .. }
                | ParseError::BodyTooLarge { .. }
                | ParseError::TooManyHeaders { .. }
                | ParseError::HeaderLineTooLong { .. }
        );
        if limit {
            warn!(session = %self.id, peer = %self.peer, %error, "limit exceeded");
        }
        CloseReason::Protocol(ErrorReply::new(
            error.to_string(),
            format!("the frame could not be read: {error}"),
        ))
    }

    /// Writes everything queued with one flush, or fails if the write makes no progress
    /// within the configured stall time.
    async fn write_queued<T: FrameIo>(&mut self, io: &mut T) -> Result<(), CloseReason> {
        let drained = self.outbox.drain();
        if drained.overflowed {
            return Err(CloseReason::SlowConsumer);
        }
        if drained.frames.is_empty() {
            return Ok(());
        }
        let stall = ms(self.node.config.outbox.max_stall_ms);
        let outbox = Arc::clone(&self.outbox);
        let tally = Written::of(drained.frames.iter().map(|f| f.bytes.as_ref()));
        let write = write_all(io, drained.frames);
        tokio::pin!(write);
        // Most writes complete at once (the socket has room): those register no stall timer
        // and no overflow waiter, which would cost more than the write itself.
        let written = match futures_util::poll!(write.as_mut()) {
            Poll::Ready(written) => Ok(written),
            // A client that stops reading blocks this write while routing keeps filling the
            // outbox: its overflow ends the write (transports resume cleanly after a
            // cancelled write, so the ERROR that follows is still a whole frame).
            Poll::Pending => tokio::select! {
                written = timeout(stall, write) => written,
                () = outbox.overflowed() => return Err(CloseReason::SlowConsumer),
            },
        };
        match written {
            Err(_) => Err(CloseReason::WriteStalled),
            Ok(Err(e)) => Err(CloseReason::Io(e)),
            Ok(Ok(())) => {
                self.node.stats.record_written(&tally, drained.since);
                self.traffic.add_written(&tally);
                self.last_write = Instant::now();
                if drained.refused {
                    // A queue held a message back for lack of room; there is room now.
                    self.resume_queues();
                }
                Ok(())
            }
        }
    }

    /// Leaves routing, says goodbye as the reason requires, and closes the connection.
    /// Takes the session out of everything shared: transactions, topic subscriptions, the
    /// user directory, queue consumers (their unacknowledged messages go back to the queue
    /// for other consumers). Safe to call twice.
    fn leave_routing(&mut self) {
        if let (Some(user), Some(_)) = (&self.user, self.kick.take()) {
            self.node.kicks.leave(user, &self.id);
        }
        self.transactions.abort_all();
        self.pumps.clear();
        self.pause = None;
        // Stores in flight may still complete; their RECEIPTs are never sent.
        self.unconfirmed = None;
        let subscriptions = std::mem::take(&mut self.subscriptions);
        self.node.router.unsubscribe_session(
            &self.id,
            subscriptions.values().map(|s| (&s.route, &s.subscriber)),
        );
    }

    async fn finish<T: FrameIo>(&mut self, io: &mut T, reason: CloseReason) {
        self.leave_routing();
        let kind = match reason {
            CloseReason::Shutdown => CloseKind::GoingAway,
            _ => CloseKind::Normal,
        };
        let can_write = !matches!(
            reason,
            CloseReason::PeerClosed | CloseReason::Io(_) | CloseReason::WriteStalled
        );
        if can_write {
            // A connection that never became a STOMP session is told nothing on shutdown.
            let tell = self.version.is_some() || !matches!(reason, CloseReason::Shutdown);
            if let Some(reply) = reason.error_reply().filter(|_| tell) {
                self.outbox
                    .push_control(frames::error(&reply, self.version.unwrap_or(Version::V1_2)));
            }
            // Queued messages (or, for a slow consumer, the ERROR alone) go out first; the
            // overall bound is the drain time on shutdown and the stall time otherwise.
            let bound = match reason {
                CloseReason::Shutdown => ms(self.node.config.shutdown.drain_ms),
                _ => ms(self.node.config.outbox.max_stall_ms),
            };
            let drained = self.outbox.drain();
            let tally = Written::of(drained.frames.iter().map(|f| f.bytes.as_ref()));
            let stats = &self.node.stats;
            let traffic = &mut self.traffic;
            let _ = timeout(bound, async {
                write_all(io, drained.frames).await?;
                stats.record_written(&tally, drained.since);
                traffic.add_written(&tally);
                io.close(kind, CLOSE_LINGER).await
            })
            .await;
        }
        self.outbox.close();
        if matches!(reason, CloseReason::SlowConsumer) {
            // What its outbox held when it overflowed (under `drop_oldest` routing counted
            // each drop as it happened, and this outbox never overflows).
            if self.node.config.outbox.overflow == OverflowPolicy::Close {
                self.node.stats.record_dropped(self.outbox.dropped());
            }
        }
        self.node.stats.record_close(reason.label());
        self.closed = true;
        self.log_close(&reason);
    }

    /// One line per session at its end: `info` for a session that was opened (a warning for a
    /// slow consumer), `debug` for a connection that never was (scanners, health checks).
    fn log_close(&self, reason: &CloseReason) {
        let Traffic {
            frames_in,
            messages_out,
            bytes_out,
        } = self.traffic;
        let duration_ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        let user = self.user.as_deref().unwrap_or("-");
        macro_rules! close_line {
            ($level:ident, $message:literal) => {
                $level!(
                    session = %self.id,
                    peer = %self.peer,
                    transport = self.transport,
                    user,
                    reason = %reason,
                    duration_ms,
                    frames_in,
                    messages_out,
                    bytes_out,
                    $message
                )
            };
        }
        match reason {
            CloseReason::SlowConsumer | CloseReason::WriteStalled => {
                close_line!(warn, "session closed: slow consumer");
            }
            _ if self.version.is_some() => close_line!(info, "session closed"),
            _ => close_line!(debug, "connection closed before CONNECT"),
        }
    }
}

impl Drop for Session {
    /// Cleanup that must happen however the session's task ends: normally `finish` has done
    /// it; after a panic in `finish`, or when the task is dropped mid-way (runtime shutdown),
    /// this does.
    fn drop(&mut self) {
        if !self.closed {
            self.leave_routing();
            self.outbox.close();
            self.node.stats.record_close(CloseReason::Internal.label());
        }
    }
}

impl Session {
    /// Why the shutdown token (or the session's kick token, its child) was cancelled.
    fn cancelled(&self) -> CloseReason {
        match self.kick.as_ref().and_then(Kick::reason) {
            Some(reason) => CloseReason::Kicked(reason.to_owned()),
            None => CloseReason::Shutdown,
        }
    }
}

/// The text of a panic's payload, for the log.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// The next store confirmed (never, while none is in flight).
async fn next_confirmed(
    unconfirmed: Option<&mut unconfirmed::Unconfirmed>,
) -> unconfirmed::Confirmed {
    match unconfirmed {
        Some(unconfirmed) => unconfirmed.next().await,
        None => std::future::pending().await,
    }
}

/// Completes when a paused session may go on (never when it is not paused).
async fn wait_pause(pause: Option<&mut pause::Pause>) {
    match pause {
        // Boxed: allocated only while paused; inline, its timers and waiters would enlarge
        // every idle session's task.
        Some(pause) => Box::pin(pause.changed()).await,
        None => std::future::pending().await,
    }
}

async fn write_all<T: FrameIo>(io: &mut T, frames: Vec<OutFrame>) -> std::io::Result<()> {
    if frames.is_empty() {
        return Ok(());
    }
    for frame in frames {
        io.feed(frame).await?;
    }
    io.flush().await
}

/// Parser limits before CONNECT (small) and after.
fn limits(node: &Node, connected: bool) -> Limits {
    let limits = &node.config.limits;
    let frame = if connected {
        limits.max_frame_bytes
    } else {
        limits.max_frame_bytes_before_connect
    };
    Limits {
        max_frame_bytes: frame,
        max_headers: limits.max_headers,
        max_header_line_bytes: limits.max_header_line_bytes,
        max_body_bytes: frame,
    }
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

fn far() -> Instant {
    Instant::now() + FAR
}
