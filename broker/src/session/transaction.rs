//! BEGIN, COMMIT, ABORT. A transaction holds its SEND, ACK and NACK frames, each checked when
//! it arrives (and answered with its RECEIPT then), and applies them at COMMIT in arrival
//! order. ABORT, DISCONNECT and the end of the session discard them.

use std::collections::HashMap;

use herald_protocol::{Command, Frame};

use super::Session;
use super::close::{CloseReason, ErrorReply};

/// A session's open transactions by id.
#[derive(Debug, Default)]
pub(super) struct Transactions {
    open: HashMap<String, Vec<Frame>>,
}

impl Transactions {
    /// Discards every open transaction (the session is ending).
    pub fn abort_all(&mut self) {
        self.open.clear();
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
        self.transactions.open.insert(id.to_owned(), Vec::new());
        Ok(())
    }

    /// Applies the transaction's frames in order. A frame that fails then (a queue full under
    /// policy `reject`, a message no longer awaiting acknowledgement) ends the COMMIT with an
    /// ERROR naming it; the frames before it have taken effect.
    pub(super) fn on_commit(&mut self, frame: &Frame) -> Result<(), CloseReason> {
        let id = transaction_id(frame)?;
        let frames = self
            .transactions
            .open
            .remove(id)
            .ok_or_else(|| unknown(Command::Commit, id))?;
        let count = frames.len();
        for (index, held) in frames.iter().enumerate() {
            let applied = match held.command {
                Command::Send => self.route_send(held),
                _ => self.apply_ack(held),
            };
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
            .open
            .remove(id)
            .map(drop)
            .ok_or_else(|| unknown(Command::Abort, id))
    }

    /// Holds a checked SEND, ACK or NACK until its transaction commits.
    pub(super) fn add_to_transaction(&mut self, id: &str, frame: Frame) -> Result<(), CloseReason> {
        let max = self.node.config.limits.max_frames_per_transaction;
        let command = frame.command;
        let held = self
            .transactions
            .open
            .get_mut(id)
            .ok_or_else(|| unknown(command, id))?;
        if held.len() >= max {
            return Err(refuse(
                "transaction too large",
                format!("at most {max} frames per transaction"),
            ));
        }
        held.push(frame);
        Ok(())
    }
}
