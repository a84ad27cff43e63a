//! The router: the one entry point for everything that subscribes or publishes — sessions,
//! the HTTP API, other nodes. A destination is parsed once into a route; the router then
//! reaches the topic trie, the queues, the user directory and the cluster link.
//!
//! Interest: the router counts local subscriptions per topic destination (or pattern) and
//! tells the cluster link about the first and the last, and the user directory tells it
//! about a user's first and last session here, so a NATS link subscribes a subject only
//! while someone on this node wants it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use herald_protocol::Headers;

use super::cluster::{
    Audience, ClusterLink, Crossing, LinkState, Presence, RemoteDisconnect, Unforwardable,
};
use super::destination::{DestinationKind, Destinations};
use super::durable::{DurableStore, Storing};
use super::has_wildcards;
use super::offline::{Decision, OfflineOutcome, OfflineRouting, OfflineSend, StoredTarget};
use super::publish::{MessageIds, expires, forwarded_headers, is_expired, now_ms};
use super::queue::{Bound, ConsumerSpec, Creator, Enqueued, Queue, QueueRouter};
use super::rates::TopDestinations;
use super::subscriber::Subscriber;
use super::topic::{Fanout, TopicMessage, TopicRouter, TopicSubscriber};
use super::user::{self, UserDirectory};
use crate::config::Config;
use crate::metrics::{QueueStats, Stats};
use crate::outbox::Outbox;

/// Why the router refused a destination: the ERROR frame's `message` and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: &'static str,
    pub detail: String,
}

impl Refusal {
    fn new(message: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            message,
            detail: detail.into(),
        }
    }

    /// A SEND or SUBSCRIBE refused at a queue bound.
    pub fn queue_full(destination: &str, bound: Bound) -> Refusal {
        Refusal::new(
            "queue full",
            format!(
                "{destination} is at {}; the message was not accepted",
                bound.config_key()
            ),
        )
    }

    /// A SEND met a queue at its bound under policy `block` at a COMMIT, which cannot wait.
    pub fn no_room_at_commit(destination: &str) -> Refusal {
        Refusal::new(
            "queue full",
            format!(
                "{destination} has no room; a COMMIT does not wait for it, the message was not accepted"
            ),
        )
    }
}

