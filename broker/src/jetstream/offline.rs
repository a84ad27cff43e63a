//! Offline delivery on JetStream (`[[users.offline]]`, docs/destinations.md): routing's
//! [`OfflineStore`].
//!
//! - Block `n` has its stream `<c>_offline_<n>` on `<c>.off.<n>.>`, a subject per user
//!   (`<c>.off.<n>.<user>`, the name as one escaped token). Work-queue retention (a message
//!   acknowledged by the user's consumer is deleted), `max_age = keep_ms`,
//!   `max_msgs_per_subject = max_per_user` with discard old (the user's oldest goes).
//! - Whether a user is online: a node holding a session of the user subscribed to block `n`'s
//!   destination answers requests on `<c>.online.<n>.<user>`; a SEND's node asks there, and
//!   NATS's "no responders" means nobody anywhere (the link's `no_echo` keeps a node from
//!   answering itself, which its own user directory does). No answer within
//!   `cluster.presence_timeout_ms` counts as offline too: a node whose last such subscription
//!   just ended may still be subscribed without answering, and a message stored for a user who
//!   is online after all is delivered late rather than lost.
//! - A subscription drains the user's durable consumer (`u-<user>-<hash>`, one for every
//!   node, so each stored message goes to one session) into its queue, acknowledging each
//!   message the queue took, for a window long enough for a SEND that found the user offline
//!   just before to be stored.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::CreateStreamErrorKind;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, Stream};
use async_nats::jetstream::{self, AckKind, Context, Message};
use async_nats::{Client, HeaderMap, RequestErrorKind};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use herald_protocol::Headers;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::OpenError;
use super::names::{MAX_QUEUE_SUBJECT, offline_consumer_name};
use crate::cluster::subject::escape_token;
use crate::cluster::wire::{put_stomp_headers, stomp_headers};
use crate::config::{Config, JetStreamStorage};
use crate::routing::cluster::BoxFuture;
use crate::routing::offline::{Decision, OfflineSend, OfflineStore, StoredTarget, Taken};

/// Stored messages pulled at a time by one subscription.
const DRAIN_BATCH: usize = 64;
/// A drain ends once less than this is left of its window.
const MIN_PULL: Duration = Duration::from_millis(50);

/// The offline store of one node: cheap to share, every clone the same store.
#[derive(Debug)]
pub struct OfflineJetStream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    js: Context,
    blocks: Vec<Block>,
    /// Users this node answers for, by block: its subscriptions of each, and the task
    /// answering on the user's online subject.
    answering: Mutex<HashMap<(usize, String), Answering>>,
    /// How long the other nodes get to answer whether a user is online.
    ask_timeout: Duration,
    request_timeout: Duration,
    ack_wait: Duration,
    consumer_idle: Duration,
}

#[derive(Debug)]
struct Block {
    stream: Stream<()>,
    /// `<c>.off.<n>.`
    stored: String,
    /// `<c>.online.<n>.`
    online: String,
    keep: Duration,
    max_per_user: u64,
}

#[derive(Debug)]
struct Answering {
    subscriptions: usize,
    task: JoinHandle<()>,
}

impl Block {
    /// `prefix` followed by the user name as one token.
    fn subject(prefix: &str, user: &str) -> Result<String, String> {
        let mut subject = String::with_capacity(prefix.len() + user.len() + 8);
        subject.push_str(prefix);
        escape_token(&mut subject, user);
        if subject.len() > MAX_QUEUE_SUBJECT {
            return Err(format!(
                "the user name is too long for the store ({} bytes as a NATS subject; at most {MAX_QUEUE_SUBJECT})",
                subject.len()
            ));
        }
        Ok(subject)
    }
}

