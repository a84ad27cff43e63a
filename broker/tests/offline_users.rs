//! Offline delivery (`[[users.offline]]`): a SEND to an opted-in user destination while no
//! session of the user subscribes to it on any node is kept in JetStream and delivered at the
//! user's next subscription, on any node. Two real `herald` processes on one real
//! `nats-server -js`, talked to over raw STOMP.

mod common;

use std::time::Duration;

use common::herald_process::HeraldProcess;
use common::nats::{NatsOptions, NatsServer};
use common::*;
use herald_protocol::{Command, Frame};

const NOTIFY: &str = "/user/alice/queue/notify";

/// One NATS server with JetStream and nodes `na` and `nb`, `/user/*/queue/notify` opted in
/// with `keep_ms` and `max_per_user`.
async fn two_nodes(keep_ms: u64, max_per_user: u64) -> (NatsServer, HeraldProcess, HeraldProcess) {
    two_nodes_with(keep_ms, max_per_user, "").await
}

/// [`two_nodes`] with more TOML (`[queues.jetstream]` keys) for both nodes.
async fn two_nodes_with(
    keep_ms: u64,
    max_per_user: u64,
    jetstream: &str,
) -> (NatsServer, HeraldProcess, HeraldProcess) {
    let nats = NatsServer::start_with(NatsOptions {
        jetstream: true,
        monitor: true,
        ..NatsOptions::default()
    })
    .await;
    let config = format!(
        "[queues]\nstore = \"jetstream\"\n[queues.jetstream]\n{jetstream}\n\
         [[users.offline]]\ndestination = \"/user/*/queue/notify\"\n\
         keep_ms = {keep_ms}\nmax_per_user = {max_per_user}\n"
    );
    let servers = [nats.url()];
    // One after the other: both create the same stream.
    let a = HeraldProcess::start_clustered_with("na", &servers, &config).await;
    let b = HeraldProcess::start_clustered_with("nb", &servers, &config).await;
    (nats, a, b)
}

/// The MESSAGE bodies of the next `n` frames, each under `/user/queue/notify`.
async fn bodies(client: &mut Client, n: usize) -> Vec<String> {
    let mut bodies = Vec::with_capacity(n);
    for _ in 0..n {
        let frame = client.expect(Command::Message).await;
        assert_eq!(
            frame.headers.get("destination"),
            Some("/user/queue/notify"),
            "{}",
            show(&frame)
        );
        bodies.push(body_text(&frame));
    }
    bodies
}

/// The offline stream of block 0 as the NATS server reports it: its configuration and state.
async fn offline_stream(nats: &NatsServer) -> serde_json::Value {
    let jsz = nats.monitor("/jsz?streams=true&config=true").await;
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .find(|stream| stream["name"] == "herald_offline_0")
        .cloned()
        .unwrap_or_else(|| panic!("no stream herald_offline_0 in {jsz}"))
}

fn numbered(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| format!("m{i}")).collect()
}

/// bob SENDs three messages on node a while alice is offline (each confirmed: stored); alice
/// logs in on node b and gets the three first, in order, with their headers, then live ones.
#[tokio::test]
async fn stored_while_offline_then_delivered_in_order_on_another_node_then_live() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    // alice is logged in on node b, but not subscribed: offline for this destination.
    let (mut alice, _) = b.login(Transport::Ws, "alice").await;
    for i in 1..=3 {
        bob.send_with_receipt(send_frame(NOTIFY, &format!("m{i}")).header("kind", "alert"))
            .await;
    }
    alice.subscribe("n", "/user/queue/notify").await;
    let first = alice.expect_message("n", "/user/queue/notify", "m1").await;
    assert_eq!(first.headers.get("kind"), Some("alert"), "{}", show(&first));
    assert_eq!(bodies(&mut alice, 2).await, numbered(2..=3));
    for i in 4..=5 {
        bob.publish_confirmed(NOTIFY, &format!("m{i}")).await;
    }
    assert_eq!(bodies(&mut alice, 2).await, numbered(4..=5));
    alice.expect_silence(QUIET).await;

    // Gone again: stored again, and delivered at the next subscription (here, node a).
    alice.unsubscribe("n").await;
    bob.publish_confirmed(NOTIFY, "m6").await;
    let (mut alice_a, _) = a.login(Transport::Tcp, "alice").await;
    alice_a.subscribe("n", "/user/queue/notify").await;
    assert_eq!(bodies(&mut alice_a, 1).await, numbered(6..=6));
    alice_a.expect_silence(QUIET).await;
    alice.expect_silence(QUIET).await;
}

