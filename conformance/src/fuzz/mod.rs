//! `herald-conformance fuzz`: a session-level fuzzer against a live broker over TCP and
//! WebSocket.
//!
//! Each iteration starts zero to two well-behaved subscribers on shared destinations and one
//! to `--conns` fuzzing connections that write generated and mutated frames (split at random
//! points), concurrently. Oracles: the broker process stays alive and logs no panic; every
//! byte it sends parses as STOMP that a strict client reads the same way (no NUL or invalid
//! UTF-8 in a header block, ERROR last); subscribers get only their own MESSAGEs, carrying
//! the body and headers the publisher sent; a fresh connection's CONNECT and SEND/RECEIPT
//! round trip succeeds within a bound every `--probe-every` iterations; resident memory stays
//! under `--max-rss-mb` and stops growing. A failing iteration is saved under `--out`.

mod drive;
mod frames;
mod mutate;
mod oracle;
mod plan;
mod rng;
mod save;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::wire::Target;
use plan::Plan;

/// Options of `herald-conformance fuzz`.
#[derive(Debug, Clone, Args)]
pub struct FuzzOptions {
    /// Broker address, `tcp://HOST:PORT` or `ws://HOST:PORT/PATH`; with several, iterations
    /// take them in turn.
    #[arg(long = "url", value_name = "URL", required = true)]
    pub urls: Vec<String>,
    /// The broker's process id: it must stay alive, and its VmRSS is sampled.
    #[arg(long)]
    pub pid: Option<u32>,
    /// The broker's log file: a new line with `panicked` is a failure.
    #[arg(long, value_name = "FILE")]
    pub broker_log: Option<PathBuf>,
    /// Seed of the run (printed; default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this long: `90s`, `30m`, `1h`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many iterations.
    #[arg(long)]
    pub iterations: Option<u64>,
    /// The first iteration's number (with `--seed`, regenerates a saved iteration).
    #[arg(long, default_value_t = 0)]
    pub start_iteration: u64,
    /// Most fuzzing connections per iteration.
    #[arg(long, default_value_t = 3)]
    pub conns: usize,
    /// Directories whose files are added to the mutation seeds.
    #[arg(long = "corpus", value_name = "DIR")]
    pub corpus: Vec<PathBuf>,
    /// Where failing iterations are saved.
    #[arg(long, value_name = "DIR", default_value = "fuzz-failures")]
    pub out: PathBuf,
    /// Most failures saved (a failure like one already saved is counted, not saved).
    #[arg(long, default_value_t = 20)]
    pub max_saves: usize,
    /// Run the liveness probe (and sample memory) every this many iterations.
    #[arg(long, default_value_t = 10)]
    pub probe_every: u64,
    /// Longest the liveness probe's round trip may take, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub probe_timeout_ms: u64,
    /// Most resident memory the broker may use, in MiB.
    #[arg(long, default_value_t = 1024)]
    pub max_rss_mb: u64,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 30)]
    pub progress_secs: u64,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text}: expected e.g. 90s, 30m, 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text}: the unit is s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Runs the fuzzer; `Ok(true)` when no oracle failed.
pub fn main(options: FuzzOptions) -> Result<bool, String> {
    let targets = options
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<Result<Vec<_>, _>>()?;
    let seed = options.seed.unwrap_or_else(clock_seed);
    let mut seeds = mutate::builtin_seeds();
    seeds.extend(mutate::load_corpus(&options.corpus)?);
    println!(
        "fuzz: seed {seed}, targets {}, start iteration {}, {} mutation seeds",
        options.urls.join(" "),
        options.start_iteration,
        seeds.len()
    );
    // One thread: the fuzzer never takes more than one core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(Fuzzer::new(options, targets, seed, seeds).run())
}

fn clock_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Counters per transport.
#[derive(Debug, Default, Clone)]
struct Counts {
    iterations: u64,
    connections: u64,
    writes: u64,
    bytes: u64,
    frames_received: u64,
    checked_messages: u64,
    acks: u64,
    slow_consumer_closes: u64,
    open_failures: u64,
    stalls: u64,
    probes: u64,
    slowest_probe: Duration,
}

impl Counts {
    fn add(&mut self, o: &drive::ConnOutcome) {
        self.connections += 1;
        self.writes += o.writes;
        self.bytes += o.bytes;
        self.frames_received += o.frames;
        self.checked_messages += o.checked;
        self.acks += o.acks;
        self.slow_consumer_closes += o.slow_consumer_closes;
        self.open_failures += u64::from(o.open_failed);
        self.stalls += u64::from(o.stalled);
    }
}