impl OfflineJetStream {
    /// Creates the stream of each `[[users.offline]]` block of `config`, or updates an
    /// existing one to it. `client` is a `[cluster]` connection; `[queues.jetstream]` gives
    /// storage, replicas, the ack wait, the consumers' idle time and the request timeout.
    pub async fn open(
        client: Client,
        cluster: &str,
        config: &Config,
    ) -> Result<OfflineJetStream, OpenError> {
        let settings = &config.queues.jetstream;
        let request_timeout = Duration::from_millis(settings.request_timeout_ms);
        let js = jetstream::ContextBuilder::new()
            .timeout(request_timeout)
            .ack_timeout(request_timeout)
            .build(client.clone());
        let mut blocks = Vec::new();
        for (n, offline) in config.users.offline.iter().enumerate() {
            let name = format!("{cluster}_offline_{n}");
            let keep = Duration::from_millis(offline.keep_ms);
            let wanted = stream::Config {
                name: name.clone(),
                subjects: vec![format!("{cluster}.off.{n}.>")],
                retention: RetentionPolicy::WorkQueue,
                storage: match settings.storage {
                    JetStreamStorage::File => stream::StorageType::File,
                    JetStreamStorage::Memory => stream::StorageType::Memory,
                },
                num_replicas: settings.replicas,
                max_age: keep,
                max_messages_per_subject: i64::try_from(offline.max_per_user).unwrap_or(i64::MAX),
                discard: DiscardPolicy::Old,
                ..Default::default()
            };
            let failed = |message: String| OpenError::JetStream {
                stream: name.clone(),
                message,
            };
            if let Err(e) = js.create_stream(wanted.clone()).await {
                match e.kind() {
                    CreateStreamErrorKind::JetStreamUnavailable => {
                        return Err(OpenError::NoJetStream);
                    }
                    CreateStreamErrorKind::TimedOut => {
                        return Err(OpenError::TimedOut(settings.request_timeout_ms));
                    }
                    // It exists with other settings (a changed block): take the new ones.
                    _ => {
                        tracing::info!(stream = %name, "updating the offline stream to the configuration");
                        js.update_stream(&wanted)
                            .await
                            .map_err(|e| failed(format!("cannot create or update it: {e}")))?;
                    }
                }
            }
            let stream = js
                .get_stream_no_info(&name)
                .await
                .map_err(|e| failed(e.to_string()))?;
            blocks.push(Block {
                stream,
                stored: format!("{cluster}.off.{n}."),
                online: format!("{cluster}.online.{n}."),
                keep,
                max_per_user: offline.max_per_user,
            });
        }
        Ok(OfflineJetStream {
            inner: Arc::new(Inner {
                client,
                js,
                blocks,
                answering: Mutex::new(HashMap::new()),
                ask_timeout: Duration::from_millis(
                    config
                        .cluster
                        .as_ref()
                        .map_or(request_timeout.as_millis() as u64, |c| {
                            c.presence_timeout_ms
                        }),
                ),
                request_timeout,
                ack_wait: Duration::from_millis(settings.ack_wait_ms),
                consumer_idle: Duration::from_millis(settings.consumer_idle_ms),
            }),
        })
    }
}

impl OfflineStore for OfflineJetStream {
    fn store_unless_online(&self, send: OfflineSend) -> BoxFuture<Result<Decision, String>> {
        let inner = Arc::clone(&self.inner);
        Box::pin(async move { inner.store_unless_online(send).await })
    }

    fn subscribed(&self, block: usize, user: &str, target: StoredTarget) {
        let inner = &self.inner;
        let Some(online) = inner
            .blocks
            .get(block)
            .and_then(|b| Block::subject(&b.online, user).ok())
        else {
            return;
        };
        match inner.answering().entry((block, user.to_owned())) {
            Entry::Occupied(mut answering) => answering.get_mut().subscriptions += 1,
            Entry::Vacant(vacant) => {
                vacant.insert(Answering {
                    subscriptions: 1,
                    task: tokio::spawn(answer(inner.client.clone(), online)),
                });
            }
        }
        let (inner, user) = (Arc::clone(inner), user.to_owned());
        tokio::spawn(async move {
            if let Err(e) = inner.drain(block, &user, &target).await {
                tracing::warn!(user, error = %e, "offline delivery: cannot drain the stored messages; they stay stored");
            }
        });
    }

    fn unsubscribed(&self, block: usize, user: &str) {
        if let Entry::Occupied(mut answering) =
            self.inner.answering().entry((block, user.to_owned()))
        {
            answering.get_mut().subscriptions -= 1;
            if answering.get().subscriptions == 0 {
                answering.remove().task.abort();
            }
        }
    }
}

