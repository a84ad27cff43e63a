//! Destination kinds by configured prefix (semantics.md section 2).

use crate::config::{DestinationsConfig, QueueSemantics};

/// What a destination is, by its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationKind {
    /// Publish-subscribe: every matching subscription gets a copy. Also queue prefixes when
    /// `queue_semantics = "broadcast"` (Spring simple-broker behaviour).
    Topic,
    /// Point-to-point.
    Queue,
    /// Per-user and per-session delivery.
    User,
    /// Outside every configured prefix.
    Unknown,
}

/// Classifies destinations by the configured prefixes.
#[derive(Debug, Clone)]
pub struct Destinations {
    broadcast_prefixes: Vec<String>,
    queue_prefixes: Vec<String>,
    user_prefix: String,
}

impl Destinations {
    pub fn new(config: &DestinationsConfig) -> Destinations {
        let mut broadcast_prefixes = config.topic_prefixes.clone();
        let mut queue_prefixes = config.queue_prefixes.clone();
        if config.queue_semantics == QueueSemantics::Broadcast {
            broadcast_prefixes.append(&mut queue_prefixes);
        }
        Destinations {
            broadcast_prefixes,
            queue_prefixes,
            user_prefix: config.user_prefix.clone(),
        }
    }

    /// The prefixes whose destinations are routed publish-subscribe.
    pub fn broadcast_prefixes(&self) -> &[String] {
        &self.broadcast_prefixes
    }

    pub fn classify(&self, destination: &str) -> DestinationKind {
        let starts =
            |prefixes: &[String]| prefixes.iter().any(|p| destination.starts_with(p.as_str()));
        if starts(&self.broadcast_prefixes) {
            DestinationKind::Topic
        } else if starts(&self.queue_prefixes) {
            DestinationKind::Queue
        } else if destination.starts_with(self.user_prefix.as_str()) {
            DestinationKind::User
        } else {
            DestinationKind::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefixes() {
        let d = Destinations::new(&DestinationsConfig::default());
        assert_eq!(d.classify("/topic/a"), DestinationKind::Topic);
        assert_eq!(d.classify("/queue/a"), DestinationKind::Queue);
        assert_eq!(d.classify("/user/queue/a"), DestinationKind::User);
        assert_eq!(d.classify("/exchange/a"), DestinationKind::Unknown);
        assert_eq!(d.classify("/topicx"), DestinationKind::Unknown);
    }

    #[test]
    fn broadcast_queues_are_topics() {
        let config = DestinationsConfig {
            queue_semantics: QueueSemantics::Broadcast,
            ..DestinationsConfig::default()
        };
        let d = Destinations::new(&config);
        assert_eq!(d.classify("/queue/a"), DestinationKind::Topic);
    }
}
