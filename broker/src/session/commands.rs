//! What a session does with each client frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Command, Frame, Version};
use tokio::time::Instant;
use tracing::warn;

use super::close::{CloseReason, ErrorReply};
use super::pause::{BlockedSend, Pause, RoomWait};
use super::{Session, Subscription, connect, frames, limits};
use crate::access::{Principal, Routing};
use crate::config::AccessAction;
use crate::routing::destination::DestinationKind;
use crate::routing::has_wildcards;
use crate::routing::queue::{AckMode, Bound, ConsumerSpec, Enqueued, Room};
use crate::routing::topic::Subscriber;
use crate::routing::user;

/// Most authorization verdicts a session keeps; the cache starts over past this.
const MAX_CACHED_VERDICTS: usize = 256;

/// A frame handler's verdict: carry on, or close for this reason.
type Handled = Result<(), CloseReason>;

fn refuse(message: &str, detail: impl Into<String>) -> CloseReason {
    CloseReason::Protocol(ErrorReply::new(message, detail))
}

fn required<'a>(frame: &'a Frame, header: &str) -> Result<&'a str, CloseReason> {
    frame.headers.get(header).ok_or_else(|| {
        refuse(
            &format!("missing {header} header"),
            format!("a {} frame must carry a {header} header", frame.command),
        )
    })
}

impl Session {
    /// Acts on one frame; then answers its `receipt`, or puts it on the ERROR if it failed.
    pub(super) fn handle(&mut self, frame: Frame) -> Handled {
        // CONNECT takes no receipt (STOMP 1.2): CONNECTED is its answer. An ERROR refusing
        // it still names the receipt, which helps clients that sent one anyway.
        let receipt = frame.headers.get("receipt").map(str::to_owned);
        let answers_receipt = !matches!(frame.command, Command::Connect | Command::Stomp);
        let result = match (self.version, frame.command) {
            // A CONNECT before the session is connected never gets here: `serve` awaits
            // `on_connect` for it.
            (None, _) => Err(refuse(
                "expected CONNECT",
                format!("{} received before CONNECT", frame.command),
            )),
            (Some(_), Command::Connect | Command::Stomp) => {
                Err(refuse("already connected", "CONNECT received twice"))
            }
            (Some(version), Command::Disconnect) => {
                if let Some(receipt) = &receipt {
                    self.outbox.push_control(frames::receipt(receipt, version));
                }
                return Err(CloseReason::Disconnect);
            }
            (Some(_), Command::Send) => self.on_send(frame),
            (Some(_), Command::Subscribe) => self.on_subscribe(&frame),
            (Some(_), Command::Unsubscribe) => self.on_unsubscribe(&frame),
            (Some(_), Command::Ack | Command::Nack) => self.on_ack(frame),
            (Some(_), Command::Begin) => self.on_begin(&frame),
            (Some(_), Command::Commit) => self.on_commit(&frame),
            (Some(_), Command::Abort) => self.on_abort(&frame),
            (Some(_), server_command) => Err(refuse(
                "unexpected frame",
                format!("{server_command} is a server frame"),
            )),
        };
        match result {
            Ok(()) => {
                if let Some(blocked) = self.pause.as_mut().and_then(|p| p.blocked.as_mut()) {
                    // A SEND waiting for queue room is confirmed once a queue took it.
                    blocked.receipt = receipt;
                } else if let (Some(receipt), Some(version), true) =
                    (receipt, self.version, answers_receipt)
                {
                    self.outbox.push_control(frames::receipt(&receipt, version));
                }
                // Queues touched by the frame deliver only now, so that a SUBSCRIBE's or
                // an ACK's RECEIPT comes before the messages it lets through.
                self.run_pumps();
                Ok(())
            }
            Err(CloseReason::Protocol(reply)) if reply.receipt.is_none() => {
                Err(CloseReason::Protocol(reply.for_receipt(receipt.as_deref())))
            }
            Err(other) => Err(other),
        }
    }

