//! CONNECT (or STOMP): version negotiation, heart-beats, access, and the CONNECTED reply.

use std::net::IpAddr;
use std::time::Duration;

use herald_protocol::heartbeat::{self, HeartBeat, Negotiated};
use herald_protocol::{Command, Frame, Version};

use super::close::ErrorReply;
use crate::config::{AnonymousAccess, Config};

/// The `server` header: product and version.
pub const SERVER: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// A CONNECT that was accepted.
#[derive(Debug)]
pub struct Accepted {
    pub version: Version,
    pub heartbeat: Negotiated,
    pub reply: Frame,
}

/// Checks a CONNECT frame from `peer` and builds the CONNECTED reply.
pub fn accept(
    frame: &Frame,
    peer: IpAddr,
    session_id: &str,
    config: &Config,
) -> Result<Accepted, ErrorReply> {
    let receipt = frame.headers.get("receipt");
    let accept_version = frame.headers.get("accept-version");
    let Some(version) = Version::negotiate(accept_version, &Version::ALL) else {
        let mut reply = ErrorReply::new(
            "unsupported protocol version",
            format!(
                "supported versions are {}; the client offered {}",
                Version::list(&Version::ALL),
                accept_version.unwrap_or("none")
            ),
        )
        .for_receipt(receipt);
        reply
            .headers
            .push(("version", Version::list(&Version::ALL)));
        return Err(reply);
    };

    let client_beat = match frame.headers.get("heart-beat") {
        None => HeartBeat::NONE,
        Some(value) => HeartBeat::parse(value).map_err(|_| {
            ErrorReply::new(
                "invalid heart-beat header",
                format!("expected two comma-separated millisecond counts, got {value:?}"),
            )
            .for_receipt(receipt)
        })?,
    };

    if !anonymous_allowed(config.auth.anonymous, peer) {
        return Err(ErrorReply::new(
            "access denied",
            "anonymous access is not allowed from this address",
        )
        .for_receipt(receipt));
    }

    let offer = HeartBeat {
        send_ms: config.stomp.heartbeat_send_ms,
        receive_ms: config.stomp.heartbeat_receive_ms,
    };
    let heartbeat = with_floor(
        heartbeat::negotiate(client_beat, offer),
        Duration::from_millis(config.stomp.heartbeat_floor_ms),
    );
    let reply = Frame::new(Command::Connected)
        .header("version", version.as_str())
        .header("heart-beat", &offer.to_header())
        .header("session", session_id)
        .header("server", SERVER);
    Ok(Accepted {
        version,
        heartbeat,
        reply,
    })
}

/// Raises each agreed interval to at least `floor`, so a client cannot make the server send
/// or expect heart-beats absurdly often.
fn with_floor(negotiated: Negotiated, floor: Duration) -> Negotiated {
    Negotiated {
        server_sends_every: negotiated.server_sends_every.map(|d| d.max(floor)),
        client_sends_every: negotiated.client_sends_every.map(|d| d.max(floor)),
    }
}

fn anonymous_allowed(policy: AnonymousAccess, peer: IpAddr) -> bool {
    match policy {
        AnonymousAccess::Never => false,
        AnonymousAccess::Always => true,
        AnonymousAccess::Loopback => peer.to_canonical().is_loopback(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn connect(headers: &[(&str, &str)]) -> Frame {
        let mut frame = Frame::new(Command::Connect);
        for (n, v) in headers {
            frame.headers.push(n, v);
        }
        frame
    }

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn highest_common_version_and_connected_headers() {
        let config = Config::default();
        let frame = connect(&[("accept-version", "1.0,1.1,2.0"), ("heart-beat", "0,0")]);
        let accepted = accept(&frame, LOOPBACK, "s-1", &config).unwrap();
        assert_eq!(accepted.version, Version::V1_1);
        assert_eq!(accepted.reply.headers.get("version"), Some("1.1"));
        assert_eq!(accepted.reply.headers.get("session"), Some("s-1"));
        assert_eq!(
            accepted.reply.headers.get("heart-beat"),
            Some("10000,10000")
        );
        assert!(
            accepted
                .reply
                .headers
                .get("server")
                .unwrap()
                .starts_with("herald/")
        );
        assert_eq!(accepted.heartbeat.server_sends_every, None);
    }

    #[test]
    fn no_common_version_lists_supported_versions() {
        let frame = connect(&[("accept-version", "3.0"), ("receipt", "r1")]);
        let error = accept(&frame, LOOPBACK, "s", &Config::default()).unwrap_err();
        assert_eq!(error.headers, [("version", "1.0,1.1,1.2".to_owned())]);
        assert_eq!(error.receipt.as_deref(), Some("r1"));
    }

    #[test]
    fn heart_beats_respect_the_floor() {
        let mut config = Config::default();
        config.stomp.heartbeat_send_ms = 100;
        config.stomp.heartbeat_receive_ms = 100;
        config.stomp.heartbeat_floor_ms = 1000;
        let frame = connect(&[("accept-version", "1.2"), ("heart-beat", "10,10")]);
        let accepted = accept(&frame, LOOPBACK, "s", &config).unwrap();
        assert_eq!(
            accepted.heartbeat.server_sends_every,
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            accepted.heartbeat.client_sends_every,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn anonymous_access_policy() {
        let remote = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let mapped_loopback: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(anonymous_allowed(AnonymousAccess::Loopback, LOOPBACK));
        assert!(anonymous_allowed(
            AnonymousAccess::Loopback,
            mapped_loopback
        ));
        assert!(!anonymous_allowed(AnonymousAccess::Loopback, remote));
        assert!(anonymous_allowed(AnonymousAccess::Always, remote));
        assert!(!anonymous_allowed(AnonymousAccess::Never, LOOPBACK));
        let frame = connect(&[("accept-version", "1.2")]);
        let error = accept(&frame, remote, "s", &Config::default()).unwrap_err();
        assert_eq!(error.message, "access denied");
    }

    #[test]
    fn bad_heart_beat_header_is_an_error() {
        let frame = connect(&[("accept-version", "1.2"), ("heart-beat", "x")]);
        let error = accept(&frame, LOOPBACK, "s", &Config::default()).unwrap_err();
        assert_eq!(error.message, "invalid heart-beat header");
    }
}
