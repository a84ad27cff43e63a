//! BEGIN, COMMIT, ABORT. A transaction holds its SEND, ACK and NACK frames, each checked when
//! it arrives (and answered with its RECEIPT then), and applies them at COMMIT in arrival
//! order. ABORT, DISCONNECT and the end of the session discard them.
//!
//! What a transaction holds is bounded in frames and bytes, and all transactions of the node
//! share one byte budget (`Stats::transaction_bytes`): bytes are given back at COMMIT, at
//! ABORT, and when the session's `Transactions` is dropped, however the session ended.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use herald_protocol::{Command, Frame};

use super::Session;
use super::close::{CloseReason, ErrorReply};
use crate::metrics::Stats;

/// A session's open transactions by id.
#[derive(Debug, Default)]
pub(super) struct Transactions {
    open: HashMap<String, Held>,
    /// The node's counters, whose `transaction_bytes` this session draws from; taken on the
    /// first frame held.
    budget: Option<Arc<Stats>>,
}

/// One open transaction.
#[derive(Debug, Default)]
struct Held {
    frames: Vec<Frame>,
    /// Counted against `limits.max_bytes_per_transaction` and the node's budget.
    bytes: usize,
}

/// What holding a frame costs besides its body and header text: the `Frame` in the `Vec`,
/// each header's index entry (three offsets), and allocator rounding for the body and the
/// two header allocations.
fn held_size(frame: &Frame) -> usize {
    let headers: usize = frame
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2 + 3 * size_of::<usize>())
        .sum();
    size_of::<Frame>() + 3 * 16 + headers + frame.body.len()
}

impl Transactions {
    /// Discards every open transaction (the session is ending).
    pub fn abort_all(&mut self) {
        let bytes: usize = self.open.drain().map(|(_, held)| held.bytes).sum();
        self.give_back(bytes);
    }

    /// Removes a transaction, giving its bytes back.
    fn close(&mut self, id: &str) -> Option<Vec<Frame>> {
        let held = self.open.remove(id)?;
        self.give_back(held.bytes);
        Some(held.frames)
    }

    fn give_back(&self, bytes: usize) {
        if let (Some(stats), true) = (&self.budget, bytes > 0) {
            stats
                .transaction_bytes
                .fetch_sub(bytes as i64, Ordering::Relaxed);
        }
    }
}

impl Drop for Transactions {
    /// The session is gone, whatever happened to it: its held bytes go back to the node.
    fn drop(&mut self) {
        self.abort_all();
    }
}

fn refuse(message: &str, detail: impl Into<String>) -> CloseReason {
    CloseReason::Protocol(ErrorReply::new(message, detail))
}

fn unknown(command: Command, id: &str) -> CloseReason {
    refuse(
        "unknown transaction",
        format!("{command} names transaction {id:?}, which is not open on this connection"),
    )
}

fn transaction_id(frame: &Frame) -> Result<&str, CloseReason> {
    frame.headers.get("transaction").ok_or_else(|| {
        refuse(
            "missing transaction header",
            format!("a {} frame must carry a transaction header", frame.command),
        )
    })
}

impl Session {
    pub(super) fn on_begin(&mut self, frame: &Frame) -> Result<(), CloseReason> {
        let id = transaction_id(frame)?;
        if self.transactions.open.contains_key(id) {
            return Err(refuse(
                "transaction already open",
                format!("transaction {id:?} was begun and is not committed or aborted yet"),
            ));
        }
        let max = self.node.config.limits.max_transactions_per_session;
        if self.transactions.open.len() >= max {
            return Err(refuse(
                "too many transactions",
                format!("at most {max} open transactions per connection"),
            ));
        }
        self.transactions
            .open
            .insert(id.to_owned(), Held::default());
        Ok(())
    }

