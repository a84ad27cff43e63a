//! The client's address behind a trusted proxy (issue 12, item 7): `X-Forwarded-For` on the
//! WebSocket upgrade and the PROXY protocol (v1, v2) on TCP, believed only from
//! `trusted_proxies`; the address feeds anonymous-from-loopback and the per-address limit.

mod common;

use std::net::IpAddr;

use common::*;
use herald::transport::proxy::{Parsed, ProxyError, parse};
use herald_protocol::Command;
use proptest::prelude::*;

/// A test broker that believes proxies at `trusted` on both listeners.
async fn behind_proxy(trusted: &str) -> TestServer {
    let mut config = config();
    config.websocket.trusted_proxies = vec![trusted.parse().unwrap()];
    config.tcp.trusted_proxies = vec![trusted.parse().unwrap()];
    TestServer::start(config).await
}

fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 40000 61613\r\n").into_bytes()
}

fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client);
    header.extend_from_slice(&[127, 0, 0, 1, 0x9c, 0x40, 0xf0, 0x0d]);
    header
}

/// Anonymous CONNECT is refused: the broker saw a non-loopback client.
async fn expect_anonymous_refused(mut client: Client) {
    client.send(&connect_frame("1.2")).await;
    let error = client.expect_error_then_close("access denied").await;
    assert_eq!(
        error.body.as_ref(),
        b"anonymous access is not allowed from this address"
    );
}

