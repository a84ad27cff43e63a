//! Presence across the cluster: who is online, as a scatter-gather over NATS.
//!
//! A question is a request on `<c>.presence` whose payload is a user name (empty: every
//! user); every node answers on the reply subject with the JSON
//! `{"node": "<id>", "users": {"<name>": <sessions>}}` of its own sessions, and the asker
//! adds up what arrives before its timeout. No node keeps a registry of the others' users.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::{Client, Subscriber};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::connect::{ConnectError, connect};
use super::link::Inbound;
use super::scatter;
use super::subject::presence_subject;
use crate::config::ClusterConfig;
use crate::routing::cluster::{Presence, RemotePresence};

/// One node's answer.
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    node: String,
    users: Presence,
}

impl scatter::Answer for Answer {
    fn node(&self) -> &str {
        &self.node
    }
}

/// Asks every node of cluster `cluster_name` reachable through `client` which users are
/// online (only `user` if given), gathering answers for `timeout`. The asking connection's
/// own node does not answer when the client was made with `no_echo` (a node's link is).
pub async fn ask_presence(
    client: &Client,
    cluster_name: &str,
    user: Option<&str>,
    timeout: Duration,
) -> RemotePresence {
    ask(client, &presence_subject(cluster_name), user, timeout).await
}

pub(crate) async fn ask(
    client: &Client,
    subject: &str,
    user: Option<&str>,
    timeout: Duration,
) -> RemotePresence {
    let mut gathered = RemotePresence::default();
    let question = user.unwrap_or_default().to_owned().into_bytes().into();
    gathered.nodes = scatter::ask(client, subject, question, timeout, |answer: Answer| {
        for (name, sessions) in answer.users {
            let total = gathered.users.entry(name).or_default();
            // Anyone who may publish on NATS can answer: a forged count must not overflow.
            *total = total.saturating_add(sessions);
        }
    })
    .await;
    gathered
}

/// Why `herald presence` got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("no NATS server of cluster.servers reachable within {0:?}")]
    Unreachable(Duration),
}

/// `herald presence`: connects to the NATS of `cluster` (its servers, credentials and TLS)
/// and asks every node, waiting `timeout` for answers. The connection is the asker's own, so
/// every node answers.
pub async fn ask_cluster(
    cluster: &ClusterConfig,
    user: Option<&str>,
    timeout: Duration,
) -> Result<RemotePresence, AskError> {
    let client = connect(cluster, "presence", Arc::default()).await?;
    // The client connects in the background: wait for it, at most one connect timeout.
    let patience = Duration::from_millis(cluster.connect_timeout_ms);
    let connected = tokio::time::timeout(patience, async {
        while client.connection_state() != State::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    connected
        .await
        .map_err(|_| AskError::Unreachable(patience))?;
    Ok(ask_presence(&client, &cluster.name, user, timeout).await)
}

/// Answers the presence questions arriving on `questions` with this node's sessions, until
/// the subscription or routing goes away.
pub(crate) async fn respond(
    client: Client,
    node_id: String,
    questions: Subscriber,
    inbound: Weak<dyn Inbound>,
) {
    scatter::respond(client, questions, inbound, move |inbound, question| {
        let user = std::str::from_utf8(question).ok()?;
        let answer = Answer {
            node: node_id.clone(),
            users: inbound.local_presence((!user.is_empty()).then_some(user)),
        };
        serde_json::to_vec(&answer)
            .inspect_err(|e| debug!(error = %e, "presence: cannot encode the answer"))
            .ok()
    })
    .await;
}
