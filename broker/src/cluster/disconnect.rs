//! Disconnecting a user on every node (the HTTP API's `DELETE /users/{user}/sessions`): a
//! question on `<c>.disconnect` carrying `{"user": …, "reason": …}`; every node closes the
//! sessions of that user it holds, telling each the reason, and answers
//! `{"node": "<id>", "closed": <n>}`; the asker adds up what arrives before its timeout.

use std::sync::Weak;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::link::Inbound;
use super::scatter;
use crate::routing::cluster::RemoteDisconnect;

#[derive(Debug, Serialize, Deserialize)]
struct Question {
    user: String,
    reason: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    node: String,
    closed: usize,
}

impl scatter::Answer for Answer {
    fn node(&self) -> &str {
        &self.node
    }
}

/// Asks every other node to close `user`'s sessions, gathering their counts for `timeout`.
pub(crate) async fn ask(
    client: &Client,
    subject: &str,
    user: &str,
    reason: &str,
    timeout: Duration,
) -> RemoteDisconnect {
    let mut gathered = RemoteDisconnect::default();
    let question = Question {
        user: user.to_owned(),
        reason: reason.to_owned(),
    };
    let Ok(question) = serde_json::to_vec(&question) else {
        return gathered;
    };
    gathered.nodes = scatter::ask(
        client,
        subject,
        question.into(),
        timeout,
        |answer: Answer| {
            // Anyone who may publish on NATS can answer: a forged count must not overflow.
            gathered.sessions = gathered.sessions.saturating_add(answer.closed);
        },
    )
    .await;
    gathered
}

/// Closes the sessions the questions on `questions` name, answering how many.
pub(crate) async fn respond(
    client: Client,
    node_id: String,
    questions: Subscriber,
    inbound: Weak<dyn Inbound>,
) {
    scatter::respond(client, questions, inbound, move |inbound, question| {
        let question: Question = serde_json::from_slice(question)
            .inspect_err(|e| debug!(error = %e, "disconnect: unreadable question"))
            .ok()?;
        let closed = inbound.kick(&question.user, &question.reason);
        if closed > 0 {
            info!(
                user = question.user,
                closed,
                reason = question.reason,
                "cluster: user's sessions disconnected at another node's request"
            );
        }
        let answer = Answer {
            node: node_id.clone(),
            closed,
        };
        serde_json::to_vec(&answer).ok()
    })
    .await;
}
