//! Listeners, accept loops, connection limits and graceful drain; per connection, what
//! comes before the session: a trusted proxy's PROXY header, the TLS handshake, the
//! WebSocket upgrade.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use herald_protocol::{Command, Frame, Version, encode_to_bytes};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::{Config, IpNetwork, TlsConfig};
use crate::metrics::Stats;
use crate::node::Node;
use crate::ops::Ops;
use crate::outbox::OutFrame;
use crate::session::Session;
use crate::transport::stream::Stream;
use crate::transport::tls::Tls;
use crate::transport::{CloseKind, FrameIo, proxy, tcp::TcpIo, ws};

/// A bound, not yet serving, Herald node.
#[derive(Debug)]
pub struct Server {
    node: Arc<Node>,
    ws: Option<(TcpListener, Arc<Listener>)>,
    tcp: Option<(TcpListener, Arc<Listener>)>,
    /// `[http]`: metrics and health.
    ops: Option<Ops>,
}

/// What a listener does with each connection before its session starts.
#[derive(Debug)]
struct Listener {
    transport: Transport,
    tls: Option<Arc<Tls>>,
    /// Peers whose PROXY header (TCP) or `X-Forwarded-For` (WebSocket) is believed.
    trusted_proxies: Vec<IpNetwork>,
}

impl Listener {
    fn new(
        transport: Transport,
        tls: &TlsConfig,
        trusted_proxies: &[IpNetwork],
    ) -> io::Result<Arc<Listener>> {
        let tls = match tls.enabled {
            true => {
                Some(Arc::new(Tls::new(tls).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, e)
                })?))
            }
            false => None,
        };
        Ok(Arc::new(Listener {
            transport,
            tls,
            trusted_proxies: trusted_proxies.to_vec(),
        }))
    }
}

/// How long a stopping node waits for its buffered messages to reach NATS.
const LINK_CLOSE_TIME: Duration = Duration::from_secs(2);

impl Server {
    /// Binds every enabled listener and reads the TLS files, so address and certificate
    /// problems show before anything is served.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let node = Node::start(config).await.map_err(io::Error::other)?;
        let config = &node.config;
        let ws = match config.websocket.enabled {
            true => Some((
                bind("websocket", config.websocket.bind).await?,
                Listener::new(
                    Transport::WebSocket,
                    &config.websocket.tls,
                    &config.websocket.trusted_proxies,
                )?,
            )),
            false => None,
        };
        let tcp = match config.tcp.enabled {
            true => Some((
                bind("tcp", config.tcp.bind).await?,
                Listener::new(Transport::Tcp, &config.tcp.tls, &config.tcp.trusted_proxies)?,
            )),
            false => None,
        };
        let ops = Ops::bind(&node).await?;
        Ok(Server { node, ws, tcp, ops })
    }

    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The operations listener's address, when `[http]` is enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.ops.as_ref().and_then(Ops::local_addr)
    }

    /// Reloads the TLS files of every TLS listener (what SIGHUP does); usable while serving.
    pub fn tls_reload(&self) -> TlsReload {
        let listeners = [&self.ws, &self.tcp]
            .into_iter()
            .flatten()
            .filter_map(|(_, listener)| listener.tls.clone())
            .collect();
        TlsReload { listeners }
    }

    /// The state shared by this node's sessions (statistics, routing).
    pub fn node(&self) -> Arc<Node> {
        Arc::clone(&self.node)
    }

    /// Serves until `stop` completes, then drains: stops accepting, asks every session to
    /// flush and close, and waits for them up to the configured drain time. The operations
    /// listener answers throughout the drain (`/readyz` with 503) and stops last.
    pub async fn serve(self, stop: impl Future<Output = ()>) {
        let reload = self.tls_reload();
        let ops_stop = tokio_util::sync::CancellationToken::new();
        let ops = self.ops.map(|ops| ops.serve(ops_stop.clone()));
        let sessions = TaskTracker::new();
        let admission = Arc::new(Admission::default());
        if !reload.listeners.is_empty() {
            // Registered before serving, so that no SIGHUP meets the default action (exit).
            let hangups = hangups();
            tokio::spawn(reload_on_hangup(
                hangups,
                reload,
                self.node.shutdown.clone(),
            ));
        }
        let mut accept_loops = Vec::new();
        for (socket, listener) in [self.ws, self.tcp].into_iter().flatten() {
            accept_loops.push(tokio::spawn(accept_loop(
                socket,
                listener,
                Arc::clone(&self.node),
                sessions.clone(),
                Arc::clone(&admission),
            )));
        }
        let sweeper = tokio::spawn(sweep_queues(Arc::clone(&self.node)));
        if let Some((serving, _)) = &ops {
            serving.store(true, Ordering::Relaxed);
        }
        stop.await;

        let drain = Duration::from_millis(self.node.config.shutdown.drain_ms);
        info!(
            sessions = sessions.len(),
            drain_ms = drain.as_millis() as u64,
            "stopping: no new connections, draining sessions"
        );
        self.node.shutdown.cancel();
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        let _ = sweeper.await;
        sessions.close();
        if tokio::time::timeout(drain, sessions.wait()).await.is_err() {
            warn!(
                sessions = sessions.len(),
                "drain time over; closing the remaining sessions"
            );
        }
        if let Some(store) = &self.node.queue_store {
            // The messages the closed sessions held go back to JetStream now, not after the
            // ack wait (unless NATS is out of reach).
            if tokio::time::timeout(LINK_CLOSE_TIME + store.settle_time(), store.settled())
                .await
                .is_err()
            {
                warn!(
                    "queue store: some acks and naks were not sent; JetStream redelivers those messages after the ack wait"
                );
            }
        }
        if let Some(link) = &self.node.cluster {
            // What the sessions published last still goes out, unless NATS is out of reach.
            if tokio::time::timeout(LINK_CLOSE_TIME, link.close())
                .await
                .is_err()
            {
                warn!("cluster: messages still buffered for other nodes were not sent");
            }
        }
        ops_stop.cancel();
        if let Some((_, task)) = ops {
            let _ = task.await;
        }
    }
}

