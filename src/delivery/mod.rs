//! The delivery stage: gets a mapped contact into ActiveCampaign, or durably into the queue
//! that the sync-worker drains, or says why neither happened (the sender must retry).

pub mod callback;
pub mod idempotency;
pub mod import;
pub mod import_store;
pub mod inline;
pub mod message;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::time::Instant;

pub use idempotency::{
    Dedupe, DeliveryClaim, IdempotencyStore, MemoryIdempotencyStore, Stage as DedupeStage,
};
pub use import::{BatchDelivered, ImportOptions, ImportedBatch, RejectedContact};
pub use import_store::{Claim, ImportRecord, ImportStore, MemoryImportStore, StoreError};
pub use inline::InlineDelivery;
pub use message::{QueuedBatch, QueuedContact, TooLarge};
pub use queue::{ContactQueue, MemoryQueue, PartlySent, QueueError, RetrySchedule};

use crate::activecampaign::{AcError, ContactSync};
use crate::mapping::Route;
use crate::redact::mask_email;
use crate::secret::{AppSecret, SecretError};

/// Suggested wait for the sender when no better figure is known.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The longest `Retry-After` told to a sender, whatever ActiveCampaign asked for: senders
/// retry on schedules of their own, and an hour's silence is better learnt from a retry.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(900);

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

/// The contact was neither synced nor kept: the sender must retry (all but `TooLarge`).
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    ActiveCampaign(#[from] AcError),
    /// The mapped contact does not fit in a queue message: a retry cannot help.
    #[error(transparent)]
    TooLarge(#[from] message::TooLarge),
    /// A batch that cannot be finished within one invocation at ActiveCampaign's pace:
    /// refused before anything is sent, so it is never imported in part.
    #[error(
        "the batch needs about {} s at ActiveCampaign's pace ({imports} bulk imports at 100 a minute, {contacts} contacts one by one at 5 a second), over the {} s one request may take: split it into smaller batches",
        needed.as_secs(),
        budget.as_secs()
    )]
    TooSlow {
        needed: Duration,
        budget: Duration,
        imports: usize,
        contacts: usize,
    },
}

impl DeliveryError {
    /// What to put in `Retry-After` for the sender: ActiveCampaign's own wait when it gave
    /// one (a long `Retry-After` included), at least 1 s and at most [`MAX_RETRY_AFTER`].
    pub fn retry_after(&self) -> Duration {
        match self {
            DeliveryError::ActiveCampaign(AcError::Unavailable {
                retry_after: Some(wait),
                ..
            }) => (*wait).clamp(Duration::from_secs(1), MAX_RETRY_AFTER),
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
        queue: Arc<dyn ContactQueue>,
        fallback: InlineDelivery,
    },
}

/// A batch's contacts, durably queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedContacts {
    pub contacts: usize,
    pub messages: usize,
}

/// What [`Delivery::queue_batch`] queued, and what it could not (and why, if SQS failed).
#[derive(Debug)]
pub struct BatchQueued {
    pub queued: QueuedContacts,
    pub left: Vec<ContactSync>,
    pub error: Option<QueueError>,
}

/// Keeps contacts that ActiveCampaign refused in the dead-letter queue, with the reason, so
/// that nothing refused disappears without a trace an operator can act on (fix the list id
/// or field, then redrive).
#[derive(Clone)]
pub struct RefusalKeeper {
    dead_letters: Option<Arc<dyn ContactQueue>>,
}

/// Message attribute that says why a message was dead-lettered.
pub const REASON_ATTRIBUTE: &str = "reason";
/// Message attribute naming the route a dead letter came from.
pub const ROUTE_ATTRIBUTE: &str = "route";
/// The reason a refused contact is dead-lettered with.
pub fn rejected_reason(message: &str) -> String {
    format!("rejected: {message}")
}

impl RefusalKeeper {
    pub fn new(dead_letters: Option<Arc<dyn ContactQueue>>) -> Self {
        Self { dead_letters }
    }

