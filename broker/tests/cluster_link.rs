//! `NatsLink` against a real `nats-server`: links on separate connections (as separate nodes
//! are) exchange topic, user and session messages, deliver once through overlapping filters,
//! stop when interest ends, pass back-pressure both ways, gather presence, and survive a NATS
//! restart. Routing is replaced by a recorder of what the link hands it.

// Only the NATS process helper of the harness; this file uses part of it.
#[allow(dead_code)]
#[path = "common/nats.rs"]
mod nats;

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use herald::cluster::presence::ask_cluster;
use herald::cluster::{Inbound, LinkSettings, NatsLink, ask_presence};
use herald::config::{ClusterConfig, OverflowPolicy};
use herald::outbox::{OutFrame, Outbox, Pushed};
use herald::routing::Separator;
use herald::routing::cluster::{
    Audience, ClusterLink, Crossing, LinkState, Presence, RemotePresence,
};
use herald_protocol::Headers;
use nats::NatsServer;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// How long any one expected event may take before the test fails (the machine is shared).
const PATIENCE: Duration = Duration::from_secs(30);

/// A message as routing received it, owned.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    audience: String,
    destination: String,
    message_id: String,
    headers: Headers,
    body: Bytes,
}

/// Routing's stand-in: records deliveries, answers presence from a fixed map, and can hand
/// back a congested outbox once.
#[derive(Default)]
struct Recorder {
    received: Mutex<Vec<Received>>,
    arrived: Notify,
    presence: Presence,
    congested: Mutex<Option<Arc<Outbox>>>,
}

impl Inbound for Recorder {
    fn deliver(&self, message: Crossing<'_>) -> Vec<Arc<Outbox>> {
        let audience = match message.audience {
            Audience::Topic => "topic".to_owned(),
            Audience::User { name } => format!("user {name}"),
            Audience::Session { node, session } => format!("session {node} {session}"),
        };
        self.received.lock().push(Received {
            audience,
            destination: message.destination.to_owned(),
            message_id: message.message_id.to_owned(),
            headers: message.headers.clone(),
            body: message.body.clone(),
        });
        self.arrived.notify_waiters();
        self.congested.lock().take().into_iter().collect()
    }

    fn local_presence(&self, user: Option<&str>) -> Presence {
        let mut presence = self.presence.clone();
        presence.retain(|name, _| user.is_none_or(|u| u == name));
        presence
    }

    /// What the recorded presence holds of `user`, as if those sessions were closed.
    fn kick(&self, user: &str, _reason: &str) -> usize {
        self.presence.get(user).copied().unwrap_or(0)
    }
}

impl Recorder {
    /// Waits until `n` messages have arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let arrived = self.arrived.notified();
            if self.received.lock().len() >= n {
                return self.received();
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let received = self.received();
                let last = &received[received.len().saturating_sub(5)..];
                panic!(
                    "{n} messages expected, got {}, the last {last:#?}",
                    received.len()
                );
            }
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().clone()
    }
}

/// One node: its link, its routing stand-in and its NATS connection.
struct Node {
    link: NatsLink,
    recorder: Arc<Recorder>,
    client: Client,
}

fn settings(node_id: &str) -> LinkSettings {
    LinkSettings {
        cluster_name: "herald".to_owned(),
        node_id: node_id.to_owned(),
        broadcast_prefixes: vec!["/topic/".to_owned()],
        separator: Separator::Slash,
        max_pending_bytes: 1 << 20,
        burst_bytes: 4 << 20,
        max_pause: Duration::from_secs(60),
        presence_timeout: Duration::from_millis(200),
    }
}

async fn client(server: &NatsServer) -> Client {
    ConnectOptions::new()
        .no_echo()
        .max_reconnects(None)
        .connect(server.url())
        .await
        .expect("connect to nats-server")
}

