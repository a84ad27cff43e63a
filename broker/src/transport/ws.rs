//! STOMP over WebSocket: the upgrade (path, Origin allow-list, sub-protocol echo) and the
//! message stream. Frames may be split across messages and several may share one message;
//! the session's decoder sees one byte stream either way.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::machine::TryParse;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response, create_response,
};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::stream::{Prefixed, Stream};
use super::{CloseKind, FrameIo, InputTooLarge, proxy, static_files};
use crate::config::{OutboundMessageType, WebSocketConfig as WsSettings};
use crate::outbox::OutFrame;

/// STOMP sub-protocols, best first. Browsers fail the handshake when they offered
/// sub-protocols and the server echoes none, so one of these is echoed when offered.
const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// How long answering a client's close frame, or sending ours after a violation, may take.
const CLOSE_REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest HTTP request head read before the upgrade (a bearer token fits many times).
const MAX_REQUEST_HEAD: usize = 16 * 1024;

#[derive(Debug)]
pub struct WsIo {
    stream: WebSocketStream<Prefixed>,
    outbound: OutboundMessageType,
    /// The `access_token` query parameter of the upgrade URL: a credential for CONNECT,
    /// since browsers cannot set headers on a WebSocket.
    pub access_token: Option<String>,
    /// The client: the connection's peer, or the address a trusted proxy forwarded.
    pub client: SocketAddr,
    /// The close code a transport-level violation calls for, once one happened.
    violation: Option<CloseCode>,
}

