//! The queue between the webhook function and the sync-worker, as the core sees it: SQS in a
//! deployment ([`crate::aws::sqs::SqsQueue`]), [`MemoryQueue`] in tests.

use std::sync::Mutex;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

use super::QueuedContact;

/// SQS's longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

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

/// Where contacts wait for the sync-worker, and refused ones for an operator.
#[async_trait::async_trait]
pub trait ContactQueue: Send + Sync {
    /// Gets ready for the first call without sending anything (an AWS client is built on
    /// first use). The webhook function calls it in the background at its first request:
    /// the build then runs while that request waits (on the secret's read from Secrets
    /// Manager, as deployed), not after it.
    async fn prepare(&self) {}

    /// Sends a raw body with string attributes (dead letters carry their `reason`); returns
    /// the message id.
    async fn send_body(
        &self,
        body: String,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<String, QueueError>;

    /// Sends many bodies. On failure it says how far it got: every body before
    /// [`PartlySent::sent`] is in the queue, and so are those listed in
    /// [`PartlySent::also_sent`], so a caller resends only the rest.
    async fn send_many(
        &self,
        bodies: Vec<String>,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<usize, PartlySent>;

    /// Hides a received message for `delay` (at most [`MAX_VISIBILITY`]).
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError>;

    /// Sends a contact; returns the message id.
    async fn send(&self, message: &QueuedContact, deadline: Instant) -> Result<String, QueueError> {
        self.send_body(message.to_json(), &[], deadline).await
    }
}

/// A message in a [`MemoryQueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryMessage {
    pub id: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

/// A queue in memory, for tests and local runs: it takes everything and keeps it in order.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    messages: Mutex<Vec<MemoryMessage>>,
    hidden: Mutex<Vec<(String, Duration)>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// What was sent, in order.
    pub fn messages(&self) -> Vec<MemoryMessage> {
        self.messages.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The receipt handles given to [`ContactQueue::change_visibility`], with their delays.
    pub fn hidden(&self) -> Vec<(String, Duration)> {
        self.hidden.lock().map(|h| h.clone()).unwrap_or_default()
    }

    fn push(&self, body: String, attributes: &[(&str, &str)]) -> Result<String, QueueError> {
        let mut messages = self
            .messages
            .lock()
            .map_err(|_| QueueError::Unavailable("memory queue poisoned".into()))?;
        // Shaped like SQS's message ids (UUIDs), numbered in order.
        let id = format!("00000000-0000-4000-8000-{:012}", messages.len() + 1);
        messages.push(MemoryMessage {
            id: id.clone(),
            body,
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        Ok(id)
    }
}

#[async_trait::async_trait]
impl ContactQueue for MemoryQueue {
    async fn send_body(
        &self,
        body: String,
        attributes: &[(&str, &str)],
        _deadline: Instant,
    ) -> Result<String, QueueError> {
        self.push(body, attributes)
    }

    async fn send_many(
        &self,
        bodies: Vec<String>,
        attributes: &[(&str, &str)],
        _deadline: Instant,
    ) -> Result<usize, PartlySent> {
        let count = bodies.len();
        for (sent, body) in bodies.into_iter().enumerate() {
            if let Err(error) = self.push(body, attributes) {
                return Err(PartlySent {
                    sent,
                    also_sent: Vec::new(),
                    error,
                });
            }
        }
        Ok(count)
    }

    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let mut hidden = self
            .hidden
            .lock()
            .map_err(|_| QueueError::Unavailable("memory queue poisoned".into()))?;
        hidden.push((receipt_handle.to_string(), delay.min(MAX_VISIBILITY)));
        Ok(())
    }
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
