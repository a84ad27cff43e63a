//! Scenario `fanout`: S subscribers (in the workers), one publisher (here) sending M messages
//! at a bounded rate; reports deliveries/s, end-to-end latency and lost messages.

use std::time::{Duration, Instant};

use crate::aggregate;
use crate::cli::{Common, FanoutArgs, WorkerArgs, check_share, split};
use crate::conn::Conn;
use crate::hist;
use crate::pool::Pool;
use crate::procfs;
use crate::produce::{Plan, Sent, send_paced};
use crate::report::{self, Report, round3};
use crate::target::Endpoint;
use crate::wire::{Finished, Ready};

const MIB: f64 = 1024.0 * 1024.0;
/// Bound on the publisher's CONNECT and on its final DISCONNECT receipt.
const PUBLISHER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time the workers get to close their connections and report once stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
struct Published {
    publisher: Sent,
    /// From the first send until the RECEIPT for the DISCONNECT that followed the last.
    receipt_seconds: Option<f64>,
}

/// Runs the scenario; `Ok(true)` when every subscriber got every message.
pub async fn run(common: &Common, args: &FanoutArgs, report: &mut Report) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(common.duration);
    check_share(args.subscribers, common.workers)?;
    let endpoint = Endpoint::resolve(common).await?;
    let shares: Vec<WorkerArgs> = split(args.subscribers, common.workers as usize)
        .into_iter()
        .map(|(first_index, connections)| WorkerArgs {
            connections,
            first_index,
            destination: args.destination.clone(),
            messages: args.messages,
        })
        .collect();
    report.say(format!(
        "herald-load fanout: {} subscriber(s) over {} worker(s), 1 publisher, {} message(s) of {} B at {}, {} {}",
        args.subscribers,
        shares.len(),
        args.messages,
        args.size,
        match args.rate {
            0 => "full speed".to_owned(),
            r => format!("{r} msgs/s"),
        },
        common.url,
        args.destination
    ));
    report.set("scenario", "fanout");
    report.set("url", common.url.as_str());
    report.set("subscribers_requested", args.subscribers);
    report.set("workers", shares.len());
    report.set("messages", args.messages);
    report.set("size_bytes", args.size);
    report.set("rate", args.rate);

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

    let machine_before = procfs::MachineCpu::now().ok();
    let broker_before = match args.broker_pid {
        Some(pid) => Some((procfs::cpu_seconds(pid)?, procfs::rss(pid)?)),
        None => None,
    };
    let published = match tokio::time::timeout_at(
        deadline.min(Instant::now() + PUBLISHER_TIMEOUT).into(),
        Conn::open(&endpoint, args.subscribers),
    )
    .await
    {
        Ok(Ok(mut publisher)) => {
            let publish_started = Instant::now();
            let mut published = publish(&mut publisher, args, deadline).await;
            let receipt = tokio::time::timeout_at(
                deadline.min(Instant::now() + PUBLISHER_TIMEOUT).into(),
                publisher.disconnect(),
            )
            .await;
            match receipt {
                Ok(Ok(())) => {
                    published.receipt_seconds = Some(publish_started.elapsed().as_secs_f64());
                }
                Ok(Err(e)) => {
                    published.publisher.error.get_or_insert(e);
                }
                Err(_) => {
                    published
                        .publisher
                        .error
                        .get_or_insert("no RECEIPT for DISCONNECT in time".to_owned());
                }
            }
            publisher.close().await;
            published
        }
        Ok(Err(e)) => Published::failed(format!("publisher: {e}")),
        Err(_) => Published::failed("publisher: CONNECT timed out".to_owned()),
    };
    let publish_rate = published.publisher.sent as f64 / published.publisher.seconds.max(1e-9);
    report.say(format!(
        "published: {} message(s) in {:.3} s = {:.1} msgs/s{}",
        published.publisher.sent,
        published.publisher.seconds,
        publish_rate,
        match &published.publisher.error {
            Some(e) => format!(" (publisher: {e})"),
            None => String::new(),
        }
    ));
    if let Some(receipt) = published.receipt_seconds {
        report.say(format!(
            "broker took all SENDs: RECEIPT for the closing DISCONNECT after {receipt:.3} s"
        ));
        report.set("publish_receipt_seconds", round3(receipt));
    }
    report.set("published", published.publisher.sent);
    report.set("publish_seconds", round3(published.publisher.seconds));
    report.set("publish_rate_per_s", round3(publish_rate));

    // Drain: wait for the workers to report (each does once its subscribers have everything),
    // then stop the rest.
    let drain_deadline = (Instant::now() + Duration::from_secs(args.drain)).min(deadline);
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
    let broker_after = match args.broker_pid {
        Some(pid) => Some((procfs::cpu_seconds(pid)?, procfs::rss(pid)?)),
        None => None,
    };
    pool.reap(Duration::from_secs(3)).await;
    let finished = aggregate::finished(&lines);

    let expected = ready.ok as u64 * published.publisher.sent;
    let lost = expected.saturating_sub(finished.received);
    let window_s = finished
        .last_ns
        .saturating_sub(published.publisher.first_ns) as f64
        / 1e9;
    let deliveries_rate = finished.received as f64 / window_s.max(1e-9);
    report.say(format!(
        "deliveries: {} of {} expected ({} subscribers x {} published) in {window_s:.3} s",
        finished.received, expected, ready.ok, published.publisher.sent
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
    Ok(lost == 0
        && published.publisher.error.is_none()
        && published.publisher.sent == args.messages
        && ready.failed == 0
        && finished.closed_early == 0
        && !timed_out)
}

/// Sends `args.messages` SEND frames, each stamped with its send time, at `args.rate` per
/// second (token bucket, at most `args.batch` per write) or as fast as possible in batches.
async fn publish(conn: &mut Conn, args: &FanoutArgs, deadline: Instant) -> Published {
    let plan = Plan {
        destination: &args.destination,
        size: args.size as usize,
        count: args.messages,
        rate: args.rate as f64,
        batch: args.batch,
        first_seq: None,
    };
    Published {
        publisher: send_paced(conn, &plan, deadline).await,
        receipt_seconds: None,
    }
}

impl Published {
    fn failed(error: String) -> Published {
        Published {
            publisher: Sent {
                error: Some(error),
                ..Sent::default()
            },
            receipt_seconds: None,
        }
    }
}
