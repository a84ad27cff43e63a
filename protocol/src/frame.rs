//! The frame model: commands and frames.

use bytes::Bytes;

use crate::{Headers, Version};

/// Every STOMP command, client and server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    // Client commands.
    Connect,
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Begin,
    Commit,
    Abort,
    Ack,
    Nack,
    Disconnect,
    // Server commands.
    Connected,
    Message,
    Receipt,
    Error,
}

impl Command {
    /// Every command, client commands first.
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Ack,
        Command::Nack,
        Command::Disconnect,
        Command::Connected,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    /// The command as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Disconnect => "DISCONNECT",
            Command::Connected => "CONNECTED",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    /// Looks a command up by its exact, case-sensitive name.
    pub fn from_bytes(name: &[u8]) -> Option<Command> {
        // A literal match compiles to length checks and short compares: this runs per frame.
        Some(match name {
            b"SEND" => Command::Send,
            b"MESSAGE" => Command::Message,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"CONNECTED" => Command::Connected,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// Spec "Body": only SEND, MESSAGE and ERROR frames may carry a body.
    pub fn may_have_body(self) -> bool {
        matches!(self, Command::Send | Command::Message | Command::Error)
    }

    /// True for the commands a client sends.
    pub fn is_client(self) -> bool {
        !self.is_server()
    }

    /// True for the commands a server sends.
    pub fn is_server(self) -> bool {
        matches!(
            self,
            Command::Connected | Command::Message | Command::Receipt | Command::Error
        )
    }

    /// Spec "Value Encoding": CONNECT and CONNECTED headers are never escaped, so that a 1.0
    /// peer can read them before the version is agreed; STOMP is CONNECT by another name.
    pub fn escapes_headers(self, version: Version) -> bool {
        version != Version::V1_0
            && !matches!(self, Command::Connect | Command::Stomp | Command::Connected)
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One STOMP frame. `headers` never holds `content-length`: that is framing, derived from
/// `body` by the encoder and consumed by the parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Headers,
    pub body: Bytes,
}

impl Frame {
    /// A frame with no headers and no body.
    pub fn new(command: Command) -> Frame {
        Frame {
            command,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    /// Adds a header (builder style); repeated names are kept in order.
    pub fn header(mut self, name: &str, value: &str) -> Frame {
        self.headers.push(name, value);
        self
    }

    /// Sets the body (builder style).
    pub fn body(mut self, body: impl Into<Bytes>) -> Frame {
        self.body = body.into();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_by_name() {
        for c in Command::ALL {
            assert_eq!(Command::from_bytes(c.as_str().as_bytes()), Some(c));
        }
        // Spec "Frames and Headers": commands are case-sensitive.
        assert_eq!(Command::from_bytes(b"send"), None);
        assert_eq!(Command::from_bytes(b"SUB"), None);
    }

    #[test]
    fn only_send_message_error_have_bodies() {
        let with_body: Vec<Command> = Command::ALL
            .into_iter()
            .filter(|c| c.may_have_body())
            .collect();
        assert_eq!(with_body, [Command::Send, Command::Message, Command::Error]);
    }

    #[test]
    fn connect_and_connected_are_never_escaped() {
        for v in Version::ALL {
            assert!(!Command::Connect.escapes_headers(v));
            assert!(!Command::Stomp.escapes_headers(v));
            assert!(!Command::Connected.escapes_headers(v));
        }
        assert!(!Command::Send.escapes_headers(Version::V1_0));
        assert!(Command::Send.escapes_headers(Version::V1_1));
        assert!(Command::Message.escapes_headers(Version::V1_2));
    }
}
