//! What a session does with each client frame.

use std::sync::Arc;

use herald_protocol::{Command, Frame, Version};
use tracing::warn;

use super::close::{CloseReason, ErrorReply};
use super::{Session, Subscription, connect, frames, limits};
use crate::routing::destination::DestinationKind;
use crate::routing::has_wildcards;
use crate::routing::topic::Subscriber;

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
        let receipt = frame.headers.get("receipt").map(str::to_owned);
        let result = match (self.version, frame.command) {
            (None, Command::Connect | Command::Stomp) => self.on_connect(&frame),
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
            (Some(_), Command::Send) => self.on_send(&frame),
            (Some(_), Command::Subscribe) => self.on_subscribe(&frame),
            (Some(_), Command::Unsubscribe) => self.on_unsubscribe(&frame),
            (Some(_), Command::Ack | Command::Nack) => {
                let id = required(&frame, "id")?;
                Err(refuse(
                    "unknown ack id",
                    format!("no message awaits acknowledgement with id {id:?}"),
                ))
            }
            (Some(_), Command::Begin | Command::Commit | Command::Abort) => Err(refuse(
                "transactions not supported",
                "BEGIN, COMMIT and ABORT are not implemented yet",
            )),
            (Some(_), server_command) => Err(refuse(
                "unexpected frame",
                format!("{server_command} is a server frame"),
            )),
        };
        match result {
            Ok(()) => {
                if let (Some(receipt), Some(version)) = (receipt, self.version) {
                    self.outbox.push_control(frames::receipt(&receipt, version));
                }
                Ok(())
            }
            Err(CloseReason::Protocol(reply)) if reply.receipt.is_none() => {
                Err(CloseReason::Protocol(reply.for_receipt(receipt.as_deref())))
            }
            Err(other) => Err(other),
        }
    }

    fn on_connect(&mut self, frame: &Frame) -> Handled {
        let accepted = connect::accept(frame, self.peer.ip(), &self.id, &self.node.config)
            .map_err(CloseReason::Protocol)?;
        self.version = Some(accepted.version);
        self.heartbeat = accepted.heartbeat;
        self.decoder.set_options(herald_protocol::ParseOptions {
            version: accepted.version,
            limits: limits(&self.node, true),
        });
        self.outbox
            .push_control(frames::control(&accepted.reply, accepted.version));
        Ok(())
    }

    fn on_send(&mut self, frame: &Frame) -> Handled {
        let destination = required(frame, "destination")?;
        if frame.headers.contains("transaction") {
            return Err(refuse(
                "transactions not supported",
                "SEND with a transaction header is not implemented yet",
            ));
        }
        match self.node.destinations.classify(destination) {
            DestinationKind::Topic => {
                if has_wildcards(destination) {
                    return Err(refuse(
                        "invalid destination",
                        format!("cannot SEND to a destination with wildcards: {destination}"),
                    ));
                }
                let fanout = self
                    .node
                    .topics
                    .publish(destination, &frame.headers, &frame.body);
                self.node.stats.record_publish(&fanout);
                Ok(())
            }
            kind => Err(unsupported(kind, destination)),
        }
    }

    fn on_subscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, "id")?;
        let destination = required(frame, "destination")?;
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
        match frame.headers.get("ack") {
            None | Some("auto") => {}
            Some("client" | "client-individual") => {
                return Err(refuse(
                    "ack mode not supported",
                    "client and client-individual acknowledgement are not implemented yet",
                ));
            }
            Some(other) => {
                return Err(refuse(
                    "invalid ack mode",
                    format!("ack must be auto, client or client-individual, not {other:?}"),
                ));
            }
        }
        let kind = self.node.destinations.classify(destination);
        if kind != DestinationKind::Topic {
            return Err(unsupported(kind, destination));
        }
        let subscriber = Subscriber {
            session: self.key,
            id: Arc::from(id),
            version: self.version.unwrap_or(Version::V1_2),
            outbox: Arc::clone(&self.outbox),
        };
        self.node
            .topics
            .subscribe(destination, subscriber.clone())
            .map_err(|e| refuse("invalid destination", e.to_string()))?;
        self.subscriptions.insert(
            id.to_owned(),
            Subscription {
                destination: destination.to_owned(),
                subscriber,
            },
        );
        Ok(())
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Handled {
        let id = required(frame, "id")?;
        // An unknown id is not an error: the subscription is gone either way (as in Spring).
        if let Some(subscription) = self.subscriptions.remove(id) {
            self.node
                .topics
                .unsubscribe(&subscription.destination, &subscription.subscriber);
        }
        Ok(())
    }
}

/// The ERROR for a destination kind that cannot be used (yet).
fn unsupported(kind: DestinationKind, destination: &str) -> CloseReason {
    match kind {
        DestinationKind::Queue => refuse(
            "queues not supported",
            format!("point-to-point queues are not implemented yet: {destination}"),
        ),
        DestinationKind::User => refuse(
            "user destinations not supported",
            format!("user destinations are not implemented yet: {destination}"),
        ),
        DestinationKind::Topic | DestinationKind::Unknown => refuse(
            "unknown destination",
            format!("{destination} is outside every configured destination prefix"),
        ),
    }
}
