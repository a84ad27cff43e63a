//! [`NatsLink`]: routing's [`ClusterLink`] over one NATS connection (docs/cluster.md).
//!
//! Tasks, all ended when the link is dropped or closed:
//! - the publisher: drains the outgoing buffer (an [`Outbox`] bounded by bytes, so a
//!   publisher outrunning NATS is paused like for a slow subscriber) and hands each message
//!   to the NATS client, in order, numbering it (`Herald-Seq`). A paused publisher that runs
//!   out of patience closes that outbox as it would a slow subscriber's (its messages are
//!   lost, counted in `overflows`): the publisher then puts a fresh one in its place;
//! - the reconciler: brings the NATS subscriptions in line with the interest routing
//!   reports ([`Interest`]), holds this node's own subject and the presence subject, and
//!   replaces the client if its connection task ends for good ([`NatsLink::renew_with`]);
//! - the reader: sweeps every subscription of the client at once (`inlets.rs`), puts what it
//!   took back in publish order and removes second copies (`order.rs`), and queues it for the
//!   deliverer, within `max_pending_bytes` (what does not fit is dropped and counted). It
//!   reads on while the deliverer works, so the NATS client's bounded channels fill only if
//!   this node is starved of CPU (then the client counts and drops as a slow consumer);
//! - the deliverer: hands each queued message to routing ([`Inbound`]), one at a time in that
//!   order. A subscriber a delivery left congested gets `max_pause` to catch up, watched by a
//!   task of its own, and is closed as a slow consumer if it has not (or sooner, when its
//!   outbox passes its hard bound): a slow subscriber never holds up the fast ones. Nothing
//!   between NATS and routing is unbounded.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::connection::State;
use async_nats::{Client, Message, Subscriber};
use bytes::Bytes;
use futures_util::FutureExt;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use super::inlets::{InletId, Inlets};
use super::interest::{Interest, Want};
use super::order::{Released, Seq};
use super::subject::{MAX_SUBJECT_LEN, Subjects};
use super::wire::{self, Unsent};
use super::{disconnect, presence};
use crate::config::{ClusterConfig, Config, OverflowPolicy, Separator as ConfigSeparator};
use crate::destination::Destinations;
use crate::outbox::{Drained, OutFrame, Outbox, Pushed};
use crate::routing::Separator;
use crate::routing::cluster::{
    Audience, BoxFuture, ClusterLink, Crossing, LinkState, Presence, RemoteDisconnect,
    RemotePresence, Unforwardable,
};

/// Makes a new NATS client (like the first one), or `None` if it cannot now.
pub type Renew = Arc<dyn Fn() -> BoxFuture<Option<Client>> + Send + Sync>;

/// How soon the reconciler asks NATS again after a round trip failed.
const SETTLE_RETRY: Duration = Duration::from_secs(1);

/// What the link needs from routing on this node: the way in for messages from other nodes.
/// The router implements it; tests use a recorder.
pub trait Inbound: Send + Sync {
    /// Delivers a message from another node to this node's local subscribers only (never
    /// forwarded again); returns the subscriber outboxes it left above their high-water mark.
    fn deliver(&self, message: Crossing<'_>) -> Vec<Arc<Outbox>>;

    /// Sessions per user on this node (only `user` if given).
    fn local_presence(&self, user: Option<&str>) -> Presence;

    /// Closes `user`'s sessions on this node, telling each `reason`; returns how many.
    fn kick(&self, user: &str, reason: &str) -> usize;
}

/// How a link behaves; every node of a cluster must agree on the first four.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// `[cluster] name`: the first token of every subject.
    pub cluster_name: String,
    pub node_id: String,
    /// The broadcast prefixes, in routing's order, and the segment separator.
    pub broadcast_prefixes: Vec<String>,
    pub separator: Separator,
    /// High-water mark of the outgoing buffer: past it, `forward` asks the publishing
    /// session to wait.
    pub max_pending_bytes: usize,
    /// How far past the mark the buffer may grow (at least one largest message) before
    /// what it holds is dropped and counted.
    pub burst_bytes: usize,
    /// How long a message from another node waits for a congested subscriber before that
    /// subscriber is closed as a slow consumer (`outbox.max_pause_ms`).
    pub max_pause: Duration,
    /// How long `presence` waits for other nodes' answers.
    pub presence_timeout: Duration,
}

