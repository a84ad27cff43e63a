//! Scenario `fanout`: S subscribers (in the workers) on one topic, one publisher (here)
//! sending M messages at a bounded rate; reports deliveries/s, end-to-end latency and lost
//! messages.

use std::time::Duration;

use crate::cli::{Common, FanoutArgs};
use crate::report::{self, Report};
use crate::topic_run::{self, TopicRun};

/// Runs the scenario; `Ok(true)` when every subscriber got every message.
pub async fn run(common: &Common, args: &FanoutArgs, report: &mut Report) -> Result<bool, String> {
    report.say(format!(
        "herald-load fanout: {} subscriber(s) over {} worker(s), 1 publisher, {} message(s) of {} B at {}, {} {}",
        args.subscribers,
        common.workers,
        args.messages,
        args.size,
        report::pace(args.rate),
        common.url,
        args.destination
    ));
    report.set("scenario", "fanout");
    let run = TopicRun {
        subscribers: args.subscribers,
        subscriber_destination: args.destination.clone(),
        publishers: 1,
        publisher_destination: args.destination.clone(),
        messages: args.messages,
        rate: args.rate as f64,
        size: args.size,
        batch: args.batch,
        drain: Duration::from_secs(args.drain),
        broker_pid: args.broker_pid,
        rounds: false,
    };
    Ok(topic_run::execute(common, &run, report).await?.clean)
}
