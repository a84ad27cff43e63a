//! Driving connections: a fuzzing connection writes its script and has everything it gets
//! back checked; a subscriber connects, subscribes, and checks what is relayed to it; the
//! liveness probe does a fresh CONNECT and a SEND/RECEIPT round trip.

use std::collections::HashMap;
use std::time::Duration;

use herald_protocol::Command;
use tokio::time::{Instant, timeout};

use super::frames::{RawFrame, Registered, escape_12};
use super::oracle::{self, Note, Sequence};
use super::plan::{END_RECEIPT, Script, SubscriberPlan};
use crate::wire::{ALL_SUBPROTOCOLS, Conn, Event, Received, Target, Transport};

/// How long opening a connection or a CONNECT may take before it counts as stalled.
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// How long a connection is read after its last event before it is done with.
const QUIET: Duration = Duration::from_millis(100);
/// The longest a script or a subscriber's ending may take.
const SCRIPT_LIMIT: Duration = Duration::from_secs(10);

/// What one connection found.
#[derive(Debug, Default)]
pub struct ConnOutcome {
    pub failures: Vec<String>,
    pub frames: u64,
    pub writes: u64,
    pub bytes: u64,
    /// Registered MESSAGEs whose body and headers were compared.
    pub checked: u64,
    /// ACK frames a subscriber sent for client-ack subscriptions.
    pub acks: u64,
    pub slow_consumer_closes: u64,
    /// Could not open the connection (counted; the liveness probe judges the broker).
    pub open_failed: bool,
    /// Did not finish within the limit (a stalled write or a broker that never answered).
    pub stalled: bool,
}

/// Runs a script: all its writes, then reads until the broker closes, answers the final
/// receipt, or stays quiet.
pub async fn run_script(target: Target, script: Script) -> ConnOutcome {
    let mut outcome = ConnOutcome::default();
    let run = async {
        let mut conn = match timeout(OPEN_WAIT, Conn::open(&target, ALL_SUBPROTOCOLS)).await {
            Ok(Ok(conn)) => conn,
            _ => {
                outcome.open_failed = true;
                return;
            }
        };
        for write in &script.writes {
            if write.pause_ms > 0 {
                tokio::time::sleep(Duration::from_millis(write.pause_ms)).await;
            }
            let sent = match target.transport {
                Transport::Tcp => conn.send(&write.bytes).await,
                Transport::Ws => conn.send_ws(&[(write.kind, &write.bytes)]).await,
            };
            if sent.is_err() {
                // The broker closed; what it sent before is read below.
                break;
            }
            outcome.writes += 1;
            outcome.bytes += write.bytes.len() as u64;
        }
        let mut sequence = Sequence::default();
        read_until_end(&mut conn, &mut outcome, |received| {
            sequence.check(received).map(|()| {
                received.command() == Command::Receipt
                    && received.header("receipt-id") == Some(END_RECEIPT)
            })
        })
        .await;
    };
    if timeout(SCRIPT_LIMIT, run).await.is_err() {
        outcome.stalled = true;
    }
    outcome
}

/// Reads events until the connection closes, `judge` says a frame ends it, or nothing
/// arrives for [`QUIET`]; records every judged fault.
async fn read_until_end(
    conn: &mut Conn,
    outcome: &mut ConnOutcome,
    mut judge: impl FnMut(&Received) -> Result<bool, String>,
) {
    loop {
        match conn.next_event_until(Instant::now() + QUIET).await {
            None => return,
            Some(Event::HeartBeat(_)) => {}
            Some(Event::Garbage(e)) => {
                outcome.failures.push(format!("unparseable output: {e}"));
                return;
            }
            Some(Event::Closed { how, .. }) => {
                if let Err(e) = oracle::check_close(&how) {
                    outcome.failures.push(e);
                }
                return;
            }
            Some(Event::Frame(received)) => {
                outcome.frames += 1;
                match judge(&received) {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => {
                        outcome.failures.push(e);
                        return;
                    }
                }
            }
        }
    }
}

/// A subscriber that has connected and subscribed.
#[derive(Debug)]
pub struct Subscriber {
    conn: Conn,
    plan: SubscriberPlan,
    receipts: Vec<String>,
    /// Frames that arrived before the last subscription's RECEIPT (a queue's backlog).
    early: Vec<Received>,
}

