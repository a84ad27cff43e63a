//! Several Herald nodes as one broker over NATS (issue 13): real `herald` processes against
//! real `nats-server`s, all on free loopback ports, talked to over raw STOMP on TCP and
//! WebSocket.
//!
//! Interest crosses NATS asynchronously: a SUBSCRIBE on one node is not routable from another
//! the moment its RECEIPT arrives. Every test therefore waits for the route first
//! ([`await_route`]: probe messages until one arrives, then a marker that flushes the stragglers)
//! and only then counts messages.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::herald_process::HeraldProcess;
use common::nats::{NatsCluster, NatsServer};
use common::*;
use herald_protocol::{Command, Frame};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long the cluster may take to route a destination: interest crossing NATS, and after a
/// NATS failure the client's reconnect backoff.
const ROUTE_DEADLINE: Duration = Duration::from_secs(30);
const PROBE: &str = "probe ";
const ROUTED: &str = "routed";

fn body(frame: &Frame) -> &str {
    std::str::from_utf8(&frame.body).expect("UTF-8 body")
}

/// Waits until a SEND to `destination` by `publisher` reaches every receiver: publishes
/// probes until each receiver has one, then a marker, and reads each receiver up to its
/// marker(s) so no probe is left over. `copies` is how many of the receiver's subscriptions
/// match `destination` (each gets the marker).
async fn await_route(
    publisher: &mut Client,
    destination: &str,
    receivers: &mut [(&mut Client, usize)],
) {
    let deadline = Instant::now() + ROUTE_DEADLINE;
    let mut reached = vec![false; receivers.len()];
    let mut wait = Duration::from_millis(10);
    let mut probe = 0;
    while reached.contains(&false) {
        assert!(
            Instant::now() < deadline,
            "{destination} not routed to receivers {:?} within {ROUTE_DEADLINE:?}",
            reached
                .iter()
                .enumerate()
                .filter(|(_, r)| !**r)
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        );
        probe += 1;
        publisher
            .publish(destination, &format!("{PROBE}{probe}"))
            .await;
        for ((client, _), reached) in receivers.iter_mut().zip(&mut reached) {
            if *reached {
                continue;
            }
            if let Ok(frame) = tokio::time::timeout(wait, client.recv()).await {
                assert_probe(&frame);
                *reached = true;
            }
        }
        wait = (wait * 2).min(Duration::from_millis(250));
    }
    publisher.publish(destination, ROUTED).await;
    for (client, copies) in receivers.iter_mut() {
        let mut markers = 0;
        while markers < *copies {
            let frame = client.expect(Command::Message).await;
            if body(&frame) == ROUTED {
                markers += 1;
            } else {
                assert_probe(&frame);
            }
        }
    }
}

fn assert_probe(frame: &Frame) {
    assert!(
        frame.command == Command::Message && body(frame).starts_with(PROBE),
        "expected a probe MESSAGE, got {}",
        show(frame)
    );
}

/// The next `n` MESSAGE frames.
async fn messages(client: &mut Client, n: usize) -> Vec<Frame> {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(client.expect(Command::Message).await);
    }
    frames
}

fn bodies(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(body).collect()
}

/// Three nodes, `na`, `nb` and `nc`, on one NATS server.
async fn three_nodes(nats: &NatsServer) -> [HeraldProcess; 3] {
    let servers = [nats.url()];
    let (a, b, c) = tokio::join!(
        HeraldProcess::start("na", &servers),
        HeraldProcess::start("nb", &servers),
        HeraldProcess::start("nc", &servers),
    );
    [a, b, c]
}

