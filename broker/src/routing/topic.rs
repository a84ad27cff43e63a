//! Publish-subscribe routing: subscriptions by destination pattern, and fan-out of one
//! publish to every matching subscription's outbox.

use std::sync::Arc;

use herald_protocol::{Headers, MessageTemplate, Version};

use super::publish::{MessageIds, expires, forwarded_headers, is_expired, now_ms};
use super::queue::{Enqueued, Queue, QueuedMessage};
use super::{PatternError, Separator, ShardedTrie};
use crate::config::{DestinationsConfig, Separator as ConfigSeparator};
use crate::outbox::{OutFrame, Outbox, Pushed};

/// One subscription as routing sees it: where to deliver and how to encode. Two handles are
/// the same subscription when session and subscription id agree.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub session: u64,
    pub id: Arc<str>,
    pub version: Version,
    pub outbox: Arc<Outbox>,
    /// Set for a client-ack topic subscription: its messages go through this private queue
    /// (prefetch, ack ids, NACK redelivery) instead of straight into the outbox. Always
    /// `None` in the handle a queue keeps for its consumer.
    pub queue: Option<Arc<Queue>>,
}

impl Subscriber {
    /// An auto-ack subscription handle.
    pub fn new(session: u64, id: &str, version: Version, outbox: Arc<Outbox>) -> Subscriber {
        Subscriber {
            session,
            id: Arc::from(id),
            version,
            outbox,
            queue: None,
        }
    }
}

impl PartialEq for Subscriber {
    fn eq(&self, other: &Subscriber) -> bool {
        self.session == other.session && self.id == other.id
    }
}

impl Eq for Subscriber {}

impl std::hash::Hash for Subscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.session.hash(state);
        self.id.hash(state);
    }
}

/// The outcome of one publish.
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    /// MESSAGE frames queued.
    pub delivered: usize,
    /// Outboxes left above their high-water mark: the publisher should wait for them before
    /// it routes more (back-pressure). Empty, and not allocated, in the common case.
    pub congested: Vec<Arc<Outbox>>,
    /// Subscribers whose queue overflowed (they are being closed as slow consumers).
    pub overflowed: usize,
    /// Older messages dropped to make room (policy `drop_oldest`).
    pub dropped: usize,
    /// The message's `expires` time had passed on arrival: delivered to nobody.
    pub expired: bool,
}

/// Publish-subscribe routing for every broadcast prefix.
#[derive(Debug)]
pub struct TopicRouter {
    /// One trie per prefix, keyed by the destination after the prefix.
    tries: Vec<(String, ShardedTrie<Subscriber>)>,
    message_ids: Arc<MessageIds>,
}

impl TopicRouter {
    /// `prefixes` are the broadcast prefixes; `message_ids` is the node's id source.
    pub fn new(
        prefixes: &[String],
        config: &DestinationsConfig,
        message_ids: Arc<MessageIds>,
    ) -> TopicRouter {
        let separator = match config.separator {
            ConfigSeparator::Slash => Separator::Slash,
            ConfigSeparator::Dot => Separator::Dot,
        };
        // A few shards per core keep publishers on different destinations apart.
        let shards = std::thread::available_parallelism().map_or(4, |n| n.get() * 4);
        let tries = prefixes
            .iter()
            .map(|p| {
                let trie = ShardedTrie::new(separator, shards, config.route_cache_entries);
                (p.clone(), trie)
            })
            .collect();
        TopicRouter { tries, message_ids }
    }

    fn trie_for<'a>(&self, destination: &'a str) -> Option<(&ShardedTrie<Subscriber>, &'a str)> {
        self.tries.iter().find_map(|(prefix, trie)| {
            destination
                .strip_prefix(prefix.as_str())
                .map(|rest| (trie, rest))
        })
    }

    /// Adds a subscription; `destination` may be a pattern.
    pub fn subscribe(&self, destination: &str, subscriber: Subscriber) -> Result<(), RouteError> {
        let (trie, rest) = self.trie_for(destination).ok_or(RouteError::NotATopic)?;
        trie.insert(rest, subscriber).map_err(RouteError::Pattern)
    }

    /// Removes a subscription; false if it was not there.
    pub fn unsubscribe(&self, destination: &str, subscriber: &Subscriber) -> bool {
        self.trie_for(destination)
            .is_some_and(|(trie, rest)| trie.remove(rest, subscriber))
    }

    /// Removes many subscriptions at once, as when a session closes.
    pub fn unsubscribe_all<'a>(
        &self,
        subscriptions: impl IntoIterator<Item = (&'a str, Subscriber)>,
    ) {
        let mut per_trie: Vec<Vec<(&str, Subscriber)>> = vec![Vec::new(); self.tries.len()];
        for (destination, subscriber) in subscriptions {
            if let Some(index) = self
                .tries
                .iter()
                .position(|(prefix, _)| destination.starts_with(prefix.as_str()))
            {
                let rest = &destination[self.tries[index].0.len()..];
                per_trie[index].push((rest, subscriber));
            }
        }
        for ((_, trie), batch) in self.tries.iter().zip(per_trie) {
            if !batch.is_empty() {
                trie.remove_many(batch);
            }
        }
    }

    /// Delivers one SEND to every matching subscription. The MESSAGE is encoded once per
    /// protocol version in use and shared by all subscribers; client-ack subscriptions get it
    /// through their private queue.
    pub fn publish(&self, destination: &str, headers: &Headers, body: &[u8]) -> Fanout {
        let Some((trie, rest)) = self.trie_for(destination) else {
            return Fanout::default();
        };
        let subscribers = trie.matches(rest);
        if subscribers.is_empty() {
            return Fanout::default();
        }
        let expires = expires(headers);
        if is_expired(expires, now_ms()) {
            return Fanout {
                expired: true,
                ..Fanout::default()
            };
        }
        let message_id = self.message_ids.next();
        let forwarded = forwarded_headers(headers);
        let text = std::str::from_utf8(body).is_ok();
        let mut templates: [Option<MessageTemplate>; 3] = [None, None, None];
        let mut queued: Option<Arc<QueuedMessage>> = None;
        let mut fanout = Fanout::default();
        for subscriber in subscribers.iter() {
            if let Some(queue) = &subscriber.queue {
                let message = queued.get_or_insert_with(|| {
                    Arc::new(QueuedMessage::new(
                        message_id.clone(),
                        destination,
                        &forwarded,
                        body,
                        expires,
                    ))
                });
                if let Ok(Enqueued::Accepted) = queue.enqueue(Arc::clone(message)) {
                    fanout.delivered += 1;
                }
                continue;
            }
            let template = templates[subscriber.version as usize].get_or_insert_with(|| {
                MessageTemplate::new(
                    subscriber.version,
                    destination,
                    &message_id,
                    &forwarded,
                    body,
                )
            });
            let frame = OutFrame {
                bytes: template.render(&subscriber.id, None),
                text,
            };
            match subscriber.outbox.push_message(frame) {
                Pushed::Queued => fanout.delivered += 1,
                Pushed::Congested => {
                    fanout.delivered += 1;
                    fanout.congested.push(Arc::clone(&subscriber.outbox));
                }
                Pushed::QueuedAfterDropping(n) => {
                    fanout.delivered += 1;
                    fanout.dropped += n;
                }
                Pushed::Overflowed => fanout.overflowed += 1,
                Pushed::Closed => {}
            }
        }
        fanout
    }
}

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("not a publish-subscribe destination")]
    NotATopic,
    #[error("invalid destination pattern: {0}")]
    Pattern(PatternError),
}
