//! WebSocket specifics: the upgrade (path, Origin, sub-protocol echo) and how STOMP frames map
//! onto WebSocket messages (semantics.md section 1, "WebSocket sub-protocols").

mod common;

use bytes::Bytes;
use common::{
    Client, Event, MessageKind, TestServer, Upgrade, config, connect_frame, encoded, send_frame,
    subscribe_frame, ws_handshake,
};
use herald::config::{Config, OutboundMessageType};
use herald_protocol::Command;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The sub-protocol the server chose, from the upgrade response.
async fn chosen_subprotocol(server: &TestServer, offered: Option<&str>) -> Option<String> {
    let upgrade = Upgrade {
        subprotocols: offered,
        ..Upgrade::default()
    };
    let (_, response) = ws_handshake(server.ws_addr, &upgrade, None)
        .await
        .unwrap_or_else(|e| panic!("upgrade offering {offered:?} failed: {e}"));
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let mut values = response.headers().get_all("sec-websocket-protocol").iter();
    let chosen = values.next().map(|v| v.to_str().unwrap().to_owned());
    assert!(values.next().is_none(), "one sub-protocol at most");
    chosen
}

#[tokio::test]
async fn highest_offered_stomp_subprotocol_is_echoed() {
    let server = TestServer::with_defaults().await;
    for (offered, chosen) in [
        ("v10.stomp, v11.stomp, v12.stomp", "v12.stomp"),
        ("v12.stomp,v10.stomp", "v12.stomp"),
        ("v10.stomp, v11.stomp", "v11.stomp"),
        ("v10.stomp", "v10.stomp"),
        ("mqtt, v11.stomp", "v11.stomp"),
    ] {
        assert_eq!(
            chosen_subprotocol(&server, Some(offered)).await.as_deref(),
            Some(chosen),
            "offered {offered:?}"
        );
    }
}

#[tokio::test]
async fn no_subprotocol_offered_is_accepted_without_the_header() {
    let server = TestServer::with_defaults().await;
    assert_eq!(chosen_subprotocol(&server, None).await, None);
    // And the connection speaks STOMP.
    let upgrade = Upgrade {
        subprotocols: None,
        ..Upgrade::default()
    };
    let mut client = Client::ws_with(server.ws_addr, &upgrade, None).await;
    client.connect().await;
    client.subscribe("s", "/topic/a").await;
}

