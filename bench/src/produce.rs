//! What producers share: the encoded SEND they stamp and send again and again, the pacing
//! that keeps them at a rate, and the RECEIPTs they may ask for.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use herald_protocol::{Command, Frame, Version, encode};

use crate::cli::Header;
use crate::conn::Conn;
use crate::hist::{self, Hist};
use crate::stamp;

/// Hex digits of a receipt id: the message's number, fixed width so it is written in place.
const RECEIPT_ID_LEN: usize = 16;

/// An encoded SEND, stamped and sent again and again.
#[derive(Debug)]
pub struct Template {
    pub bytes: BytesMut,
    /// Where the body starts (the sender overwrites its first bytes per message).
    pub body_at: usize,
    /// Where the `receipt` header's value starts, in a template that has one.
    pub receipt_at: Option<usize>,
}

/// An encoded SEND to `destination` with a body of `size` bytes, the `headers` after
/// `destination` and `content-type`, and with `receipt` a `receipt` header last (its value a
/// placeholder of [`RECEIPT_ID_LEN`] hex digits).
pub fn send_template(
    destination: &str,
    size: usize,
    headers: &[Header],
    receipt: bool,
) -> Template {
    let mut frame = Frame::new(Command::Send)
        .header("destination", destination)
        .header("content-type", "text/plain");
    for header in headers {
        frame = frame.header(&header.name, &header.value);
    }
    if receipt {
        frame = frame.header("receipt", &"0".repeat(RECEIPT_ID_LEN));
    }
    let frame = frame.body(vec![b'.'; size]);
    let mut bytes = BytesMut::new();
    encode(&frame, Version::V1_2, &mut bytes);
    // The body ends just before the trailing NUL.
    let body_at = bytes.len() - 1 - size;
    // Headers the tool writes are refused on the command line, so the only `receipt` line is
    // this one.
    let receipt_at = receipt.then(|| {
        let line = b"\nreceipt:";
        bytes[..body_at]
            .windows(line.len())
            .position(|w| w == line)
            .expect("the receipt header was encoded")
            + line.len()
    });
    Template {
        bytes,
        body_at,
        receipt_at,
    }
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
    /// Headers every SEND carries besides `destination` and `content-type`.
    pub headers: &'a [Header],
    /// RECEIPTs to ask for; `None`: none, and nothing is read while sending.
    pub receipts: Option<ReceiptPlan>,
}

/// Which SENDs ask for a RECEIPT: every `every`-th and the last, with at most `window`
/// unanswered at a time (the producer waits for one before asking for more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptPlan {
    pub every: u64,
    pub window: u64,
}

impl ReceiptPlan {
    /// Whether message `index` (from 0) of `count` asks for a RECEIPT.
    pub fn asks(self, index: u64, count: u64) -> bool {
        (index + 1) % self.every == 0 || index + 1 == count
    }
}

/// A producer's RECEIPTs: asked for, answered, and the time from send to RECEIPT.
#[derive(Debug)]
pub struct Receipts {
    pub requested: u64,
    pub received: u64,
    /// Send (stamp) to RECEIPT read, in microseconds.
    pub latency: Hist,
    /// Unanswered: the message's number (its receipt id) and its send time (ns).
    outstanding: HashMap<u64, u64>,
}

impl Receipts {
    fn new() -> Receipts {
        Receipts {
            requested: 0,
            received: 0,
            latency: hist::new(),
            outstanding: HashMap::new(),
        }
    }

    /// Counts one RECEIPT; an ERROR, or a RECEIPT for nothing asked, fails. Other frames are
    /// skipped.
    fn settle(&mut self, frame: &Frame) -> Result<(), String> {
        match frame.command {
            Command::Receipt => {
                let id = frame.headers.get("receipt-id").unwrap_or("");
                let sent = u64::from_str_radix(id, 16)
                    .ok()
                    .and_then(|n| self.outstanding.remove(&n))
                    .ok_or_else(|| format!("RECEIPT for nothing asked (receipt-id {id:?})"))?;
                self.received += 1;
                self.latency
                    .saturating_record(stamp::now_ns().saturating_sub(sent) / 1000);
                Ok(())
            }
            Command::Error => Err(format!(
                "ERROR frame: {}",
                frame.headers.get("message").unwrap_or("(no message)")
            )),
            _ => Ok(()),
        }
    }

    /// Reads RECEIPTs until at most `most` are unanswered.
    async fn wait_until(
        &mut self,
        conn: &mut Conn,
        most: u64,
        deadline: Instant,
    ) -> Result<(), String> {
        while self.outstanding.len() as u64 > most {
            let frame = tokio::time::timeout_at(deadline.into(), conn.next_frame())
                .await
                .map_err(|_| {
                    format!(
                        "stopped by --duration with {} RECEIPT(s) outstanding",
                        self.outstanding.len()
                    )
                })??
                .ok_or("closed by the broker with RECEIPTs outstanding")?;
            self.settle(&frame)?;
        }
        Ok(())
    }

    /// Takes the RECEIPTs the socket already has, without waiting for more.
    async fn poll(&mut self, conn: &mut Conn) -> Result<(), String> {
        loop {
            while let Some(frame) = conn.buffered_frame()? {
                self.settle(&frame)?;
            }
            // `read_more` is cancel-safe: if the socket has nothing now, nothing is lost.
            let read = tokio::select! {
                biased;
                read = conn.read_more() => read?,
                () = std::future::ready(()) => return Ok(()),
            };
            if !read {
                return Err("closed by the broker".to_owned());
            }
        }
    }
}

