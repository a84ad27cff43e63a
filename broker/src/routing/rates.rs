//! The destinations published to most over the last minute (the admin page's list), in
//! bounded memory and at a few nanoseconds per publish.
//!
//! A publish is counted with probability 1 / [`SAMPLE_EVERY`], drawn from a thread-local
//! generator (no shared write on the others; random rather than every n-th, so that traffic
//! with a period of its own cannot hide a destination between samples). Counts go into the current ten-second bucket of six, each keeping at
//! most [`TRACKED`] destinations by the space-saving rule: a new destination takes the place
//! of the least counted one and starts from its count, so a destination that is really among
//! the busiest is never lost and no count is ever too low (at most too high by the count it
//! took over).

use std::cell::Cell;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// One publish in this many is counted.
pub const SAMPLE_EVERY: u32 = 16;
/// Destinations kept per bucket.
const TRACKED: usize = 64;
const BUCKET: Duration = Duration::from_secs(10);
const BUCKETS: usize = 6;

thread_local! {
    /// xorshift64 state; any non-zero seed does.
    static RANDOM: Cell<u64> = Cell::new(
        std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), 0u8) | 1,
    );
}

/// A destination and its estimated publishes per second over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub destination: String,
    pub per_second: f64,
}

#[derive(Debug)]
pub struct TopDestinations {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    /// When bucket 0 of the ring started; bucket `i` covers `start + i * BUCKET`.
    start: Instant,
    /// Index of the bucket that counts now.
    current: usize,
    buckets: [Vec<(Box<str>, u64)>; BUCKETS],
    /// When counting began: the window is shorter than a minute before that.
    since: Instant,
}

impl Default for TopDestinations {
    fn default() -> Self {
        TopDestinations::new(Instant::now())
    }
}

impl TopDestinations {
    fn new(now: Instant) -> TopDestinations {
        TopDestinations {
            window: Mutex::new(Window {
                start: now,
                current: 0,
                buckets: Default::default(),
                since: now,
            }),
        }
    }

    /// Counts a publish to the destination `name` gives, one time in [`SAMPLE_EVERY`] on
    /// average (`name` is only called then).
    pub fn record<'a>(&self, name: impl FnOnce() -> std::borrow::Cow<'a, str>) {
        let sampled = RANDOM.with(|state| {
            let mut x = state.get();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            state.set(x);
            x % u64::from(SAMPLE_EVERY) == 0
        });
        if sampled {
            self.count(&name(), Instant::now());
        }
    }

    fn count(&self, destination: &str, now: Instant) {
        let mut window = self.window.lock();
        let bucket = window.advance(now);
        if let Some((_, count)) = bucket.iter_mut().find(|(d, _)| **d == *destination) {
            *count += 1;
        } else if bucket.len() < TRACKED {
            bucket.push((destination.into(), 1));
        } else if let Some(least) = bucket.iter_mut().min_by_key(|(_, count)| *count) {
            *least = (destination.into(), least.1 + 1);
        }
    }

    /// The `n` busiest destinations over the last minute (less before a minute has passed),
    /// busiest first.
    pub fn top(&self, n: usize) -> Vec<Rate> {
        self.top_at(n, Instant::now())
    }

    fn top_at(&self, n: usize, now: Instant) -> Vec<Rate> {
        let mut window = self.window.lock();
        window.advance(now);
        let covered = now
            .duration_since(window.since)
            .min(BUCKET * BUCKETS as u32)
            .as_secs_f64()
            .max(1.0);
        let mut totals: Vec<(&str, u64)> = Vec::new();
        for (destination, count) in window.buckets.iter().flatten() {
            match totals.iter_mut().find(|(d, _)| *d == &**destination) {
                Some((_, total)) => *total += count,
                None => totals.push((destination, *count)),
            }
        }
        totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        totals
            .into_iter()
            .take(n)
            .map(|(destination, count)| Rate {
                destination: destination.to_owned(),
                per_second: (count * u64::from(SAMPLE_EVERY)) as f64 / covered,
            })
            .collect()
    }
}

impl Window {
    /// Moves the ring to `now`, emptying the buckets that fell out of the last minute; returns
    /// the bucket that counts now.
    fn advance(&mut self, now: Instant) -> &mut Vec<(Box<str>, u64)> {
        let elapsed = now.saturating_duration_since(self.start);
        let steps = (elapsed.as_nanos() / BUCKET.as_nanos()) as usize;
        if steps > 0 {
            for step in 1..=steps.min(BUCKETS) {
                self.buckets[(self.current + step) % BUCKETS].clear();
            }
            self.current = (self.current + steps) % BUCKETS;
            self.start += BUCKET * steps as u32;
        }
        &mut self.buckets[self.current]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_come_first_and_old_buckets_leave_the_window() {
        let t0 = Instant::now();
        let top = TopDestinations::new(t0);
        for _ in 0..30 {
            top.count("/topic/a", t0);
        }
        for _ in 0..10 {
            top.count("/topic/b", t0 + Duration::from_secs(15));
        }
        let at = t0 + Duration::from_secs(20);
        let rates = top.top_at(5, at);
        let names: Vec<_> = rates.iter().map(|r| r.destination.as_str()).collect();
        assert_eq!(names, ["/topic/a", "/topic/b"]);
        // 30 samples stand for 480 publishes over 20 s.
        assert_eq!(rates[0].per_second, 480.0 / 20.0);
        // A minute later /topic/a's bucket has left the window, /topic/b's not yet.
        let later = top.top_at(5, t0 + Duration::from_secs(65));
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].destination, "/topic/b");
        assert!(top.top_at(5, t0 + Duration::from_secs(600)).is_empty());
    }

    #[test]
    fn memory_stays_bounded_and_a_heavy_destination_is_kept() {
        let t0 = Instant::now();
        let top = TopDestinations::new(t0);
        for n in 0..10_000 {
            top.count(&format!("/topic/rare/{n}"), t0);
            if n % 4 == 0 {
                top.count("/topic/heavy", t0);
            }
        }
        assert!(top.window.lock().buckets.iter().all(|b| b.len() <= TRACKED));
        assert_eq!(top.top_at(1, t0)[0].destination, "/topic/heavy");
    }

    #[test]
    fn about_one_publish_in_sample_every_is_counted() {
        let top = TopDestinations::default();
        let mut named = 0;
        let publishes = SAMPLE_EVERY * 10_000;
        for _ in 0..publishes {
            top.record(|| {
                named += 1;
                "/topic/x".into()
            });
        }
        // The name is made only for a sampled publish; 10,000 expected (sd about 97).
        assert!((9_000..11_000).contains(&named), "{named}");
    }
}
