//! Scenario `queue`: P producers send M messages in total to one queue destination, C consumers
//! subscribe with an ack mode and a prefetch, ACK what they get and record end-to-end latency.
//! Every message carries a sequence number, so duplicates and losses are counted exactly.
//! Producers may ask for RECEIPTs (every N-th SEND, a window of them outstanding). With no
//! consumers the messages stay in the broker, and its memory per waiting message is read.
//! Runs in this one process: a handful of connections needs no workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use herald_protocol::{Command, Frame, Version, encode_to_bytes};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::cli::{AckMode, Common, Header, QueueArgs};
use crate::conn::Conn;
use crate::hist::{self, Hist};
use crate::procfs;
use crate::produce::{Plan, ReceiptPlan, Sent, send_paced};
use crate::report::{self, MIB, Report, round3};
use crate::stamp;
use crate::target::Endpoint;
use crate::watched::Watched;

/// Bound on one connection's CONNECT (and SUBSCRIBE) and on a closing DISCONNECT's receipt.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the consumers get to send their last ACKs and DISCONNECT once stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What every consumer adds to.
#[derive(Debug)]
struct Shared {
    messages: u64,
    /// One bit per sequence number: set once received.
    seen: Vec<AtomicU64>,
    unique: AtomicU64,
    duplicates: AtomicU64,
    /// MESSAGE frames whose body carried no valid sequence number or timestamp.
    malformed: AtomicU64,
    /// MESSAGE frames with `redelivered:true` (RabbitMQ and Herald both set it).
    redelivered: AtomicU64,
    all_received: Notify,
}

impl Shared {
    fn new(messages: u64) -> Shared {
        Shared {
            messages,
            seen: (0..messages.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
            unique: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            all_received: Notify::new(),
        }
    }

    /// Marks `seq` received; `false` if it already was.
    fn mark(&self, seq: u64) -> bool {
        let bit = 1u64 << (seq % 64);
        let before = self.seen[(seq / 64) as usize].fetch_or(bit, Ordering::Relaxed);
        if before & bit != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.unique.fetch_add(1, Ordering::Relaxed) + 1 == self.messages {
            self.all_received.notify_one();
        }
        true
    }
}

/// One consumer's tally.
#[derive(Debug)]
struct Consumed {
    received: u64,
    first_ns: u64,
    last_ns: u64,
    latency: Hist,
    acks: u64,
    error_frames: u64,
    closed_early: bool,
    error: Option<String>,
}

/// Runs the scenario; `Ok(true)` when every message arrived exactly once within the bounds.
pub async fn run(common: &Common, args: &QueueArgs, report: &mut Report) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(common.duration);
    // Queue connections all live in this process, on --url.
    if !common.sub_urls.is_empty() {
        return Err("queue does not read --sub-url: all its connections use --url".to_owned());
    }
    common.refuse_unread_flags("queue")?;
    if !args.destination.starts_with("/queue/") {
        report.say(format!(
            "note: {} is not a /queue/ destination; the broker may broadcast it",
            args.destination
        ));
    }
    if args.receipt_every == 0 && args.receipt_window != 1 {
        return Err("--receipt-window needs --receipt-every".to_owned());
    }
    let receipts = (args.receipt_every > 0).then_some(ReceiptPlan {
        every: args.receipt_every,
        window: args.receipt_window,
    });
    let consuming = args.consumers > 0;
    let endpoint = Endpoint::resolve(common).await?;
    let ack_every = match args.ack_every {
        0 => (args.prefetch / 2).max(1),
        n if args.prefetch > 0 => n.min(args.prefetch),
        n => n,
    };
    let send_headers: Vec<String> = args.headers.iter().map(Header::to_string).collect();
    report.say(format!(
        "herald-load queue: {} producer(s){}, {} consumer(s) (ack {}, prefetch {}{}), {} message(s) of {} B{} at {}, {} {}",
        args.producers,
        match receipts {
            Some(r) => format!(
                " (RECEIPT every {} SEND(s), at most {} outstanding)",
                r.every, r.window
            ),
            None => String::new(),
        },
        args.consumers,
        args.ack.as_str(),
        args.prefetch,
        if args.ack == AckMode::Client {
            format!(", ACK every {ack_every}")
        } else {
            String::new()
        },
        args.messages,
        args.size,
        if send_headers.is_empty() {
            String::new()
        } else {
            format!(" with {}", send_headers.join(", "))
        },
        report::pace(args.rate),
        common.url,
        args.destination
    ));
    report.set("scenario", "queue");
    report::target(report, common);
    report.set("producers", args.producers);
    report.set("consumers", args.consumers);
    report.set("messages", args.messages);
    report.set("size_bytes", args.size);
    report.set("ack", args.ack.as_str());
    report.set("prefetch", args.prefetch);
    report.set("rate", args.rate);
    report.set("receipt_every", args.receipt_every);
    report.set("receipt_window", args.receipt_window);
    report.set("send_headers", send_headers);
    let rss_before = match args.broker_pid {
        Some(pid) => Some(procfs::rss(pid)?),
        None => None,
    };
    if let Some(rss) = rss_before {
        report.say(format!("broker RSS before: {:.1} MiB", rss as f64 / MIB));
        report.set("broker_rss_before_bytes", rss);
    }

