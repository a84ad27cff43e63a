//! What producers share: the encoded SEND they stamp and send again and again, and the pacing
//! that keeps them at a rate.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use herald_protocol::{Command, Frame, Version, encode};

use crate::conn::Conn;
use crate::stamp;

/// An encoded SEND to `destination` with a body of `size` bytes, and where its body starts
/// (the sender overwrites the body's first bytes with a timestamp per message).
pub fn send_template(destination: &str, size: usize) -> (BytesMut, usize) {
    let frame = Frame::new(Command::Send)
        .header("destination", destination)
        .header("content-type", "text/plain")
        .body(vec![b'.'; size]);
    let mut template = BytesMut::new();
    encode(&frame, Version::V1_2, &mut template);
    // The body ends just before the trailing NUL.
    let body_at = template.len() - 1 - size;
    (template, body_at)
}

/// What a paced producer does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this many messages now.
    Send(u64),
    /// Ahead of the rate: wait until then.
    WaitUntil(Instant),
}

/// The next step for a producer that started at `started`, has sent `sent` and has `remaining`
/// to go, at `rate` messages per second (0 or less: as fast as possible), at most `batch` per
/// write.
pub fn next_step(started: Instant, rate: f64, sent: u64, remaining: u64, batch: u64) -> Step {
    if rate <= 0.0 {
        return Step::Send(batch.min(remaining));
    }
    let due = (started.elapsed().as_secs_f64() * rate) as u64 + 1;
    if due <= sent {
        return Step::WaitUntil(started + Duration::from_secs_f64(sent as f64 / rate));
    }
    Step::Send((due - sent).min(batch).min(remaining))
}

/// What one producer is to send.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub destination: &'a str,
    /// Body bytes per message (its first bytes are overwritten by the stamps).
    pub size: usize,
    pub count: u64,
    /// Messages per second; 0 or less: as fast as the socket takes them.
    pub rate: f64,
    /// Most messages per write.
    pub batch: u64,
    /// When set, each body also carries a sequence number from this one, after the timestamp.
    pub first_seq: Option<u64>,
}

/// What a producer sent.
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: u64,
    /// Send times of the first and last message (ns since the Unix epoch).
    pub first_ns: u64,
    pub last_ns: u64,
    /// From the first write to the last flush.
    pub seconds: f64,
    pub error: Option<String>,
}

/// Sends `plan.count` messages, each stamped with its send time (and sequence number), paced
/// by [`next_step`], one flush per batch; stops early at `deadline` or on a write error.
pub async fn send_paced(conn: &mut Conn, plan: &Plan<'_>, deadline: Instant) -> Sent {
    let (template, body_at) = send_template(plan.destination, plan.size);
    let mut out = Sent::default();
    let started = Instant::now();
    while out.sent < plan.count {
        if Instant::now() >= deadline {
            out.error = Some("stopped by --duration".to_owned());
            break;
        }
        let n = match next_step(
            started,
            plan.rate,
            out.sent,
            plan.count - out.sent,
            plan.batch,
        ) {
            Step::Send(n) => n,
            Step::WaitUntil(at) => {
                tokio::time::sleep_until(at.min(deadline).into()).await;
                continue;
            }
        };
        for _ in 0..n {
            let mut message = template.clone();
            let now = stamp::now_ns();
            if out.sent == 0 {
                out.first_ns = now;
            }
            out.last_ns = now;
            stamp::write(&mut message[body_at..], now);
            if let Some(first_seq) = plan.first_seq {
                stamp::write(&mut message[body_at + stamp::LEN..], first_seq + out.sent);
            }
            if let Err(e) = conn.feed(message.freeze()).await {
                out.error = Some(format!("send: {e}"));
                break;
            }
            out.sent += 1;
        }
        if out.error.is_some() {
            break;
        }
        if let Err(e) = conn.flush().await {
            out.error = Some(format!("send: {e}"));
            break;
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpaced_sends_whole_batches() {
        let now = Instant::now();
        assert_eq!(next_step(now, 0.0, 0, 1000, 256), Step::Send(256));
        assert_eq!(next_step(now, 0.0, 900, 100, 256), Step::Send(100));
    }

    #[test]
    fn paced_waits_when_ahead() {
        let started = Instant::now();
        match next_step(started, 10.0, 5, 100, 256) {
            Step::WaitUntil(at) => assert_eq!(at, started + Duration::from_millis(500)),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert_eq!(next_step(started, 10.0, 0, 100, 256), Step::Send(1));
    }

    #[test]
    fn template_body_offset_points_at_the_body() {
        let (template, body_at) = send_template("/topic/t", 4);
        assert_eq!(&template[body_at..body_at + 4], b"....");
        assert_eq!(template[template.len() - 1], 0);
    }
}
