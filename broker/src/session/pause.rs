//! Back-pressure on a publishing session: while what it routed waits for room (a subscriber's
//! outbox above its high-water mark), the session stops reading, so the kernel's buffers fill
//! and the client's writes block, instead of the broker buffering or dropping.
//!
//! The same pause holds a SEND that a full queue did not take (producer flow control, queue
//! policy `block`): it is published again whenever the queue may have room.
//!
//! It also holds a SEND whose routing waits for an answer from elsewhere (offline delivery:
//! whether the user is online on another node, then JetStream's acknowledgement of the
//! stored message), so the session's frames stay in order and its RECEIPT tells the outcome.
//!
//! Waiting for subscribers is bounded by `outbox.max_pause_ms`: one stuck browser must not
//! stall publishers for long. Subscribers still above their mark when the time is up are
//! closed as slow consumers, and the publisher goes on. Waiting for queue room is bounded by
//! `queues.block_timeout_ms`, after which the SEND is refused with an ERROR.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use herald_protocol::Frame;
use tokio::time::{Instant, sleep_until};

use crate::outbox::Outbox;
use crate::routing::cluster::BoxFuture;
use crate::routing::queue::Room;
use crate::routing::router::{Published, Refusal};

/// What a paused session waits for.
#[derive(Debug, Default)]
pub(super) struct Pause {
    /// Until when it waits for `congested`.
    until: Option<Instant>,
    congested: Vec<Arc<Outbox>>,
    pub blocked: Option<BlockedSend>,
    pub held: Option<HeldSend>,
}

/// A SEND whose routing is decided elsewhere (offline delivery), until it is.
pub(super) struct HeldSend {
    pub frame: Frame,
    /// Its `receipt`, answered once it is settled (and any queue took it).
    pub receipt: Option<String>,
    /// What routing made of it, once decided.
    pub settled: Option<Result<Published, Refusal>>,
    deciding: BoxFuture<Result<Published, Refusal>>,
}

impl HeldSend {
    pub fn new(frame: Frame, deciding: BoxFuture<Result<Published, Refusal>>) -> HeldSend {
        HeldSend {
            frame,
            receipt: None,
            settled: None,
            deciding,
        }
    }
}

impl std::fmt::Debug for HeldSend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldSend")
            .field("receipt", &self.receipt)
            .field("settled", &self.settled.is_some())
            .finish_non_exhaustive()
    }
}

/// A SEND waiting for room in a queue.
#[derive(Debug)]
pub(super) struct BlockedSend {
    pub frame: Frame,
    /// The queues it still has to reach, the blocked one first (a user destination may
    /// name several sessions' queues).
    pub targets: VecDeque<String>,
    /// Its `receipt`, answered once every target took it.
    pub receipt: Option<String>,
    /// When it is refused if still blocked.
    pub until: Instant,
    pub wait: RoomWait,
}

/// A wait for room, registered before the publish that was refused, so room freed between
/// that publish and the `.await` still wakes it.
pub(super) struct RoomWait {
    pub room: Room,
    notified: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl RoomWait {
    pub fn new(room: Room) -> RoomWait {
        let owned = room.clone();
        let mut notified: Pin<Box<dyn Future<Output = ()> + Send>> =
            Box::pin(async move { owned.notified().await });
        // One poll registers it with the room's notifier.
        let _ = (&mut notified).now_or_never();
        RoomWait { room, notified }
    }
}

impl std::fmt::Debug for RoomWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomWait").finish_non_exhaustive()
    }
}

impl Pause {
    /// Also waits up to `until` for these outboxes (a later frame, or a COMMIT).
    pub fn wait_for_outboxes(&mut self, until: Instant, congested: Vec<Arc<Outbox>>) {
        if self.congested.is_empty() {
            self.until = Some(until);
        }
        self.wait_for(congested);
    }

    fn wait_for(&mut self, congested: Vec<Arc<Outbox>>) {
        for outbox in congested {
            if !self.congested.iter().any(|o| Arc::ptr_eq(o, &outbox)) {
                self.congested.push(outbox);
            }
        }
    }

    /// Completes when something waited for may have changed: every outbox waited for is
    /// below its mark, the blocked SEND's queue may have room, or a time is up.
    pub async fn changed(&mut self) {
        let Pause {
            until,
            congested,
            blocked,
            held,
        } = self;
        let outboxes = async {
            if congested.is_empty() {
                return std::future::pending().await;
            }
            for outbox in congested.iter() {
                outbox.uncongested().await;
            }
        };
        let outboxes_time = async {
            match until {
                Some(until) if !congested.is_empty() => sleep_until(*until).await,
                _ => std::future::pending().await,
            }
        };
        let room = async {
            match blocked.as_mut() {
                Some(blocked) => {
                    tokio::select! {
                        () = &mut blocked.wait.notified => {}
                        () = sleep_until(blocked.until) => {}
                    }
                }
                None => std::future::pending().await,
            }
        };
        let decided = async {
            match held.as_mut() {
                Some(held) if held.settled.is_none() => {
                    held.settled = Some(held.deciding.as_mut().await);
                }
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            () = outboxes => {}
            () = outboxes_time => {}
            () = room => {}
            () = decided => {}
        }
    }

    /// Forgets the outboxes that have room again; once their time is up, closes those that
    /// do not as slow consumers. Returns how many it closed.
    pub fn settle_outboxes(&mut self, now: Instant) -> usize {
        self.congested.retain(|outbox| outbox.is_congested());
        if self.until.is_some_and(|until| now >= until) {
            return self
                .congested
                .drain(..)
                .filter(|outbox| outbox.close_if_congested())
                .count();
        }
        0
    }

    /// Nothing is left to wait for.
    pub fn is_over(&self) -> bool {
        self.congested.is_empty() && self.blocked.is_none() && self.held.is_none()
    }

    /// Where the RECEIPT of the frame just handled goes, if the pause holds that frame.
    pub fn receipt_slot(&mut self) -> Option<&mut Option<String>> {
        match (&mut self.blocked, &mut self.held) {
            (Some(blocked), _) => Some(&mut blocked.receipt),
            (None, Some(held)) => Some(&mut held.receipt),
            (None, None) => None,
        }
    }
}