/// Stored messages older than `keep_ms` are not delivered; newer ones are.
#[tokio::test]
async fn stored_messages_older_than_keep_ms_are_not_delivered() {
    let keep = Duration::from_millis(1500);
    let (_nats, a, b) = two_nodes(keep.as_millis() as u64, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    bob.publish_confirmed(NOTIFY, "old1").await;
    bob.publish_confirmed(NOTIFY, "old2").await;
    // Nothing to wait on: the messages must age past keep_ms.
    tokio::time::sleep(keep + Duration::from_millis(500)).await;
    bob.publish_confirmed(NOTIFY, "new").await;
    let (mut alice, _) = b.login(Transport::Tcp, "alice").await;
    alice.subscribe("n", "/user/queue/notify").await;
    alice.expect_message("n", "/user/queue/notify", "new").await;
    alice.expect_silence(QUIET).await;
}

/// At most `max_per_user` are kept per user: the oldest go. Other users keep their own.
#[tokio::test]
async fn at_most_max_per_user_kept_the_oldest_dropped() {
    let (nats, a, b) = two_nodes(60_000, 2).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    for i in 1..=5 {
        bob.publish_confirmed(NOTIFY, &format!("m{i}")).await;
    }
    bob.publish_confirmed("/user/carol/queue/notify", "for carol")
        .await;
    let stream = offline_stream(&nats).await;
    let config = &stream["config"];
    assert_eq!(
        (
            &config["subjects"][0],
            &config["retention"],
            &config["discard"],
            &config["max_msgs_per_subject"],
            &config["max_age"],
        ),
        (
            &serde_json::json!("herald.off.0.>"),
            &serde_json::json!("workqueue"),
            &serde_json::json!("old"),
            &serde_json::json!(2),
            &serde_json::json!(60_000_000_000u64),
        ),
        "{stream}"
    );
    assert_eq!(
        stream["state"]["messages"], 3,
        "alice's last two, carol's one"
    );
    let (mut alice, _) = b.login(Transport::Tcp, "alice").await;
    alice.subscribe("n", "/user/queue/notify").await;
    assert_eq!(bodies(&mut alice, 2).await, numbered(4..=5));
    alice.expect_silence(QUIET).await;
    let (mut carol, _) = a.login(Transport::Tcp, "carol").await;
    carol.subscribe("n", "/user/queue/notify").await;
    carol
        .expect_message("n", "/user/queue/notify", "for carol")
        .await;
    // Each acknowledged once its queue took it: deleted from the work-queue stream.
    within(TIMEOUT, "the delivered messages to be deleted", async {
        while offline_stream(&nats).await["state"]["messages"] != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// A user destination without the opt-in keeps today's behaviour: a SEND nobody subscribes
/// to is dropped, not kept for later.
#[tokio::test]
async fn without_the_opt_in_a_send_to_an_offline_user_is_dropped() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    bob.publish_confirmed("/user/alice/queue/other", "lost")
        .await;
    bob.publish_confirmed(NOTIFY, "kept").await;
    let (mut alice, _) = b.login(Transport::Tcp, "alice").await;
    alice.subscribe("o", "/user/queue/other").await;
    alice.subscribe("n", "/user/queue/notify").await;
    alice
        .expect_message("n", "/user/queue/notify", "kept")
        .await;
    alice.expect_silence(QUIET).await;
}

/// alice online in two tabs, one per node: live delivery reaches both, as without the opt-in
/// (nothing is stored: a later subscription gets nothing).
#[tokio::test]
async fn two_tabs_online_get_live_messages_both() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut tab_a, _) = a.login(Transport::Tcp, "alice").await;
    tab_a.subscribe("n", "/user/queue/notify").await;
    let (mut tab_b, _) = b.login(Transport::Ws, "alice").await;
    tab_b.subscribe("n", "/user/queue/notify").await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    // Node b's interest in alice crosses NATS asynchronously: wait until a SEND reaches it.
    let mut probe = 0;
    loop {
        probe += 1;
        bob.publish_confirmed(NOTIFY, &format!("probe{probe}"))
            .await;
        assert_eq!(bodies(&mut tab_a, 1).await, [format!("probe{probe}")]);
        let reached = tokio::time::timeout(QUIET, tab_b.expect(Command::Message)).await;
        if let Ok(frame) = reached {
            assert!(body_text(&frame).starts_with("probe"), "{}", show(&frame));
            break;
        }
    }
    // Probes that reached node b late.
    bob.publish_confirmed(NOTIFY, "marker").await;
    assert_eq!(bodies(&mut tab_a, 1).await, ["marker"]);
    loop {
        let body = bodies(&mut tab_b, 1).await.remove(0);
        if body == "marker" {
            break;
        }
        assert!(body.starts_with("probe"), "{body}");
    }
    for i in 1..=3 {
        bob.publish_confirmed(NOTIFY, &format!("m{i}")).await;
    }
    assert_eq!(bodies(&mut tab_a, 3).await, numbered(1..=3));
    assert_eq!(bodies(&mut tab_b, 3).await, numbered(1..=3));
    let (mut tab_c, _) = b.login(Transport::Tcp, "alice").await;
    tab_c.subscribe("n", "/user/queue/notify").await;
    tab_c.expect_silence(QUIET).await;
    tab_a.expect_silence(QUIET).await;
}

/// Two sessions of alice subscribing at once, one per node: each stored message reaches
/// exactly one of them.
#[tokio::test]
async fn a_stored_message_is_delivered_once_per_user_to_two_sessions_subscribing_at_once() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    for i in 1..=6 {
        bob.publish_confirmed(NOTIFY, &format!("m{i}")).await;
    }
    let (mut tab_a, _) = a.login(Transport::Tcp, "alice").await;
    let (mut tab_b, _) = b.login(Transport::Tcp, "alice").await;
    let subscribe = |id: &str| Frame::new(Command::Subscribe).header("id", id);
    let (frame_a, frame_b) = (
        subscribe("n").header("destination", "/user/queue/notify"),
        subscribe("n").header("destination", "/user/queue/notify"),
    );
    tokio::join!(tab_a.send(&frame_a), tab_b.send(&frame_b));
    let mut got: Vec<String> = Vec::new();
    let mut per_tab = [Vec::new(), Vec::new()];
    while got.len() < 6 {
        tokio::select! {
            frame = tab_a.expect(Command::Message) => per_tab[0].push(body_text(&frame)),
            frame = tab_b.expect(Command::Message) => per_tab[1].push(body_text(&frame)),
        }
        got = per_tab.concat();
    }
    got.sort();
    assert_eq!(got, numbered(1..=6), "each once: {per_tab:?}");
    for tab in &per_tab {
        // Each tab's share comes in order.
        let mut sorted = tab.clone();
        sorted.sort();
        assert_eq!(tab, &sorted);
    }
    tab_a.expect_silence(QUIET).await;
    tab_b.expect_silence(QUIET).await;
}

