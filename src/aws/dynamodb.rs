//! The import store of a deployment: a DynamoDB table with one item per bulk import (keyed
//! by the callback reference) and one per batch answer, expired by TTL; every change of state
//! a conditional write.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::aws::LazyClient;
use crate::delivery::idempotency::{Begun, IdempotencyStore};
use crate::delivery::import_store::{
    Claim, ImportRecord, ImportStore, REPEAT_WINDOW, SUBMITTED, StoreError, now_secs,
};

/// Records expire (DynamoDB TTL) after this long.
const RECORD_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

const KEY: &str = "ref";
const BATCH_ID: &str = "batch_id";
const ROUTE: &str = "route";
const CONTACTS: &str = "contacts";
const COUNT: &str = "count";
const STATUS: &str = "status";
const SUBMITTED_AT: &str = "submitted_at";
const FINISHED_AT: &str = "finished_at";
const SUCCEEDED: &str = "succeeded";
const FAILED: &str = "failed";
const EXPIRES_AT: &str = "expires_at";
const GENERATION: &str = "generation";
const ANSWER: &str = "answer";
const EXCLUDE_AUTOMATIONS: &str = "exclude_automations";
/// How many of a failed import's contacts (by position) are already sent back.
const REQUEUED_UPTO: &str = "requeued_upto";
/// Until when (seconds since the epoch) one settler has the record to itself.
const SETTLING_UNTIL: &str = "settling_until";
/// The status of a batch-answer item (never reconciled: it is no import).
const ANSWERED: &str = "answered";
/// Set (to [`OPEN_VALUE`]) while an import is submitted and unsettled, removed when it is
/// settled: the partition key of the sparse index [`OPEN_INDEX`], which therefore holds only
/// the open imports. The reconciler queries it instead of scanning the table, whose records
/// keep their contacts for 30 days (at 10 million webhooks a month a Scan every 5 minutes
/// would read about 3 GB each time).
const OPEN: &str = "open";
const OPEN_VALUE: &str = "open";
/// The sparse index of open imports (keys only), sorted by `submitted_at`; the template's
/// `ImportsTable` defines it.
pub const OPEN_INDEX: &str = "open-imports";

/// A conditional write's output, `None` when its condition did not hold. A macro: each write
/// operation has its own error type.
macro_rules! if_condition_held {
    ($result:expr) => {
        match $result {
            Ok(output) => Ok(Some(output)),
            Err(error) => {
                let service = error.into_service_error();
                if service.is_conditional_check_failed_exception() {
                    Ok(None)
                } else {
                    Err(unavailable(service))
                }
            }
        }
    };
}

fn answer_key(digest: &str) -> String {
    format!("batch-body#{digest}")
}

#[derive(Debug, Clone)]
pub struct ImportTable {
    client: LazyClient<aws_sdk_dynamodb::Client>,
    table: String,
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string())
}

impl ImportTable {
    pub fn new(
        client: impl Into<LazyClient<aws_sdk_dynamodb::Client>>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    /// One item, read consistently.
    async fn item(&self, key: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get()
            .await
            .get_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.item)
    }
}