struct Fuzzer {
    options: FuzzOptions,
    targets: Vec<Target>,
    seed: u64,
    seeds: Vec<Vec<u8>>,
    broker: watch::Broker,
    counts: HashMap<&'static str, Counts>,
    failures: u64,
    saved: usize,
    /// Failure signatures already saved, so a known bug does not fill the directory.
    signatures: Vec<String>,
    /// The last iterations' plans, saved with a crash (its cause may be an earlier one).
    history: VecDeque<Plan>,
    rss_samples: Vec<u64>,
    crashed: bool,
}

impl Fuzzer {
    fn new(options: FuzzOptions, targets: Vec<Target>, seed: u64, seeds: Vec<Vec<u8>>) -> Fuzzer {
        let broker = watch::Broker::new(options.pid, options.broker_log.clone());
        Fuzzer {
            options,
            targets,
            seed,
            seeds,
            broker,
            counts: HashMap::new(),
            failures: 0,
            saved: 0,
            signatures: Vec::new(),
            history: VecDeque::new(),
            rss_samples: Vec::new(),
            crashed: false,
        }
    }

    async fn run(mut self) -> Result<bool, String> {
        let started = Instant::now();
        let mut last_progress = started;
        let end = self
            .options
            .iterations
            .map(|n| self.options.start_iteration + n);
        let mut iteration = self.options.start_iteration;
        while end.is_none_or(|end| iteration < end)
            && self.options.duration.is_none_or(|d| started.elapsed() < d)
        {
            let target = self.targets[(iteration % self.targets.len() as u64) as usize].clone();
            let plan = Plan::generate(self.seed, iteration, &self.seeds, self.options.conns);
            let findings = self.iteration(&target, &plan).await;
            self.history.push_back(plan);
            if self.history.len() > 4 {
                self.history.pop_front();
            }
            for (kind, message) in findings {
                self.fail(&target, kind, &message, false)?;
            }
            if let Err(e) = self.broker.alive() {
                self.crashed = true;
                self.fail(&target, "crash", &e, true)?;
                break;
            }
            for line in self.broker.new_panics() {
                self.fail(&target, "panic", &line, false)?;
            }
            if iteration % self.options.probe_every.max(1) == 0 {
                self.probe(iteration).await?;
            }
            if last_progress.elapsed() >= Duration::from_secs(self.options.progress_secs) {
                last_progress = Instant::now();
                self.progress(started.elapsed(), iteration);
            }
            iteration += 1;
        }
        if !self.crashed {
            if let Err(e) = watch::growth_verdict(&self.rss_samples) {
                let target = self.targets[0].clone();
                self.fail(&target, "memory", &e, true)?;
            }
        }
        self.summary(started.elapsed(), iteration);
        Ok(self.failures == 0)
    }

    /// One iteration: subscribers up, scripts run concurrently, subscribers checked.
    async fn iteration(&mut self, target: &Target, plan: &Plan) -> Vec<(&'static str, String)> {
        let mut findings = Vec::new();
        let counts = self.counts.entry(target.transport.label()).or_default();
        counts.iterations += 1;
        let mut starting = JoinSet::new();
        for sub in &plan.subscribers {
            starting.spawn(drive::start_subscriber(target.clone(), sub.clone()));
        }
        let mut subscribers = Vec::new();
        while let Some(joined) = starting.join_next().await {
            match joined {
                Ok(Ok(sub)) => subscribers.push(sub),
                Ok(Err(e)) => findings.push(("subscriber", format!("subscriber setup: {e}"))),
                Err(e) => findings.push(("fuzzer-bug", format!("subscriber task: {e}"))),
            }
        }
        let registry: HashMap<String, frames::Registered> = plan
            .scripts
            .iter()
            .flat_map(|s| s.registered.iter().map(|r| (r.id.clone(), r.clone())))
            .collect();
        let mut running = JoinSet::new();
        for script in &plan.scripts {
            running.spawn(drive::run_script(target.clone(), script.clone()));
        }
        while let Some(joined) = running.join_next().await {
            match joined {
                Ok(outcome) => {
                    counts.add(&outcome);
                    findings.extend(outcome.failures.into_iter().map(|f| ("output", f)));
                }
                Err(e) => findings.push(("fuzzer-bug", format!("script task: {e}"))),
            }
        }
        for sub in subscribers {
            let outcome = drive::finish_subscriber(sub, &registry).await;
            counts.add(&outcome);
            findings.extend(outcome.failures.into_iter().map(|f| ("relayed", f)));
        }
        findings
    }

