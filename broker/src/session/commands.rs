//! What a session does with each client frame.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Command, Frame, Version};
use tokio::time::Instant;
use tracing::{info, warn};

use super::close::{CloseReason, ErrorReply};
use super::pause::{BlockedSend, HeldSend, Pause, RoomWait};
use super::{Session, Subscription, connect, frames, limits};
use crate::access::{Principal, Routing};
use crate::config::AccessAction;
use crate::routing::offline::OfflineSend;
use crate::routing::queue::{AckMode, ConsumerSpec, Creator, Enqueued, Room};
use crate::routing::router::{Refusal, SessionRef};
use crate::routing::subscriber::Subscriber;
use crate::routing::user;

/// Most authorization verdicts a session keeps; the cache starts over past this.
const MAX_CACHED_VERDICTS: usize = 256;

/// A frame handler's verdict: carry on, or close for this reason.
type Handled = Result<(), CloseReason>;

fn refuse(message: &str, detail: impl Into<String>) -> CloseReason {
    CloseReason::Protocol(ErrorReply::new(message, detail))
}

impl From<Refusal> for CloseReason {
    fn from(refusal: Refusal) -> CloseReason {
        refuse(refusal.message, refusal.detail)
    }
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
        let stores_before = self.stores_made();
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
                let stored = self.stores_made() > stores_before;
                if let Some(slot) = self.pause.as_mut().and_then(|p| p.receipt_slot()) {
                    // A SEND waiting for queue room, or for its offline-or-live decision, is
                    // confirmed once settled.
                    *slot = receipt;
                } else if let (true, Some(unconfirmed)) = (stored, self.unconfirmed.as_mut()) {
                    // Confirmed once the store has what the frame sent (a SEND, a COMMIT).
                    if let Some(receipt) = receipt {
                        unconfirmed.answer_since(stores_before, receipt);
                    }
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
        self.node
            .router
            .open_session(&self.id, self.user.as_deref());
        if let Some(user) = &self.user {
            self.kick = Some(self.node.kicks.join(user, &self.id, &self.node.shutdown));
        }
        self.outbox
            .push_control(frames::control(&accepted.reply, accepted.version));
        info!(
            session = %self.id,
            peer = %self.peer,
            transport = self.transport,
            user = self.user.as_deref().unwrap_or("-"),
            version = accepted.version.as_str(),
            "session opened"
        );
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
                let routing = Routing::new(
                    self.node.router.destinations(),
                    &self.node.config.destinations,
                );
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
        self.node
            .stats
            .record_access_denied(action == AccessAction::Send);
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
        let route = self.node.router.parse_send(destination)?;
        if let Some(transaction) = frame.headers.get("transaction") {
            let transaction = transaction.to_owned();
            return self.add_to_transaction(&transaction, frame);
        }
        let published = self
            .node
            .router
            .publish(&route, &frame.headers, &frame.body)?;
        if let Some(send) = published.offline {
            self.hold(frame, send);
            return Ok(());
        }
        let mut targets = published.queues;
        self.wait_for_room(published.congested);
        if let Some(room) = self.publish_to_queues(&frame, &mut targets)? {
            self.block(frame, targets, room)?;
        }
        Ok(())
    }

    /// Routes a SEND whose destination has been checked: a topic publish happens now; the
    /// queues it must reach are returned, for the caller to publish to (and maybe wait).
    pub(super) fn route_send(&mut self, frame: &Frame) -> Result<VecDeque<String>, CloseReason> {
        let destination = required(frame, "destination")?;
        let route = self.node.router.parse_send(destination)?;
        let published = self
            .node
            .router
            .publish(&route, &frame.headers, &frame.body)?;
        if let Some(send) = published.offline {
            self.settle_at_commit(send);
        }
        self.wait_for_room(published.congested);
        Ok(published.queues)
    }

    /// Stores made for this session's SENDs so far (see `unconfirmed`).
    pub(super) fn stores_made(&self) -> u64 {
        self.unconfirmed.as_ref().map_or(0, |u| u.made())
    }