async fn expect_anonymous_accepted(mut client: Client) {
    client.send(&connect_frame("1.2")).await;
    client.expect(Command::Connected).await;
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_proxy_names_the_client() {
    let server = behind_proxy("127.0.0.1").await;
    let public = Client::ws_with_headers(server.ws_addr, &[("X-Forwarded-For", "203.0.113.9")]);
    expect_anonymous_refused(public.await).await;
    // A client-written loopback entry left of the public one is not believed.
    let spoofed = Client::ws_with_headers(
        server.ws_addr,
        &[("X-Forwarded-For", "127.0.0.1, 203.0.113.9")],
    );
    expect_anonymous_refused(spoofed.await).await;
    let local = Client::ws_with_headers(server.ws_addr, &[("X-Forwarded-For", "127.0.0.1")]);
    expect_anonymous_accepted(local.await).await;
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let server = behind_proxy("10.0.0.0/8").await;
    let client = Client::ws_with_headers(server.ws_addr, &[("X-Forwarded-For", "203.0.113.9")]);
    expect_anonymous_accepted(client.await).await;
}

#[tokio::test]
async fn an_unreadable_forwarded_for_from_a_trusted_proxy_is_refused() {
    let server = behind_proxy("127.0.0.1").await;
    let stream = tcp_connect(server.ws_addr, None).await;
    let mut request = format!("ws://{}/ws", server.ws_addr)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("X-Forwarded-For", HeaderValue::from_static("unknown"));
    match tokio_tungstenite::client_async(request, stream).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 400),
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

#[tokio::test]
async fn proxy_v1_and_v2_headers_from_a_trusted_proxy_name_the_client() {
    let server = behind_proxy("127.0.0.1").await;
    expect_anonymous_refused(Client::tcp_with_preamble(server.tcp_addr, &v1("203.0.113.9")).await)
        .await;
    expect_anonymous_refused(
        Client::tcp_with_preamble(server.tcp_addr, &v2([203, 0, 113, 9])).await,
    )
    .await;
    expect_anonymous_accepted(Client::tcp_with_preamble(server.tcp_addr, &v1("127.0.0.2")).await)
        .await;
    expect_anonymous_accepted(
        Client::tcp_with_preamble(server.tcp_addr, &v2([127, 0, 0, 2])).await,
    )
    .await;
    // UNKNOWN (a proxy's own health check): the connection's address stands.
    let unknown = Client::tcp_with_preamble(server.tcp_addr, b"PROXY UNKNOWN\r\n").await;
    expect_anonymous_accepted(unknown).await;
}

/// A trusted proxy must send the header; whatever else it sends closes the connection
/// without a word (the client behind it is unknown).
#[tokio::test]
async fn hostile_proxy_headers_close_the_connection() {
    let server = behind_proxy("127.0.0.1").await;
    let too_long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
    let mut bad_v2 = v2([203, 0, 113, 9]);
    bad_v2[12] = 0x31; // version 3
    for preamble in [
        too_long,
        b"CONNECT\naccept-version:1.2\n\n\0".to_vec(),
        b"PROXY TCP4 203.0.113.9 127.0.0.1 1\r\n".to_vec(),
        bad_v2,
    ] {
        let mut client = Client::tcp_with_preamble(server.tcp_addr, &preamble).await;
        let closed = client.expect_closed().await;
        assert!(
            matches!(closed, Closed::Eof | Closed::Abort(_)),
            "{:?}: {closed:?}",
            String::from_utf8_lossy(&preamble)
        );
        assert_eq!(client.leftover(), 0, "nothing was answered");
    }
}

/// From a peer that is not trusted a PROXY header is not believed: it is just bytes of the
/// STOMP stream, and not a frame.
#[tokio::test]
async fn proxy_headers_from_an_untrusted_peer_are_not_believed() {
    let server = behind_proxy("10.0.0.0/8").await;
    let mut client = Client::tcp_with_preamble(server.tcp_addr, &v1("127.0.0.2")).await;
    client.send(&connect_frame("1.2")).await;
    let error = client.recv().await;
    assert_eq!(error.command, Command::Error, "{}", show(&error));
}

/// Per-address limits count the client behind the proxy, not the proxy.
#[tokio::test]
async fn the_per_address_limit_counts_the_client_behind_the_proxy() {
    let mut config = config();
    config.tcp.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.limits.max_connections_per_address = 1;
    let server = TestServer::start(config).await;
    let mut first = Client::tcp_with_preamble(server.tcp_addr, &v1("127.0.0.2")).await;
    first.connect().await;
    let mut second = Client::tcp_with_preamble(server.tcp_addr, &v1("127.0.0.2")).await;
    second.expect_error_then_close("too many connections").await;
    let mut other = Client::tcp_with_preamble(server.tcp_addr, &v1("127.0.0.3")).await;
    other.connect().await;
    first.publish_confirmed("/topic/x", "still served").await;
}

/// The login throttle lines up the client's logins, not the proxy's.
#[tokio::test]
async fn failed_logins_are_throttled_per_client_behind_the_proxy() {
    let mut config = config();
    config.tcp.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.auth.failure_delay_ms = 60_000;
    add_user(&mut config, "alice", "secret", &[]);
    let server = TestServer::start(config).await;
    let mut guesser = Client::tcp_with_preamble(server.tcp_addr, &v1("203.0.113.9")).await;
    guesser.send(&login_frame("alice", "guess")).await;
    let client: IpAddr = "203.0.113.9".parse().unwrap();
    eventually("the guess to hold its client's turn", TIMEOUT, || {
        server.node.login_throttle.in_line(client) == 1
    })
    .await;
    // Another client of the same proxy is not held up by the guesser's delay.
    let (_alice, connected) = {
        let mut alice = Client::tcp_with_preamble(server.tcp_addr, &v1("198.51.100.4")).await;
        let connected = alice.connect_with(login_frame("alice", "secret")).await;
        (alice, connected)
    };
    assert_eq!(connected.headers.get("user-name"), Some("alice"));
}

use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Reads a header the way the server does: ask for `Need(n)`, get exactly `n` more bytes.
fn read_like_the_server(input: &[u8]) -> Result<Parsed, ProxyError> {
    let mut taken = 0;
    loop {
        match parse(&input[..taken])? {
            Parsed::Need(more) => {
                assert!(more > 0);
                if taken + more > input.len() {
                    return Ok(Parsed::Need(more));
                }
                taken += more;
            }
            done @ Parsed::Done { len, .. } => {
                assert_eq!(len, taken, "the header is exactly what was read");
                return Ok(done);
            }
        }
    }
}

proptest! {
    /// Any bytes: no panic, and a finished header never claims more than was read.
    #[test]
    fn the_parser_survives_arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Parsed::Done { len, .. }) = parse(&input) {
            prop_assert!(len <= input.len());
        }
        let _ = read_like_the_server(&input);
    }

    /// Arbitrary bytes after a valid signature reach the deep parts of both versions.
    #[test]
    fn the_parser_survives_arbitrary_headers(
        v2_header in any::<bool>(),
        rest in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let signature: &[u8] = if v2_header { b"\r\n\r\n\0\r\nQUIT\n" } else { b"PROXY " };
        let input = [signature, &rest].concat();
        let _ = parse(&input);
        let _ = read_like_the_server(&input);
    }

    /// Valid headers name their client and are read to their last byte, not beyond: the
    /// client's first STOMP bytes stay unread.
    #[test]
    fn valid_headers_are_read_exactly(
        ip in any::<[u8; 4]>(),
        port in any::<u16>(),
        v2_header in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let address = std::net::SocketAddr::from((ip, port));
        let header = if v2_header {
            let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            header.extend_from_slice(&[0x21, 0x11, 0, 12]);
            header.extend_from_slice(&ip);
            header.extend_from_slice(&[127, 0, 0, 1]);
            header.extend_from_slice(&port.to_be_bytes());
            header.extend_from_slice(&[0, 1]);
            header
        } else {
            format!("PROXY TCP4 {} 127.0.0.1 {port} 1\r\n", address.ip()).into_bytes()
        };
        let input = [header.as_slice(), &tail].concat();
        prop_assert_eq!(
            read_like_the_server(&input),
            Ok(Parsed::Done { source: Some(address), len: header.len() })
        );
    }
}