    /// CONNECT (or STOMP): waits for the credential check (login throttle, hashing off the
    /// runtime), then sets the session up and queues CONNECTED.
    pub(super) async fn on_connect(&mut self, frame: &Frame) -> Handled {
        let accepted = connect::accept(
            frame,
            self.peer.ip(),
            &self.id,
            &self.node,
            self.url_token.as_deref(),
        )
        .await
        .map_err(|refused| {
            if let Some(denied) = refused.credentials {
                warn!(session = %self.id, peer = %self.peer, ?denied, "authentication failed");
                self.node.stats.record_auth_failure();
            }
            CloseReason::Protocol(refused.reply)
        })?;
        self.version = Some(accepted.version);
        self.heartbeat = accepted.heartbeat;
        self.user = accepted.user;
        self.roles = accepted.roles;
        self.url_token = None;
        self.token_expires = accepted.token_expires.map(|exp| {
            // The same leeway as at CONNECT, so a token accepted within it is not cut at once.
            let at_ms = exp
                .saturating_mul(1000)
                .saturating_add(self.node.config.jwt.leeway_ms.div_ceil(1000) * 1000);
            let left = at_ms.saturating_sub(crate::routing::publish::now_ms());
            tokio::time::Instant::now() + std::time::Duration::from_millis(left)
        });
        self.decoder.set_options(herald_protocol::ParseOptions {
            version: accepted.version,
            limits: limits(&self.node, true),
        });
        self.outbox
            .push_control(frames::control(&accepted.reply, accepted.version));
        Ok(())
    }

    /// Refuses `action` on `destination` unless the `[access]` rules allow it; verdicts are
    /// cached for the session.
    fn authorize(&mut self, action: AccessAction, destination: &str) -> Handled {
        if self.node.access.allows_everything() {
            return Ok(());
        }
        let key = (action, destination.to_owned());
        let allowed = match self.verdicts.get(&key) {
            Some(&allowed) => allowed,
            None => {
                let principal = Principal {
                    user: self.user.as_deref(),
                    roles: &self.roles,
                };
                let routing = Routing::new(&self.node.destinations, &self.node.config.destinations);
                let allowed = self
                    .node
                    .access
                    .allows(action, destination, principal, routing);
                if self.verdicts.len() >= MAX_CACHED_VERDICTS {
                    self.verdicts.clear();
                }
                self.verdicts.insert(key, allowed);
                allowed
            }
        };
        if allowed {
            return Ok(());
        }
        warn!(session = %self.id, peer = %self.peer, user = ?self.user, ?action, destination, "access denied");
        let verb = match action {
            AccessAction::Send => "send to",
            AccessAction::Subscribe => "subscribe to",
        };
        Err(refuse(
            "access denied",
            format!("this session may not {verb} {destination}"),
        ))
    }

    /// SEND: checked now; routed now, or at COMMIT when it names a transaction.
    fn on_send(&mut self, frame: Frame) -> Handled {
        let destination = required(&frame, "destination")?;
        self.authorize(AccessAction::Send, destination)?;
        // A resolved name (`/queue/x-user<id>`) reaches that session's `/user/queue/x`: the
        // rules for `/user/<id>/queue/x` apply too, or it would be a way around them.
        if let Some(user_form) =
            user::unresolve(&self.node.config.destinations.user_prefix, destination)
        {
            self.authorize(AccessAction::Send, &user_form)?;
        }
        match self.node.destinations.classify(destination) {
            DestinationKind::User => {
                self.user_target(destination)?;
            }
            DestinationKind::Topic | DestinationKind::Queue => {
                if has_wildcards(destination) {
                    return Err(refuse(
                        "invalid destination",
                        format!("cannot SEND to a destination with wildcards: {destination}"),
                    ));
                }
            }
            kind => return Err(unsupported(kind, destination)),
        }
        if let Some(transaction) = frame.headers.get("transaction") {
            let transaction = transaction.to_owned();
            return self.add_to_transaction(&transaction, frame);
        }
        let mut targets = self.route_send(&frame)?;
        if let Some(room) = self.publish_to_queues(&frame, &mut targets)? {
            self.block(frame, targets, room)?;
        }
        Ok(())
    }