/// Connects with the plan's version and subscribes, each SUBSCRIBE with a receipt.
pub async fn start_subscriber(target: Target, plan: SubscriberPlan) -> Result<Subscriber, String> {
    let start = async {
        let mut conn = Conn::open(&target, ALL_SUBPROTOCOLS).await?;
        let connect = RawFrame::new("CONNECT")
            .h("accept-version", plan.version)
            .h("host", "/")
            .h("heart-beat", "0,0");
        conn.send(connect.bytes()).await?;
        conn.expect(Command::Connected, OPEN_WAIT).await?;
        let mut receipts = Vec::new();
        for subscription in &plan.subscriptions {
            let receipt = format!("sub-{}", subscription.id);
            let frame = RawFrame::new("SUBSCRIBE")
                .h("id", &subscription.id)
                .h("destination", subscription.destination)
                .h("ack", subscription.ack)
                .h("receipt", &receipt);
            conn.send(frame.bytes()).await?;
            receipts.push(receipt);
        }
        let mut early = Vec::new();
        let last = receipts.last().cloned().unwrap_or_default();
        loop {
            let frame = conn.next_frame(OPEN_WAIT).await?;
            if frame.command() == Command::Error {
                return Err(format!("ERROR while subscribing: {frame}"));
            }
            let done = frame.command() == Command::Receipt
                && frame.header("receipt-id") == Some(last.as_str());
            early.push(frame);
            if done {
                break;
            }
        }
        Ok(Subscriber {
            conn,
            plan,
            receipts,
            early,
        })
    };
    timeout(OPEN_WAIT * 2, start)
        .await
        .map_err(|_| "subscriber setup took longer than 10 s".to_owned())?
}

/// Reads up to a SEND's RECEIPT (or a close, or quiet), then acknowledges what its client-ack
/// subscriptions got and reads up to a second RECEIPT; every frame is checked against the
/// iteration's registered SENDs.
pub async fn finish_subscriber(
    mut sub: Subscriber,
    registry: &HashMap<String, Registered>,
) -> ConnOutcome {
    let mut outcome = ConnOutcome::default();
    sub.receipts.extend([SYNCED.to_owned(), ACKED.to_owned()]);
    let mut state = SubscriberState {
        judge: oracle::Subscriber {
            ids: sub
                .plan
                .subscriptions
                .iter()
                .map(|s| s.id.clone())
                .collect(),
            receipts: sub.receipts.clone(),
            registry,
            speaks_12: sub.plan.version == "1.2",
        },
        plan: &sub.plan,
        sequence: Sequence::connected(),
        acks: Vec::new(),
        cumulative: HashMap::new(),
    };
    for received in std::mem::take(&mut sub.early) {
        if let Err(e) = state.check(&received, &mut outcome) {
            outcome.failures.push(e);
            return outcome;
        }
    }
    let synced = RawFrame::new("SEND")
        .h("destination", "/topic/fz-sync")
        .h("receipt", SYNCED)
        .bytes();
    if !state.exchange(&mut sub.conn, synced, &mut outcome).await {
        return outcome;
    }
    // Cumulative acks go last, so an individual ack never names an already acknowledged message.
    let mut acks = std::mem::take(&mut state.acks);
    acks.extend(std::mem::take(&mut state.cumulative).into_values());
    if !acks.is_empty() {
        outcome.acks = acks.len() as u64;
        acks.push(
            RawFrame::new("SEND")
                .h("destination", "/topic/fz-sync")
                .h("receipt", ACKED)
                .bytes(),
        );
        state
            .exchange(&mut sub.conn, acks.concat(), &mut outcome)
            .await;
    }
    outcome
}

/// Receipt ids of a subscriber's two round trips at the end.
const SYNCED: &str = "sub-end";
const ACKED: &str = "sub-acked";

/// What a subscriber checks and owes while it reads.
struct SubscriberState<'a> {
    judge: oracle::Subscriber<'a>,
    plan: &'a SubscriberPlan,
    sequence: Sequence,
    /// ACK frames for `client-individual` subscriptions, in arrival order.
    acks: Vec<Vec<u8>>,
    /// The ACK of the latest MESSAGE of each `client` subscription.
    cumulative: HashMap<String, Vec<u8>>,
}

