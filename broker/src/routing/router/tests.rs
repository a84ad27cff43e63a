//! The router with a recording cluster link: parsing, interest, forwarding and delivery from
//! other nodes, without sockets.

use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{Headers, Version};
use parking_lot::Mutex;

use super::*;
use crate::config::{Config, OverflowPolicy};
use crate::routing::cluster::{BoxFuture, RemoteDisconnect, RemotePresence, Unforwardable};
use crate::routing::offline::Taken;
use crate::routing::queue::AckMode;
use crate::routing::user::LocalUsers;

const NODE: &str = "nodea";
const OTHER_SESSION: &str = "nodeb-00f1e2d3c4b5a697";

/// What the router told the link, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    Topic(String, bool),
    User(String, bool),
    Queue(String, bool),
    /// Audience (as text), destination, message id, body.
    Forward(String, String, String, Vec<u8>),
}

#[derive(Debug, Default)]
struct Recorder {
    told: Mutex<Vec<Told>>,
    max: Option<usize>,
}

impl ClusterLink for Recorder {
    fn topic_interest(&self, pattern: &str, on: bool) {
        self.told.lock().push(Told::Topic(pattern.to_owned(), on));
    }

    fn user_interest(&self, user: &str, on: bool) {
        self.told.lock().push(Told::User(user.to_owned(), on));
    }

    fn queue_interest(&self, queue: &str, on: bool) {
        self.told.lock().push(Told::Queue(queue.to_owned(), on));
    }

    fn forward(&self, message: Crossing<'_>) -> Result<Option<Arc<Outbox>>, Unforwardable> {
        if let Some(max) = self.max.filter(|&max| message.body.len() > max) {
            return Err(Unforwardable::TooLarge {
                size: message.body.len(),
                max,
            });
        }
        let audience = match message.audience {
            Audience::Topic => "topic".to_owned(),
            Audience::User { name } => format!("user {name}"),
            Audience::Session { node, session } => format!("session {node} {session}"),
        };
        self.told.lock().push(Told::Forward(
            audience,
            message.destination.to_owned(),
            message.message_id.to_owned(),
            message.body.to_vec(),
        ));
        Ok(None)
    }

    fn disconnect(&self, _user: String, _reason: String) -> BoxFuture<RemoteDisconnect> {
        Box::pin(std::future::ready(RemoteDisconnect::default()))
    }

    fn presence(&self, _user: Option<String>) -> BoxFuture<RemotePresence> {
        Box::pin(std::future::ready(RemotePresence {
            users: Presence::from([("alice".to_owned(), 2)]),
            nodes: 1,
        }))
    }

    fn state(&self) -> LinkState {
        LinkState::Connected
    }
}

fn router_with(link: Arc<Recorder>) -> Router {
    Router::new(
        &Config::default(),
        NODE,
        Arc::new(LocalUsers::default()),
        link,
        Arc::new(Stats::default()),
    )
}

fn told(link: &Recorder) -> Vec<Told> {
    std::mem::take(&mut *link.told.lock())
}

fn spec(session: u64, id: &str, outbox: &Arc<Outbox>) -> ConsumerSpec {
    ConsumerSpec {
        subscriber: Subscriber::new(session, id, Version::V1_2, Arc::clone(outbox)),
        ack: AckMode::Auto,
        prefetch: 0,
        tag: 1,
        shown_destination: None,
    }
}

fn outbox() -> Arc<Outbox> {
    Arc::new(Outbox::new(1 << 20, OverflowPolicy::Close))
}

fn frames(outbox: &Outbox) -> Vec<String> {
    outbox
        .drain()
        .frames
        .iter()
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect()
}

#[test]
fn destinations_are_parsed_once_into_routes() {
    let router = router_with(Arc::default());
    assert_eq!(
        router.parse_send("/topic/a"),
        Ok(SendRoute::Topic("/topic/a"))
    );
    assert_eq!(
        router.parse_send("/queue/a"),
        Ok(SendRoute::Queue("/queue/a"))
    );
    assert_eq!(
        router.parse_send("/user/org%2Falice/queue/x"),
        Ok(SendRoute::User {
            name: "org/alice".into(),
            destination: "/queue/x"
        })
    );
    let resolved = format!("/queue/x-user{OTHER_SESSION}");
    assert_eq!(
        router.parse_send(&resolved),
        Ok(SendRoute::Resolved {
            resolved: &resolved,
            session: OTHER_SESSION
        })
    );
    for refused in [
        "/topic/a/*",
        "/user/alice",
        "/user/alice/other/x",
        "/elsewhere",
    ] {
        assert!(router.parse_send(refused).is_err(), "{refused}");
    }
    let own = "nodea-0000000000000001";
    assert_eq!(
        router.parse_subscribe("/user/queue/x", own),
        Ok(SubscribeRoute::User {
            shown: "/user/queue/x",
            destination: "/queue/x",
            resolved: format!("/queue/x-user{own}"),
        })
    );
    let refusal = router.parse_subscribe(&resolved, own).unwrap_err();
    assert_eq!(refusal.message, "access denied");
    assert!(router.parse_subscribe("/queue/a/*", own).is_err());
    assert_eq!(
        router.parse_subscribe("/topic/a/*", own),
        Ok(SubscribeRoute::Topic("/topic/a/*"))
    );
}

