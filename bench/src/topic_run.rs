//! What the topic scenarios (`fanout`, `broadcast`, `pubsub`) share: subscribers in the
//! worker processes, publishers here, each sending a paced run of stamped messages; then the
//! drain, the workers' reports summed, and the common figures (deliveries/s, latency, losses,
//! CPU of broker and tool).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aggregate::{self, FinishedTotals};
use crate::cli::{self, Common};
use crate::conn::Conn;
use crate::hist;
use crate::pool::Pool;
use crate::procfs;
use crate::produce::{Plan, Sent, send_paced};
use crate::report::{self, MIB, Report, round3};
use crate::target::Endpoint;
use crate::watched::Watched;
use crate::wire::{Finished, Ready};
use crate::worker::{INDEX_PLACEHOLDER, destination_of};

/// Bound on a publisher's CONNECT and on its final DISCONNECT receipt.
const PUBLISHER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the workers get to close their connections and report once stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// One topic run.
#[derive(Debug, Clone)]
pub struct TopicRun {
    /// Subscriber connections, spread over the workers.
    pub subscribers: usize,
    /// Subscriber `i` subscribes to this with `{i}` replaced by `i`.
    pub subscriber_destination: String,
    /// Publishers; publisher `p` sends to this with `{i}` replaced by `p`.
    pub publishers: u64,
    pub publisher_destination: String,
    /// Messages each publisher sends; each subscriber expects this many.
    pub messages: u64,
    /// Messages per second over all publishers; 0 = as fast as possible.
    pub rate: f64,
    pub size: u64,
    /// SEND frames per write.
    pub batch: u64,
    pub drain: Duration,
    pub broker_pid: Option<u32>,
    /// Whether workers report each message number's latest arrival.
    pub rounds: bool,
}

/// What a run measured, for the scenario's own lines.
#[derive(Debug)]
pub struct Outcome {
    /// Subscribers that subscribed.
    pub subscribed: usize,
    pub finished: FinishedTotals,
    /// MESSAGE frames received per second, first send to last receive.
    pub deliveries_per_s: f64,
    /// Every subscriber subscribed and got everything, no publisher failed, in time.
    pub clean: bool,
}

