//! The frames a session writes on its own account: RECEIPT, ERROR, CONNECTED.

use herald_protocol::{Command, Frame, Version, encode_to_bytes};

use super::close::ErrorReply;
use crate::outbox::OutFrame;

/// Encodes a frame the session itself sends; headers are strings, so it is valid UTF-8
/// whenever the body is.
pub fn control(frame: &Frame, version: Version) -> OutFrame {
    OutFrame {
        text: std::str::from_utf8(&frame.body).is_ok(),
        bytes: encode_to_bytes(frame, version),
    }
}

pub fn receipt(receipt_id: &str, version: Version) -> OutFrame {
    control(
        &Frame::new(Command::Receipt).header("receipt-id", receipt_id),
        version,
    )
}

/// ERROR with `message`, `receipt-id` when the failing frame asked for a receipt, and the
/// detail as a plain-text body.
pub fn error(reply: &ErrorReply, version: Version) -> OutFrame {
    let mut frame = Frame::new(Command::Error).header("message", &reply.message);
    if let Some(receipt) = &reply.receipt {
        frame.headers.push("receipt-id", receipt);
    }
    for (name, value) in &reply.headers {
        frame.headers.push(name, value);
    }
    frame.headers.push("content-type", "text/plain");
    frame.body = reply.detail.clone().into_bytes().into();
    control(&frame, version)
}