/// A publish on any node reaches the subscribers of every node once, in order per publisher,
/// under the same message id and with its headers; local subscribers get local publishes once
/// (no echo back through NATS).
#[tokio::test]
async fn topic_fan_out_reaches_every_node_once() {
    let nats = NatsServer::start().await;
    let nodes = three_nodes(&nats).await;
    let transports = [Transport::Ws, Transport::Tcp, Transport::Ws];
    let mut subscribers = Vec::new();
    for (node, transport) in nodes.iter().zip(transports) {
        let (mut subscriber, _) = node.client(transport).await;
        subscriber.subscribe("news", "/topic/news").await;
        subscribers.push(subscriber);
    }
    // A second subscriber on node b: one NATS subscription serves both.
    let (mut second, _) = nodes[1].client(Transport::Tcp).await;
    second.subscribe("news-2", "/topic/news").await;
    subscribers.push(second);

    let mut publishers = Vec::new();
    for node in &nodes {
        let (mut publisher, _) = node.client(Transport::Tcp).await;
        let mut receivers: Vec<(&mut Client, usize)> =
            subscribers.iter_mut().map(|s| (s, 1)).collect();
        await_route(&mut publisher, "/topic/news", &mut receivers).await;
        publishers.push(publisher);
    }

    const EACH: usize = 20;
    for (p, publisher) in publishers.iter_mut().enumerate() {
        for i in 0..EACH {
            let send = send_frame("/topic/news", &format!("{p}:{i}")).header("x-trace", "t-42");
            publisher.send(&send).await;
        }
    }
    for publisher in &mut publishers {
        publisher.publish_confirmed("/topic/news", "end").await;
    }

    // message id -> the bodies seen under it, across every subscriber.
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for subscriber in &mut subscribers {
        let frames = messages(subscriber, 3 * EACH + 3).await;
        for p in 0..3 {
            let from_p: Vec<&str> = bodies(&frames)
                .into_iter()
                .filter(|b| b.starts_with(&format!("{p}:")))
                .collect();
            let expected: Vec<String> = (0..EACH).map(|i| format!("{p}:{i}")).collect();
            assert_eq!(from_p, expected, "publisher {p}: once each, in order");
        }
        for frame in frames.iter().filter(|f| body(f) != "end") {
            assert_eq!(
                frame.headers.get("x-trace"),
                Some("t-42"),
                "{}",
                show(frame)
            );
            assert_eq!(frame.headers.get("destination"), Some("/topic/news"));
            let id = frame.headers.get("message-id").expect("message-id");
            ids.entry(id.to_owned())
                .or_default()
                .push(body(frame).to_owned());
        }
        subscriber.expect_silence(QUIET).await;
    }
    assert_eq!(ids.len(), 3 * EACH, "one id per message, cluster-wide");
    for (id, seen) in &ids {
        assert_eq!(
            seen.len(),
            4,
            "message {id} under one id at every subscriber"
        );
        assert!(seen.iter().all(|b| b == &seen[0]), "{id}: {seen:?}");
    }
}