    /// Publishes `frame` to each queue of `targets` in turn, removing those that took it;
    /// stops at a queue that has no room under policy `block` and returns where to wait. A
    /// durable queue's store takes it without waiting; it is confirmed later.
    pub(super) fn publish_to_queues(
        &mut self,
        frame: &Frame,
        targets: &mut VecDeque<String>,
    ) -> Result<Option<Room>, CloseReason> {
        while let Some(destination) = targets.front() {
            if let Some(storing) = self
                .node
                .router
                .store(destination, &frame.headers, &frame.body)
            {
                self.unconfirmed
                    .get_or_insert_with(Box::default)
                    .push(storing, frame.body.len());
                targets.pop_front();
                continue;
            }
            match self
                .node
                .router
                .enqueue(destination, &frame.headers, &frame.body, &self.creator)
            {
                Enqueued::Rejected(bound) => {
                    return Err(Refusal::queue_full(destination, bound).into());
                }
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
            Some(_) => {
                Err(Refusal::no_room_at_commit(targets.front().map_or("", String::as_str)).into())
            }
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

    /// Holds a SEND held back for offline delivery and stops reading until it is stored or
    /// routed live ([`Session::settle_held`]); its RECEIPT waits for that.
    fn hold(&mut self, frame: Frame, send: OfflineSend) {
        let node = Arc::clone(&self.node);
        let deciding = Box::pin(async move { node.router.settle_offline(send).await });
        self.pause.get_or_insert_with(Box::<Pause>::default).held =
            Some(HeldSend::new(frame, deciding));
    }

    /// A held SEND once decided: refused, or its queues filled as for any SEND (waiting
    /// for room under policy `block`), then its RECEIPT.
    pub(super) fn settle_held(&mut self, held: HeldSend) -> Handled {
        let HeldSend {
            frame,
            receipt,
            settled,
            ..
        } = held;
        let with_receipt = |reason: CloseReason| match reason {
            CloseReason::Protocol(reply) if reply.receipt.is_none() => {
                CloseReason::Protocol(reply.for_receipt(receipt.as_deref()))
            }
            other => other,
        };
        let published = match settled {
            Some(Ok(published)) => published,
            Some(Err(refusal)) => return Err(with_receipt(refusal.into())),
            None => return Ok(()),
        };
        self.wait_for_room(published.congested);
        let mut targets = published.queues;
        if let Some(room) = self
            .publish_to_queues(&frame, &mut targets)
            .map_err(with_receipt)?
        {
            self.block(frame, targets, room).map_err(with_receipt)?;
        }
        match (
            self.pause.as_mut().and_then(|p| p.blocked.as_mut()),
            self.unconfirmed.as_mut().filter(|u| !u.is_done()),
        ) {
            (Some(blocked), _) => blocked.receipt = receipt,
            // Earlier SENDs still on their way into the queue store answer first.
            (None, Some(unconfirmed)) => {
                if let Some(receipt) = receipt {
                    let made = unconfirmed.made();
                    unconfirmed.push(Box::pin(std::future::ready(Ok(()))), 0);
                    unconfirmed.answer_since(made, receipt);
                }
            }
            (None, None) => {
                if let (Some(receipt), Some(version)) = (receipt, self.version) {
                    self.outbox.push_control(frames::receipt(&receipt, version));
                }
            }
        }
        Ok(())
    }

    /// A SEND held back for offline delivery at a COMMIT, which cannot stop part-way to
    /// wait: settled alongside the session's stores in flight, so that the COMMIT's RECEIPT
    /// waits for it and a failure is the COMMIT's ERROR, naming the frame. Routed live, its
    /// queues are filled then; one without room refuses it, as at any COMMIT.
    fn settle_at_commit(&mut self, send: OfflineSend) {
        let node = Arc::clone(&self.node);
        let size = send.body.len();
        let settling = Box::pin(async move {
            let (headers, body) = (send.headers.clone(), send.body.clone());
            let published = node.router.settle_offline(send).await?;
            let creator = Creator::default();
            for queue in &published.queues {
                match node.router.enqueue(queue, &headers, &body, &creator) {
                    Enqueued::Rejected(bound) => return Err(Refusal::queue_full(queue, bound)),
                    Enqueued::Blocked(_) => return Err(Refusal::no_room_at_commit(queue)),
                    Enqueued::Accepted | Enqueued::Expired | Enqueued::Dropped => {}
                }
            }
            Ok(())
        });
        self.unconfirmed
            .get_or_insert_with(Box::default)
            .push(settling, size);
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
        let route = self.node.router.parse_subscribe(destination, &self.id)?;
        let tag = self.acks.next_tag();
        let subscriber = Subscriber::new(
            self.key,
            id,
            self.version.unwrap_or(Version::V1_2),
            Arc::clone(&self.outbox),
        );
        let spec = ConsumerSpec {
            subscriber: subscriber.clone(),
            ack,
            prefetch,
            tag,
            shown_destination: None,
        };
        let session = SessionRef {
            id: &self.id,
            user: self.user.as_deref(),
            creator: &self.creator,
        };
        let route = self.node.router.subscribe(session, route, spec)?;
        if let Some(queue) = &route.queue {
            self.pump_later(Arc::clone(queue), subscriber.clone());
        }
        if ack.is_client() {
            self.acks.register(tag, id);
        }
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                route,
                subscriber,
                ack,
                tag,
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
        self.node
            .router
            .unsubscribe(&self.id, &subscription.route, &subscription.subscriber);
    }
}
