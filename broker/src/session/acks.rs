//! ACK and NACK: which subscription and delivery a frame names, and settling it with the
//! queue that holds the message (the named queue, or the private queue of a client-ack topic
//! subscription). The unacknowledged messages themselves live in the queue, under its lock;
//! the session keeps only what maps an `ack` id back to its subscription.

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::{Command, Frame, Version};

use super::Session;
use super::close::{CloseReason, ErrorReply};
use crate::routing::queue::{AckId, Queue, Settle};
use crate::routing::subscriber::Subscriber;

/// Client-ack subscriptions by the tag their ack ids carry.
#[derive(Debug, Default)]
pub(super) struct AckIndex {
    next_tag: u64,
    by_tag: HashMap<u64, String>,
}

impl AckIndex {
    /// A tag for a new subscription; never reused within the session, so an ack id of an
    /// ended subscription stays unknown even if its subscription id is used again.
    pub fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    pub fn register(&mut self, tag: u64, subscription: &str) {
        self.by_tag.insert(tag, subscription.to_owned());
    }

    pub fn unregister(&mut self, tag: u64) {
        self.by_tag.remove(&tag);
    }

    fn subscription(&self, tag: u64) -> Option<&str> {
        self.by_tag.get(&tag).map(String::as_str)
    }
}

/// The delivery an ACK or NACK names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AckTarget {
    /// The subscription id.
    pub subscription: String,
    pub seq: u64,
}

fn unknown(what: &str) -> CloseReason {
    CloseReason::Protocol(ErrorReply::new(
        "unknown ack id",
        format!("no message awaits acknowledgement with {what}"),
    ))
}

impl Session {
    /// ACK or NACK: checked now; applied now, or at COMMIT when it names a transaction.
    pub(super) fn on_ack(&mut self, frame: Frame) -> Result<(), CloseReason> {
        self.resolve_ack(&frame)?;
        if let Some(transaction) = frame.headers.get("transaction") {
            let transaction = transaction.to_owned();
            return self.add_to_transaction(&transaction, frame);
        }
        self.apply_ack(&frame)
    }

    /// Settles what an ACK or NACK names (again resolved, since a transaction may apply it
    /// long after it was checked).
    pub(super) fn apply_ack(&mut self, frame: &Frame) -> Result<(), CloseReason> {
        let target = self.resolve_ack(frame)?;
        let settle = match frame.command {
            Command::Nack => Settle::Nack,
            _ => Settle::Ack,
        };
        let Some(subscription) = self.subscriptions.get(&target.subscription) else {
            return Err(unknown(&format!("id {:?}", describe(frame))));
        };
        let Some(queue) = &subscription.route.queue else {
            return Err(unknown(&format!("id {:?}", describe(frame))));
        };
        let (queue, subscriber) = (Arc::clone(queue), subscription.subscriber.clone());
        queue
            .settle(
                &subscriber,
                target.seq,
                subscription.ack.is_cumulative(),
                settle,
            )
            .map_err(|_| unknown(&format!("id {:?}", describe(frame))))?;
        // Room was made (ACK) or messages wait again (NACK): deliver after the receipt.
        self.pump_later(queue, subscriber);
        Ok(())
    }

    /// The subscription and delivery an ACK or NACK names. STOMP 1.2 names it by `id` (the
    /// MESSAGE's `ack` header); 1.0 and 1.1 by `message-id`, with `subscription` in 1.1. Some
    /// 1.0/1.1 clients (stomp.py) put the MESSAGE's `ack` value in `message-id`: either
    /// identifier is accepted there.
    fn resolve_ack(&self, frame: &Frame) -> Result<AckTarget, CloseReason> {
        let headers = &frame.headers;
        let version = self.version.unwrap_or(Version::V1_2);
        if let Some(id) = headers.get("id") {
            return self
                .resolve_ack_id(id)
                .ok_or_else(|| unknown(&format!("id {id:?}")));
        }
        if version == Version::V1_2 {
            return Err(CloseReason::Protocol(ErrorReply::new(
                "missing id header",
                format!("a {} frame must carry an id header", frame.command),
            )));
        }
        let Some(message_id) = headers.get("message-id") else {
            return Err(CloseReason::Protocol(ErrorReply::new(
                "missing message-id header",
                format!(
                    "a STOMP {version} {} frame must carry a message-id header",
                    frame.command
                ),
            )));
        };
        let wanted = headers.get("subscription");
        let by_message_id = || {
            self.subscriptions
                .iter()
                .filter(|(id, s)| s.ack.is_client() && wanted.is_none_or(|w| w == id.as_str()))
                .find_map(|(id, s)| {
                    let seq = s
                        .route
                        .queue
                        .as_ref()?
                        .find_unacked(&s.subscriber, message_id)?;
                    Some(AckTarget {
                        subscription: id.clone(),
                        seq,
                    })
                })
        };
        let by_ack_value = || {
            self.resolve_ack_id(message_id)
                .filter(|target| wanted.is_none_or(|w| w == target.subscription))
        };
        by_message_id()
            .or_else(by_ack_value)
            .ok_or_else(|| unknown(&format!("message-id {message_id:?}")))
    }

    fn resolve_ack_id(&self, id: &str) -> Option<AckTarget> {
        let AckId { tag, seq } = AckId::parse(id)?;
        let subscription = self.acks.subscription(tag)?;
        let s = self.subscriptions.get(subscription)?;
        if !s.route.queue.as_ref()?.is_pending(&s.subscriber, seq) {
            return None;
        }
        Some(AckTarget {
            subscription: subscription.to_owned(),
            seq,
        })
    }

    /// Remembers to let `queue` deliver to `subscriber` once the current frame is answered.
    pub(super) fn pump_later(&mut self, queue: Arc<Queue>, subscriber: Subscriber) {
        let known = self
            .pumps
            .iter()
            .any(|(q, s)| Arc::ptr_eq(q, &queue) && *s == subscriber);
        if !known {
            self.pumps.push((queue, subscriber));
        }
    }

    /// Lets the queues touched by the last frame deliver.
    pub(super) fn run_pumps(&mut self) {
        for (queue, subscriber) in std::mem::take(&mut self.pumps) {
            queue.resume(&subscriber);
        }
    }

    /// The outbox refused a queue message and has since been written out: every queue this
    /// session consumes from may deliver again.
    pub(super) fn resume_queues(&self) {
        for subscription in self.subscriptions.values() {
            if let Some(queue) = &subscription.route.queue {
                queue.resume(&subscription.subscriber);
            }
        }
    }
}

/// How an ACK or NACK named its message, for the ERROR.
fn describe(frame: &Frame) -> &str {
    frame
        .headers
        .get("id")
        .or_else(|| frame.headers.get("message-id"))
        .unwrap_or("")
}
