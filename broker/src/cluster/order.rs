//! Messages from other nodes back in the order they were published, each once.
//!
//! Every message a link publishes carries `Herald-Seq`: the link's origin (random at each
//! start) and the message's number in that link's publish order. What one sweep of the
//! subscriptions took (`inlets.rs`), sorted by origin and number, is in the order NATS sent
//! it. A number already released, or repeated within the sweep, is another copy of one
//! message (a node whose filters overlap, `t.a.*` and `t.a.b`, gets a message on `t.a.b` once
//! per matching subscription) and is removed.

use std::collections::HashMap;

/// A message's place in its publishing link's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Seq {
    pub origin: u64,
    pub n: u64,
}

/// Origins remembered at most. Past that, only those seen in the latest sweep stay: a copy
/// of a message arrives right after its first copy (NATS sends them together), so an origin
/// not seen in a sweep has no copy left to remove.
const MAX_ORIGINS: usize = 1024;

/// The highest number released per origin.
#[derive(Debug, Default)]
pub(crate) struct Released {
    last: HashMap<u64, Last>,
    sweeps: u64,
}

#[derive(Debug, Clone, Copy)]
struct Last {
    n: u64,
    sweep: u64,
}

impl Released {
    /// Sorts one sweep's `batch` into publish order (`seq` gives each item's place) and
    /// removes the copies; returns how many it removed. Numbers start at 1.
    pub(crate) fn arrange<T>(&mut self, batch: &mut Vec<T>, seq: impl Fn(&T) -> Seq) -> usize {
        self.sweeps += 1;
        let sweep = self.sweeps;
        batch.sort_by_key(&seq);
        let before = batch.len();
        let last = &mut self.last;
        batch.retain(|item| {
            let Seq { origin, n } = seq(item);
            let last = last.entry(origin).or_insert(Last { n: 0, sweep });
            last.sweep = sweep;
            if n <= last.n {
                return false;
            }
            last.n = n;
            true
        });
        if self.last.len() > MAX_ORIGINS {
            self.last.retain(|_, last| last.sweep == sweep);
        }
        before - batch.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(origin: u64, n: u64) -> Seq {
        Seq { origin, n }
    }

    #[test]
    fn sorted_per_origin_and_each_number_once() {
        let mut released = Released::default();
        let mut batch = vec![seq(2, 5), seq(1, 3), seq(2, 4), seq(1, 3), seq(1, 1)];
        assert_eq!(released.arrange(&mut batch, |s| *s), 1);
        assert_eq!(batch, [seq(1, 1), seq(1, 3), seq(2, 4), seq(2, 5)]);
        // A copy arriving in a later sweep, and what follows it.
        let mut batch = vec![seq(1, 4), seq(2, 5), seq(1, 2)];
        assert_eq!(released.arrange(&mut batch, |s| *s), 2);
        assert_eq!(batch, [seq(1, 4)]);
    }

    #[test]
    fn origins_are_bounded() {
        let mut released = Released::default();
        for origin in 0..(MAX_ORIGINS as u64 + 10) {
            released.arrange(&mut vec![seq(origin, 1)], |s| *s);
        }
        assert!(released.last.len() <= MAX_ORIGINS);
        let mut flood: Vec<_> = (0..5000).map(|o| seq(10_000 + o, 1)).collect();
        released.arrange(&mut flood, |s| *s);
        assert_eq!(released.last.len(), 5000, "only the latest sweep's origins");
        released.arrange(&mut vec![seq(7, 9)], |s| *s);
        assert_eq!(released.last.len(), 1);
    }
}
