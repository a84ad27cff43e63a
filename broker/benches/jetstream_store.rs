//! The JetStream queue store's raw rates against a real `nats-server -js` (file storage, in a
//! temporary directory) started by the bench: publish with acknowledgement one at a time and
//! with 256 in flight, and pull-and-ack in pulls of 100.
//!
//! `cargo bench -p herald --bench jetstream_store -- --warm-up-time 1 --measurement-time 5`
//! (`nats-server` on `PATH` or in /usr/sbin, or `NATS_SERVER_BIN`).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use herald::config::QueuesJetStreamConfig;
use herald::jetstream::QueueStore;
use herald_protocol::Headers;
use tokio::runtime::Runtime;

/// A `nats-server -js` on a free loopback port, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nats {
    fn start() -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let bin = std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| {
            if std::path::Path::new("/usr/sbin/nats-server").exists() {
                "/usr/sbin/nats-server".into()
            } else {
                "nats-server".into()
            }
        });
        let child = Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message every benchmark sends: 100 bytes and two headers, like a small job.
fn message() -> (Headers, Bytes) {
    let headers: Headers = [("content-type", "application/json"), ("job", "42")]
        .into_iter()
        .collect();
    (headers, Bytes::from(vec![b'x'; 100]))
}

fn store_rates(c: &mut Criterion) {
    let nats = Nats::start();
    let runtime = Runtime::new().unwrap();
    let store = runtime.block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{}", nats.port))
            .await
            .unwrap();
        QueueStore::open(client, "bench", &QueuesJetStreamConfig::default())
            .await
            .unwrap()
    });
    let (headers, body) = message();
    let mut group = c.benchmark_group("jetstream_store");
    group.sample_size(10);

    // Each iteration runs on the runtime in one `block_on`, timed there (criterion's async
    // support is a feature the workspace does not build).
    group.throughput(Throughput::Elements(1));
    group.bench_function("publish_one_at_a_time", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    store
                        .publish("/queue/one", &headers, body.clone())
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        });
    });

    const IN_FLIGHT: usize = 256;
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("publish_256_in_flight", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let publishes = (0..IN_FLIGHT)
                        .map(|_| store.publish("/queue/many", &headers, body.clone()));
                    for id in join_all(publishes).await {
                        id.unwrap();
                    }
                }
                start.elapsed()
            })
        });
    });

    const PULL: usize = 100;
    let puller = runtime.block_on(store.puller("/queue/pulled")).unwrap();
    group.throughput(Throughput::Elements(PULL as u64));
    group.bench_function("pull_100_and_ack", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    // Stored untimed, then taken and acknowledged.
                    let publishes =
                        (0..PULL).map(|_| store.publish("/queue/pulled", &headers, body.clone()));
                    join_all(publishes).await;
                    let start = Instant::now();
                    let mut taken = 0;
                    while taken < PULL {
                        let mut pull = puller
                            .pull(PULL - taken, Duration::from_secs(1))
                            .await
                            .unwrap();
                        while let Some(delivery) = pull.next().await {
                            delivery.unwrap().handle.ack().await.unwrap();
                            taken += 1;
                        }
                    }
                    timed += start.elapsed();
                }
                timed
            })
        });
    });
    group.finish();
}

criterion_group!(benches, store_rates);
criterion_main!(benches);