    /// Counts the refusal (the `RejectedContacts` metric, by route) and keeps the contact in
    /// the dead-letter queue when one is configured. Best effort: the sender has its answer
    /// (`rejected`) either way, and a failure here is logged.
    pub async fn keep(&self, message: &QueuedContact, reason: &str, deadline: Instant) {
        crate::metrics::emit(crate::metrics::rejected_contacts(&message.route, 1));
        let Some(dlq) = &self.dead_letters else {
            return;
        };
        let reason = rejected_reason(reason);
        let attributes = [
            (REASON_ATTRIBUTE, reason.as_str()),
            (ROUTE_ATTRIBUTE, message.route.as_str()),
        ];
        // Not starved by a spent deadline: the answer is already decided.
        let deadline = deadline.max(Instant::now() + Duration::from_secs(2));
        if let Err(error) = dlq
            .send_body(message.to_json(), &attributes, deadline)
            .await
        {
            tracing::error!(error = %error, email = %mask_email(&message.contact.email), "Refused contact not kept in the dead-letter queue.");
        }
    }
}

impl Delivery {
    /// Records bulk imports in `store` for the import-callback function.
    pub fn with_import_store(self, store: Option<Arc<dyn ImportStore>>) -> Self {
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

    /// Queue mode: packs a batch's contacts into queue messages and sends them
    /// (`SendMessageBatch`): the contacts the importer can take in balanced chunks of up to
    /// 250 (one bulk import each, by the sync-worker), the others one message each. What it
    /// could not queue (SQS failing part-way, a contact too large for a message) comes back
    /// in [`BatchQueued::left`] for the caller to import inline, so nothing queued is imported
    /// twice. In inline mode there is no queue: the contacts come back as `Err`.
    pub async fn queue_batch(
        &self,
        route: &Route,
        contacts: Vec<ContactSync>,
        deadline: Instant,
    ) -> Result<BatchQueued, Vec<ContactSync>> {
        let Delivery::Queue { queue, .. } = self else {
            return Err(contacts);
        };
        let contacts = import::merge_by_email(contacts);
        let (bulk, single): (Vec<ContactSync>, Vec<ContactSync>) =
            contacts.into_iter().partition(|c| {
                crate::activecampaign::importer::to_bulk_contact(c, route.exclude_automations)
                    .is_ok()
            });
        let mut left = Vec::new();
        // Each message's body, with the contacts it carries.
        let mut messages: Vec<(String, Vec<ContactSync>)> =
            QueuedBatch::pack(&route.name, route.exclude_automations, bulk)
                .into_iter()
                .map(|batch| (batch.to_json(), batch.contacts))
                .collect();
        for contact in single {
            let mut message = QueuedContact::new(&route.name, None, contact);
            message.exclude_automations = route.exclude_automations;
            if message.check_size().is_err() {
                // Mapped field values are capped, so only a pathological contact gets here.
                tracing::warn!(email = %mask_email(&message.contact.email), "A batch contact too large to queue is synced inline.");
                left.push(message.contact);
                continue;
            }
            messages.push((message.to_json(), vec![message.contact]));
        }
        let (bodies, carried): (Vec<String>, Vec<Vec<ContactSync>>) = messages.into_iter().unzip();
        let (sent, also_sent, error) = match queue.send_many(bodies, &[], deadline).await {
            Ok(sent) => (sent, Vec::new(), None),
            Err(partly) => (partly.sent, partly.also_sent, Some(partly.error)),
        };
        let (mut queued, mut messages) = (0, 0);
        for (index, contacts) in carried.into_iter().enumerate() {
            if index < sent || also_sent.contains(&index) {
                queued += contacts.len();
                messages += 1;
            } else {
                left.extend(contacts);
            }
        }
        Ok(BatchQueued {
            queued: QueuedContacts {
                contacts: queued,
                messages,
            },
            left,
            error,
        })
    }

    pub async fn deliver(
        &self,
        route: &Route,
        delivery_id: Option<&str>,
        dedupe: Option<(String, Duration)>,
        contact: &ContactSync,
        secret: Arc<AppSecret>,
        deadline: Instant,
    ) -> Result<DeliveryOutcome, DeliveryError> {
        match self {
            Delivery::Inline(inline) => inline.deliver(contact, secret, deadline).await,
            Delivery::Queue { queue, fallback } => {
                let mut message = QueuedContact::new(&route.name, delivery_id, contact.clone());
                message.exclude_automations = route.exclude_automations;
                // The worker recognises the delivery for as long as the webhook does.
                if let Some((identity, window)) = dedupe {
                    message.dedupe_id = Some(identity);
                    message.dedupe_window_secs = Some(window.as_secs());
                }
                // Checked before sending: SQS refusing an oversized message is not an outage.
                message.check_size()?;
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
