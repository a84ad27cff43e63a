//! Failed logins from one address are answered one at a time, `auth.failure_delay_ms` apart,
//! so guessing passwords over many parallel connections from one address is no faster than
//! guessing over one. Successful logins are never delayed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Addresses tracked at most; past this, expired entries are dropped, and if it is still full
/// a failure from a new address just waits one delay.
const MAX_TRACKED: usize = 65_536;

#[derive(Debug)]
pub struct LoginThrottle {
    delay: Duration,
    /// When each address's next failed login may be answered.
    next: Mutex<HashMap<IpAddr, Instant>>,
}

impl LoginThrottle {
    pub fn new(delay: Duration) -> LoginThrottle {
        LoginThrottle {
            delay,
            next: Mutex::new(HashMap::new()),
        }
    }

    /// Records a failed login from `address`; returns when its ERROR may be sent.
    pub fn failure(&self, address: IpAddr) -> Instant {
        let now = Instant::now();
        let mut next = self.next.lock();
        if next.len() >= MAX_TRACKED {
            next.retain(|_, at| *at > now);
        }
        let slot = next
            .get(&address)
            .copied()
            .filter(|at| *at > now)
            .unwrap_or(now)
            + self.delay;
        if next.len() < MAX_TRACKED || next.contains_key(&address) {
            next.insert(address, slot);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_from_one_address_queue_up_and_others_do_not_wait() {
        let throttle = LoginThrottle::new(Duration::from_secs(1));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        let first = throttle.failure(a);
        let second = throttle.failure(a);
        let other = throttle.failure(b);
        assert!(first >= start + Duration::from_secs(1));
        assert!(second >= first + Duration::from_secs(1));
        assert!(other < start + Duration::from_millis(1500));
    }
}
