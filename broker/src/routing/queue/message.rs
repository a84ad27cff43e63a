//! A message held by a queue: what the publisher sent, kept until it is delivered (and, in
//! client ack modes, acknowledged), and encoded lazily once per protocol version.

use std::sync::OnceLock;

use bytes::Bytes;
use herald_protocol::{Headers, MessageTemplate, Version};

use crate::outbox::OutFrame;

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
    /// MESSAGE templates by protocol version, first delivery and redelivery.
    templates: [OnceLock<MessageTemplate>; 6],
}

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
        let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        QueuedMessage {
            size: body.len() + header_bytes + destination.len() + id.len(),
            id,
            destination: destination.to_owned(),
            headers: headers.clone(),
            body: Bytes::copy_from_slice(body),
            expires,
            text: std::str::from_utf8(body).is_ok(),
            templates: Default::default(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn expires(&self) -> Option<u64> {
        self.expires
    }

    /// Bytes counted against queue bounds: body, header names and values, destination, id.
    pub fn size(&self) -> usize {
        self.size
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
        let template = self.templates[slot].get_or_init(|| {
            let redelivered_headers;
            let headers = if redelivered {
                let mut h = self.headers.clone();
                h.push("redelivered", "true");
                redelivered_headers = h;
                &redelivered_headers
            } else {
                &self.headers
            };
            MessageTemplate::new(version, &self.destination, &self.id, headers, &self.body)
        });
        OutFrame {
            bytes: template.render(subscription, ack),
            text: self.text,
        }
    }

    /// Like [`QueuedMessage::render`], but showing `destination` instead of the queue's name
    /// (a user destination's subscription). Not cached: such a message has one recipient.
    pub fn render_as(
        &self,
        destination: &str,
        version: Version,
        subscription: &str,
        ack: Option<&str>,
        redelivered: bool,
    ) -> OutFrame {
        let mut headers = self.headers.clone();
        if redelivered {
            headers.push("redelivered", "true");
        }
        let template = MessageTemplate::new(version, destination, &self.id, &headers, &self.body);
        OutFrame {
            bytes: template.render(subscription, ack),
            text: self.text,
        }
    }
}
