//! A message held by a queue: what the publisher sent, kept until it is delivered (and, in
//! client ack modes, acknowledged), and encoded lazily once per protocol version.

use std::borrow::Cow;
use std::sync::OnceLock;

use bytes::Bytes;
use herald_protocol::{Headers, MessageTemplate, Version};

use super::consumer::Pending;
use crate::outbox::OutFrame;
use crate::routing::durable::StoredHandle;
use crate::routing::publish::expires;

/// One published message in a queue. Shared (`Arc`) between the queue, the consumers holding
/// it unacknowledged, and the private queues of every client-ack topic subscription it
/// reached.
#[derive(Debug)]
pub struct QueuedMessage {
    id: String,
    destination: String,
    /// The publisher's headers, minus those the broker owns.
    headers: Headers,
    body: Bytes,
    /// Epoch milliseconds after which it must not be delivered.
    expires: Option<u64>,
    /// The body is UTF-8 (a WebSocket may carry the frame as text).
    text: bool,
    /// What it counts against queue bounds.
    size: usize,
    /// MESSAGE templates by protocol version, first delivery and redelivery; only for a
    /// message shared by the private queues of several topic subscriptions. Boxed and made
    /// on first use: six empty templates inline would cost ~900 bytes a message.
    templates: OnceLock<Box<[OnceLock<MessageTemplate>; 6]>>,
    /// Its settlement with the store, for a message of a durable queue.
    stored: Option<StoredHandle>,
}

/// What one held message costs besides its text, approximated from the structures it lives
/// in (see `QueuedMessage::size`): the `Arc` allocation (two counts and the struct), its slot
/// as `Pending` in the queue's `VecDeque` (twice: a doubling buffer is between half and
/// fully used) or, unacknowledged, in a `BTreeMap` with its `u64` key, and allocator
/// rounding of ~16 bytes for each of its five allocations (the `Arc`, id, destination,
/// header text and body). Checked against the process's memory in docs/destinations.md
/// ("Memory").
const MESSAGE_OVERHEAD: usize = 2 * size_of::<usize>()
    + size_of::<QueuedMessage>()
    + 2 * size_of::<Pending>()
    + size_of::<u64>()
    + 5 * 16;

/// Each header's index entry in `Headers` (three offsets).
const HEADER_ENTRY: usize = 3 * size_of::<usize>();

impl QueuedMessage {
    /// `headers` are the ones to forward (see `routing::publish::forwarded_headers`). The
    /// body is copied, so a waiting message does not pin the connection's read buffer.
    pub fn new(
        id: String,
        destination: &str,
        headers: &Headers,
        body: &[u8],
        expires: Option<u64>,
    ) -> QueuedMessage {
        QueuedMessage::build(
            id,
            destination,
            headers.clone(),
            Bytes::copy_from_slice(body),
            expires,
            None,
        )
    }

    /// A message a durable queue's store handed over, settled through `stored`.
    pub fn from_store(
        id: String,
        destination: &str,
        headers: Headers,
        body: Bytes,
        stored: StoredHandle,
    ) -> QueuedMessage {
        let expires = expires(&headers);
        QueuedMessage::build(id, destination, headers, body, expires, Some(stored))
    }

    fn build(
        id: String,
        destination: &str,
        headers: Headers,
        body: Bytes,
        expires: Option<u64>,
        stored: Option<StoredHandle>,
    ) -> QueuedMessage {
        let header_bytes: usize = headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2 + HEADER_ENTRY)
            .sum();
        QueuedMessage {
            size: MESSAGE_OVERHEAD + body.len() + header_bytes + destination.len() + id.len(),
            id,
            destination: destination.to_owned(),
            headers,
            text: std::str::from_utf8(&body).is_ok(),
            body,
            expires,
            templates: Default::default(),
            stored,
        }
    }

    /// Settles it with its store as done (a message of a durable queue; nothing otherwise).
    pub fn ack_stored(&self) {
        if let Some(stored) = &self.stored {
            stored.ack();
        }
    }

    /// Gives it back to its store for another delivery (a message of a durable queue).
    pub fn nak_stored(&self) {
        if let Some(stored) = &self.stored {
            stored.nak();
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// Bytes counted against queue bounds: body, header names and values with their index,
    /// destination, id, and the fixed overhead of holding a message (`MESSAGE_OVERHEAD`).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The message's headers, with `redelivered:true` added when it was delivered before.
    fn headers_for(&self, redelivered: bool) -> Cow<'_, Headers> {
        if redelivered {
            let mut headers = self.headers.clone();
            headers.push("redelivered", "true");
            Cow::Owned(headers)
        } else {
            Cow::Borrowed(&self.headers)
        }
    }

    /// The MESSAGE frame for one subscription, with `ack` in client modes and
    /// `redelivered:true` when it was delivered before.
    pub fn render(
        &self,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
    ) -> OutFrame {
        let slot = version as usize * 2 + usize::from(redelivered);
        let templates = self.templates.get_or_init(Default::default);
        let template = templates[slot].get_or_init(|| {
            let headers = self.headers_for(redelivered);
            MessageTemplate::new(version, &self.destination, &self.id, &headers, &self.body)
        });
        OutFrame {
            bytes: template.render(subscription, ack),
            text: self.text,
        }
    }

    /// Like [`QueuedMessage::render`], but not cached: for a message of a named queue, which
    /// one consumer gets at a time (a cached template would hold a second copy of the body
    /// for as long as the message awaits its ACK). Shows `destination` instead of the
    /// queue's name if given (a user destination's subscription).
    pub fn render_once(
        &self,
        destination: Option<&str>,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
    ) -> OutFrame {
        let headers = self.headers_for(redelivered);
        let destination = destination.unwrap_or(&self.destination);
        let template = MessageTemplate::new(version, destination, &self.id, &headers, &self.body);
        OutFrame {
            bytes: template.render(subscription, ack),
            text: self.text,
        }
    }
}