/// Pattern subscriptions on other nodes: `*`, a trailing `**` (which also matches the parent,
/// zero segments), a glob, and overlapping patterns on one node (one delivery per
/// subscription, never one per NATS filter); segments NATS cannot carry as tokens as they are.
#[tokio::test]
async fn pattern_subscriptions_match_across_nodes() {
    let nats = NatsServer::start().await;
    let [a, b, c] = three_nodes(&nats).await;
    let (mut on_a, _) = a.client(Transport::Ws).await;
    on_a.subscribe("a-all", "/topic/a/**").await;
    let (mut on_b, _) = b.client(Transport::Tcp).await;
    on_b.subscribe("b-one", "/topic/a/*").await;
    on_b.subscribe("b-glob", "/topic/a/x*").await;
    let (mut on_c, _) = c.client(Transport::Ws).await;
    on_c.subscribe("c-all", "/topic/a/**").await;
    on_c.subscribe("c-one", "/topic/a/*").await;
    on_c.subscribe("c-lit", "/topic/a/b").await;
    let (mut publisher, _) = a.client(Transport::Tcp).await;

    // destination -> (subscriptions on a, on b, on c) that match it.
    let cases: [(&str, [&[&str]; 3]); 8] = [
        ("/topic/a", [&["a-all"], &[], &["c-all"]]),
        (
            "/topic/a/b",
            [&["a-all"], &["b-one"], &["c-all", "c-one", "c-lit"]],
        ),
        (
            "/topic/a/x1",
            [&["a-all"], &["b-one", "b-glob"], &["c-all", "c-one"]],
        ),
        ("/topic/a/b/c", [&["a-all"], &[], &["c-all"]]),
        ("/topic/a/", [&["a-all"], &["b-one"], &["c-all", "c-one"]]),
        (
            "/topic/a/b.c",
            [&["a-all"], &["b-one"], &["c-all", "c-one"]],
        ),
        (
            "/topic/a/x >",
            [&["a-all"], &["b-one", "b-glob"], &["c-all", "c-one"]],
        ),
        ("/topic/other", [&[], &[], &[]]),
    ];
    for (destination, matching) in &cases {
        let mut receivers = Vec::new();
        for (client, subs) in [&mut on_a, &mut on_b, &mut on_c].into_iter().zip(matching) {
            if !subs.is_empty() {
                receivers.push((client, subs.len()));
            }
        }
        if !receivers.is_empty() {
            await_route(&mut publisher, destination, &mut receivers).await;
        }
    }

    for (destination, _) in &cases {
        publisher.publish(destination, destination).await;
    }
    publisher.publish_confirmed("/topic/a/end", "end").await;

    for (n, client) in [&mut on_a, &mut on_b, &mut on_c].into_iter().enumerate() {
        let mut expected: Vec<(String, String)> = cases
            .iter()
            .flat_map(|(destination, matching)| {
                matching[n]
                    .iter()
                    .map(|sub| (sub.to_string(), destination.to_string()))
            })
            .collect();
        let end_subs: &[&str] = [&["a-all"][..], &["b-one"], &["c-all", "c-one"]][n];
        expected.extend(
            end_subs
                .iter()
                .map(|s| (s.to_string(), "/topic/a/end".to_owned())),
        );
        let mut got: Vec<(String, String)> = messages(client, expected.len())
            .await
            .iter()
            .map(|f| {
                let destination = f.headers.get("destination").unwrap();
                assert_eq!(
                    body(f),
                    if destination == "/topic/a/end" {
                        "end"
                    } else {
                        destination
                    }
                );
                (
                    f.headers.get("subscription").unwrap().to_owned(),
                    destination.to_owned(),
                )
            })
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got, expected, "node {n}: each matching subscription once");
        client.expect_silence(QUIET).await;
    }
}

/// alice has a tab on node a and one on node b; bob SENDs to /user/alice/queue/x on node c,
/// and from node a: both tabs get every message once, under their own `/user/queue/x`.
#[tokio::test]
async fn user_destination_reaches_every_tab_on_every_node() {
    let nats = NatsServer::start().await;
    let [a, b, c] = three_nodes(&nats).await;
    let (mut tab_a, _) = a.login(Transport::Ws, "alice").await;
    tab_a.subscribe("inbox", "/user/queue/x").await;
    let (mut tab_b, _) = b.login(Transport::Tcp, "alice").await;
    tab_b.subscribe("inbox", "/user/queue/x").await;
    // carol subscribes to the same user destination: she must see none of alice's messages.
    let (mut carol, _) = b.login(Transport::Tcp, "carol").await;
    carol.subscribe("inbox", "/user/queue/x").await;
    let (mut bob_c, _) = c.login(Transport::Tcp, "bob").await;
    let (mut bob_a, _) = a.login(Transport::Ws, "bob").await;

    for bob in [&mut bob_c, &mut bob_a] {
        await_route(
            bob,
            "/user/alice/queue/x",
            &mut [(&mut tab_a, 1), (&mut tab_b, 1)],
        )
        .await;
    }
    for i in 0..10 {
        bob_c.publish("/user/alice/queue/x", &format!("c{i}")).await;
        bob_a.publish("/user/alice/queue/x", &format!("a{i}")).await;
    }
    bob_c
        .publish_confirmed("/user/alice/queue/x", "c-end")
        .await;
    bob_a
        .publish_confirmed("/user/alice/queue/x", "a-end")
        .await;

    for tab in [&mut tab_a, &mut tab_b] {
        let frames = messages(tab, 22).await;
        for frame in &frames {
            assert_eq!(
                frame.headers.get("destination"),
                Some("/user/queue/x"),
                "{}",
                show(frame)
            );
            assert_eq!(frame.headers.get("subscription"), Some("inbox"));
        }
        for node in ["c", "a"] {
            let from: Vec<&str> = bodies(&frames)
                .into_iter()
                .filter(|b| b.starts_with(node))
                .collect();
            let mut expected: Vec<String> = (0..10).map(|i| format!("{node}{i}")).collect();
            expected.push(format!("{node}-end"));
            assert_eq!(from, expected, "from node {node}: once each, in order");
        }
        tab.expect_silence(QUIET).await;
    }
    carol.expect_silence(QUIET).await;
}

