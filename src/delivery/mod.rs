//! The delivery stage: gets a mapped contact into ActiveCampaign, or durably into the queue
//! that the sync-worker drains, or says why neither happened (the sender must retry).

pub mod batch;
pub mod inline;
pub mod message;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

pub use batch::{BatchResult, ImportedBatch, RejectedContact};
pub use inline::InlineDelivery;
pub use message::QueuedContact;
pub use queue::{ContactQueue, QueueError};

use crate::activecampaign::{AcError, ContactSync};
use crate::mapping::Route;
use crate::redact::mask_email;
use crate::secrets::{AppSecret, SecretError};

/// Suggested wait for the sender when no better figure is known.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    Synced {
        subscriber_id: Option<u64>,
    },
    /// Durably queued: the sync-worker will sync it.
    Queued {
        message_id: String,
    },
    /// ActiveCampaign refused the data (`result_code` 0): a retry cannot help.
    Rejected {
        reason: String,
    },
}

/// The contact was neither synced nor kept: the sender must retry.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    ActiveCampaign(#[from] AcError),
}

impl DeliveryError {
    /// What to put in `Retry-After` for the sender.
    pub fn retry_after(&self) -> Duration {
        match self {
            DeliveryError::ActiveCampaign(AcError::Unavailable {
                retry_after: Some(wait),
                ..
            }) => (*wait).max(Duration::from_secs(1)),
            _ => DEFAULT_RETRY_AFTER,
        }
    }
}

/// How the webhook function delivers (`DELIVERY`).
pub enum Delivery {
    /// Sync within the invocation (the local default).
    Inline(InlineDelivery),
    /// Send to SQS and answer at once; when the queue cannot be reached, sync inline instead,
    /// so that nothing is acknowledged that was not kept.
    Queue {
        queue: ContactQueue,
        fallback: InlineDelivery,
    },
}

impl Delivery {
    /// Records bulk imports in `store` for the import-callback function.
    pub fn with_import_store(self, store: Option<crate::imports::ImportStore>) -> Self {
        match self {
            Delivery::Inline(inline) => Delivery::Inline(inline.with_import_store(store)),
            Delivery::Queue { queue, fallback } => Delivery::Queue {
                queue,
                fallback: fallback.with_import_store(store),
            },
        }
    }

    /// The inline path, which batches always take: a batch poster is a script that retries.
    pub fn inline(&self) -> &InlineDelivery {
        match self {
            Delivery::Inline(inline)
            | Delivery::Queue {
                fallback: inline, ..
            } => inline,
        }
    }

    pub async fn deliver(
        &self,
        route: &Route,
        delivery_id: Option<&str>,
        contact: &ContactSync,
        secret: Arc<AppSecret>,
        deadline: Instant,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        match self {
            Delivery::Inline(inline) => inline.deliver(contact, secret, deadline).await,
            Delivery::Queue { queue, fallback } => {
                let mut message = QueuedContact::new(&route.name, delivery_id, contact.clone());
                message.exclude_automations = route.exclude_automations;
                match queue.send(&message, deadline).await {
                    Ok(message_id) => Ok(DeliveryOutcome::Queued { message_id }),
                    Err(error) => {
                        tracing::error!(error = %error, email = %mask_email(&contact.email), "Queue unavailable; syncing inline instead.");
                        fallback.deliver(contact, secret, deadline).await
                    }
                }
            }
        }
    }
}
