//! A queue's names in JetStream: its subject `<c>.q.<queue>` (the queue destination as one
//! reversibly escaped subject token, as the cluster link writes tokens) and its durable
//! consumer's name, derived from the queue alone so every node finds the same consumer.

use super::StoreError;
use crate::cluster::subject::escape_token;

/// The longest queue subject: JetStream's consumer-create request carries it in its own
/// subject next to the stream and consumer names, and nats-server closes a connection whose
/// protocol line passes 4 KiB.
pub(crate) const MAX_QUEUE_SUBJECT: usize = 3000;

/// How much of the queue name a consumer name shows (for operators reading `nats consumer
/// ls`); the hash after it tells queues apart.
const CONSUMER_NAME_SHOWN: usize = 64;

/// The subjects of one cluster's queue store.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// `<c>.q.`
    queues: Box<str>,
}

impl Names {
    pub(crate) fn new(cluster: &str) -> Names {
        Names {
            queues: format!("{cluster}.q.").into(),
        }
    }

    /// The stream's one subject filter: every queue.
    pub(crate) fn all(&self) -> String {
        format!("{}>", self.queues)
    }

    /// The subject of queue `queue` (its whole destination, `/queue/x`).
    pub(crate) fn subject(&self, queue: &str) -> Result<String, StoreError> {
        let mut subject = String::with_capacity(self.queues.len() + queue.len() + 8);
        subject.push_str(&self.queues);
        escape_token(&mut subject, queue);
        if subject.len() > MAX_QUEUE_SUBJECT {
            return Err(StoreError::QueueNameTooLong {
                len: subject.len(),
                max: MAX_QUEUE_SUBJECT,
            });
        }
        Ok(subject)
    }
}

/// The durable consumer of `queue`: `q-`, the name with every character but `A-Z a-z 0-9 -`
/// shown as `_` (at most [`CONSUMER_NAME_SHOWN`] of them), `-` and a 64-bit hash of the
/// whole name. Not the subject's `%` escaping: nats-server 2.9 never answers a pull on a
/// consumer whose name holds `%`. Two queues with one hash would share a name; the second
/// would then get a clear error (its filter subject differs), not the first's messages.
pub(crate) fn consumer_name(queue: &str) -> String {
    safe_name("q-", queue)
}

/// The durable consumer of user `user`'s stored messages in an offline stream (one stream per
/// `[[users.offline]]` block): `u-`, then as [`consumer_name`] with the user name.
pub(crate) fn offline_consumer_name(user: &str) -> String {
    safe_name("u-", user)
}

fn safe_name(prefix: &str, text: &str) -> String {
    let shown = text.chars().take(CONSUMER_NAME_SHOWN).map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' {
            c
        } else {
            '_'
        }
    });
    let mut name = String::from(prefix);
    name.extend(shown);
    name.push_str(&format!("-{:016x}", fnv1a(text)));
    name
}

/// FNV-1a, 64 bits: stable across builds and machines (std's hasher is not), which a name
/// every node must derive alike needs.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_is_one_token_and_its_consumer_a_safe_name() {
        let names = Names::new("herald");
        assert_eq!(names.all(), "herald.q.>");
        assert_eq!(
            names.subject("/queue/a.b c").unwrap(),
            "herald.q./queue/a%2Eb%20c"
        );
        assert_eq!(names.subject("").unwrap(), "herald.q.%");
        assert_eq!(
            consumer_name("/queue/a.b*é-1"),
            format!("q-_queue_a_b__-1-{:016x}", fnv1a("/queue/a.b*é-1"))
        );
        let long = "x".repeat(MAX_QUEUE_SUBJECT);
        assert!(matches!(
            names.subject(&long),
            Err(StoreError::QueueNameTooLong { .. })
        ));
        let (a, b) = (
            consumer_name(&format!("{long}a")),
            consumer_name(&format!("{long}b")),
        );
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + CONSUMER_NAME_SHOWN + 17);
        assert_eq!(
            offline_consumer_name("al.ice"),
            format!("u-al_ice-{:016x}", fnv1a("al.ice"))
        );
        // Known FNV-1a value: the name must not change between releases.
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