#[test]
fn trusted_proxies_take_addresses_and_cidr_blocks() {
    let config = herald::Config::from_toml_str(
        "[websocket]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n",
        "test.toml",
    )
    .unwrap();
    let [block, loopback] = config.websocket.trusted_proxies[..] else {
        panic!("two entries");
    };
    assert!(block.contains("10.200.0.1".parse().unwrap()));
    assert!(block.contains("::ffff:10.0.0.1".parse().unwrap()));
    assert!(!block.contains("11.0.0.1".parse().unwrap()));
    assert!(loopback.contains("::1".parse().unwrap()));
    assert!(!loopback.contains("::2".parse().unwrap()));
    for bad in ["10.0.0.0/33", "localhost", "10.0.0.0/"] {
        let text = format!("[tcp]\ntrusted_proxies = [{bad:?}]\n");
        let err = herald::Config::from_toml_str(&text, "test.toml").unwrap_err();
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// A trusted peer that starts a header and stalls (slowloris) is closed at the connect
/// timeout, on tokio's paused clock.
#[tokio::test(start_paused = true)]
async fn a_stalled_proxy_header_is_closed_at_the_connect_timeout() {
    let mut config = config();
    config.tcp.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.stomp.connect_timeout_ms = 1_000;
    let server = TestServer::start(config).await;
    let started = tokio::time::Instant::now();
    let mut client = Client::tcp_with_preamble(server.tcp_addr, b"PROXY TCP4 203.0").await;
    client.expect_closed().await;
    let waited = started.elapsed();
    assert!(
        waited >= std::time::Duration::from_millis(1_000) && waited < TIMEOUT,
        "closed after {waited:?}"
    );
}

/// The same over WebSocket: the per-address place is the forwarded client's.
#[tokio::test]
async fn the_per_address_limit_counts_the_forwarded_client() {
    let mut config = config();
    config.websocket.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    config.limits.max_connections_per_address = 1;
    let server = TestServer::start(config).await;
    let addr = server.ws_addr;
    let forwarded =
        async |client: &str| Client::ws_with_headers(addr, &[("X-Forwarded-For", client)]).await;
    let mut first = forwarded("127.0.0.2").await;
    first.connect().await;
    let mut second = forwarded("127.0.0.2").await;
    second.expect_error_then_close("too many connections").await;
    let mut other = forwarded("127.0.0.3").await;
    other.connect().await;
}
