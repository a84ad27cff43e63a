//! What every session of this node shares: configuration, routing, statistics, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Stats;
use crate::routing::destination::Destinations;
use crate::routing::publish::MessageIds;
use crate::routing::queue::QueueRouter;
use crate::routing::topic::TopicRouter;
use crate::routing::user::{LocalUsers, UserDirectory};
use crate::throttle::LoginThrottle;

#[derive(Debug)]
pub struct Node {
    pub config: Config,
    /// Distinguishes this process's session and message ids from other nodes' and from
    /// earlier runs.
    pub id: String,
    pub destinations: Destinations,
    /// Checks CONNECT credentials.
    pub auth: Authenticator,
    /// Authorization rules.
    pub access: Access,
    /// Spaces out the answers to failed logins per client address.
    pub login_throttle: LoginThrottle,
    pub topics: TopicRouter,
    /// Point-to-point queues (empty when `queue_semantics = "broadcast"`).
    pub queues: QueueRouter,
    /// Which sessions each user has, for user destinations.
    pub users: Arc<dyn UserDirectory>,
    pub stats: Arc<Stats>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    next_session: AtomicU64,
}

impl Node {
    pub fn new(config: Config) -> Node {
        let id = node_id();
        let auth = Authenticator::new(&config.auth, &config.jwt);
        let access = Access::new(&config.access);
        let login_throttle =
            LoginThrottle::new(Duration::from_millis(config.auth.failure_delay_ms));
        let destinations = Destinations::new(&config.destinations);
        // One id source for topics and queues keeps message ids unique on the node.
        let message_ids = Arc::new(MessageIds::new(&id));
        let topics = TopicRouter::new(
            destinations.broadcast_prefixes(),
            &config.destinations,
            Arc::clone(&message_ids),
        );
        let stats = Arc::new(Stats::default());
        let queues = QueueRouter::new(&config.queues, message_ids, Arc::clone(&stats));
        Node {
            config,
            id,
            auth,
            access,
            login_throttle,
            destinations,
            topics,
            queues,
            users: Arc::new(LocalUsers::default()),
            stats,
            shutdown: CancellationToken::new(),
            next_session: AtomicU64::new(1),
        }
    }

    /// A new session's numeric key (for routing) and its id (for the CONNECTED frame).
    pub fn next_session(&self) -> (u64, String) {
        let key = self.next_session.fetch_add(1, Ordering::Relaxed);
        // The id addresses the session's user destinations (`/user/<id>/…`, resolved names):
        // 64 random bits, so that no client can derive another session's id from its own.
        let random = OsRng.next_u64();
        (key, format!("{}-{random:016x}", self.id))
    }
}

/// Eight hex digits from the start time and process id: unique enough to tell nodes and
/// restarts apart in ids, without a random number generator.
fn node_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}", (mixed >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::user::is_session_id;

    #[test]
    fn session_ids_are_random_and_keys_sequential() {
        let node = Node::new(Config::default());
        let sessions: Vec<(u64, String)> = (0..1000).map(|_| node.next_session()).collect();
        let keys: Vec<u64> = sessions.iter().map(|(key, _)| *key).collect();
        assert_eq!(keys, (1..=1000).collect::<Vec<u64>>());
        let ids: std::collections::HashSet<&str> =
            sessions.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids {
            assert!(is_session_id(id), "{id}");
            assert!(id.starts_with(&format!("{}-", node.id)));
        }
    }
}