impl Inner {
    fn answering(&self) -> std::sync::MutexGuard<'_, HashMap<(usize, String), Answering>> {
        self.answering
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn store_unless_online(&self, send: OfflineSend) -> Result<Decision, String> {
        let block = self.blocks.get(send.block).ok_or("no such block")?;
        let online = Block::subject(&block.online, &send.user)?;
        let asked =
            tokio::time::timeout(self.ask_timeout, self.client.request(online, Bytes::new())).await;
        match asked {
            Ok(Ok(_)) => return Ok(Decision::Online),
            // Nobody subscribed, or nobody answered in time: stored.
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    RequestErrorKind::NoResponders | RequestErrorKind::TimedOut
                ) => {}
            Err(_) => {}
            Ok(Err(e)) => return Err(format!("cannot ask the other nodes: {e}")),
        }
        let subject = Block::subject(&block.stored, &send.user)?;
        // At max_per_user JetStream drops the user's oldest to store this one: counted from
        // the user's count before (best effort: a failed look or a concurrent SEND may miss
        // one).
        let kept = match block.stream.info_with_subjects(&subject).await {
            Ok(mut info) => info.try_next().await.ok().flatten().map_or(0, |(_, n)| n),
            Err(_) => 0,
        };
        let mut map = HeaderMap::new();
        put_stomp_headers(&mut map, &send.headers);
        self.js
            .publish_with_headers(subject, map, send.body)
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        Ok(Decision::Stored {
            dropped_oldest: kept as u64 >= block.max_per_user,
        })
    }

    /// Offers `user`'s stored messages of block `block` to `target`, in order, for the time a
    /// SEND may take to ask and store (`presence_timeout_ms` + `request_timeout_ms`, twice
    /// over): one that found the user offline just before this subscription was made is
    /// still delivered.
    async fn drain(&self, block: usize, user: &str, target: &StoredTarget) -> Result<(), String> {
        let Some(b) = self.blocks.get(block) else {
            return Ok(());
        };
        let consumer: PullConsumer = b
            .stream
            .create_consumer(pull::Config {
                durable_name: Some(offline_consumer_name(user)),
                filter_subject: Block::subject(&b.stored, user)?,
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.ack_wait,
                max_deliver: -1,
                inactive_threshold: self.consumer_idle,
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        let until = Instant::now() + (self.ask_timeout + self.request_timeout) * 2;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left < MIN_PULL || !target.is_open() {
                return Ok(());
            }
            let mut batch = consumer
                .batch()
                .max_messages(DRAIN_BATCH)
                .expires(left)
                .messages()
                .await
                .map_err(|e| e.to_string())?;
            while let Some(message) = batch.next().await {
                let message = message.map_err(|e| e.to_string())?;
                if !settle(b.keep, target, &message).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Offers one stored message to `target` and settles it: acknowledged (deleted) once the
/// queue took it or it turned out too old, NACKed (for a later subscription) if the queue
/// did not take it. Returns whether to go on.
async fn settle(keep: Duration, target: &StoredTarget, message: &Message) -> bool {
    let age = message.info().ok().and_then(|info| {
        SystemTime::now()
            .duration_since(SystemTime::from(info.published))
            .ok()
    });
    let taken = if age.is_some_and(|age| age > keep) {
        target.record_too_old();
        Taken::Expired
    } else {
        let headers = match &message.headers {
            Some(map) => stomp_headers(map),
            None => Some(Headers::new()),
        };
        match headers {
            Some(headers) => target.offer(&headers, &message.payload),
            // Not written by Herald: never deliverable.
            None => Taken::Expired,
        }
    };
    let kind = match taken {
        Taken::Yes | Taken::Expired => AckKind::Ack,
        Taken::No => AckKind::Nak(None),
    };
    // Sent without waiting for JetStream's answer: one lost on the way means the message
    // comes back after the ack wait.
    let _ = message.ack_with(kind).await;
    taken != Taken::No
}

/// Answers every request on `subject` (a user's online subject) until aborted.
async fn answer(client: Client, subject: String) {
    let mut requests = match client.subscribe(subject).await {
        Ok(requests) => requests,
        Err(e) => {
            return tracing::warn!(error = %e, "offline delivery: cannot answer for a user");
        }
    };
    while let Some(request) = requests.next().await {
        if let Some(reply) = request.reply {
            let _ = client.publish(reply, Bytes::new()).await;
        }
    }
}
