//! `QueueStore`: the stream, created or checked at start, and publishing with JetStream's
//! acknowledgement.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::context::{
    CreateStreamErrorKind, GetStreamErrorKind, PublishError, PublishErrorKind, RequestErrorKind,
};
use async_nats::jetstream::stream::{Config as StreamConfig, Stream};
use async_nats::jetstream::{self, Context, ErrorCode};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;
use herald_protocol::Headers;

use super::names::{Names, consumer_name};
use super::pull::Puller;
use super::settings::{compare, consumer_config, stream_config, stream_name};
use super::{OpenError, StoreError};
use crate::cluster::wire::put_stomp_headers;
use crate::config::QueuesJetStreamConfig;
use crate::metrics::StoreCounts;

/// A stored message's place in the stream (its JetStream sequence): the same on every
/// delivery of it, on every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoredId(pub u64);

impl fmt::Display for StoredId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The queue store of one node: cheap to clone, every clone the same store.
#[derive(Clone)]
pub struct QueueStore {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for QueueStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueStore")
            .field("stream", &self.inner.stream_name)
            .finish_non_exhaustive()
    }
}

pub(super) struct Inner {
    pub(super) js: Context,
    stream: Stream<()>,
    stream_name: String,
    /// The stream as configured, to create it again if it disappears (a NATS server keeping
    /// it in memory restarted).
    wanted: StreamConfig,
    names: Names,
    pub(super) config: QueuesJetStreamConfig,
    pub(super) counters: Counters,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) published: AtomicU64,
    pub(super) delivered: AtomicU64,
    pub(super) redelivered: AtomicU64,
    pub(super) acked: AtomicU64,
    pub(super) nacked: AtomicU64,
    pub(super) terminated: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) dead_dropped: AtomicU64,
    pub(super) expired: AtomicU64,
    pub(super) malformed: AtomicU64,
}

pub(super) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// How often a starting node asks again a JetStream that is not ready.
const START_POLL: Duration = Duration::from_millis(250);

/// JetStream's error code for "JetStream system temporarily unavailable" (no leader).
const CLUSTER_NOT_AVAILABLE: u64 = 10008;

/// Checks that JetStream answers for this account.
async fn check_jetstream(js: &Context, request_timeout_ms: u64) -> Result<(), OpenError> {
    // The account's JetStream information, read as plain JSON: async-nats's typed answer does
    // not parse what nats-server 2.9 (Debian's) sends.
    let answer: serde_json::Value =
        js.request("INFO", &serde_json::json!({}))
            .await
            .map_err(|e| match e.kind() {
                RequestErrorKind::NoResponders => OpenError::NoJetStream,
                RequestErrorKind::TimedOut => OpenError::TimedOut(request_timeout_ms),
                _ => OpenError::JetStream {
                    stream: String::new(),
                    message: e.to_string(),
                },
            })?;
    let Some(error) = answer.get("error") else {
        return Ok(());
    };
    let number = |key: &str| error.get(key).and_then(serde_json::Value::as_u64);
    if number("err_code") == Some(CLUSTER_NOT_AVAILABLE) {
        return Err(OpenError::NoLeader);
    }
    // 503 otherwise: JetStream is not enabled (for this account).
    if number("code") == Some(503) {
        return Err(OpenError::NoJetStream);
    }
    Err(OpenError::JetStream {
        stream: String::new(),
        message: error.to_string(),
    })
}

