//! SENDs to durable queues on their way into the store (`queues.store = "jetstream"`): each
//! one's RECEIPT waits until the store has the message. Several are in flight at once, up to
//! `queues.jetstream.max_unconfirmed_sends` and `max_unconfirmed_bytes` per session (then the
//! session stops reading until the store catches up), and they are confirmed in the order
//! they were sent, so receipts keep their order.
//!
//! A frame other than SEND, ACK or NACK waits until every store in flight is confirmed: what
//! it does may depend on them (a SUBSCRIBE to the queue just sent to, a COMMIT, a DISCONNECT
//! whose RECEIPT promises that everything before it arrived).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use herald_protocol::{Command, Frame};

use crate::routing::durable::Storing;
use crate::routing::router::Refusal;

type Confirming = Pin<Box<dyn Future<Output = (Result<(), Refusal>, usize)> + Send>>;

/// A session's stores in flight. Made on the first one; dropped again once they are all
/// confirmed, so a session that never sends to a durable queue carries only a `None`.
#[derive(Default)]
pub(super) struct Unconfirmed {
    in_flight: FuturesOrdered<Confirming>,
    /// What each store in flight answers, in the same order.
    answers: VecDeque<Answer>,
    /// Body bytes in flight.
    bytes: usize,
    /// Stores made so far, to tell whether a frame made any.
    made: u64,
    /// A frame that waits for every store in flight to be confirmed.
    held: Option<Frame>,
}

impl std::fmt::Debug for Unconfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unconfirmed")
            .field("in_flight", &self.in_flight.len())
            .field("bytes", &self.bytes)
            .field("held", &self.held.as_ref().map(|frame| frame.command))
            .finish()
    }
}

/// What a store's outcome answers.
#[derive(Debug, Default)]
struct Answer {
    /// The RECEIPT of the frame that made it: on the ERROR if it fails, and sent on its
    /// success if it is the frame's last store.
    receipt: Option<String>,
    last: bool,
    /// Where it came from, for the ERROR (a COMMIT's frame).
    context: Option<String>,
}

/// One store's outcome, with the RECEIPT it answers.
pub(super) struct Confirmed {
    pub result: Result<(), Refusal>,
    /// The RECEIPT to send on success.
    pub receipt: Option<String>,
    /// The `receipt-id` and the prefix of its detail, for the ERROR of a failure.
    pub error_receipt: Option<String>,
    pub context: Option<String>,
}

impl Unconfirmed {
    pub fn push(&mut self, storing: Storing, size: usize) {
        self.in_flight
            .push_back(Box::pin(async move { (storing.await, size) }));
        self.answers.push_back(Answer::default());
        self.bytes += size;
        self.made += 1;
    }

    /// Stores made so far.
    pub fn made(&self) -> u64 {
        self.made
    }

    /// The stores made since the first `made` answer the frame's `receipt`: the last one
    /// sends it once confirmed, any of them names it on its ERROR.
    pub fn answer_since(&mut self, made: u64, receipt: String) {
        let since = usize::try_from(self.made - made).unwrap_or(usize::MAX);
        let mut stores = self.answers.iter_mut().rev().take(since);
        if let Some(last) = stores.next() {
            last.last = true;
            last.receipt = Some(receipt.clone());
        }
        for earlier in stores {
            earlier.receipt = Some(receipt.clone());
        }
    }

    /// The last store made says, on its ERROR, where it came from.
    pub fn describe_last(&mut self, context: String) {
        if let Some(last) = self.answers.back_mut() {
            last.context = Some(context);
        }
    }

    /// Whether `frame` must wait for the stores in flight (see the module's comment).
    pub fn must_wait(&self, frame: &Frame) -> bool {
        !self.in_flight.is_empty()
            && !matches!(frame.command, Command::Send | Command::Ack | Command::Nack)
    }

    pub fn hold(&mut self, frame: Frame) {
        self.held = Some(frame);
    }

    /// The held frame, once nothing is in flight any more.
    pub fn release(&mut self) -> Option<Frame> {
        if self.in_flight.is_empty() {
            self.held.take()
        } else {
            None
        }
    }

    /// The session may not read on: a frame waits, or the window is full.
    pub fn holds_back(&self, max_sends: usize, max_bytes: usize) -> bool {
        self.held.is_some() || self.in_flight.len() >= max_sends || self.bytes >= max_bytes
    }

    /// Nothing in flight and nothing held: it can go.
    pub fn is_done(&self) -> bool {
        self.in_flight.is_empty() && self.held.is_none()
    }

    /// The next store to be confirmed, in the order they were made. Never completes while
    /// nothing is in flight.
    pub async fn next(&mut self) -> Confirmed {
        let Some((result, size)) = self.in_flight.next().await else {
            return std::future::pending().await;
        };
        self.bytes -= size;
        let answer = self.answers.pop_front().unwrap_or_default();
        Confirmed {
            result,
            receipt: answer.receipt.clone().filter(|_| answer.last),
            error_receipt: answer.receipt,
            context: answer.context,
        }
    }
}