impl LinkSettings {
    /// The settings of node `node_id` from its configuration and its `[cluster]` section.
    pub fn from_config(config: &Config, cluster: &ClusterConfig, node_id: &str) -> LinkSettings {
        LinkSettings {
            cluster_name: cluster.name.clone(),
            node_id: node_id.to_owned(),
            broadcast_prefixes: Destinations::new(&config.destinations)
                .broadcast_prefixes()
                .to_vec(),
            separator: match config.destinations.separator {
                ConfigSeparator::Slash => Separator::Slash,
                ConfigSeparator::Dot => Separator::Dot,
            },
            max_pending_bytes: cluster.max_pending_bytes,
            burst_bytes: config.limits.max_frame_bytes,
            max_pause: Duration::from_millis(config.outbox.max_pause_ms),
            presence_timeout: Duration::from_millis(cluster.presence_timeout_ms),
        }
    }
}

/// Message counts of a link since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    /// Local messages taken into the outgoing buffer.
    pub forwarded: u64,
    /// Messages handed to the NATS client.
    pub published: u64,
    /// Local messages not sent: the link was down, the outgoing buffer had overflowed, or
    /// the subject would be too long for NATS.
    pub dropped: u64,
    /// Times the outgoing buffer overflowed, losing what it held.
    pub overflows: u64,
    /// Local messages larger than the NATS server's `max_payload` once encoded, not sent
    /// (routing refuses what is larger before encoding; escaping can add to it).
    pub oversized: u64,
    /// Messages from other nodes handed to routing.
    pub delivered: u64,
    /// Copies of a message that a second matching subscription of this node received and
    /// skipped.
    pub duplicates: u64,
    /// Messages on this cluster's subjects not written by a Herald node, skipped.
    pub malformed: u64,
    /// Messages from other nodes dropped because this node read them faster than it could
    /// deliver them (past `max_pending_bytes` held).
    pub inbound_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    forwarded: AtomicU64,
    published: AtomicU64,
    dropped: AtomicU64,
    overflows: AtomicU64,
    oversized: AtomicU64,
    delivered: AtomicU64,
    duplicates: AtomicU64,
    malformed: AtomicU64,
    inbound_dropped: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// This node's link to the others over one NATS connection.
pub struct NatsLink {
    shared: Arc<Shared>,
    publisher: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    /// Replaced when its connection task ends for good (see `reconcile`).
    client: RwLock<Client>,
    /// Makes a new client when the current one ends.
    renew: OnceLock<Renew>,
    /// Counts clients, so that only the current one's receivers can report it lost.
    epoch: AtomicU64,
    lost: Notify,
    /// The client ended and none can replace it: the node is cut off for good.
    dead: AtomicBool,
    subjects: Subjects,
    settings: LinkSettings,
    /// The outgoing buffer; replaced by a fresh one when it overflowed (an overflowed
    /// outbox takes nothing more).
    buffer: Mutex<Arc<Outbox>>,
    interest: Mutex<Interest>,
    interest_changed: Notify,
    /// The interest generation the NATS server has every subscription of (`None` until this
    /// node's own subscriptions are made).
    settled: watch::Sender<Option<u64>>,
    counters: Counters,
    /// The servers' `max_payload`, as last seen (0: not yet connected).
    max_payload: AtomicUsize,
    stop: CancellationToken,
    /// This link's `Herald-Seq` origin: random at each start.
    origin: u64,
    /// The last `Herald-Seq` number given, in publish order.
    sequence: AtomicU64,
    /// Subscriber outboxes being given their `max_pause` (by address; the watch holds the
    /// outbox, so an address is not reused meanwhile).
    watched: Mutex<HashSet<usize>>,
    /// Bytes of messages from other nodes read but not yet delivered, all receivers together.
    inbound_bytes: AtomicUsize,
}

/// A message from another node, read and not yet delivered, with what its subscription is
/// for.
struct Arrived {
    route: Route,
    seq: Seq,
    message: Message,
}

/// Messages the reader took, in order, for the deliverer. Their bytes count against
/// `max_pending_bytes` from when the reader takes them (all clients' readers together) until
/// they are delivered or dropped.
struct Inflow {
    shared: Arc<Shared>,
    queue: Mutex<VecDeque<Arrived>>,
    ready: Notify,
}

