//! The command line: common flags (global, so they may follow the scenario name), the two
//! scenarios, and the hidden `worker` subcommand the parent re-executes itself with.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Sockets one worker process may open: the per-process file limit here is 20,000, and the
/// process needs a few descriptors of its own.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 18_000;

/// herald-load: a load generator for STOMP brokers over WebSocket and TCP.
#[derive(Debug, Parser)]
#[command(name = "herald-load", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Flags every scenario shares. The parent hands them to its workers unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Common {
    /// Broker endpoint: ws://host:port/path or tcp://host:port.
    #[arg(long, global = true, default_value = "ws://127.0.0.1:15674/ws")]
    pub url: String,
    /// CONNECT `login` header.
    #[arg(long, global = true)]
    pub login: Option<String>,
    /// CONNECT `passcode` header.
    #[arg(long, global = true)]
    pub passcode: Option<String>,
    /// CONNECT `host` header (default: the URL's host).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Child processes the connections are spread over (each holds at most 18,000).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// Bind client sockets to 127.0.0.1 .. 127.0.0.N round-robin (0 = let the kernel pick).
    #[arg(long, global = true, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=254))]
    pub source_ips: u8,
    /// Handshakes (TCP + WebSocket + CONNECT + SUBSCRIBE) in flight per worker.
    #[arg(long, global = true, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Hard bound on the whole run, in seconds: whatever happens, the tool exits by then.
    #[arg(long, global = true, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Also write the figures to this file as JSON.
    #[arg(long, global = true, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Name of this broker in reports and plots (default: the URL).
    #[arg(long, global = true)]
    pub label: Option<String>,
    /// Endpoint for the worker-held connections (subscribers; `conns`' connections), repeatable:
    /// connection i goes to the (i mod n)-th, round-robin, while publishers stay on --url.
    /// For a cluster: publishers on one node, subscribers spread over several.
    #[arg(
        long = "sub-url",
        global = true,
        value_name = "URL",
        conflicts_with = "vs_url"
    )]
    pub sub_urls: Vec<String>,
    /// Another process whose CPU time the topic scenarios and `queue` report over the delivery
    /// window, as LABEL=PID (repeatable): a cluster's other nodes, its NATS server.
    #[arg(long = "cpu-pid", global = true, value_name = "LABEL=PID", value_parser = parse_cpu_pid)]
    pub cpu_pids: Vec<CpuPid>,
    /// Milliseconds the topic scenarios wait between the last subscriber's RECEIPT and the
    /// publishers connecting: a cluster node acknowledges a SUBSCRIBE before the other nodes
    /// know of it, so messages published at once could find no interest yet.
    #[arg(long = "publish-after-ms", global = true, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub publish_after_ms: u64,
    #[command(flatten)]
    pub versus: Versus,
}

/// A process to read CPU time from, and its name in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuPid {
    pub label: String,
    pub pid: u32,
}

fn parse_cpu_pid(text: &str) -> Result<CpuPid, String> {
    let (label, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not LABEL=PID"))?;
    if label.is_empty() {
        return Err(format!("{text:?} has an empty label"));
    }
    let pid = pid
        .parse::<u32>()
        .map_err(|_| format!("{text:?}: {pid:?} is not a process id"))?;
    Ok(CpuPid {
        label: label.to_owned(),
        pid,
    })
}

/// A header every SEND carries, given as `NAME:VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl std::fmt::Display for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.value)
    }
}

/// Headers the tool writes itself (or that change how a frame is read): refused as `--header`.
const OWN_HEADERS: &[&str] = &["destination", "content-type", "content-length", "receipt"];

