//! Questions to every node at once (scatter-gather over NATS request/reply): the asker
//! publishes on a cluster-wide subject with a fresh inbox as the reply subject and gathers
//! what arrives before its timeout; every node answers on that inbox. Presence and the
//! cluster-wide disconnect are such questions.

use std::collections::HashSet;
use std::sync::Weak;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tracing::debug;

use super::link::Inbound;

/// An answer, as JSON, naming the node that gave it.
pub(crate) trait Answer: DeserializeOwned {
    fn node(&self) -> &str;
}

/// Asks `question` on `subject` and hands every readable answer to `take`, once per node (an
/// answer duplicated on the way counts once), until `timeout`: all of it, sending the
/// question included (with NATS out of reach the question waits in the client and nobody
/// answers). Returns how many nodes answered.
pub(crate) async fn ask<A: Answer>(
    client: &Client,
    subject: &str,
    question: Bytes,
    timeout: Duration,
    mut take: impl FnMut(A),
) -> usize {
    let mut nodes = HashSet::new();
    let _ = tokio::time::timeout(timeout, async {
        let inbox = client.new_inbox();
        // Subscribed before asking: the subscription reaches the server first.
        let mut answers = match client.subscribe(inbox.clone()).await {
            Ok(answers) => answers,
            Err(e) => {
                debug!(error = %e, subject, "cluster: cannot subscribe for answers");
                return;
            }
        };
        if let Err(e) = client
            .publish_with_reply(subject.to_owned(), inbox, question)
            .await
        {
            debug!(error = %e, subject, "cluster: cannot ask");
            return;
        }
        while let Some(message) = answers.next().await {
            match serde_json::from_slice::<A>(&message.payload) {
                Ok(answer) => {
                    if nodes.insert(answer.node().to_owned()) {
                        take(answer);
                    }
                }
                Err(e) => debug!(error = %e, subject, "cluster: unreadable answer"),
            }
        }
    })
    .await;
    nodes.len()
}

/// Answers the questions arriving on `questions` with what `answer` makes of each (`None`:
/// no answer), until the subscription or routing goes away.
pub(crate) async fn respond(
    client: Client,
    mut questions: Subscriber,
    inbound: Weak<dyn Inbound>,
    answer: impl Fn(&dyn Inbound, &[u8]) -> Option<Vec<u8>>,
) {
    while let Some(question) = questions.next().await {
        let Some(reply) = question.reply else {
            continue;
        };
        let Some(inbound) = inbound.upgrade() else {
            return;
        };
        let answered = answer(&*inbound, &question.payload);
        drop(inbound);
        if let Some(answered) = answered
            && let Err(e) = client.publish(reply, answered.into()).await
        {
            debug!(error = %e, "cluster: cannot answer");
        }
    }
}