    /// Routes a SEND whose destination has been checked: a topic publish happens now; the
    /// queues it must reach are returned, for the caller to publish to (and maybe wait).
    pub(super) fn route_send(&mut self, frame: &Frame) -> Result<VecDeque<String>, CloseReason> {
        let destination = required(frame, "destination")?;
        let kind = self.node.destinations.classify(destination);
        if kind == DestinationKind::User {
            let (name, user_destination) = self.user_target(destination)?;
            let targets = self.node.users.targets(&name, user_destination);
            if targets.is_empty() {
                self.node.stats.record_user_unrouted();
            }
            return Ok(targets
                .iter()
                .map(|session| user::resolve(user_destination, session))
                .collect());
        }
        if user::resolved_session(destination).is_some() {
            // A resolved user destination is a queue, whatever its kind prefix.
            return Ok(VecDeque::from([destination.to_owned()]));
        }
        match kind {
            DestinationKind::Topic => {
                let mut fanout = self
                    .node
                    .topics
                    .publish(destination, &frame.headers, &frame.body);
                self.node
                    .stats
                    .record_publish(fanout.delivered, fanout.dropped, fanout.expired);
                self.wait_for_room(std::mem::take(&mut fanout.congested));
                Ok(VecDeque::new())
            }
            DestinationKind::Queue => Ok(VecDeque::from([destination.to_owned()])),
            kind => Err(unsupported(kind, destination)),
        }
    }

    /// Publishes `frame` to each queue of `targets` in turn, removing those that took it;
    /// stops at a queue that has no room under policy `block` and returns where to wait.
    pub(super) fn publish_to_queues(
        &self,
        frame: &Frame,
        targets: &mut VecDeque<String>,
    ) -> Result<Option<Room>, CloseReason> {
        while let Some(destination) = targets.front() {
            match self
                .node
                .queues
                .publish(destination, &frame.headers, &frame.body, &self.creator)
            {
                Enqueued::Rejected(bound) => return Err(queue_full(destination, bound)),
                Enqueued::Blocked(room) => return Ok(Some(room)),
                Enqueued::Accepted | Enqueued::Expired | Enqueued::Dropped => {
                    targets.pop_front();
                }
            }
        }
        Ok(None)
    }

    /// A SEND held by a transaction, at its COMMIT. A COMMIT cannot stop part-way to wait, so
    /// a queue without room refuses it (the frames before it have taken effect).
    pub(super) fn commit_send(&mut self, frame: &Frame) -> Handled {
        let mut targets = self.route_send(frame)?;
        match self.publish_to_queues(frame, &mut targets)? {
            None => Ok(()),
            Some(_) => Err(refuse(
                "queue full",
                format!(
                    "{} has no room; a COMMIT does not wait for it, the message was not accepted",
                    targets.front().map_or("", String::as_str)
                ),
            )),
        }
    }

    /// Holds a SEND that a full queue did not take and stops reading (producer flow
    /// control) until the queue has room or `queues.block_timeout_ms` is up.
    fn block(&mut self, frame: Frame, targets: VecDeque<String>, room: Room) -> Handled {
        let until =
            Instant::now() + Duration::from_millis(self.node.config.queues.block_timeout_ms);
        self.node.stats.record_backpressure_pause();
        self.retry_blocked(
            BlockedSend {
                frame,
                targets,
                receipt: None,
                until,
                wait: RoomWait::new(room),
            },
            Instant::now(),
        )
    }

    /// Publishes a blocked SEND again. Still blocked: it waits on (a wait registered before
    /// this publish, so no wake-up is lost), or is refused once its time is up. Taken: its
    /// receipt is answered.
    pub(super) fn retry_blocked(&mut self, mut blocked: BlockedSend, now: Instant) -> Handled {
        loop {
            let Some(room) = self.publish_to_queues(&blocked.frame, &mut blocked.targets)? else {
                if let (Some(receipt), Some(version)) = (blocked.receipt.take(), self.version) {
                    self.outbox.push_control(frames::receipt(&receipt, version));
                }
                return Ok(());
            };
            if now >= blocked.until {
                let destination = blocked.targets.front().map_or("", String::as_str);
                let reply = ErrorReply::new(
                    "queue full",
                    format!(
                        "{destination} had no room for queues.block_timeout_ms ({} ms); the message was not accepted",
                        self.node.config.queues.block_timeout_ms
                    ),
                );
                return Err(CloseReason::Protocol(
                    reply.for_receipt(blocked.receipt.as_deref()),
                ));
            }
            if room == blocked.wait.room {
                self.pause.get_or_insert_with(Box::<Pause>::default).blocked = Some(blocked);
                return Ok(());
            }
            // Another bound (the node's total rather than the queue's own): wait on its room,
            // registered before publishing again.
            blocked.wait = RoomWait::new(room);
        }
    }

