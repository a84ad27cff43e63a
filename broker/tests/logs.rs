//! What the `herald` binary logs about sessions: one `info` line when a session opens (peer,
//! transport, user) and one when it ends (reason, duration, traffic); a DISCONNECT is not a
//! warning; `--log-level debug` shows Herald's debug lines but not a line per WebSocket
//! frame from the libraries.

mod common;

use common::herald_process::HeraldProcess;
use common::*;
use herald_protocol::{Command, Frame};

/// The lines of `log` containing every one of `parts`.
fn lines_with<'a>(log: &'a str, parts: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| parts.iter().all(|part| line.contains(part)))
        .collect()
}

#[tokio::test]
async fn a_session_logs_its_start_and_end_once_and_debug_is_herald_only() {
    let mut node = HeraldProcess::start_with("logs", "", "debug").await;

    let (mut alice, _) = node.login(Transport::Ws, "alice").await;
    alice.subscribe("s", "/topic/log").await;
    alice.publish("/topic/log", "hello").await;
    alice.expect(Command::Message).await;
    alice
        .send(&Frame::new(Command::Disconnect).header("receipt", "bye"))
        .await;
    alice.expect_receipt("bye").await;
    let closed = node.wait_for_log("session closed").await;

    // A connection that never sends CONNECT (a port scanner, a health check).
    drop(node.open(Transport::Tcp).await);
    node.wait_for_log("connection closed before CONNECT").await;

    let log = node.log();
    let opened = lines_with(&log, &["session opened"]);
    assert_eq!(opened.len(), 1, "{log}");
    for part in [
        "INFO",
        "transport=\"ws\"",
        "user=\"alice\"",
        "peer=127.0.0.1:",
        "version=\"1.2\"",
    ] {
        assert!(opened[0].contains(part), "{part} in {}", opened[0]);
    }
    assert_eq!(lines_with(&log, &["session closed"]).len(), 1, "{log}");
    // SUBSCRIBE, SEND, DISCONNECT after CONNECT; one MESSAGE.
    for part in [
        "INFO",
        "reason=disconnect",
        "user=\"alice\"",
        "duration_ms=",
        "frames_in=4",
        "messages_out=1",
        "bytes_out=",
    ] {
        assert!(closed.contains(part), "{part} in {closed}");
    }
    assert!(
        lines_with(&log, &["connection closed before CONNECT"])[0].contains("DEBUG"),
        "{log}"
    );
    assert!(lines_with(&log, &["WARN"]).is_empty(), "{log}");
    // The WebSocket library logs every frame at debug; none of that comes through.
    assert!(lines_with(&log, &["tungstenite"]).is_empty(), "{log}");
}