    // Consumers first, each subscribed (RECEIPT) before any message is sent.
    let mut consumers = Vec::new();
    let mut setup_error = None;
    for i in 0..args.consumers as usize {
        let opened =
            tokio::time::timeout_at(deadline.min(Instant::now() + SETUP_TIMEOUT).into(), async {
                let mut conn = Conn::open(&endpoint, i).await?;
                let prefetch = (args.prefetch > 0).then_some(args.prefetch);
                conn.subscribe_with(&args.destination, "sub-0", args.ack.as_str(), prefetch)
                    .await?;
                Ok::<_, String>(conn)
            })
            .await
            .unwrap_or_else(|_| Err("CONNECT/SUBSCRIBE timed out".to_owned()));
        match opened {
            Ok(conn) => consumers.push(conn),
            Err(e) => {
                setup_error = Some(format!("consumer {i}: {e}"));
                break;
            }
        }
    }
    if let Some(e) = setup_error {
        for conn in consumers {
            conn.close().await;
        }
        return Err(e);
    }
    let mut producers = Vec::new();
    for i in 0..args.producers as usize {
        let opened = tokio::time::timeout_at(
            deadline.min(Instant::now() + SETUP_TIMEOUT).into(),
            Conn::open(&endpoint, args.consumers as usize + i),
        )
        .await
        .unwrap_or_else(|_| Err("CONNECT timed out".to_owned()));
        match opened {
            Ok(conn) => producers.push(conn),
            Err(e) => {
                for conn in consumers.into_iter().chain(producers) {
                    conn.close().await;
                }
                return Err(format!("producer {i}: {e}"));
            }
        }
    }
    report.say(format!(
        "connections: {} consumer(s) subscribed, {} producer(s) connected",
        consumers.len(),
        producers.len()
    ));

    let shared = Arc::new(Shared::new(args.messages));
    let (stop_tx, stop_rx) = watch::channel(false);
    let machine_before = procfs::MachineCpu::now().ok();
    let watched = Watched::start(&common.cpu_pids)?;
    let broker_cpu_before = args.broker_pid.map(procfs::cpu_seconds).transpose()?;
    let cpu_window = Instant::now();
    let mut consumer_tasks = JoinSet::new();
    for conn in consumers {
        consumer_tasks.spawn(consume(
            conn,
            args.ack,
            ack_every,
            Arc::clone(&shared),
            stop_rx.clone(),
            deadline,
        ));
    }
    let mut producer_tasks = JoinSet::new();
    let (base, extra) = (
        args.messages / args.producers,
        args.messages % args.producers,
    );
    let mut first_seq = 0;
    for (i, conn) in producers.into_iter().enumerate() {
        let count = base + u64::from((i as u64) < extra);
        let rate = args.rate as f64 * count as f64 / args.messages as f64;
        producer_tasks.spawn(produce(
            conn,
            args.clone(),
            receipts,
            first_seq,
            count,
            rate,
            deadline,
        ));
        first_seq += count;
    }