    /// The user destination after the prefix (`/queue/x` for `/user/queue/x`), if it names a
    /// topic or queue destination without wildcards.
    fn user_destination<'a>(&self, destination: &'a str) -> Result<&'a str, CloseReason> {
        let rest = user::strip_prefix(&self.node.config.destinations.user_prefix, destination)
            .unwrap_or_default();
        self.user_kind_checked(destination, rest)
    }

    fn user_kind_checked<'a>(
        &self,
        destination: &str,
        rest: &'a str,
    ) -> Result<&'a str, CloseReason> {
        match self.node.destinations.classify(rest) {
            DestinationKind::Topic | DestinationKind::Queue if !has_wildcards(rest) => Ok(rest),
            DestinationKind::Topic | DestinationKind::Queue => Err(refuse(
                "invalid destination",
                format!("a user destination cannot be a pattern: {destination}"),
            )),
            _ => Err(refuse(
                "invalid destination",
                format!(
                    "a user destination must name a topic or queue destination after the user prefix: {destination}"
                ),
            )),
        }
    }

    /// A SEND's user destination `/user/<name>/queue/x`: the user name (or session id) and
    /// `/queue/x`.
    fn user_target<'a>(&self, destination: &'a str) -> Result<(String, &'a str), CloseReason> {
        let parsed = user::strip_prefix(&self.node.config.destinations.user_prefix, destination)
            .and_then(user::parse_target);
        let Some((name, rest)) = parsed else {
            return Err(refuse(
                "invalid destination",
                format!(
                    "a SEND to a user destination names the user: /user/<name>/queue/x, not {destination}"
                ),
            ));
        };
        let rest = self.user_kind_checked(destination, rest)?;
        Ok((name, rest))
    }

    fn on_subscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, "id")?;
        let destination = required(frame, "destination")?;
        self.authorize(AccessAction::Subscribe, destination)?;
        if self.subscriptions.contains_key(id) {
            return Err(refuse(
                "duplicate subscription id",
                format!("subscription id {id:?} is already in use on this connection"),
            ));
        }
        let max = self.node.config.limits.max_subscriptions_per_session;
        if self.subscriptions.len() >= max {
            warn!(session = %self.id, peer = %self.peer, max, "subscription limit reached");
            return Err(refuse(
                "too many subscriptions",
                format!("at most {max} subscriptions per connection"),
            ));
        }
        let ack = AckMode::parse(frame.headers.get("ack")).ok_or_else(|| {
            refuse(
                "invalid ack mode",
                format!(
                    "ack must be auto, client or client-individual, not {:?}",
                    frame.headers.get("ack").unwrap_or_default()
                ),
            )
        })?;
        let prefetch = match frame.headers.get("prefetch-count") {
            None => 0,
            Some(value) => value.trim().parse::<usize>().map_err(|_| {
                refuse(
                    "invalid prefetch-count",
                    format!("prefetch-count must be a non-negative integer, not {value:?}"),
                )
            })?,
        };
        let mut kind = self.node.destinations.classify(destination);
        let shown = destination;
        let mut destination = destination;
        let mut resolved = None;
        let user_destination = if kind == DestinationKind::User {
            let rest = self.user_destination(destination)?;
            resolved = Some(user::resolve(rest, &self.id));
            Some(rest.to_owned())
        } else {
            None
        };
        if let Some(resolved) = &resolved {
            destination = resolved;
        }
        if let Some(owner) = user::resolved_session(destination) {
            if owner != self.id {
                return Err(refuse(
                    "access denied",
                    format!("{shown} is the user destination of another session"),
                ));
            }
            // A resolved user destination is a queue, whatever its kind prefix.
            kind = DestinationKind::Queue;
        }
        let shown_destination: Option<Arc<str>> =
            user_destination.as_ref().map(|_| Arc::from(shown));
        let tag = self.acks.next_tag();
        let mut subscriber = Subscriber::new(
            self.key,
            id,
            self.version.unwrap_or(Version::V1_2),
            Arc::clone(&self.outbox),
        );
        let spec = |subscriber: &Subscriber| ConsumerSpec {
            subscriber: subscriber.clone(),
            ack,
            prefetch,
            tag,
            shown_destination: shown_destination.clone(),
        };
        let queue = match kind {
            DestinationKind::Topic => {
                if ack.is_client() {
                    let private = self
                        .node
                        .queues
                        .private_queue(destination, spec(&subscriber));
                    subscriber.queue = Some(Arc::clone(&private));
                }
                self.node
                    .topics
                    .subscribe(destination, subscriber.clone())
                    .map_err(|e| refuse("invalid destination", e.to_string()))?;
                subscriber.queue.clone()
            }
            DestinationKind::Queue => {
                if has_wildcards(destination) {
                    return Err(refuse(
                        "invalid destination",
                        format!("a queue subscription cannot be a pattern: {destination}"),
                    ));
                }
                let queue = self
                    .node
                    .queues
                    .subscribe(destination, spec(&subscriber), &self.creator)
                    .map_err(|bound| queue_full(destination, bound))?;
                Some(queue)
            }
            kind => return Err(unsupported(kind, destination)),
        };
        if let Some(queue) = &queue {
            self.pump_later(Arc::clone(queue), subscriber.clone());
        }
        if ack.is_client() {
            self.acks.register(tag, id);
        }
        if let Some(user_destination) = &user_destination {
            // Only sessions with user-destination subscriptions can be targets, so a session
            // joins the directory on its first one: others cost it nothing.
            if !self.in_user_directory {
                self.node.users.open(&self.id, self.user.as_deref());
                self.in_user_directory = true;
            }
            self.node.users.subscribe(&self.id, user_destination);
        }
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                destination: destination.to_owned(),
                user_destination,
                in_topics: kind == DestinationKind::Topic,
                subscriber,
                ack,
                tag,
                queue,
            },
        );
        Ok(())
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, "id")?;
        // An unknown id is not an error: the subscription is gone either way (as in Spring).
        if let Some(subscription) = self.subscriptions.remove(id) {
            self.leave(&subscription);
        }
        Ok(())
    }

    /// Ends a subscription in routing: out of the topic trie, or out of its queue (whose
    /// unacknowledged messages go back for other consumers).
    pub(super) fn leave(&mut self, subscription: &Subscription) {
        if subscription.ack.is_client() {
            self.acks.unregister(subscription.tag);
        }
        if let Some(user_destination) = &subscription.user_destination {
            self.node.users.unsubscribe(&self.id, user_destination);
        }
        if subscription.in_topics {
            self.node
                .topics
                .unsubscribe(&subscription.destination, &subscription.subscriber);
        }
        if let Some(queue) = &subscription.queue {
            queue.remove_consumer(&subscription.subscriber);
        }
    }
}

/// The ERROR for a SEND refused at a queue bound (policy `reject`, or a queue count bound).
fn queue_full(destination: &str, bound: Bound) -> CloseReason {
    refuse(
        "queue full",
        format!(
            "{destination} is at {}; the message was not accepted",
            bound.config_key()
        ),
    )
}

/// The ERROR for a destination kind that cannot be used (yet).
fn unsupported(kind: DestinationKind, destination: &str) -> CloseReason {
    match kind {
        DestinationKind::User
        | DestinationKind::Topic
        | DestinationKind::Queue
        | DestinationKind::Unknown => refuse(
            "unknown destination",
            format!("{destination} is outside every configured destination prefix"),
        ),
    }
}
