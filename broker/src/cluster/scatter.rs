//! Questions to every node at once (scatter-gather over NATS request/reply): the asker
//! publishes on a cluster-wide subject with a fresh inbox as the reply subject and gathers
//! what arrives before its timeout; every node answers on that inbox. Presence and the
//! cluster-wide disconnect are such questions.

use std::sync::Weak;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use bytes::Bytes;
use futures_util::StreamExt;
use tracing::debug;

use super::link::Inbound;

/// Asks `question` on `subject` and hands every answer to `answer` until `timeout` (all of it,
/// sending the question included: with NATS out of reach the question waits in the client
/// and nobody answers).
pub(crate) async fn ask(
    client: &Client,
    subject: &str,
    question: Bytes,
    timeout: Duration,
    mut answer: impl FnMut(Bytes),
) {
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
            answer(message.payload);
        }
    })
    .await;
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