    // Producers finish (or hit the deadline); then wait for the rest within --drain.
    let mut produced = Vec::new();
    let all_received = shared.all_received.notified();
    tokio::pin!(all_received);
    let mut received_all = false;
    loop {
        tokio::select! {
            joined = producer_tasks.join_next() => match joined {
                Some(Ok(p)) => produced.push(p),
                Some(Err(e)) => produced.push(Sent { error: Some(format!("producer task: {e}")), ..Sent::default() }),
                None => break,
            },
            () = &mut all_received, if !received_all => received_all = true,
            () = tokio::time::sleep_until(deadline.into()) => break,
        }
    }
    producer_tasks.abort_all();
    let sent_at = Instant::now();
    // Without consumers the producers' end is the run's: what they sent waits in the broker.
    let rss_after = match args.broker_pid {
        Some(pid) => Some(procfs::rss(pid)?),
        None => None,
    };
    if consuming && !received_all && shared.unique.load(Ordering::Relaxed) < args.messages {
        let drain_deadline = (sent_at + Duration::from_secs(args.drain)).min(deadline);
        tokio::select! {
            () = &mut all_received => {}
            () = tokio::time::sleep_until(drain_deadline.into()) => {}
        }
    }
    let machine_after = procfs::MachineCpu::now().ok();
    let spent = watched.stop();
    let cpu_window_s = cpu_window.elapsed().as_secs_f64();
    let broker_cpu = match (args.broker_pid, broker_cpu_before) {
        (Some(pid), Some(before)) => Some(procfs::cpu_seconds(pid)? - before),
        _ => None,
    };
    let _ = stop_tx.send(true);
    let mut consumed = Vec::new();
    let _ = tokio::time::timeout(STOP_GRACE * 2, async {
        while let Some(joined) = consumer_tasks.join_next().await {
            if let Ok(c) = joined {
                consumed.push(c);
            }
        }
    })
    .await;
    consumer_tasks.abort_all();

    // Figures.
    let sent: u64 = produced.iter().map(|p| p.sent).sum();
    let first_send = produced
        .iter()
        .filter(|p| p.sent > 0)
        .map(|p| p.first_ns)
        .min()
        .unwrap_or(0);
    let last_send = produced.iter().map(|p| p.last_ns).max().unwrap_or(0);
    let mut latency = hist::new();
    for c in &consumed {
        let _ = latency.add(&c.latency);
    }
    let received: u64 = consumed.iter().map(|c| c.received).sum();
    let last_receive = consumed.iter().map(|c| c.last_ns).max().unwrap_or(0);
    let unique = shared.unique.load(Ordering::Relaxed);
    let duplicates = shared.duplicates.load(Ordering::Relaxed);
    let malformed = shared.malformed.load(Ordering::Relaxed);
    let redelivered = shared.redelivered.load(Ordering::Relaxed);
    // Without consumers nothing is lost: everything sent is waiting.
    let lost = if consuming {
        sent.saturating_sub(unique)
    } else {
        0
    };
    let window_s = last_receive.saturating_sub(first_send) as f64 / 1e9;
    let send_s = last_send.saturating_sub(first_send) as f64 / 1e9;
    let rate = unique as f64 / window_s.max(1e-9);
    let acks: u64 = consumed.iter().map(|c| c.acks).sum();
    let error_frames: u64 = consumed.iter().map(|c| c.error_frames).sum();
    let closed_early = consumed.iter().filter(|c| c.closed_early).count();
    let producer_error = produced.iter().find_map(|p| p.error.clone());
    let consumer_error = consumed.iter().find_map(|c| c.error.clone());

