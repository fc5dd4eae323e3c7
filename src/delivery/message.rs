//! The queue message: one mapped contact with where it came from. Versioned, so a worker can
//! refuse a message it does not understand instead of misreading it.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::activecampaign::ContactSync;

pub const MESSAGE_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedContact {
    pub version: u8,
    pub route: String,
    pub delivery_id: Option<String>,
    pub queued_at_ms: u64,
    /// The route's `exclude_automations`, for when the worker imports in bulk.
    #[serde(default)]
    pub exclude_automations: bool,
    /// How many failed bulk imports this contact was requeued from (0 when first queued).
    #[serde(default)]
    pub generation: u32,
    /// What identifies the delivery (its topic and the sender's id), and how long the worker
    /// remembers it once synced (the route's window); absent when the sender gives no id or
    /// the route does not deduplicate, and then only a redelivery of the same message is
    /// recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_window_secs: Option<u64>,
    pub contact: ContactSync,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MessageError {
    #[error("message is not a queued contact: {0}")]
    Malformed(String),
    #[error("message version {0} is not understood by this worker (expects {MESSAGE_VERSION})")]
    UnknownVersion(u8),
}

/// A queue message of this worker's version, or why not.
fn read_versioned<T: serde::de::DeserializeOwned>(
    body: &str,
    version: impl Fn(&T) -> u8,
) -> Result<T, MessageError> {
    let message: T =
        serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
    match version(&message) {
        MESSAGE_VERSION => Ok(message),
        other => Err(MessageError::UnknownVersion(other)),
    }
}

/// SQS's limit for one message (body and attributes): 256 KiB.
pub const MAX_QUEUE_MESSAGE_BYTES: usize = 256 * 1024;
/// Room kept for the attributes a dead letter adds (reason, route, source id).
const ATTRIBUTE_ROOM: usize = 4 * 1024;

/// A mapped contact whose queue message would be over SQS's limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "the contact is {bytes} bytes as a queue message, over the limit of {limit}; its largest value is {largest} ({largest_bytes} bytes): shorten it or leave it out of the mapping"
)]
pub struct TooLarge {
    pub bytes: usize,
    pub limit: usize,
    /// The form key of the largest value (`field[12,0]`, `tags`, ...).
    pub largest: String,
    pub largest_bytes: usize,
}

/// A batch's contacts in one queue message (up to 250, within SQS's 256 KiB): the
/// sync-worker imports each such message as one bulk import.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedBatch {
    pub version: u8,
    pub route: String,
    pub queued_at_ms: u64,
    #[serde(default)]
    pub exclude_automations: bool,
    pub contacts: Vec<ContactSync>,
}

/// The most contacts one batch message carries (one bulk import's worth).
pub const MAX_BATCH_MESSAGE_CONTACTS: usize = 250;

impl QueuedBatch {
    /// Packs a batch's (merged) contacts into balanced messages that each fit SQS.
    pub fn pack(route: &str, exclude_automations: bool, contacts: Vec<ContactSync>) -> Vec<Self> {
        let sizes = contacts
            .iter()
            .map(crate::activecampaign::importer::json_size)
            .collect();
        let queued_at_ms = QueuedContact::new(route, None, ContactSync::default()).queued_at_ms;
        crate::activecampaign::importer::balanced_chunks(
            contacts,
            sizes,
            MAX_BATCH_MESSAGE_CONTACTS,
            MAX_QUEUE_MESSAGE_BYTES - ATTRIBUTE_ROOM - 1_024,
        )
        .into_iter()
        .map(|contacts| Self {
            version: MESSAGE_VERSION,
            route: route.to_string(),
            queued_at_ms,
            exclude_automations,
            contacts,
        })
        .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(body: &str) -> Result<Self, MessageError> {
        read_versioned(body, |m: &Self| m.version)
    }

    /// Whether a queue message body is a batch message: `contacts` at its top level.
    pub fn is_batch(body: &str) -> bool {
        #[derive(Deserialize)]
        struct Shape {
            contacts: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_str::<Shape>(body).is_ok_and(|shape| shape.contacts.is_some())
    }
}

/// A reference to look up in a sender's API (BigCommerce's order id), queued by the webhook
/// function for the sync-worker, which looks it up, maps it through its route and syncs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedLookup {
    pub version: u8,
    pub route: String,
    pub delivery_id: Option<String>,
    pub queued_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_window_secs: Option<u64>,
    pub lookup: crate::lookup::Lookup,
    /// The webhook as its sender parsed it: its topic, and its payload (ids: small).
    pub topic: Option<String>,
    pub webhook: serde_json::Value,
}

impl QueuedLookup {
    pub fn new(
        route: &str,
        webhook: &crate::submission::Submission,
        lookup: crate::lookup::Lookup,
    ) -> Self {
        Self {
            version: MESSAGE_VERSION,
            route: route.to_string(),
            delivery_id: webhook.delivery_id.clone(),
            queued_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            dedupe_id: None,
            dedupe_window_secs: None,
            lookup,
            topic: webhook.topic.clone(),
            webhook: webhook.payload.clone(),
        }
    }

