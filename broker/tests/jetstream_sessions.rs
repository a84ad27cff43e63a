//! A session's side of durable queues (`queues.store = "jetstream"`), against a real
//! `nats-server -js` and a `herald` process: SENDs pipelined past the confirmation window keep
//! their RECEIPTs in order, a DISCONNECT's RECEIPT comes after every SEND before it is stored,
//! and a queue the store can never hold is refused at SUBSCRIBE.

mod common;

use common::herald_process::HeraldProcess;
use common::nats::{NatsOptions, NatsServer};
use common::{Transport, send_frame, subscribe_frame};
use herald_protocol::{Command, Frame};

/// More SENDs than a session may have unconfirmed (`max_unconfirmed_sends` is set to 16).
const SENDS: usize = 500;

async fn node(nats: &NatsServer) -> HeraldProcess {
    HeraldProcess::start_clustered_with(
        "a",
        &[nats.url()],
        "[queues]\nstore = \"jetstream\"\n[queues.jetstream]\nmax_unconfirmed_sends = 16\n",
    )
    .await
}

#[tokio::test]
async fn pipelined_sends_are_confirmed_in_order_and_disconnect_waits_for_them() {
    let nats = NatsServer::start_with(NatsOptions {
        jetstream: true,
        ..NatsOptions::default()
    })
    .await;
    let node = node(&nats).await;
    let (mut producer, _) = node.client(Transport::Tcp).await;
    // Written in one go, without waiting: the session stops reading at 16 unconfirmed.
    let mut bytes = Vec::new();
    for n in 0..SENDS {
        let frame =
            send_frame("/queue/pipelined", &n.to_string()).header("receipt", &format!("r{n}"));
        bytes.extend_from_slice(&common::encoded(&frame));
    }
    bytes.extend_from_slice(&common::encoded(
        &Frame::new(Command::Disconnect).header("receipt", "bye"),
    ));
    producer.send_bytes(&bytes).await;
    for n in 0..SENDS {
        producer.expect_receipt(&format!("r{n}")).await;
    }
    producer.expect_receipt("bye").await;

    let (mut consumer, _) = node.client(Transport::Tcp).await;
    consumer
        .send_with_receipt(subscribe_frame("s", "/queue/pipelined").header("ack", "auto"))
        .await;
    for n in 0..SENDS {
        let message = consumer.expect(Command::Message).await;
        assert_eq!(String::from_utf8_lossy(&message.body), n.to_string());
    }
}

#[tokio::test]
async fn a_queue_name_the_store_cannot_hold_is_refused_at_subscribe_and_send() {
    let nats = NatsServer::start_with(NatsOptions {
        jetstream: true,
        ..NatsOptions::default()
    })
    .await;
    let node = node(&nats).await;
    let long = format!("/queue/{}", "x".repeat(4000));
    let (mut client, _) = node.client(Transport::Tcp).await;
    client.send(&subscribe_frame("s", &long)).await;
    let error = client.expect_error_then_close("invalid destination").await;
    assert!(
        String::from_utf8_lossy(&error.body).contains("queue name too long"),
        "{}",
        common::show(&error)
    );
    let (mut client, _) = node.client(Transport::Tcp).await;
    client
        .send(&send_frame(&long, "m").header("receipt", "r"))
        .await;
    let error = client.expect_error_then_close("invalid destination").await;
    assert_eq!(error.headers.get("receipt-id"), Some("r"));
}
