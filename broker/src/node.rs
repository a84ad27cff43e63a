//! What every session of this node shares: configuration, routing, statistics, shutdown.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::access::Access;
use crate::auth::Authenticator;
use crate::cluster::connect::{ConnectError, connect};
use crate::cluster::{Inbound, LinkSettings, NatsLink, Renew};
use crate::config::{Config, QueueStoreKind};
use crate::jetstream::{JetStreamQueues, OfflineJetStream, OpenError, QueueStore};
use crate::metrics::Stats;
use crate::outbox::Outbox;
use crate::routing::cluster::{ClusterLink, Crossing, NoCluster, Presence};
use crate::routing::durable::DurableStore;
use crate::routing::kicks::Kicks;
use crate::routing::router::Router;
use crate::routing::user::{LocalUsers, UserDirectory};
use crate::throttle::LoginThrottle;

#[derive(Debug)]
pub struct Node {
    pub config: Config,
    /// Starts this node's session and message ids, which tells them from other nodes' (both
    /// also carry random parts, so a restart under a fixed id repeats none).
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
    /// The NATS link to the other nodes, when clustered.
    pub cluster: Option<Arc<NatsLink>>,
    /// Where named queues keep their messages under `queues.store = "jetstream"`.
    pub queue_store: Option<Arc<JetStreamQueues>>,
    /// Cancelled when the server starts shutting down.
    pub shutdown: CancellationToken,
    /// Sessions of named users, for the operator to close.
    pub kicks: Kicks,
    next_session: AtomicU64,
}

impl Node {
    /// A node of a cluster when `[cluster]` is configured (its NATS client connects in the
    /// background: a node whose NATS is out of reach still serves local traffic), else a
    /// single node. Under `queues.store = "jetstream"` the queue stream is created or checked
    /// first: a node that cannot keep its queues durable does not start.
    pub async fn start(config: Config) -> Result<Arc<Node>, StartError> {
        let Some(cluster) = config.cluster.clone() else {
            let node = Node::new(config);
            info!(node = %node.id, "single node: no [cluster] configured");
            return Ok(Arc::new(node));
        };
        let id = match cluster.node_id.as_str() {
            "" => random_node_id(),
            id => id.to_owned(),
        };
        let stats = Arc::new(Stats::default());
        let client = connect(&cluster, &id, Arc::clone(&stats)).await?;
        let offline_client = client.clone();
        let queue_store = match config.queues.store {
            QueueStoreKind::Memory => None,
            QueueStoreKind::Jetstream => {
                let js = &config.queues.jetstream;
                let store = QueueStore::open(client.clone(), &cluster.name, js).await?;
                info!(stream = %store.stream_name(), "queues are kept in NATS JetStream");
                Some(Arc::new(JetStreamQueues::new(store, js)))
            }
        };
        let link = Arc::new(NatsLink::new(
            client,
            LinkSettings::from_config(&config, &cluster, &id),
        ));
        info!(
            node = %id,
            cluster = %cluster.name,
            servers = ?cluster.servers,
            queues = ?config.queues.store,
            "clustered over NATS"
        );
        let node = Arc::new(Node::build(
            config,
            &id,
            Arc::clone(&stats),
            Arc::new(LocalUsers::default()),
            Arc::clone(&link) as Arc<dyn ClusterLink>,
            Some(Arc::clone(&link)),
            queue_store,
        ));
        // A client whose connection task ended for good (a NATS client bug, say) is replaced
        // by a new one made the same way.
        let renew: Renew = Arc::new(move || {
            let (cluster, id, stats) = (cluster.clone(), id.clone(), Arc::clone(&stats));
            Box::pin(async move {
                connect(&cluster, &id, stats)
                    .await
                    .inspect_err(
                        |e| tracing::error!(error = %e, "cluster: cannot make a new NATS client"),
                    )
                    .ok()
            })
        });
        link.renew_with(renew);
        let inbound: Weak<dyn Inbound> = Arc::downgrade(&node) as Weak<dyn Inbound>;
        link.start(inbound);
        if !node.config.users.offline.is_empty() {
            let name = node.config.cluster.as_ref().map_or("", |c| c.name.as_str());
            let store = OfflineJetStream::open(offline_client, name, &node.config)
                .await
                .map_err(StartError::Offline)?;
            node.router.offline.set_store(Arc::new(store));
            info!(
                destinations = node.config.users.offline.len(),
                "offline delivery on JetStream"
            );
        }
        Ok(node)
    }

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
        Node::build(
            config,
            id,
            Arc::new(Stats::default()),
            users,
            link,
            None,
            None,
        )
    }

    fn build(
        config: Config,
        id: &str,
        stats: Arc<Stats>,
        users: Arc<dyn UserDirectory>,
        link: Arc<dyn ClusterLink>,
        cluster: Option<Arc<NatsLink>>,
        queue_store: Option<Arc<JetStreamQueues>>,
    ) -> Node {
        let auth = Authenticator::new(&config.auth, &config.jwt);
        let access = Access::new(&config.access);
        let login_throttle =
            LoginThrottle::new(Duration::from_millis(config.auth.failure_delay_ms));
        let mut router = Router::new(&config, id, users, link, Arc::clone(&stats));
        if let Some(store) = &queue_store {
            router = router.with_durable_store(Arc::clone(store) as Arc<dyn DurableStore>);
        }
        Node {
            config,
            id: id.to_owned(),
            auth,
            access,
            login_throttle,
            router,
            stats,
            cluster,
            queue_store,
            shutdown: CancellationToken::new(),
            kicks: Kicks::default(),
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

/// Messages from other nodes enter this node's routing here.
impl Inbound for Node {
    fn deliver(&self, message: Crossing<'_>) -> Vec<Arc<Outbox>> {
        self.router.deliver_remote(message)
    }

    fn local_presence(&self, user: Option<&str>) -> Presence {
        self.router.local_presence(user)
    }

    fn kick(&self, user: &str, reason: &str) -> usize {
        self.kicks.kick(user, reason)
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("queues.store = \"jetstream\": {0}")]
    QueueStore(#[from] OpenError),
    /// The offline delivery store (`[[users.offline]]`).
    #[error("users.offline: {0}")]
    Offline(OpenError),
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
