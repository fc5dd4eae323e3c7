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
/// The longest one call to the store may take: it guards a delivery, it must not use up the
/// time the delivery needs (DynamoDB answers in milliseconds; a call this slow is an outage).
const STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a copy waits for the first delivery's answer before it is told to come back.
pub const MAX_WAIT: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(200);

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

/// Where claims live. Each claim has an owner (a random token of the invocation that took
/// it): only the owner finishes or gives it up, so an invocation whose lease ran out cannot
/// undo the claim of the one that took over.
#[async_trait::async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Gets ready for the first claim without making one (see [`ContactQueue::prepare`]).
    ///
    /// [`ContactQueue::prepare`]: crate::delivery::ContactQueue::prepare
    async fn prepare(&self) {}

    /// Claims `key` for `owner` for `lease`, unless a claim on it is still in progress or
    /// done within its window.
    async fn begin(&self, key: &str, owner: &str, lease: Duration) -> Result<Begun, StoreError>;
    /// Keeps the delivery's answer for `window` (unless another owner has the claim now).
    async fn finish(
        &self,
        key: &str,
        owner: &str,
        answer: &Value,
        window: Duration,
    ) -> Result<(), StoreError>;
    /// Gives an in-progress claim of `owner` up (the delivery failed: the retry must be
    /// processed).
    async fn abandon(&self, key: &str, owner: &str) -> Result<(), StoreError>;
}

enum Entry {
    InProgress { until: u64, owner: String },
    Done { answer: Value, until: u64 },
}

/// Claims in this process's memory: local runs (one process) and tests. Bounded: past
/// [`MEMORY_CLAIMS`] entries, those whose lease or window ended go, then the ones that end
/// soonest, so a long-lived process cannot grow without end.
#[derive(Default)]
pub struct MemoryIdempotencyStore {
    entries: Mutex<HashMap<String, Entry>>,
}

/// The most claims a [`MemoryIdempotencyStore`] keeps (a few MiB).
pub const MEMORY_CLAIMS: usize = 20_000;

impl Entry {
    fn until(&self) -> u64 {
        match self {
            Entry::InProgress { until, .. } | Entry::Done { until, .. } => *until,
        }
    }
}

