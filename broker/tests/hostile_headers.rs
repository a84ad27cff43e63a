//! Hostile header bytes over real sockets (issue 12, items 1 and 2): a header cut inside a
//! UTF-8 character and a NUL inside a header are refused with an ERROR, and nothing of them
//! reaches a subscriber; header text that older versions cannot carry is relayed as spaces.

mod common;

use common::*;
use herald::config::AnonymousAccess;

transport_tests!(
    header_name_ending_inside_a_character_is_an_error_before_login,
    nul_in_a_header_is_refused_and_nothing_is_relayed,
    escaped_line_breaks_reach_older_subscribers_as_spaces,
);

/// A SEND whose header `x` carries a NUL followed by a whole ERROR frame: relayed as it was,
/// every subscriber read a MESSAGE cut at the NUL, then a forged ERROR.
const FORGED: &[u8] = b"SEND\ndestination:/topic/a\nx:y\0ERROR\nmessage:forged\n\n\0";

/// The name `x\xc6` ends with the lead byte of a character whose continuation starts the value
/// `\x88y`; together they are valid UTF-8, and slicing between them panicked the session.
async fn header_name_ending_inside_a_character_is_an_error_before_login(transport: Transport) {
    // Logins required: the bytes need no credentials to reach the parser.
    let mut config = config();
    add_user(&mut config, "alice", "secret", &[]);
    config.auth.anonymous = AnonymousAccess::Never;
    let server = TestServer::start(config).await;
    let mut client = server.open(transport).await;
    client
        .send_bytes(b"CONNECT\naccept-version:1.2\nhost:localhost\nx\xc6:\x88y\n\n\0")
        .await;
    client
        .expect_error_then_close("header is not valid UTF-8")
        .await;
    // The session ended through its cleanup, and the broker serves others.
    server.close_counted("protocol_error").await;
    let (mut alice, _) = server.login(transport, "alice", "secret").await;
    alice.subscribe("s", "/topic/a").await;
}

async fn nul_in_a_header_is_refused_and_nothing_is_relayed(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("s", "/topic/a").await;

    let mut forger = server.client(transport).await;
    forger.send_bytes(FORGED).await;
    forger.expect_error_then_close("NUL byte in a header").await;

    // The next frame the subscriber reads is the next message published, whole.
    let mut publisher = server.client(transport).await;
    publisher.publish_confirmed("/topic/a", "after").await;
    let message = subscriber.expect_message("s", "/topic/a", "after").await;
    assert_eq!(message.headers.get("x"), None, "{}", show(&message));
    assert_eq!(message.headers.get("message"), None, "{}", show(&message));
    assert_eq!(server.node.stats.closes("protocol_error"), 1);
}

/// A 1.2 publisher may escape CR and LF into a header; STOMP 1.0 cannot represent them and 1.1
/// cannot represent CR, so those subscribers get spaces: never a raw line break that would end
/// the header and start another.
async fn escaped_line_breaks_reach_older_subscribers_as_spaces(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscribers = Vec::new();
    for version in ["1.0", "1.1", "1.2"] {
        let mut subscriber = server.open(transport).await;
        subscriber.connect_with(connect_frame(version)).await;
        subscriber.subscribe("s", "/topic/a").await;
        subscribers.push((version, subscriber));
    }
    let mut publisher = server.client(transport).await;
    publisher
        .send_bytes(b"SEND\ndestination:/topic/a\nx:a\\r\\nforged\\c1\nreceipt:r\n\nbody\0")
        .await;
    publisher.expect_receipt("r").await;
    for (version, subscriber) in &mut subscribers {
        let message = subscriber.expect_message("s", "/topic/a", "body").await;
        let expected = match *version {
            "1.0" => "a  forged:1",
            "1.1" => "a \nforged:1",
            _ => "a\r\nforged:1",
        };
        assert_eq!(message.headers.get("x"), Some(expected), "{version}");
        assert_eq!(message.headers.get("forged"), None, "{version}");
    }
}

/// The same forged SEND from a 1.0 and a 1.1 session (unescaped and partly escaped headers)
/// is refused too.
#[tokio::test]
async fn nul_in_a_header_is_refused_in_every_version() {
    let server = TestServer::with_defaults().await;
    for version in ["1.0", "1.1"] {
        let mut forger = server.open(Transport::Tcp).await;
        forger.connect_with(connect_frame(version)).await;
        forger.send_bytes(FORGED).await;
        forger.expect_error_then_close("NUL byte in a header").await;
    }
    let mut connect = server.open(Transport::Tcp).await;
    connect
        .send_bytes(b"CONNECT\naccept-version:1.2\nlogin:a\0CONNECTED\n\n\0")
        .await;
    connect
        .expect_error_then_close("NUL byte in a header")
        .await;
}