#[async_trait::async_trait]
impl ImportStore for ImportTable {
    /// Records a submitted import.
    async fn record(&self, record: &ImportRecord) -> Result<(), StoreError> {
        let contacts = serde_json::to_string(&record.contacts)
            .map_err(|e| StoreError::Malformed(e.to_string()))?;
        let now = now_secs();
        self.client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(record.reference.clone()))
            .item(BATCH_ID, AttributeValue::S(record.batch_id.clone()))
            .item(ROUTE, AttributeValue::S(record.route.clone()))
            .item(CONTACTS, AttributeValue::S(contacts))
            .item(COUNT, AttributeValue::N(record.contacts.len().to_string()))
            .item(STATUS, AttributeValue::S(SUBMITTED.to_string()))
            .item(GENERATION, AttributeValue::N(record.generation.to_string()))
            .item(
                EXCLUDE_AUTOMATIONS,
                AttributeValue::Bool(record.exclude_automations),
            )
            .item(SUBMITTED_AT, AttributeValue::N(now.to_string()))
            .item(OPEN, AttributeValue::S(OPEN_VALUE.to_string()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((now + RECORD_LIFETIME.as_secs()).to_string()),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, reference: &str) -> Result<Option<ImportRecord>, StoreError> {
        self.item(reference)
            .await?
            .map(|item| parse(reference, &item))
            .transpose()
    }

    /// Keeps a batch's first answer under the digest of its route and body, for a day: a
    /// poster that retries the same body gets that answer, and nothing is imported twice.
    async fn remember_answer(
        &self,
        digest: &str,
        answer: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        self.client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .item(KEY, AttributeValue::S(answer_key(digest)))
            .item(ANSWER, AttributeValue::S(answer.to_string()))
            .item(STATUS, AttributeValue::S(ANSWERED.to_string()))
            .item(SUBMITTED_AT, AttributeValue::N(now.to_string()))
            .item(
                EXPIRES_AT,
                AttributeValue::N((now + REPEAT_WINDOW.as_secs()).to_string()),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The first answer to a batch with this digest, if it came within the repeat window.
    async fn recall_answer(&self, digest: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let Some(item) = self.item(&answer_key(digest)).await? else {
            return Ok(None);
        };
        // DynamoDB deletes expired items lazily: the window is checked here.
        let expires = number(&item, EXPIRES_AT).unwrap_or(0);
        if expires <= now_secs() {
            return Ok(None);
        }
        Ok(item
            .get(ANSWER)
            .and_then(|v| v.as_s().ok())
            .and_then(|text| serde_json::from_str(text).ok()))
    }

    /// Records still open (not settled by a callback) that were submitted at least `min_age`
    /// ago, with when they were submitted (seconds since the epoch), oldest first; at most
    /// `limit` of them.
    async fn open_records(
        &self,
        min_age: Duration,
        limit: usize,
    ) -> Result<Vec<(ImportRecord, u64)>, StoreError> {
        let cutoff = now_secs().saturating_sub(min_age.as_secs());
        let client = self.client.get().await;
        let mut found = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            // Oldest first; the index is eventually consistent, so each record is read again.
            let output = client
                .query()
                .table_name(&self.table)
                .index_name(OPEN_INDEX)
                .key_condition_expression("#open = :open AND #submitted <= :cutoff")
                .expression_attribute_names("#open", OPEN)
                .expression_attribute_names("#submitted", SUBMITTED_AT)
                .expression_attribute_values(":open", AttributeValue::S(OPEN_VALUE.to_string()))
                .expression_attribute_values(":cutoff", AttributeValue::N(cutoff.to_string()))
                .scan_index_forward(true)
                .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            for key in output.items() {
                let Some(reference) = key.get(KEY).and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let Some(item) = self.item(reference).await? else {
                    continue;
                };
                if item
                    .get(STATUS)
                    .and_then(|v| v.as_s().ok())
                    .map(String::as_str)
                    != Some(SUBMITTED)
                {
                    continue;
                }
                let submitted = number(&item, SUBMITTED_AT).unwrap_or(0);
                found.push((parse(reference, &item)?, submitted));
            }
            match output.last_evaluated_key() {
                Some(key) if found.len() < limit => start = Some(key.clone()),
                _ => break,
            }
        }
        found.sort_by_key(|(_, submitted)| *submitted);
        found.truncate(limit);
        Ok(found)
    }

    /// Takes the record for one settler for `lease` (a failed import's requeue runs for
    /// seconds: two settlers at once would send its contacts back twice).
    async fn claim(&self, reference: &str, lease: Duration) -> Result<Claim, StoreError> {
        // Twice: a settler that gives its claim up between the refused write and the read
        // leaves the record open and free, and this settler takes it.
        for _ in 0..2 {
            let now = now_secs();
            let result = self
                .client
                .get()
                .await
                .update_item()
                .table_name(&self.table)
                .key(KEY, AttributeValue::S(reference.to_string()))
                .update_expression("SET #until = :until")
                .condition_expression(
                    "#status = :submitted AND (attribute_not_exists(#until) OR #until <= :now)",
                )
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#until", SETTLING_UNTIL)
                .expression_attribute_values(
                    ":until",
                    AttributeValue::N((now + lease.as_secs().max(1)).to_string()),
                )
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .expression_attribute_values(":submitted", AttributeValue::S(SUBMITTED.to_string()))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                .send()
                .await;
            if let Some(output) = if_condition_held!(result)? {
                return match output.attributes() {
                    Some(item) => parse(reference, item).map(Claim::Claimed),
                    None => Err(StoreError::Malformed("claim returned no record".into())),
                };
            }
            let Some(item) = self.item(reference).await? else {
                return Ok(Claim::Settled);
            };
            let status = item.get(STATUS).and_then(|v| v.as_s().ok());
            if status.map(String::as_str) != Some(SUBMITTED) {
                return Ok(Claim::Settled);
            }
            let left =
                number(&item, SETTLING_UNTIL).map_or(0, |until| until.saturating_sub(now_secs()));
            if left > 0 {
                return Ok(Claim::Busy { for_secs: left });
            }
        }
        // Open and free, yet taken from under this settler twice: let the caller come back.
        Ok(Claim::Busy { for_secs: 1 })
    }

    /// Keeps how far a requeue got (while the record is open), so the next settler sends
    /// only the rest, and gives up the claim so it can start at once.
    async fn requeue_progress(&self, reference: &str, upto: usize) -> Result<(), StoreError> {
        let result = self
            .client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(reference.to_string()))
            .update_expression("SET #upto = :upto REMOVE #until")
            .condition_expression("#status = :submitted")
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#upto", REQUEUED_UPTO)
            .expression_attribute_names("#until", SETTLING_UNTIL)
            .expression_attribute_values(":upto", AttributeValue::N(upto.to_string()))
            .expression_attribute_values(":submitted", AttributeValue::S(SUBMITTED.to_string()))
            .send()
            .await;
        // Settled meanwhile: nothing is left to send.
        if_condition_held!(result).map(|_| ())
    }

    /// Records the final outcome once. Returns `false` when it was already recorded.
    async fn finish(
        &self,
        reference: &str,
        status: &str,
        succeeded: usize,
        failed: usize,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .get()
            .await
            .update_item()
            .table_name(&self.table)
            .key(KEY, AttributeValue::S(reference.to_string()))
            // Settled: out of the open-imports index.
            .update_expression(
                "SET #status = :status, #finished = :now, #ok = :ok, #failed = :failed REMOVE #open",
            )
            .condition_expression("#status = :submitted")
            .expression_attribute_names("#open", OPEN)
            .expression_attribute_names("#status", STATUS)
            .expression_attribute_names("#finished", FINISHED_AT)
            .expression_attribute_names("#ok", SUCCEEDED)
            .expression_attribute_names("#failed", FAILED)
            .expression_attribute_values(":status", AttributeValue::S(status.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now_secs().to_string()))
            .expression_attribute_values(":ok", AttributeValue::N(succeeded.to_string()))
            .expression_attribute_values(":failed", AttributeValue::N(failed.to_string()))
            .expression_attribute_values(":submitted", AttributeValue::S(SUBMITTED.to_string()))
            .send()
            .await;
        if_condition_held!(result).map(|held| held.is_some())
    }
}

fn parse(
    reference: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<ImportRecord, StoreError> {
    let text = |key: &str| -> Result<String, StoreError> {
        item.get(key)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or_else(|| StoreError::Malformed(format!("{key} is missing")))
    };
    let contacts =
        serde_json::from_str(&text(CONTACTS)?).map_err(|e| StoreError::Malformed(e.to_string()))?;
    Ok(ImportRecord {
        reference: reference.to_string(),
        batch_id: text(BATCH_ID)?,
        route: text(ROUTE)?,
        contacts,
        status: text(STATUS)?,
        // Records written before generations were kept count as first imports.
        generation: number(item, GENERATION).map_or(0, |n| n as u32),
        exclude_automations: item
            .get(EXCLUDE_AUTOMATIONS)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        requeued_upto: number(item, REQUEUED_UPTO).map_or(0, |n| n as usize),
    })
}

/// A number attribute.
fn number(item: &HashMap<String, AttributeValue>, key: &str) -> Option<u64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

const CLAIM_KEY: &str = "id";
const CLAIM_STATUS: &str = "status";
const CLAIM_UNTIL: &str = "until";
const CLAIM_ANSWER: &str = "answer";
const CLAIM_OWNER: &str = "owner";
const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";

/// The idempotency store of a deployment: one item per claimed delivery (`id`), `in_progress`
/// until its lease ends or `done` with its answer until its window ends; `expires_at` lets
/// DynamoDB's TTL delete it afterwards (lazily, so every read checks `until` itself).
#[derive(Debug, Clone)]
pub struct IdempotencyTable {
    client: LazyClient<aws_sdk_dynamodb::Client>,
    table: String,
}

impl IdempotencyTable {
    pub fn new(
        client: impl Into<LazyClient<aws_sdk_dynamodb::Client>>,
        table: impl Into<String>,
    ) -> Self {
        Self {
            client: client.into(),
            table: table.into(),
        }
    }

    /// The claim as it stands, read consistently.
    async fn current(&self, key: &str) -> Result<Option<Begun>, StoreError> {
        let output = self
            .client
            .get()
            .await
            .get_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, AttributeValue::S(key.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let now = now_secs();
        let until = number(&item, CLAIM_UNTIL).unwrap_or(0);
        if until <= now {
            return Ok(None);
        }
        let status = item.get(CLAIM_STATUS).and_then(|v| v.as_s().ok());
        Ok(Some(match status.map(String::as_str) {
            Some(DONE) => Begun::Done(
                item.get(CLAIM_ANSWER)
                    .and_then(|v| v.as_s().ok())
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or(serde_json::Value::Null),
            ),
            _ => Begun::InProgress {
                retry_after: Duration::from_secs(until - now),
            },
        }))
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for IdempotencyTable {
    async fn prepare(&self) {
        self.client.get().await;
    }

    async fn begin(&self, key: &str, owner: &str, lease: Duration) -> Result<Begun, StoreError> {
        // Twice: a claim that lapses between the refused write and the read is taken.
        for _ in 0..2 {
            let now = now_secs();
            let until = now + lease.as_secs().max(1);
            let result = self
                .client
                .get()
                .await
                .put_item()
                .table_name(&self.table)
                .item(CLAIM_KEY, AttributeValue::S(key.to_string()))
                .item(CLAIM_STATUS, AttributeValue::S(IN_PROGRESS.to_string()))
                .item(CLAIM_OWNER, AttributeValue::S(owner.to_string()))
                .item(CLAIM_UNTIL, AttributeValue::N(until.to_string()))
                .item(EXPIRES_AT, AttributeValue::N(until.to_string()))
                .condition_expression("attribute_not_exists(#id) OR #until <= :now")
                .expression_attribute_names("#id", CLAIM_KEY)
                .expression_attribute_names("#until", CLAIM_UNTIL)
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .send()
                .await;
            if if_condition_held!(result)?.is_some() {
                return Ok(Begun::Started);
            }
            if let Some(found) = self.current(key).await? {
                return Ok(found);
            }
        }
        Ok(Begun::InProgress {
            retry_after: Duration::from_secs(1),
        })
    }

    async fn finish(
        &self,
        key: &str,
        owner: &str,
        answer: &serde_json::Value,
        window: Duration,
    ) -> Result<(), StoreError> {
        let until = now_secs() + window.as_secs().max(1);
        let result = self
            .client
            .get()
            .await
            .put_item()
            .table_name(&self.table)
            .item(CLAIM_KEY, AttributeValue::S(key.to_string()))
            .item(CLAIM_STATUS, AttributeValue::S(DONE.to_string()))
            .item(CLAIM_ANSWER, AttributeValue::S(answer.to_string()))
            .item(CLAIM_UNTIL, AttributeValue::N(until.to_string()))
            .item(EXPIRES_AT, AttributeValue::N(until.to_string()))
            // Ours, or gone (its lease ran out and nobody took it): never another owner's.
            .condition_expression(
                "attribute_not_exists(#id) OR (#status = :in_progress AND #owner = :owner)",
            )
            .expression_attribute_names("#id", CLAIM_KEY)
            .expression_attribute_names("#status", CLAIM_STATUS)
            .expression_attribute_names("#owner", CLAIM_OWNER)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .send()
            .await;
        // Taken over meanwhile: the answer is the new owner's to keep.
        if_condition_held!(result).map(|_| ())
    }

    async fn abandon(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .get()
            .await
            .delete_item()
            .table_name(&self.table)
            .key(CLAIM_KEY, AttributeValue::S(key.to_string()))
            .condition_expression("#status = :in_progress AND #owner = :owner")
            .expression_attribute_names("#status", CLAIM_STATUS)
            .expression_attribute_names("#owner", CLAIM_OWNER)
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_string()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.to_string()))
            .send()
            .await;
        // Done meanwhile, taken over, or gone: nothing of ours to give up.
        if_condition_held!(result).map(|_| ())
    }
}