/// The HTTP status of a refused upgrade.
fn refusal_status(result: Result<impl std::fmt::Debug, WsError>) -> StatusCode {
    match result {
        Err(WsError::Http(response)) => response.status(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_path_is_refused_with_404() {
    let server = TestServer::with_defaults().await;
    for path in ["/", "/stomp", "/ws/", "/wsx"] {
        let upgrade = Upgrade {
            path,
            ..Upgrade::default()
        };
        let result = ws_handshake(server.ws_addr, &upgrade, None).await;
        assert_eq!(refusal_status(result), StatusCode::NOT_FOUND, "path {path}");
    }
}

#[tokio::test]
async fn configured_paths_are_accepted() {
    let mut config = config();
    config.websocket.paths = vec!["/stomp".into(), "/ws".into()];
    let server = TestServer::start(config).await;
    for path in ["/stomp", "/ws"] {
        let upgrade = Upgrade {
            path,
            ..Upgrade::default()
        };
        let mut client = Client::ws_with(server.ws_addr, &upgrade, None).await;
        client.connect().await;
    }
}

#[tokio::test]
async fn origin_outside_the_allow_list_is_refused_with_403() {
    let mut config = config();
    config.websocket.allowed_origins = vec!["https://app.example.com".into()];
    let server = TestServer::start(config).await;

    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com:8443",
    ] {
        let upgrade = Upgrade {
            origin: Some(origin),
            ..Upgrade::default()
        };
        let result = ws_handshake(server.ws_addr, &upgrade, None).await;
        assert_eq!(
            refusal_status(result),
            StatusCode::FORBIDDEN,
            "origin {origin}"
        );
    }

    let allowed = Upgrade {
        origin: Some("https://app.example.com"),
        ..Upgrade::default()
    };
    let mut client = Client::ws_with(server.ws_addr, &allowed, None).await;
    client.connect().await;
    client.subscribe("s", "/topic/a").await;
}

#[tokio::test]
async fn any_origin_is_accepted_when_the_allow_list_is_empty() {
    let server = TestServer::with_defaults().await;
    let upgrade = Upgrade {
        origin: Some("https://anywhere.example"),
        ..Upgrade::default()
    };
    let mut client = Client::ws_with(server.ws_addr, &upgrade, None).await;
    client.connect().await;
}

#[tokio::test]
async fn frame_split_across_messages() {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(common::Transport::Ws).await;
    let connect = encoded(&connect_frame("1.2"));
    // CONNECT in three messages, text and binary mixed, the NUL alone in the last.
    let (head, rest) = connect.split_at(5);
    let (middle, nul) = rest.split_at(rest.len() - 1);
    client
        .send_ws(Message::text(std::str::from_utf8(head).unwrap()))
        .await;
    client
        .send_ws(Message::binary(Bytes::copy_from_slice(middle)))
        .await;
    client.expect_silence(common::QUIET).await;
    client
        .send_ws(Message::binary(Bytes::copy_from_slice(nul)))
        .await;
    client.expect(Command::Connected).await;

    // A SEND whose body is split mid-way, one byte per message at the end.
    client.subscribe("s", "/topic/split").await;
    let send = encoded(&send_frame("/topic/split", "split body").header("receipt", "done"));
    let cut = send.len() - 6;
    client
        .send_ws(Message::binary(Bytes::copy_from_slice(&send[..cut])))
        .await;
    for byte in &send[cut..] {
        client
            .send_ws(Message::binary(Bytes::copy_from_slice(&[*byte])))
            .await;
    }
    client
        .expect_message("s", "/topic/split", "split body")
        .await;
    client.expect_receipt("done").await;
}

#[tokio::test]
async fn several_frames_and_heart_beats_in_one_message() {
    let server = TestServer::with_defaults().await;
    let mut client = server.open(common::Transport::Ws).await;
    let mut message = Vec::new();
    message.extend_from_slice(&encoded(&connect_frame("1.2")));
    message.extend_from_slice(b"\n\r\n");
    message.extend_from_slice(&encoded(
        &subscribe_frame("s", "/topic/multi").header("receipt", "1"),
    ));
    message.extend_from_slice(b"\n");
    message.extend_from_slice(&encoded(&send_frame("/topic/multi", "one")));
    message.extend_from_slice(&encoded(
        &send_frame("/topic/multi", "two").header("receipt", "2"),
    ));
    client
        .send_ws(Message::text(String::from_utf8(message).unwrap()))
        .await;
    client.expect(Command::Connected).await;
    client.expect_receipt("1").await;
    client.expect_message("s", "/topic/multi", "one").await;
    client.expect_message("s", "/topic/multi", "two").await;
    client.expect_receipt("2").await;
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(common::Transport::Ws).await;
    client
        .send_ws(Message::Ping(Bytes::from_static(b"are you there")))
        .await;
    match client.event().await {
        Some(Event::Pong(data)) => assert_eq!(&data[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // A ping before CONNECT is answered too.
    let mut fresh = server.open(common::Transport::Ws).await;
    fresh.send_ws(Message::Ping(Bytes::from_static(b"x"))).await;
    match fresh.event().await {
        Some(Event::Pong(data)) => assert_eq!(&data[..], b"x"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn each_outbound_frame_is_one_message_typed_by_its_body() {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(common::Transport::Ws).await;
    client.subscribe("s", "/topic/kind").await;
    client
        .send(&send_frame("/topic/kind", "text").header("receipt", "r"))
        .await;
    let (message, kind) = client.recv_with_kind().await;
    assert_eq!(message.command, Command::Message);
    assert_eq!(kind, Some(MessageKind::Text));
    let (receipt, kind) = client.recv_with_kind().await;
    assert_eq!(receipt.command, Command::Receipt);
    assert_eq!(kind, Some(MessageKind::Text));
}

#[tokio::test]
async fn outbound_message_type_binary_sends_everything_binary() {
    let mut config: Config = config();
    config.websocket.outbound_message_type = OutboundMessageType::Binary;
    let server = TestServer::start(config).await;
    let mut client = server.open(common::Transport::Ws).await;
    client.send(&connect_frame("1.2")).await;
    let (connected, kind) = client.recv_with_kind().await;
    assert_eq!(connected.command, Command::Connected);
    assert_eq!(kind, Some(MessageKind::Binary));
    client.set_version(herald_protocol::Version::V1_2);
    client.subscribe("s", "/topic/kind").await;
    client.publish("/topic/kind", "text body").await;
    let (message, kind) = client.recv_with_kind().await;
    assert_eq!(&message.body[..], b"text body");
    assert_eq!(kind, Some(MessageKind::Binary));
}

#[tokio::test]
async fn outbound_message_type_text_keeps_binary_bodies_binary() {
    let mut config: Config = config();
    config.websocket.outbound_message_type = OutboundMessageType::Text;
    let server = TestServer::start(config).await;
    let mut client = server.client(common::Transport::Ws).await;
    client.subscribe("s", "/topic/kind").await;
    client
        .send(
            &herald_protocol::Frame::new(Command::Send)
                .header("destination", "/topic/kind")
                .body(vec![0xFF, 0, 0xFE]),
        )
        .await;
    let (message, kind) = client.recv_with_kind().await;
    assert_eq!(&message.body[..], &[0xFF, 0, 0xFE]);
    // A text message must be UTF-8: binary is the only faithful choice.
    assert_eq!(kind, Some(MessageKind::Binary));
    client.publish("/topic/kind", "plain").await;
    let (_, kind) = client.recv_with_kind().await;
    assert_eq!(kind, Some(MessageKind::Text));
}

#[tokio::test]
async fn client_close_ends_the_session() {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(common::Transport::Ws).await;
    client.subscribe("s", "/topic/a").await;
    client
        .send_ws(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await;
    // The server completes the close handshake: it echoes the code (RFC 6455 5.5.1).
    assert_eq!(
        client.expect_closed().await,
        common::Closed::WsClose(Some(CloseCode::Normal))
    );
    common::eventually("the session to end", common::TIMEOUT, || {
        server.node.stats.closes("peer_closed") == 1
    })
    .await;
}

/// Violations answered on the wire (issue 12, item 17): raw bytes over TCP, so that what the
/// broker writes is seen exactly, close frames and HTTP status lines included.
mod raw {
    use super::*;
    use common::{TIMEOUT, tcp_connect, within};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Everything the server writes until it closes the connection.
    async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
        let mut answer = Vec::new();
        within(TIMEOUT, "the server to close", async {
            let mut chunk = [0u8; 4096];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        answer
    }

    async fn http_answer(request: &[u8]) -> String {
        let server = TestServer::with_defaults().await;
        let mut stream = tcp_connect(server.ws_addr, None).await;
        stream.write_all(request).await.unwrap();
        String::from_utf8(read_to_end(&mut stream).await).unwrap()
    }

    #[tokio::test]
    async fn a_plain_http_request_gets_426_upgrade_required() {
        let answer = http_answer(b"GET /ws HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nUpgrade: websocket\r\n"), "{answer}");
        assert!(answer.contains("\r\nContent-Length: "), "{answer}");
    }

    #[tokio::test]
    async fn a_request_that_is_not_http_gets_400_bad_request() {
        let answer = http_answer(b"CONNECT\naccept-version:1.2\n\n\0\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        let answer = http_answer(b"POST /ws HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
    }

    /// A connection upgraded by hand: the request, then the 101 response read off.
    async fn upgraded(config: Config) -> (TestServer, TcpStream) {
        let server = TestServer::start(config).await;
        let mut stream = tcp_connect(server.ws_addr, None).await;
        stream
            .write_all(
                b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Protocol: v12.stomp\r\n\r\n",
            )
            .await
            .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let byte = within(TIMEOUT, "the 101 response", stream.read_u8()).await;
            head.push(byte.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
        (server, stream)
    }

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        assert!(payload.len() < 126);
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![first, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        frame
    }

    /// The server's frames (unmasked) as (first byte, payload), up to the end of the stream.
    fn server_frames(mut bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut frames = Vec::new();
        while bytes.len() >= 2 {
            let (first, short) = (bytes[0], bytes[1] & 0x7f);
            let (len, header) = match short {
                126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
                127 => panic!("unexpectedly long server frame"),
                n => (usize::from(n), 2),
            };
            frames.push((first, bytes[header..header + len].to_vec()));
            bytes = &bytes[header + len..];
        }
        frames
    }

    /// The close frame that ends what the server wrote, as its status code.
    fn close_code(frames: &[(u8, Vec<u8>)]) -> u16 {
        let (first, payload) = frames.last().expect("a close frame");
        assert_eq!(*first, 0x88, "the last frame is a close frame: {frames:?}");
        u16::from_be_bytes([payload[0], payload[1]])
    }

    #[tokio::test]
    async fn a_protocol_violation_is_closed_with_1002() {
        let (_server, mut stream) = upgraded(config()).await;
        // A text frame with RSV1 set, no extension negotiated.
        stream.write_all(&frame(0xC1, b"x")).await.unwrap();
        let frames = server_frames(&read_to_end(&mut stream).await);
        assert_eq!(close_code(&frames), 1002);
    }

    #[tokio::test]
    async fn invalid_utf8_in_a_text_message_is_closed_with_1007() {
        let (_server, mut stream) = upgraded(config()).await;
        stream
            .write_all(&frame(0x81, b"CONNECT\n\xff\xfe"))
            .await
            .unwrap();
        let frames = server_frames(&read_to_end(&mut stream).await);
        assert_eq!(close_code(&frames), 1007);
    }

    #[tokio::test]
    async fn a_message_too_big_gets_an_error_then_1009() {
        let mut config = config();
        config.websocket.max_message_bytes = 1024;
        let (_server, mut stream) = upgraded(config).await;
        // The header of a 2,000-byte binary frame; the payload never needs to be sent.
        stream
            .write_all(&[0x82, 0x80 | 126, 0x07, 0xD0, 1, 2, 3, 4])
            .await
            .unwrap();
        let frames = server_frames(&read_to_end(&mut stream).await);
        assert!(
            frames[0].1.starts_with(b"ERROR\n"),
            "an ERROR frame first: {frames:?}"
        );
        assert_eq!(close_code(&frames), 1009);
    }
}
