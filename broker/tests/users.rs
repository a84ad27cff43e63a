//! User destinations (semantics.md section 4): `/user/queue/x` subscriptions resolved per
//! session, SENDs to `/user/<name>/queue/x` reaching every session of a user, session ids as
//! names, and the resolved destinations of other sessions refused.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use herald_protocol::{Command, Frame};

transport_tests!(
    an_anonymous_session_is_reached_by_its_session_id,
    a_topic_kind_user_destination_works_like_a_queue_one,
    a_send_to_an_unknown_user_is_dropped_counted_and_receipted,
    the_resolved_destination_reaches_the_session,
    another_sessions_resolved_destination_is_denied,
    a_resolved_looking_name_that_is_no_session_id_is_an_ordinary_queue,
    a_user_send_needs_a_name_and_a_known_kind,
    unsubscribing_stops_user_delivery,
);

/// An anonymous connected client and its session id.
async fn anonymous(server: &TestServer, transport: Transport) -> (Client, String) {
    let mut client = server.open(transport).await;
    let session = session_of(&client.connect().await);
    (client, session)
}

async fn an_anonymous_session_is_reached_by_its_session_id(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (mut a, session) = anonymous(&server, transport).await;
    a.subscribe("u1", "/user/queue/inbox").await;
    let mut other = server.client(transport).await;
    other.subscribe("u1", "/user/queue/inbox").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed(&format!("/user/{session}/queue/inbox"), "for you")
        .await;
    a.expect_message("u1", "/user/queue/inbox", "for you").await;
    other.expect_silence(QUIET).await;
}

async fn a_topic_kind_user_destination_works_like_a_queue_one(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (mut a, session) = anonymous(&server, transport).await;
    a.subscribe("u1", "/user/topic/feed").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed(&format!("/user/{session}/topic/feed"), "topical")
        .await;
    a.expect_message("u1", "/user/topic/feed", "topical").await;
}

async fn a_send_to_an_unknown_user_is_dropped_counted_and_receipted(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed("/user/nobody/queue/x", "into the void")
        .await;
    // A session that exists but does not subscribe to the destination: dropped too.
    let (mut idle, session) = anonymous(&server, transport).await;
    sender
        .publish_confirmed(&format!("/user/{session}/queue/x"), "unheard")
        .await;
    assert_eq!(
        server
            .node
            .stats
            .user_messages_unrouted
            .load(Ordering::Relaxed),
        2
    );
    idle.expect_silence(QUIET).await;
}

async fn the_resolved_destination_reaches_the_session(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (mut a, session) = anonymous(&server, transport).await;
    a.subscribe("u1", "/user/queue/resolved").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed(&format!("/queue/resolved-user{session}"), "resolved")
        .await;
    a.expect_message("u1", "/user/queue/resolved", "resolved")
        .await;
    // The session may subscribe to its own resolved name directly.
    a.subscribe("own", &format!("/queue/mine-user{session}"))
        .await;
    sender
        .publish_confirmed(&format!("/queue/mine-user{session}"), "own")
        .await;
    a.expect_message("own", &format!("/queue/mine-user{session}"), "own")
        .await;
}

async fn another_sessions_resolved_destination_is_denied(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (mut a, session) = anonymous(&server, transport).await;
    a.subscribe("u1", "/user/queue/private").await;
    let mut spy = server.client(transport).await;
    spy.send(&subscribe_frame(
        "spy",
        &format!("/queue/private-user{session}"),
    ))
    .await;
    spy.expect_error_then_close("access denied").await;
    // Also for a session id of the right form that is not live.
    let mut spy = server.client(transport).await;
    spy.send(&subscribe_frame(
        "spy",
        "/topic/x-user0123abcd-0123456789abcdef",
    ))
    .await;
    spy.expect_error_then_close("access denied").await;
}

async fn a_resolved_looking_name_that_is_no_session_id_is_an_ordinary_queue(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.subscribe("q", "/queue/orders-userbob").await;
    let mut b = server.client(transport).await;
    b.publish_confirmed("/queue/orders-userbob", "plain").await;
    a.expect_message("q", "/queue/orders-userbob", "plain")
        .await;
}

async fn a_user_send_needs_a_name_and_a_known_kind(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let mut a = server.client(transport).await;
    a.send(&send_frame("/user/alice", "x")).await;
    a.expect_error_then_close("invalid destination").await;
    let mut b = server.client(transport).await;
    b.send(&subscribe_frame("u", "/user/exchange/x")).await;
    b.expect_error_then_close("invalid destination").await;
    let mut c = server.client(transport).await;
    c.send(&subscribe_frame("u", "/user/queue/*")).await;
    c.expect_error_then_close("invalid destination").await;
}

async fn unsubscribing_stops_user_delivery(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (mut a, session) = anonymous(&server, transport).await;
    a.subscribe("u1", "/user/queue/n").await;
    a.unsubscribe("u1").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed(&format!("/user/{session}/queue/n"), "late")
        .await;
    a.expect_silence(QUIET).await;
    assert_eq!(
        server
            .node
            .stats
            .user_messages_unrouted
            .load(Ordering::Relaxed),
        1
    );
    let frame = Frame::new(Command::Disconnect);
    a.send(&frame).await;
}

