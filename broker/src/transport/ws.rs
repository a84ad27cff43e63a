//! STOMP over WebSocket: the upgrade (path, Origin allow-list, sub-protocol echo) and the
//! message stream. Frames may be split across messages and several may share one message;
//! the session's decoder sees one byte stream either way.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::{CloseKind, FrameIo, InputTooLarge};
use crate::config::{OutboundMessageType, WebSocketConfig as WsSettings};
use crate::outbox::OutFrame;

/// STOMP sub-protocols, best first. Browsers fail the handshake when they offered
/// sub-protocols and the server echoes none, so one of these is echoed when offered.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// How long answering a client's close frame may take.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct WsIo {
    stream: WebSocketStream<TcpStream>,
    outbound: OutboundMessageType,
    /// The `access_token` query parameter of the upgrade URL: a credential for CONNECT,
    /// since browsers cannot set headers on a WebSocket.
    pub access_token: Option<String>,
}

/// Why an upgrade was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("websocket handshake: {0}")]
    Handshake(#[from] WsError),
    #[error("websocket handshake timed out")]
    Timeout,
}

/// Performs the WebSocket upgrade on an accepted TCP connection.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
pub async fn upgrade(
    stream: TcpStream,
    settings: &WsSettings,
    timeout: Duration,
) -> Result<WsIo, UpgradeError> {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(settings.read_buffer_bytes)
        // Writes are flushed explicitly once per batch; this is only the auto-flush point.
        .write_buffer_size(settings.read_buffer_bytes)
        .max_write_buffer_size(settings.max_write_buffer_bytes)
        .max_message_size(Some(settings.max_message_bytes))
        .max_frame_size(Some(settings.max_message_bytes));
    let mut access_token = None;
    let callback = |request: &Request, response: Response| {
        access_token = url_access_token(request);
        check_upgrade(request, response, settings)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let stream = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| UpgradeError::Timeout)??;
    Ok(WsIo {
        stream,
        outbound: settings.outbound_message_type,
        access_token,
    })
}

/// `access_token=<token>` from the request's query string (JWT characters need no decoding).
fn url_access_token(request: &Request) -> Option<String> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
}

/// Accepts the upgrade on a configured path from an allowed origin, echoing the best STOMP
/// sub-protocol the client offered. The large error type is tungstenite's callback contract.
#[allow(clippy::result_large_err)]
fn check_upgrade(
    request: &Request,
    mut response: Response,
    settings: &WsSettings,
) -> Result<Response, ErrorResponse> {
    let path = request.uri().path();
    if !settings.paths.iter().any(|p| p == path) {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            "no WebSocket endpoint at this path",
        ));
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let allowed = settings.allowed_origins.is_empty()
            || settings
                .allowed_origins
                .iter()
                .any(|o| o.as_bytes() == origin.as_bytes());
        if !allowed {
            return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed"));
        }
    }
    if let Some(chosen) = choose_subprotocol(request) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(chosen),
        );
    }
    Ok(response)
}

fn choose_subprotocol(request: &Request) -> Option<&'static str> {
    let offered: Vec<&str> = request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    SUBPROTOCOLS.into_iter().find(|p| offered.contains(p))
}

fn refuse(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

fn to_io(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::ConnectionAborted, e)
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}

impl FrameIo for WsIo {
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<bool> {
        match self.stream.next().await {
            None => Ok(false),
            Some(Ok(Message::Close(_))) => {
                // tungstenite has queued the close reply (RFC 6455 section 5.5.1); send it, or
                // the client sees the connection dropped instead of a clean close.
                let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, self.stream.flush()).await;
                Ok(false)
            }
            Some(Ok(Message::Text(text))) => {
                buf.extend_from_slice(text.as_bytes());
                Ok(true)
            }
            Some(Ok(Message::Binary(data))) => {
                buf.extend_from_slice(&data);
                Ok(true)
            }
            // Pings are answered by tungstenite itself; like pongs they only show life.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(true),
            Some(Err(WsError::Capacity(e))) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                InputTooLarge(format!("websocket message too large: {e}")),
            )),
            Some(Err(e)) => Err(to_io(e)),
        }
    }

    async fn feed(&mut self, frame: OutFrame) -> io::Result<()> {
        let text = match self.outbound {
            OutboundMessageType::Auto => frame.text,
            OutboundMessageType::Text => true,
            OutboundMessageType::Binary => false,
        };
        let message = if text {
            // A clone of `Bytes` is a reference count, not a copy.
            match Utf8Bytes::try_from(frame.bytes.clone()) {
                Ok(text) => Message::Text(text),
                // Forced text mode with a binary body: binary is the only faithful choice.
                Err(_) => Message::Binary(frame.bytes),
            }
        } else {
            Message::Binary(frame.bytes)
        };
        self.stream.feed(message).await.map_err(to_io)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await.map_err(to_io)
    }

    async fn close(&mut self, kind: CloseKind, linger: Duration) -> io::Result<()> {
        let code = match kind {
            CloseKind::Normal => CloseCode::Normal,
            CloseKind::GoingAway => CloseCode::Away,
        };
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(""),
        };
        self.stream
            .close(Some(frame))
            .await
            .or_else(ignore_closed)?;
        // Wait for the client's close reply so the connection ends cleanly.
        let _ = tokio::time::timeout(linger, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
        Ok(())
    }
}

fn ignore_closed(e: WsError) -> io::Result<()> {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(()),
        other => Err(to_io(other)),
    }
}