fn parse_header(text: &str) -> Result<Header, String> {
    let (name, value) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not NAME:VALUE"))?;
    if name.is_empty() {
        return Err(format!("{text:?} has an empty name"));
    }
    if OWN_HEADERS.contains(&name) {
        return Err(format!("{name} is written by herald-load itself"));
    }
    Ok(Header {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// A second broker to run the same scenario against, in alternation (A B A B ...).
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct Versus {
    /// Second broker's endpoint: the scenario runs against --url and this one in turns, and
    /// each pair's ratio is printed.
    #[arg(long = "vs", global = true, value_name = "URL")]
    pub vs_url: Option<String>,
    /// CONNECT `login` for the second broker.
    #[arg(long = "vs-login", global = true, requires = "vs_url")]
    pub vs_login: Option<String>,
    /// CONNECT `passcode` for the second broker.
    #[arg(long = "vs-passcode", global = true, requires = "vs_url")]
    pub vs_passcode: Option<String>,
    /// CONNECT `host` for the second broker.
    #[arg(long = "vs-host", global = true, requires = "vs_url")]
    pub vs_host: Option<String>,
    /// Name of the second broker in reports and plots (default: its URL).
    #[arg(long = "vs-label", global = true, requires = "vs_url")]
    pub vs_label: Option<String>,
    /// The second broker's process, for its CPU time and memory (the scenario's
    /// `--broker-pid` names the first's).
    #[arg(
        long = "vs-broker-pid",
        global = true,
        requires = "vs_url",
        value_name = "PID"
    )]
    pub vs_broker_pid: Option<u32>,
    /// Pairs of runs (A then B) with --vs.
    #[arg(long = "vs-pairs", global = true, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub vs_pairs: u32,
}

impl Common {
    /// Refuses the flags `scenario` does not read (`--cpu-pid`: only the topic scenarios and
    /// `queue` do; `--publish-after-ms`: only the topic scenarios), so it does not silently
    /// measure something other than asked.
    pub fn refuse_unread_flags(&self, scenario: &str) -> Result<(), String> {
        const TOPIC: &[&str] = &["fanout", "broadcast", "pubsub"];
        const CPU: &[&str] = &["fanout", "broadcast", "pubsub", "queue"];
        let unread: Vec<String> = [
            ("--cpu-pid", !self.cpu_pids.is_empty(), CPU),
            ("--publish-after-ms", self.publish_after_ms > 0, TOPIC),
        ]
        .into_iter()
        .filter(|(_, set, readers)| *set && !readers.contains(&scenario))
        .map(|(flag, _, readers)| format!("{flag} (only {} do)", readers.join(", ")))
        .collect();
        if unread.is_empty() {
            return Ok(());
        }
        Err(format!("{scenario} does not read {}", unread.join(" or ")))
    }

    /// The flags as arguments, for a worker's command line.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec![
            "--url".to_owned(),
            self.url.clone(),
            "--workers".to_owned(),
            self.workers.to_string(),
            "--source-ips".to_owned(),
            self.source_ips.to_string(),
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--duration".to_owned(),
            self.duration.to_string(),
        ];
        for (flag, value) in [
            ("--login", &self.login),
            ("--passcode", &self.passcode),
            ("--host", &self.host),
        ] {
            if let Some(value) = value {
                args.push(flag.to_owned());
                args.push(value.clone());
            }
        }
        for url in &self.sub_urls {
            args.push("--sub-url".to_owned());
            args.push(url.clone());
        }
        // `--json`, `--label`, `--cpu-pid` and `--vs` stay with the parent: only it writes
        // figures, reads CPU times and runs the second broker.
        args
    }
}

