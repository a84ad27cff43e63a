//! Handing subjects over from a topic filter that ends to one that stays, without
//! delivering a message twice.
//!
//! While two overlapping filters are subscribed, a message on a subject both match arrives
//! twice and is delivered through the filter with the smaller id (`filters.rs`). When that
//! filter ends, the other one becomes the first match, but its receiver may still hold copies
//! of messages the ended one delivered (it had fallen behind, say).
//! Every message carries its publishing link's origin and a sequence number in that link's
//! publish order, which NATS keeps on every subscription; each receiver records the highest
//! number it has read per origin. A copy whose number an ended filter with a smaller id had
//! already read was delivered through it (or left to a filter before it), and is skipped; a
//! later one never reached it, and is delivered. What an ended filter's receiver held unread
//! when it was stopped is lost: at most what its channel held, never a message twice.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::filters::{FilterId, filter_matches, overlap};

/// How far one filter's receiver has read: the highest sequence number per origin.
#[derive(Debug, Default)]
pub(crate) struct ReadUpTo(Mutex<HashMap<Box<str>, u64>>);

impl ReadUpTo {
    pub(crate) fn record(&self, origin: &str, seq: u64) {
        let mut read = self.0.lock();
        match read.get_mut(origin) {
            Some(highest) => *highest = (*highest).max(seq),
            None => {
                read.insert(origin.into(), seq);
            }
        }
    }

    fn has_read(&self, origin: &str, seq: u64) -> bool {
        self.0
            .lock()
            .get(origin)
            .is_some_and(|&highest| seq <= highest)
    }
}

/// Most ended filters remembered: each is kept only while a subscribed filter overlaps it,
/// and the oldest is forgotten first.
const MAX_ENDED: usize = 64;

/// The topic filters that ended while overlapping ones stayed.
#[derive(Debug, Default)]
pub(crate) struct Ended(RwLock<VecDeque<EndedFilter>>);

#[derive(Debug)]
struct EndedFilter {
    filter: Box<str>,
    id: FilterId,
    read: Arc<ReadUpTo>,
}

impl Ended {
    /// Filter `filter` (`id`, read up to `read`) ended; `live` are the topic filters still
    /// subscribed. Ended filters no live one overlaps are forgotten: no copy can be handed
    /// over from them.
    pub(crate) fn end<'a>(
        &self,
        filter: &str,
        id: FilterId,
        read: Arc<ReadUpTo>,
        live: impl Iterator<Item = &'a str> + Clone,
    ) {
        let overlapped = |f: &str| live.clone().any(|l| overlap(f, l));
        let mut ended = self.0.write();
        ended.retain(|e| overlapped(&e.filter));
        if overlapped(filter) {
            if ended.len() == MAX_ENDED {
                ended.pop_front();
            }
            ended.push_back(EndedFilter {
                filter: filter.into(),
                id,
                read,
            });
        }
    }

    /// Forgets every ended filter (a new client starts from nothing).
    pub(crate) fn clear(&self) {
        self.0.write().clear();
    }

    /// Whether the copy of message `seq` from `origin` on `subject`, about to be delivered
    /// through filter `id`, was read by an ended filter that came before it.
    pub(crate) fn already_read(&self, subject: &str, id: FilterId, origin: &str, seq: u64) -> bool {
        let ended = self.0.read();
        ended.iter().any(|e| {
            e.id < id && filter_matches(&e.filter, subject) && e.read.has_read(origin, seq)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_an_ended_filter_read_are_skipped_later_ones_delivered() {
        let ended = Ended::default();
        let read = Arc::new(ReadUpTo::default());
        read.record("o1", 5);
        read.record("o1", 3);
        ended.end("t.p.q", 1, read, ["t.p.*"].into_iter());
        assert!(ended.already_read("t.p.q", 2, "o1", 5));
        assert!(!ended.already_read("t.p.q", 2, "o1", 6), "published after");
        assert!(!ended.already_read("t.p.q", 2, "o2", 1), "another origin");
        assert!(!ended.already_read("t.p.r", 2, "o1", 1), "not its subject");
        assert!(
            !ended.already_read("t.p.q", 0, "o1", 1),
            "a filter before it"
        );
    }

    #[test]
    fn only_ended_filters_a_live_one_overlaps_are_kept() {
        let ended = Ended::default();
        let read = || Arc::new(ReadUpTo::default());
        ended.end("t.a", 1, read(), ["t.b"].into_iter());
        assert!(ended.0.read().is_empty());
        ended.end("t.b", 2, read(), ["t.*"].into_iter());
        ended.end("t.c", 3, read(), ["t.*"].into_iter());
        assert_eq!(ended.0.read().len(), 2);
        // `t.*` ended too: nothing overlaps them any more.
        ended.end("t.*", 4, read(), std::iter::empty());
        assert!(ended.0.read().is_empty());
        for id in 0..100 {
            ended.end("t.x", id, read(), ["t.>"].into_iter());
        }
        assert_eq!(ended.0.read().len(), MAX_ENDED);
    }
}
