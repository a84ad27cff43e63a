//! Publish-subscribe over both transports: fan-out, several subscriptions per session,
//! patterns, destination errors, header and body fidelity (semantics.md section 2).

mod common;

use common::{MessageKind, TestServer, Transport, send_frame, show, subscribe_frame};
use herald_protocol::{Command, Frame};

transport_tests!(
    fan_out_reaches_every_subscriber_once,
    two_matching_subscriptions_of_one_session_get_one_copy_each,
    patterns_match_as_specified,
    send_to_a_pattern_is_error,
    unknown_prefix_is_error_on_send,
    unknown_prefix_is_error_on_subscribe,
    invalid_pattern_is_error,
    headers_round_trip_exactly,
    broker_owns_message_headers,
    binary_body_with_nuls_round_trips,
    publishers_order_is_kept,
);

async fn fan_out_reaches_every_subscriber_once(transport: Transport) {
    const SUBSCRIBERS: usize = 50;
    let server = TestServer::with_defaults().await;
    let mut subscribers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut client = server.client(transport).await;
        client.subscribe(&format!("sub-{i}"), "/topic/fan").await;
        client.subscribe("marker", "/topic/fan-marker").await;
        subscribers.push(client);
    }
    let mut publisher = server.client(transport).await;
    publisher.publish("/topic/fan", "to all").await;
    publisher.publish("/topic/fan-marker", "end").await;

    let mut message_id = None;
    for (i, client) in subscribers.iter_mut().enumerate() {
        let message = client
            .expect_message(&format!("sub-{i}"), "/topic/fan", "to all")
            .await;
        // One publish, one message id for every copy.
        let id = message.headers.get("message-id").unwrap().to_owned();
        assert_eq!(message_id.get_or_insert_with(|| id.clone()), &id);
        // Exactly one copy: the next frame is the marker.
        client
            .expect_message("marker", "/topic/fan-marker", "end")
            .await;
    }
    assert_eq!(
        server
            .node
            .stats
            .messages_delivered
            .load(std::sync::atomic::Ordering::Relaxed),
        2 * SUBSCRIBERS as u64
    );
}

async fn two_matching_subscriptions_of_one_session_get_one_copy_each(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("exact", "/topic/stocks/IBM").await;
    subscriber.subscribe("all", "/topic/stocks/*").await;
    subscriber.subscribe("marker", "/topic/marker").await;
    let mut publisher = server.client(transport).await;
    publisher.publish("/topic/stocks/IBM", "42").await;
    publisher.publish("/topic/stocks/ACME", "7").await;
    publisher.publish("/topic/marker", "end").await;

    let mut got = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let message = subscriber.expect(Command::Message).await;
        got.push((
            message.headers.get("subscription").unwrap().to_owned(),
            message.headers.get("destination").unwrap().to_owned(),
            String::from_utf8(message.body.to_vec()).unwrap(),
        ));
        ids.push(message.headers.get("message-id").unwrap().to_owned());
    }
    // The two copies of the first publish come in either order, before the second publish.
    got[..2].sort();
    let expected = [
        ("all", "/topic/stocks/IBM", "42"),
        ("exact", "/topic/stocks/IBM", "42"),
        ("all", "/topic/stocks/ACME", "7"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(s, d, b)| (s.to_string(), d.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(ids[0], ids[1], "copies of one publish share the message id");
    assert_ne!(ids[1], ids[2], "each publish has its own message id");
    subscriber
        .expect_message("marker", "/topic/marker", "end")
        .await;
}

async fn patterns_match_as_specified(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    let subscriptions = [
        ("price", "/topic/price.*"),
        ("tree", "/topic/a/**"),
        ("var", "/topic/{x}/b"),
        ("one-char", "/topic/q?"),
        ("hash", "/topic/h/#"),
        ("regex", "/topic/{id:[0-9]+}/r"),
        ("segment", "/topic/s/*/t"),
    ];
    for (id, pattern) in subscriptions {
        subscriber.subscribe(id, pattern).await;
    }
    subscriber.subscribe("marker", "/topic/marker").await;

    // Each published destination and the subscriptions it must reach.
    let cases: &[(&str, &[&str])] = &[
        ("/topic/price.IBM", &["price"]),
        ("/topic/price.", &["price"]),
        ("/topic/price", &[]),
        ("/topic/priceXIBM", &[]),
        ("/topic/price.IBM/x", &[]),
        ("/topic/a", &["tree"]),
        ("/topic/a/b", &["tree", "var"]),
        ("/topic/a/b/c", &["tree"]),
        ("/topic/ab", &[]),
        ("/topic/b/a", &[]),
        ("/topic/x/b", &["var"]),
        ("/topic/x/y/b", &[]),
        ("/topic/x/b/c", &[]),
        ("/topic/b", &[]),
        ("/topic/q1", &["one-char"]),
        ("/topic/q", &[]),
        ("/topic/q12", &[]),
        ("/topic/h", &["hash"]),
        ("/topic/h/1/2", &["hash"]),
        ("/topic/hx", &[]),
        ("/topic/7/r", &["regex"]),
        ("/topic/x7/r", &[]),
        ("/topic/s/1/t", &["segment"]),
        ("/topic/s/t", &[]),
        ("/topic/s/1/2/t", &[]),
    ];
    let mut publisher = server.client(transport).await;
    for (destination, _) in cases {
        publisher.publish(destination, destination).await;
    }
    publisher.publish("/topic/marker", "end").await;

    let mut got = Vec::new();
    loop {
        let message = subscriber.expect(Command::Message).await;
        let subscription = message.headers.get("subscription").unwrap().to_owned();
        if subscription == "marker" {
            break;
        }
        let destination = message.headers.get("destination").unwrap().to_owned();
        assert_eq!(message.body, destination.as_bytes(), "{}", show(&message));
        got.push((destination, subscription));
    }
    let mut expected: Vec<(String, String)> = cases
        .iter()
        .flat_map(|(d, subs)| subs.iter().map(|s| (d.to_string(), s.to_string())))
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "(destination, subscription) deliveries");
}

async fn send_to_a_pattern_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    for destination in [
        "/topic/price.*",
        "/topic/a/**",
        "/topic/{x}/b",
        "/topic/q?",
        "/topic/#",
    ] {
        let mut client = server.client(transport).await;
        client
            .send(&send_frame(destination, "x").header("receipt", "w"))
            .await;
        let error = client.expect_error_then_close("invalid destination").await;
        assert_eq!(error.headers.get("receipt-id"), Some("w"), "{destination}");
    }
}