#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Open N connections that CONNECT and SUBSCRIBE, measure the rate and the broker's memory.
    Conns(ConnsArgs),
    /// S subscribers, one publisher: deliveries/s, end-to-end latency, lost messages.
    Fanout(FanoutArgs),
    /// N subscribers, one message per round: time until the last subscriber has it.
    Broadcast(BroadcastArgs),
    /// P publisher/subscriber pairs, each on its own topic: messages/s, latency, lost.
    Pubsub(PubsubArgs),
    /// P producers, C consumers on one queue: messages/s, latency, duplicates, lost.
    Queue(QueueArgs),
    /// Draws deliveries/s and p99 latency against subscriber count from fan-out reports (PNG).
    Plot(crate::plot::PlotArgs),
    /// Internal: one child process holding a share of the connections.
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ConnsArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Destination every connection subscribes to.
    #[arg(long, default_value = "/topic/idle")]
    pub destination: String,
    /// Broker process to read VmRSS from (/proc/PID/status), before and after.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// Seconds to hold the connections open once all are subscribed.
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// Seconds to let the broker settle before reading its RSS again.
    #[arg(long, default_value_t = 2)]
    pub settle: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct FanoutArgs {
    /// Subscriber connections (spread over the workers).
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Messages per second from the publisher; 0 = as fast as possible, in batches.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Messages the publisher sends.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Body size in bytes; the first 16 carry the send timestamp.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=4_000_000))]
    pub size: u64,
    /// Destination the subscribers subscribe to and the publisher sends to.
    #[arg(long, default_value = "/topic/fan")]
    pub destination: String,
    /// Seconds to wait after the last send for deliveries still in flight.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Broker process to read CPU time and VmRSS from (/proc/PID), before and after.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// SEND frames written per flush when publishing.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BroadcastArgs {
    /// Subscriber connections (spread over the workers).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Rounds: one message each, to every subscriber.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub rounds: u64,
    /// Milliseconds between rounds (each round should be over before the next starts).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub interval_ms: u64,
    /// Body size in bytes; the first 16 carry the send timestamp.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=4_000_000))]
    pub size: u64,
    /// Destination the subscribers subscribe to and the publisher sends to.
    #[arg(long, default_value = "/topic/broadcast")]
    pub destination: String,
    /// Seconds to wait after the last round for deliveries still in flight.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Broker process to read CPU time and VmRSS from (/proc/PID), before and after.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PubsubArgs {
    /// Publisher/subscriber pairs; pair i uses the destination with `{i}` replaced by i.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub pairs: u64,
    /// Messages each publisher sends.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub messages: u64,
    /// Messages per second over all publishers; 0 = each as fast as possible, in batches.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Body size in bytes; the first 16 carry the send timestamp.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(16..=4_000_000))]
    pub size: u64,
    /// Destination of pair i: `{i}` is replaced by the pair's number.
    #[arg(long, default_value = "/topic/pair-{i}")]
    pub destination: String,
    /// Seconds to wait after the last send for deliveries still in flight.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// Broker process to read CPU time and VmRSS from (/proc/PID), before and after.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
    /// SEND frames written per flush by each publisher.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch: u64,
}

/// SUBSCRIBE `ack` mode of the queue consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    Auto,
    Client,
    ClientIndividual,
}