    /// Applies the transaction's frames in order. A frame that fails then (a queue full under
    /// policy `reject`, a message no longer awaiting acknowledgement) ends the COMMIT with an
    /// ERROR naming it; the frames before it have taken effect.
    pub(super) fn on_commit(&mut self, frame: &Frame) -> Result<(), CloseReason> {
        let id = transaction_id(frame)?;
        let frames = self
            .transactions
            .close(id)
            .ok_or_else(|| unknown(Command::Commit, id))?;
        let count = frames.len();
        for (index, held) in frames.iter().enumerate() {
            let stores_before = self.stores_made();
            let applied = match held.command {
                Command::Send => self.commit_send(held),
                _ => self.apply_ack(held),
            };
            if self.stores_made() > stores_before {
                // A store refusing it later says which frame it was, as an error now would.
                if let Some(unconfirmed) = self.unconfirmed.as_mut() {
                    unconfirmed.describe_last(format!(
                        "COMMIT of transaction {id:?} failed at frame {} of {count} (SEND)",
                        index + 1
                    ));
                }
            }
            applied.map_err(|reason| match reason {
                CloseReason::Protocol(mut reply) => {
                    reply.detail = format!(
                        "COMMIT of transaction {id:?} failed at frame {} of {count} ({}): {}",
                        index + 1,
                        held.command,
                        reply.detail
                    );
                    CloseReason::Protocol(reply)
                }
                other => other,
            })?;
        }
        Ok(())
    }

    pub(super) fn on_abort(&mut self, frame: &Frame) -> Result<(), CloseReason> {
        let id = transaction_id(frame)?;
        self.transactions
            .close(id)
            .map(drop)
            .ok_or_else(|| unknown(Command::Abort, id))
    }

    /// Holds a checked SEND, ACK or NACK until its transaction commits. A frame past one of
    /// the transaction's bounds, or the node's budget, aborts the transaction.
    pub(super) fn add_to_transaction(
        &mut self,
        id: &str,
        mut frame: Frame,
    ) -> Result<(), CloseReason> {
        let limits = &self.node.config.limits;
        let command = frame.command;
        let held = self
            .transactions
            .open
            .get(id)
            .ok_or_else(|| unknown(command, id))?;
        let size = held_size(&frame);
        let refused = if held.frames.len() >= limits.max_frames_per_transaction {
            Some(refuse(
                "transaction too large",
                format!(
                    "at most {} frames per transaction (limits.max_frames_per_transaction); the transaction is aborted",
                    limits.max_frames_per_transaction
                ),
            ))
        } else if held.bytes + size > limits.max_bytes_per_transaction {
            Some(refuse(
                "transaction too large",
                format!(
                    "at most {} bytes per transaction (limits.max_bytes_per_transaction); this {command} would make it {}; the transaction is aborted",
                    limits.max_bytes_per_transaction,
                    held.bytes + size
                ),
            ))
        } else {
            self.reserve_transaction_bytes(size).err()
        };
        if let Some(reason) = refused {
            self.transactions.close(id);
            return Err(reason);
        }
        // A parsed body is a slice of the connection's read buffer: copied, so that a held
        // frame pins only its own bytes.
        frame.body = Bytes::copy_from_slice(&frame.body);
        let held = self.transactions.open.get_mut(id).expect("looked up above");
        held.bytes += size;
        held.frames.push(frame);
        Ok(())
    }

    /// Takes `size` bytes from the node's transaction budget, or refuses.
    fn reserve_transaction_bytes(&mut self, size: usize) -> Result<(), CloseReason> {
        let max = self.node.config.limits.max_transaction_bytes_total;
        let stats = self
            .transactions
            .budget
            .get_or_insert_with(|| Arc::clone(&self.node.stats));
        let gauge = &stats.transaction_bytes;
        // Add first, then check: concurrent sessions cannot both pass the bound.
        let before = gauge.fetch_add(size as i64, Ordering::Relaxed);
        if before + size as i64 > max as i64 {
            gauge.fetch_sub(size as i64, Ordering::Relaxed);
            return Err(refuse(
                "transactions full",
                format!(
                    "open transactions on this node hold at most {max} bytes together (limits.max_transaction_bytes_total); the transaction is aborted"
                ),
            ));
        }
        Ok(())
    }
}