/// The TLS listeners of a server, for reloading their certificates.
#[derive(Debug, Clone)]
pub struct TlsReload {
    listeners: Vec<Arc<Tls>>,
}

impl TlsReload {
    /// Reads every TLS listener's files again; new connections get the new certificates,
    /// established sessions keep theirs. A listener whose files fail keeps its old ones.
    pub fn reload(&self) -> Result<(), String> {
        let errors: Vec<String> = self
            .listeners
            .iter()
            .filter_map(|tls| tls.reload().err())
            .collect();
        match errors.is_empty() {
            true => Ok(()),
            false => Err(errors.join("; ")),
        }
    }
}

/// SIGHUP, if it can be listened for.
#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup())
        .inspect_err(|e| {
            warn!(error = %e, "cannot listen for SIGHUP; TLS certificates will not reload");
        })
        .ok()
}

/// Reloads the TLS files on every SIGHUP until the node shuts down.
#[cfg(unix)]
async fn reload_on_hangup(
    hangups: Option<tokio::signal::unix::Signal>,
    reload: TlsReload,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = hangups.recv() => match reload.reload() {
                Ok(()) => info!("SIGHUP: TLS certificates reloaded"),
                Err(e) => warn!(error = %e, "SIGHUP: TLS reload failed; keeping the certificates in use"),
            },
        }
    }
}

#[cfg(not(unix))]
fn hangups() {}

#[cfg(not(unix))]
async fn reload_on_hangup(
    _hangups: (),
    _reload: TlsReload,
    _shutdown: tokio_util::sync::CancellationToken,
) {
}

/// Deletes queues left empty without subscribers past their grace period, and drops expired
/// messages from queues nobody consumes, until the node shuts down.
async fn sweep_queues(node: Arc<Node>) {
    let mut interval = tokio::time::interval(node.router.queues.sweep_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = interval.tick() => {
                let deleted = node.router.queues.sweep(std::time::Instant::now());
                if deleted > 0 {
                    tracing::debug!(deleted, "deleted idle queues");
                }
            }
        }
    }
}

/// Pending connections the kernel may queue per listener (capped by `net.core.somaxconn`).
/// tokio's default of 128 overflows when thousands of clients connect at once, and each
/// overflow costs the client a one-second SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

async fn bind(transport: &'static str, addr: SocketAddr) -> io::Result<TcpListener> {
    let listen = || -> io::Result<TcpListener> {
        let socket = match addr {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // A restarted node can bind again while old connections sit in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let listener = listen().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind {transport} listener on {addr}: {e}"),
        )
    })?;
    info!(transport, addr = %listener.local_addr()?, "listening");
    Ok(listener)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    Tcp,
}

impl Transport {
    /// As sessions, logs and metrics name it.
    fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "ws",
            Transport::Tcp => "tcp",
        }
    }
}