/// Why an upgrade was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error("websocket handshake: {0}")]
    Handshake(#[from] WsError),
    /// Not a WebSocket upgrade, or not one we accept; answered with an HTTP status.
    #[error("refused with HTTP {0}: {1}")]
    Refused(StatusCode, String),
    #[error("reading the upgrade request: {0}")]
    Io(#[from] io::Error),
    /// A plain GET answered from `static_dir`, with this status.
    #[error("static file request answered with HTTP {0}")]
    Served(StatusCode),
}

/// Performs the WebSocket upgrade on an accepted connection from `peer`. The request head is
/// read here first, so that a request that is no upgrade at all gets an HTTP answer (tungstenite
/// closes such connections without one) and a trusted proxy's `X-Forwarded-For` is read;
/// then tungstenite performs the handshake on the same bytes. The caller bounds the time.
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
pub async fn upgrade(
    mut stream: Stream,
    peer: SocketAddr,
    settings: &WsSettings,
) -> Result<WsIo, UpgradeError> {
    let (head, client) = match read_request(&mut stream, peer, settings).await {
        Ok(read) => read,
        Err(RequestError::Io(e)) => return Err(UpgradeError::Io(e)),
        Err(RequestError::Refuse(status, reason)) => {
            answer(&mut stream, status, &reason).await;
            return Err(UpgradeError::Refused(status, reason));
        }
        Err(RequestError::Static(request, dir)) => {
            let status = static_files::serve(&mut stream, &request, &dir).await;
            return Err(UpgradeError::Served(status));
        }
    };
    let stream = Prefixed::new(head.freeze(), stream);
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
    let stream =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await?;
    Ok(WsIo {
        stream,
        outbound: settings.outbound_message_type,
        access_token,
        client,
        violation: None,
    })
}

enum RequestError {
    Io(io::Error),
    Refuse(StatusCode, String),
    /// Not an upgrade, off the WebSocket paths, with a `static_dir` to answer from.
    Static(Box<Request>, std::path::PathBuf),
}

/// Reads the HTTP request head (and nothing after it: a client waits for the 101 before it
/// sends frames) and decides who the client is.
async fn read_request(
    stream: &mut Stream,
    peer: SocketAddr,
    settings: &WsSettings,
) -> Result<(BytesMut, SocketAddr), RequestError> {
    let bad = |reason: String| RequestError::Refuse(StatusCode::BAD_REQUEST, reason);
    let mut head = BytesMut::with_capacity(1024);
    let request = loop {
        if stream.read_buf(&mut head).await.map_err(RequestError::Io)? == 0 {
            return Err(RequestError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        match Request::try_parse(&head) {
            Ok(Some((_, request))) => break request,
            Ok(None) if head.len() < MAX_REQUEST_HEAD => {}
            Ok(None) => return Err(bad("request head too large".to_owned())),
            Err(e) => return Err(bad(format!("malformed HTTP request: {e}"))),
        }
    };
    match create_response(&request) {
        Ok(_) => {}
        Err(WsError::Protocol(
            ProtocolError::MissingConnectionUpgradeHeader
            | ProtocolError::MissingUpgradeWebSocketHeader,
        )) => {
            if let Some(dir) = &settings.static_dir
                && !settings.paths.iter().any(|p| p == request.uri().path())
            {
                return Err(RequestError::Static(Box::new(request), dir.clone()));
            }
            return Err(RequestError::Refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this port speaks STOMP over WebSocket only".to_owned(),
            ));
        }
        Err(e) => return Err(bad(format!("not a WebSocket upgrade: {e}"))),
    }
    let forwarded = request
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or("?"));
    let client = match proxy::forwarded_for(peer.ip(), forwarded, &settings.trusted_proxies) {
        // The port of a forwarded client is not known.
        Ok(ip) if ip != peer.ip() => SocketAddr::new(ip, 0),
        Ok(_) => peer,
        Err(entry) => {
            return Err(bad(format!(
                "X-Forwarded-For entry {entry:?} is no address"
            )));
        }
    };
    Ok((head, client))
}

/// Answers a request that cannot be upgraded, then closes after a short linger so that the
/// answer is not destroyed by a reset.
async fn answer(stream: &mut Stream, status: StatusCode, reason: &str) {
    let upgrade = match status {
        StatusCode::UPGRADE_REQUIRED => "Upgrade: websocket\r\n",
        _ => "",
    };
    let body = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\n{upgrade}Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
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
            Some(Err(WsError::Capacity(e))) => {
                // The session answers with an ERROR frame, then closes with this code.
                self.violation = Some(CloseCode::Size);
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    InputTooLarge(format!("websocket message too large: {e}")),
                ))
            }
            Some(Err(e)) => {
                let code = match &e {
                    WsError::Utf8(_) => Some(CloseCode::Invalid),
                    // A peer that dropped the connection cannot be told anything.
                    WsError::Protocol(
                        ProtocolError::ResetWithoutClosingHandshake
                        | ProtocolError::ReceivedAfterClosing,
                    ) => None,
                    WsError::Protocol(_) | WsError::AttackAttempt => Some(CloseCode::Protocol),
                    _ => None,
                };
                if let Some(code) = code {
                    // Boxed: rare, and inline its state would enlarge every session's task.
                    Box::pin(self.fail(code)).await;
                }
                Err(to_io(e))
            }
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
        let code = match (self.violation, kind) {
            (Some(code), _) => code,
            (None, CloseKind::Normal) => CloseCode::Normal,
            (None, CloseKind::GoingAway) => CloseCode::Away,
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

impl WsIo {
    /// Fails the connection after a violation the session never sees as a frame (RFC 6455
    /// section 7.1.7): a close frame with `code`, then the end of the stream. What the client
    /// still sends is read and dropped, so the close frame is not lost to a reset.
    async fn fail(&mut self, code: CloseCode) {
        self.violation = Some(code);
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(""),
        };
        let _ = tokio::time::timeout(CLOSE_REPLY_TIMEOUT, async {
            self.stream
                .close(Some(frame))
                .await
                .or_else(ignore_closed)?;
            let raw = self.stream.get_mut();
            raw.shutdown().await?;
            let mut sink = [0u8; 1024];
            while raw.read(&mut sink).await? > 0 {}
            io::Result::Ok(())
        })
        .await;
    }
}

fn ignore_closed(e: WsError) -> io::Result<()> {
    match e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Ok(()),
        other => Err(to_io(other)),
    }
}
