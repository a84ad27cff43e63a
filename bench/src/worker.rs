//! A worker process: opens its share of subscriber connections (a bounded number of
//! handshakes in flight), reports `ready`, counts MESSAGE frames and their latency (and, with
//! `--rounds`, each message number's latest arrival), and reports
//! `finished` once every connection has what it expected, on `stop` from the parent, when the
//! parent goes away, or at its deadline.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use crate::cli::{Common, WorkerArgs};
use crate::conn::{Conn, Delivery};
use crate::hist::{self, Hist};
use crate::stamp;
use crate::target::{self, Endpoint};
use crate::wire::{self, Finished, Ready};

/// Stands for the connection's (or publisher's) number in a destination.
pub const INDEX_PLACEHOLDER: &str = "{i}";
/// Bound on one connection's setup: TCP, WebSocket, CONNECT, SUBSCRIBE and RECEIPT.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Latencies a connection collects before taking the shared histogram's lock.
const LOCAL_SAMPLES: usize = 256;
/// Time the connections get to close once stopped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// A worker outlives the parent's `--duration` by this much at most, so the parent's own
/// deadline always fires first.
const DEADLINE_GRACE: Duration = Duration::from_secs(10);

/// Counters every connection of the worker adds to.
#[derive(Debug)]
struct Shared {
    latency: Mutex<Hist>,
    received: AtomicU64,
    first_ns: AtomicU64,
    last_ns: AtomicU64,
    complete: AtomicUsize,
    /// Connections that completed or ended early: the worker is done when this reaches the
    /// number subscribed.
    settled: AtomicUsize,
    settled_notify: Notify,
    closed_early: AtomicUsize,
    error_frames: AtomicUsize,
    first_error: Mutex<Option<String>>,
    /// With `--rounds`: per message number, the latest arrival in µs after its send.
    round_latest: Vec<AtomicU64>,
}

impl Shared {
    fn note_error(&self, error: String) {
        let mut first = self.first_error.lock().expect("poisoned");
        first.get_or_insert(error);
    }

    fn settle(&self) {
        self.settled.fetch_add(1, Ordering::Relaxed);
        self.settled_notify.notify_one();
    }
}

pub fn run(common: Common, args: WorkerArgs) -> i32 {
    // One thread per worker: the tool spreads load over worker processes (`--workers`), and
    // fewer threads mean fewer context switches competing with the broker for the cores.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("herald-load worker: runtime: {e}");
            return 2;
        }
    };
    let code = runtime.block_on(work(common, args));
    // The stdin reader blocks in a thread that cannot be cancelled; do not wait for it.
    runtime.shutdown_background();
    code
}

