//! CONNECT (or STOMP): version negotiation, heart-beats, access, and the CONNECTED reply.

use std::net::IpAddr;

use herald_protocol::heartbeat::{self, HeartBeat, Negotiated};
use herald_protocol::{Command, Frame, Version};

use super::close::ErrorReply;
use crate::auth::{Authenticator, Denied, Identity, looks_like_jwt};
use crate::config::AnonymousAccess;
use crate::node::Node;

/// The `server` header: product and version.
pub const SERVER: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// A CONNECT that was accepted.
#[derive(Debug)]
pub struct Accepted {
    pub version: Version,
    pub heartbeat: Negotiated,
    pub reply: Frame,
    /// The authenticated user; `None` for an anonymous session.
    pub user: Option<String>,
    /// The authenticated user's roles.
    pub roles: Vec<String>,
    /// When the token that authenticated the session expires (epoch seconds).
    pub token_expires: Option<u64>,
}

/// A refused CONNECT: the ERROR to send, and whether it was for wrong credentials (which
/// are counted and answered only after a delay).
#[derive(Debug)]
pub struct Refused {
    pub reply: ErrorReply,
    pub credentials: Option<Denied>,
}

impl From<ErrorReply> for Refused {
    fn from(reply: ErrorReply) -> Refused {
        Refused {
            reply,
            credentials: None,
        }
    }
}

impl std::ops::Deref for Refused {
    type Target = ErrorReply;
    fn deref(&self) -> &ErrorReply {
        &self.reply
    }
}

/// Checks a CONNECT frame from `peer` and builds the CONNECTED reply. Credentials are checked
/// in the address's turn of the login throttle (which a failure keeps for
/// `auth.failure_delay_ms`), password hashes on the blocking pool.
pub async fn accept(
    frame: &Frame,
    peer: IpAddr,
    session_id: &str,
    node: &Node,
    url_token: Option<&str>,
) -> Result<Accepted, Refused> {
    let (config, auth) = (&node.config, &node.auth);
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
        return Err(reply.into());
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

    let denied = |denied: Denied| {
        let detail = match &denied {
            Denied::InvalidToken(_) => "the token is not valid",
            Denied::UnknownLogin | Denied::WrongPasscode => "wrong login or passcode",
        };
        Refused {
            reply: ErrorReply::new("access denied", detail).for_receipt(receipt),
            credentials: Some(denied),
        }
    };
    let login = frame.headers.get("login").filter(|l| !l.is_empty());
    let passcode = frame.headers.get("passcode").unwrap_or_default();
    let mut token_expires = None;
    // A token proves its `sub`; a login must prove itself; without either the session is
    // anonymous, if allowed.
    let token = token(frame, auth, url_token, login);
    let identity: Option<Identity> = match (token, login) {
        (None, None) => {
            if !anonymous_allowed(config.auth.anonymous, peer) {
                return Err(ErrorReply::new(
                    "access denied",
                    "anonymous access is not allowed from this address",
                )
                .for_receipt(receipt)
                .into());
            }
            None
        }
        // The turn is taken before verifying, so that no answer, right or wrong, comes
        // sooner than the throttle allows.
        _ => {
            let turn = node.login_throttle.turn(peer).await;
            let verified = match token {
                Some(token) => auth.verify_token(token).map(|proven| {
                    token_expires = Some(proven.expires);
                    proven.identity
                }),
                None => auth.verify(login.unwrap_or_default(), passcode).await,
            };
            match verified {
                Ok(identity) => Some(identity),
                Err(why) => {
                    turn.failed().await;
                    return Err(denied(why));
                }
            }
        }
    };

    let configured = HeartBeat {
        send_ms: config.stomp.heartbeat_send_ms,
        receive_ms: config.stomp.heartbeat_receive_ms,
    };
    let offer = heartbeat::offer(client_beat, configured, config.stomp.heartbeat_floor_ms);
    let heartbeat = heartbeat::negotiate(client_beat, offer);
    let mut reply = Frame::new(Command::Connected)
        .header("version", version.as_str())
        .header("heart-beat", &offer.to_header())
        .header("session", session_id)
        .header("server", SERVER);
    if let Some(identity) = &identity {
        reply.headers.push("user-name", &identity.name);
    }
    let (user, roles) = match identity {
        Some(identity) => (Some(identity.name), identity.roles),
        None => (None, Vec::new()),
    };
    Ok(Accepted {
        version,
        heartbeat,
        reply,
        user,
        roles,
        token_expires,
    })
}

/// The token a CONNECT carries, when tokens are accepted: an `Authorization: Bearer` header,
/// the WebSocket URL's `access_token`, or a passcode shaped like a JWT whose login is not a
/// configured user.
fn token<'a>(
    frame: &'a Frame,
    auth: &Authenticator,
    url_token: Option<&'a str>,
    login: Option<&str>,
) -> Option<&'a str> {
    if !auth.accepts_tokens() {
        return None;
    }
    let bearer = frame
        .headers
        .get("Authorization")
        .or_else(|| frame.headers.get("authorization"))
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let passcode = frame
        .headers
        .get("passcode")
        .filter(|p| looks_like_jwt(p) && !login.is_some_and(|l| auth.has_user(l)));
    bearer.or(url_token).or(passcode)
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
    use crate::config::Config;
    use futures_util::FutureExt;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn connect(headers: &[(&str, &str)]) -> Frame {
        let mut frame = Frame::new(Command::Connect);
        for (n, v) in headers {
            frame.headers.push(n, v);
        }
        frame
    }

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// `accept` with no users, no tokens and no WebSocket URL token.
    fn accept_anonymous(frame: &Frame, peer: IpAddr, config: &Config) -> Result<Accepted, Refused> {
        accept_as(frame, peer, "s", config)
    }

    /// `accept` for a session id, without credentials: nothing to wait for.
    fn accept_as(
        frame: &Frame,
        peer: IpAddr,
        session_id: &str,
        config: &Config,
    ) -> Result<Accepted, Refused> {
        let node = Node::new(config.clone());
        accept(frame, peer, session_id, &node, None)
            .now_or_never()
            .expect("a CONNECT without credentials is answered at once")
    }

    #[test]
    fn highest_common_version_and_connected_headers() {
        let config = Config::default();
        let frame = connect(&[("accept-version", "1.0,1.1,2.0"), ("heart-beat", "0,0")]);
        let accepted = accept_as(&frame, LOOPBACK, "s-1", &config).unwrap();
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
        let error = accept_anonymous(&frame, LOOPBACK, &Config::default()).unwrap_err();
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
        let accepted = accept_anonymous(&frame, LOOPBACK, &config).unwrap();
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
        let error = accept_anonymous(&frame, remote, &Config::default()).unwrap_err();
        assert_eq!(error.message, "access denied");
    }

    #[test]
    fn bad_heart_beat_header_is_an_error() {
        let frame = connect(&[("accept-version", "1.2"), ("heart-beat", "x")]);
        let error = accept_anonymous(&frame, LOOPBACK, &Config::default()).unwrap_err();
        assert_eq!(error.message, "invalid heart-beat header");
    }
}
