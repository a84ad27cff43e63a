//! Subscription index benchmarks: fan-out lookups, subscribe/unsubscribe churn on a huge
//! destination, and a wildcard-heavy mix.
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
    use herald::routing::topic::{Subscriber, TopicRouter};
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

criterion_group!(
    benches,
    literal_fanout,
    churn,
    wildcard_heavy,
    publish_to_10k
);
criterion_main!(benches);
