//! What producers share: the encoded SEND they stamp and send again and again, and the pacing
//! that keeps them at a rate.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use herald_protocol::{Command, Frame, Version, encode};

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