async fn node_with(server: &NatsServer, settings: LinkSettings, presence: Presence) -> Node {
    let client = client(server).await;
    let link = NatsLink::new(client.clone(), settings);
    let recorder = Arc::new(Recorder {
        presence,
        ..Recorder::default()
    });
    let inbound: Weak<dyn Inbound> = Arc::downgrade(&recorder) as Weak<dyn Inbound>;
    link.start(inbound);
    within(link.settled(), "the node's own subscriptions").await;
    Node {
        link,
        recorder,
        client,
    }
}

async fn node(server: &NatsServer, id: &str) -> Node {
    node_with(server, settings(id), Presence::new()).await
}

async fn within<T>(future: impl Future<Output = T>, what: &str) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("waiting for {what} took longer than {PATIENCE:?}"))
}

/// Reports interest and waits until the server has the subscriptions.
async fn interest(node: &Node, topics: &[&str]) {
    for topic in topics {
        node.link.topic_interest(topic, true);
    }
    within(node.link.settled(), "subscriptions").await;
}

fn forward(
    from: &Node,
    audience: Audience<'_>,
    destination: &str,
    message_id: &str,
    headers: &Headers,
    body: &Bytes,
) -> Option<Arc<Outbox>> {
    from.link
        .forward(Crossing {
            audience,
            destination,
            message_id,
            headers,
            body,
        })
        .expect("the link carries it")
}

/// Forwards a topic message without headers whose body is its id.
fn publish(from: &Node, destination: &str, id: &str) {
    let body = Bytes::copy_from_slice(id.as_bytes());
    forward(
        from,
        Audience::Topic,
        destination,
        id,
        &Headers::new(),
        &body,
    );
}

/// Waits until `node`'s link has removed `n` second copies (the counter has no event).
async fn duplicates_reach(node: &Node, n: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while node.link.counters().duplicates < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            node.link.counters()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn ids(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.message_id.as_str()).collect()
}

