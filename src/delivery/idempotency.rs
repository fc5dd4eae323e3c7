//! A sender's retry never syncs twice. Each delivery is claimed under its route and the
//! sender's own id for it (or, for senders that give none, a digest of the raw body) before
//! anything is queued or synced: `in_progress` for as long as the delivery may take, then
//! `done` with its answer for the route's window. A duplicate while the first is in progress
//! is told to come back (503 with `Retry-After`), a later one gets the first answer again, and
//! a delivery that failed gives its claim up so the sender's retry is processed. The store
//! being down never loses a contact: the delivery goes ahead unguarded (logged and counted).
//!
//! The pattern is AWS Lambda Powertools' idempotency utility. DynamoDB in a deployment
//! ([`crate::aws::dynamodb::IdempotencyTable`]), [`MemoryIdempotencyStore`] locally and in
//! tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;
use tokio::time::Instant;

use super::import_store::{StoreError, now_secs};

/// How long a body is remembered for a sender that gives no id: a double-click or a plugin's
/// quick retry is one contact, the same person signing up again next week is another.
pub const BODY_DEDUPE_WINDOW: Duration = Duration::from_secs(600);
/// Added to the invocation's own time for the `in_progress` lease, so a claim outlives the
/// delivery it guards, and no longer: a function that died mid-delivery frees it soon.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Begun {
    /// Nobody had it: this caller delivers, then finishes or abandons it.
    Started,
    /// Another invocation is delivering it now, for about this much longer.
    InProgress { retry_after: Duration },
    /// Delivered before, within the window: its first answer.
    Done(Value),
}

/// Where claims live.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for `lease`, unless a claim on it is still in progress or done within its
    /// window.
    async fn begin(&self, key: &str, lease: Duration) -> Result<Begun, StoreError>;
    /// Keeps the delivery's answer for `window`.
    async fn finish(&self, key: &str, answer: &Value, window: Duration) -> Result<(), StoreError>;
    /// Gives an in-progress claim up (the delivery failed: the retry must be processed).
    async fn abandon(&self, key: &str) -> Result<(), StoreError>;
}

enum Entry {
    InProgress { until: u64 },
    Done { answer: Value, until: u64 },
}

/// Claims in this process's memory: local runs (one process) and tests.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryIdempotencyStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory store poisoned".into())
}

#[async_trait::async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(&self, key: &str, lease: Duration) -> Result<Begun, StoreError> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        let now = now_secs();
        match entries.get(key) {
            Some(Entry::InProgress { until }) if *until > now => {
                return Ok(Begun::InProgress {
                    retry_after: Duration::from_secs(until - now),
                });
            }
            Some(Entry::Done { answer, until }) if *until > now => {
                return Ok(Begun::Done(answer.clone()));
            }
            _ => {}
        }
        let until = now + lease.as_secs().max(1);
        entries.insert(key.to_string(), Entry::InProgress { until });
        Ok(Begun::Started)
    }

    async fn finish(&self, key: &str, answer: &Value, window: Duration) -> Result<(), StoreError> {
        let until = now_secs() + window.as_secs().max(1);
        let mut entries = self.entries.lock().map_err(poisoned)?;
        entries.insert(
            key.to_string(),
            Entry::Done {
                answer: answer.clone(),
                until,
            },
        );
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        if matches!(entries.get(key), Some(Entry::InProgress { .. })) {
            entries.remove(key);
        }
        Ok(())
    }
}

/// Which stage a claim guards: the webhook accepting a delivery, or the sync-worker syncing
/// a queued one (a queued delivery is both, under two keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Received,
    Synced,
}

impl Stage {
    fn prefix(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Synced => "synced",
        }
    }
}

/// What identifies a delivery to its sender: the topic and the sender's id for it (one id
/// may come with several topics, as a booking's creation and its cancellation do).
pub fn delivery_identity(topic: Option<&str>, delivery_id: Option<&str>) -> Option<String> {
    delivery_id.map(|id| format!("{}#{id}", topic.unwrap_or_default()))
}

/// The key of a delivery: its route and its identity, or the digest of its body when the
/// sender gives no id.
pub fn key(stage: Stage, route: &str, identity: Option<&str>, body: &[u8]) -> String {
    match identity {
        Some(identity) => format!("{}#{route}#id#{identity}", stage.prefix()),
        None => {
            let digest = sha2::Sha256::digest(body);
            format!("{}#{route}#body#{}", stage.prefix(), hex::encode(digest))
        }
    }
}

