//! Heart-beat negotiation arithmetic (spec "Heart-beating"), as pure functions.

use std::time::Duration;

/// A `heart-beat` header: `send` is the smallest interval at which its sender can send
/// heart-beats, `receive` the interval at which it wants to receive them; 0 means never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeartBeat {
    pub send_ms: u64,
    pub receive_ms: u64,
}

/// The header value is not `<ms>,<ms>` with two non-negative integers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid heart-beat header")]
pub struct InvalidHeartBeat;

impl HeartBeat {
    /// No heart-beats either way; also what an absent header means.
    pub const NONE: HeartBeat = HeartBeat {
        send_ms: 0,
        receive_ms: 0,
    };

    /// Parses `cx,cy`. An absent header is [`HeartBeat::NONE`]; the caller decides that.
    pub fn parse(value: &str) -> Result<HeartBeat, InvalidHeartBeat> {
        let (send, receive) = value.split_once(',').ok_or(InvalidHeartBeat)?;
        let number = |s: &str| {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidHeartBeat);
            }
            s.parse::<u64>().map_err(|_| InvalidHeartBeat)
        };
        Ok(HeartBeat {
            send_ms: number(send)?,
            receive_ms: number(receive)?,
        })
    }

    /// The header value, `send,receive`.
    pub fn to_header(self) -> String {
        format!("{},{}", self.send_ms, self.receive_ms)
    }
}

/// What both sides agreed: how often the server must send, and how often it can expect the
/// client to send. `None` means no heart-beats in that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub server_sends_every: Option<Duration>,
    pub client_sends_every: Option<Duration>,
}

impl Negotiated {
    /// How long the server waits in silence before it gives up on the client: the client's
    /// interval times `tolerance` (the spec asks receivers to allow for timing errors).
    pub fn read_timeout(&self, tolerance: f64) -> Option<Duration> {
        self.client_sends_every
            .map(|every| every.mul_f64(tolerance.max(1.0)))
    }
}

/// The server's `heart-beat` header for a client that sent `client`: it follows what the
/// client asks (as RabbitMQ does), so that a client asking for a beat every second gets one
/// every second and a client promising one every second is expected every second; never
/// below `floor_ms`, so a client cannot ask for absurdly frequent beats. Where the client
/// asks for nothing (0) the `configured` interval is offered (the direction stays off anyway,
/// see [`negotiate`]); a configured 0 turns a direction off whatever the client asks.
pub fn offer(client: HeartBeat, configured: HeartBeat, floor_ms: u64) -> HeartBeat {
    let follow = |asked: u64, configured: u64| match (asked, configured) {
        (_, 0) => 0,
        (0, configured) => configured,
        (asked, _) => asked.max(floor_ms),
    };
    HeartBeat {
        // The server sends as often as the client wants to receive, and wants to receive as
        // often as the client can send.
        send_ms: follow(client.receive_ms, configured.send_ms),
        receive_ms: follow(client.send_ms, configured.receive_ms),
    }
}