impl AckMode {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Auto => "auto",
            AckMode::Client => "client",
            AckMode::ClientIndividual => "client-individual",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct QueueArgs {
    /// Producer connections; the messages are split among them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub producers: u64,
    /// Consumer connections, each with one subscription to the queue; 0: nothing consumes,
    /// the messages stay in the broker (with --broker-pid: its memory per waiting message).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub consumers: u64,
    /// Messages sent in total (over all producers).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub messages: u64,
    /// Body size in bytes; the first 16 carry the send timestamp, the next 16 the sequence number.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(32..=4_000_000))]
    pub size: u64,
    /// Queue destination producers send to and consumers subscribe to.
    #[arg(long, default_value = "/queue/load")]
    pub destination: String,
    /// SUBSCRIBE ack mode.
    #[arg(long, value_enum, default_value_t = AckMode::ClientIndividual)]
    pub ack: AckMode,
    /// SUBSCRIBE `prefetch-count` (0 = header not sent).
    #[arg(long, default_value_t = 100)]
    pub prefetch: u64,
    /// In `client` mode, ACK (cumulatively) every N messages; 0 = half the prefetch, at least 1.
    #[arg(long, default_value_t = 0)]
    pub ack_every: u64,
    /// Messages per second over all producers; 0 = as fast as possible, in batches.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// SEND frames written per flush by each producer.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub batch: u64,
    /// Seconds to wait after the last send for messages still in flight.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
    /// A header every SEND carries, as NAME:VALUE (repeatable), e.g. `persistent:true`.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<Header>,
    /// Every N-th SEND of a producer (and its last) asks for a RECEIPT; 0: none.
    #[arg(long, default_value_t = 0)]
    pub receipt_every: u64,
    /// RECEIPTs a producer may wait for at once; at that many it sends nothing more until one
    /// comes (with --receipt-every 1: the messages not yet confirmed). Needs --receipt-every.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub receipt_window: u64,
    /// Broker process to read VmRSS (before and after) and CPU time (first send to done)
    /// from, in /proc/PID.
    #[arg(long, value_name = "PID")]
    pub broker_pid: Option<u32>,
}

/// One worker's share: its connections subscribe, then count what arrives.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct WorkerArgs {
    /// Connections this worker opens.
    #[arg(long)]
    pub connections: usize,
    /// Global index of this worker's first connection (for the source-IP round-robin).
    #[arg(long, default_value_t = 0)]
    pub first_index: usize,
    /// Destination to subscribe to; `{i}` is replaced by the connection's global index.
    #[arg(long)]
    pub destination: String,
    /// MESSAGE frames each connection expects; 0 = none, hold until told to stop.
    #[arg(long, default_value_t = 0)]
    pub messages: u64,
    /// Also report, per message number, the latest arrival over the worker's connections.
    #[arg(long)]
    pub rounds: bool,
}

impl WorkerArgs {
    /// The full command line (after the executable) that runs this share as a worker.
    pub fn command_line(&self, common: &Common) -> Vec<String> {
        let mut args = vec!["worker".to_owned()];
        args.extend(common.to_args());
        args.extend([
            "--connections".to_owned(),
            self.connections.to_string(),
            "--first-index".to_owned(),
            self.first_index.to_string(),
            "--destination".to_owned(),
            self.destination.clone(),
            "--messages".to_owned(),
            self.messages.to_string(),
        ]);
        if self.rounds {
            args.push("--rounds".to_owned());
        }
        args
    }
}

/// Splits `total` connections over `workers` shares as evenly as possible, each share
/// knowing the global index of its first connection. Empty shares are dropped.
pub fn split(total: usize, workers: usize) -> Vec<(usize, usize)> {
    let workers = workers.max(1);
    let (base, extra) = (total / workers, total % workers);
    let mut shares = Vec::with_capacity(workers);
    let mut first = 0;
    for i in 0..workers {
        let n = base + usize::from(i < extra);
        if n > 0 {
            shares.push((first, n));
        }
        first += n;
    }
    shares
}

/// The workers' shares of `total` subscriber connections, each subscribing to `destination`
/// and expecting `messages`; refused when a share would exceed what a worker may open.
pub fn shares(
    total: usize,
    workers: u32,
    destination: &str,
    messages: u64,
    rounds: bool,
) -> Result<Vec<WorkerArgs>, String> {
    check_share(total, workers)?;
    Ok(split(total, workers as usize)
        .into_iter()
        .map(|(first_index, connections)| WorkerArgs {
            connections,
            first_index,
            destination: destination.to_owned(),
            messages,
            rounds,
        })
        .collect())
}