/// Where a SEND goes, parsed once from its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendRoute<'a> {
    /// Every matching subscription, on every node.
    Topic(&'a str),
    /// One consumer of this node's queue.
    Queue(&'a str),
    /// `/user/<name>/queue/x`: each session of user `name` (or the one session `name`)
    /// subscribed to `/user/queue/x`, wherever it is. `destination` is `/queue/x`.
    User {
        name: Cow<'a, str>,
        destination: &'a str,
    },
    /// A resolved name (`/queue/x-user<sessionId>`): the queue of that session's user
    /// destination.
    Resolved { resolved: &'a str, session: &'a str },
}

/// Where a SUBSCRIBE goes, parsed once from its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeRoute<'a> {
    /// A topic destination or pattern.
    Topic(&'a str),
    /// A named queue, or the session's own resolved name.
    Queue(&'a str),
    /// `/user/queue/x`: the session's resolved queue `/queue/x-user<sessionId>`.
    User {
        shown: &'a str,
        destination: &'a str,
        resolved: String,
    },
}

/// Which local interest the router counts.
#[derive(Debug, Clone, Copy)]
enum Interest {
    Topic,
    Queue,
}

/// What a session keeps of one subscription, to leave it again.
#[derive(Debug)]
pub struct Route {
    /// The destination routed: as subscribed, or the resolved name of a user destination.
    pub destination: String,
    /// The user destination it stands for (`/queue/x` for `/user/queue/x`).
    pub user_destination: Option<String>,
    /// In the topic trie (rather than a named queue).
    pub in_topics: bool,
    /// Where its messages wait: its named queue, or the private queue of a client-ack topic
    /// subscription; `None` for an auto-ack topic subscription.
    pub queue: Option<Arc<Queue>>,
    /// For a user destination opted in to offline delivery: its block and the user.
    pub offline: Option<(usize, String)>,
}

/// The session a subscription belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    pub id: &'a str,
    pub user: Option<&'a str>,
    /// Counts the queues the session creates.
    pub creator: &'a Creator,
}

/// What routing a SEND did now, and what the caller still has to do.
#[derive(Debug, Default)]
pub struct Published {
    /// Outboxes (a subscriber's, or the cluster link's) left above their high-water mark:
    /// the publisher should wait for them (back-pressure).
    pub congested: Vec<Arc<Outbox>>,
    /// Queues the message must be put in, in order, through [`Router::enqueue`] (which may
    /// ask the publisher to wait for room).
    pub queues: VecDeque<String>,
    /// Topic subscriptions on this node the message was queued for (the HTTP API's answer).
    pub delivered: usize,
    /// A SEND to a user destination opted in to offline delivery, reaching no session here:
    /// nothing is routed yet; the caller settles it through [`Router::settle_offline`].
    pub offline: Option<OfflineSend>,
}

/// The node's routing.
#[derive(Debug)]
pub struct Router {
    node_id: String,
    destinations: Destinations,
    user_prefix: String,
    pub topics: TopicRouter,
    pub queues: QueueRouter,
    users: Arc<dyn UserDirectory>,
    link: Arc<dyn ClusterLink>,
    /// Local subscriptions per topic destination or pattern.
    topic_interest: DashMap<String, usize>,
    /// Local consumers per named queue (resolved user queues included).
    queue_interest: DashMap<String, usize>,
    message_ids: Arc<MessageIds>,
    stats: Arc<Stats>,
    /// Creates the queues that messages from other nodes need.
    remote_creator: Creator,
    /// The destinations published to most lately (the admin page).
    pub rates: TopDestinations,
    /// User destinations opted in to offline delivery, and their store.
    pub offline: OfflineRouting,
    /// Where named queues keep their messages under `queues.store = "jetstream"`.
    durable: Option<Arc<dyn DurableStore>>,
}

impl Router {
    pub fn new(
        config: &Config,
        node_id: &str,
        users: Arc<dyn UserDirectory>,
        link: Arc<dyn ClusterLink>,
        stats: Arc<Stats>,
    ) -> Router {
        let destinations = Destinations::new(&config.destinations);
        // One id source for topics and queues keeps message ids unique on the node; the node id
        // in them keeps them unique in the cluster.
        let message_ids = Arc::new(MessageIds::for_run(node_id));
        let topics = TopicRouter::new(
            destinations.broadcast_prefixes(),
            &config.destinations,
            Arc::clone(&message_ids),
        );
        let queues = QueueRouter::new(&config.queues, Arc::clone(&message_ids), Arc::clone(&stats));
        Router {
            node_id: node_id.to_owned(),
            destinations,
            user_prefix: config.destinations.user_prefix.clone(),
            topics,
            queues,
            users,
            link,
            topic_interest: DashMap::new(),
            queue_interest: DashMap::new(),
            message_ids,
            stats,
            remote_creator: Creator::default(),
            rates: TopDestinations::default(),
            offline: OfflineRouting::new(config),
            durable: None,
        }
    }

    /// Keeps named queues' messages in `store` rather than in this node's memory.
    pub fn with_durable_store(mut self, store: Arc<dyn DurableStore>) -> Router {
        self.durable = Some(store);
        self
    }

    /// The store of the queue `destination`, if it is durable: a named queue (a session's
    /// resolved user queue stays in memory: it lives and dies with its session).
    fn durable_store(&self, destination: &str) -> Option<&Arc<dyn DurableStore>> {
        self.durable
            .as_ref()
            .filter(|_| user::resolved_session(destination).is_none())
    }

    pub fn destinations(&self) -> &Destinations {
        &self.destinations
    }

    pub fn link_state(&self) -> LinkState {
        self.link.state()
    }

    /// Parses a SEND's destination.
    pub fn parse_send<'a>(&self, destination: &'a str) -> Result<SendRoute<'a>, Refusal> {
        match self.destinations.classify(destination) {
            DestinationKind::User => {
                let (name, rest) = user::strip_prefix(&self.user_prefix, destination)
                    .and_then(user::parse_target)
                    .ok_or_else(|| {
                        Refusal::new(
                            "invalid destination",
                            format!(
                                "a SEND to a user destination names the user: /user/<name>/queue/x, not {destination}"
                            ),
                        )
                    })?;
                let destination = self.user_destination_checked(destination, rest)?;
                Ok(SendRoute::User {
                    name: Cow::Owned(name),
                    destination,
                })
            }
            DestinationKind::Topic | DestinationKind::Queue if has_wildcards(destination) => {
                Err(Refusal::new(
                    "invalid destination",
                    format!("cannot SEND to a destination with wildcards: {destination}"),
                ))
            }
            kind @ (DestinationKind::Topic | DestinationKind::Queue) => {
                // A resolved user destination is a queue, whatever its kind prefix.
                if let Some(session) = user::resolved_session(destination) {
                    Ok(SendRoute::Resolved {
                        resolved: destination,
                        session,
                    })
                } else if kind == DestinationKind::Topic {
                    Ok(SendRoute::Topic(destination))
                } else {
                    Ok(SendRoute::Queue(destination))
                }
            }
            DestinationKind::Unknown => Err(unknown(destination)),
        }
    }

    /// Parses a SUBSCRIBE's destination for session `session`.
    pub fn parse_subscribe<'a>(
        &self,
        destination: &'a str,
        session: &str,
    ) -> Result<SubscribeRoute<'a>, Refusal> {
        let kind = self.destinations.classify(destination);
        if kind == DestinationKind::User {
            let rest = user::strip_prefix(&self.user_prefix, destination).unwrap_or_default();
            let rest = self.user_destination_checked(destination, rest)?;
            return Ok(SubscribeRoute::User {
                shown: destination,
                destination: rest,
                resolved: user::resolve(rest, session),
            });
        }
        if let Some(owner) = user::resolved_session(destination) {
            if owner != session {
                return Err(Refusal::new(
                    "access denied",
                    format!("{destination} is the user destination of another session"),
                ));
            }
            return Ok(SubscribeRoute::Queue(destination));
        }
        match kind {
            DestinationKind::Topic => Ok(SubscribeRoute::Topic(destination)),
            DestinationKind::Queue if has_wildcards(destination) => Err(Refusal::new(
                "invalid destination",
                format!("a queue subscription cannot be a pattern: {destination}"),
            )),
            DestinationKind::Queue => Ok(SubscribeRoute::Queue(destination)),
            _ => Err(unknown(destination)),
        }
    }

    /// What follows the user prefix, if it names a topic or queue destination without
    /// wildcards.
    fn user_destination_checked<'a>(
        &self,
        destination: &str,
        rest: &'a str,
    ) -> Result<&'a str, Refusal> {
        match self.destinations.classify(rest) {
            DestinationKind::Topic | DestinationKind::Queue if !has_wildcards(rest) => Ok(rest),
            DestinationKind::Topic | DestinationKind::Queue => Err(Refusal::new(
                "invalid destination",
                format!("a user destination cannot be a pattern: {destination}"),
            )),
            _ => Err(Refusal::new(
                "invalid destination",
                format!(
                    "a user destination must name a topic or queue destination after the user prefix: {destination}"
                ),
            )),
        }
    }

    /// A session was accepted as `user`: it counts for presence and can be reached through
    /// `/user/<user>/…`. Anonymous sessions join on their first user-destination
    /// subscription instead, so that sessions without any cost the directory nothing.
    pub fn open_session(&self, session: &str, user: Option<&str>) {
        if user.is_some() {
            self.users.open(session, user, &self.user_hook());
        }
    }

    /// Adds a subscription. `spec.subscriber` is where its messages go.
    pub fn subscribe(
        &self,
        session: SessionRef<'_>,
        route: SubscribeRoute<'_>,
        mut spec: ConsumerSpec,
    ) -> Result<Route, Refusal> {
        match route {
            SubscribeRoute::Topic(destination) => {
                let queue = spec
                    .ack
                    .is_client()
                    .then(|| self.queues.private_queue(destination, spec.clone()));
                let subscriber = TopicSubscriber {
                    subscriber: spec.subscriber,
                    queue: queue.clone(),
                };
                self.topics
                    .subscribe(destination, subscriber)
                    .map_err(|e| Refusal::new("invalid destination", e.to_string()))?;
                self.interest_changed(Interest::Topic, destination, true);
                Ok(Route {
                    destination: destination.to_owned(),
                    user_destination: None,
                    in_topics: true,
                    queue,
                    offline: None,
                })
            }
            SubscribeRoute::Queue(destination) => {
                let durable = self.durable_store(destination);
                if let Some(store) = durable {
                    store.check(destination)?;
                    if spec.prefetch == 0 {
                        spec.prefetch = store.default_prefetch();
                    }
                }
                let queue = self
                    .queues
                    .subscribe(destination, spec, session.creator, durable.is_some())
                    .map_err(|bound| Refusal::queue_full(destination, bound))?;
                if let Some(store) = durable.filter(|_| queue.claim_feed()) {
                    store.feed(Arc::clone(&queue));
                }
                self.interest_changed(Interest::Queue, destination, true);
                Ok(Route {
                    destination: destination.to_owned(),
                    user_destination: None,
                    in_topics: false,
                    queue: Some(queue),
                    offline: None,
                })
            }
            SubscribeRoute::User {
                shown,
                destination,
                resolved,
            } => {
                spec.shown_destination = Some(Arc::from(shown));
                let queue = self
                    .queues
                    .subscribe(&resolved, spec, session.creator, false)
                    .map_err(|bound| Refusal::queue_full(&resolved, bound))?;
                self.interest_changed(Interest::Queue, &resolved, true);
                if !self.users.is_live(session.id) {
                    self.users.open(session.id, session.user, &self.user_hook());
                }
                self.users.subscribe(session.id, destination);
                let offline = self.offline_subscribed(session.user, destination, &queue);
                Ok(Route {
                    destination: resolved,
                    user_destination: Some(destination.to_owned()),
                    in_topics: false,
                    queue: Some(queue),
                    offline,
                })
            }
        }
    }

    /// Ends one subscription: out of the topic trie, or out of its queue (whose
    /// unacknowledged messages go back for other consumers).
    pub fn unsubscribe(&self, session: &str, route: &Route, subscriber: &Subscriber) {
        if let Some(user_destination) = &route.user_destination {
            self.users.unsubscribe(session, user_destination);
        }
        self.offline_unsubscribed(route);
        if route.in_topics && self.topics.unsubscribe(&route.destination, subscriber) {
            self.interest_changed(Interest::Topic, &route.destination, false);
        }
        self.leave_queue(route, subscriber);
    }

    /// Takes a subscription out of its queue (a named one, or its private topic queue).
    fn leave_queue(&self, route: &Route, subscriber: &Subscriber) {
        if let Some(queue) = &route.queue {
            queue.remove_consumer(subscriber);
            // A session leaves each of its routes once; a private topic queue is not counted.
            if !route.in_topics {
                self.interest_changed(Interest::Queue, &route.destination, false);
            }
        }
    }

    /// Ends every subscription of a closing session and takes it out of the directory.
    pub fn unsubscribe_session<'a>(
        &self,
        session: &str,
        routes: impl Iterator<Item = (&'a Route, &'a Subscriber)> + Clone,
    ) {
        self.topics.unsubscribe_all(
            routes
                .clone()
                .filter(|(route, _)| route.in_topics)
                .map(|(route, subscriber)| (route.destination.as_str(), subscriber.clone())),
        );
        for (route, subscriber) in routes {
            if route.in_topics {
                self.interest_changed(Interest::Topic, &route.destination, false);
            }
            self.leave_queue(route, subscriber);
            self.offline_unsubscribed(route);
        }
        self.users.close(session, &self.user_hook());
    }

    /// Counts one more (`on`) or one fewer local subscription to a topic destination or
    /// consumer of a queue, and tells the link about the first and the last (under the
    /// count's lock, so changes to one destination reach it in order).
    fn interest_changed(&self, kind: Interest, destination: &str, on: bool) {
        let (counts, tell): (_, &dyn Fn(bool)) = match kind {
            Interest::Topic => (&self.topic_interest, &|on| {
                self.link.topic_interest(destination, on)
            }),
            Interest::Queue => (&self.queue_interest, &|on| {
                self.link.queue_interest(destination, on)
            }),
        };
        let topic = matches!(kind, Interest::Topic);
        if on {
            let mut count = counts.entry(destination.to_owned()).or_insert(0);
            if *count == 0 {
                tell(true);
            }
            *count += 1;
            self.stats.record_subscription(topic, true, *count == 1);
        } else if let Entry::Occupied(mut count) = counts.entry(destination.to_owned()) {
            *count.get_mut() -= 1;
            let last = *count.get() == 0;
            if last {
                tell(false);
                count.remove();
            }
            self.stats.record_subscription(topic, false, last);
        }
    }

    fn user_hook(&self) -> impl Fn(&str, bool) + '_ {
        |user: &str, on: bool| self.link.user_interest(user, on)
    }

    fn clustered(&self) -> bool {
        self.link.state() != LinkState::Standalone
    }

    /// Routes a SEND from this node: topic subscribers here get it now, other nodes through
    /// the link; the queues it must reach are returned, for the caller to fill through
    /// [`Router::enqueue`]. Refused, with nothing delivered, if it may have to cross to other
    /// nodes and the link can never carry it (too large for NATS, say).
    pub fn publish(
        &self,
        route: &SendRoute<'_>,
        headers: &Headers,
        body: &Bytes,
    ) -> Result<Published, Refusal> {
        self.rates.record(|| match route {
            SendRoute::Topic(destination) | SendRoute::Queue(destination) => {
                Cow::Borrowed(*destination)
            }
            SendRoute::User { name, destination } => {
                Cow::Owned(format!("{}{name}{destination}", self.user_prefix))
            }
            SendRoute::Resolved { resolved, .. } => Cow::Borrowed(*resolved),
        });
        let mut published = Published::default();
        match route {
            SendRoute::Topic(destination) => {
                let mut fanout = if self.clustered() {
                    self.publish_clustered(destination, headers, body, &mut published)?
                } else {
                    self.topics.publish(destination, headers, body)
                };
                // A message an overflowing outbox refused is lost for that subscriber.
                let dropped = fanout.dropped + fanout.overflowed;
                self.stats
                    .record_publish(fanout.delivered, dropped, fanout.expired);
                published.delivered = fanout.delivered;
                published.congested.append(&mut fanout.congested);
            }
            SendRoute::Queue(destination) => published.queues.push_back((*destination).into()),
            SendRoute::User { name, destination } => {
                if let Some(send) = self.offline_send(name, destination, headers, body) {
                    published.offline = Some(send);
                    return Ok(published);
                }
                self.publish_user(name, destination, headers, body, &mut published)?;
            }
            SendRoute::Resolved { resolved, session } => match user::session_node(session) {
                Some(node) if node != self.node_id => {
                    let base =
                        &resolved[..resolved.len() - session.len() - user::USER_SUFFIX.len()];
                    self.forward(
                        Audience::Session { node, session },
                        base,
                        headers,
                        body,
                        &mut published,
                    )?;
                }
                _ => published.queues.push_back((*resolved).into()),
            },
        }
        Ok(published)
    }

    /// Routes a SEND to `/user/<name><destination>`: to the sessions it names here, and
    /// through the link to the other nodes.
    fn publish_user(
        &self,
        name: &str,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
        published: &mut Published,
    ) -> Result<(), Refusal> {
        match user::session_node(name) {
            Some(node) if node != self.node_id => {
                self.forward(
                    Audience::Session {
                        node,
                        session: name,
                    },
                    destination,
                    headers,
                    body,
                    published,
                )?;
                return Ok(());
            }
            Some(_) => {}
            None if self.clustered() => self.forward(
                Audience::User { name },
                destination,
                headers,
                body,
                published,
            )?,
            None => {}
        }
        let targets = self.users.targets(name, destination);
        if targets.is_empty() && !self.clustered() {
            self.stats.record_user_unrouted();
        }
        published.queues.extend(
            targets
                .iter()
                .map(|session| user::resolve(destination, session)),
        );
        Ok(())
    }

    /// A SEND to a user destination opted in to offline delivery that no session of the user
    /// subscribes to here: held back for [`Router::settle_offline`]. `None` if it is not
    /// opted in, names a session rather than a user, has expired, or reaches a session here.
    fn offline_send(
        &self,
        name: &str,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
    ) -> Option<OfflineSend> {
        let (block, _) = self.offline.opted_in(destination)?;
        if user::is_session_id(name)
            || is_expired(expires(headers), now_ms())
            || !self.users.targets(name, destination).is_empty()
        {
            return None;
        }
        Some(OfflineSend {
            block,
            user: name.to_owned(),
            destination: destination.to_owned(),
            headers: forwarded_headers(headers).into_owned(),
            body: body.clone(),
        })
    }

    /// Settles a SEND [`Router::publish`] held back for offline delivery: stored if no
    /// session of the user subscribes to it on any node, else routed live as usual. What it
    /// returns is to be handled as `publish`'s answer (its queues filled, its congested
    /// outboxes waited for). Refused if the store could neither tell nor store.
    pub async fn settle_offline(&self, send: OfflineSend) -> Result<Published, Refusal> {
        let mut published = Published::default();
        // A session of the user may have subscribed here meanwhile.
        if self.users.targets(&send.user, &send.destination).is_empty() {
            let Some((_, store)) = self.offline.opted_in(&send.destination) else {
                return Ok(published);
            };
            let decision = store.store_unless_online(send.clone()).await.map_err(|e| {
                Refusal::new(
                    "offline delivery failed",
                    format!(
                        "{} has no session subscribed to {} and the message could not be kept: {e}",
                        send.user, send.destination
                    ),
                )
            })?;
            if let Decision::Stored { dropped_oldest } = decision {
                self.stats.record_offline(OfflineOutcome::Stored);
                if dropped_oldest {
                    self.stats.record_offline(OfflineOutcome::Dropped);
                }
                return Ok(published);
            }
        }
        self.publish_user(
            &send.user,
            &send.destination,
            &send.headers,
            &send.body,
            &mut published,
        )?;
        Ok(published)
    }

    /// A subscription of `user` to the user destination `destination`, whose queue is
    /// `queue`: if it is opted in to offline delivery, the node answers for the user and the
    /// stored messages are drained into the queue. Returns its block and user, for leaving.
    fn offline_subscribed(
        &self,
        user: Option<&str>,
        destination: &str,
        queue: &Arc<Queue>,
    ) -> Option<(usize, String)> {
        let user = user?;
        let (block, store) = self.offline.opted_in(destination)?;
        let target = StoredTarget::new(
            Arc::clone(queue),
            Arc::clone(&self.message_ids),
            Arc::clone(&self.stats),
        );
        store.subscribed(block, user, target);
        Some((block, user.to_owned()))
    }

    fn offline_unsubscribed(&self, route: &Route) {
        let Some((block, user)) = &route.offline else {
            return;
        };
        if let Some(destination) = &route.user_destination {
            if let Some((_, store)) = self.offline.opted_in(destination) {
                store.unsubscribed(*block, user);
            }
        }
    }

    /// A topic publish on a clustered node: one message id for every node, forwarded (or
    /// refused, before anyone got it) and delivered here.
    fn publish_clustered(
        &self,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
        published: &mut Published,
    ) -> Result<Fanout, Refusal> {
        let expires = expires(headers);
        if is_expired(expires, now_ms()) {
            self.stats.record_expired();
            return Ok(Fanout::default());
        }
        let id = self.message_ids.next();
        let forwarded = forwarded_headers(headers);
        let crossing = Crossing {
            audience: Audience::Topic,
            destination,
            message_id: &id,
            headers: &forwarded,
            body,
        };
        published.congested.extend(
            self.link
                .forward(crossing)
                .map_err(|e| self.unforwardable(e))?,
        );
        let message = TopicMessage {
            id: &id,
            headers: &forwarded,
            body,
            expires,
        };
        Ok(self.topics.deliver(destination, &message))
    }

    fn forward(
        &self,
        audience: Audience<'_>,
        destination: &str,
        headers: &Headers,
        body: &Bytes,
        published: &mut Published,
    ) -> Result<(), Refusal> {
        if is_expired(expires(headers), now_ms()) {
            self.stats.record_expired();
            return Ok(());
        }
        let id = self.message_ids.next();
        let crossing = Crossing {
            audience,
            destination,
            message_id: &id,
            headers: &forwarded_headers(headers),
            body,
        };
        let congested = self
            .link
            .forward(crossing)
            .map_err(|e| self.unforwardable(e))?;
        published.congested.extend(congested);
        Ok(())
    }

    /// The ERROR for a message the link can never carry, counted.
    fn unforwardable(&self, why: Unforwardable) -> Refusal {
        self.stats.record_cluster_oversized();
        match why {
            Unforwardable::TooLarge { size, max } => Refusal::new(
                "message too large",
                format!(
                    "{size} bytes as sent to other nodes; the cluster carries at most {max} (NATS max_payload)"
                ),
            ),
            Unforwardable::NameTooLong => Refusal::new(
                "invalid destination",
                "the user name is too long to reach other nodes",
            ),
        }
    }

    /// Hands a SEND for the durable queue `destination` to its store; `None` if the queue is
    /// not durable (then [`Router::enqueue`] it). The caller confirms the SEND once the
    /// store has it.
    pub fn store(&self, destination: &str, headers: &Headers, body: &Bytes) -> Option<Storing> {
        let store = self.durable_store(destination)?;
        if is_expired(expires(headers), now_ms()) {
            self.stats.record_expired();
            return Some(Box::pin(std::future::ready(Ok(()))));
        }
        let stats = &self.stats;
        QueueStats::count(&stats.queues.sends, 1);
        QueueStats::count(&stats.messages_published, 1);
        // Copied: the body is a slice of the connection's read buffer, which it must not pin
        // while the store confirms it.
        Some(store.store(
            destination,
            forwarded_headers(headers).into_owned(),
            Bytes::copy_from_slice(body),
        ))
    }

    /// Puts a SEND in the queue `destination` (created for `creator` if needed).
    pub fn enqueue(
        &self,
        destination: &str,
        headers: &Headers,
        body: &[u8],
        creator: &Creator,
    ) -> Enqueued {
        self.queues.publish(destination, headers, body, creator)
    }

    /// Delivers a message from another node to this node's subscribers (never forwarded
    /// again). Returns the subscriber outboxes left above their high-water mark: the caller
    /// waits for them, as a publishing session would.
    pub fn deliver_remote(&self, message: Crossing<'_>) -> Vec<Arc<Outbox>> {
        let targets = match message.audience {
            Audience::Topic => {
                let mut fanout = self.topics.deliver(
                    message.destination,
                    &TopicMessage {
                        id: message.message_id,
                        headers: message.headers,
                        body: message.body,
                        expires: expires(message.headers),
                    },
                );
                self.stats.record_publish(
                    fanout.delivered,
                    fanout.dropped + fanout.overflowed,
                    fanout.expired,
                );
                return std::mem::take(&mut fanout.congested);
            }
            Audience::User { name } => self.users.targets(name, message.destination),
            Audience::Session { session, .. } => self.users.targets(session, message.destination),
        };
        for session in targets {
            let resolved = user::resolve(message.destination, &session);
            // A queue cannot make another node's publisher wait: without room the message is
            // dropped, counted and logged.
            let enqueued = self.queues.publish(
                &resolved,
                message.headers,
                message.body,
                &self.remote_creator,
            );
            if matches!(enqueued, Enqueued::Blocked(_) | Enqueued::Rejected(_)) {
                self.stats.record_cluster_queue_drop();
                tracing::warn!(queue = %resolved, "cluster: a full queue did not take a message from another node; dropped");
            }
        }
        Vec::new()
    }

    /// Sessions per user on this node (only `user`, if given).
    pub fn local_presence(&self, user: Option<&str>) -> Presence {
        self.users.presence(user)
    }

    /// Closes `user`'s sessions on the other nodes (this node's are the caller's: sessions
    /// live above routing).
    pub async fn disconnect_elsewhere(&self, user: &str, reason: &str) -> RemoteDisconnect {
        self.link
            .disconnect(user.to_owned(), reason.to_owned())
            .await
    }

    /// Users online in the whole cluster: this node's sessions plus what the other nodes
    /// answer within the link's timeout. Also returns how many other nodes answered.
    pub async fn presence(&self, user: Option<&str>) -> (Presence, usize) {
        let remote = self.link.presence(user.map(str::to_owned)).await;
        let mut users = self.local_presence(user);
        for (name, sessions) in remote.users {
            // Remote counts are whatever answered on NATS: saturate rather than overflow.
            let total = users.entry(name).or_default();
            *total = total.saturating_add(sessions);
        }
        (users, remote.nodes)
    }

    /// Whether `session` is a live session of this node.
    pub fn is_local_session(&self, session: &str) -> bool {
        self.users.is_live(session)
    }
}

fn unknown(destination: &str) -> Refusal {
    Refusal::new(
        "unknown destination",
        format!("{destination} is outside every configured destination prefix"),
    )
}

#[cfg(test)]
mod tests;