/// `/user/<session id>/queue/x` sent on another node reaches that session only, not the
/// user's other tab on a third node.
#[tokio::test]
async fn session_id_targets_one_session_across_nodes() {
    let nats = NatsServer::start().await;
    let [a, b, c] = three_nodes(&nats).await;
    let (mut tab_a, connected_a) = a.login(Transport::Ws, "alice").await;
    tab_a.subscribe("inbox", "/user/queue/x").await;
    let (mut tab_b, connected_b) = b.login(Transport::Tcp, "alice").await;
    tab_b.subscribe("inbox", "/user/queue/x").await;
    let (session_a, session_b) = (session_of(&connected_a), session_of(&connected_b));
    assert!(
        session_a.starts_with("na-"),
        "{session_a}: the node id comes first"
    );
    assert!(session_b.starts_with("nb-"), "{session_b}");
    let (mut sender, _) = c.client(Transport::Tcp).await;

    let to_a = format!("/user/{session_a}/queue/x");
    let to_b = format!("/user/{session_b}/queue/x");
    await_route(&mut sender, &to_a, &mut [(&mut tab_a, 1)]).await;
    await_route(&mut sender, &to_b, &mut [(&mut tab_b, 1)]).await;
    for i in 0..5 {
        sender.publish(&to_a, &format!("for a {i}")).await;
    }
    sender.publish_confirmed(&to_b, "for b").await;

    for i in 0..5 {
        tab_a
            .expect_message("inbox", "/user/queue/x", &format!("for a {i}"))
            .await;
    }
    tab_b
        .expect_message("inbox", "/user/queue/x", "for b")
        .await;
    tab_a.expect_silence(QUIET).await;
    tab_b.expect_silence(QUIET).await;
}

/// `herald presence --cluster URL [USER]` counts the sessions of every node.
#[tokio::test]
async fn presence_answers_for_the_whole_cluster() {
    let nats = NatsServer::start().await;
    let [a, b, c] = three_nodes(&nats).await;
    let _alice = [
        a.login(Transport::Ws, "alice").await,
        a.login(Transport::Tcp, "alice").await,
        b.login(Transport::Ws, "alice").await,
    ];
    let _bob = c.login(Transport::Tcp, "bob").await;

    // Nodes join NATS in their own time: ask until all three answer.
    let url = nats.url();
    assert_eq!(
        presence(&url, None).await,
        BTreeMap::from([("alice".into(), 3), ("bob".into(), 1)])
    );
    assert_eq!(
        presence(&url, Some("alice")).await,
        BTreeMap::from([("alice".into(), 3)])
    );
    assert_eq!(presence(&url, Some("carol")).await, BTreeMap::new());
}

/// Runs `herald presence` until all three nodes answer (it says how many did on stderr);
/// returns its answer, user -> sessions.
async fn presence(url: &str, user: Option<&str>) -> BTreeMap<String, u64> {
    let deadline = Instant::now() + ROUTE_DEADLINE;
    loop {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        command.args(["presence", "--cluster", url]).args(user);
        let output = command
            .env_remove("RUST_LOG")
            .output()
            .await
            .expect("run herald presence");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "herald presence failed: {}\n{stdout}{stderr}",
            output.status
        );
        if stderr.starts_with("3 nodes ") {
            return parse_presence(&stdout);
        }
        assert!(
            Instant::now() < deadline,
            "not every node answered within {ROUTE_DEADLINE:?}: {stdout}{stderr}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads `herald presence` output: one `USER SESSIONS` line per user.
fn parse_presence(stdout: &str) -> BTreeMap<String, u64> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let user = words.next()?;
            let sessions = words.next()?.parse().ok()?;
            Some((user.to_owned(), sessions))
        })
        .collect()
}