/// Runs `run` and reports the common figures; `Err` when nothing could be measured.
pub async fn execute(
    common: &Common,
    run: &TopicRun,
    report: &mut Report,
) -> Result<Outcome, String> {
    let deadline = Instant::now() + Duration::from_secs(common.duration);
    let shares = cli::shares(
        run.subscribers,
        common.workers,
        &run.subscriber_destination,
        run.messages,
        run.rounds,
    )?;
    let endpoint = Arc::new(Endpoint::resolve(common).await?);
    report::target(report, common);
    report.set("subscribers_requested", run.subscribers);
    report.set("workers", shares.len());
    report.set("publishers", run.publishers);
    report.set("messages", run.messages);
    report.set("size_bytes", run.size);
    report.set("rate", run.rate);

    let started = Instant::now();
    let mut pool = Pool::spawn(common, &shares)?;
    let ready = aggregate::ready(&pool.collect(Ready::KIND, deadline).await);
    let subscribed_in = started.elapsed().as_secs_f64();
    report.say(format!(
        "subscribers: {} subscribed, {} failed, in {subscribed_in:.3} s",
        ready.ok, ready.failed
    ));
    report.set("subscribers_subscribed", ready.ok);
    report.set("subscribers_failed", ready.failed);
    if let Some(e) = &ready.first_error {
        report.say(format!("first subscriber error: {e}"));
    }
    if ready.ok == 0 {
        pool.stop_all().await;
        pool.reap(STOP_GRACE).await;
        return Err("no subscriber subscribed".to_owned());
    }

    if common.publish_after_ms > 0 {
        tokio::time::sleep(Duration::from_millis(common.publish_after_ms)).await;
    }
    let machine_before = procfs::MachineCpu::now().ok();
    let watched = Watched::start(&common.cpu_pids)?;
    let broker_before = match run.broker_pid {
        Some(pid) => Some((procfs::cpu_seconds(pid)?, procfs::rss(pid)?)),
        None => None,
    };
    let published = publish_all(&endpoint, run, deadline).await;
    let publish_rate = published.sent as f64 / published.seconds.max(1e-9);
    report.say(format!(
        "published: {} message(s) from {} publisher(s) in {:.3} s = {:.1} msgs/s \
         (first send to the broker's RECEIPT for each publisher's closing DISCONNECT){}",
        published.sent,
        run.publishers,
        published.seconds,
        publish_rate,
        match &published.error {
            Some(e) => format!(" (publisher: {e})"),
            None => String::new(),
        }
    ));
    report.set("published", published.sent);
    report.set("publish_seconds", round3(published.seconds));
    report.set("publish_rate_per_s", round3(publish_rate));

    // Drain: wait for the workers to report (each does once its subscribers have everything),
    // then stop the rest.
    let drain_deadline = (Instant::now() + run.drain).min(deadline);
    let mut lines = pool.collect(Finished::KIND, drain_deadline).await;
    if lines.iter().any(Option::is_none) {
        pool.stop_all().await;
        let stop_deadline = Instant::now() + STOP_GRACE;
        for (slot, line) in lines
            .iter_mut()
            .zip(pool.collect(Finished::KIND, stop_deadline).await)
        {
            if slot.is_none() {
                *slot = line;
            }
        }
    }
    let machine_after = procfs::MachineCpu::now().ok();
    let spent = watched.stop();
    let broker_after = match run.broker_pid {
        Some(pid) => Some((procfs::cpu_seconds(pid)?, procfs::rss(pid)?)),
        None => None,
    };
    pool.reap(Duration::from_secs(3)).await;
    let finished = aggregate::finished(&lines);

    // Each publisher's messages go to the subscribers of its destination: all of them when
    // every destination is the same, one each when they are numbered.
    let subscribers_per_publisher = if run.subscriber_destination.contains(INDEX_PLACEHOLDER) {
        1
    } else {
        ready.ok as u64
    };
    let expected = published.sent * subscribers_per_publisher;
    let lost = expected.saturating_sub(finished.received);
    let window_s = finished.last_ns.saturating_sub(published.first_ns) as f64 / 1e9;
    let deliveries_rate = finished.received as f64 / window_s.max(1e-9);
    report.say(format!(
        "deliveries: {} of {expected} expected in {window_s:.3} s",
        finished.received
    ));
    report.say(format!(
        "deliveries/s: {deliveries_rate:.1} (MESSAGE frames received / first send to last receive)"
    ));
    report.say(format!("latency: {}", hist::summary(&finished.latency)));
    report.say(format!(
        "lost: {lost}; subscribers complete: {}, closed early: {}, ERROR frames: {}{}",
        finished.complete,
        finished.closed_early,
        finished.error_frames,
        if finished.missing > 0 {
            format!(", {} worker(s) did not report", finished.missing)
        } else {
            String::new()
        }
    ));
    if let (Some((cpu0, rss0)), Some((cpu1, rss1))) = (broker_before, broker_after) {
        let cpu = cpu1 - cpu0;
        report.say(format!(
            "broker CPU: {cpu:.2} s from first send to drained ({:.0}% of one core); \
             RSS {:.1} MiB before, {:.1} MiB after",
            100.0 * cpu / window_s.max(1e-9),
            rss0 as f64 / MIB,
            rss1 as f64 / MIB
        ));
        report.set("broker_cpu_seconds", round3(cpu));
        report.set("broker_rss_before_bytes", rss0);
        report.set("broker_rss_after_bytes", rss1);
    }
    spent.report(report, window_s, "first send to drained");
    if let (Some(before), Some(after)) = (machine_before, machine_after) {
        report::machine_cpu(
            report,
            before.busy_share_until(after),
            "first send to drained",
        );
    }
    report::own_cpu(report);
    if let Some(e) = &finished.first_error {
        report.say(format!("first subscriber error: {e}"));
        report.set("first_error", e.as_str());
    }
    report.set("expected_deliveries", expected);
    report.set("deliveries", finished.received);
    report.set("delivery_window_s", round3(window_s));
    report.set("deliveries_per_s", round3(deliveries_rate));
    report.set("latency_p50_ms", hist::ms(&finished.latency, 0.5));
    report.set("latency_p99_ms", hist::ms(&finished.latency, 0.99));
    report.set("latency_p999_ms", hist::ms(&finished.latency, 0.999));
    report.set("latency_max_ms", finished.latency.max() as f64 / 1000.0);
    report.set("lost", lost);
    report.set("subscribers_complete", finished.complete);
    report.set("closed_early", finished.closed_early);
    report.set("error_frames", finished.error_frames);
    let timed_out = Instant::now() > deadline;
    if timed_out {
        report.say(format!("stopped by --duration {} s", common.duration));
    }
    report.set("timed_out", timed_out);
    let clean = lost == 0
        && published.error.is_none()
        && published.sent == run.messages * run.publishers
        && ready.failed == 0
        && finished.closed_early == 0
        && !timed_out;
    Ok(Outcome {
        subscribed: ready.ok,
        finished,
        deliveries_per_s: deliveries_rate,
        clean,
    })
}