/// Refuses a plan that would put more sockets in one worker than it may open.
pub fn check_share(total: usize, workers: u32) -> Result<(), String> {
    let biggest = total.div_ceil(workers.max(1) as usize);
    if biggest > MAX_CONNECTIONS_PER_WORKER {
        let needed = total.div_ceil(MAX_CONNECTIONS_PER_WORKER);
        return Err(format!(
            "{total} connections over {workers} worker(s) is {biggest} per worker; \
             a worker holds at most {MAX_CONNECTIONS_PER_WORKER}: use --workers {needed} or more"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn common_flags_may_follow_the_scenario() {
        let cli = Cli::try_parse_from([
            "herald-load",
            "conns",
            "--url",
            "tcp://127.0.0.1:61613",
            "--connections",
            "5",
            "--workers",
            "3",
            "--source-ips",
            "4",
        ])
        .unwrap();
        assert_eq!(cli.common.url, "tcp://127.0.0.1:61613");
        assert_eq!(cli.common.workers, 3);
        assert_eq!(cli.common.source_ips, 4);
        let Scenario::Conns(conns) = cli.scenario else {
            panic!("expected conns")
        };
        assert_eq!(conns.connections, 5);
        assert_eq!(conns.destination, "/topic/idle");
    }

    #[test]
    fn a_worker_command_line_parses_back_to_the_same_share() {
        let common = Common {
            url: "ws://127.0.0.1:9/ws".to_owned(),
            login: Some("guest".to_owned()),
            passcode: Some("secret word".to_owned()),
            host: None,
            workers: 2,
            source_ips: 3,
            concurrency: 50,
            duration: 30,
            json: None,
            label: Some("ignored by workers".to_owned()),
            sub_urls: vec![
                "ws://127.0.0.1:10/ws".to_owned(),
                "tcp://127.0.0.1:11".to_owned(),
            ],
            cpu_pids: vec![CpuPid {
                label: "nats".to_owned(),
                pid: 42,
            }],
            publish_after_ms: 250,
            versus: Versus {
                vs_url: None,
                vs_login: None,
                vs_passcode: None,
                vs_host: None,
                vs_label: None,
                vs_broker_pid: None,
                vs_pairs: 3,
            },
        };
        let share = WorkerArgs {
            connections: 700,
            first_index: 1400,
            destination: "/topic/pair-{i}".to_owned(),
            messages: 20_000,
            rounds: true,
        };
        let mut argv = vec!["herald-load".to_owned()];
        argv.extend(share.command_line(&common));
        let cli = Cli::try_parse_from(argv).unwrap();
        // Labels, CPU readings and the second broker stay with the parent; subscriber URLs
        // go to the workers, in order.
        assert_eq!(
            cli.common,
            Common {
                label: None,
                cpu_pids: Vec::new(),
                publish_after_ms: 0,
                ..common
            }
        );
        let Scenario::Worker(parsed) = cli.scenario else {
            panic!("expected worker")
        };
        assert_eq!(parsed, share);
    }

    #[test]
    fn sub_urls_repeat_and_cpu_pids_parse_as_label_and_pid() {
        let cli = Cli::try_parse_from([
            "herald-load",
            "fanout",
            "--url",
            "tcp://127.0.0.1:1",
            "--sub-url",
            "tcp://127.0.0.1:2",
            "--sub-url",
            "tcp://127.0.0.1:3",
            "--cpu-pid",
            "nats=17",
            "--cpu-pid",
            "node-b=18",
        ])
        .unwrap();
        assert_eq!(
            cli.common.sub_urls,
            ["tcp://127.0.0.1:2", "tcp://127.0.0.1:3"]
        );
        assert_eq!(
            cli.common.cpu_pids,
            [
                CpuPid {
                    label: "nats".to_owned(),
                    pid: 17
                },
                CpuPid {
                    label: "node-b".to_owned(),
                    pid: 18
                }
            ]
        );
        for bad in ["17", "=17", "nats=x"] {
            assert!(
                Cli::try_parse_from(["herald-load", "fanout", "--cpu-pid", bad]).is_err(),
                "{bad}"
            );
        }
        let queue = Cli::try_parse_from(["herald-load", "queue", "--cpu-pid", "nats=17"]).unwrap();
        assert!(queue.common.refuse_unread_flags("queue").is_ok());
        let err = queue.common.refuse_unread_flags("conns").unwrap_err();
        assert!(err.contains("--cpu-pid"), "{err}");
        let queue =
            Cli::try_parse_from(["herald-load", "queue", "--publish-after-ms", "5"]).unwrap();
        let err = queue.common.refuse_unread_flags("queue").unwrap_err();
        assert_eq!(
            err,
            "queue does not read --publish-after-ms (only fanout, broadcast, pubsub do)"
        );
        assert!(cli.common.refuse_unread_flags("conns").is_err());
        let plain = Cli::try_parse_from(["herald-load", "conns"]).unwrap();
        assert!(plain.common.refuse_unread_flags("conns").is_ok());
        // The second broker's runs would reuse the first's subscriber URLs: refused.
        let err = Cli::try_parse_from([
            "herald-load",
            "fanout",
            "--sub-url",
            "tcp://127.0.0.1:2",
            "--vs",
            "tcp://127.0.0.1:4",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn fanout_refuses_bodies_too_small_for_the_timestamp() {
        let err = Cli::try_parse_from(["herald-load", "fanout", "--size", "8"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn queue_flags_parse_with_defaults() {
        let cli = Cli::try_parse_from([
            "herald-load",
            "queue",
            "--consumers",
            "3",
            "--ack",
            "client",
            "--url",
            "tcp://127.0.0.1:61613",
        ])
        .unwrap();
        let Scenario::Queue(queue) = cli.scenario else {
            panic!("expected queue")
        };
        assert_eq!(queue.consumers, 3);
        assert_eq!(queue.producers, 1);
        assert_eq!(queue.ack, AckMode::Client);
        assert_eq!(queue.prefetch, 100);
        assert_eq!(queue.destination, "/queue/load");
        assert!(queue.headers.is_empty());
        assert_eq!((queue.receipt_every, queue.receipt_window), (0, 1));
        assert_eq!(queue.broker_pid, None);
        assert!(Cli::try_parse_from(["herald-load", "queue", "--size", "20"]).is_err());
        assert!(Cli::try_parse_from(["herald-load", "queue", "--ack", "none"]).is_err());
    }

    #[test]
    fn queue_headers_receipts_and_no_consumers_parse() {
        let cli = Cli::try_parse_from([
            "herald-load",
            "queue",
            "--consumers",
            "0",
            "--header",
            "persistent:true",
            "--header",
            "x-note:a:b",
            "--receipt-every",
            "1",
            "--receipt-window",
            "256",
            "--broker-pid",
            "17",
        ])
        .unwrap();
        let Scenario::Queue(queue) = cli.scenario else {
            panic!("expected queue")
        };
        assert_eq!(queue.consumers, 0);
        assert_eq!(
            queue.headers,
            [
                Header {
                    name: "persistent".to_owned(),
                    value: "true".to_owned()
                },
                Header {
                    name: "x-note".to_owned(),
                    value: "a:b".to_owned()
                }
            ]
        );
        assert_eq!((queue.receipt_every, queue.receipt_window), (1, 256));
        assert_eq!(queue.broker_pid, Some(17));
        for bad in ["persistent", ":x", "receipt:1", "destination:/queue/b"] {
            assert!(
                Cli::try_parse_from(["herald-load", "queue", "--header", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn split_spreads_connections_evenly_with_global_indices() {
        assert_eq!(split(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(split(2, 4), vec![(0, 1), (1, 1)]);
        assert_eq!(split(0, 2), Vec::<(usize, usize)>::new());
    }

    #[test]
    fn shares_carry_the_destination_and_expectations() {
        let shares = shares(10, 3, "/topic/pair-{i}", 5, true).unwrap();
        let firsts: Vec<(usize, usize)> = shares
            .iter()
            .map(|s| (s.first_index, s.connections))
            .collect();
        assert_eq!(firsts, [(0, 4), (4, 3), (7, 3)]);
        assert!(
            shares
                .iter()
                .all(|s| s.destination == "/topic/pair-{i}" && s.messages == 5 && s.rounds)
        );
        assert!(super::shares(30_000, 1, "/topic/x", 0, false).is_err());
    }

    #[test]
    fn shares_above_the_per_worker_bound_are_refused() {
        assert!(check_share(18_000, 1).is_ok());
        let err = check_share(30_000, 1).unwrap_err();
        assert!(err.contains("--workers 2"), "{err}");
        assert!(check_share(30_000, 2).is_ok());
    }
}
