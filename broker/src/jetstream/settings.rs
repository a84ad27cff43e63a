//! What `[queues.jetstream]` asks of JetStream: the stream's configuration, what an existing
//! stream must already have, and each queue's consumer.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};

use super::OpenError;
use super::names::Names;
use crate::config::{JetStreamStorage, QueuesJetStreamConfig};

/// The stream of cluster `cluster`: `[queues.jetstream] stream`, else `<cluster>_queues`.
pub(crate) fn stream_name(cluster: &str, config: &QueuesJetStreamConfig) -> String {
    if config.stream.is_empty() {
        format!("{cluster}_queues")
    } else {
        config.stream.clone()
    }
}

/// The stream as configured. Work-queue retention: a message is deleted once acknowledged.
/// Discard `new`: at a bound a SEND is refused rather than a stored message dropped.
pub(crate) fn stream_config(
    name: &str,
    names: &Names,
    config: &QueuesJetStreamConfig,
) -> stream::Config {
    stream::Config {
        name: name.to_owned(),
        subjects: vec![names.all()],
        retention: RetentionPolicy::WorkQueue,
        storage: storage(config.storage),
        num_replicas: config.replicas,
        max_age: Duration::from_millis(config.max_age_ms),
        max_bytes: limit(config.max_bytes),
        max_messages: limit(config.max_messages),
        discard: DiscardPolicy::New,
        ..Default::default()
    }
}

fn storage(storage: JetStreamStorage) -> StorageType {
    match storage {
        JetStreamStorage::File => StorageType::File,
        JetStreamStorage::Memory => StorageType::Memory,
    }
}

/// JetStream's "no limit" is -1; validation keeps values within i64.
fn limit(value: u64) -> i64 {
    if value == 0 {
        -1
    } else {
        i64::try_from(value).unwrap_or(i64::MAX)
    }
}

/// What an existing stream must be for Herald to use it: settings JetStream cannot change in
/// place (retention, storage) and the subjects. `Ok(true)` if only changeable limits differ
/// (replicas, age, bytes, messages, discard), which `open` then updates.
pub(crate) fn compare(
    existing: &stream::Config,
    wanted: &stream::Config,
) -> Result<bool, OpenError> {
    let incompatible = |field, has: String, needs: String| OpenError::Incompatible {
        stream: wanted.name.clone(),
        field,
        existing: has,
        wanted: needs,
    };
    if existing.retention != wanted.retention {
        return Err(incompatible(
            "retention",
            format!("{:?}", existing.retention),
            format!("{:?}", wanted.retention),
        ));
    }
    if existing.storage != wanted.storage {
        return Err(incompatible(
            "storage",
            format!("{:?}", existing.storage),
            format!("{:?} (queues.jetstream.storage)", wanted.storage),
        ));
    }
    if existing.subjects != wanted.subjects {
        return Err(incompatible(
            "subjects",
            format!("{:?}", existing.subjects),
            format!("{:?}", wanted.subjects),
        ));
    }
    Ok(existing.num_replicas.max(1) != wanted.num_replicas
        || existing.max_age != wanted.max_age
        || existing.max_bytes != wanted.max_bytes
        || existing.max_messages != wanted.max_messages
        || existing.discard != wanted.discard)
}

/// The durable pull consumer of one queue. Herald counts deliveries against `max_deliver`
/// itself and JetStream never stops redelivering: a message JetStream gave up on would stay
/// in a work-queue stream, never delivered and never deleted.
pub(crate) fn consumer_config(
    name: &str,
    subject: String,
    config: &QueuesJetStreamConfig,
) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: subject,
        deliver_policy: DeliverPolicy::All,
        ack_policy: AckPolicy::Explicit,
        ack_wait: Duration::from_millis(config.ack_wait_ms),
        max_deliver: -1,
        max_ack_pending: i64::try_from(config.max_ack_pending).unwrap_or(i64::MAX),
        inactive_threshold: Duration::from_millis(config.consumer_idle_ms),
        ..Default::default()
    }
}