/// Each of two sessions of alice subscribes a topic pattern, a queue and (session 1) a
/// client-ack topic, whose private queue is not a named queue.
#[test]
fn the_link_hears_of_the_first_and_last_subscription_consumer_and_session() {
    let link = Arc::new(Recorder::default());
    let router = router_with(Arc::clone(&link));
    let creator = Creator::default();
    let outs = [outbox(), outbox()];
    let subscribe = |n: usize, destination: &str, ack: AckMode| {
        let id = format!("nodea-{n}");
        router.open_session(&id, Some("alice"));
        let mut spec = spec(n as u64, destination, &outs[n - 1]);
        spec.ack = ack;
        let session = SessionRef {
            id: &id,
            user: Some("alice"),
            creator: &creator,
        };
        let route = router.parse_subscribe(destination, &id).unwrap();
        (
            router.subscribe(session, route, spec.clone()).unwrap(),
            spec.subscriber,
        )
    };
    let first = [
        subscribe(1, "/topic/a/*", AckMode::Auto),
        subscribe(1, "/queue/work", AckMode::Auto),
        subscribe(1, "/topic/t", AckMode::Client),
    ];
    let second = [
        subscribe(2, "/topic/a/*", AckMode::Auto),
        subscribe(2, "/queue/work", AckMode::Auto),
    ];
    assert_eq!(
        told(&link),
        [
            Told::User("alice".into(), true),
            Told::Topic("/topic/a/*".into(), true),
            Told::Queue("/queue/work".into(), true),
            Told::Topic("/topic/t".into(), true),
        ]
    );
    for (route, subscriber) in &first[..2] {
        router.unsubscribe("nodea-1", route, subscriber);
    }
    assert_eq!(told(&link), []);
    router.unsubscribe_session("nodea-2", second.iter().map(|(r, s)| (r, s)));
    assert_eq!(
        told(&link),
        [
            Told::Topic("/topic/a/*".into(), false),
            Told::Queue("/queue/work".into(), false)
        ]
    );
    router.unsubscribe_session("nodea-1", first[2..].iter().map(|(r, s)| (r, s)));
    assert_eq!(
        told(&link),
        [
            Told::Topic("/topic/t".into(), false),
            Told::User("alice".into(), false)
        ]
    );
}

#[test]
fn a_publish_is_delivered_here_and_forwarded_once_with_one_id() {
    let link = Arc::new(Recorder::default());
    let router = router_with(Arc::clone(&link));
    let creator = Creator::default();
    let out = outbox();
    let session = SessionRef {
        id: "nodea-1",
        user: None,
        creator: &creator,
    };
    router
        .subscribe(
            session,
            router.parse_subscribe("/topic/a", "nodea-1").unwrap(),
            spec(1, "s", &out),
        )
        .unwrap();
    told(&link);
    let mut headers = Headers::new();
    headers.push("receipt", "r1");
    headers.push("x", "1");
    let body = Bytes::from_static(b"hello");
    let published = router
        .publish(&router.parse_send("/topic/a").unwrap(), &headers, &body)
        .unwrap();
    assert!(published.queues.is_empty());
    let [Told::Forward(audience, destination, id, sent)] = &told(&link)[..] else {
        panic!("one forward expected");
    };
    assert_eq!(
        (audience.as_str(), destination.as_str()),
        ("topic", "/topic/a")
    );
    assert_eq!(sent, b"hello");
    let local = frames(&out);
    assert_eq!(local.len(), 1);
    assert!(
        local[0].contains(&format!("message-id:{id}\n")),
        "{local:?}"
    );
    assert!(!local[0].contains("receipt"), "{local:?}");
}

