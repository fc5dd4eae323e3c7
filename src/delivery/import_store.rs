//! The import store, as the core sees it: one record per bulk import, keyed by the callback
//! reference (which batch, from which route, with which contacts, to retry a failed import,
//! and whether its outcome has been recorded), and each batch's first answer. The first
//! terminal callback wins; repeats change nothing. DynamoDB in a deployment
//! ([`crate::aws::dynamodb::ImportTable`]), [`MemoryImportStore`] in tests and local runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::activecampaign::ContactSync;

/// The status of a record whose outcome is not yet recorded.
pub const SUBMITTED: &str = "submitted";
/// How long a batch's repeat is recognised.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Seconds since the epoch: the store's clock (DynamoDB TTL counts in them).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is malformed: {0}")]
    Malformed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportRecord {
    pub reference: String,
    pub batch_id: String,
    pub route: String,
    pub contacts: Vec<ContactSync>,
    pub status: String,
    /// How many failed imports these contacts have been requeued from already (0 for a
    /// first import): the callback dead-letters them instead once this reaches its limit.
    pub generation: u32,
    /// The import's `exclude_automations`, which requeued contacts keep.
    pub exclude_automations: bool,
    /// The contacts before this position are already sent back (a requeue that stopped
    /// part-way): the next settler sends only the rest.
    pub requeued_upto: usize,
}

/// Who may settle a record now (see [`ImportStore::claim`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// This settler has it until the lease ends; the record as it is now.
    Claimed(ImportRecord),
    /// Another settler has it for this many more seconds.
    Busy { for_secs: u64 },
    /// Its outcome is already recorded (or the record is gone).
    Settled,
}

/// Where bulk imports are recorded for their callback, and batch answers for a repeat.
#[async_trait::async_trait]
pub trait ImportStore: Send + Sync {
    /// Records a submitted import.
    async fn record(&self, record: &ImportRecord) -> Result<(), StoreError>;

    async fn get(&self, reference: &str) -> Result<Option<ImportRecord>, StoreError>;

    /// Keeps a batch's first answer under the digest of its route and body, for
    /// [`REPEAT_WINDOW`]: a poster that retries the same body gets that answer, and nothing
    /// is imported twice.
    async fn remember_answer(
        &self,
        digest: &str,
        answer: &serde_json::Value,
    ) -> Result<(), StoreError>;

    /// The first answer to a batch with this digest, if it came within the repeat window.
    async fn recall_answer(&self, digest: &str) -> Result<Option<serde_json::Value>, StoreError>;

    /// Records still open (not settled by a callback) that were submitted at least `min_age`
    /// ago, with when they were submitted (seconds since the epoch), oldest first; at most
    /// `limit` of them.
    async fn open_records(
        &self,
        min_age: Duration,
        limit: usize,
    ) -> Result<Vec<(ImportRecord, u64)>, StoreError>;

    /// Takes the record for one settler for `lease` (a failed import's requeue runs for
    /// seconds: two settlers at once would send its contacts back twice).
    async fn claim(&self, reference: &str, lease: Duration) -> Result<Claim, StoreError>;

    /// Keeps how far a requeue got (while the record is open), so the next settler sends
    /// only the rest, and gives up the claim so it can start at once.
    async fn requeue_progress(&self, reference: &str, upto: usize) -> Result<(), StoreError>;

    /// Records the final outcome once. Returns `false` when it was already recorded.
    async fn finish(
        &self,
        reference: &str,
        status: &str,
        succeeded: usize,
        failed: usize,
    ) -> Result<bool, StoreError>;
}

struct MemoryEntry {
    record: ImportRecord,
    submitted_at: u64,
    settling_until: Option<u64>,
}

/// An import store in memory, with the same rules as the table: one settler at a time, the
/// first outcome wins, answers expire after the repeat window.
#[derive(Default)]
pub struct MemoryImportStore {
    records: Mutex<HashMap<String, MemoryEntry>>,
    answers: Mutex<HashMap<String, (serde_json::Value, u64)>>,
}

impl MemoryImportStore {
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("memory store poisoned".into())
}

#[async_trait::async_trait]
impl ImportStore for MemoryImportStore {
    async fn record(&self, record: &ImportRecord) -> Result<(), StoreError> {
        let mut record = record.clone();
        record.status = SUBMITTED.to_string();
        let entry = MemoryEntry {
            record,
            submitted_at: now_secs(),
            settling_until: None,
        };
        self.records
            .lock()
            .map_err(poisoned)?
            .insert(entry.record.reference.clone(), entry);
        Ok(())
    }

    async fn get(&self, reference: &str) -> Result<Option<ImportRecord>, StoreError> {
        let records = self.records.lock().map_err(poisoned)?;
        Ok(records.get(reference).map(|e| e.record.clone()))
    }

    async fn remember_answer(
        &self,
        digest: &str,
        answer: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let expires = now_secs() + REPEAT_WINDOW.as_secs();
        self.answers
            .lock()
            .map_err(poisoned)?
            .insert(digest.to_string(), (answer.clone(), expires));
        Ok(())
    }

    async fn recall_answer(&self, digest: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let answers = self.answers.lock().map_err(poisoned)?;
        Ok(answers
            .get(digest)
            .filter(|(_, expires)| *expires > now_secs())
            .map(|(answer, _)| answer.clone()))
    }

    async fn open_records(
        &self,
        min_age: Duration,
        limit: usize,
    ) -> Result<Vec<(ImportRecord, u64)>, StoreError> {
        let cutoff = now_secs().saturating_sub(min_age.as_secs());
        let records = self.records.lock().map_err(poisoned)?;
        let mut open: Vec<(ImportRecord, u64)> = records
            .values()
            .filter(|e| e.record.status == SUBMITTED && e.submitted_at <= cutoff)
            .map(|e| (e.record.clone(), e.submitted_at))
            .collect();
        open.sort_by_key(|(_, submitted)| *submitted);
        open.truncate(limit);
        Ok(open)
    }

    async fn claim(&self, reference: &str, lease: Duration) -> Result<Claim, StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        let Some(entry) = records.get_mut(reference) else {
            return Ok(Claim::Settled);
        };
        if entry.record.status != SUBMITTED {
            return Ok(Claim::Settled);
        }
        let now = now_secs();
        match entry.settling_until {
            Some(until) if until > now => Ok(Claim::Busy {
                for_secs: until - now,
            }),
            _ => {
                entry.settling_until = Some(now + lease.as_secs().max(1));
                Ok(Claim::Claimed(entry.record.clone()))
            }
        }
    }

    async fn requeue_progress(&self, reference: &str, upto: usize) -> Result<(), StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        if let Some(entry) = records.get_mut(reference)
            && entry.record.status == SUBMITTED
        {
            entry.record.requeued_upto = upto;
            entry.settling_until = None;
        }
        Ok(())
    }

    async fn finish(
        &self,
        reference: &str,
        status: &str,
        _succeeded: usize,
        _failed: usize,
    ) -> Result<bool, StoreError> {
        let mut records = self.records.lock().map_err(poisoned)?;
        match records.get_mut(reference) {
            Some(entry) if entry.record.status == SUBMITTED => {
                entry.record.status = status.to_string();
                entry.settling_until = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
