//! Listeners, accept loops, connection limits and graceful drain.

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

use crate::config::Config;
use crate::node::Node;
use crate::outbox::OutFrame;
use crate::session::Session;
use crate::transport::{CloseKind, FrameIo, tcp::TcpIo, ws};

/// A bound, not yet serving, Herald node.
#[derive(Debug)]
pub struct Server {
    node: Arc<Node>,
    ws: Option<TcpListener>,
    tcp: Option<TcpListener>,
}

impl Server {
    /// Binds every enabled listener, so address problems show before anything is served.
    pub async fn bind(config: Config) -> io::Result<Server> {
        let ws = match config.websocket.enabled {
            true => Some(bind("websocket", config.websocket.bind).await?),
            false => None,
        };
        let tcp = match config.tcp.enabled {
            true => Some(bind("tcp", config.tcp.bind).await?),
            false => None,
        };
        Ok(Server {
            node: Arc::new(Node::new(config)),
            ws,
            tcp,
        })
    }

    pub fn ws_addr(&self) -> Option<SocketAddr> {
        self.ws.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The state shared by this node's sessions (statistics, routing).
    pub fn node(&self) -> Arc<Node> {
        Arc::clone(&self.node)
    }

    /// Serves until `stop` completes, then drains: stops accepting, asks every session to
    /// flush and close, and waits for them up to the configured drain time.
    pub async fn serve(self, stop: impl Future<Output = ()>) {
        let sessions = TaskTracker::new();
        let admission = Arc::new(Admission::default());
        let mut accept_loops = Vec::new();
        if let Some(listener) = self.ws {
            accept_loops.push(tokio::spawn(accept_loop(
                listener,
                Transport::WebSocket,
                Arc::clone(&self.node),
                sessions.clone(),
                Arc::clone(&admission),
            )));
        }
        if let Some(listener) = self.tcp {
            accept_loops.push(tokio::spawn(accept_loop(
                listener,
                Transport::Tcp,
                Arc::clone(&self.node),
                sessions.clone(),
                Arc::clone(&admission),
            )));
        }
        let sweeper = tokio::spawn(sweep_queues(Arc::clone(&self.node)));
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
    }
}

/// Deletes queues left empty without subscribers past their grace period, and drops expired
/// messages from queues nobody consumes, until the node shuts down.
async fn sweep_queues(node: Arc<Node>) {
    let mut interval = tokio::time::interval(node.queues.sweep_interval());
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = node.shutdown.cancelled() => return,
            _ = interval.tick() => {
                let deleted = node.queues.sweep(std::time::Instant::now());
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

#[derive(Debug, Clone, Copy)]
enum Transport {
    WebSocket,
    Tcp,
}

async fn accept_loop(
    listener: TcpListener,
    transport: Transport,
    node: Arc<Node>,
    sessions: TaskTracker,
    admission: Arc<Admission>,
) {
    loop {
        let accepted = tokio::select! {
            () = node.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
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
        let Some(ticket) = admission.admit(peer.ip(), &node) else {
            node.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
            warn!(%peer, "connection limit reached; refusing connection");
            sessions.spawn(refuse(stream, transport, Arc::clone(&node)));
            continue;
        };
        node.stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let node = Arc::clone(&node);
        sessions.spawn(async move {
            node.stats.connections_open.fetch_add(1, Ordering::Relaxed);
            serve_connection(stream, peer, transport, Arc::clone(&node)).await;
            node.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(ticket);
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    transport: Transport,
    node: Arc<Node>,
) {
    match transport {
        Transport::Tcp => {
            let session = Session::new(node, peer, "tcp");
            session.run(TcpIo::new(stream)).await;
        }
        Transport::WebSocket => {
            let handshake_timeout = Duration::from_millis(node.config.stomp.connect_timeout_ms);
            let upgraded = tokio::select! {
                () = node.shutdown.cancelled() => return,
                upgraded = ws::upgrade(stream, &node.config.websocket, handshake_timeout) => upgraded,
            };
            match upgraded {
                Ok(io) => {
                    let token = io.access_token.clone();
                    Session::new(node, peer, "ws")
                        .with_url_token(token)
                        .run(io)
                        .await;
                }
                Err(e) => tracing::debug!(%peer, error = %e, "websocket upgrade failed"),
            }
        }
    }
}

/// Tells a refused client why, with an ERROR frame: over TCP straight away, over WebSocket
/// after the upgrade (a browser cannot see an HTTP refusal's reason).
async fn refuse(stream: TcpStream, transport: Transport, node: Arc<Node>) {
    // Like every ERROR: a short message and a body with the detail.
    let frame = Frame::new(Command::Error)
        .header("message", "too many connections")
        .header("content-type", "text/plain")
        .body("the connection limit of this node or of this client address is reached");
    let error = OutFrame {
        bytes: encode_to_bytes(&frame, Version::V1_2),
        text: true,
    };
    let bound = Duration::from_secs(2);
    let _ = tokio::time::timeout(bound, async {
        match transport {
            Transport::Tcp => say_and_close(TcpIo::new(stream), error).await,
            Transport::WebSocket => {
                let io = ws::upgrade(stream, &node.config.websocket, bound)
                    .await
                    .map_err(io::Error::other)?;
                say_and_close(io, error).await
            }
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
    address: IpAddr,
}

impl Admission {
    fn admit(self: &Arc<Self>, address: IpAddr, node: &Node) -> Option<Ticket> {
        let limits = &node.config.limits;
        let mut total = self.total.lock();
        if *total >= limits.max_connections {
            return None;
        }
        let mut per_address = self.per_address.lock();
        let count = per_address.entry(address).or_insert(0);
        if *count >= limits.max_connections_per_address {
            return None;
        }
        *count += 1;
        *total += 1;
        Some(Ticket {
            admission: Arc::clone(self),
            address,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        // Lock order: total, then per_address (as in `admit`).
        let mut total = self.admission.total.lock();
        *total -= 1;
        let mut per_address = self.admission.per_address.lock();
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
        }
    }
}