async fn accept_loop(
    socket: TcpListener,
    listener: Arc<Listener>,
    node: Arc<Node>,
    sessions: TaskTracker,
    admission: Arc<Admission>,
) {
    loop {
        let accepted = tokio::select! {
            () = node.shutdown.cancelled() => return,
            accepted = socket.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Small frames must not wait for Nagle's algorithm; batching is done by `flush`.
        let _ = stream.set_nodelay(true);
        // A proxy's connections belong to many clients: their per-address places are taken
        // once the client is known (`serve_connection`), only the node-wide one here.
        let behind_proxy = proxy::is_trusted(peer.ip(), &listener.trusted_proxies);
        let address = (!behind_proxy).then_some(peer.ip());
        let Some(ticket) = admission.admit(address, &node) else {
            refused(&node, peer);
            let (node, listener) = (Arc::clone(&node), Arc::clone(&listener));
            sessions.spawn(async move {
                let bound = Duration::from_secs(2);
                let _ = tokio::time::timeout(bound, async {
                    if let Some((io, _)) = establish(stream, peer, &listener, &node).await {
                        refuse(io).await;
                    }
                })
                .await;
            });
            continue;
        };
        node.stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let open = OpenConnection::new(Arc::clone(&node.stats), ticket, listener.transport);
        let (node, listener) = (Arc::clone(&node), Arc::clone(&listener));
        sessions.spawn(serve_connection(stream, peer, listener, node, open));
    }
}

fn refused(node: &Node, client: SocketAddr) {
    node.stats
        .connections_refused
        .fetch_add(1, Ordering::Relaxed);
    warn!(%client, "connection limit reached; refusing connection");
}

/// An open connection as the statistics and the limits count it. Given back on drop, so
/// that a session task that panics still gives back its place.
struct OpenConnection {
    stats: Arc<Stats>,
    ticket: Ticket,
    transport: Transport,
}

impl OpenConnection {
    fn new(stats: Arc<Stats>, ticket: Ticket, transport: Transport) -> OpenConnection {
        stats.connections_open.fetch_add(1, Ordering::Relaxed);
        stats.record_connection(transport.label(), true);
        OpenConnection {
            stats,
            ticket,
            transport,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
        self.stats.record_connection(self.transport.label(), false);
    }
}

/// The connection's byte stream as its session will use it, by transport.
enum Established {
    Tcp(TcpIo),
    /// Boxed: much larger than a TCP transport, and moved only a few times.
    WebSocket(Box<ws::WsIo>),
}

/// Everything before the session, within the connect timeout: the PROXY header from a
/// trusted proxy, the TLS handshake, the WebSocket upgrade. Returns the transport and the
/// client's address (the peer's, or the one a trusted proxy names); `None` when the
/// connection failed, timed out or was answered and closed.
async fn establish(
    mut stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    node: &Node,
) -> Option<(Established, SocketAddr)> {
    let steps = async {
        let mut client = peer;
        if listener.transport == Transport::Tcp
            && proxy::is_trusted(peer.ip(), &listener.trusted_proxies)
        {
            match proxy::read_header(&mut stream).await {
                Ok(source) => client = source.unwrap_or(peer),
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "PROXY header refused; closing");
                    return None;
                }
            }
        }
        let stream = match &listener.tls {
            None => Stream::Plain(stream),
            Some(tls) => match tls.accept(stream).await {
                Ok(stream) => Stream::Tls(Box::new(stream)),
                Err(e) => {
                    tracing::debug!(%client, error = %e, "TLS handshake failed");
                    return None;
                }
            },
        };
        match listener.transport {
            Transport::Tcp => Some((Established::Tcp(TcpIo::new(stream)), client)),
            Transport::WebSocket => {
                match ws::upgrade(stream, client, &node.config.websocket).await {
                    Ok(io) => {
                        let client = io.client;
                        Some((Established::WebSocket(Box::new(io)), client))
                    }
                    Err(e) => {
                        tracing::debug!(%client, error = %e, "websocket upgrade failed");
                        None
                    }
                }
            }
        }
    };
    let timeout = Duration::from_millis(node.config.stomp.connect_timeout_ms);
    tokio::select! {
        () = node.shutdown.cancelled() => None,
        established = tokio::time::timeout(timeout, steps) => match established {
            Ok(established) => established,
            Err(_) => {
                tracing::debug!(%peer, "connection not established within the connect timeout");
                None
            }
        },
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<Listener>,
    node: Arc<Node>,
    mut open: OpenConnection,
) {
    let Some((io, client)) = establish(stream, peer, &listener, &node).await else {
        return;
    };
    if open.ticket.address.is_none() && !open.ticket.claim(client.ip(), &node) {
        refused(&node, client);
        drop(open);
        return refuse(io).await;
    }
    node.stats.record_session_opened(listener.transport.label());
    match io {
        Established::Tcp(io) => Session::new(node, client, "tcp").run(io).await,
        Established::WebSocket(io) => {
            let token = io.access_token.clone();
            Session::new(node, client, "ws")
                .with_url_token(token)
                .run(*io)
                .await;
        }
    }
}

/// Tells a refused client why, with an ERROR frame: over TCP straight away, over WebSocket
/// after the upgrade (a browser cannot see an HTTP refusal's reason).
async fn refuse(io: Established) {
    // Like every ERROR: a short message and a body with the detail.
    let frame = Frame::new(Command::Error)
        .header("message", "too many connections")
        .header("content-type", "text/plain")
        .body("the connection limit of this node or of this client address is reached");
    let error = OutFrame {
        bytes: encode_to_bytes(&frame, Version::V1_2),
        text: true,
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        match io {
            Established::Tcp(io) => say_and_close(io, error).await,
            Established::WebSocket(io) => say_and_close(*io, error).await,
        }
    })
    .await;
}