    report.say(format!(
        "sent: {sent} of {} in {send_s:.3} s{}",
        args.messages,
        match &producer_error {
            Some(e) => format!(" (producer: {e})"),
            None => String::new(),
        }
    ));
    let mut receipt_latency = hist::new();
    let (mut receipts_requested, mut receipts_received) = (0, 0);
    for r in produced.iter().filter_map(|p| p.receipts.as_ref()) {
        receipts_requested += r.requested;
        receipts_received += r.received;
        let _ = receipt_latency.add(&r.latency);
    }
    if receipts.is_some() {
        report.say(format!(
            "receipts: {receipts_received} of {receipts_requested} asked; send to RECEIPT: {}",
            hist::summary(&receipt_latency)
        ));
        report.set("receipts_requested", receipts_requested);
        report.set("receipts_received", receipts_received);
        report.set("receipt_p50_ms", hist::ms(&receipt_latency, 0.5));
        report.set("receipt_p99_ms", hist::ms(&receipt_latency, 0.99));
    }
    if consuming {
        report.say(format!(
            "received: {unique} distinct of {sent} sent, {received} MESSAGE frame(s), in {window_s:.3} s; {acks} ACK frame(s) sent"
        ));
        report.say(format!(
            "messages/s: {rate:.1} (distinct messages received / first send to last receive)"
        ));
        report.say(format!("latency: {}", hist::summary(&latency)));
    } else {
        report.say(format!(
            "no consumers: the {sent} message(s) sent wait in the broker; send rate {:.1} msgs/s",
            sent as f64 / send_s.max(1e-9)
        ));
    }
    let per_consumer: Vec<String> = consumed.iter().map(|c| c.received.to_string()).collect();
    report.say(format!(
        "per consumer: {}",
        if per_consumer.is_empty() {
            "-".to_owned()
        } else {
            per_consumer.join(" / ")
        }
    ));
    report.say(format!(
        "lost: {lost}; duplicates: {duplicates}; redelivered: {redelivered}; malformed: {malformed}; \
         consumers closed early: {closed_early}, ERROR frames: {error_frames}"
    ));
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let delta = after as i64 - before as i64;
        report.say(format!(
            "broker RSS after the producers: {:.1} MiB ({:+.1} MiB)",
            after as f64 / MIB,
            delta as f64 / MIB
        ));
        report.set("broker_rss_after_bytes", after);
        report.set("broker_rss_delta_bytes", delta);
        if !consuming && sent > 0 {
            let per_message = delta as f64 / sent as f64;
            report.say(format!(
                "broker memory per waiting message: {per_message:.0} bytes ({sent} waiting)"
            ));
            report.set("broker_bytes_per_waiting_message", per_message.round());
        }
    }
    if let (Some(before), Some(after)) = (machine_before, machine_after) {
        report::machine_cpu(report, before.busy_share_until(after), "first send to done");
    }
    if let Some(cpu) = broker_cpu {
        report.say(format!(
            "broker CPU: {cpu:.2} s from first send to done ({:.0}% of one core)",
            100.0 * cpu / cpu_window_s.max(1e-9)
        ));
        report.set("broker_cpu_seconds", round3(cpu));
    }
    spent.report(report, cpu_window_s, "first send to done");
    report.set("cpu_window_s", round3(cpu_window_s));
    report::own_cpu(report);
    if let Some(e) = &consumer_error {
        report.say(format!("first consumer error: {e}"));
        report.set("first_error", e.as_str());
    } else if let Some(e) = &producer_error {
        report.set("first_error", e.as_str());
    }
    report.set("sent", sent);
    report.set("send_seconds", round3(send_s));
    report.set("received_distinct", unique);
    report.set("received_frames", received);
    report.set("window_s", round3(window_s));
    report.set("messages_per_s", round3(rate));
    report.set("latency_p50_ms", hist::ms(&latency, 0.5));
    report.set("latency_p99_ms", hist::ms(&latency, 0.99));
    report.set("latency_p999_ms", hist::ms(&latency, 0.999));
    report.set("latency_max_ms", latency.max() as f64 / 1000.0);
    report.set("lost", lost);
    report.set("duplicates", duplicates);
    report.set("redelivered", redelivered);
    report.set("malformed", malformed);
    report.set("acks", acks);
    report.set("closed_early", closed_early);
    report.set("error_frames", error_frames);
    let timed_out = Instant::now() > deadline;
    if timed_out {
        report.say(format!("stopped by --duration {} s", common.duration));
    }
    report.set("timed_out", timed_out);
    Ok(lost == 0
        && duplicates == 0
        && malformed == 0
        && sent == args.messages
        && producer_error.is_none()
        && closed_early == 0
        && error_frames == 0
        && !timed_out)
}

/// Sends `count` messages with sequence numbers from `first_seq`, each stamped with its send
/// time, at `rate` per second (token bucket, at most `--batch` per write) or, at 0, as fast as
/// the socket takes them, asking for `receipts` and waiting for them all; then DISCONNECTs with
/// a receipt.
async fn produce(
    mut conn: Conn,
    args: QueueArgs,
    receipts: Option<ReceiptPlan>,
    first_seq: u64,
    count: u64,
    rate: f64,
    deadline: Instant,
) -> Sent {
    let plan = Plan {
        destination: &args.destination,
        size: args.size as usize,
        count,
        rate,
        batch: args.batch,
        first_seq: Some(first_seq),
        headers: &args.headers,
        receipts,
    };
    let mut out = send_paced(&mut conn, &plan, deadline).await;
    if out.error.is_none() {
        let receipt = tokio::time::timeout_at(
            deadline.min(Instant::now() + SETUP_TIMEOUT).into(),
            conn.disconnect(),
        )
        .await;
        match receipt {
            Ok(Ok(())) => {}
            Ok(Err(e)) => out.error = Some(e),
            Err(_) => out.error = Some("no RECEIPT for DISCONNECT in time".to_owned()),
        }
    }
    conn.close().await;
    out
}