#[tokio::test]
async fn a_topic_message_crosses_with_its_headers_and_body_unchanged() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/news/*"]).await;
    // What NATS headers cannot carry as is: colons and spaces in names, CR/LF and
    // whitespace at the ends of values, repeats in order, a name of Herald's own, UTF-8.
    let headers: Headers = [
        ("content-type", "text/plain;charset=utf-8"),
        ("x:y z", " padded\t"),
        ("multi", "line\r\nbreak"),
        ("repeat", "1"),
        ("Herald-Message-Id", "forged"),
        ("repeat", "2"),
        ("empty", ""),
        ("", "no name"),
        ("ünï", "%41 ✓"),
    ]
    .into_iter()
    .collect();
    let body = Bytes::from_static(b"\0binary\xff\r\n");
    let forwarded = forward(
        &a,
        Audience::Topic,
        "/topic/news/a b",
        "a-1",
        &headers,
        &body,
    );
    assert!(forwarded.is_none(), "an empty buffer is not congested");
    let received = b.recorder.wait_for(1).await;
    assert_eq!(
        received,
        [Received {
            audience: "topic".to_owned(),
            destination: "/topic/news/a b".to_owned(),
            message_id: "a-1".to_owned(),
            headers,
            body,
        }]
    );
    assert_eq!(a.link.counters().published, 1);
    assert_eq!(b.link.counters().delivered, 1);
}

#[tokio::test]
async fn user_and_session_messages_reach_the_node_holding_them() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    b.link.user_interest("alice", true);
    within(b.link.settled(), "alice's subscription").await;
    let headers: Headers = [("priority", "high")].into_iter().collect();
    let body = Bytes::from_static(b"hi alice");
    let user = Audience::User { name: "alice" };
    forward(&a, user, "/queue/inbox", "a-1", &headers, &body);
    let session = Audience::Session {
        node: "b",
        session: "b-00000000000000ff",
    };
    forward(&a, session, "/queue/direct", "a-2", &headers, &body);
    let received = b.recorder.wait_for(2).await;
    let mut seen: Vec<_> = received
        .iter()
        .map(|r| {
            (
                r.audience.as_str(),
                r.destination.as_str(),
                r.message_id.as_str(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("session b b-00000000000000ff", "/queue/direct", "a-2"),
            ("user alice", "/queue/inbox", "a-1"),
        ]
    );
    assert!(
        received
            .iter()
            .all(|r| r.headers == headers && r.body == body)
    );
    // Nobody else gets them: a's recorder saw nothing.
    assert!(a.recorder.received().is_empty());
}

#[tokio::test]
async fn overlapping_filters_deliver_each_message_once_in_order() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    // Filters t.a.*, t.a.b, t.a and t.a.>: a message on /topic/a/b matches three.
    interest(&b, &["/topic/a/*", "/topic/a/b", "/topic/a/**"]).await;
    publish(&a, "/topic/a/b", "1");
    publish(&a, "/topic/a/c", "2");
    publish(&a, "/topic/a", "3");
    b.recorder.wait_for(3).await;
    // Every copy is accounted for: a/b arrives 3 times, a/c twice, a once.
    duplicates_reach(&b, 3).await;
    assert_eq!(
        ids(&b.recorder.received()),
        ["1", "2", "3"],
        "each once, in order"
    );
    assert_eq!(b.link.counters().duplicates, 3);
}

/// One publisher's messages to destinations that reach node b through different NATS
/// subscriptions (a pattern's two filters `t.a` and `t.a.>`, a literal, a user's subject,
/// the node's own subject), interleaved at full speed: node b hands them to routing in the
/// order they were published, each once.
#[tokio::test]
async fn the_publish_order_holds_across_subscriptions() {
    const COUNT: usize = 20_000;
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/a/**", "/topic/b", "/topic/a/x"]).await;
    b.link.user_interest("alice", true);
    within(b.link.settled(), "subscriptions").await;
    let session = Audience::Session {
        node: "b",
        session: "b-00000000000000ff",
    };
    let targets = [
        (Audience::Topic, "/topic/a"),
        (Audience::Topic, "/topic/a/x"),
        (Audience::Topic, "/topic/a/x/y"),
        (Audience::Topic, "/topic/b"),
        (Audience::User { name: "alice" }, "/queue/inbox"),
        (session, "/queue/direct"),
    ];
    let mut sent = Vec::with_capacity(COUNT);
    // A cheap pseudo-random target per message.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for n in 0..COUNT {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let (audience, destination) = targets[(x % targets.len() as u64) as usize];
        let id = n.to_string();
        let body = Bytes::copy_from_slice(id.as_bytes());
        // A full outgoing buffer pauses the sender, as it would a publishing session.
        if let Some(buffer) = forward(&a, audience, destination, &id, &Headers::new(), &body) {
            within(buffer.uncongested(), "the outgoing buffer").await;
        }
        sent.push(id);
    }
    let received = b.recorder.wait_for(COUNT).await;
    assert_eq!(a.link.counters().dropped, 0, "{:?}", a.link.counters());
    assert_eq!(
        b.link.counters().inbound_dropped,
        0,
        "{:?}",
        b.link.counters()
    );
    let received = ids(&received);
    let first_out_of_order = received.iter().zip(&sent).position(|(r, s)| r != s);
    assert_eq!(
        first_out_of_order,
        None,
        "received {} of {COUNT}",
        received.len()
    );
}

/// A destination whose subject would pass nats-server's control line (each space is three
/// bytes escaped) crosses on its prefix's long subject, which both a literal interest in it
/// and a pattern subscribe: delivered once, under its own destination.
#[tokio::test]
async fn a_destination_too_long_for_a_subject_crosses_once() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let long = format!("/topic/{}", " ".repeat(2_000));
    interest(&b, &[&long, "/topic/**"]).await;
    publish(&a, &long, "long");
    publish(&a, "/topic/short", "short");
    let received = b.recorder.wait_for(2).await;
    let mut seen: Vec<_> = received
        .iter()
        .map(|r| (r.message_id.as_str(), r.destination.len()))
        .collect();
    seen.sort_unstable();
    assert_eq!(
        seen,
        [("long", long.len()), ("short", "/topic/short".len())]
    );
    assert_eq!(a.link.counters().dropped, 0);
}

/// Node b has `…p.q` then `…p.*`: a `/topic/p/q` message arrives on both and is delivered
/// once. When interest in `/topic/p/q` ends, later `/topic/p/q` messages come through `…p.*`
/// alone: delivered, once.
#[tokio::test]
async fn a_filter_ending_under_an_overlapping_one_delivers_nothing_twice() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/p/q"]).await;
    interest(&b, &["/topic/p/*"]).await;
    publish(&a, "/topic/p/r", "r");
    for id in ["q1", "q2", "q3"] {
        publish(&a, "/topic/p/q", id);
    }
    assert_eq!(ids(&b.recorder.wait_for(4).await), ["r", "q1", "q2", "q3"]);
    b.link.topic_interest("/topic/p/q", false);
    within(b.link.settled(), "the unsubscription").await;
    publish(&a, "/topic/p/q", "q4");
    let received = b.recorder.wait_for(5).await;
    assert_eq!(ids(&received), ["r", "q1", "q2", "q3", "q4"]);
    // The three second copies were recognised, and nothing more comes.
    duplicates_reach(&b, 3).await;
    publish(&a, "/topic/p/r", "end");
    b.recorder.wait_for(6).await;
    assert_eq!(
        ids(&b.recorder.received()),
        ["r", "q1", "q2", "q3", "q4", "end"]
    );
    assert_eq!(b.link.counters().duplicates, 3);
}

#[tokio::test]
async fn interest_off_stops_delivery() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/x", "/topic/y"]).await;
    publish(&a, "/topic/x", "x1");
    b.recorder.wait_for(1).await;
    b.link.topic_interest("/topic/x", false);
    within(b.link.settled(), "the unsubscription").await;
    publish(&a, "/topic/x", "x2");
    publish(&a, "/topic/y", "y1");
    b.recorder.wait_for(2).await;
    // The server no longer sends x to b at all, so x2 cannot come later.
    assert_eq!(ids(&b.recorder.received()), ["x1", "y1"]);
}

#[tokio::test]
async fn a_full_outgoing_buffer_pauses_the_publisher_until_drained() {
    let server = NatsServer::start().await;
    let mut tight = settings("a");
    tight.max_pending_bytes = 1;
    let a = node_with(&server, tight, Presence::new()).await;
    let b = node(&server, "b").await;
    interest(&b, &["/topic/p"]).await;
    let body = Bytes::from_static(b"payload");
    let buffer = forward(&a, Audience::Topic, "/topic/p", "1", &Headers::new(), &body)
        .expect("one message is above a 1-byte mark");
    within(buffer.uncongested(), "the publisher to drain the buffer").await;
    assert_eq!(ids(&b.recorder.wait_for(1).await), ["1"]);
}

/// A subscriber's outbox above its high-water mark.
fn congested_outbox() -> Arc<Outbox> {
    let outbox = Outbox::new(10, OverflowPolicy::Close).with_burst_bytes(1000);
    let frame = OutFrame {
        bytes: Bytes::from(vec![b'x'; 100]),
        text: false,
    };
    assert_eq!(outbox.push_message(frame), Pushed::Congested);
    Arc::new(outbox)
}

/// A congested subscriber does not hold back the messages behind it (other subscribers
/// here, or a receiver that stopped reading would make NATS drop for everyone); it gets
/// `max_pause` to catch up, and is left open when it does.
#[tokio::test]
async fn a_congested_subscriber_holds_nothing_back_and_stays_open_once_drained() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/slow"]).await;
    let outbox = congested_outbox();
    *b.recorder.congested.lock() = Some(Arc::clone(&outbox));
    publish(&a, "/topic/slow", "1");
    publish(&a, "/topic/slow", "2");
    assert_eq!(ids(&b.recorder.wait_for(2).await), ["1", "2"]);
    assert!(outbox.is_congested());
    outbox.drain();
    within(outbox.uncongested(), "the drained subscriber to be let go").await;
    assert!(
        !outbox.drain().overflowed,
        "a subscriber that caught up is not closed"
    );
}

#[tokio::test]
async fn a_subscriber_congested_past_max_pause_is_closed() {
    let server = NatsServer::start().await;
    let a = node(&server, "a").await;
    let mut impatient = settings("b");
    impatient.max_pause = Duration::from_millis(50);
    let b = node_with(&server, impatient, Presence::new()).await;
    interest(&b, &["/topic/slow"]).await;
    let outbox = congested_outbox();
    *b.recorder.congested.lock() = Some(Arc::clone(&outbox));
    publish(&a, "/topic/slow", "1");
    within(outbox.uncongested(), "the slow subscriber to be closed").await;
    assert!(outbox.drain().overflowed, "closed as a slow consumer");
}

#[tokio::test]
async fn presence_gathers_every_other_node() {
    let server = NatsServer::start().await;
    let users = |list: &[(&str, usize)]| -> Presence {
        list.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect()
    };
    let a = node_with(&server, settings("a"), users(&[("carol", 1)])).await;
    let _b = node_with(&server, settings("b"), users(&[("alice", 1)])).await;
    let _c = node_with(&server, settings("c"), users(&[("alice", 2), ("bob", 1)])).await;
    // a's own connection does not hear its own question (no echo): the other two answer.
    assert_eq!(
        a.link.presence(None).await,
        RemotePresence {
            users: users(&[("alice", 3), ("bob", 1)]),
            nodes: 2,
        }
    );
    assert_eq!(
        a.link.presence(Some("bob".to_owned())).await,
        RemotePresence {
            users: users(&[("bob", 1)]),
            nodes: 2,
        }
    );
    // From outside (the CLI), every node answers.
    let outsider = client(&server).await;
    let all = ask_presence(&outsider, "herald", None, Duration::from_millis(200)).await;
    assert_eq!(all.users, users(&[("alice", 3), ("bob", 1), ("carol", 1)]));
    assert_eq!(all.nodes, 3);
    // `herald presence` connects from the `[cluster]` section.
    let cluster = ClusterConfig {
        servers: vec![server.url()],
        ..ClusterConfig::default()
    };
    let asked = ask_cluster(&cluster, Some("alice"), Duration::from_millis(200)).await;
    assert_eq!(asked.unwrap().users, users(&[("alice", 3)]));
    // Another cluster on the same NATS hears nothing.
    let other = ask_presence(&outsider, "other", None, Duration::from_millis(50)).await;
    assert_eq!(other, RemotePresence::default());
}

/// Polls the link's state until it is `want`.
async fn await_state(node: &Node, want: LinkState) {
    within(
        async {
            while node.link.state() != want {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
        &format!("link state {want:?}"),
    )
    .await;
}

#[tokio::test]
async fn nats_restarting_drops_while_down_then_delivers_again() {
    let mut server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/r"]).await;
    publish(&a, "/topic/r", "before");
    b.recorder.wait_for(1).await;
    server.kill();
    await_state(&a, LinkState::Disconnected).await;
    publish(&a, "/topic/r", "while down");
    assert_eq!(a.link.counters().dropped, 1, "dropped, not buffered");
    server.restart().await;
    await_state(&a, LinkState::Connected).await;
    await_state(&b, LinkState::Connected).await;
    // b's client restores its subscriptions first thing on reconnect; a request nobody
    // answers comes back once the server has handled them.
    let nobody = b.client.new_inbox();
    let answer = within(b.client.request(nobody, Bytes::new()), "a round trip").await;
    assert!(answer.is_err(), "no responders");
    publish(&a, "/topic/r", "after");
    assert_eq!(ids(&b.recorder.wait_for(2).await), ["before", "after"]);
}

/// A client whose connection task ends for good (async-nats 0.46 panics there on a subject
/// that is not UTF-8, which any client allowed to publish can send; here the client is
/// drained, which ends it the same way) takes every subscription with it. The link notices,
/// makes a new client and subscribes again.
#[tokio::test]
async fn a_client_that_ends_is_replaced_with_its_interest() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    let url = server.url();
    b.link.renew_with(Arc::new(move || {
        let url = url.clone();
        Box::pin(async move { ConnectOptions::new().no_echo().connect(url).await.ok() })
    }));
    interest(&b, &["/topic/g/*"]).await;
    within(b.client.drain(), "the drain").await.unwrap();
    // Until the old client has ended: its connection task no longer takes commands.
    within(
        async {
            while b.client.flush().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
        "the drained client to end",
    )
    .await;
    // Until a message published after the end arrives.
    within(
        async {
            for i in 0.. {
                publish(&a, "/topic/g/x", &format!("after-{i}"));
                let arrived = b.recorder.arrived.notified();
                if tokio::time::timeout(Duration::from_millis(50), arrived)
                    .await
                    .is_ok()
                {
                    return;
                }
            }
        },
        "node b to receive again",
    )
    .await;
    assert!(
        b.recorder
            .received()
            .iter()
            .all(|r| r.message_id.starts_with("after-"))
    );
    assert_eq!(b.link.state(), LinkState::Connected);
}

#[tokio::test]
async fn close_sends_what_is_buffered() {
    let server = NatsServer::start().await;
    let (a, b) = (node(&server, "a").await, node(&server, "b").await);
    interest(&b, &["/topic/last"]).await;
    publish(&a, "/topic/last", "1");
    within(a.link.close(), "close").await;
    assert_eq!(ids(&b.recorder.wait_for(1).await), ["1"]);
    assert_eq!(a.link.counters().published, 1);
    // Closed: nothing more is taken, nothing waits for it.
    publish(&a, "/topic/last", "2");
    assert_eq!(a.link.counters().dropped, 1);
}

/// `herald presence --cluster URL [USER]`: one `USER SESSIONS` line per user on stdout, for
/// every node of the cluster.
#[tokio::test]
async fn the_presence_command_lists_every_node_s_users() {
    let server = NatsServer::start().await;
    let users = |list: &[(&str, usize)]| -> Presence {
        list.iter().map(|(u, n)| ((*u).to_owned(), *n)).collect()
    };
    let _a = node_with(&server, settings("a"), users(&[("alice", 1)])).await;
    let _b = node_with(&server, settings("b"), users(&[("alice", 2), ("bob", 1)])).await;
    let herald = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        command.arg("presence").arg("--cluster").arg(server.url());
        command.args(args).kill_on_drop(true).output()
    };
    let all = within(herald(&[]), "herald presence").await.unwrap();
    let stderr = String::from_utf8_lossy(&all.stderr);
    assert!(all.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&all.stdout), "alice 3\nbob 1\n");
    assert!(
        stderr.contains("2 nodes of cluster \"herald\" answered"),
        "{stderr}"
    );
    let bob = within(herald(&["bob"]), "herald presence bob")
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&bob.stdout), "bob 1\n");
    let other = within(herald(&["--name", "other"]), "another cluster")
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "");
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(stderr.contains("0 nodes of cluster \"other\""), "{stderr}");
}

#[tokio::test]
async fn presence_without_a_reachable_nats_is_an_error() {
    let cluster = ClusterConfig {
        servers: vec![format!("nats://127.0.0.1:{}", nats::free_port())],
        connect_timeout_ms: 100,
        ..ClusterConfig::default()
    };
    let asked = ask_cluster(&cluster, None, Duration::from_millis(50)).await;
    let error = asked.expect_err("nobody to ask").to_string();
    assert!(error.contains("no NATS server"), "{error}");
}