async fn unknown_prefix_is_error_on_send(transport: Transport) {
    let server = TestServer::with_defaults().await;
    for destination in ["/exchange/a", "/topicx", "topic/a", "/"] {
        let mut client = server.client(transport).await;
        client.publish(destination, "x").await;
        client.expect_error_then_close("unknown destination").await;
    }
}

async fn unknown_prefix_is_error_on_subscribe(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.send(&subscribe_frame("s", "/amq/queue/a")).await;
    client.expect_error_then_close("unknown destination").await;
}

async fn invalid_pattern_is_error(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut client = server.client(transport).await;
    client.send(&subscribe_frame("s", "/topic/{id:[}")).await;
    client.expect_error_then_close("invalid destination").await;
}

async fn headers_round_trip_exactly(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("s", "/topic/h").await;
    let mut publisher = server.client(transport).await;
    let odd: &[(&str, &str)] = &[
        ("x-colon", "a:b:c"),
        ("x-newline", "line1\nline2"),
        ("x-cr", "a\rb"),
        ("x-backslash", "C:\\dir\\file"),
        ("x-spaces", "  padded value  "),
        ("x-empty", ""),
        ("x:odd\\name", "value"),
        ("x-repeat", "first"),
        ("x-repeat", "second"),
        ("content-type", "application/json;charset=utf-8"),
        ("x-unicode", "h\u{e9}llo \u{2713}"),
    ];
    let mut send = send_frame("/topic/h", "{}");
    for (name, value) in odd {
        send.headers.push(name, value);
    }
    publisher.send(&send).await;

    let message = subscriber.expect(Command::Message).await;
    let headers: Vec<(&str, &str)> = message.headers.iter().collect();
    assert_eq!(
        &headers[..3],
        [
            ("destination", "/topic/h"),
            ("message-id", message.headers.get("message-id").unwrap()),
            ("subscription", "s"),
        ]
    );
    assert_eq!(&headers[3..], odd, "{}", show(&message));
    assert_eq!(&message.body[..], b"{}");
}

async fn broker_owns_message_headers(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("mine", "/topic/owned").await;
    let mut publisher = server.client(transport).await;
    let send = send_frame("/topic/owned", "body")
        .header("message-id", "forged")
        .header("subscription", "forged")
        .header("ack", "forged")
        .header("x-kept", "yes")
        .header("receipt", "p-1");
    publisher.send(&send).await;
    publisher.expect_receipt("p-1").await;
    let message = subscriber.expect(Command::Message).await;
    let names: Vec<&str> = message.headers.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["destination", "message-id", "subscription", "x-kept"],
        "{}",
        show(&message)
    );
    assert_eq!(message.headers.get("subscription"), Some("mine"));
    assert_ne!(message.headers.get("message-id"), Some("forged"));
    assert_eq!(message.headers.get("x-kept"), Some("yes"));
}

async fn binary_body_with_nuls_round_trips(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("s", "/topic/bin").await;
    let mut publisher = server.client(transport).await;

    let binary: Vec<u8> = vec![0, 1, 0, 0, 255, b'\n', 0xC3, 0x28, 0, b'\r', 0];
    publisher
        .send(
            &Frame::new(Command::Send)
                .header("destination", "/topic/bin")
                .header("content-type", "application/octet-stream")
                .body(binary.clone()),
        )
        .await;
    let (message, kind) = subscriber.recv_with_kind().await;
    assert_eq!(message.command, Command::Message, "{}", show(&message));
    assert_eq!(&message.body[..], &binary[..]);
    assert_eq!(
        message.headers.get("content-type"),
        Some("application/octet-stream")
    );

    let text = "h\u{e9}llo \u{2713}";
    publisher.publish("/topic/bin", text).await;
    let (message2, kind2) = subscriber.recv_with_kind().await;
    assert_eq!(&message2.body[..], text.as_bytes());

    match transport {
        Transport::Tcp => assert_eq!((kind, kind2), (None, None)),
        Transport::Ws => {
            assert_eq!(kind, Some(MessageKind::Binary), "a body that is not UTF-8");
            assert_eq!(kind2, Some(MessageKind::Text), "a UTF-8 body");
        }
    }
}

async fn publishers_order_is_kept(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut subscriber = server.client(transport).await;
    subscriber.subscribe("s", "/topic/seq").await;
    let mut publisher = server.client(transport).await;
    for i in 0..200 {
        publisher.publish("/topic/seq", &i.to_string()).await;
    }
    for i in 0..200 {
        subscriber
            .expect_message("s", "/topic/seq", &i.to_string())
            .await;
    }
}
