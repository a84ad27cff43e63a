//! What topic and queue routing share about a published message: its node-unique id, the
//! headers passed on to subscribers, and its expiry.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use herald_protocol::Headers;

/// SEND headers the broker acts on or owns, never passed on as the publisher wrote them:
/// `receipt` and `transaction` are instructions, `redelivered` is set by the broker on
/// redelivery. (`destination`, `message-id`, `subscription`, `ack` and `content-length` are
/// skipped by `MessageTemplate` itself.)
const NOT_FORWARDED: [&str; 3] = ["receipt", "transaction", "redelivered"];

/// Cluster-unique message ids: a per-process prefix and a counter. One source per node, shared
/// by topic and queue routing.
#[derive(Debug)]
pub struct MessageIds {
    prefix: String,
    next: AtomicU64,
}

impl MessageIds {
    /// Ids `<node_id>-1`, `<node_id>-2`, …
    pub fn new(node_id: &str) -> MessageIds {
        MessageIds {
            prefix: format!("{node_id}-"),
            next: AtomicU64::new(1),
        }
    }

    /// Ids `<node_id>-<run>-1`, … where `<run>` is six random hex digits drawn at start, so
    /// a node restarted under the same fixed id never repeats an id of its earlier run.
    pub fn for_run(node_id: &str) -> MessageIds {
        // `RandomState` is seeded from the operating system's random source per process.
        let run = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), node_id);
        MessageIds::new(&format!("{node_id}-{:06x}", run & 0xff_ffff))
    }

    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut id = String::with_capacity(self.prefix.len() + 20);
        id.push_str(&self.prefix);
        id.push_str(itoa::Buffer::new().format(n));
        id
    }
}

/// The publisher's headers minus the broker's; borrowed when there are none.
pub fn forwarded_headers(headers: &Headers) -> Cow<'_, Headers> {
    if NOT_FORWARDED.iter().any(|h| headers.contains(h)) {
        let mut owned = headers.clone();
        for h in NOT_FORWARDED {
            owned.remove(h);
        }
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(headers)
    }
}

/// The `expires` header: epoch milliseconds after which the message must not be delivered.
/// Absent, `0` (ActiveMQ's "never") or not a number: no expiry.
pub fn expires(headers: &Headers) -> Option<u64> {
    headers
        .get("expires")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&ms| ms != 0)
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether a message with this expiry must no longer be delivered.
pub fn is_expired(expires: Option<u64>, now_ms: u64) -> bool {
    expires.is_some_and(|at| at <= now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_distinct() {
        let ids = MessageIds::new("n1");
        assert_eq!(ids.next(), "n1-1");
        assert_eq!(ids.next(), "n1-2");
    }

    #[test]
    fn each_run_of_a_node_has_its_own_ids() {
        let runs: std::collections::HashSet<String> =
            (0..20).map(|_| MessageIds::for_run("n1").next()).collect();
        assert!(runs.len() > 1, "{runs:?}");
        for id in &runs {
            let (prefix, counter) = id.rsplit_once('-').unwrap();
            assert_eq!(counter, "1");
            assert!(
                prefix.starts_with("n1-") && prefix.len() == "n1-".len() + 6,
                "{id}"
            );
        }
    }

    #[test]
    fn broker_headers_are_not_forwarded() {
        let headers: Headers = [("receipt", "r"), ("redelivered", "true"), ("x", "1")]
            .into_iter()
            .collect();
        let forwarded = forwarded_headers(&headers);
        assert_eq!(forwarded.iter().collect::<Vec<_>>(), [("x", "1")]);
        let plain: Headers = [("x", "1")].into_iter().collect();
        assert!(matches!(forwarded_headers(&plain), Cow::Borrowed(_)));
    }

    #[test]
    fn expiry() {
        let h = |v: &str| -> Headers { [("expires", v)].into_iter().collect() };
        assert_eq!(expires(&h("1000")), Some(1000));
        assert_eq!(expires(&h("0")), None);
        assert_eq!(expires(&h("soon")), None);
        assert_eq!(expires(&Headers::new()), None);
        assert!(is_expired(Some(1000), 1000));
        assert!(!is_expired(Some(1001), 1000));
        assert!(!is_expired(None, u64::MAX));
    }
}
