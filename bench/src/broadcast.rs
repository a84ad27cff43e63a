//! Scenario `broadcast`: N subscribers (in the workers) on one topic; one publisher (here)
//! sends one message per round; each round's figure is the time from its send until the last
//! subscriber has it. Reports the median and the worst over the rounds.

use std::time::Duration;

use crate::cli::{BroadcastArgs, Common};
use crate::report::{Report, round3};
use crate::topic_run::{self, TopicRun};

/// Runs the scenario; `Ok(true)` when every subscriber got every round's message.
pub async fn run(
    common: &Common,
    args: &BroadcastArgs,
    report: &mut Report,
) -> Result<bool, String> {
    report.say(format!(
        "herald-load broadcast: {} subscriber(s) over {} worker(s), {} round(s) {} ms apart, {} B, {} {}",
        args.subscribers,
        common.workers,
        args.rounds,
        args.interval_ms,
        args.size,
        common.url,
        args.destination
    ));
    report.set("scenario", "broadcast");
    report.set("rounds", args.rounds);
    report.set("interval_ms", args.interval_ms);
    let run = TopicRun {
        subscribers: args.subscribers,
        subscriber_destination: args.destination.clone(),
        publishers: 1,
        publisher_destination: args.destination.clone(),
        messages: args.rounds,
        rate: 1000.0 / args.interval_ms as f64,
        size: args.size,
        batch: 1,
        drain: Duration::from_secs(args.drain),
        broker_pid: args.broker_pid,
        rounds: true,
    };
    let outcome = topic_run::execute(common, &run, report).await?;
    let last = &outcome.finished.rounds;
    let listed: Vec<String> = last
        .iter()
        .map(|&us| format!("{:.1}", us as f64 / 1000.0))
        .collect();
    report.say(format!(
        "last subscriber has the message, per round (ms): {}",
        listed.join(" ")
    ));
    match median_and_max(last) {
        Some((median, max)) => {
            report.say(format!(
                "last of {} subscribers: p50 over {} rounds {:.3} ms, max {:.3} ms{}",
                outcome.subscribed,
                last.len(),
                median as f64 / 1000.0,
                max as f64 / 1000.0,
                if outcome.clean {
                    ""
                } else {
                    " (the run was not clean: see the lines above)"
                }
            ));
            report.set("last_arrival_p50_ms", round3(median as f64 / 1000.0));
            report.set("last_arrival_max_ms", round3(max as f64 / 1000.0));
        }
        None => report.say("no round reached any subscriber"),
    }
    Ok(outcome.clean)
}

/// The median (lower middle for an even count) and the maximum of `values`.
fn median_and_max(values: &[u64]) -> Option<(u64, u64)> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let median = *sorted.get((sorted.len().saturating_sub(1)) / 2)?;
    Some((median, *sorted.last()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_lower_middle_and_max_the_largest() {
        assert_eq!(median_and_max(&[]), None);
        assert_eq!(median_and_max(&[7]), Some((7, 7)));
        assert_eq!(median_and_max(&[40, 10, 30, 20]), Some((20, 40)));
        assert_eq!(median_and_max(&[5, 1, 9]), Some((5, 9)));
    }
}