/// Writes one frame and closes like a session does: dropping the socket with the client's
/// CONNECT unread would reset the connection and could destroy the frame.
async fn say_and_close(mut io: impl FrameIo, frame: OutFrame) -> io::Result<()> {
    io.feed(frame).await?;
    io.close(CloseKind::Normal, Duration::from_secs(1)).await
}

/// Connection limits per node and per client address.
#[derive(Debug, Default)]
struct Admission {
    per_address: Mutex<HashMap<IpAddr, usize>>,
    total: Mutex<usize>,
}

/// A place taken by one connection; given back when dropped.
struct Ticket {
    admission: Arc<Admission>,
    /// The client address whose place it holds too; `None` until a proxied connection's
    /// client is known.
    address: Option<IpAddr>,
}

impl Admission {
    /// A node-wide place, and one for `address` if given.
    fn admit(self: &Arc<Self>, address: Option<IpAddr>, node: &Node) -> Option<Ticket> {
        let limits = &node.config.limits;
        let mut total = self.total.lock();
        if *total >= limits.max_connections {
            return None;
        }
        if let Some(address) = address {
            if !self.take_address(address, node) {
                return None;
            }
        }
        *total += 1;
        Some(Ticket {
            admission: Arc::clone(self),
            address,
        })
    }

    fn take_address(&self, address: IpAddr, node: &Node) -> bool {
        let mut per_address = self.per_address.lock();
        let count = per_address.entry(address).or_insert(0);
        if *count >= node.config.limits.max_connections_per_address {
            return false;
        }
        *count += 1;
        true
    }
}

impl Ticket {
    /// Takes the per-address place of a proxied connection's client.
    fn claim(&mut self, address: IpAddr, node: &Node) -> bool {
        let taken = self.admission.take_address(address, node);
        if taken {
            self.address = Some(address);
        }
        taken
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Lock order: total, then per_address (as in `admit`).
        let mut total = self.admission.total.lock();
        *total -= 1;
        let Some(address) = self.address else {
            return;
        };
        let mut per_address = self.admission.per_address.lock();
        if let Some(count) = per_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session task that panics still gives back its open-connection count and its
    /// places (issue 12, item 1: the count never went down).
    #[tokio::test]
    async fn a_panicking_session_task_gives_back_its_place() {
        let mut config = Config::default();
        config.limits.max_connections_per_address = 1;
        let node = Arc::new(Node::new(config));
        let admission = Arc::new(Admission::default());
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let ticket = admission.admit(Some(client), &node).unwrap();
        assert!(admission.admit(Some(client), &node).is_none());
        let open = OpenConnection::new(Arc::clone(&node.stats), ticket, Transport::Tcp);
        assert_eq!(node.stats.connections_open.load(Ordering::Relaxed), 1);
        let task = tokio::spawn(async move {
            let _open = open;
            panic!("a session bug");
        });
        assert!(task.await.unwrap_err().is_panic());
        assert_eq!(node.stats.connections_open.load(Ordering::Relaxed), 0);
        assert_eq!(*admission.total.lock(), 0);
        assert!(admission.admit(Some(client), &node).is_some());
    }

    /// A proxied connection takes its client's per-address place once the client is known.
    #[test]
    fn proxied_connections_count_against_their_client() {
        let mut config = Config::default();
        config.limits.max_connections_per_address = 1;
        let node = Node::new(config);
        let admission = Arc::new(Admission::default());
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let mut first = admission.admit(None, &node).unwrap();
        let mut second = admission.admit(None, &node).unwrap();
        assert!(first.claim(client, &node));
        assert!(!second.claim(client, &node));
        assert!(second.claim("192.0.2.2".parse().unwrap(), &node));
        drop(first);
        assert!(admission.per_address.lock().get(&client).is_none());
    }
}