/// 10,000 messages from one publisher on node a reach a subscriber on node b once each, in
/// order. They go in writes of 1,000 SENDs, each once the subscriber has the one before: NATS
/// core does not slow a publisher down for a subscriber on another node, so a receiving node
/// that falls behind holds at most `cluster.subscription_capacity` messages (8,192) per NATS
/// subscription and drops the rest, counted. A single burst of 10,000 sometimes crosses that
/// bound here (debug builds, two cores shared by every process: one run of nine lost
/// 128-255 messages from around the 8,400th). Within the bound nothing may be lost,
/// duplicated or reordered.
#[tokio::test]
async fn ten_thousand_messages_cross_in_order_without_duplicates() {
    const COUNT: usize = 10_000;
    const WINDOW: usize = 1_000;
    let nats = NatsServer::start().await;
    let servers = [nats.url()];
    let a = HeraldProcess::start("na", &servers).await;
    let b = HeraldProcess::start("nb", &servers).await;
    let (mut subscriber, _) = b.client(Transport::Ws).await;
    subscriber.subscribe("s", "/topic/seq").await;
    let (mut publisher, _) = a.client(Transport::Tcp).await;
    await_route(&mut publisher, "/topic/seq", &mut [(&mut subscriber, 1)]).await;

    for window in (0..COUNT).step_by(WINDOW) {
        let numbers = window..window + WINDOW;
        publisher
            .send_bytes(&send_batch(
                "/topic/seq",
                numbers.clone().map(|n| n.to_string()),
            ))
            .await;
        for expected in numbers {
            let frame = subscriber.expect(Command::Message).await;
            assert_eq!(body(&frame), expected.to_string(), "message {expected}");
        }
    }
    publisher.publish_confirmed("/topic/seq", "end").await;
    subscriber.expect_body("end").await;
    subscriber.expect_silence(QUIET).await;
}

/// Publishes numbered messages to `destination` from `next` on, until `subscriber` receives
/// one numbered `from` or later; returns every number it received meanwhile.
async fn publish_until_delivered(
    publisher: &mut Client,
    subscriber: &mut Client,
    destination: &str,
    next: &mut u64,
    from: u64,
) -> Vec<u64> {
    let deadline = Instant::now() + ROUTE_DEADLINE;
    let mut received = Vec::new();
    let mut wait = Duration::from_millis(10);
    while received.last().is_none_or(|&n| n < from) {
        assert!(
            Instant::now() < deadline,
            "nothing from {from} on delivered within {ROUTE_DEADLINE:?}; got {received:?}"
        );
        publisher.publish(destination, &next.to_string()).await;
        *next += 1;
        // Read what has arrived, then publish again.
        while let Ok(frame) = tokio::time::timeout(wait, subscriber.recv()).await {
            received.push(number(&frame));
        }
        wait = (wait * 2).min(Duration::from_millis(250));
    }
    received
}

/// Publishes `count` more numbered messages and reads `subscriber` up to the last one.
async fn finish_stream(
    publisher: &mut Client,
    subscriber: &mut Client,
    destination: &str,
    next: &mut u64,
    count: u64,
) -> Vec<u64> {
    let last = *next + count - 1;
    for n in *next..=last {
        publisher.publish(destination, &n.to_string()).await;
    }
    *next = last + 1;
    let mut received = Vec::new();
    while received.last() != Some(&last) {
        received.push(number(&subscriber.expect(Command::Message).await));
    }
    received
}

fn number(frame: &Frame) -> u64 {
    body(frame)
        .parse()
        .unwrap_or_else(|_| panic!("expected a numbered MESSAGE, got {}", show(frame)))
}

