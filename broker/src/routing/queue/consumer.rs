//! One subscription as a queue sees it: where to deliver, its ack mode and prefetch, and the
//! messages it holds unacknowledged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use super::message::QueuedMessage;
use crate::routing::subscriber::Subscriber;

/// SUBSCRIBE `ack` modes (STOMP 1.2 "SUBSCRIBE ack Header").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AckMode {
    /// A message is settled once handed to the connection.
    #[default]
    Auto,
    /// ACK or NACK settles the message named and every earlier one of the subscription.
    Client,
    /// ACK or NACK settles only the message named.
    ClientIndividual,
}

impl AckMode {
    /// The mode a SUBSCRIBE's `ack` header names; `None` for an unknown value.
    pub fn parse(header: Option<&str>) -> Option<AckMode> {
        match header {
            None | Some("auto") => Some(AckMode::Auto),
            Some("client") => Some(AckMode::Client),
            Some("client-individual") => Some(AckMode::ClientIndividual),
            Some(_) => None,
        }
    }

    /// MESSAGE frames carry `ack` and wait for ACK or NACK.
    pub fn is_client(self) -> bool {
        self != AckMode::Auto
    }

    /// ACK and NACK settle every earlier message too.
    pub fn is_cumulative(self) -> bool {
        self == AckMode::Client
    }
}

/// The value of a MESSAGE's `ack` header: `<tag>-<seq>`, where the tag names the
/// subscription within its session and `seq` counts its deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckId {
    pub tag: u64,
    pub seq: u64,
}

impl AckId {
    pub fn parse(text: &str) -> Option<AckId> {
        let (tag, seq) = text.split_once('-')?;
        let number = |s: &str| {
            // No signs, spaces or leading zeros: exactly the text `Display` writes.
            (s == "0"
                || (!s.is_empty() && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())))
            .then(|| s.parse().ok())
            .flatten()
        };
        Some(AckId {
            tag: number(tag)?,
            seq: number(seq)?,
        })
    }
}

impl fmt::Display for AckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tag, self.seq)
    }
}

/// What a session tells a queue about a new consumer.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub subscriber: Subscriber,
    pub ack: AckMode,
    /// Most unacknowledged messages at a time in client modes; 0 = no bound.
    pub prefetch: usize,
    /// Identifies the subscription in ack ids (unique within its session).
    pub tag: u64,
    /// The `destination` its MESSAGEs show instead of the queue's name: the `/user/queue/x`
    /// a user-destination subscription was made to.
    pub shown_destination: Option<Arc<str>>,
}

/// A message on its way through a queue.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    pub msg: Arc<QueuedMessage>,
    pub redelivered: bool,
    /// A consumer that NACKed it: others are preferred for its redelivery.
    pub avoid: Option<u64>,
}

impl Pending {
    pub fn new(msg: Arc<QueuedMessage>) -> Pending {
        Pending {
            msg,
            redelivered: false,
            avoid: None,
        }
    }
}

#[derive(Debug)]
pub(super) struct Consumer {
    /// Node-unique, for the NACK hint.
    pub key: u64,
    /// Never holds a private queue (that would be a reference cycle).
    pub subscriber: Subscriber,
    pub ack: AckMode,
    pub prefetch: usize,
    pub tag: u64,
    pub shown_destination: Option<Arc<str>>,
    pub next_seq: u64,
    /// Delivered and awaiting ACK or NACK, by delivery number.
    pub unacked: BTreeMap<u64, Pending>,
    /// Its outbox refused a message; cleared when its session asks for more.
    pub blocked: bool,
    /// Its session is closing.
    pub closed: bool,
}

impl Consumer {
    pub fn new(key: u64, spec: ConsumerSpec) -> Consumer {
        Consumer {
            key,
            subscriber: spec.subscriber,
            ack: spec.ack,
            prefetch: spec.prefetch,
            tag: spec.tag,
            shown_destination: spec.shown_destination,
            next_seq: 1,
            unacked: BTreeMap::new(),
            // The session asks for the first messages once it has answered the SUBSCRIBE.
            blocked: true,
            closed: false,
        }
    }

    /// Whether it may be handed a message now.
    pub fn has_room(&self) -> bool {
        !self.blocked
            && !self.closed
            && (!self.ack.is_client() || self.prefetch == 0 || self.unacked.len() < self.prefetch)
    }
}