    /// The webhook's submission again, as the sender's parser left it.
    pub fn webhook_submission(&self) -> crate::submission::Submission {
        crate::submission::Submission {
            topic: self.topic.clone(),
            delivery_id: self.delivery_id.clone(),
            payload: self.webhook.clone(),
            lookup: Some(self.lookup.clone()),
            ..crate::submission::Submission::default()
        }
    }

    pub fn is_lookup(body: &str) -> bool {
        #[derive(Deserialize)]
        struct Shape {
            lookup: Option<serde::de::IgnoredAny>,
        }
        serde_json::from_str::<Shape>(body).is_ok_and(|shape| shape.lookup.is_some())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(body: &str) -> Result<Self, MessageError> {
        read_versioned(body, |m: &Self| m.version)
    }
}

impl QueuedContact {
    /// Whether the message fits in SQS (with room for a dead letter's attributes).
    pub fn check_size(&self) -> Result<(), TooLarge> {
        let bytes = self.to_json().len();
        let limit = MAX_QUEUE_MESSAGE_BYTES - ATTRIBUTE_ROOM;
        if bytes <= limit {
            return Ok(());
        }
        let (largest, largest_bytes) = self
            .contact
            .form_pairs()
            .into_iter()
            .map(|(key, value)| (key, value.len()))
            .max_by_key(|(_, len)| *len)
            .unwrap_or_default();
        Err(TooLarge {
            bytes,
            limit,
            largest,
            largest_bytes,
        })
    }

    pub fn new(route: &str, delivery_id: Option<&str>, contact: ContactSync) -> Self {
        Self {
            exclude_automations: false,
            generation: 0,
            dedupe_id: None,
            dedupe_window_secs: None,
            version: MESSAGE_VERSION,
            route: route.to_string(),
            delivery_id: delivery_id.map(str::to_string),
            queued_at_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            contact,
        }
    }

    pub fn to_json(&self) -> String {
        // Serialising plain data (strings, numbers, vectors) cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(body: &str) -> Result<Self, MessageError> {
        let message = read_versioned(body, |m: &Self| m.version)?;
        if message.contact.email.is_empty() {
            return Err(MessageError::Malformed("empty email".into()));
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activecampaign::contact_sync::{FieldKey, FieldValue, ListMembership, ListStatus};

    #[test]
    fn a_contact_over_the_queue_limit_names_its_largest_value() {
        let contact = |value: usize| ContactSync {
            email: "a@b.co".into(),
            fields: vec![
                FieldValue {
                    key: FieldKey::Id(3),
                    value: "x".repeat(value),
                },
                FieldValue {
                    key: FieldKey::Id(4),
                    value: "y".repeat(100),
                },
            ],
            ..ContactSync::default()
        };
        assert!(
            QueuedContact::new("form", None, contact(200_000))
                .check_size()
                .is_ok()
        );
        let error = QueuedContact::new("form", None, contact(300_000))
            .check_size()
            .unwrap_err();
        assert_eq!(error.largest, "field[3,0]");
        assert_eq!(error.largest_bytes, 300_000);
        assert!(error.to_string().contains("field[3,0]"), "{error}");
    }

    #[test]
    fn round_trip_and_refusals() {
        let contact = ContactSync {
            email: "a@b.co".into(),
            tags: vec!["t".into()],
            fields: vec![
                FieldValue {
                    key: FieldKey::Id(3),
                    value: "x".into(),
                },
                FieldValue {
                    key: FieldKey::PersTag("%T%".into()),
                    value: "y".into(),
                },
            ],
            lists: vec![ListMembership {
                list_id: 2,
                status: ListStatus::Unsubscribed,
                instant_responders: None,
                no_responders: Some(true),
                last_message: None,
                sdate: None,
                may_resubscribe: false,
            }],
            ..ContactSync::default()
        };
        let message = QueuedContact::new("shop", Some("evt-1"), contact);
        assert_eq!(
            QueuedContact::from_json(&message.to_json()).unwrap(),
            message
        );
        assert!(matches!(
            QueuedContact::from_json("{"),
            Err(MessageError::Malformed(_))
        ));
        let future = message.to_json().replace("\"version\":1", "\"version\":9");
        assert_eq!(
            QueuedContact::from_json(&future),
            Err(MessageError::UnknownVersion(9))
        );
    }
}