/// Reads `client` in a task until a MESSAGE with body `end`, so it never holds up the
/// publisher; returns every number read before it.
fn collect_numbers(mut client: Client) -> JoinHandle<(Client, Vec<u64>)> {
    tokio::spawn(async move {
        let mut received = Vec::new();
        loop {
            let frame = client.expect(Command::Message).await;
            if body(&frame) == "end" {
                return (client, received);
            }
            received.push(number(&frame));
        }
    })
}

/// What a stream across a NATS failure must look like at the subscriber: strictly increasing
/// (no duplicate, no reordering), and nothing missing from the first number it got of those
/// sent after the recovery began (`recovered`) to the end (`last`).
fn assert_stream(received: &[u64], recovered: u64, last: u64) {
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "duplicated or reordered: {received:?}"
    );
    let first = *received
        .iter()
        .find(|&&n| n >= recovered)
        .expect("delivered after the recovery");
    let tail: Vec<u64> = received.iter().copied().filter(|&n| n >= first).collect();
    assert_eq!(
        tail,
        (first..=last).collect::<Vec<_>>(),
        "lost after recovery"
    );
}

/// NATS killed (SIGKILL) and restarted on the same port mid-stream: both nodes go on serving
/// local traffic, reconnect by themselves with their interest restored, and deliver across
/// again, without a Herald restart.
#[tokio::test]
async fn nats_killed_and_restarted_mid_stream_nodes_recover() {
    const STREAM: &str = "/topic/stream";
    let mut nats = NatsServer::start().await;
    let servers = [nats.url()];
    let a = HeraldProcess::start("na", &servers).await;
    let b = HeraldProcess::start("nb", &servers).await;
    let (mut remote, _) = b.client(Transport::Tcp).await;
    remote.subscribe("s", STREAM).await;
    let (mut publisher, _) = a.client(Transport::Tcp).await;
    await_route(&mut publisher, STREAM, &mut [(&mut remote, 1)]).await;
    // Subscribed after the probes: it sees exactly the numbered stream, read in a task.
    let (mut local, _) = a.client(Transport::Ws).await;
    local.subscribe("s", STREAM).await;
    let local = collect_numbers(local);

    let mut next = 0;
    let before = finish_stream(&mut publisher, &mut remote, STREAM, &mut next, 100).await;
    assert_eq!(before, (0..100).collect::<Vec<_>>());

    nats.kill();
    // Local traffic goes on while NATS is down; the receipt says the SENDs were routed.
    for n in next..next + 100 {
        publisher.publish(STREAM, &n.to_string()).await;
    }
    next += 100;
    publisher.publish_confirmed(STREAM, &next.to_string()).await;
    next += 1;

    nats.restart().await;
    let recovered = next;
    let mut received =
        publish_until_delivered(&mut publisher, &mut remote, STREAM, &mut next, recovered).await;
    received.extend(finish_stream(&mut publisher, &mut remote, STREAM, &mut next, 500).await);
    assert_stream(&received, recovered, next - 1);
    publisher.publish_confirmed(STREAM, "end").await;
    remote.expect_body("end").await;
    remote.expect_silence(QUIET).await;

    let (mut local, seen_locally) = within(TIMEOUT, "the local subscriber", local)
        .await
        .unwrap();
    assert_eq!(
        seen_locally,
        (0..next).collect::<Vec<_>>(),
        "local delivery never stopped"
    );
    local.expect_silence(QUIET).await;
}