async fn work(common: Common, args: WorkerArgs) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(common.duration) + DEADLINE_GRACE;
    let endpoints = match Endpoint::resolve_subscribers(&common).await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            eprintln!("herald-load worker: {e}");
            return 2;
        }
    };
    let parent_stop = watch_stdin();
    let (stop_tx, stop_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        latency: Mutex::new(hist::new()),
        received: AtomicU64::new(0),
        first_ns: AtomicU64::new(u64::MAX),
        last_ns: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
        settled_notify: Notify::new(),
        closed_early: AtomicUsize::new(0),
        error_frames: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        round_latest: if args.rounds {
            (0..args.messages).map(|_| AtomicU64::new(0)).collect()
        } else {
            Vec::new()
        },
    });
    let semaphore = Arc::new(Semaphore::new(common.concurrency as usize));
    let destination: Arc<str> = Arc::from(args.destination.as_str());
    let per_connection = args.destination.contains(INDEX_PLACEHOLDER);
    let (setup_tx, mut setup_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..args.connections {
        let index = args.first_index + i;
        tasks.spawn(subscriber(Subscriber {
            index,
            endpoint: Arc::clone(target::for_connection(&endpoints, index)),
            destination: if per_connection {
                Arc::from(destination_of(&args.destination, index as u64))
            } else {
                Arc::clone(&destination)
            },
            expected: args.messages,
            shared: Arc::clone(&shared),
            semaphore: Arc::clone(&semaphore),
            setup: setup_tx.clone(),
            stop: stop_rx.clone(),
        }));
    }
    drop(setup_tx);

    // Phase 1: every connection subscribed or failed.
    let mut ready = Ready::default();
    let mut setup_hist = hist::new();
    let mut last_setup = started;
    while ready.ok + ready.failed < args.connections {
        let result = tokio::select! {
            r = setup_rx.recv() => r,
            _ = stopped(&parent_stop) => break,
            _ = tokio::time::sleep_until(deadline.into()) => break,
        };
        match result {
            Some(Ok(us)) => {
                ready.ok += 1;
                setup_hist.saturating_record(us);
                last_setup = Instant::now();
            }
            Some(Err(e)) => {
                ready.failed += 1;
                ready.err.get_or_insert(e);
            }
            None => break,
        }
    }
    ready.elapsed_us = last_setup.duration_since(started).as_micros() as u64;
    ready.setup = hist::to_line(&setup_hist);
    println!("{}", ready.to_line());

    // Phase 2: wait for every subscribed connection to have its messages (if any are
    // expected), or for the parent's stop, or the deadline.
    loop {
        if args.messages > 0 && shared.settled.load(Ordering::Relaxed) >= ready.ok {
            break;
        }
        tokio::select! {
            _ = shared.settled_notify.notified() => {}
            _ = stopped(&parent_stop) => break,
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
    }

    // Phase 3: stop and close every connection, then report.
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    let first_ns = shared.first_ns.load(Ordering::Relaxed);
    let finished = Finished {
        received: shared.received.load(Ordering::Relaxed),
        first_ns: if first_ns == u64::MAX { 0 } else { first_ns },
        last_ns: shared.last_ns.load(Ordering::Relaxed),
        complete: shared.complete.load(Ordering::Relaxed),
        closed_early: shared.closed_early.load(Ordering::Relaxed),
        error_frames: shared.error_frames.load(Ordering::Relaxed),
        latency: hist::to_line(&shared.latency.lock().expect("poisoned")),
        rounds: wire::rounds_to_field(
            &shared
                .round_latest
                .iter()
                .map(|latest| latest.load(Ordering::Relaxed))
                .collect::<Vec<_>>(),
        ),
        err: shared.first_error.lock().expect("poisoned").clone(),
    };
    println!("{}", finished.to_line());
    0
}

/// `destination` with [`INDEX_PLACEHOLDER`] replaced by `index`.
pub fn destination_of(destination: &str, index: u64) -> String {
    destination.replace(INDEX_PLACEHOLDER, &index.to_string())
}

/// Becomes `true` on `stop` from the parent or when its end of stdin closes.
fn watch_stdin() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(line)) if line.trim() != "stop" => continue,
                _ => break,
            }
        }
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(rx: &watch::Receiver<bool>) {
    let mut rx = rx.clone();
    // An error means the sender is gone without saying stop: that is a stop too.
    let _ = rx.wait_for(|&stop| stop).await;
}

struct Subscriber {
    index: usize,
    endpoint: Arc<Endpoint>,
    destination: Arc<str>,
    expected: u64,
    shared: Arc<Shared>,
    semaphore: Arc<Semaphore>,
    setup: mpsc::UnboundedSender<Result<u64, String>>,
    stop: watch::Receiver<bool>,
}

async fn subscriber(s: Subscriber) {
    let Subscriber {
        index,
        endpoint,
        destination,
        expected,
        shared,
        semaphore,
        setup,
        stop,
    } = s;
    let opened = tokio::select! {
        biased;
        _ = stopped(&stop) => return,
        r = open(&endpoint, index, &destination, &semaphore) => r,
    };
    let mut conn = match opened {
        Ok((conn, us)) => {
            let _ = setup.send(Ok(us));
            conn
        }
        Err(e) => {
            let _ = setup.send(Err(e));
            return;
        }
    };
    drop(setup);
    receive(&mut conn, expected, &shared, stop).await;
    conn.close().await;
}