/// Reads MESSAGE frames until stopped (or the broker closes), records latency, marks sequence
/// numbers, and ACKs per `ack` mode: every message (client-individual), cumulatively every
/// `ack_every` and once more at the end (client), or not at all (auto). ACKs for the frames of
/// one read are written together.
async fn consume(
    mut conn: Conn,
    ack: AckMode,
    ack_every: u64,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    deadline: Instant,
) -> Consumed {
    let mut out = Consumed {
        received: 0,
        first_ns: 0,
        last_ns: 0,
        latency: hist::new(),
        acks: 0,
        error_frames: 0,
        closed_early: false,
        error: None,
    };
    // In client mode: the last unacknowledged ack id and how many messages it covers.
    let mut pending: Option<String> = None;
    let mut unacked = 0u64;
    let stopped = loop {
        let mut fed = false;
        loop {
            let frame = match conn.buffered_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    out.error = Some(e);
                    out.closed_early = true;
                    break;
                }
            };
            match frame.command {
                Command::Message => {
                    let now = stamp::now_ns();
                    out.received += 1;
                    if out.first_ns == 0 {
                        out.first_ns = now;
                    }
                    out.last_ns = now;
                    if frame.headers.get("redelivered") == Some("true") {
                        shared.redelivered.fetch_add(1, Ordering::Relaxed);
                    }
                    let body = &frame.body;
                    match (
                        stamp::read(body),
                        body.get(stamp::LEN..).and_then(stamp::read),
                    ) {
                        (Some(sent), Some(seq)) if seq < shared.messages => {
                            out.latency
                                .saturating_record(now.saturating_sub(sent) / 1000);
                            shared.mark(seq);
                        }
                        _ => {
                            shared.malformed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    let id = frame.headers.get("ack");
                    match (ack, id) {
                        (AckMode::Auto, _) => {}
                        (AckMode::ClientIndividual, Some(id)) => {
                            if let Err(e) = conn.feed(ack_frame(id)).await {
                                out.error = Some(format!("ACK: {e}"));
                            }
                            out.acks += 1;
                            fed = true;
                        }
                        (AckMode::Client, Some(id)) => {
                            unacked += 1;
                            if unacked >= ack_every {
                                if let Err(e) = conn.feed(ack_frame(id)).await {
                                    out.error = Some(format!("ACK: {e}"));
                                }
                                out.acks += 1;
                                fed = true;
                                unacked = 0;
                                pending = None;
                            } else {
                                pending = Some(id.to_owned());
                            }
                        }
                        (_, None) => {
                            out.error
                                .get_or_insert_with(|| "MESSAGE without an ack header".to_owned());
                        }
                    }
                }
                Command::Error => {
                    out.error_frames += 1;
                    let message = frame.headers.get("message").unwrap_or("(no message)");
                    out.error.get_or_insert(format!("ERROR frame: {message}"));
                    out.closed_early = true;
                    break;
                }
                _ => {}
            }
        }
        if fed && let Err(e) = conn.flush().await {
            out.error.get_or_insert(format!("ACK: {e}"));
            out.closed_early = true;
        }
        if out.closed_early {
            break false;
        }
        // Client mode: ACK the rest once nothing more is in the socket right now, so a
        // consumer never sits on unacknowledged messages while idle (and at the very end).
        tokio::select! {
            biased;
            _ = stop.changed() => break true,
            () = tokio::time::sleep_until(deadline.into()) => break true,
            read = conn.read_more() => match read {
                Ok(true) => {}
                Ok(false) => {
                    out.closed_early = true;
                    out.error.get_or_insert("closed by the broker".to_owned());
                    break false;
                }
                Err(e) => {
                    out.closed_early = true;
                    out.error.get_or_insert(e);
                    break false;
                }
            },
            () = tokio::time::sleep(Duration::from_millis(5)), if pending.is_some() => {
                if let Some(id) = pending.take() {
                    if conn.send(ack_frame(&id)).await.is_ok() {
                        out.acks += 1;
                    }
                    unacked = 0;
                }
            }
        }
    };
    if stopped {
        if let Some(id) = pending.take()
            && conn.send(ack_frame(&id)).await.is_ok()
        {
            out.acks += 1;
        }
        // The receipt proves the broker has taken every ACK before the connection goes.
        let _ = tokio::time::timeout(STOP_GRACE, conn.disconnect()).await;
    }
    conn.close().await;
    out
}

fn ack_frame(id: &str) -> bytes::Bytes {
    encode_to_bytes(&Frame::new(Command::Ack).header("id", id), Version::V1_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_count_once_and_duplicates_apart() {
        let shared = Shared::new(130);
        assert!(shared.mark(0));
        assert!(shared.mark(129));
        assert!(!shared.mark(0));
        assert_eq!(shared.unique.load(Ordering::Relaxed), 2);
        assert_eq!(shared.duplicates.load(Ordering::Relaxed), 1);
        for seq in 1..129 {
            assert!(shared.mark(seq));
        }
        assert_eq!(shared.unique.load(Ordering::Relaxed), 130);
    }
}
