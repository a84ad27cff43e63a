//! Scenario `conns`: N connections CONNECT and SUBSCRIBE (with a receipt); reports the connect
//! rate, the time until all are subscribed and, given the broker's PID, its RSS per connection.

use std::time::{Duration, Instant};

use crate::aggregate;
use crate::cli::{self, Common, ConnsArgs};
use crate::hist;
use crate::pool::Pool;
use crate::procfs;
use crate::report::{self, MIB, Report, round3};
use crate::target::Url;
use crate::wire::{Finished, Ready};

/// Time the workers get to close their connections and report once stopped.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs the scenario; `Ok(true)` when every connection subscribed and the run completed.
pub async fn run(common: &Common, args: &ConnsArgs, report: &mut Report) -> Result<bool, String> {
    let started_run = Instant::now();
    let deadline = started_run + Duration::from_secs(common.duration);
    Url::parse(&common.url)?;
    for url in &common.sub_urls {
        Url::parse(url)?;
    }
    common.refuse_unread_flags("conns")?;
    let shares = cli::shares(
        args.connections,
        common.workers,
        &args.destination,
        0,
        false,
    )?;
    report.say(format!(
        "herald-load conns: {} connection(s) to {}, {} worker(s), destination {}",
        args.connections,
        common.url,
        shares.len(),
        args.destination
    ));
    report.set("scenario", "conns");
    report::target(report, common);
    report.set("connections_requested", args.connections);
    report.set("workers", shares.len());

    let rss_before = match args.broker_pid {
        Some(pid) => Some(procfs::rss(pid)?),
        None => None,
    };
    if let Some(rss) = rss_before {
        report.say(format!("broker RSS before: {:.1} MiB", rss as f64 / MIB));
        report.set("broker_rss_before_bytes", rss);
    }

    let machine_before = procfs::MachineCpu::now().ok();
    let started = Instant::now();
    let mut pool = Pool::spawn(common, &shares)?;
    let ready = aggregate::ready(&pool.collect(Ready::KIND, deadline).await);
    let elapsed = started.elapsed().as_secs_f64();
    let machine_after = procfs::MachineCpu::now().ok();
    let rate = ready.ok as f64 / elapsed.max(1e-9);
    report.say(format!(
        "connections: {} subscribed, {} failed{}",
        ready.ok,
        ready.failed,
        if ready.missing > 0 {
            format!(", {} worker(s) did not report", ready.missing)
        } else {
            String::new()
        }
    ));
    report.say(format!("time to all subscribed: {elapsed:.3} s"));
    report.say(format!("connect rate: {rate:.1} conns/s"));
    report.say(format!(
        "setup per connection (connect to RECEIPT, {} in flight per worker): {}",
        common.concurrency,
        hist::summary(&ready.setup)
    ));
    if let (Some(before), Some(after)) = (machine_before, machine_after) {
        report::machine_cpu(
            report,
            before.busy_share_until(after),
            "start to all subscribed",
        );
    }
    if let Some(e) = &ready.first_error {
        report.say(format!("first error: {e}"));
        report.set("first_error", e.as_str());
    }
    report.set("connections_subscribed", ready.ok);
    report.set("connections_failed", ready.failed);
    report.set("time_to_all_subscribed_s", round3(elapsed));
    report.set("connect_rate_per_s", round3(rate));
    report.set("setup_p50_ms", hist::ms(&ready.setup, 0.5));
    report.set("setup_p99_ms", hist::ms(&ready.setup, 0.99));

    if let (Some(pid), Some(before)) = (args.broker_pid, rss_before) {
        sleep_bounded(Duration::from_secs(args.settle), deadline).await;
        let after = procfs::rss(pid)?;
        let delta = after as i64 - before as i64;
        let per_conn = delta as f64 / ready.ok.max(1) as f64;
        report.say(format!("broker RSS after: {:.1} MiB", after as f64 / MIB));
        report.say(format!(
            "broker RSS delta: {:.1} MiB for {} connections = {:.0} bytes/connection",
            delta as f64 / MIB,
            ready.ok,
            per_conn
        ));
        report.set("broker_rss_after_bytes", after);
        report.set("broker_rss_delta_bytes", delta);
        report.set("broker_bytes_per_connection", per_conn.round());
    }

    if args.hold > 0 {
        report.say(format!("holding for {} s", args.hold));
        sleep_bounded(Duration::from_secs(args.hold), deadline).await;
    }
    pool.stop_all().await;
    let stop_deadline = (Instant::now() + STOP_GRACE).min(deadline + STOP_GRACE);
    let finished = aggregate::finished(&pool.collect(Finished::KIND, stop_deadline).await);
    pool.reap(Duration::from_secs(3)).await;
    report.say(format!(
        "closed: {} connection(s) ended early while held{}",
        finished.closed_early,
        match &finished.first_error {
            Some(e) => format!(" (first: {e})"),
            None => String::new(),
        }
    ));
    report.set("closed_early", finished.closed_early);
    report::own_cpu(report);
    let timed_out = Instant::now() > deadline;
    if timed_out {
        report.say(format!("stopped by --duration {} s", common.duration));
    }
    report.set("timed_out", timed_out);
    Ok(ready.failed == 0
        && ready.missing == 0
        && ready.ok == args.connections
        && finished.closed_early == 0
        && !timed_out)
}

async fn sleep_bounded(wait: Duration, deadline: Instant) {
    tokio::time::sleep_until((Instant::now() + wait).min(deadline).into()).await;
}
