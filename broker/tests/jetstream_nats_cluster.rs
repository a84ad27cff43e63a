//! Durable queues over a three-server NATS cluster with JetStream (`replicas = 3`): losing the
//! server that leads the queue stream loses no confirmed message. Real processes: three
//! `nats-server -js` routed to each other, one `herald`.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::nats::NatsCluster;
use common::{Client, Event, Transport, send_frame, subscribe_frame};
use herald_protocol::{Command, Frame};

use common::herald_process::HeraldProcess;

const QUEUE: &str = "/queue/replicated";
/// Messages sent before and after the stream's leader is killed.
const EACH_SIDE: usize = 300;
/// Bound on the whole failover (JetStream elects a new leader within seconds).
const FAILOVER: Duration = Duration::from_secs(60);

/// The name of the server leading the queue stream, from any running server's `/jsz`.
async fn stream_leader(cluster: &NatsCluster) -> Option<String> {
    for server in cluster.servers.iter().filter(|s| s.is_running()) {
        let jsz = server.monitor("/jsz?accounts=true&streams=true").await;
        let leader = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
            .find_map(|stream| stream["cluster"]["leader"].as_str().map(str::to_owned));
        if leader.is_some() {
            return leader;
        }
    }
    None
}

/// Sends message `n` until a RECEIPT confirms it, connecting again after an ERROR or a
/// closed connection (the store may be electing a leader). Returns whether it took more than
/// one try.
async fn send_confirmed(node: &HeraldProcess, producer: &mut Client, n: usize) -> bool {
    let deadline = Instant::now() + FAILOVER;
    let mut retried = false;
    loop {
        let receipt = producer.receipt_id();
        producer
            .send(&send_frame(QUEUE, &n.to_string()).header("receipt", &receipt))
            .await;
        match producer.next_event().await {
            Some(Event::Frame(frame, _)) if frame.command == Command::Receipt => {
                assert_eq!(frame.headers.get("receipt-id"), Some(receipt.as_str()));
                return retried;
            }
            Some(Event::Frame(frame, _)) => {
                assert_eq!(frame.command, Command::Error, "{}", common::show(&frame))
            }
            _ => {}
        }
        assert!(Instant::now() < deadline, "message {n} never confirmed");
        retried = true;
        *producer = node.client(Transport::Tcp).await.0;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_stream_leader_loses_no_confirmed_message() {
    // The node is started while JetStream may still elect its first leader: it waits.
    let mut cluster = NatsCluster::start_with(true).await;
    let node = HeraldProcess::start_clustered_with(
        "a",
        &cluster.urls(),
        "[queues]\nstore = \"jetstream\"\n[queues.jetstream]\nreplicas = 3\nrequest_timeout_ms = 2000\n",
    )
    .await;
    let mut producer = node.client(Transport::Tcp).await.0;
    for n in 0..EACH_SIDE {
        assert!(!send_confirmed(&node, &mut producer, n).await);
    }

    let leader = stream_leader(&cluster)
        .await
        .expect("the stream has a leader");
    let index = cluster
        .servers
        .iter()
        .position(|s| s.name.as_deref() == Some(leader.as_str()))
        .expect("the leader is one of ours");
    cluster.kill(index);
    let killed = Instant::now();
    let mut retried = 0;
    let mut unavailable = Duration::ZERO;
    for n in EACH_SIDE..2 * EACH_SIDE {
        if send_confirmed(&node, &mut producer, n).await {
            retried += 1;
            unavailable = killed.elapsed();
        }
    }
    eprintln!(
        "stream leader {leader} killed: {retried} SENDs retried, the store confirmed again after {unavailable:?}"
    );

    let (mut consumer, _) = node.client(Transport::Tcp).await;
    consumer
        .send_with_receipt(
            subscribe_frame("s", QUEUE)
                .header("ack", "client-individual")
                .header("prefetch-count", "50"),
        )
        .await;
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    while seen.len() < 2 * EACH_SIDE {
        // The queue's durable consumer is made now, replicated like the stream: with one of
        // the three servers gone its replica group first elects a leader, which can take
        // several request timeouts on a busy machine. What is asserted is that nothing is lost.
        let message = if seen.is_empty() {
            consumer.recv_within(FAILOVER).await
        } else {
            consumer.recv().await
        };
        assert_eq!(
            message.command,
            Command::Message,
            "{}",
            common::show(&message)
        );
        let n: usize = String::from_utf8_lossy(&message.body).parse().unwrap();
        if !seen.insert(n) {
            duplicates += 1;
        }
        let ack = message.headers.get("ack").unwrap().to_owned();
        consumer
            .send(&Frame::new(Command::Ack).header("id", &ack))
            .await;
    }
    // A retried SEND may have been stored before its confirmation was lost: at most one copy
    // more per retry, and none otherwise.
    assert!(
        duplicates <= retried,
        "{duplicates} duplicates, {retried} retries"
    );
}
