//! Routing benchmarks: fan-out lookups, subscribe/unsubscribe churn on a huge destination, a
//! wildcard-heavy mix, and the concurrent maps (literal subscriptions and the queue map) under
//! several threads.
//!
//! `cargo bench -p herald --bench routing -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald::routing::{Separator, ShardedTrie, SubscriptionTrie};

/// (session id, subscription key): the shape of the broker's subscriber handle.
type Sub = (u64, u32);

/// Deterministic xorshift64*, so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// (a) One literal destination with 10,000 subscribers.
fn literal_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("literal_10k_subscribers");
    for (name, cache) in [("cached", 1024), ("uncached", 0)] {
        let trie = SubscriptionTrie::<Sub>::new(Separator::Slash, cache);
        for i in 0..10_000 {
            trie.insert("price/IBM", (i, 0)).unwrap();
        }
        assert_eq!(trie.matches("price/IBM").len(), 10_000);
        group.bench_function(name, |b| {
            b.iter(|| black_box(trie.matches(black_box("price/IBM"))))
        });
    }
    group.finish();
}

/// (b) 1,000,000 subscribe/unsubscribe operations (alternating, each on a fresh handle) on a
/// destination that already has 100,000 subscribers. One iteration = the whole million.
fn churn(c: &mut Criterion) {
    const OPS: u64 = 1_000_000;
    let mut group = c.benchmark_group("churn_100k_subscribers");
    group.sample_size(10);
    group.throughput(Throughput::Elements(OPS));
    let trie = SubscriptionTrie::<Sub>::new(Separator::Slash, 1024);
    let sharded = ShardedTrie::<Sub>::new(Separator::Slash, 8, 1024);
    for i in 0..100_000 {
        trie.insert("hot/topic", (i, 0)).unwrap();
        sharded.insert("hot/topic", (i, 0)).unwrap();
    }
    let mut next = 100_000u64;
    group.bench_function("1m_ops", |b| {
        b.iter(|| {
            for _ in 0..OPS / 2 {
                let h = (next, 0);
                next += 1;
                trie.insert("hot/topic", h).unwrap();
                assert!(trie.remove("hot/topic", &h));
            }
        })
    });
    group.bench_function("1m_ops_sharded", |b| {
        b.iter(|| {
            for _ in 0..OPS / 2 {
                let h = (next, 0);
                next += 1;
                sharded.insert("hot/topic", h).unwrap();
                assert!(sharded.remove("hot/topic", &h));
            }
        })
    });
    assert_eq!(trie.matches("hot/topic").len(), 100_000);
    assert_eq!(sharded.matches("hot/topic").len(), 100_000);
    group.finish();
}

const TOKENS: [&str; 12] = [
    "price", "stock", "news", "user", "eu", "us", "IBM", "AAPL", "7", "42", "a1", "b2",
];

fn random_pattern(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(4);
    let segments: Vec<String> = (0..depth)
        .map(|_| match rng.below(10) {
            0 => "*".to_owned(),
            1 => "**".to_owned(),
            2 => "{id}".to_owned(),
            3 => "{n:\\d+}".to_owned(),
            4 => format!("{}*", &TOKENS[rng.below(TOKENS.len())][..1]),
            5 => "?2".to_owned(),
            _ => TOKENS[rng.below(TOKENS.len())].to_owned(),
        })
        .collect();
    let pattern = segments.join("/");
    if herald::routing::is_literal(&pattern) {
        // Keep all 1,000 subscriptions in the pattern trie.
        format!("{pattern}/*")
    } else {
        pattern
    }
}

fn random_destination(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(5);
    (0..depth)
        .map(|_| TOKENS[rng.below(TOKENS.len())])
        .collect::<Vec<_>>()
        .join("/")
}

/// (c) 1,000 pattern subscriptions; publishes to 4,096 random destinations in turn.
fn wildcard_heavy(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let patterns: Vec<String> = (0..1_000).map(|_| random_pattern(&mut rng)).collect();
    let destinations: Vec<String> = (0..4_096).map(|_| random_destination(&mut rng)).collect();
    let mut group = c.benchmark_group("wildcard_1000_patterns");
    for (name, cache) in [("cached", 8_192), ("uncached", 0)] {
        let trie = SubscriptionTrie::<Sub>::new(Separator::Slash, cache);
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(p, (i as u64, 0)).unwrap();
        }
        let mut i = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % destinations.len();
                black_box(trie.matches(&destinations[i]))
            })
        });
    }
    group.finish();
}