/// What all publishers sent together.
#[derive(Debug, Default)]
struct Published {
    sent: u64,
    /// Earliest first send (ns since the Unix epoch).
    first_ns: u64,
    /// From the first send until the last publisher's DISCONNECT receipt.
    seconds: f64,
    error: Option<String>,
}

/// Connects every publisher, then lets them all send at once, each at its share of the rate;
/// each ends with DISCONNECT and waits for its RECEIPT (so the broker took every SEND).
async fn publish_all(endpoint: &Arc<Endpoint>, run: &TopicRun, deadline: Instant) -> Published {
    let connect_deadline = deadline.min(Instant::now() + PUBLISHER_TIMEOUT);
    let mut connecting = tokio::task::JoinSet::new();
    for p in 0..run.publishers {
        let endpoint = Arc::clone(endpoint);
        // Publisher connections take indices after the subscribers' (source addresses).
        let index = run.subscribers + p as usize;
        connecting.spawn(async move {
            let conn =
                tokio::time::timeout_at(connect_deadline.into(), Conn::open(&endpoint, index))
                    .await
                    .unwrap_or_else(|_| Err("CONNECT timed out".to_owned()));
            (p, conn)
        });
    }
    let mut conns = Vec::new();
    let mut out = Published::default();
    while let Some(joined) = connecting.join_next().await {
        match joined {
            Ok((p, Ok(conn))) => conns.push((p, conn)),
            Ok((_, Err(e))) => {
                out.error.get_or_insert(format!("publisher: {e}"));
            }
            Err(e) => {
                out.error.get_or_insert(format!("publisher task: {e}"));
            }
        }
    }
    let rate = run.rate / run.publishers as f64;
    let started = Instant::now();
    let mut sending = tokio::task::JoinSet::new();
    for (p, mut conn) in conns {
        let destination = destination_of(&run.publisher_destination, p);
        let (messages, size, batch) = (run.messages, run.size as usize, run.batch);
        sending.spawn(async move {
            let plan = Plan {
                destination: &destination,
                size,
                count: messages,
                rate,
                batch,
                first_seq: None,
                headers: &[],
                receipts: None,
            };
            let mut sent = send_paced(&mut conn, &plan, deadline).await;
            let receipt_deadline = deadline.min(Instant::now() + PUBLISHER_TIMEOUT);
            match tokio::time::timeout_at(receipt_deadline.into(), conn.disconnect()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    sent.error.get_or_insert(e);
                }
                Err(_) => {
                    sent.error
                        .get_or_insert("no RECEIPT for DISCONNECT in time".to_owned());
                }
            }
            conn.close().await;
            sent
        });
    }
    while let Some(joined) = sending.join_next().await {
        match joined {
            Ok(sent) => add(&mut out, sent),
            Err(e) => {
                out.error.get_or_insert(format!("publisher task: {e}"));
            }
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    out
}

fn add(total: &mut Published, sent: Sent) {
    total.sent += sent.sent;
    if sent.sent > 0 && (total.first_ns == 0 || sent.first_ns < total.first_ns) {
        total.first_ns = sent.first_ns;
    }
    if let Some(e) = sent.error {
        total.error.get_or_insert(e);
    }
}