/// A three-server NATS cluster loses the server a Herald node is connected to mid-stream:
/// the node fails over to another server named in its configuration and delivery goes on.
#[tokio::test]
async fn nats_cluster_losing_a_server_mid_stream_keeps_delivering() {
    let mut nats = NatsCluster::start().await;
    let servers = nats.urls();
    let a = HeraldProcess::start("na", &servers).await;
    let b = HeraldProcess::start("nb", &servers).await;
    let (mut subscriber, _) = b.client(Transport::Ws).await;
    subscriber.subscribe("s", "/topic/stream").await;
    let (mut publisher, _) = a.client(Transport::Tcp).await;
    await_route(&mut publisher, "/topic/stream", &mut [(&mut subscriber, 1)]).await;

    let mut next = 0;
    let before = finish_stream(
        &mut publisher,
        &mut subscriber,
        "/topic/stream",
        &mut next,
        100,
    )
    .await;
    assert_eq!(before, (0..100).collect::<Vec<_>>());

    // Kill a server that holds a Herald connection (both nodes are connected: routing works).
    let mut victim = None;
    for (i, server) in nats.servers.iter().enumerate() {
        if server.client_connections().await > 0 {
            victim = Some(i);
            break;
        }
    }
    let victim = victim.expect("some NATS server holds a Herald node's connection");
    nats.kill(victim);
    // Until a node notices, what its client writes into the dead connection is lost (as
    // documented); the stream is checked from once both nodes are on the surviving servers.
    let deadline = Instant::now() + ROUTE_DEADLINE;
    while survivor_connections(&nats).await != 2 {
        assert!(Instant::now() < deadline, "nodes never failed over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let recovered = next;
    let mut received = publish_until_delivered(
        &mut publisher,
        &mut subscriber,
        "/topic/stream",
        &mut next,
        recovered,
    )
    .await;
    received.extend(
        finish_stream(
            &mut publisher,
            &mut subscriber,
            "/topic/stream",
            &mut next,
            500,
        )
        .await,
    );
    assert_stream(&received, recovered, next - 1);
    subscriber.expect_silence(QUIET).await;
    assert_eq!(
        survivor_connections(&nats).await,
        2,
        "both nodes on the surviving servers"
    );
}

/// Client connections on the NATS servers still running.
async fn survivor_connections(nats: &NatsCluster) -> u64 {
    let mut total = 0;
    for server in nats.servers.iter().filter(|s| s.is_running()) {
        total += server.client_connections().await;
    }
    total
}

/// Nodes started while NATS is down serve local traffic, and join the cluster when NATS comes
/// up.
#[tokio::test]
async fn node_started_while_nats_is_down_serves_locally_then_joins() {
    let mut nats = NatsServer::unstarted();
    let servers = [nats.url()];
    let a = HeraldProcess::start("na", &servers).await;
    let b = HeraldProcess::start("nb", &servers).await;

    let (mut local, _) = a.client(Transport::Ws).await;
    local.subscribe("s", "/topic/t").await;
    let (mut alice, _) = a.login(Transport::Tcp, "alice").await;
    alice.subscribe("inbox", "/user/queue/x").await;
    let (mut publisher, _) = a.client(Transport::Tcp).await;
    publisher.publish_confirmed("/topic/t", "alone").await;
    local.expect_message("s", "/topic/t", "alone").await;
    publisher
        .publish_confirmed("/user/alice/queue/x", "alone too")
        .await;
    alice
        .expect_message("inbox", "/user/queue/x", "alone too")
        .await;

    let (mut remote, _) = b.client(Transport::Tcp).await;
    remote.subscribe("s", "/topic/t").await;
    let (mut bob, _) = b.login(Transport::Ws, "bob").await;

    nats.restart().await;
    await_route(
        &mut publisher,
        "/topic/t",
        &mut [(&mut remote, 1), (&mut local, 1)],
    )
    .await;
    await_route(&mut bob, "/user/alice/queue/x", &mut [(&mut alice, 1)]).await;
    for i in 0..50 {
        publisher.publish("/topic/t", &i.to_string()).await;
    }
    publisher.publish_confirmed("/topic/t", "end").await;
    bob.publish_confirmed("/user/alice/queue/x", "joined").await;
    for subscriber in [&mut remote, &mut local] {
        let frames = messages(subscriber, 51).await;
        let mut expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
        expected.push("end".into());
        assert_eq!(bodies(&frames), expected);
        subscriber.expect_silence(QUIET).await;
    }
    alice
        .expect_message("inbox", "/user/queue/x", "joined")
        .await;
}