#[test]
fn user_and_session_sends_go_where_the_sessions_are() {
    let link = Arc::new(Recorder::default());
    let router = router_with(Arc::clone(&link));
    let body = Bytes::from_static(b"b");
    let headers = Headers::new();
    let send = |destination: &str| {
        router
            .publish(&router.parse_send(destination).unwrap(), &headers, &body)
            .unwrap()
    };
    // A user name: forwarded for the other nodes, and this node's sessions (none) too.
    let published = send("/user/bob/queue/x");
    assert!(published.queues.is_empty());
    assert!(
        matches!(&told(&link)[..], [Told::Forward(a, d, ..)] if a == "user bob" && d == "/queue/x")
    );
    // Another node's session: only forwarded, to that node.
    send(&format!("/user/{OTHER_SESSION}/queue/x"));
    let expected = format!("session nodeb {OTHER_SESSION}");
    assert!(
        matches!(&told(&link)[..], [Told::Forward(a, d, ..)] if *a == expected && d == "/queue/x")
    );
    send(&format!("/queue/x-user{OTHER_SESSION}"));
    assert!(
        matches!(&told(&link)[..], [Told::Forward(a, d, ..)] if *a == expected && d == "/queue/x")
    );
    // This node's session: a local queue, nothing forwarded.
    let own = "nodea-00f1e2d3c4b5a697";
    let published = send(&format!("/queue/x-user{own}"));
    assert_eq!(published.queues, [format!("/queue/x-user{own}")]);
    assert_eq!(told(&link), []);
}

#[test]
fn messages_from_other_nodes_reach_local_subscribers_only() {
    let link = Arc::new(Recorder::default());
    let router = router_with(Arc::clone(&link));
    let creator = Creator::default();
    let (topic_out, user_out) = (outbox(), outbox());
    let session = SessionRef {
        id: "nodea-00f1e2d3c4b5a697",
        user: Some("alice"),
        creator: &creator,
    };
    router.open_session(session.id, session.user);
    router
        .subscribe(
            session,
            router.parse_subscribe("/topic/a/*", session.id).unwrap(),
            spec(1, "t", &topic_out),
        )
        .unwrap();
    let user_route = router
        .subscribe(
            session,
            router.parse_subscribe("/user/queue/x", session.id).unwrap(),
            spec(1, "u", &user_out),
        )
        .unwrap();
    told(&link);
    let headers: Headers = [("k", "v")].into_iter().collect();
    let body = Bytes::from_static(b"remote");
    let crossing = |audience| Crossing {
        audience,
        destination: "/topic/a/b",
        message_id: "nodeb-7",
        headers: &headers,
        body: &body,
    };
    router.deliver_remote(crossing(Audience::Topic));
    let delivered = frames(&topic_out);
    assert_eq!(delivered.len(), 1);
    assert!(delivered[0].contains("message-id:nodeb-7\n"));
    router.deliver_remote(Crossing {
        destination: "/queue/x",
        ..crossing(Audience::User { name: "alice" })
    });
    router.deliver_remote(Crossing {
        destination: "/queue/x",
        ..crossing(Audience::User { name: "bob" })
    });
    user_route
        .queue
        .as_ref()
        .unwrap()
        .resume(&spec(1, "u", &user_out).subscriber);
    let delivered = frames(&user_out);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(delivered[0].contains("destination:/user/queue/x\n"));
    assert_eq!(
        told(&link),
        [],
        "nothing from another node is forwarded again"
    );
}

#[test]
fn a_message_larger_than_the_link_carries_is_refused_not_lost() {
    let link = Arc::new(Recorder {
        max: Some(1024),
        ..Recorder::default()
    });
    let router = router_with(Arc::clone(&link));
    let big = Bytes::from(vec![b'x'; 2048]);
    let headers = Headers::new();
    for destination in ["/topic/a", "/user/bob/queue/x"] {
        let refusal = router
            .publish(&router.parse_send(destination).unwrap(), &headers, &big)
            .unwrap_err();
        assert_eq!(refusal.message, "message too large");
    }
    // Queues stay on this node: no bound from the link.
    assert!(
        router
            .publish(&router.parse_send("/queue/a").unwrap(), &headers, &big)
            .is_ok()
    );
    assert_eq!(told(&link), []);
}

#[tokio::test]
async fn presence_adds_other_nodes_to_this_one() {
    let router = router_with(Arc::default());
    router.open_session("nodea-1", Some("alice"));
    router.open_session("nodea-2", Some("carol"));
    let (users, nodes) = router.presence(None).await;
    assert_eq!(nodes, 1);
    assert_eq!(
        users,
        Presence::from([("alice".to_owned(), 3), ("carol".to_owned(), 1)])
    );
}

/// An offline store that answers as told and records what routing asked of it.
#[derive(Debug, Default)]
struct FakeStore {
    answer: Mutex<Option<Decision>>,
    asked: Mutex<Vec<(String, Vec<u8>)>>,
    subscribed: Mutex<Vec<(usize, String, StoredTarget)>>,
    unsubscribed: Mutex<Vec<(usize, String)>>,
}