/// The whole publish path: one SEND to a topic with 10,000 subscribers, each on its own
/// session outbox: snapshot lookup, MESSAGE encoded once, one shared frame pushed per
/// subscriber. Outboxes are drained between publishes, as sessions would.
fn publish_to_10k(c: &mut Criterion) {
    use std::sync::Arc;

    use herald::config::{DestinationsConfig, OverflowPolicy};
    use herald::outbox::Outbox;
    use herald::routing::publish::MessageIds;
    use herald::routing::subscriber::Subscriber;
    use herald::routing::topic::TopicRouter;
    use herald_protocol::{Headers, Version};

    const SUBSCRIBERS: usize = 10_000;
    let config = DestinationsConfig::default();
    let router = TopicRouter::new(
        &config.topic_prefixes,
        &config,
        Arc::new(MessageIds::new("bench")),
    );
    let outboxes: Vec<Arc<Outbox>> = (0..SUBSCRIBERS)
        .map(|_| Arc::new(Outbox::new(512 * 1024, OverflowPolicy::Close)))
        .collect();
    for (session, outbox) in outboxes.iter().enumerate() {
        let subscriber =
            Subscriber::new(session as u64, "sub-0", Version::V1_2, Arc::clone(outbox));
        router.subscribe("/topic/fan", subscriber).unwrap();
    }
    let headers: Headers = [("content-type", "text/plain")].into_iter().collect();
    let body = vec![b'x'; 100];
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    group.bench_function("one_send_to_10k_subscribers", |b| {
        b.iter(|| {
            let fanout = router.publish("/topic/fan", &headers, &body);
            assert_eq!(fanout.delivered, SUBSCRIBERS);
            for outbox in &outboxes {
                std::hint::black_box(outbox.drain());
            }
        })
    });
    group.finish();
}

/// Threads of the concurrent benchmarks: twice the cores of the 2-core reference machine, so
/// threads contend for the map's locks and are preempted while holding them.
const THREADS: usize = 4;

/// Runs `work(thread)` on [`THREADS`] threads at once and returns the wall time of the lot.
fn on_threads(work: impl Fn(usize) + Sync) -> std::time::Duration {
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let work = &work;
            s.spawn(move || work(t));
        }
    });
    start.elapsed()
}

/// (d) Literal subscriptions from several threads: subscribe/unsubscribe churn on 10,000
/// destinations (each with 4 standing subscribers), alone and while other threads publish to
/// the same destinations (cache hits, and misses on the destinations churn just invalidated).
fn literal_churn_threads(c: &mut Criterion) {
    const DESTINATIONS: usize = 10_000;
    const OPS_PER_THREAD: usize = 50_000;
    let destinations: Vec<String> = (0..DESTINATIONS)
        .map(|i| format!("user/{i}/feed"))
        .collect();
    // The broker's shape: 4 shards per core, the default cache size.
    let trie = ShardedTrie::<Sub>::new(Separator::Slash, 8, 65_536);
    for (i, d) in destinations.iter().enumerate() {
        for s in 0..4 {
            trie.insert(d, (i as u64, s)).unwrap();
        }
    }
    let next = std::sync::atomic::AtomicU64::new(1 << 40);
    let churn = |rng: &mut Rng| {
        let d = &destinations[rng.below(DESTINATIONS)];
        let h = (next.fetch_add(1, std::sync::atomic::Ordering::Relaxed), 0);
        trie.insert(d, h).unwrap();
        assert!(trie.remove(d, &h));
    };
    let mut group = c.benchmark_group("literal_churn_4_threads");
    group.sample_size(10);
    group.throughput(Throughput::Elements((THREADS * OPS_PER_THREAD) as u64));
    group.bench_function("subscribe_unsubscribe", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    on_threads(|t| {
                        let mut rng = Rng(0x9e37_79b9 + t as u64);
                        for _ in 0..OPS_PER_THREAD {
                            churn(&mut rng);
                        }
                    })
                })
                .sum()
        })
    });
    // Half the threads churn, half publish; one element is one churn pair or one lookup.
    group.bench_function("churn_while_publishing", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    on_threads(|t| {
                        let mut rng = Rng(0x7f4a_7c15 + t as u64);
                        for _ in 0..OPS_PER_THREAD {
                            if t % 2 == 0 {
                                churn(&mut rng);
                            } else {
                                let d = &destinations[rng.below(DESTINATIONS)];
                                assert!(trie.matches(d).len() >= 4);
                            }
                        }
                    })
                })
                .sum()
        })
    });
    assert_eq!(trie.len(), 4 * DESTINATIONS);
    group.finish();
}

