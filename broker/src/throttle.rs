//! The login throttle: CONNECTs with credentials from one client address are checked one at a
//! time, in arrival order, and a failed one keeps the address's turn for
//! `auth.failure_delay_ms` before its ERROR goes out. So answers to guesses from one address
//! come at most one per delay however many connections carry them, and a right guess among
//! wrong ones is answered no sooner than its place in the line allows. A login from a quiet
//! address does not wait, and a success hands the turn on at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Mutex as TurnLock, OwnedMutexGuard};

#[derive(Debug)]
pub struct LoginThrottle {
    delay: Duration,
    /// One FIFO lock per address with a login in progress or waiting. An entry lives exactly
    /// as long as someone holds or waits for it, so the map is bounded by the connections.
    turns: Mutex<HashMap<IpAddr, Arc<TurnLock<()>>>>,
}

/// An address's turn to have credentials checked; the next waiter goes when it is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    throttle: &'a LoginThrottle,
    address: IpAddr,
    guard: Option<OwnedMutexGuard<()>>,
}

impl LoginThrottle {
    pub fn new(delay: Duration) -> LoginThrottle {
        LoginThrottle {
            delay,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// Waits for `address`'s turn, behind every earlier login from it (tokio's lock is fair).
    pub async fn turn(&self, address: IpAddr) -> Turn<'_> {
        let lock = Arc::clone(self.turns.lock().entry(address).or_default());
        // Dropped mid-wait (connection closed, shutdown), `Turn` is not built yet: the map
        // entry is cleaned up by whoever holds the turn when it lets go.
        let guard = lock.lock_owned().await;
        Turn {
            throttle: self,
            address,
            guard: Some(guard),
        }
    }

    /// How many logins from `address` hold or wait for a turn.
    pub fn in_line(&self, address: IpAddr) -> usize {
        // The map's own reference is not a login.
        self.turns
            .lock()
            .get(&address)
            .map_or(0, |lock| Arc::strong_count(lock) - 1)
    }
}

impl Turn<'_> {
    /// A failed check: keeps the address's turn for the delay, then lets the ERROR go.
    pub async fn failed(self) {
        tokio::time::sleep(self.throttle.delay).await;
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.throttle.turns.lock();
        drop(self.guard.take());
        // Under the map lock, so no one can be between cloning the entry and waiting on it.
        if turns
            .get(&self.address)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            turns.remove(&self.address);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const DELAY: Duration = Duration::from_secs(1);

    /// Runs `checks` (true = success) in parallel from one address, each taking its turn in
    /// order; returns when each was answered, relative to the start.
    async fn answered(
        throttle: &Arc<LoginThrottle>,
        address: IpAddr,
        checks: &[bool],
    ) -> Vec<Duration> {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for &ok in checks {
            let throttle = Arc::clone(throttle);
            tasks.push(tokio::spawn(async move {
                let turn = throttle.turn(address).await;
                if !ok {
                    turn.failed().await;
                }
                start.elapsed()
            }));
            // Queue them in this order.
            tokio::task::yield_now().await;
        }
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn a_right_guess_waits_for_the_wrong_ones_queued_before_it() {
        let throttle = Arc::new(LoginThrottle::new(DELAY));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let times = answered(&throttle, a, &[false, false, false, true, false]).await;
        let secs: Vec<u64> = times.iter().map(Duration::as_secs).collect();
        // Failures answered one delay apart; the success at its place in line, at once; the
        // failure after it is not slowed by it.
        assert_eq!(secs, [1, 2, 3, 3, 4]);
        assert_eq!(
            throttle.in_line(a),
            0,
            "the entry is gone once no one waits"
        );
        assert!(throttle.turns.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_from_a_quiet_address_or_another_address_does_not_wait() {
        let throttle = Arc::new(LoginThrottle::new(DELAY));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            answered(&throttle, a, &[true, true]).await,
            [Duration::ZERO; 2]
        );
        let guessing = {
            let throttle = Arc::clone(&throttle);
            tokio::spawn(async move { answered(&throttle, a, &[false, false]).await })
        };
        while throttle.in_line(a) < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(answered(&throttle, b, &[true]).await, [Duration::ZERO]);
        assert_eq!(guessing.await.unwrap(), [DELAY, 2 * DELAY]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_login_that_gives_up_while_waiting_leaves_no_entry() {
        let throttle = Arc::new(LoginThrottle::new(DELAY));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let first = throttle.turn(a).await;
        let waiting = tokio::time::timeout(Duration::from_millis(10), throttle.turn(a)).await;
        assert!(waiting.is_err());
        drop(first);
        assert!(throttle.turns.lock().is_empty());
    }
}