/// A SEND that can be neither routed nor stored (NATS gone) is refused with an ERROR naming
/// its receipt, not confirmed.
#[tokio::test]
async fn a_send_that_cannot_be_stored_is_refused_with_its_receipt() {
    let (mut nats, a, _b) = two_nodes_with(60_000, 100, "request_timeout_ms = 300").await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    bob.publish_confirmed(NOTIFY, "stored").await;
    nats.kill();
    bob.send(&send_frame(NOTIFY, "lost").header("receipt", "r-lost"))
        .await;
    let error = bob.expect_error("offline delivery failed").await;
    assert_eq!(
        error.headers.get("receipt-id"),
        Some("r-lost"),
        "{}",
        show(&error)
    );
    assert!(body_text(&error).contains("alice"), "{}", show(&error));
}

/// A SEND in a transaction is settled at its COMMIT, whose RECEIPT waits until it is stored:
/// a subscription made right after the RECEIPT gets it.
#[tokio::test]
async fn a_committed_send_to_an_offline_user_is_stored() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    bob.send(&Frame::new(Command::Begin).header("transaction", "t"))
        .await;
    bob.send(&send_frame(NOTIFY, "in a transaction").header("transaction", "t"))
        .await;
    bob.send_with_receipt(Frame::new(Command::Commit).header("transaction", "t"))
        .await;
    let (mut alice, _) = b.login(Transport::Tcp, "alice").await;
    alice.subscribe("n", "/user/queue/notify").await;
    alice
        .expect_message("n", "/user/queue/notify", "in a transaction")
        .await;
    alice.expect_silence(QUIET).await;
}

/// A committed SEND for an offline user that cannot be stored (NATS gone) fails the COMMIT:
/// an ERROR naming the COMMIT's receipt and the frame, never a RECEIPT.
#[tokio::test]
async fn a_committed_send_that_cannot_be_stored_fails_the_commit() {
    let (mut nats, a, _b) = two_nodes_with(60_000, 100, "request_timeout_ms = 300").await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    bob.publish_confirmed(NOTIFY, "stored").await;
    nats.kill();
    bob.send(&Frame::new(Command::Begin).header("transaction", "t"))
        .await;
    bob.send(&send_frame(NOTIFY, "lost").header("transaction", "t"))
        .await;
    bob.send(
        &Frame::new(Command::Commit)
            .header("transaction", "t")
            .header("receipt", "r-commit"),
    )
    .await;
    let error = bob.expect_error("offline delivery failed").await;
    assert_eq!(
        error.headers.get("receipt-id"),
        Some("r-commit"),
        "{}",
        show(&error)
    );
    assert!(
        body_text(&error).contains("frame 1 of 1"),
        "{}",
        show(&error)
    );
}

/// RECEIPTs keep their order when a SEND for an offline user follows SENDs still on their way
/// into the queue store.
#[tokio::test]
async fn receipts_stay_in_order_after_durable_queue_sends() {
    let (_nats, a, b) = two_nodes(60_000, 100).await;
    let (mut bob, _) = a.login(Transport::Tcp, "bob").await;
    for (destination, receipt) in [
        ("/queue/jobs", "r1"),
        ("/queue/jobs", "r2"),
        (NOTIFY, "r3"),
        ("/queue/jobs", "r4"),
    ] {
        bob.send(&send_frame(destination, receipt).header("receipt", receipt))
            .await;
    }
    for receipt in ["r1", "r2", "r3", "r4"] {
        bob.expect_receipt(receipt).await;
    }
    let (mut alice, _) = b.login(Transport::Tcp, "alice").await;
    alice.subscribe("n", "/user/queue/notify").await;
    alice.expect_message("n", "/user/queue/notify", "r3").await;
}