/// One claim's outcome for the caller.
#[derive(Debug)]
pub enum DeliveryClaim {
    /// Deliver, then [`Dedupe::finish`] or [`Dedupe::abandon`] it.
    Held {
        key: String,
        window: Duration,
    },
    /// No guard: deduplication is off for the route, or the store could not be reached.
    Unguarded,
    InProgress {
        retry_after: Duration,
    },
    Duplicate(Value),
}

/// The claims of one function, over its store.
#[derive(Clone)]
pub struct Dedupe {
    store: Arc<dyn IdempotencyStore>,
}

impl Dedupe {
    pub fn new(store: Arc<dyn IdempotencyStore>) -> Self {
        Self { store }
    }

    /// Claims the delivery under `key` until `deadline` (plus a margin). `window` is how long
    /// a done delivery is remembered; `None` turns deduplication off.
    pub async fn claim(
        &self,
        key: String,
        window: Option<Duration>,
        deadline: Instant,
    ) -> DeliveryClaim {
        let Some(window) = window else {
            return DeliveryClaim::Unguarded;
        };
        let lease = deadline.saturating_duration_since(Instant::now()) + LEASE_MARGIN;
        match self.store.begin(&key, lease).await {
            Ok(Begun::Started) => DeliveryClaim::Held { key, window },
            Ok(Begun::InProgress { retry_after }) => DeliveryClaim::InProgress {
                retry_after: retry_after.max(Duration::from_secs(1)),
            },
            Ok(Begun::Done(answer)) => DeliveryClaim::Duplicate(answer),
            Err(error) => {
                // Never a lost contact for a missing guard: deliver, and say so.
                tracing::warn!(error = %error, "Idempotency store unavailable; delivering without deduplication.");
                crate::metrics::emit(crate::metrics::dedupe_unavailable());
                DeliveryClaim::Unguarded
            }
        }
    }

    /// Keeps the answer of a held claim for its window. Best effort: a failure only means a
    /// later duplicate is delivered again.
    pub async fn finish(&self, claim: &DeliveryClaim, answer: &Value) {
        if let DeliveryClaim::Held { key, window } = claim
            && let Err(error) = self.store.finish(key, answer, *window).await
        {
            tracing::warn!(error = %error, "Delivery answer not kept; a duplicate would be delivered again.");
        }
    }

    /// Gives a held claim up after a failed delivery, so the sender's retry is processed.
    /// Should this fail too, the claim lapses at the end of its lease.
    pub async fn abandon(&self, claim: &DeliveryClaim) {
        if let DeliveryClaim::Held { key, .. } = claim
            && let Err(error) = self.store.abandon(key).await
        {
            tracing::warn!(error = %error, "Claim not given up; a retry waits for its lease to end.");
        }
    }
}

/// The window of a delivery on a route: the route's for a sender's id, the short one for a
/// body digest, `None` when the route turned deduplication off.
pub fn window_for(route_window: Option<Duration>, has_delivery_id: bool) -> Option<Duration> {
    let window = route_window?;
    Some(if has_delivery_id {
        window
    } else {
        window.min(BODY_DEDUPE_WINDOW)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_id_under_two_topics_is_two_deliveries() {
        let created = delivery_identity(Some("invitee.created"), Some("uri-1"));
        let canceled = delivery_identity(Some("invitee.canceled"), Some("uri-1"));
        assert_ne!(created, canceled);
        assert_eq!(delivery_identity(Some("t"), None), None);
        let key = |identity: Option<&str>, body: &[u8]| key(Stage::Received, "r", identity, body);
        assert_ne!(key(created.as_deref(), b""), key(canceled.as_deref(), b""));
        assert_ne!(key(None, b"a"), key(None, b"b"), "bodies by digest");
        assert_ne!(
            key(None, b"a"),
            idempotency_key_synced(),
            "the worker's keys are apart from the webhook's"
        );
    }

    fn idempotency_key_synced() -> String {
        key(Stage::Synced, "r", None, b"a")
    }

    #[test]
    fn a_body_is_remembered_for_at_most_ten_minutes() {
        let day = Some(Duration::from_secs(86_400));
        assert_eq!(window_for(day, true), day);
        assert_eq!(window_for(day, false), Some(BODY_DEDUPE_WINDOW));
        let minute = Some(Duration::from_secs(60));
        assert_eq!(window_for(minute, false), minute);
        assert_eq!(window_for(None, true), None, "off on the route");
    }
}