/// Makes room for one more claim (see [`MemoryIdempotencyStore`]).
fn make_room(entries: &mut HashMap<String, Entry>, now: u64) {
    if entries.len() < MEMORY_CLAIMS {
        return;
    }
    entries.retain(|_, entry| entry.until() > now);
    if entries.len() >= MEMORY_CLAIMS {
        let mut ends: Vec<u64> = entries.values().map(Entry::until).collect();
        // Down to three quarters, so this runs once per quarter of the bound, not per claim.
        let keep = MEMORY_CLAIMS * 3 / 4;
        let cut = ends.len() - keep;
        let (_, nth, _) = ends.select_nth_unstable(cut);
        let cut_at = *nth;
        entries.retain(|_, entry| entry.until() > cut_at);
    }
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
    async fn begin(&self, key: &str, owner: &str, lease: Duration) -> Result<Begun, StoreError> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        let now = now_secs();
        match entries.get(key) {
            Some(Entry::InProgress { until, .. }) if *until > now => {
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
        make_room(&mut entries, now);
        let owner = owner.to_string();
        entries.insert(key.to_string(), Entry::InProgress { until, owner });
        Ok(Begun::Started)
    }

    async fn finish(
        &self,
        key: &str,
        owner: &str,
        answer: &Value,
        window: Duration,
    ) -> Result<(), StoreError> {
        let until = now_secs() + window.as_secs().max(1);
        let mut entries = self.entries.lock().map_err(poisoned)?;
        let ours = match entries.get(key) {
            Some(Entry::InProgress { owner: holder, .. }) => holder == owner,
            Some(Entry::Done { .. }) => false,
            None => true,
        };
        if ours {
            let answer = answer.clone();
            entries.insert(key.to_string(), Entry::Done { answer, until });
        }
        Ok(())
    }

    async fn abandon(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().map_err(poisoned)?;
        if matches!(entries.get(key), Some(Entry::InProgress { owner: holder, .. }) if holder == owner)
        {
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

/// The key of a delivery: its route and the digest of its identity, or of its body when the
/// sender gives no id (a digest: no id can make a key ambiguous or too long for the store).
pub fn key(stage: Stage, route: &str, identity: Option<&str>, body: &[u8]) -> String {
    match identity {
        Some(identity) => {
            let digest = sha2::Sha256::digest(identity.as_bytes());
            format!("{}#{route}#id#{}", stage.prefix(), hex::encode(digest))
        }
        None => {
            let digest = sha2::Sha256::digest(body);
            format!("{}#{route}#body#{}", stage.prefix(), hex::encode(digest))
        }
    }
}

/// One claim's outcome for the caller.
#[derive(Debug, Clone)]
pub enum DeliveryClaim {
    /// Deliver, then [`Dedupe::finish`] or [`Dedupe::abandon`] it.
    Held {
        key: String,
        owner: String,
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
    /// While the store is failing (three calls in a row), deliveries go unguarded at once
    /// instead of each waiting for it: the failures so far, and until when it is left alone.
    down: Arc<Mutex<(u32, Option<Instant>)>>,
}

/// How long a failing store is left alone before it is tried again, and after how many
/// failed calls in a row.
const DOWN_PAUSE: Duration = Duration::from_secs(10);
const FAILURES_BEFORE_PAUSE: u32 = 3;
/// How many claims of one batch are made at the same time.
const CONCURRENT_CLAIMS: usize = 16;

impl Dedupe {
    pub fn new(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            store,
            down: Arc::new(Mutex::new((0, None))),
        }
    }

    /// Gets the store ready for the first claim (see [`IdempotencyStore::prepare`]).
    pub async fn prepare(&self) {
        self.store.prepare().await;
    }

    fn store_down(&self) -> bool {
        let now = Instant::now();
        self.down
            .lock()
            .map(|down| down.1.is_some_and(|until| until > now))
            .unwrap_or(false)
    }

    fn answered(&self, ok: bool) {
        if let Ok(mut down) = self.down.lock() {
            if ok {
                *down = (0, None);
            } else {
                down.0 += 1;
                if down.0 >= FAILURES_BEFORE_PAUSE {
                    *down = (0, Some(Instant::now() + DOWN_PAUSE));
                }
            }
        }
    }

    /// Claims many deliveries (a queue batch), a few at a time; in the order given.
    pub async fn claim_all(
        &self,
        keys: Vec<(String, Option<Duration>)>,
        deadline: Instant,
    ) -> Vec<DeliveryClaim> {
        let mut claims = Vec::with_capacity(keys.len());
        let mut keys = keys.into_iter().peekable();
        while keys.peek().is_some() {
            let mut running = tokio::task::JoinSet::new();
            for (index, (key, window)) in keys.by_ref().take(CONCURRENT_CLAIMS).enumerate() {
                let dedupe = self.clone();
                running.spawn(async move { (index, dedupe.claim(key, window, deadline).await) });
            }
            let mut done: Vec<(usize, DeliveryClaim)> = Vec::with_capacity(CONCURRENT_CLAIMS);
            while let Some(joined) = running.join_next().await {
                match joined {
                    Ok(claimed) => done.push(claimed),
                    // A claim task cannot panic short of a bug; its delivery goes unguarded.
                    Err(_) => done.push((usize::MAX, DeliveryClaim::Unguarded)),
                }
            }
            done.sort_by_key(|(index, _)| *index);
            claims.extend(done.into_iter().map(|(_, claim)| claim));
        }
        claims
    }

    /// Finishes the first claims with their answers and gives the others up, a few at a time.
    pub async fn settle_all(
        &self,
        finish: Vec<(DeliveryClaim, Value)>,
        abandon: Vec<DeliveryClaim>,
    ) {
        let mut work = finish
            .into_iter()
            .map(|(claim, answer)| (claim, Some(answer)))
            .chain(abandon.into_iter().map(|claim| (claim, None)))
            .peekable();
        while work.peek().is_some() {
            let mut running = tokio::task::JoinSet::new();
            for (claim, answer) in work.by_ref().take(CONCURRENT_CLAIMS) {
                let dedupe = self.clone();
                running.spawn(async move {
                    match answer {
                        Some(answer) => dedupe.finish(&claim, &answer).await,
                        None => dedupe.abandon(&claim).await,
                    }
                });
            }
            while running.join_next().await.is_some() {}
        }
    }

    /// Claims the delivery under `key` until `deadline` (plus a margin). `window` is how long
    /// a done delivery is remembered; `None` turns deduplication off. A copy of a delivery in
    /// progress waits a little (up to [`MAX_WAIT`], half the time left at most) for the first
    /// answer before it is told to come back.
    pub async fn claim(
        &self,
        key: String,
        window: Option<Duration>,
        deadline: Instant,
    ) -> DeliveryClaim {
        let Some(window) = window else {
            return DeliveryClaim::Unguarded;
        };
        if self.store_down() {
            return DeliveryClaim::Unguarded;
        }
        let owner = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let now = Instant::now();
        let lease = deadline.saturating_duration_since(now) + LEASE_MARGIN;
        let wait_until = now + (deadline.saturating_duration_since(now) / 2).min(MAX_WAIT);
        loop {
            let begun = tokio::time::timeout(STORE_TIMEOUT, self.store.begin(&key, &owner, lease))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())));
            self.answered(begun.is_ok());
            match begun {
                Ok(Begun::Started) => return DeliveryClaim::Held { key, owner, window },
                Ok(Begun::Done(answer)) => return DeliveryClaim::Duplicate(answer),
                Ok(Begun::InProgress { retry_after }) => {
                    if Instant::now() + POLL_INTERVAL < wait_until {
                        tokio::time::sleep(POLL_INTERVAL).await;
                        continue;
                    }
                    return DeliveryClaim::InProgress {
                        retry_after: retry_after.max(Duration::from_secs(1)),
                    };
                }
                Err(error) => {
                    // Never a lost contact for a missing guard: deliver, and say so.
                    tracing::warn!(error = %error, "Idempotency store unavailable; delivering without deduplication.");
                    crate::metrics::emit(crate::metrics::dedupe_unavailable());
                    return DeliveryClaim::Unguarded;
                }
            }
        }
    }

    /// Keeps the answer of a held claim for its window. Best effort, and bounded: a failure
    /// only means a later duplicate is delivered again.
    pub async fn finish(&self, claim: &DeliveryClaim, answer: &Value) {
        if let DeliveryClaim::Held { key, owner, window } = claim {
            let kept = tokio::time::timeout(
                STORE_TIMEOUT,
                self.store.finish(key, owner, answer, *window),
            )
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())));
            if let Err(error) = kept {
                tracing::warn!(error = %error, "Delivery answer not kept; a duplicate would be delivered again.");
            }
        }
    }

    /// Gives a held claim up after a failed delivery, so the sender's retry is processed.
    /// Should this fail too, the claim lapses at the end of its lease.
    pub async fn abandon(&self, claim: &DeliveryClaim) {
        if let DeliveryClaim::Held { key, owner, .. } = claim {
            let given_up = tokio::time::timeout(STORE_TIMEOUT, self.store.abandon(key, owner))
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("timed out".into())));
            if let Err(error) = given_up {
                tracing::warn!(error = %error, "Claim not given up; a retry waits for its lease to end.");
            }
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

    #[tokio::test]
    async fn the_memory_store_stays_bounded() {
        let store = MemoryIdempotencyStore::new();
        let window = Duration::from_secs(3600);
        for n in 0..(2 * MEMORY_CLAIMS) {
            let key = format!("k{n}");
            assert_eq!(
                store.begin(&key, "me", Duration::from_secs(30)).await,
                Ok(Begun::Started)
            );
            store
                .finish(&key, "me", &Value::Null, window)
                .await
                .unwrap();
        }
        let held = store.entries.lock().unwrap().len();
        assert!(held <= MEMORY_CLAIMS, "{held}");
        // The latest claims are still there.
        let last = format!("k{}", 2 * MEMORY_CLAIMS - 1);
        assert_eq!(
            store.begin(&last, "me", Duration::from_secs(30)).await,
            Ok(Begun::Done(Value::Null))
        );
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
