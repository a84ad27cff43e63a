//! Scenario `pubsub`: P independent pairs, each a publisher (here) and a subscriber (in the
//! workers) on a topic of their own; reports messages/s over all pairs, latency and losses.

use std::time::Duration;

use crate::cli::{Common, PubsubArgs};
use crate::report::{self, Report, round3};
use crate::topic_run::{self, TopicRun};
use crate::worker::INDEX_PLACEHOLDER;

/// Runs the scenario; `Ok(true)` when every subscriber got all of its publisher's messages.
pub async fn run(common: &Common, args: &PubsubArgs, report: &mut Report) -> Result<bool, String> {
    if !args.destination.contains(INDEX_PLACEHOLDER) {
        return Err(format!(
            "--destination {} must contain {INDEX_PLACEHOLDER}: each pair needs a topic of its own",
            args.destination
        ));
    }
    report.say(format!(
        "herald-load pubsub: {} pair(s), subscribers over {} worker(s), {} message(s) of {} B per publisher at {} over all pairs, {} {}",
        args.pairs,
        common.workers,
        args.messages,
        args.size,
        report::pace(args.rate),
        common.url,
        args.destination
    ));
    report.set("scenario", "pubsub");
    let run = TopicRun {
        subscribers: args.pairs as usize,
        subscriber_destination: args.destination.clone(),
        publishers: args.pairs,
        publisher_destination: args.destination.clone(),
        messages: args.messages,
        rate: args.rate as f64,
        size: args.size,
        batch: args.batch,
        drain: Duration::from_secs(args.drain),
        broker_pid: args.broker_pid,
        rounds: false,
    };
    let outcome = topic_run::execute(common, &run, report).await?;
    // One subscriber per message: each delivery is one message through the broker.
    report.say(format!(
        "messages/s: {:.1} over all pairs",
        outcome.deliveries_per_s
    ));
    report.set("messages_per_s", round3(outcome.deliveries_per_s));
    Ok(outcome.clean)
}