impl crate::routing::offline::OfflineStore for FakeStore {
    fn store_unless_online(&self, send: OfflineSend) -> BoxFuture<Result<Decision, String>> {
        self.asked.lock().push((send.user, send.body.to_vec()));
        let answer = self.answer.lock().ok_or_else(|| "down".to_owned());
        Box::pin(std::future::ready(answer))
    }

    fn subscribed(&self, block: usize, user: &str, target: StoredTarget) {
        self.subscribed
            .lock()
            .push((block, user.to_owned(), target));
    }

    fn unsubscribed(&self, block: usize, user: &str) {
        self.unsubscribed.lock().push((block, user.to_owned()));
    }
}

#[tokio::test]
async fn opted_in_user_sends_are_held_then_stored_or_routed_and_drained_into_subscriptions() {
    let mut config = Config::default();
    config.users.offline = vec![crate::config::OfflineConfig {
        destination: "/user/*/queue/notify".to_owned(),
        ..Default::default()
    }];
    let link = Arc::new(Recorder::default());
    let stats = Arc::new(Stats::default());
    let router = Router::new(
        &config,
        NODE,
        Arc::new(LocalUsers::default()),
        Arc::clone(&link) as Arc<dyn ClusterLink>,
        Arc::clone(&stats),
    );
    let store = Arc::new(FakeStore::default());
    router.offline.set_store(Arc::clone(&store) as _);
    let body = Bytes::from_static(b"hi");
    let send = |destination: &str| {
        router
            .publish(
                &router.parse_send(destination).unwrap(),
                &Headers::new(),
                &body,
            )
            .unwrap()
    };

    // Not opted in, or naming a session: routed at once, as before.
    assert!(send("/user/bob/queue/other").offline.is_none());
    assert!(
        send(&format!("/user/{OTHER_SESSION}/queue/notify"))
            .offline
            .is_none()
    );
    assert_eq!(told(&link).len(), 2);

    // Opted in, nobody here: held, nothing routed until settled.
    let held = send("/user/bob/queue/notify").offline.unwrap();
    assert_eq!((held.block, held.user.as_str()), (0, "bob"));
    assert_eq!(told(&link), []);
    *store.answer.lock() = Some(Decision::Stored {
        dropped_oldest: true,
    });
    let settled = router.settle_offline(held.clone()).await.unwrap();
    assert!(settled.queues.is_empty() && told(&link).is_empty());
    *store.answer.lock() = Some(Decision::Online);
    router.settle_offline(held.clone()).await.unwrap();
    assert!(
        matches!(&told(&link)[..], [Told::Forward(a, d, ..)] if a == "user bob" && d == "/queue/notify")
    );
    *store.answer.lock() = None;
    let refused = router.settle_offline(held).await.unwrap_err();
    assert_eq!(refused.message, "offline delivery failed");
    assert_eq!(store.asked.lock().len(), 3);

    // alice subscribes here: the store is told, and what it offers reaches her subscription.
    let creator = Creator::default();
    let out = outbox();
    let session = SessionRef {
        id: "nodea-00f1e2d3c4b5a697",
        user: Some("alice"),
        creator: &creator,
    };
    router.open_session(session.id, session.user);
    let route = router
        .subscribe(
            session,
            router
                .parse_subscribe("/user/queue/notify", session.id)
                .unwrap(),
            spec(1, "n", &out),
        )
        .unwrap();
    // As the session does once the SUBSCRIBE is answered.
    route
        .queue
        .as_ref()
        .unwrap()
        .resume(&spec(1, "n", &out).subscriber);
    let (block, user, target) = store.subscribed.lock().pop().unwrap();
    assert_eq!((block, user.as_str()), (0, "alice"));
    let kept: Headers = [("kind", "alert")].into_iter().collect();
    assert_eq!(target.offer(&kept, b"stored"), Taken::Yes);
    let past: Headers = [("expires", "1")].into_iter().collect();
    assert_eq!(target.offer(&past, b"too late"), Taken::Expired);
    let delivered = frames(&out);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    assert!(delivered[0].contains("destination:/user/queue/notify\n"));
    assert!(delivered[0].contains("kind:alert\n") && delivered[0].ends_with("stored\0"));

    // Now a SEND to alice reaches her session here: routed live, not held.
    let live = send("/user/alice/queue/notify");
    assert!(live.offline.is_none());
    assert_eq!(live.queues, [route.destination.as_str()]);

    router.unsubscribe(session.id, &route, &spec(1, "n", &out).subscriber);
    assert_eq!(*store.unsubscribed.lock(), [(0, "alice".to_owned())]);
    assert_eq!(target.offer(&kept, b"after"), Taken::No);
    assert_eq!(
        stats.offline(),
        [1, 1, 1, 1],
        "stored, delivered, expired, dropped"
    );
}
