//! The SQS queue between the webhook function and the sync-worker (and its dead-letter queue).

use std::time::Duration;

use aws_sdk_sqs::types::MessageAttributeValue;
use thiserror::Error;
use tokio::time::Instant;

use super::QueuedContact;
use crate::aws::LazyClient;

/// Longest a send may take before the contact is synced inline instead.
const SEND_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
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
                let attribute = MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*value)
                    .build()
                    .map_err(|e| QueueError::Unavailable(e.to_string()))?;
                request = request.message_attributes(*name, attribute);
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
