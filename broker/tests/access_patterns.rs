//! Issue 12, item 3: pattern subscriptions and access rules, over real sockets. With
//! `subscribe` on `/topic/secret/**` granted only to role `admin`, bob was refused
//! `/topic/**` but could subscribe to `/topic/*/x`, `/topic/secre?/x`, `/topic/{a}/x`,
//! `/topic/{a:s.*}/x` and `/topic/s*/x`, and each received the admin-only `/topic/secret/x`.

mod common;

use common::*;
use herald::config::AccessAction;
use herald_protocol::Command;

transport_tests!(
    patterns_reaching_a_restricted_topic_are_refused,
    patterns_clear_of_a_restricted_topic_are_allowed_and_get_nothing_from_it,
);

const REACHING: [&str; 6] = [
    "/topic/*/x",
    "/topic/secre?/x",
    "/topic/{a}/x",
    "/topic/{a:s.*}/x",
    "/topic/s*/x",
    "/topic/**",
];

fn secret_for_admins() -> herald::Config {
    let mut config = config();
    add_user(&mut config, "root", "secret", &["admin"]);
    add_user(&mut config, "bob", "secret", &[]);
    // The tests log in often: no throttle to speak of.
    config.auth.failure_delay_ms = 1;
    let mut admins = access_rule(&[AccessAction::Subscribe], &["/topic/secret/**"]);
    admins.roles = vec!["admin".to_owned()];
    config.access.rules.push(admins);
    config
}

async fn patterns_reaching_a_restricted_topic_are_refused(transport: Transport) {
    let server = TestServer::start(secret_for_admins()).await;
    let (mut root, _) = server.login(transport, "root", "secret").await;
    for (i, pattern) in REACHING.iter().enumerate() {
        let (mut bob, _) = server.login(transport, "bob", "secret").await;
        bob.send(&subscribe_frame("s", pattern)).await;
        let error = bob.expect_error_then_close("access denied").await;
        assert!(
            String::from_utf8_lossy(&error.body).contains(pattern),
            "{pattern}: {}",
            show(&error)
        );
        // The admin may: the rule grants it every destination these patterns reach.
        root.subscribe(&format!("r{i}"), pattern).await;
    }
}

async fn patterns_clear_of_a_restricted_topic_are_allowed_and_get_nothing_from_it(
    transport: Transport,
) {
    let server = TestServer::start(secret_for_admins()).await;
    let (mut bob, _) = server.login(transport, "bob", "secret").await;
    for (i, pattern) in ["/topic/public/*", "/topic/{a:p.*}/x", "/topic/secret?/x"]
        .iter()
        .enumerate()
    {
        bob.subscribe(&format!("b{i}"), pattern).await;
    }
    let (mut root, _) = server.login(transport, "root", "secret").await;
    root.subscribe("all", "/topic/**").await;
    let mut publisher = server.client(transport).await;
    publisher
        .publish_confirmed("/topic/secret/x", "admins only")
        .await;
    publisher
        .publish_confirmed("/topic/public/x", "for all")
        .await;
    root.expect_body("admins only").await;
    root.expect_body("for all").await;
    // Two of bob's patterns match `/topic/public/x`; none `/topic/secret/x`.
    for _ in 0..2 {
        let message = bob.expect(Command::Message).await;
        assert_eq!(String::from_utf8_lossy(&message.body), "for all");
    }
    bob.expect_silence(QUIET).await;
}
