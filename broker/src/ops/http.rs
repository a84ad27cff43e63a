//! Serving the operations listener's connections: at most `http.max_connections` at once
//! (more are closed as they arrive), a request head bounded in size and in time
//! (`http.request_timeout_ms`, which also ends idle keep-alive connections), and no
//! connection older than [`MAX_AGE`], so a client that stops reading its response cannot
//! hold a place for ever.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::config::HttpConfig;

/// The longest a connection is served; then it is asked to close after its current request.
/// Scrapers reconnect at once.
const MAX_AGE: Duration = Duration::from_secs(60);
/// hyper's smallest read buffer, and so the largest request head: the operations routes
/// need a request line and a few headers.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a closing connection may take to finish its response.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    connections: usize,
    request_timeout: Duration,
}

impl Limits {
    pub(super) fn from_config(http: &HttpConfig) -> Limits {
        Limits {
            connections: http.max_connections,
            request_timeout: Duration::from_millis(http.request_timeout_ms),
        }
    }
}

pub(super) async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot bind http listener on {addr}: {e}"),
        )
    })?;
    // Not "listening": tests and scripts read those lines for the client listeners.
    info!(addr = %listener.local_addr()?, "http: serving /metrics, /healthz, /readyz");
    Ok(listener)
}

/// Accepts until `stop`, then lets open connections finish their request.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let places = Arc::new(Semaphore::new(limits.connections));
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            debug!(%peer, "http: connection limit reached; closing");
            continue;
        };
        let (app, stop) = (app.clone(), stop.clone());
        connections.spawn(async move {
            serve_connection(stream, app, limits, stop).await;
            drop(place);
        });
    }
    connections.close();
    let _ = tokio::time::timeout(CLOSE_GRACE, connections.wait()).await;
}

async fn serve_connection(stream: TcpStream, app: Router, limits: Limits, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.request_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    tokio::pin!(connection);
    let age = tokio::time::sleep(MAX_AGE);
    tokio::select! {
        served = connection.as_mut() => {
            if let Err(e) = served {
                debug!(error = %e, "http: connection ended");
            }
            return;
        }
        () = stop.cancelled() => {}
        () = age => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.request_timeout.min(CLOSE_GRACE * 5), connection).await;
}