impl QueueStore {
    /// Checks that JetStream answers, then creates the stream of cluster `cluster` or checks
    /// the existing one (limits that differ are updated; retention, storage or subjects that
    /// differ are an error). `client` is a `[cluster]` connection (`cluster::connect`), which
    /// may still be connecting: a JetStream that does not answer yet, or answers that it has
    /// no leader (its servers starting together elect one; a request made before that gets
    /// no answer at all), is asked again until `start_wait_ms` has passed.
    pub async fn open(
        client: Client,
        cluster: &str,
        config: &QueuesJetStreamConfig,
    ) -> Result<QueueStore, OpenError> {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(config.start_wait_ms);
        let mut waiting = false;
        loop {
            match QueueStore::open_once(client.clone(), cluster, config).await {
                Err(e) if e.may_pass() && tokio::time::Instant::now() < deadline => {
                    if !waiting {
                        tracing::info!(error = %e, "JetStream is not ready; asking again until queues.jetstream.start_wait_ms has passed");
                        waiting = true;
                    }
                    tokio::time::sleep(START_POLL).await;
                }
                Err(e) if e.may_pass() => {
                    return Err(OpenError::NotReady {
                        waited_ms: config.start_wait_ms,
                        last: Box::new(e),
                    });
                }
                opened => return opened,
            }
        }
    }