/// (e) The queue map from several threads: SENDs to 1,000 existing queues (the lookup path;
/// each queue keeps one message, dropping the oldest, so memory stays flat), and the
/// creation path: every thread creates 2,500 queues, then one sweep deletes all 10,000.
fn queue_map_threads(c: &mut Criterion) {
    use std::sync::Arc;

    use herald::config::{QueueOverflow, QueuesConfig};
    use herald::metrics::Stats;
    use herald::routing::publish::MessageIds;
    use herald::routing::queue::{Creator, Enqueued, QueueRouter};
    use herald_protocol::Headers;

    const QUEUES: usize = 1_000;
    const SENDS_PER_THREAD: usize = 50_000;
    const CREATED_PER_THREAD: usize = 2_500;
    let router = |config: QueuesConfig| {
        QueueRouter::new(
            &config,
            Arc::new(MessageIds::new("bench")),
            Arc::new(Stats::default()),
        )
    };
    let headers = Headers::default();
    let body = [b'x'; 16];
    let mut group = c.benchmark_group("queue_map_4_threads");
    group.sample_size(10);

    let sends = router(QueuesConfig {
        max_messages_per_queue: 1,
        overflow: QueueOverflow::DropOldest,
        ..QueuesConfig::default()
    });
    let names: Vec<String> = (0..QUEUES).map(|i| format!("/queue/work.{i}")).collect();
    let creator = Creator::default();
    for name in &names {
        sends.publish(name, &headers, &body, &creator);
    }
    group.throughput(Throughput::Elements((THREADS * SENDS_PER_THREAD) as u64));
    group.bench_function("send_to_1k_queues", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    on_threads(|t| {
                        let mut rng = Rng(0x2545_f491 + t as u64);
                        for _ in 0..SENDS_PER_THREAD {
                            let name = &names[rng.below(QUEUES)];
                            let sent = sends.publish(name, &headers, &body, &creator);
                            assert_eq!(sent, Enqueued::Accepted);
                        }
                    })
                })
                .sum()
        })
    });
    assert_eq!(sends.len(), QUEUES);

    // Queues that keep nothing (every SEND refused) and die at the first sweep.
    let churn = router(QueuesConfig {
        max_messages_per_queue: 0,
        overflow: QueueOverflow::Reject,
        empty_queue_grace_ms: 0,
        max_queues_per_session: usize::MAX,
        ..QueuesConfig::default()
    });
    let fresh: Vec<Vec<String>> = (0..THREADS)
        .map(|t| {
            (0..CREATED_PER_THREAD)
                .map(|i| format!("/queue/tmp.{t}.{i}"))
                .collect()
        })
        .collect();
    let churn_total = THREADS * CREATED_PER_THREAD;
    group.throughput(Throughput::Elements(churn_total as u64));
    group.bench_function("create_then_sweep", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let created = on_threads(|t| {
                        for name in &fresh[t] {
                            churn.publish(name, &headers, &body, &creator);
                        }
                    });
                    let start = std::time::Instant::now();
                    let deleted = churn.sweep(std::time::Instant::now());
                    assert_eq!(deleted, churn_total);
                    created + start.elapsed()
                })
                .sum()
        })
    });
    // The two halves apart: creation by 4 threads (then an untimed sweep), and the sweep
    // alone (after an untimed creation).
    group.bench_function("create", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let created = on_threads(|t| {
                        for name in &fresh[t] {
                            churn.publish(name, &headers, &body, &creator);
                        }
                    });
                    assert_eq!(churn.sweep(std::time::Instant::now()), churn_total);
                    created
                })
                .sum()
        })
    });
    group.bench_function("sweep", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    on_threads(|t| {
                        for name in &fresh[t] {
                            churn.publish(name, &headers, &body, &creator);
                        }
                    });
                    let start = std::time::Instant::now();
                    assert_eq!(churn.sweep(std::time::Instant::now()), churn_total);
                    start.elapsed()
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    literal_fanout,
    churn,
    wildcard_heavy,
    publish_to_10k,
    literal_churn_threads,
    queue_map_threads
);
criterion_main!(benches);
