//! The JetStream queue store (`herald::jetstream`) against real `nats-server -js` processes
//! on free loopback ports, data in a temporary directory: the stream created, checked and
//! refused; publish with acknowledgement; pulls shared by two connections; redelivery after
//! the ack wait; a NATS restart on file storage; dead letters; expiry; and hostile input
//! (odd queue names, huge headers, a message at `max_payload`, parallel publishes).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use bytes::Bytes;
use common::nats::{NatsOptions, NatsServer};
use common::within;
use futures_util::StreamExt;
use futures_util::future::join_all;
use herald::cluster::connect::connect;
use herald::config::{ClusterConfig, JetStreamStorage, QueuesJetStreamConfig};
use herald::jetstream::{
    Delivery, Nacked, OpenError, Puller, QueueStore, StoreError, dead_letter_headers,
};
use herald::metrics::Stats;
use herald_protocol::Headers;

/// Long enough for anything a busy machine does; tests wait on events, not on this.
const LONG: Duration = Duration::from_secs(30);
/// How long one pull waits for messages.
const PULL_WAIT: Duration = Duration::from_millis(500);

async fn js_server() -> NatsServer {
    NatsServer::start_with(NatsOptions {
        jetstream: true,
        ..Default::default()
    })
    .await
}

async fn client(server: &NatsServer) -> async_nats::Client {
    let config = ClusterConfig {
        servers: vec![server.url()],
        ..Default::default()
    };
    connect(&config, "n1", Arc::new(Stats::default()))
        .await
        .unwrap()
}

async fn open(server: &NatsServer, config: &QueuesJetStreamConfig) -> QueueStore {
    QueueStore::open(client(server).await, "herald", config)
        .await
        .unwrap()
}

/// What NATS says of the stream, read over a connection of its own.
async fn stream_info(server: &NatsServer) -> stream::Info {
    let js = async_nats::jetstream::new(client(server).await);
    js.get_stream("herald_queues")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .clone()
}

