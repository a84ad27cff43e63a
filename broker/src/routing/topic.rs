//! Publish-subscribe routing: subscriptions by destination pattern, and fan-out of one
//! publish to every matching subscription's outbox.

use std::sync::Arc;

use herald_protocol::{Headers, MessageTemplate};

use super::publish::{MessageIds, expires, forwarded_headers, is_expired, now_ms};
use super::queue::{Enqueued, Queue, QueuedMessage};
use super::subscriber::Subscriber;
use super::{PatternError, Separator, ShardedTrie};
use crate::config::{DestinationsConfig, Separator as ConfigSeparator};
use crate::outbox::{OutFrame, Outbox, Pushed};

/// A topic subscription in the trie: its delivery handle and, for a client-ack
/// subscription, the private queue its messages go through (prefetch, ack ids, NACK
/// redelivery) instead of straight into the outbox. Equal when the handles are.
#[derive(Debug, Clone)]
pub struct TopicSubscriber {
    pub subscriber: Subscriber,
    pub queue: Option<Arc<Queue>>,
}

impl PartialEq for TopicSubscriber {
    fn eq(&self, other: &TopicSubscriber) -> bool {
        self.subscriber == other.subscriber
    }
}

impl Eq for TopicSubscriber {}

impl std::hash::Hash for TopicSubscriber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.subscriber.hash(state);
    }
}

impl From<Subscriber> for TopicSubscriber {
    fn from(subscriber: Subscriber) -> TopicSubscriber {
        TopicSubscriber {
            subscriber,
            queue: None,
        }
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
    tries: Vec<(String, ShardedTrie<TopicSubscriber>)>,
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

    fn trie_for<'a>(
        &self,
        destination: &'a str,
    ) -> Option<(&ShardedTrie<TopicSubscriber>, &'a str)> {
        self.tries.iter().find_map(|(prefix, trie)| {
            destination
                .strip_prefix(prefix.as_str())
                .map(|rest| (trie, rest))
        })
    }

    /// Adds a subscription; `destination` may be a pattern.
    pub fn subscribe(
        &self,
        destination: &str,
        subscriber: impl Into<TopicSubscriber>,
    ) -> Result<(), RouteError> {
        let (trie, rest) = self.trie_for(destination).ok_or(RouteError::NotATopic)?;
        trie.insert(rest, subscriber.into())
            .map_err(RouteError::Pattern)
    }

    /// Removes a subscription; false if it was not there.
    pub fn unsubscribe(&self, destination: &str, subscriber: &Subscriber) -> bool {
        let key = TopicSubscriber::from(subscriber.clone());
        self.trie_for(destination)
            .is_some_and(|(trie, rest)| trie.remove(rest, &key))
    }

    /// Removes many subscriptions at once, as when a session closes.
    pub fn unsubscribe_all<'a>(
        &self,
        subscriptions: impl IntoIterator<Item = (&'a str, Subscriber)>,
    ) {
        let mut per_trie: Vec<Vec<(&str, TopicSubscriber)>> = vec![Vec::new(); self.tries.len()];
        for (destination, subscriber) in subscriptions {
            if let Some(index) = self
                .tries
                .iter()
                .position(|(prefix, _)| destination.starts_with(prefix.as_str()))
            {
                let rest = &destination[self.tries[index].0.len()..];
                per_trie[index].push((rest, subscriber.into()));
            }
        }
        for ((_, trie), batch) in self.tries.iter().zip(per_trie) {
            if !batch.is_empty() {
                trie.remove_many(batch);
            }
        }
    }

    /// Delivers one SEND to every matching subscription on this node, under a new message
    /// id if any subscription matches. The MESSAGE is encoded once per protocol version in use
    /// and shared by all subscribers; client-ack subscriptions get it through their private
    /// queue.
    pub fn publish(&self, destination: &str, headers: &Headers, body: &[u8]) -> Fanout {
        let Some(subscribers) = self.subscribers(destination) else {
            return Fanout::default();
        };
        let expires = expires(headers);
        if is_expired(expires, now_ms()) {
            return Fanout::expired();
        }
        let message = TopicMessage {
            id: &self.message_ids.next(),
            headers: &forwarded_headers(headers),
            body,
            expires,
        };
        fan_out(destination, &subscribers, &message)
    }

    /// Delivers a message whose id and headers are already settled (published on this node for
    /// the cluster too, or arriving from another node) to this node's matching subscriptions.
    pub fn deliver(&self, destination: &str, message: &TopicMessage<'_>) -> Fanout {
        let Some(subscribers) = self.subscribers(destination) else {
            return Fanout::default();
        };
        if is_expired(message.expires, now_ms()) {
            return Fanout::expired();
        }
        fan_out(destination, &subscribers, message)
    }

    /// The subscriptions `destination` reaches here; `None` if there are none.
    fn subscribers(&self, destination: &str) -> Option<Arc<[TopicSubscriber]>> {
        let (trie, rest) = self.trie_for(destination)?;
        let subscribers = trie.matches(rest);
        (!subscribers.is_empty()).then_some(subscribers)
    }
}

/// A published message with its id and the headers subscribers see.
#[derive(Debug, Clone, Copy)]
pub struct TopicMessage<'a> {
    pub id: &'a str,
    /// The publisher's headers minus the broker's own.
    pub headers: &'a Headers,
    pub body: &'a [u8],
    /// `expires`, epoch milliseconds.
    pub expires: Option<u64>,
}

impl Fanout {
    fn expired() -> Fanout {
        Fanout {
            expired: true,
            ..Fanout::default()
        }
    }
}

/// Pushes `message` to each subscriber's outbox (or private queue).
fn fan_out(
    destination: &str,
    subscribers: &[TopicSubscriber],
    message: &TopicMessage<'_>,
) -> Fanout {
    let text = std::str::from_utf8(message.body).is_ok();
    let mut templates: [Option<MessageTemplate>; 3] = [None, None, None];
    let mut queued: Option<Arc<QueuedMessage>> = None;
    let mut fanout = Fanout::default();
    for TopicSubscriber { subscriber, queue } in subscribers {
        if let Some(queue) = queue {
            let queued = queued.get_or_insert_with(|| {
                Arc::new(QueuedMessage::new(
                    message.id.to_owned(),
                    destination,
                    message.headers,
                    message.body,
                    message.expires,
                ))
            });
            if let Ok(Enqueued::Accepted) = queue.enqueue(Arc::clone(queued)) {
                fanout.delivered += 1;
            }
            continue;
        }
        let template = templates[subscriber.version as usize].get_or_insert_with(|| {
            MessageTemplate::new(
                subscriber.version,
                destination,
                message.id,
                message.headers,
                message.body,
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

/// Why a subscription was refused.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("not a publish-subscribe destination")]
    NotATopic,
    #[error("invalid destination pattern: {0}")]
    Pattern(PatternError),
}