transport_tests!(
    every_session_of_a_user_gets_a_copy,
    a_user_name_with_a_slash_is_written_percent_2f,
    a_session_id_targets_one_session_of_a_user,
);

fn two_users() -> herald::Config {
    let mut config = config();
    add_user(&mut config, "alice", "secret", &[]);
    add_user(&mut config, "bob", "secret", &[]);
    add_user(&mut config, "org/carol", "secret", &[]);
    config
}

async fn every_session_of_a_user_gets_a_copy(transport: Transport) {
    let server = TestServer::start(two_users()).await;
    let (mut tab1, _) = server.login(transport, "alice", "secret").await;
    tab1.subscribe("n", "/user/queue/notice").await;
    let (mut tab2, _) = server.login(transport, "alice", "secret").await;
    tab2.subscribe("n", "/user/queue/notice").await;
    let (mut bob, _) = server.login(transport, "bob", "secret").await;
    bob.subscribe("n", "/user/queue/notice").await;
    bob.publish_confirmed("/user/alice/queue/notice", "hello alice")
        .await;
    tab1.expect_message("n", "/user/queue/notice", "hello alice")
        .await;
    tab2.expect_message("n", "/user/queue/notice", "hello alice")
        .await;
    bob.expect_silence(QUIET).await;
    tab1.expect_silence(QUIET).await;
}

async fn a_user_name_with_a_slash_is_written_percent_2f(transport: Transport) {
    let server = TestServer::start(two_users()).await;
    let (mut carol, connected) = server.login(transport, "org/carol", "secret").await;
    assert_eq!(connected.headers.get("user-name"), Some("org/carol"));
    carol.subscribe("n", "/user/queue/notice").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed("/user/org%2Fcarol/queue/notice", "slashed")
        .await;
    carol
        .expect_message("n", "/user/queue/notice", "slashed")
        .await;
}

async fn a_session_id_targets_one_session_of_a_user(transport: Transport) {
    let server = TestServer::start(two_users()).await;
    let (mut first, connected) = server.login(transport, "alice", "secret").await;
    let session = session_of(&connected);
    first.subscribe("n", "/user/queue/one").await;
    let (mut second, _) = server.login(transport, "alice", "secret").await;
    second.subscribe("n", "/user/queue/one").await;
    let mut sender = server.client(transport).await;
    sender
        .publish_confirmed(&format!("/user/{session}/queue/one"), "just one")
        .await;
    first
        .expect_message("n", "/user/queue/one", "just one")
        .await;
    second.expect_silence(QUIET).await;
}

transport_tests!(
    session_ids_carry_64_random_bits,
    a_send_to_a_resolved_name_obeys_the_user_send_rules,
);

/// Issue 12, item 4: session ids were sequential (`<node>-514`, `-515`), so any client could
/// name another session's resolved queue.
async fn session_ids_carry_64_random_bits(transport: Transport) {
    let server = TestServer::with_defaults().await;
    let (_a, first) = anonymous(&server, transport).await;
    let (_b, second) = anonymous(&server, transport).await;
    for id in [&first, &second] {
        let (node, random) = id.split_once('-').expect("<node>-<random>");
        assert_eq!(node, server.node.id);
        assert_eq!(random.len(), 16, "{id}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
    assert_ne!(first, second);
}

/// SEND to `/user/**` only for role `publisher`, everything else allowed.
fn user_sends_for_publishers() -> herald::Config {
    let mut config = two_users();
    add_user(&mut config, "feed", "secret", &["publisher"]);
    let mut publishers = access_rule(&[herald::config::AccessAction::Send], &["/user/**"]);
    publishers.roles = vec!["publisher".to_owned()];
    config.access.rules.push(publishers);
    config
}

/// Issue 12, item 4: bob, refused `/user/**` SENDs, sent to `/queue/inbox-user<alice's
/// session id>` and it landed in alice's `/user/queue/inbox`. A resolved name is now checked
/// as the user destination it stands for.
async fn a_send_to_a_resolved_name_obeys_the_user_send_rules(transport: Transport) {
    let server = TestServer::start(user_sends_for_publishers()).await;
    let (mut alice, connected) = server.login(transport, "alice", "secret").await;
    let session = session_of(&connected);
    alice.subscribe("in", "/user/queue/inbox").await;
    let resolved = format!("/queue/inbox-user{session}");

    let (mut bob, _) = server.login(transport, "bob", "secret").await;
    bob.send(&send_frame(
        &format!("/user/{session}/queue/inbox"),
        "direct",
    ))
    .await;
    bob.expect_error_then_close("access denied").await;
    let (mut bob, _) = server.login(transport, "bob", "secret").await;
    bob.send(&send_frame(&resolved, "forged")).await;
    let error = bob.expect_error_then_close("access denied").await;
    assert!(
        String::from_utf8_lossy(&error.body).contains(&format!("/user/{session}/queue/inbox")),
        "the ERROR names the user destination: {}",
        show(&error)
    );
    alice.expect_silence(QUIET).await;

    // A publisher may use either form.
    let (mut feed, _) = server.login(transport, "feed", "secret").await;
    feed.publish_confirmed(&resolved, "resolved").await;
    alice
        .expect_message("in", "/user/queue/inbox", "resolved")
        .await;
}
