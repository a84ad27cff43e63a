//! What the broker's output must be, whatever a client sent: frames a strict client parses
//! the same way as a lenient one, ERROR last, and for well-behaved subscribers only their own
//! MESSAGEs and RECEIPTs, carrying what the publisher sent.

use std::collections::HashMap;

use herald_protocol::Command;

use super::frames::Registered;
use crate::wire::Received;

/// Checks one frame any connection receives.
pub fn check_frame(received: &Received) -> Result<(), String> {
    let command = received.command();
    if !command.is_server() {
        return Err(format!("the server sent a client command: {received}"));
    }
    // A NUL in the header block ends the frame early for a client that splits on NUL
    // (stompjs does for frames without content-length): whatever follows is a forged frame.
    let raw = &received.raw[..];
    let head_end = find(raw, b"\n\n")
        .into_iter()
        .chain(find(raw, b"\n\r\n"))
        .min()
        .unwrap_or(raw.len());
    let head = &raw[..head_end];
    if head.contains(&0) {
        return Err(format!(
            "NUL inside the header block of a {command} frame: {}",
            escaped(head)
        ));
    }
    if std::str::from_utf8(head).is_err() {
        return Err(format!(
            "invalid UTF-8 in the header block: {}",
            escaped(head)
        ));
    }
    match command {
        Command::Error if received.header("message").is_none() => {
            Err(format!("ERROR without a message header: {received}"))
        }
        Command::Message => {
            for name in ["subscription", "message-id", "destination"] {
                let count = received.frame.headers.get_all(name).count();
                if count != 1 {
                    return Err(format!("MESSAGE with {count} {name} headers: {received}"));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// How a connection ended, judged from the client's side: a WebSocket the client had to fail
/// for bad UTF-8 or a protocol error means the server sent something invalid.
pub fn check_close(how: &str) -> Result<(), String> {
    let lower = how.to_ascii_lowercase();
    let invalid = lower.contains("utf-8")
        || lower.contains("utf8")
        || (lower.contains("protocol error") && !lower.contains("without closing handshake"));
    if invalid {
        Err(format!("the server's WebSocket output was invalid: {how}"))
    } else {
        Ok(())
    }
}

/// Order rules for one connection's frames: CONNECTED once and first, nothing after ERROR.
#[derive(Debug, Default)]
pub struct Sequence {
    connected: bool,
    error: bool,
}

impl Sequence {
    /// For a connection whose CONNECTED was read by its setup.
    pub fn connected() -> Sequence {
        Sequence {
            connected: true,
            error: false,
        }
    }

    pub fn check(&mut self, received: &Received) -> Result<(), String> {
        check_frame(received)?;
        if self.error {
            return Err(format!("a frame after ERROR: {received}"));
        }
        match received.command() {
            Command::Connected if self.connected => {
                return Err(format!("a second CONNECTED: {received}"));
            }
            Command::Connected => self.connected = true,
            Command::Error => self.error = true,
            Command::Message | Command::Receipt if !self.connected => {
                return Err(format!(
                    "{} before CONNECTED: {received}",
                    received.command()
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a well-behaved subscriber may receive.
#[derive(Debug)]
pub struct Subscriber<'a> {
    pub ids: Vec<String>,
    pub receipts: Vec<String>,
    /// Registered SENDs of this iteration by `fz-id`.
    pub registry: &'a HashMap<String, Registered>,
    /// The subscriber speaks 1.2, so `fz-*` values can be compared after unescaping.
    pub speaks_12: bool,
}

/// A frame a subscriber received that is no fault of the broker's framing.
#[derive(Debug, PartialEq, Eq)]
pub enum Note {
    Fine,
    /// Closed as a slow consumer: known overload behaviour, counted, not a framing fault.
    SlowConsumer,
}

impl Subscriber<'_> {
    pub fn check(&self, received: &Received) -> Result<Note, String> {
        match received.command() {
            Command::Message => {
                let subscription = received.header("subscription").unwrap_or_default();
                if !self.ids.iter().any(|id| id == subscription) {
                    return Err(format!(
                        "MESSAGE for a subscription it never made: {received}"
                    ));
                }
                let Some(sent) = received
                    .header("fz-id")
                    .and_then(|id| self.registry.get(id))
                else {
                    return Ok(Note::Fine);
                };
                if received.frame.body.as_ref() != sent.body.as_slice() {
                    return Err(format!(
                        "MESSAGE {} body differs from the SEND's: got {}, sent {}",
                        sent.id,
                        escaped(&received.frame.body),
                        escaped(&sent.body)
                    ));
                }
                if let (true, Some(headers)) = (self.speaks_12, &sent.headers) {
                    for (name, value) in headers {
                        let got = received.header(name);
                        if got != Some(value.as_str()) {
                            return Err(format!(
                                "MESSAGE {} header {name}: got {got:?}, sent {value:?}",
                                sent.id
                            ));
                        }
                    }
                }
                Ok(Note::Fine)
            }
            Command::Receipt => {
                let id = received.header("receipt-id").unwrap_or_default();
                if self.receipts.iter().any(|r| r == id) {
                    Ok(Note::Fine)
                } else {
                    Err(format!("a RECEIPT it never asked for: {received}"))
                }
            }
            Command::Error
                if received
                    .header("message")
                    .is_some_and(|m| m.contains("slow consumer")) =>
            {
                Ok(Note::SlowConsumer)
            }
            _ => Err(format!("a well-behaved subscriber got {received}")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Bytes as Rust-escaped ASCII, cut at 200 characters.
pub fn escaped(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 200 {
        format!("{}…", &text[..200])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Received;
    use bytes::Bytes;
    use herald_protocol::{Frame, Headers};
    use tokio::time::Instant;

    fn received(raw: &'static [u8], command: Command, headers: &[(&str, &str)]) -> Received {
        let mut h = Headers::new();
        for (n, v) in headers {
            h.push(n, v);
        }
        Received {
            frame: Frame {
                command,
                headers: h,
                body: Bytes::new(),
            },
            raw: Bytes::from_static(raw),
            at: Instant::now(),
            ws: None,
        }
    }

    #[test]
    fn a_nul_in_the_header_block_is_a_forged_frame() {
        let cut = received(
            b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/t\nx:y\0ERROR\nmessage:forged\n\n\0",
            Command::Message,
            &[("subscription", "s"), ("message-id", "1"), ("destination", "/t")],
        );
        let error = check_frame(&cut).unwrap_err();
        assert!(error.contains("NUL inside the header block"), "{error}");
        let fine = received(
            b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/t\ncontent-length:1\n\n\0\0",
            Command::Message,
            &[
                ("subscription", "s"),
                ("message-id", "1"),
                ("destination", "/t"),
            ],
        );
        assert_eq!(check_frame(&fine), Ok(()));
    }

    #[test]
    fn nothing_may_follow_an_error() {
        let mut sequence = Sequence::default();
        let error = received(
            b"ERROR\nmessage:x\n\n\0",
            Command::Error,
            &[("message", "x")],
        );
        sequence.check(&error).unwrap();
        assert!(sequence.check(&error).is_err());
    }

    #[test]
    fn websocket_utf8_failures_are_faults_and_resets_are_not() {
        assert!(check_close("websocket error: UTF-8 encoding error").is_err());
        assert!(
            check_close(
                "websocket error: WebSocket protocol error: Connection reset without closing handshake"
            )
            .is_ok()
        );
        assert!(check_close("EOF").is_ok());
    }
}