    async fn open_once(
        client: Client,
        cluster: &str,
        config: &QueuesJetStreamConfig,
    ) -> Result<QueueStore, OpenError> {
        let timeout = Duration::from_millis(config.request_timeout_ms);
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .ack_timeout(timeout)
            .build(client);
        check_jetstream(&js, config.request_timeout_ms).await?;
        let name = stream_name(cluster, config);
        let names = Names::new(cluster);
        let wanted = stream_config(&name, &names, config);
        let failed = |message: String| OpenError::JetStream {
            stream: name.clone(),
            message,
        };
        // Twice at most: another node starting at the same time may create the stream between
        // the look and the creation, which JetStream then refuses; the second look finds it.
        let mut looked = 0;
        loop {
            looked += 1;
            match js.get_stream(&name).await {
                Ok(mut existing) => {
                    let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
                    if compare(&info.config, &wanted)? {
                        tracing::info!(stream = %name, "updating the queue stream's limits to the configuration");
                        js.update_stream(&wanted)
                            .await
                            .map_err(|e| failed(format!("cannot update its limits: {e}")))?;
                    }
                    break;
                }
                Err(e)
                    if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
                {
                    let Err(e) = js.create_stream(wanted.clone()).await else {
                        break;
                    };
                    match e.kind() {
                        CreateStreamErrorKind::JetStream(j)
                            if looked == 1
                                && [
                                    ErrorCode::STREAM_NAME_EXIST,
                                    ErrorCode::STREAM_SUBJECT_OVERLAP,
                                ]
                                .contains(&j.error_code()) =>
                        {
                            continue;
                        }
                        CreateStreamErrorKind::TimedOut => {
                            return Err(OpenError::TimedOut(config.request_timeout_ms));
                        }
                        // Fewer servers than `replicas` known yet: a cluster still forming
                        // (or one too small, which waiting does not fix: reported then).
                        CreateStreamErrorKind::JetStream(j)
                            if j.error_code() == ErrorCode::CLUSTER_NO_PEERS =>
                        {
                            return Err(OpenError::NoPeers {
                                replicas: config.replicas,
                                message: e.to_string(),
                            });
                        }
                        _ => return Err(failed(format!("cannot create it: {e}"))),
                    }
                }
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        let stream = js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(QueueStore {
            inner: Arc::new(Inner {
                js,
                stream,
                stream_name: name,
                wanted,
                names,
                config: config.clone(),
                counters: Counters::default(),
            }),
        })
    }

    /// Whether `queue` can be stored at all (its subject within the longest Herald uses).
    pub fn check(&self, queue: &str) -> Result<(), StoreError> {
        self.inner.names.subject(queue).map(drop)
    }

    /// The stream's name.
    pub fn stream_name(&self) -> &str {
        &self.inner.stream_name
    }

    /// Stores a message for `queue` (its destination, `/queue/x`) and returns once JetStream
    /// has acknowledged it: on the servers' disks under file storage, on `replicas` servers.
    /// The STOMP headers travel as the cluster link carries them, in order.
    pub async fn publish(
        &self,
        queue: &str,
        headers: &Headers,
        body: Bytes,
    ) -> Result<StoredId, StoreError> {
        self.inner.publish(queue, headers, body).await
    }

    /// The puller of `queue`: creates its durable consumer, or finds the one another node
    /// made (the same name on every node, see `names.rs`).
    pub async fn puller(&self, queue: &str) -> Result<Puller, StoreError> {
        let inner = &self.inner;
        let subject = inner.names.subject(queue)?;
        let name = consumer_name(queue);
        let consumer = inner
            .stream
            .create_consumer(consumer_config(&name, subject, &inner.config))
            .await
            .map_err(|e| StoreError::Consumer {
                consumer: name,
                message: e.to_string(),
            })?;
        Ok(Puller::new(self.inner.clone(), queue, consumer))
    }

    /// What the store has done since start.
    pub fn counts(&self) -> StoreCounts {
        let c = &self.inner.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StoreCounts {
            published: get(&c.published),
            delivered: get(&c.delivered),
            redelivered: get(&c.redelivered),
            acked: get(&c.acked),
            nacked: get(&c.nacked),
            terminated: get(&c.terminated),
            dead_lettered: get(&c.dead_lettered),
            dead_dropped: get(&c.dead_dropped),
            expired: get(&c.expired),
            malformed: get(&c.malformed),
        }
    }
}

impl Inner {
    pub(super) async fn publish(
        &self,
        queue: &str,
        headers: &Headers,
        body: Bytes,
    ) -> Result<StoredId, StoreError> {
        let subject = self.names.subject(queue)?;
        let mut map = HeaderMap::new();
        put_stomp_headers(&mut map, headers);
        let size = header_block_size(&map);
        if size > MAX_HEADER_BYTES {
            return Err(StoreError::HeadersTooLarge {
                size,
                max: MAX_HEADER_BYTES,
            });
        }
        let publish = || async {
            self.js
                .publish_with_headers(subject.clone(), map.clone(), body.clone())
                .await?
                .await
        };
        let ack = match publish().await {
            Err(e) if e.kind() == PublishErrorKind::StreamNotFound => {
                // Nothing answered for the stream: it is gone (kept in memory by a NATS server
                // that restarted), or its replicas are electing a leader. Creating it is a
                // no-op for a stream that exists with this configuration, and makes a lost
                // one again, empty, as at start; then this message is stored once more.
                tracing::warn!(stream = %self.stream_name, "the queue stream does not answer; making sure it exists");
                self.js
                    .create_stream(self.wanted.clone())
                    .await
                    .map_err(|e| StoreError::JetStream(e.to_string()))?;
                publish().await
            }
            other => other,
        }
        .map_err(publish_error)?;
        count(&self.counters.published);
        Ok(StoredId(ack.sequence))
    }
}

/// The most bytes of NATS headers JetStream stores with a message: nats-server refuses 64 KiB
/// or more with error 10097.
const MAX_HEADER_BYTES: usize = 64 * 1024 - 1;

/// The size of `map` as NATS writes it: `NATS/1.0\r\n`, `name: value\r\n` each, `\r\n`.
fn header_block_size(map: &HeaderMap) -> usize {
    map.iter()
        .flat_map(|(name, values)| {
            let name = AsRef::<[u8]>::as_ref(name).len();
            values.iter().map(move |v| name + v.as_str().len() + 4)
        })
        .sum::<usize>()
        + 12
}

fn publish_error(e: PublishError) -> StoreError {
    match e.kind() {
        PublishErrorKind::MaxPayloadExceeded => StoreError::TooLarge,
        PublishErrorKind::TimedOut => StoreError::TimedOut,
        // JetStream refuses past max_bytes or max_messages under discard `new` with a store
        // failure naming the limit.
        _ if ["maximum messages", "maximum bytes"]
            .iter()
            .any(|limit| e.to_string().contains(limit)) =>
        {
            StoreError::Full(e.to_string())
        }
        _ => StoreError::JetStream(e.to_string()),
    }
}