impl Inflow {
    /// Counts `size` bytes in; `false` (the message is dropped, counted and sometimes
    /// logged) if they do not fit.
    fn reserve(&self, size: usize) -> bool {
        let shared = &self.shared;
        let held = shared.inbound_bytes.fetch_add(size, Ordering::Relaxed);
        if held + size <= shared.settings.max_pending_bytes {
            return true;
        }
        shared.inbound_bytes.fetch_sub(size, Ordering::Relaxed);
        let dropped = shared
            .counters
            .inbound_dropped
            .fetch_add(1, Ordering::Relaxed)
            + 1;
        // The 1st, 2nd, 4th, 8th… drop is logged: an overload must not flood the log.
        if dropped.is_power_of_two() {
            warn!(
                dropped,
                "cluster: messages from other nodes arrive faster than this node delivers them; dropped"
            );
        }
        false
    }

    fn give_back(&self, size: usize) {
        (self.shared.inbound_bytes).fetch_sub(size, Ordering::Relaxed);
    }

    fn push(&self, batch: impl Iterator<Item = Arrived>) {
        self.queue.lock().extend(batch);
        self.ready.notify_one();
    }

    fn pop(&self) -> Option<Arrived> {
        let arrived = self.queue.lock().pop_front()?;
        self.give_back(arrived.message.length);
        Some(arrived)
    }
}