impl SubscriberState<'_> {
    /// Writes `bytes` and reads up to the RECEIPT they ask for; false when that failed.
    async fn exchange(
        &mut self,
        conn: &mut Conn,
        bytes: Vec<u8>,
        outcome: &mut ConnOutcome,
    ) -> bool {
        if conn.send(bytes).await.is_err() {
            return false;
        }
        let mut seen = ConnOutcome::default();
        let read = read_until_end(conn, &mut seen, |r| self.check(r, outcome));
        if timeout(SCRIPT_LIMIT, read).await.is_err() {
            outcome.stalled = true;
        }
        let fine = seen.failures.is_empty();
        outcome.failures.extend(seen.failures);
        outcome.frames += seen.frames;
        fine
    }

    /// Checks a frame; `Ok(true)` at one of the closing RECEIPTs.
    fn check(&mut self, received: &Received, outcome: &mut ConnOutcome) -> Result<bool, String> {
        self.sequence.check(received)?;
        if received
            .header("fz-id")
            .is_some_and(|id| self.judge.registry.contains_key(id))
        {
            outcome.checked += 1;
        }
        match self.judge.check(received)? {
            Note::SlowConsumer => outcome.slow_consumer_closes += 1,
            Note::Fine => {}
        }
        if received.command() == Command::Message {
            self.owe_ack(received);
        }
        Ok(received.command() == Command::Receipt
            && matches!(received.header("receipt-id"), Some(SYNCED | ACKED)))
    }

    /// Remembers the ACK a client-ack MESSAGE needs, in the subscriber's protocol version.
    fn owe_ack(&mut self, message: &Received) {
        let subscription = message.header("subscription").unwrap_or_default();
        let Some(plan) = self
            .plan
            .subscriptions
            .iter()
            .find(|s| s.id == subscription)
        else {
            return;
        };
        let message_id = message.header("message-id").unwrap_or_default();
        let frame = match self.plan.version {
            "1.2" => {
                RawFrame::new("ACK").h("id", escape_12(message.header("ack").unwrap_or_default()))
            }
            "1.1" => RawFrame::new("ACK")
                .h("subscription", subscription)
                .h("message-id", escape_12(message_id)),
            _ => RawFrame::new("ACK").h("message-id", message_id),
        };
        match plan.ack {
            "client-individual" => self.acks.push(frame.bytes()),
            "client" => {
                self.cumulative.insert(plan.id.clone(), frame.bytes());
            }
            _ => {}
        }
    }
}

/// A fresh connection: CONNECT → CONNECTED, SUBSCRIBE, SEND with a receipt → its MESSAGE and
/// RECEIPT, DISCONNECT; `Err` when any step fails or the whole takes longer than `bound`.
pub async fn probe(target: &Target, n: u64, bound: Duration) -> Result<Duration, String> {
    let started = Instant::now();
    let round_trip = async {
        let mut conn = Conn::open(target, ALL_SUBPROTOCOLS).await?;
        let connect = RawFrame::new("CONNECT")
            .h("accept-version", "1.2")
            .h("host", "/")
            .h("heart-beat", "0,0");
        conn.send(connect.bytes()).await?;
        conn.expect(Command::Connected, bound).await?;
        let destination = "/topic/fz-probe";
        conn.subscribe(destination, "probe", bound).await?;
        let body = format!("probe {n}");
        let send = RawFrame::new("SEND")
            .h("destination", destination)
            .h("receipt", "probe-sent")
            .body(body.clone().into_bytes());
        conn.send(send.bytes()).await?;
        let (mut message, mut receipt) = (false, false);
        while !(message && receipt) {
            let frame = conn.next_frame(bound).await?;
            match frame.command() {
                Command::Message if frame.frame.body.as_ref() == body.as_bytes() => message = true,
                Command::Receipt if frame.header("receipt-id") == Some("probe-sent") => {
                    receipt = true
                }
                _ => return Err(format!("unexpected {frame}")),
            }
        }
        conn.send(RawFrame::new("DISCONNECT").bytes()).await?;
        Ok::<(), String>(())
    };
    match timeout(bound, round_trip).await {
        Ok(Ok(())) => Ok(started.elapsed()),
        Ok(Err(e)) => Err(format!("liveness probe on {}: {e}", target.url)),
        Err(_) => Err(format!(
            "liveness probe on {}: no round trip within {} ms",
            target.url,
            bound.as_millis()
        )),
    }
}
