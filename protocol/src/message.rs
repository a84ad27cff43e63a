//! MESSAGE frames encoded once per published message and shared by every subscriber.
//!
//! A MESSAGE differs between subscribers only in `subscription` (and `ack` in client ack
//! modes), so the frame is kept as two shared parts with those headers spliced between them.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{
    Command, Headers, Version,
    encode::{put_body, put_header},
    escape::Escaping,
};

/// Headers the template writes itself, so a copy in the publisher's headers is skipped.
const OWNED_HEADERS: [&str; 5] = [
    "destination",
    "message-id",
    "subscription",
    "ack",
    "content-length",
];

/// One published message, encoded for one protocol version.
#[derive(Debug)]
pub struct MessageTemplate {
    escaping: Escaping,
    /// `MESSAGE`, `destination`, `message-id`.
    head: Bytes,
    /// The publisher's headers, `content-length`, the blank line, the body and the NUL.
    tail: Bytes,
    /// The whole frame for the first subscription id rendered without `ack`. Clients such as
    /// stompjs number subscriptions `sub-0`, `sub-1`, … per connection, so most subscribers of
    /// a topic share one id and get this one buffer instead of a copy each.
    shared: OnceLock<(String, Bytes)>,
}

impl MessageTemplate {
    /// Encodes a MESSAGE for `destination` carrying `headers` (those named in the owned list
    /// above are skipped) and `body`.
    pub fn new(
        version: Version,
        destination: &str,
        message_id: &str,
        headers: &Headers,
        body: &[u8],
    ) -> MessageTemplate {
        let escaping = Escaping::for_frame(Command::Message.escapes_headers(version), version);
        let mut head = BytesMut::with_capacity(32 + destination.len() + message_id.len());
        head.put_slice(b"MESSAGE\n");
        put_header(&mut head, "destination", destination, escaping);
        put_header(&mut head, "message-id", message_id, escaping);

        let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        let mut tail = BytesMut::with_capacity(header_bytes + body.len() + 32);
        for (name, value) in headers.iter() {
            if !OWNED_HEADERS.contains(&name) {
                put_header(&mut tail, name, value, escaping);
            }
        }
        put_body(&mut tail, body);
        MessageTemplate {
            escaping,
            head: head.freeze(),
            tail: tail.freeze(),
            shared: OnceLock::new(),
        }
    }

    /// Appends the frame for one subscription to `out`.
    pub fn render_into(&self, subscription: &str, ack: Option<&str>, out: &mut BytesMut) {
        out.reserve(self.head.len() + self.tail.len() + subscription.len() + 32);
        out.put_slice(&self.head);
        put_header(out, "subscription", subscription, self.escaping);
        if let Some(ack) = ack {
            put_header(out, "ack", ack, self.escaping);
        }
        out.put_slice(&self.tail);
    }

    /// The frame for one subscription as its own buffer; shared, not copied, for the most
    /// common subscription id (see `shared`).
    pub fn render(&self, subscription: &str, ack: Option<&str>) -> Bytes {
        if ack.is_none() {
            let (id, frame) = self.shared.get_or_init(|| {
                (
                    subscription.to_owned(),
                    self.render_fresh(subscription, None),
                )
            });
            if id == subscription {
                return frame.clone();
            }
        }
        self.render_fresh(subscription, ack)
    }

    fn render_fresh(&self, subscription: &str, ack: Option<&str>) -> Bytes {
        let mut out = BytesMut::new();
        self.render_into(subscription, ack, &mut out);
        out.freeze()
    }
}
