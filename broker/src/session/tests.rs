//! A session's cleanup runs however its task ends: after a panic, or when the task is dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use herald_protocol::{Command, Frame, Version, encode};
use parking_lot::Mutex;

use super::Session;
use crate::config::Config;
use crate::node::Node;
use crate::outbox::OutFrame;
use crate::transport::{CloseKind, FrameIo};

/// What the scripted connection does once its input is used up.
#[derive(Debug, Clone, Copy)]
enum Then {
    /// `read` panics: a bug anywhere in the session's task.
    Panic,
    /// `read` waits forever: the task can only be dropped from outside.
    Wait,
}

/// A connection that hands the session scripted input and records what it writes.
#[derive(Debug)]
struct ScriptedIo {
    input: VecDeque<BytesMut>,
    then: Then,
    written: Arc<Mutex<Vec<OutFrame>>>,
}

impl FrameIo for ScriptedIo {
    async fn read(&mut self, buf: &mut BytesMut) -> std::io::Result<bool> {
        match self.input.pop_front() {
            Some(bytes) => {
                buf.extend_from_slice(&bytes);
                Ok(true)
            }
            None => match self.then {
                Then::Panic => panic!("injected failure in the session task"),
                Then::Wait => std::future::pending().await,
            },
        }
    }

    async fn feed(&mut self, frame: OutFrame) -> std::io::Result<()> {
        self.written.lock().push(frame);
        Ok(())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn close(&mut self, _: CloseKind, _: Duration) -> std::io::Result<()> {
        Ok(())
    }
}

fn encoded(frame: Frame) -> BytesMut {
    let mut bytes = BytesMut::new();
    encode(&frame, Version::V1_2, &mut bytes);
    bytes
}

/// A session that queues a message, takes it as a client-ack consumer without acking, then
/// hits `then`.
fn consumer_session(node: &Arc<Node>, then: Then) -> (Session, ScriptedIo) {
    let input = [
        Frame::new(Command::Connect)
            .header("accept-version", "1.2")
            .header("host", "test"),
        Frame::new(Command::Send)
            .header("destination", "/queue/work")
            .body("job"),
        Frame::new(Command::Subscribe)
            .header("id", "0")
            .header("destination", "/queue/work")
            .header("ack", "client"),
    ];
    let io = ScriptedIo {
        input: input.into_iter().map(encoded).collect(),
        then,
        written: Arc::default(),
    };
    let peer = "127.0.0.1:40000".parse().unwrap();
    (Session::new(Arc::clone(node), peer, "test"), io)
}

fn node() -> Arc<Node> {
    Arc::new(Node::new(Config::default()))
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_session_task_still_cleans_up() {
    let node = node();
    let (session, io) = consumer_session(&node, Then::Panic);
    let written = Arc::clone(&io.written);
    session.run(io).await;

    let depth = node
        .router
        .queues
        .depth("/queue/work")
        .expect("the queue exists");
    assert_eq!(depth.consumers, 0, "the dead consumer left the queue");
    assert_eq!(depth.ready, 1, "its unacknowledged message is ready again");
    assert_eq!(node.stats.closes("internal_error"), 1);
    let last = written.lock().last().cloned().expect("frames were written");
    let text = String::from_utf8_lossy(&last.bytes);
    assert!(
        text.starts_with("ERROR\n") && text.contains("message:internal error"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_session_task_dropped_mid_way_still_cleans_up() {
    let node = node();
    let (session, io) = consumer_session(&node, Then::Wait);
    let task = tokio::spawn(session.run(io));
    // The scripted frames are handled without any real waiting; then the task waits forever.
    let mut turns = 0;
    while node
        .router
        .queues
        .depth("/queue/work")
        .is_none_or(|d| d.consumers == 0)
    {
        turns += 1;
        assert!(turns < 100_000, "the session never subscribed");
        tokio::task::yield_now().await;
    }
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let depth = node
        .router
        .queues
        .depth("/queue/work")
        .expect("the queue exists");
    assert_eq!(depth.consumers, 0);
    assert_eq!(depth.ready, 1);
}