/// What a producer sent.
#[derive(Debug, Default)]
pub struct Sent {
    pub sent: u64,
    /// Send times of the first and last message (ns since the Unix epoch).
    pub first_ns: u64,
    pub last_ns: u64,
    /// From the first write to the last flush (with receipts, to the last RECEIPT).
    pub seconds: f64,
    /// With [`Plan::receipts`].
    pub receipts: Option<Receipts>,
    pub error: Option<String>,
}

/// Sends `plan.count` messages, each stamped with its send time (and sequence number), paced
/// by [`next_step`], one flush per batch; stops early at `deadline` or on a write error. With
/// [`Plan::receipts`], some SENDs ask for a RECEIPT (its id the message's number in hex): the
/// producer takes the RECEIPTs that have come after each flush, waits when `window` are
/// unanswered, and at the end waits for all of them.
pub async fn send_paced(conn: &mut Conn, plan: &Plan<'_>, deadline: Instant) -> Sent {
    let mut out = Sent::default();
    let started = Instant::now();
    send_messages(conn, plan, deadline, &mut out).await;
    if let (Some(receipts), None) = (&mut out.receipts, &out.error)
        && let Err(e) = receipts.wait_until(conn, 0, deadline).await
    {
        out.error = Some(e);
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

async fn send_messages(conn: &mut Conn, plan: &Plan<'_>, deadline: Instant, out: &mut Sent) {
    let plain = send_template(plan.destination, plan.size, plan.headers, false);
    let receipted = plan
        .receipts
        .map(|_| send_template(plan.destination, plan.size, plan.headers, true));
    if plan.receipts.is_some() {
        out.receipts = Some(Receipts::new());
    }
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
            let number = plan.first_seq.unwrap_or(0) + out.sent;
            let asks = plan.receipts.filter(|r| r.asks(out.sent, plan.count));
            if let (Some(asks), Some(receipts)) = (asks, &mut out.receipts)
                && receipts.outstanding.len() as u64 >= asks.window
            {
                // The window is full: what was fed goes out, then one RECEIPT must come.
                let waited = match conn.flush().await {
                    Ok(()) => receipts.wait_until(conn, asks.window - 1, deadline).await,
                    Err(e) => Err(format!("send: {e}")),
                };
                if let Err(e) = waited {
                    out.error = Some(e);
                    break;
                }
            }
            let template = match (&asks, &receipted) {
                (Some(_), Some(receipted)) => receipted,
                _ => &plain,
            };
            let mut message = template.bytes.clone();
            let now = stamp::now_ns();
            if out.sent == 0 {
                out.first_ns = now;
            }
            out.last_ns = now;
            stamp::write(&mut message[template.body_at..], now);
            if plan.first_seq.is_some() {
                stamp::write(&mut message[template.body_at + stamp::LEN..], number);
            }
            if let (Some(at), Some(receipts)) = (template.receipt_at, &mut out.receipts) {
                let id = format!("{number:0width$x}", width = RECEIPT_ID_LEN);
                message[at..at + RECEIPT_ID_LEN].copy_from_slice(id.as_bytes());
                receipts.requested += 1;
                receipts.outstanding.insert(number, now);
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
        if let Some(receipts) = &mut out.receipts
            && let Err(e) = receipts.poll(conn).await
        {
            out.error = Some(e);
            break;
        }
    }
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
        let template = send_template("/topic/t", 4, &[], false);
        let (bytes, body_at) = (&template.bytes, template.body_at);
        assert_eq!(&bytes[body_at..body_at + 4], b"....");
        assert_eq!(bytes[bytes.len() - 1], 0);
        assert_eq!(template.receipt_at, None);
    }

    #[test]
    fn a_receipt_template_carries_the_headers_and_a_receipt_id_in_place() {
        let headers = [Header {
            name: "persistent".to_owned(),
            value: "true".to_owned(),
        }];
        let template = send_template("/queue/q", 40, &headers, true);
        let at = template.receipt_at.unwrap();
        let mut bytes = template.bytes.clone();
        bytes[at..at + RECEIPT_ID_LEN].copy_from_slice(b"00000000000000ff");
        let text = String::from_utf8_lossy(&bytes[..template.body_at]).into_owned();
        assert!(
            text.starts_with("SEND\ndestination:/queue/q\ncontent-type:text/plain\n"),
            "{text}"
        );
        assert!(
            text.contains("\npersistent:true\nreceipt:00000000000000ff\n"),
            "{text}"
        );
        assert_eq!(
            &bytes[template.body_at..template.body_at + 40],
            &[b'.'; 40][..]
        );
    }

    #[test]
    fn receipts_are_asked_every_nth_and_on_the_last() {
        let plan = ReceiptPlan {
            every: 3,
            window: 1,
        };
        let asked: Vec<u64> = (0..8).filter(|&i| plan.asks(i, 8)).collect();
        assert_eq!(asked, [2, 5, 7]);
        let each = ReceiptPlan {
            every: 1,
            window: 8,
        };
        assert!((0..5).all(|i| each.asks(i, 5)));
    }

    #[test]
    fn receipts_settle_what_was_asked_and_refuse_the_rest() {
        let mut receipts = Receipts::new();
        receipts.outstanding.insert(255, stamp::now_ns());
        let receipt = |id: &str| Frame::new(Command::Receipt).header("receipt-id", id);
        assert!(receipts.settle(&receipt("00000000000000ff")).is_ok());
        assert_eq!((receipts.received, receipts.outstanding.len()), (1, 0));
        assert!(receipts.settle(&receipt("00000000000000ff")).is_err());
        assert!(receipts.settle(&receipt("bye")).is_err());
        let error = Frame::new(Command::Error).header("message", "queue full");
        assert_eq!(
            receipts.settle(&error).unwrap_err(),
            "ERROR frame: queue full"
        );
        assert!(receipts.settle(&Frame::new(Command::Message)).is_ok());
    }
}
