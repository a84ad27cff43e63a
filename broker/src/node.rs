//! What every session of this node shares: configuration, routing, statistics, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio_util::sync::CancellationToken;

use crate::access::Access;
use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Stats;
use crate::routing::cluster::{ClusterLink, NoCluster};
use crate::routing::router::Router;
use crate::routing::user::{LocalUsers, UserDirectory};
use crate::throttle::LoginThrottle;

#[derive(Debug)]
pub struct Node {
    pub config: Config,
    /// Distinguishes this process's session and message ids from other nodes' and from
    /// earlier runs.
    pub id: String,
    /// Checks CONNECT credentials.
    pub auth: Authenticator,
    /// Authorization rules.
    pub access: Access,
    /// Spaces out the answers to failed logins per client address.
    pub login_throttle: LoginThrottle,
    /// Topics, queues, user destinations and the link to other nodes.
    pub router: Router,
    pub stats: Arc<Stats>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    next_session: AtomicU64,
}

impl Node {
    /// A single node: its own user directory, no cluster.
    pub fn new(config: Config) -> Node {
        Node::with_parts(
            config,
            &random_node_id(),
            Arc::new(LocalUsers::default()),
            Arc::new(NoCluster),
        )
    }

    /// A node with the given id, user directory and link to other nodes.
    pub fn with_parts(
        config: Config,
        id: &str,
        users: Arc<dyn UserDirectory>,
        link: Arc<dyn ClusterLink>,
    ) -> Node {
        let auth = Authenticator::new(&config.auth, &config.jwt);
        let access = Access::new(&config.access);
        let login_throttle =
            LoginThrottle::new(Duration::from_millis(config.auth.failure_delay_ms));
        let stats = Arc::new(Stats::default());
        let router = Router::new(&config, id, users, link, Arc::clone(&stats));
        Node {
            config,
            id: id.to_owned(),
            auth,
            access,
            login_throttle,
            router,
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

/// A node id for a node not given one: eight random lowercase hex digits.
pub fn random_node_id() -> String {
    format!("{:08x}", OsRng.next_u32())
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