impl Drop for Inflow {
    fn drop(&mut self) {
        let held: usize = self.queue.get_mut().iter().map(|a| a.message.length).sum();
        self.give_back(held);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One client's subscriptions, read by its reader.
type ClientInlets = Arc<Mutex<Inlets<Subscriber, Route>>>;

/// What a subscription is for.
#[derive(Debug, Clone)]
enum Route {
    /// A topic filter: the message's destination is its subject.
    Topic,
    User(Arc<str>),
    /// This node's own subject: messages for one of its sessions.
    Node,
}

impl NatsLink {
    /// A link over `client` (made with `no_echo`: this node delivers its own messages
    /// itself). Starts the publisher: `forward` works from now on; messages from other nodes
    /// flow once [`NatsLink::start`] is called.
    pub fn new(client: Client, settings: LinkSettings) -> NatsLink {
        let max_payload = AtomicUsize::new(client.server_info().max_payload);
        let shared = Arc::new(Shared {
            subjects: Subjects::new(
                &settings.cluster_name,
                &settings.broadcast_prefixes,
                settings.separator,
            ),
            buffer: Mutex::new(Arc::new(new_buffer(&settings))),
            client: RwLock::new(client),
            renew: OnceLock::new(),
            epoch: AtomicU64::new(0),
            lost: Notify::new(),
            dead: AtomicBool::new(false),
            settings,
            interest: Mutex::new(Interest::default()),
            interest_changed: Notify::new(),
            settled: watch::Sender::new(None),
            counters: Counters::default(),
            max_payload,
            stop: CancellationToken::new(),
            origin: random_origin(),
            sequence: AtomicU64::new(0),
            watched: Mutex::new(HashSet::new()),
            inbound_bytes: AtomicUsize::new(0),
        });
        let publisher = tokio::spawn(Arc::clone(&shared).publish());
        NatsLink {
            shared,
            publisher: Mutex::new(Some(publisher)),
        }
    }

    /// Starts receiving: subscribes this node's subject, the presence subject and whatever
    /// interest routing reported so far, and hands messages to `inbound` (held weakly: the
    /// router owns the link, not the other way round).
    pub fn start(&self, inbound: Weak<dyn Inbound>) {
        tokio::spawn(Arc::clone(&self.shared).reconcile(inbound));
    }

    /// Waits until the NATS server has had the subscriptions of this node's own subjects
    /// and of all the interest reported so far (after a reconnect, the client restores them
    /// by itself).
    pub async fn settled(&self) {
        let target = self.shared.interest.lock().generation();
        let mut settled = self.shared.settled.subscribe();
        let _ = settled
            .wait_for(|reached| reached.is_some_and(|g| g >= target))
            .await;
    }

    /// How to make a new client should the current one stop working for good (its
    /// connection task ended); without it, the node is then cut off until restarted and its
    /// state says so. Set once, before or after `start`.
    pub fn renew_with(&self, renew: Renew) {
        if self.shared.renew.set(renew).is_err() {
            warn!("cluster: renew_with called twice; the first one stays");
        }
    }

    /// Stops receiving, sends what is still buffered and flushes the connection. The caller
    /// bounds how long it may take (NATS may be out of reach).
    pub async fn close(&self) {
        self.shared.stop.cancel();
        let publisher = self.publisher.lock().take();
        if let Some(publisher) = publisher {
            let _ = publisher.await;
        }
        let buffer = Arc::clone(&self.shared.buffer.lock());
        self.shared.send(buffer.drain()).await;
        if let Err(e) = self.shared.client().flush().await {
            debug!(error = %e, "cluster: flush at close failed");
        }
    }

    pub fn counters(&self) -> LinkCounters {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        LinkCounters {
            forwarded: get(&c.forwarded),
            published: get(&c.published),
            dropped: get(&c.dropped),
            overflows: get(&c.overflows),
            oversized: get(&c.oversized),
            delivered: get(&c.delivered),
            duplicates: get(&c.duplicates),
            malformed: get(&c.malformed),
            inbound_dropped: get(&c.inbound_dropped),
        }
    }
}

fn random_origin() -> u64 {
    RandomState::new().hash_one(std::process::id())
}

fn new_buffer(settings: &LinkSettings) -> Outbox {
    Outbox::new(settings.max_pending_bytes, OverflowPolicy::Close)
        .with_burst_bytes(settings.burst_bytes)
}

impl Drop for NatsLink {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl fmt::Debug for NatsLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsLink")
            .field("cluster", &self.shared.settings.cluster_name)
            .field("node", &self.shared.settings.node_id)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl ClusterLink for NatsLink {
    fn topic_interest(&self, pattern: &str, on: bool) {
        let subjects = &self.shared.subjects;
        let filters = || match subjects.topic_filters(pattern) {
            Some(filters) => filters,
            None => {
                debug!(
                    pattern,
                    "cluster: interest in a destination that is not a topic"
                );
                Vec::new()
            }
        };
        if self.shared.interest.lock().topic(pattern, on, filters) {
            self.shared.interest_changed.notify_one();
        }
    }

    fn user_interest(&self, user: &str, on: bool) {
        if self.shared.interest.lock().user(user, on) {
            self.shared.interest_changed.notify_one();
        }
    }

    /// Queues are node-local until they move to JetStream: nothing to subscribe.
    fn queue_interest(&self, _queue: &str, _on: bool) {}

    fn forward(&self, message: Crossing<'_>) -> Result<Option<Arc<Outbox>>, Unforwardable> {
        let shared = &self.shared;
        let bytes = match wire::encode(&shared.subjects, &message) {
            Ok(bytes) => bytes,
            Err(Unsent::SubjectTooLong) => return Err(Unforwardable::NameTooLong),
            Err(Unsent::NotATopic) => {
                bump(&shared.counters.dropped);
                debug!(
                    destination = message.destination,
                    "cluster: not a topic, not forwarded"
                );
                return Ok(None);
            }
        };
        // As NATS will count it, escapes included (0: not connected yet, nothing known).
        let max = shared.max_payload.load(Ordering::Relaxed);
        let size = wire::nats_size(&bytes);
        if max > 0 && size > max {
            bump(&shared.counters.oversized);
            return Err(Unforwardable::TooLarge { size, max });
        }
        // Nobody can be reached, or the link is closed: local traffic goes on without
        // waiting for NATS.
        let connected = shared.client.read().connection_state() == State::Connected;
        if !connected || shared.stop.is_cancelled() {
            bump(&shared.counters.dropped);
            return Ok(None);
        }
        let buffer = Arc::clone(&shared.buffer.lock());
        match buffer.push_message(OutFrame { bytes, text: false }) {
            Pushed::Queued | Pushed::QueuedAfterDropping(_) => {
                bump(&shared.counters.forwarded);
                Ok(None)
            }
            Pushed::Congested => {
                bump(&shared.counters.forwarded);
                Ok(Some(buffer))
            }
            Pushed::Overflowed | Pushed::Closed => {
                bump(&shared.counters.dropped);
                Ok(None)
            }
        }
    }

    fn disconnect(&self, user: String, reason: String) -> BoxFuture<RemoteDisconnect> {
        let client = self.shared.client();
        let subject = self.shared.subjects.disconnect().to_owned();
        let timeout = self.shared.settings.presence_timeout;
        Box::pin(async move { disconnect::ask(&client, &subject, &user, &reason, timeout).await })
    }

    fn presence(&self, user: Option<String>) -> BoxFuture<RemotePresence> {
        let client = self.shared.client();
        let subject = self.shared.subjects.presence().to_owned();
        let timeout = self.shared.settings.presence_timeout;
        Box::pin(async move { presence::ask(&client, &subject, user.as_deref(), timeout).await })
    }

    fn state(&self) -> LinkState {
        if self.shared.dead.load(Ordering::Relaxed) {
            return LinkState::Disconnected;
        }
        match self.shared.client.read().connection_state() {
            State::Connected => LinkState::Connected,
            State::Pending | State::Disconnected => LinkState::Disconnected,
        }
    }
}

impl Shared {
    /// The publisher task: one at a time, in buffer order.
    async fn publish(self: Arc<Self>) {
        loop {
            let buffer = Arc::clone(&self.buffer.lock());
            tokio::select! {
                () = buffer.ready() => {}
                () = self.stop.cancelled() => return,
            }
            self.send(buffer.drain()).await;
        }
    }

    /// Hands drained messages to the NATS client.
    async fn send(&self, drained: Drained) {
        if drained.overflowed {
            // Past the hard bound, or a publisher waited for it as long as it may: what it
            // held is gone. A fresh buffer takes the next messages.
            *self.buffer.lock() = Arc::new(new_buffer(&self.settings));
            bump(&self.counters.overflows);
            warn!(
                "cluster: outgoing buffer overflowed (NATS too slow or out of reach); its messages were dropped"
            );
        }
        if drained.frames.is_empty() {
            return;
        }
        let client = self.client();
        let max_payload = self.refresh_max_payload();
        for frame in drained.frames {
            // Numbered here, in the order the client gets them.
            let seq = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
            let seq = wire::seq_value(Seq {
                origin: self.origin,
                n: seq,
            });
            let Some(message) = wire::decode(frame.bytes, seq) else {
                continue;
            };
            if max_payload > 0 && message.size > max_payload {
                bump(&self.counters.oversized);
                warn!(
                    size = message.size,
                    max_payload, "cluster: message larger than NATS max_payload, not forwarded"
                );
                continue;
            }
            let published = client
                .publish_with_headers(message.subject, message.headers, message.payload)
                .await;
            match published {
                Ok(()) => bump(&self.counters.published),
                Err(e) => {
                    bump(&self.counters.dropped);
                    debug!(error = %e, "cluster: publish failed");
                }
            }
        }
    }

    /// The reconciler task: this node's and the presence subscriptions, then the interest
    /// subscriptions as routing changes them. If the client's connection task ends for good
    /// (async-nats panics on some malformed input, such as a subject that is not UTF-8, which
    /// anyone allowed to publish on NATS can send), its subscriptions end with it: a new
    /// client is made and everything subscribed again.
    async fn reconcile(self: Arc<Self>, inbound: Weak<dyn Inbound>) {
        loop {
            self.run_client(&inbound).await;
            if self.stop.is_cancelled() {
                return;
            }
            error!(
                "cluster: the NATS client stopped working (its connection task ended); making a new one"
            );
            let Some(client) = self.renew_client().await else {
                return;
            };
            *self.client.write() = client;
            self.interest.lock().resubscribe_all();
        }
    }

    async fn renew_client(&self) -> Option<Client> {
        let Some(renew) = self.renew.get() else {
            self.dead.store(true, Ordering::Relaxed);
            error!(
                "cluster: no way to make a new NATS client: this node is cut off from the cluster until restarted"
            );
            return None;
        };
        loop {
            if let Some(client) = renew().await {
                return Some(client);
            }
            tokio::select! {
                () = tokio::time::sleep(SETTLE_RETRY) => {}
                () = self.stop.cancelled() => return None,
            }
        }
    }

    /// Tells the reconciler that client `epoch` is lost, if it is the current one.
    fn client_lost(&self, epoch: u64) {
        if epoch == self.epoch.load(Ordering::Relaxed) && !self.stop.is_cancelled() {
            self.lost.notify_one();
        }
    }

    /// One client's subscriptions, until the client is lost or the link stops.
    async fn run_client(self: &Arc<Self>, inbound: &Weak<dyn Inbound>) {
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed) + 1;
        // A report about the client before this one, still pending, is stale.
        let _ = self.lost.notified().now_or_never();
        let inlets: ClientInlets = Arc::default();
        // Unconstrained: a sweep must see a channel empty only when it is (`Inlets::sweep`).
        let reader = tokio::task::unconstrained(Arc::clone(self).read(
            Arc::clone(&inlets),
            inbound.clone(),
            epoch,
        ));
        let _reader = AbortOnDrop(tokio::spawn(reader));
        let node = self.subjects.node(&self.settings.node_id);
        if let Some(sub) = self.subscribe(&node).await {
            inlets.lock().add(Route::Node, sub);
        }
        let mut responders = Vec::new();
        if let Some(sub) = self.subscribe(self.subjects.presence()).await {
            let node_id = self.settings.node_id.clone();
            let respond = presence::respond(self.client(), node_id, sub, inbound.clone());
            responders.push(self.responder(respond, epoch));
        }
        if let Some(sub) = self.subscribe(self.subjects.disconnect()).await {
            let node_id = self.settings.node_id.clone();
            let respond = disconnect::respond(self.client(), node_id, sub, inbound.clone());
            responders.push(self.responder(respond, epoch));
        }
        let mut active: HashMap<Want, InletId> = HashMap::new();
        loop {
            let (generation, changes) = {
                let mut interest = self.interest.lock();
                (interest.generation(), interest.take_changes())
            };
            for (want, on) in changes {
                if !on {
                    // Dropping the subscription unsubscribes it.
                    if let Some(id) = active.remove(&want) {
                        inlets.lock().remove(id);
                    }
                    continue;
                }
                if active.contains_key(&want) {
                    continue;
                }
                let (subject, route) = match &want {
                    Want::Topic(filter) => (filter.to_string(), Route::Topic),
                    Want::User(user) => (self.subjects.user(user), Route::User(Arc::from(&**user))),
                };
                if subject.len() > MAX_SUBJECT_LEN {
                    // Nothing is ever published on it, and the server would refuse it.
                    continue;
                }
                let Some(sub) = self.subscribe(&subject).await else {
                    continue;
                };
                active.insert(want, inlets.lock().add(route, sub));
            }
            let settled = self.round_trip().await;
            self.refresh_max_payload();
            if settled {
                self.settled.send_replace(Some(generation));
            }
            tokio::select! {
                () = self.interest_changed.notified() => {}
                // NATS out of reach: ask again later, so `settled` learns of the reconnect.
                () = tokio::time::sleep(SETTLE_RETRY), if !settled => {}
                () = self.lost.notified() => break,
                () = self.stop.cancelled() => break,
            }
        }
        drop(responders);
    }

    /// Runs a responder to cluster-wide questions; its end means client `epoch` is lost.
    fn responder(
        self: &Arc<Self>,
        respond: impl Future<Output = ()> + Send + 'static,
        epoch: u64,
    ) -> AbortOnDrop {
        let shared = Arc::clone(self);
        AbortOnDrop(tokio::spawn(async move {
            respond.await;
            shared.client_lost(epoch);
        }))
    }

    /// The servers' `max_payload` (0 until the first connection), remembered for
    /// `forward`, which checks every message against it.
    fn refresh_max_payload(&self) -> usize {
        let max_payload = self.client.read().server_info().max_payload;
        self.max_payload.store(max_payload, Ordering::Relaxed);
        max_payload
    }

    /// Whether the server answered a question sent now, and so has handled everything this
    /// connection sent before (a flush only empties the socket buffer). The question is a
    /// request nobody can answer, which the server itself answers with "no responders".
    async fn round_trip(&self) -> bool {
        let client = self.client();
        let nobody = client.new_inbox();
        match client.request(nobody, Bytes::new()).await {
            Err(e) if e.kind() == RequestErrorKind::NoResponders => true,
            other => {
                debug!(answer = ?other.map(|m| m.subject), "cluster: no round trip to NATS");
                false
            }
        }
    }

    async fn subscribe(&self, subject: &str) -> Option<Subscriber> {
        match self.client().subscribe(subject.to_owned()).await {
            Ok(sub) => Some(sub),
            Err(e) => {
                // Only when the client itself is gone.
                error!(subject, error = %e, "cluster: cannot subscribe");
                None
            }
        }
    }

    /// The reader task of one client: sweeps its subscriptions (`inlets`), orders what it
    /// took and queues it for a deliverer task of its own, until aborted (the client is
    /// replaced or the link stops).
    async fn read(self: Arc<Self>, inlets: ClientInlets, inbound: Weak<dyn Inbound>, epoch: u64) {
        let inflow = Arc::new(Inflow {
            shared: Arc::clone(&self),
            queue: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
        });
        let deliverer = Arc::clone(&self).deliver_all(Arc::clone(&inflow), inbound);
        let _deliverer = AbortOnDrop(tokio::spawn(deliverer));
        let woken = inlets.lock().woken();
        let mut released = Released::default();
        let mut batch = Vec::new();
        loop {
            woken.wait().await;
            let mut reserved = 0;
            let ended = inlets.lock().sweep(|route, message| {
                let Some(seq) = message.headers.as_ref().and_then(wire::seq) else {
                    // Not from a Herald link: it has no place in any order.
                    bump(&self.counters.malformed);
                    return;
                };
                if inflow.reserve(message.length) {
                    reserved += message.length;
                    batch.push(Arrived {
                        route: route.clone(),
                        seq,
                        message,
                    });
                }
            });
            let copies = released.arrange(&mut batch, |arrived| arrived.seq);
            if copies > 0 {
                self.counters
                    .duplicates
                    .fetch_add(copies as u64, Ordering::Relaxed);
                let kept: usize = batch.iter().map(|a| a.message.length).sum();
                inflow.give_back(reserved - kept);
            }
            if !batch.is_empty() {
                inflow.push(mem::take(&mut batch).into_iter());
            }
            if !ended.is_empty() {
                // Not unsubscribed (that removes the inlet): the client's connection task
                // ended.
                self.client_lost(epoch);
            }
            // A sweep never waits: let the other tasks of this thread run between sweeps.
            tokio::task::yield_now().await;
        }
    }

    /// The deliverer task: hands what the reader queued to routing, in order.
    async fn deliver_all(self: Arc<Self>, inflow: Arc<Inflow>, inbound: Weak<dyn Inbound>) {
        loop {
            let Some(arrived) = inflow.pop() else {
                inflow.ready.notified().await;
                continue;
            };
            let Some(inbound) = inbound.upgrade() else {
                return;
            };
            let congested = self.deliver(&*inbound, &arrived.route, &arrived.message);
            drop(inbound);
            self.watch_congested(congested);
        }
    }

    fn client(&self) -> Client {
        self.client.read().clone()
    }

    /// Hands one message to routing; returns the outboxes it left congested.
    fn deliver(&self, inbound: &dyn Inbound, route: &Route, message: &Message) -> Vec<Arc<Outbox>> {
        let incoming = message.headers.as_ref().and_then(wire::incoming);
        let Some(incoming) = incoming else {
            bump(&self.counters.malformed);
            return Vec::new();
        };
        let topic_destination;
        let (audience, destination) = match route {
            Route::Topic => {
                // Named in a header when too long for a subject.
                topic_destination = match incoming.destination.as_deref() {
                    Some(destination) => Some(destination.to_owned()),
                    None => self.subjects.topic_destination(&message.subject),
                };
                (Audience::Topic, topic_destination.as_deref())
            }
            Route::User(name) => (Audience::User { name }, incoming.destination.as_deref()),
            Route::Node => match incoming.session.as_deref() {
                Some(session) => (
                    Audience::Session {
                        node: &self.settings.node_id,
                        session,
                    },
                    incoming.destination.as_deref(),
                ),
                // No session: not from a Herald node, counted below.
                None => (Audience::Topic, None),
            },
        };
        let Some(destination) = destination else {
            bump(&self.counters.malformed);
            return Vec::new();
        };
        bump(&self.counters.delivered);
        inbound.deliver(Crossing {
            audience,
            destination,
            message_id: &incoming.message_id,
            headers: &incoming.headers,
            body: &message.payload,
        })
    }

    /// Gives each subscriber a delivery left congested `max_pause` to catch up, in a task of
    /// its own (one per outbox at a time), and closes it as a slow consumer if it has not.
    fn watch_congested(self: &Arc<Self>, congested: Vec<Arc<Outbox>>) {
        for outbox in congested {
            let key = Arc::as_ptr(&outbox) as usize;
            if !self.watched.lock().insert(key) {
                continue;
            }
            let shared = Arc::clone(self);
            tokio::spawn(async move {
                let max_pause = shared.settings.max_pause;
                if tokio::time::timeout(max_pause, outbox.uncongested())
                    .await
                    .is_err()
                {
                    outbox.close_if_congested();
                }
                shared.watched.lock().remove(&key);
            });
        }
    }
}