/// Waits until the stream holds `n` messages (acks are sent without waiting for an answer).
async fn await_stored(server: &NatsServer, n: u64) {
    let js = async_nats::jetstream::new(client(server).await);
    let mut stream = js.get_stream("herald_queues").await.unwrap();
    within(LONG, &format!("{n} messages in the stream"), async {
        while stream.info().await.unwrap().state.messages != n {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

fn text(delivery: &Delivery) -> String {
    String::from_utf8(delivery.body.to_vec()).unwrap()
}

/// Pulls until `n` deliveries came (several pulls if need be).
async fn take(puller: &Puller, n: usize) -> Vec<Delivery> {
    within(
        LONG,
        &format!("{n} deliveries of {}", puller.queue()),
        async {
            let mut got = Vec::new();
            while got.len() < n {
                let mut pull = puller.pull(n - got.len(), PULL_WAIT).await.unwrap();
                while let Some(delivery) = pull.next().await {
                    got.push(delivery.unwrap());
                }
            }
            got
        },
    )
    .await
}

/// Deliveries of one pull that waits `PULL_WAIT`: none expected.
async fn nothing(puller: &Puller) {
    let mut pull = puller.pull(10, PULL_WAIT).await.unwrap();
    if let Some(delivery) = pull.next().await {
        panic!("unexpected delivery {:?}", delivery.map(|d| d.headers));
    }
}

#[tokio::test]
async fn the_stream_is_created_then_checked_and_its_limits_follow_the_configuration() {
    let server = js_server().await;
    let mut config = QueuesJetStreamConfig::default();
    let store = open(&server, &config).await;
    assert_eq!(store.stream_name(), "herald_queues");
    let info = stream_info(&server).await;
    assert_eq!(info.config.retention, RetentionPolicy::WorkQueue);
    assert_eq!(info.config.storage, StorageType::File);
    assert_eq!(info.config.subjects, ["herald.q.>"]);
    assert_eq!(info.config.discard, stream::DiscardPolicy::New);
    assert_eq!((info.config.max_bytes, info.config.max_messages), (-1, -1));
    // A second node opening the same stream changes nothing; new limits are applied.
    open(&server, &config).await;
    config.max_age_ms = 60_000;
    config.max_bytes = 1 << 20;
    open(&server, &config).await;
    let info = stream_info(&server).await;
    assert_eq!(info.config.max_age, Duration::from_secs(60));
    assert_eq!(info.config.max_bytes, 1 << 20);
    config.stream = "other".to_owned();
    let err = QueueStore::open(client(&server).await, "herald", &config)
        .await
        .unwrap_err();
    // Two streams may not hold the same subjects.
    assert!(matches!(err, OpenError::JetStream { .. }), "{err}");
    assert!(err.to_string().contains("stream other"), "{err}");
}

#[tokio::test]
async fn an_incompatible_stream_is_refused_naming_what_differs() {
    let server = js_server().await;
    let js = async_nats::jetstream::new(client(&server).await);
    js.create_stream(stream::Config {
        name: "herald_queues".to_owned(),
        subjects: vec!["herald.q.>".to_owned()],
        retention: RetentionPolicy::Limits,
        ..Default::default()
    })
    .await
    .unwrap();
    let config = QueuesJetStreamConfig::default();
    let err = QueueStore::open(client(&server).await, "herald", &config)
        .await
        .unwrap_err();
    let OpenError::Incompatible { field, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*field, "retention");
    assert!(
        err.to_string().contains("nats stream rm herald_queues"),
        "{err}"
    );
    js.delete_stream("herald_queues").await.unwrap();
    open(&server, &config).await;
    let memory = QueuesJetStreamConfig {
        storage: JetStreamStorage::Memory,
        ..config
    };
    let err = QueueStore::open(client(&server).await, "herald", &memory)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::Incompatible {
                field: "storage",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_without_jetstream_is_named_as_the_cause() {
    let server = NatsServer::start().await;
    let err = QueueStore::open(
        client(&server).await,
        "herald",
        &QueuesJetStreamConfig::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OpenError::NoJetStream), "{err}");
    assert!(err.to_string().contains("-js"), "{err}");
}

#[tokio::test]
async fn a_publish_is_stored_when_it_returns_and_a_pull_gives_it_back_as_sent() {
    let server = js_server().await;
    let store = open(&server, &QueuesJetStreamConfig::default()).await;
    let sent = headers(&[
        ("content-type", "text/plain"),
        ("x", "1"),
        ("x", " 2 "),
        ("odd:name", "line\nbreak\r%41"),
        ("empty", ""),
    ]);
    let first = store
        .publish("/queue/jobs", &sent, Bytes::from_static(b"one"))
        .await
        .unwrap();
    let second = store
        .publish(
            "/queue/jobs",
            &Headers::new(),
            Bytes::from_static(b"\0two\xff"),
        )
        .await
        .unwrap();
    assert!(second > first);
    // Stored when publish returned: another connection sees both.
    assert_eq!(stream_info(&server).await.state.messages, 2);
    let puller = store.puller("/queue/jobs").await.unwrap();
    let got = take(&puller, 2).await;
    assert_eq!((got[0].id, got[1].id), (first, second));
    assert_eq!(got[0].headers, sent);
    assert_eq!(got[0].body, "one");
    assert_eq!(got[1].body, Bytes::from_static(b"\0two\xff"));
    assert!(got.iter().all(|d| d.delivered == 1 && !d.redelivered()));
    for delivery in got {
        delivery.handle.ack().await.unwrap();
    }
    await_stored(&server, 0).await;
    nothing(&puller).await;
    let counts = store.counts();
    assert_eq!(
        (counts.published, counts.delivered, counts.acked),
        (2, 2, 2)
    );
}

#[tokio::test]
async fn two_pullers_on_two_connections_share_one_consumer_each_message_to_one() {
    const N: usize = 10_000;
    let server = js_server().await;
    let config = QueuesJetStreamConfig::default();
    let (a, b) = (open(&server, &config).await, open(&server, &config).await);
    let pullers = [
        a.puller("/queue/work").await.unwrap(),
        b.puller("/queue/work").await.unwrap(),
    ];
    // Both pull while the producer publishes, 200 publishes in flight at a time, until
    // every message was taken by one of them.
    let taken = Arc::new(AtomicUsize::new(0));
    let consumers = pullers.map(|puller| {
        let taken = taken.clone();
        tokio::spawn(async move {
            let mut bodies = Vec::new();
            while taken.load(Ordering::SeqCst) < N {
                let mut pull = puller.pull(100, PULL_WAIT).await.unwrap();
                while let Some(delivery) = pull.next().await {
                    let delivery = delivery.unwrap();
                    assert!(!delivery.redelivered());
                    bodies.push(text(&delivery));
                    delivery.handle.ack().await.unwrap();
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            }
            bodies
        })
    });
    let producer = open(&server, &config).await;
    let mut ids = HashSet::new();
    let none = Headers::new();
    for chunk in (0..N).collect::<Vec<_>>().chunks(200) {
        let publishes = chunk
            .iter()
            .map(|i| producer.publish("/queue/work", &none, Bytes::from(i.to_string())));
        for id in join_all(publishes).await {
            assert!(ids.insert(id.unwrap()), "two publishes with one id");
        }
    }
    let [got_a, got_b] = consumers;
    let (got_a, got_b) = within(LONG, "every message taken", async {
        (got_a.await.unwrap(), got_b.await.unwrap())
    })
    .await;
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both pullers got messages"
    );
    let mut seen = BTreeMap::new();
    for body in got_a.iter().chain(&got_b) {
        *seen.entry(body.parse::<usize>().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), N, "every message delivered");
    assert!(
        seen.values().all(|&n| n == 1),
        "each message delivered once"
    );
    await_stored(&server, 0).await;
}

#[tokio::test]
async fn unacked_messages_of_a_vanished_puller_go_to_another_after_the_ack_wait() {
    let server = js_server().await;
    let config = QueuesJetStreamConfig {
        ack_wait_ms: 300,
        ..Default::default()
    };
    let survivor = open(&server, &config).await;
    for i in 0..5 {
        survivor
            .publish("/queue/q", &Headers::new(), Bytes::from(format!("m{i}")))
            .await
            .unwrap();
    }
    {
        let doomed = open(&server, &config).await;
        let held = take(&doomed.puller("/queue/q").await.unwrap(), 5).await;
        assert!(held.iter().all(|d| !d.redelivered()));
        // The node dies: its connection and its unsettled deliveries are gone.
    }
    let again = take(&survivor.puller("/queue/q").await.unwrap(), 5).await;
    let bodies: Vec<String> = again.iter().map(text).collect();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(again.iter().all(|d| d.redelivered() && d.delivered == 2));
    assert_eq!(survivor.counts().redelivered, 5);
}

/// A pull JetStream never ends (nats-server 2.9 drops a request found expired while handing
/// out a message without the status that ends it; a deleted consumer answers nothing at all,
/// which shows the same) is over a second after its expiry, not after the client library's own
/// fallback of 5 s: it ends before a bare async-nats pull on the same consumer asked at the
/// same moment.
#[tokio::test]
async fn a_pull_jetstream_never_ends_is_over_soon_after_its_expiry() {
    let server = js_server().await;
    let store = open(&server, &QueuesJetStreamConfig::default()).await;
    let puller = store.puller("/queue/silent").await.unwrap();
    let js = async_nats::jetstream::new(client(&server).await);
    let stream = js.get_stream("herald_queues").await.unwrap();
    let name = stream
        .consumer_names()
        .next()
        .await
        .expect("the queue's consumer")
        .unwrap();
    let bare: async_nats::jetstream::consumer::PullConsumer =
        stream.get_consumer(&name).await.unwrap();
    stream.delete_consumer(&name).await.unwrap();

    // Theirs asked first and looked at first: a tie goes against ours.
    let mut theirs = bare
        .batch()
        .max_messages(10)
        .expires(PULL_WAIT)
        .messages()
        .await
        .unwrap();
    let mut ours = puller.pull(10, PULL_WAIT).await.unwrap();
    let first = within(LONG, "either pull to end", async {
        tokio::select! {
            biased;
            next = theirs.next() => {
                assert!(next.is_none(), "async-nats ends it: {next:?}");
                "async-nats"
            }
            next = ours.next() => {
                assert!(next.is_none(), "nothing was there to deliver");
                "ours"
            }
        }
    })
    .await;
    assert_eq!(first, "ours");
}

#[tokio::test]
async fn file_storage_keeps_every_message_over_a_nats_server_restart() {
    let mut server = js_server().await;
    let store = open(&server, &QueuesJetStreamConfig::default()).await;
    for i in 0..100 {
        store
            .publish(
                "/queue/keep",
                &headers(&[("n", &i.to_string())]),
                Bytes::from(format!("m{i}")),
            )
            .await
            .unwrap();
    }
    let puller = store.puller("/queue/keep").await.unwrap();
    for delivery in take(&puller, 10).await {
        delivery.handle.ack().await.unwrap();
    }
    await_stored(&server, 90).await;
    server.kill();
    server.restart().await;
    // The same store reconnects by itself; pulls fail until it has.
    let rest = within(LONG, "the 90 waiting messages after the restart", async {
        let mut got: Vec<Delivery> = Vec::new();
        while !got.iter().any(|d| text(d) == "m99") {
            match puller.pull(100, PULL_WAIT).await {
                Ok(mut pull) => {
                    while let Some(Ok(delivery)) = pull.next().await {
                        got.push(delivery);
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        got
    })
    .await;
    let bodies: Vec<String> = rest.iter().map(text).collect();
    // Every waiting message, in order. Before them, some of the ten acknowledged just before
    // the kill may come again: nats-server applies an ack's deletion to its file store
    // without syncing, so a SIGKILL can undo it (at least once, never lost).
    let first_waiting = bodies.iter().position(|b| b == "m10").expect("m10 kept");
    let expected: Vec<String> = (10..100).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies[first_waiting..], expected[..]);
    let acked: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    for (i, again) in bodies[..first_waiting].iter().enumerate() {
        assert!(acked.contains(again), "{bodies:?}");
        assert!(!bodies[..i].contains(again), "{bodies:?}");
    }
    assert_eq!(rest[first_waiting].headers.get("n"), Some("10"));
}

#[tokio::test]
async fn a_nack_loop_dead_letters_after_max_deliver_saying_why_and_how_often() {
    let server = js_server().await;
    let config = QueuesJetStreamConfig {
        max_deliver: 3,
        ..Default::default()
    };
    let store = open(&server, &config).await;
    store
        .publish(
            "/queue/jobs",
            &headers(&[("k", "v")]),
            Bytes::from_static(b"poison"),
        )
        .await
        .unwrap();
    let puller = store.puller("/queue/jobs").await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let delivery = take(&puller, 1).await.remove(0);
        outcomes.push((delivery.delivered, delivery.handle.nak().await.unwrap()));
    }
    assert_eq!(
        outcomes,
        [
            (1, Nacked::Redelivered),
            (2, Nacked::Redelivered),
            (3, Nacked::DeadLettered("/queue/jobs.dlq".to_owned()))
        ]
    );
    nothing(&puller).await;
    let dead = take(&store.puller("/queue/jobs.dlq").await.unwrap(), 1)
        .await
        .remove(0);
    assert_eq!(dead.body, "poison");
    assert_eq!(dead.headers.get("k"), Some("v"));
    assert_eq!(
        dead.headers.get(dead_letter_headers::REASON),
        Some("nacked")
    );
    assert_eq!(dead.headers.get(dead_letter_headers::DELIVERIES), Some("3"));
    assert_eq!(
        dead.headers.get(dead_letter_headers::QUEUE),
        Some("/queue/jobs")
    );
    dead.handle.ack().await.unwrap();
    let counts = store.counts();
    assert_eq!((counts.nacked, counts.dead_lettered), (3, 1));
    await_stored(&server, 0).await;
}

#[tokio::test]
async fn a_last_delivery_left_unacked_is_dead_lettered_and_drop_drops() {
    let server = js_server().await;
    let config = QueuesJetStreamConfig {
        max_deliver: 1,
        ack_wait_ms: 200,
        dead_letter: "/queue/dead".to_owned(),
        ..Default::default()
    };
    let store = open(&server, &config).await;
    store
        .publish("/queue/a", &Headers::new(), Bytes::from_static(b"late"))
        .await
        .unwrap();
    let puller = store.puller("/queue/a").await.unwrap();
    drop(take(&puller, 1).await);
    let dead_puller = store.puller("/queue/dead").await.unwrap();
    // The next pull after the ack wait meets it and moves it; nothing reaches the caller.
    let dead = within(LONG, "the dead letter", async {
        loop {
            nothing(&puller).await;
            let mut pull = dead_puller.pull(1, PULL_WAIT).await.unwrap();
            if let Some(delivery) = pull.next().await {
                return delivery.unwrap();
            }
        }
    })
    .await;
    assert_eq!(
        dead.headers.get(dead_letter_headers::REASON),
        Some("ack-wait")
    );
    assert_eq!(dead.headers.get(dead_letter_headers::DELIVERIES), Some("2"));
    // The dead-letter queue's own last delivery is dropped: it would loop.
    assert_eq!(dead.handle.nak().await.unwrap(), Nacked::Dropped);
    await_stored(&server, 0).await;

    let drop_config = QueuesJetStreamConfig {
        dead_letter: "drop".to_owned(),
        ..config
    };
    let store = open(&server, &drop_config).await;
    store
        .publish("/queue/b", &Headers::new(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let delivery = take(&store.puller("/queue/b").await.unwrap(), 1)
        .await
        .remove(0);
    assert_eq!(delivery.handle.nak().await.unwrap(), Nacked::Dropped);
    assert_eq!(store.counts().dead_dropped, 1);
    await_stored(&server, 0).await;

    // A queue whose name just fits has a dead-letter queue that never could: dropped, not
    // retried for ever.
    let config = QueuesJetStreamConfig {
        max_deliver: 1,
        ..Default::default()
    };
    let store = open(&server, &config).await;
    let longest = "x".repeat(3000 - "herald.q.".len());
    store
        .publish(&longest, &Headers::new(), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let delivery = take(&store.puller(&longest).await.unwrap(), 1)
        .await
        .remove(0);
    assert_eq!(delivery.handle.nak().await.unwrap(), Nacked::Dropped);
    await_stored(&server, 0).await;
}

#[tokio::test]
async fn expired_messages_are_skipped_and_deleted_and_term_deletes() {
    let server = js_server().await;
    let store = open(&server, &QueuesJetStreamConfig::default()).await;
    let in_an_hour = (herald::routing::publish::now_ms() + 3_600_000).to_string();
    for (body, expires) in [
        ("past", "1"),
        ("future", in_an_hour.as_str()),
        ("never", "0"),
    ] {
        store
            .publish(
                "/queue/e",
                &headers(&[("expires", expires)]),
                Bytes::from(body),
            )
            .await
            .unwrap();
    }
    let puller = store.puller("/queue/e").await.unwrap();
    let got = take(&puller, 2).await;
    let bodies: Vec<String> = got.iter().map(text).collect();
    assert_eq!(bodies, ["future", "never"]);
    assert_eq!(store.counts().expired, 1);
    for delivery in got {
        delivery.handle.term().await.unwrap();
    }
    await_stored(&server, 0).await;
    nothing(&puller).await;
}

#[tokio::test]
async fn odd_queue_names_stay_apart_and_too_long_ones_are_refused() {
    let server = js_server().await;
    let store = open(&server, &QueuesJetStreamConfig::default()).await;
    let long = format!("/queue/{}", "é.*> ".repeat(100));
    let names = [
        "/queue/a.b",
        "/queue/a%2Eb",
        "/queue/a_b",
        "/queue/*",
        "/queue/>",
        "/queue/ sp ace ",
        "/queue/tab\tnew\nline\r",
        "/queue/é",
        "/queue/",
        "",
        "/queue/a/b\\c",
        "/queue/$JS.API.x",
        "/queue/%",
        &long,
    ];
    for name in names {
        store
            .publish(name, &Headers::new(), Bytes::from(name.to_owned()))
            .await
            .unwrap();
    }
    for name in names {
        let got = take(&store.puller(name).await.unwrap(), 1).await;
        assert_eq!(text(&got[0]), name);
        got.into_iter().next().unwrap().handle.ack().await.unwrap();
    }
    await_stored(&server, 0).await;
    let too_long = "x".repeat(3000);
    assert!(matches!(
        store
            .publish(&too_long, &Headers::new(), Bytes::new())
            .await,
        Err(StoreError::QueueNameTooLong { .. })
    ));
    assert!(matches!(
        store.puller(&too_long).await,
        Err(StoreError::QueueNameTooLong { .. })
    ));
}

#[tokio::test]
async fn huge_headers_and_a_message_at_max_payload_round_trip_and_one_byte_more_is_refused() {
    let server = js_server().await;
    let client = client(&server).await;
    let store = QueueStore::open(client.clone(), "herald", &QueuesJetStreamConfig::default())
        .await
        .unwrap();
    // Near JetStream's 64 KiB of headers: 1000 small ones needing escapes, one of 30 KB.
    let mut many: Vec<(String, String)> = (0..1000)
        .map(|i| (format!("h:{i}"), format!(" {i}\n")))
        .collect();
    many.push(("big".to_owned(), "v".repeat(30_000)));
    let sent: Headers = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    store
        .publish("/queue/h", &sent, Bytes::new())
        .await
        .unwrap();
    let puller = store.puller("/queue/h").await.unwrap();
    let got = take(&puller, 1).await.remove(0);
    assert_eq!(got.headers, sent);
    got.handle.ack().await.unwrap();
    let huge = headers(&[("big", &"v".repeat(70_000))]);
    let err = store
        .publish("/queue/h", &huge, Bytes::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::HeadersTooLarge { .. }), "{err}");
    // At the bound it is stored: the check is exact, not just cautious.
    let fits = headers(&[("big", &"v".repeat(65_535 - 12 - 13 - 4 - 4))]);
    store
        .publish("/queue/h", &fits, Bytes::new())
        .await
        .unwrap();
    take(&puller, 1).await.remove(0).handle.ack().await.unwrap();

    let max = client.server_info().max_payload;
    store
        .publish("/queue/h", &Headers::new(), Bytes::from(vec![7u8; max]))
        .await
        .unwrap();
    assert!(matches!(
        store
            .publish("/queue/h", &Headers::new(), Bytes::from(vec![7u8; max + 1]))
            .await,
        Err(StoreError::TooLarge)
    ));
    let got = take(&puller, 1).await.remove(0);
    assert_eq!(got.body.len(), max);
}

#[tokio::test]
async fn a_full_stream_refuses_a_send_and_keeps_what_it_holds() {
    let server = js_server().await;
    let config = QueuesJetStreamConfig {
        max_messages: 2,
        ..Default::default()
    };
    let store = open(&server, &config).await;
    for body in ["a", "b"] {
        store
            .publish("/queue/f", &Headers::new(), Bytes::from(body))
            .await
            .unwrap();
    }
    let err = store
        .publish("/queue/f", &Headers::new(), Bytes::from("c"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Full(_)), "{err}");
    let got = take(&store.puller("/queue/f").await.unwrap(), 2).await;
    assert_eq!(got.iter().map(text).collect::<Vec<_>>(), ["a", "b"]);
}
