//! The SQS queue between the webhook function and the sync-worker (and its dead-letter
//! queue): the [`ContactQueue`] of a deployment.

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use tokio::time::Instant;

use crate::aws::LazyClient;
use crate::delivery::queue::{ContactQueue, MAX_VISIBILITY, PartlySent, QueueError};

/// Longest a send may take before the contact is synced inline instead.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: LazyClient<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(
        client: impl Into<LazyClient<aws_sdk_sqs::Client>>,
        queue_url: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            queue_url: queue_url.into(),
        }
    }

    /// The queue at `queue_url`, its client built from the environment on the first send.
    pub fn from_environment(queue_url: impl Into<String>) -> Self {
        Self {
            client: LazyClient::from_environment(),
            queue_url: queue_url.into(),
        }
    }

    /// One `SendMessageBatch`; returns the positions in `bodies` of those SQS did not take.
    async fn send_group(
        &self,
        bodies: &[&str],
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<Vec<usize>, QueueError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(SEND_TIMEOUT);
        let send = async {
            let mut request = self
                .client
                .get()
                .await
                .send_message_batch()
                .queue_url(&self.queue_url);
            for (i, body) in bodies.iter().enumerate() {
                let mut entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(*body);
                for (name, value) in attributes {
                    entry = entry.message_attributes(*name, string_attribute(value)?);
                }
                request = request.entries(
                    entry
                        .build()
                        .map_err(|e| QueueError::Unavailable(e.to_string()))?,
                );
            }
            request.send().await.map_err(|e| {
                QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
            })
        };
        let output = tokio::time::timeout(budget, send)
            .await
            .map_err(|_| QueueError::Unavailable("timed out".into()))??;
        Ok(output
            .failed()
            .iter()
            .filter_map(|f| f.id().parse::<usize>().ok())
            .filter(|&i| i < bodies.len())
            .collect())
    }
}

#[async_trait::async_trait]
impl ContactQueue for SqsQueue {
    async fn prepare(&self) {
        self.client.get().await;
    }

    /// Hides a received message for `delay` (`ChangeMessageVisibility`, whole seconds, at
    /// most 12 hours).
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let seconds = delay.min(MAX_VISIBILITY).as_secs_f64().ceil() as i32;
        let change = async {
            self.client
                .get()
                .await
                .change_message_visibility()
                .queue_url(&self.queue_url)
                .receipt_handle(receipt_handle)
                .visibility_timeout(seconds)
                .send()
                .await
                .map_err(|e| {
                    QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
                })
        };
        tokio::time::timeout(SEND_TIMEOUT, change)
            .await
            .map_err(|_| QueueError::Unavailable("timed out".into()))??;
        Ok(())
    }

    /// Sends many bodies with `SendMessageBatch`: ten per request and at most 256 KiB
    /// together, entries SQS refuses sent again once. On failure it says how far it got:
    /// every body before [`PartlySent::sent`] is in the queue, and so are those listed in
    /// [`PartlySent::also_sent`] (taken from the request that failed), so a caller resends
    /// only the rest.
    async fn send_many(
        &self,
        bodies: Vec<String>,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<usize, PartlySent> {
        const MAX_ENTRIES: usize = 10;
        const MAX_REQUEST_BYTES: usize = 256 * 1024;
        // Each request's bodies, by their index in `bodies`.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut size = 0;
        for (index, body) in bodies.iter().enumerate() {
            let starts_group = groups
                .last()
                .is_none_or(|g| g.len() == MAX_ENTRIES || size + body.len() > MAX_REQUEST_BYTES);
            if starts_group {
                groups.push(Vec::new());
                size = 0;
            }
            size += body.len();
            if let Some(group) = groups.last_mut() {
                group.push(index);
            }
        }
        let mut sent = 0;
        for group in groups {
            let mut pending = group.clone();
            for attempt in 0..2 {
                if pending.is_empty() {
                    break;
                }
                let entries: Vec<&str> = pending.iter().map(|&i| bodies[i].as_str()).collect();
                let outcome = self.send_group(&entries, attributes, deadline).await;
                let error = match outcome {
                    Ok(refused) => {
                        pending = refused
                            .iter()
                            .filter_map(|&p| pending.get(p).copied())
                            .collect();
                        if attempt == 0 || pending.is_empty() {
                            continue;
                        }
                        QueueError::Unavailable(format!(
                            "{} messages refused by SendMessageBatch",
                            pending.len()
                        ))
                    }
                    Err(error) => error,
                };
                let also_sent = group
                    .iter()
                    .copied()
                    .filter(|i| !pending.contains(i))
                    .collect();
                return Err(PartlySent {
                    sent,
                    also_sent,
                    error,
                });
            }
            sent += group.len();
        }
        Ok(sent)
    }

    /// Sends a raw body with string attributes (dead letters carry their `reason`).
    async fn send_body(
        &self,
        body: String,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<String, QueueError> {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(SEND_TIMEOUT);
        // Building the client on first use (loading the SDK configuration) counts against the
        // budget too.
        let send = async {
            let mut request = self
                .client
                .get()
                .await
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body);
            for (name, value) in attributes {
                request = request.message_attributes(*name, string_attribute(value)?);
            }
            request.send().await.map_err(|e| {
                QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
            })
        };
        let output = tokio::time::timeout(budget, send)
            .await
            .map_err(|_| QueueError::Unavailable("timed out".into()))??;
        Ok(output.message_id().unwrap_or_default().to_string())
    }
}

/// A `String` message attribute.
fn string_attribute(value: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| QueueError::Unavailable(e.to_string()))
}