/// Spec "Heart-beating": with the client's `cx,cy` and the server's `sx,sy`, the server sends
/// every `max(sx, cy)` ms and the client every `max(cx, sy)` ms; a 0 on either side of a
/// direction turns that direction off. The server's offer therefore acts as its floor.
pub fn negotiate(client: HeartBeat, server: HeartBeat) -> Negotiated {
    let direction = |sender_can: u64, receiver_wants: u64| {
        (sender_can != 0 && receiver_wants != 0)
            .then(|| Duration::from_millis(sender_can.max(receiver_wants)))
    };
    Negotiated {
        server_sends_every: direction(server.send_ms, client.receive_ms),
        client_sends_every: direction(client.send_ms, server.receive_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(send_ms: u64, receive_ms: u64) -> HeartBeat {
        HeartBeat {
            send_ms,
            receive_ms,
        }
    }

    #[test]
    fn each_direction_uses_the_larger_interval() {
        // Conformance checklist 19: client 10000,10000 against server 5000,5000.
        let n = negotiate(hb(10_000, 10_000), hb(5_000, 5_000));
        assert_eq!(n.server_sends_every, Some(Duration::from_secs(10)));
        assert_eq!(n.client_sends_every, Some(Duration::from_secs(10)));
        let n = negotiate(hb(1_000, 20_000), hb(4_000, 3_000));
        assert_eq!(n.server_sends_every, Some(Duration::from_secs(20)));
        assert_eq!(n.client_sends_every, Some(Duration::from_secs(3)));
    }

    #[test]
    fn zero_on_either_side_disables_a_direction() {
        // Checklist 21: 0,0 or an absent header means no heart-beats.
        let n = negotiate(HeartBeat::NONE, hb(10_000, 10_000));
        assert_eq!(n.server_sends_every, None);
        assert_eq!(n.client_sends_every, None);
        let n = negotiate(hb(5_000, 0), hb(0, 10_000));
        assert_eq!(n.server_sends_every, None);
        assert_eq!(n.client_sends_every, Some(Duration::from_secs(10)));
    }

    #[test]
    fn offer_follows_the_client_down_to_the_floor() {
        let configured = hb(10_000, 10_000);
        // Issue 12, item 15: a client asking for 1 s beats both ways gets 1 s, not 10 s.
        let offered = offer(hb(1_000, 1_000), configured, 1_000);
        assert_eq!(offered, hb(1_000, 1_000));
        let n = negotiate(hb(1_000, 1_000), offered);
        assert_eq!(n.server_sends_every, Some(Duration::from_secs(1)));
        assert_eq!(n.client_sends_every, Some(Duration::from_secs(1)));
        // Longer intervals are followed too; the server's send follows the client's receive.
        assert_eq!(
            offer(hb(4_000, 30_000), configured, 1_000),
            hb(30_000, 4_000)
        );
        // Never below the floor.
        assert_eq!(offer(hb(10, 200), configured, 1_000), hb(1_000, 1_000));
    }

    #[test]
    fn offer_falls_back_to_the_configuration() {
        // The client asks for nothing: the configured offer, and no beats either way.
        let offered = offer(HeartBeat::NONE, hb(10_000, 5_000), 1_000);
        assert_eq!(offered, hb(10_000, 5_000));
        assert_eq!(
            negotiate(HeartBeat::NONE, offered),
            negotiate(HeartBeat::NONE, hb(10_000, 5_000))
        );
        assert_eq!(
            offer(hb(0, 2_000), hb(10_000, 5_000), 1_000),
            hb(2_000, 5_000)
        );
        // A configured 0 keeps that direction off.
        let offered = offer(hb(2_000, 2_000), hb(0, 5_000), 1_000);
        assert_eq!(offered, hb(0, 2_000));
        assert_eq!(
            negotiate(hb(2_000, 2_000), offered).server_sends_every,
            None
        );
    }

    #[test]
    fn read_timeout_applies_tolerance() {
        let n = negotiate(hb(10_000, 0), hb(0, 10_000));
        assert_eq!(n.read_timeout(2.0), Some(Duration::from_secs(20)));
        assert_eq!(n.read_timeout(0.5), Some(Duration::from_secs(10)));
    }

    #[test]
    fn header_parsing() {
        assert_eq!(HeartBeat::parse("10000,5000"), Ok(hb(10_000, 5_000)));
        assert_eq!(HeartBeat::parse("0,0"), Ok(HeartBeat::NONE));
        assert_eq!(HeartBeat::parse(" 1 , 2 "), Ok(hb(1, 2)));
        for bad in ["", "1", "1,", ",1", "-1,0", "a,b", "1,2,3", "+1,2"] {
            assert_eq!(HeartBeat::parse(bad), Err(InvalidHeartBeat), "{bad:?}");
        }
        assert_eq!(hb(1, 2).to_header(), "1,2");
    }
}
