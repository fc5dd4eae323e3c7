//! The sync-worker: drains queued contacts into ActiveCampaign. Contacts of one batch are
//! merged per email (one call per person), synced at ActiveCampaign's pace, and only the
//! messages that failed are reported for retry. Messages that cannot succeed (unreadable) or
//! that failed on their last allowed receive go to the dead-letter queue with their reason.

pub mod lambda;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::activecampaign::ContactSync;
use crate::delivery::{ContactQueue, DeliveryOutcome, InlineDelivery, QueuedContact};
use crate::edge::{StartupError, secrets_and_client};
use crate::redact::mask_email;
use crate::secrets::SecretCache;
use crate::settings::Settings;

/// Message attribute that says why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "reason";
/// Message attribute with the id of the message it was in the source queue.
pub const SOURCE_ID_ATTRIBUTE: &str = "source_message_id";

/// One message of the batch, independent of Lambda's event types.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRecord {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount`: how many times SQS has handed this message out.
    pub receive_count: u32,
}

/// What one batch came to.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchReport {
    /// Message ids to retry (SQS makes them visible again).
    pub failed: Vec<String>,
    pub synced: usize,
    pub rejected: usize,
    pub dead_lettered: usize,
}

pub struct SyncWorker {
    delivery: InlineDelivery,
    secrets: Arc<SecretCache>,
    dead_letters: Option<ContactQueue>,
    max_receive_count: u32,
}

impl SyncWorker {
    pub fn new(
        delivery: InlineDelivery,
        secrets: Arc<SecretCache>,
        dead_letters: Option<ContactQueue>,
        max_receive_count: u32,
    ) -> Self {
        Self {
            delivery,
            secrets,
            dead_letters,
            max_receive_count,
        }
    }

    pub async fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let (secrets, client) = secrets_and_client(settings).await?;
        let dead_letters = match &settings.dead_letter_queue {
            Some(url) => Some(ContactQueue::new(
                aws_sdk_sqs::Client::new(&crate::aws::sdk_config().await),
                url,
            )),
            None => None,
        };
        Ok(Self::new(
            InlineDelivery::new(client, secrets.clone()),
            secrets,
            dead_letters,
            settings.max_receive_count,
        ))
    }

    pub async fn process(&self, records: Vec<QueueRecord>, deadline: Instant) -> BatchReport {
        let mut report = BatchReport::default();
        // Email → the merged contact and the messages it came from, in arrival order.
        let mut people: BTreeMap<String, (ContactSync, Vec<QueueRecord>)> = BTreeMap::new();
        for record in records {
            match QueuedContact::from_json(&record.body) {
                Ok(message) => match people.get_mut(&message.contact.email) {
                    Some((contact, sources)) => {
                        contact.merge(message.contact);
                        sources.push(record);
                    }
                    None => {
                        people.insert(
                            message.contact.email.clone(),
                            (message.contact, vec![record]),
                        );
                    }
                },
                // Retrying cannot fix an unreadable message: dead-letter it at once.
                Err(error) => {
                    let reason = error.to_string();
                    self.dead_letter_or_retry(&[record], &reason, true, deadline, &mut report)
                        .await;
                }
            }
        }
        if people.is_empty() {
            return report;
        }
        let secret = match self.secrets.get().await {
            Ok(secret) => secret,
            Err(error) => {
                let reason = error.to_string();
                for (_, (_, sources)) in people {
                    self.dead_letter_or_retry(&sources, &reason, false, deadline, &mut report)
                        .await;
                }
                return report;
            }
        };
        for (email, (contact, sources)) in people {
            match self
                .delivery
                .deliver(&contact, secret.clone(), deadline)
                .await
            {
                Ok(DeliveryOutcome::Synced { .. } | DeliveryOutcome::Queued { .. }) => {
                    report.synced += sources.len();
                }
                Ok(DeliveryOutcome::Rejected { reason }) => {
                    tracing::warn!(email = %mask_email(&email), reason = %reason, "ActiveCampaign rejected a queued contact.");
                    report.rejected += sources.len();
                }
                Err(error) => {
                    let reason = error.to_string();
                    tracing::warn!(email = %mask_email(&email), error = %reason, "Queued contact not synced; it will be retried.");
                    self.dead_letter_or_retry(&sources, &reason, false, deadline, &mut report)
                        .await;
                }
            }
        }
        tracing::info!(
            synced = report.synced,
            rejected = report.rejected,
            failed = report.failed.len(),
            dead_lettered = report.dead_lettered,
            "Queue batch processed."
        );
        report
    }

    /// Dead-letters the records when they cannot succeed (`permanent`) or have used their last
    /// receive; otherwise reports them for retry. A record is only dropped from the source
    /// queue once the dead-letter queue has it.
    async fn dead_letter_or_retry(
        &self,
        records: &[QueueRecord],
        reason: &str,
        permanent: bool,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        for record in records {
            let exhausted = permanent || record.receive_count >= self.max_receive_count;
            let moved = match (&self.dead_letters, exhausted) {
                (Some(dlq), true) => {
                    // Dead-lettering must not be starved by a spent batch deadline.
                    let deadline = deadline.max(Instant::now() + Duration::from_secs(3));
                    let attributes = [
                        (REASON_ATTRIBUTE, reason),
                        (SOURCE_ID_ATTRIBUTE, record.message_id.as_str()),
                    ];
                    match dlq
                        .send_body(record.body.clone(), &attributes, deadline)
                        .await
                    {
                        Ok(_) => {
                            tracing::error!(message_id = %record.message_id, receive_count = record.receive_count, reason = %reason, "Message moved to the dead-letter queue.");
                            true
                        }
                        Err(error) => {
                            tracing::error!(message_id = %record.message_id, error = %error, "Dead-letter queue unavailable; the message will be retried.");
                            false
                        }
                    }
                }
                _ => false,
            };
            if moved {
                report.dead_lettered += 1;
            } else {
                report.failed.push(record.message_id.clone());
            }
        }
    }
}