/// Opens and subscribes one connection while holding a handshake permit; returns it with its
/// setup time in microseconds.
async fn open(
    endpoint: &Endpoint,
    index: usize,
    destination: &str,
    semaphore: &Semaphore,
) -> Result<(Conn, u64), String> {
    let _permit = semaphore.acquire().await.map_err(|e| e.to_string())?;
    let started = Instant::now();
    let conn = tokio::time::timeout(SETUP_TIMEOUT, async {
        let mut conn = Conn::open(endpoint, index).await?;
        conn.subscribe(destination, "sub-0").await?;
        Ok::<_, String>(conn)
    })
    .await
    .map_err(|_| format!("setup timed out after {}s", SETUP_TIMEOUT.as_secs()))??;
    Ok((conn, started.elapsed().as_micros() as u64))
}

/// The lean read loop: counts MESSAGE frames and their latency until stopped or closed.
async fn receive(conn: &mut Conn, expected: u64, shared: &Shared, mut stop: watch::Receiver<bool>) {
    let mut samples: Vec<u64> = Vec::new();
    let (mut count, mut first, mut last) = (0u64, 0u64, 0u64);
    let mut settled = false;
    // One stop future for the whole loop: re-creating it per frame costs a waiter
    // registration and removal on the watch channel every time.
    let stopped = async move {
        let _ = stop.wait_for(|&stop| stop).await;
    };
    let mut stopped = std::pin::pin!(stopped);
    let ended_early = loop {
        let next = tokio::select! {
            biased;
            () = &mut stopped => break None,
            r = conn.next_delivery() => r,
        };
        match next {
            Ok(Some(Delivery::Message { stamp })) => {
                let now = stamp::now_ns();
                if count == 0 {
                    first = now;
                }
                last = now;
                count += 1;
                if let Some(sent) = stamp {
                    if samples.capacity() == 0 {
                        samples.reserve_exact(LOCAL_SAMPLES);
                    }
                    let us = now.saturating_sub(sent) / 1000;
                    // Topic order holds per subscription: the n-th MESSAGE is message n.
                    if let Some(latest) = shared.round_latest.get(count as usize - 1) {
                        latest.fetch_max(us, Ordering::Relaxed);
                    }
                    samples.push(us);
                    if samples.len() >= LOCAL_SAMPLES {
                        record(shared, &mut samples);
                    }
                }
                if count == expected {
                    shared.complete.fetch_add(1, Ordering::Relaxed);
                    shared.settle();
                    settled = true;
                }
            }
            Ok(Some(Delivery::Error { message })) => {
                shared.error_frames.fetch_add(1, Ordering::Relaxed);
                break Some(format!("ERROR frame from the broker: {message}"));
            }
            Ok(Some(_)) => {}
            Ok(None) => break Some("connection closed by the broker".to_owned()),
            Err(e) => break Some(e),
        }
    };
    record(shared, &mut samples);
    if count > 0 {
        shared.received.fetch_add(count, Ordering::Relaxed);
        shared.first_ns.fetch_min(first, Ordering::Relaxed);
        shared.last_ns.fetch_max(last, Ordering::Relaxed);
    }
    if let Some(reason) = ended_early {
        shared.closed_early.fetch_add(1, Ordering::Relaxed);
        shared.note_error(reason);
        if !settled {
            shared.settle();
        }
    }
}

fn record(shared: &Shared, samples: &mut Vec<u64>) {
    if samples.is_empty() {
        return;
    }
    let mut hist = shared.latency.lock().expect("poisoned");
    for &us in samples.iter() {
        hist.saturating_record(us);
    }
    samples.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_placeholder_is_replaced_everywhere() {
        assert_eq!(destination_of("/topic/pair-{i}", 7), "/topic/pair-7");
        assert_eq!(destination_of("/topic/{i}/x{i}", 12), "/topic/12/x12");
        assert_eq!(destination_of("/topic/fan", 3), "/topic/fan");
    }
}