    /// The liveness probe on every target, and a memory sample.
    async fn probe(&mut self, iteration: u64) -> Result<(), String> {
        let bound = Duration::from_millis(self.options.probe_timeout_ms);
        for target in self.targets.clone() {
            match drive::probe(&target, iteration, bound).await {
                Ok(took) => {
                    let counts = self.counts.entry(target.transport.label()).or_default();
                    counts.probes += 1;
                    counts.slowest_probe = counts.slowest_probe.max(took);
                }
                Err(e) => self.fail(&target, "liveness", &e, true)?,
            }
        }
        if let Some(rss) = self.broker.rss_kib() {
            self.rss_samples.push(rss);
            if rss > self.options.max_rss_mb * 1024 {
                let target = self.targets[0].clone();
                let message = format!(
                    "resident memory {} MiB is above --max-rss-mb {}",
                    rss / 1024,
                    self.options.max_rss_mb
                );
                self.fail(&target, "memory", &message, true)?;
            }
        }
        Ok(())
    }

    /// Reports a failure and saves its iteration (with the previous ones when `history`).
    fn fail(
        &mut self,
        target: &Target,
        kind: &str,
        message: &str,
        history: bool,
    ) -> Result<(), String> {
        self.failures += 1;
        let iteration = self.history.back().map_or(0, |p| p.iteration);
        println!(
            "FAIL iteration {iteration} [{}] {kind}: {message}",
            target.transport.label()
        );
        let signature = signature(kind, message);
        if self.saved >= self.options.max_saves || self.signatures.contains(&signature) {
            return Ok(());
        }
        self.signatures.push(signature);
        let plans: Vec<&Plan> = if history {
            self.history.iter().collect()
        } else {
            self.history.back().into_iter().collect()
        };
        let dir = save::save(&self.options.out, self.seed, target, &plans, kind, message)?;
        self.saved += 1;
        println!("  saved {}", dir.display());
        Ok(())
    }

    fn progress(&self, elapsed: Duration, iteration: u64) {
        let rss = self
            .rss_samples
            .last()
            .map_or("?".to_owned(), |k| format!("{} MiB", k / 1024));
        let mut line = format!(
            "progress: {}s, iteration {iteration}, failures {}, broker RSS {rss}",
            elapsed.as_secs(),
            self.failures
        );
        for (label, c) in self.sorted_counts() {
            line += &format!(
                "; {label}: {} iterations, {} connections, {} frames out",
                c.iterations, c.connections, c.frames_received
            );
        }
        println!("{line}");
    }

    fn sorted_counts(&self) -> Vec<(&'static str, Counts)> {
        let mut counts: Vec<_> = self.counts.iter().map(|(k, v)| (*k, v.clone())).collect();
        counts.sort_by_key(|(k, _)| *k);
        counts
    }

    fn summary(&self, elapsed: Duration, next_iteration: u64) {
        println!(
            "fuzz summary: seed {}, iterations {}..{next_iteration}, {} s, {} failures ({} saved under {})",
            self.seed,
            self.options.start_iteration,
            elapsed.as_secs(),
            self.failures,
            self.saved,
            self.options.out.display()
        );
        for (label, c) in self.sorted_counts() {
            println!(
                "  {label}: {} iterations, {} connections, {} writes, {} bytes written, {} frames received, {} relayed messages checked, {} subscriber ACKs, {} probes (slowest {} ms), {} slow-consumer closes, {} connections refused, {} stalled",
                c.iterations,
                c.connections,
                c.writes,
                c.bytes,
                c.frames_received,
                c.checked_messages,
                c.acks,
                c.probes,
                c.slowest_probe.as_millis(),
                c.slow_consumer_closes,
                c.open_failures,
                c.stalls
            );
        }
        if let (Some(first), Some(max), Some(last)) = (
            self.rss_samples.first(),
            self.rss_samples.iter().max(),
            self.rss_samples.last(),
        ) {
            println!(
                "  broker RSS: first {} MiB, highest {} MiB, last {} MiB ({} samples)",
                first / 1024,
                max / 1024,
                last / 1024,
                self.rss_samples.len()
            );
        }
    }
}

/// What makes two failures "the same" for saving: the kind and the message without digits
/// and quoted bytes, cut short.
fn signature(kind: &str, message: &str) -> String {
    let head: String = message
        .split(':')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(60)
        .collect();
    format!("{kind}/{head}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn signatures_ignore_numbers_and_details() {
        assert_eq!(
            signature("output", "a frame after ERROR: MESSAGE id 12"),
            signature("output", "a frame after ERROR: RECEIPT 3")
        );
    }
}
