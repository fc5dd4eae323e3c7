//! The SQS queue between the webhook function and the sync-worker (and its dead-letter queue).

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use thiserror::Error;
use tokio::time::Instant;

use super::QueuedContact;
use crate::aws::LazyClient;

/// Longest a send may take before the contact is synced inline instead.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);
/// SQS's longest visibility timeout: 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// How long a message handed back for retry stays hidden: the backoff of its receive count
/// (`base`, doubling per receive, capped at `max`), or longer if ActiveCampaign asked to wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedule {
    pub base: Duration,
    pub max: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(30),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl RetrySchedule {
    pub fn delay(&self, receive_count: u32, retry_after: Option<Duration>) -> Duration {
        let steps = receive_count.saturating_sub(1).min(16);
        let backoff = self
            .base
            .saturating_mul(2u32.saturating_pow(steps))
            .min(self.max);
        backoff
            .max(retry_after.unwrap_or_default())
            .min(MAX_VISIBILITY)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
}

/// A [`ContactQueue::send_many`] that stopped part-way: the first `sent` bodies are queued,
/// and those at `also_sent` after them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{error} ({sent} sent before it)")]
pub struct PartlySent {
    pub sent: usize,
    pub also_sent: Vec<usize>,
    #[source]
    pub error: QueueError,
}

#[derive(Debug, Clone)]
pub struct ContactQueue {
    client: LazyClient<aws_sdk_sqs::Client>,
    queue_url: String,
}

impl ContactQueue {
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

    /// Sends a contact; returns the SQS message id.
    pub async fn send(
        &self,
        message: &QueuedContact,
        deadline: Instant,
    ) -> Result<String, QueueError> {
        self.send_body(message.to_json(), &[], deadline).await
    }

    /// Hides a received message for `delay` (`ChangeMessageVisibility`, whole seconds, at
    /// most 12 hours).
    pub async fn change_visibility(
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
    pub async fn send_many(
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

    /// Sends a raw body with string attributes (dead letters carry their `reason`).
    pub async fn send_body(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_delay_doubles_per_receive_and_honours_a_longer_wait() {
        let schedule = RetrySchedule::default();
        let secs =
            |n, after: Option<u64>| schedule.delay(n, after.map(Duration::from_secs)).as_secs();
        assert_eq!(
            (1..=7).map(|n| secs(n, None)).collect::<Vec<_>>(),
            [30, 60, 120, 240, 480, 900, 900]
        );
        assert_eq!(secs(1, Some(3600)), 3600, "a long Retry-After is the wait");
        assert_eq!(secs(3, Some(5)), 120);
        assert_eq!(secs(1, Some(100_000)), 12 * 3600, "SQS's maximum");
    }
}
