//! Send timestamps: Unix nanoseconds as 16 hex digits at the start of a body. Publisher and
//! subscribers run on one machine, so one clock serves both.

use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of a body taken by the timestamp.
pub const LEN: usize = 16;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Writes `ns` into the first [`LEN`] bytes of `body` (which must be that long).
pub fn write(body: &mut [u8], ns: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in body[..LEN].iter_mut().enumerate() {
        *byte = HEX[((ns >> ((LEN - 1 - i) * 4)) & 0xf) as usize];
    }
}

/// The timestamp at the start of `body`, if it has one. Decodes the digits directly: this
/// runs for every message a subscriber receives.
pub fn read(body: &[u8]) -> Option<u64> {
    body.get(..LEN)?.iter().try_fold(0u64, |ns, &digit| {
        let value = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            b'A'..=b'F' => digit - b'A' + 10,
            _ => return None,
        };
        Some(ns << 4 | u64::from(value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_a_body() {
        let mut body = vec![b'x'; 100];
        for ns in [0, 1, 0xdead_beef, now_ns(), u64::MAX] {
            write(&mut body, ns);
            assert_eq!(read(&body), Some(ns));
            assert_eq!(body[LEN], b'x');
        }
        assert_eq!(read(b"short"), None);
        assert_eq!(read(b"zzzzzzzzzzzzzzzzzz"), None);
    }
}
