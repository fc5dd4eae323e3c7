//! Batch delivery: many contacts from one request. Duplicates are merged per email; fewer
//! than 10 contacts go through `contact_sync`, more through the Bulk Contact Importer in
//! chunks of at most 250 contacts and about 350 KB.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::callback::{CallbackTarget, import_callback};
use super::{DeliveryError, DeliveryOutcome, ImportRecord, InlineDelivery};
use crate::activecampaign::importer::{
    BulkContact, ImportAnswer, MIN_BULK_CONTACTS, chunk_sized, json_size, to_bulk_contact,
};
use crate::activecampaign::{AcError, Account, ContactSync};
use crate::secret::{AppSecret, before_deadline};

/// One import the importer queued.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedBatch {
    pub batch_id: String,
    pub queued_contacts: usize,
    /// The callback reference this import reports under, when a callback was requested.
    pub reference: Option<String>,
}

/// A contact that can never be synced as sent, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedContact {
    pub email: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchDelivered {
    /// Contacts synced one by one through `contact_sync`.
    pub synced: usize,
    pub imports: Vec<ImportedBatch>,
    pub rejected: Vec<RejectedContact>,
}

/// How a batch's contacts go to ActiveCampaign. One rule, used by delivery and by the
/// preview: duplicates merged by email; fewer than [`MIN_BULK_CONTACTS`] contacts, and any
/// contact the importer cannot carry (a personalization tag, responder options, a subscription
/// date or form, an opt-in that may re-subscribe), go through `contact_sync`; the others
/// through the importer in balanced chunks, and a chunk that would still hold fewer than
/// [`MIN_BULK_CONTACTS`] goes through `contact_sync` too.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchPlan {
    pub one_by_one: Vec<ContactSync>,
    pub imports: Vec<Vec<BulkContact>>,
    /// The merged contacts by email, for what an import's record keeps.
    pub originals: HashMap<String, ContactSync>,
}

pub fn plan_batch(contacts: Vec<ContactSync>, exclude_automations: bool) -> BatchPlan {
    let contacts = merge_by_email(contacts);
    let mut plan = BatchPlan::default();
    if contacts.len() < MIN_BULK_CONTACTS {
        plan.one_by_one = contacts;
        return plan;
    }
    let mut bulk = Vec::with_capacity(contacts.len());
    for contact in contacts {
        match to_bulk_contact(&contact, exclude_automations) {
            Ok(converted) => {
                bulk.push(converted);
                plan.originals.insert(contact.email.clone(), contact);
            }
            Err(why) => {
                tracing::debug!(why, "Contact goes through contact_sync, not the importer.");
                plan.one_by_one.push(contact);
            }
        }
    }
    // Each chunk must fit the importer's request and its record (the merged contacts, kept
    // to retry a failed import) DynamoDB's 400 KB item: sized by the larger of the two.
    let sizes = bulk
        .iter()
        .map(|c| {
            let record = plan.originals.get(&c.email).map_or(0, json_size);
            json_size(c).max(record)
        })
        .collect();
    for part in chunk_sized(bulk, sizes) {
        if part.len() < MIN_BULK_CONTACTS {
            plan.one_by_one
                .extend(part.iter().filter_map(|c| plan.originals.remove(&c.email)));
        } else {
            plan.imports.push(part);
        }
    }
    plan
}

/// Merges contacts that share an email, keeping first-seen order.
pub fn merge_by_email(contacts: Vec<ContactSync>) -> Vec<ContactSync> {
    let mut order: Vec<ContactSync> = Vec::with_capacity(contacts.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(contacts.len());
    for contact in contacts {
        match index.get(&contact.email) {
            Some(&i) => order[i].merge(contact),
            None => {
                index.insert(contact.email.clone(), order.len());
                order.push(contact);
            }
        }
    }
    order
}

/// Where a batch's imports come from and how they are made.
#[derive(Clone, Copy)]
pub struct ImportOptions<'a> {
    /// The route the imports report under in their callback.
    pub route: &'a str,
    pub callback: Option<&'a CallbackTarget>,
    pub exclude_automations: bool,
    /// How many failed imports these contacts were requeued from (0 for a first import).
    pub generation: u32,
    /// Refuse the batch up front ([`DeliveryError::TooSlow`]) when it cannot be finished
    /// before the deadline at ActiveCampaign's pace, rather than import part of it and fail.
    pub must_finish: bool,
}

/// What one ActiveCampaign request is allowed for its answer, beyond the pacer's spacing,
/// when judging whether a batch can finish in time.
const ANSWER_ALLOWANCE: Duration = Duration::from_millis(300);

impl InlineDelivery {
    /// About how long `plan` takes at this client's pace: imports one per interval (100 a
    /// minute), contacts one per interval (5 a second, twice for those whose list statuses
    /// are read first), each with room for its answer.
    pub fn batch_duration(&self, plan: &BatchPlan) -> Duration {
        let settings = self.client().settings();
        let step = |per_second: f64| {
            Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE)).max(ANSWER_ALLOWANCE)
        };
        let calls: u32 = plan
            .one_by_one
            .iter()
            .map(|c| {
                let guarded = c.lists.iter().any(|l| {
                    l.status == crate::activecampaign::contact_sync::ListStatus::Active
                        && !l.may_resubscribe
                });
                1 + u32::from(guarded)
            })
            .sum();
        step(settings.imports_per_second).saturating_mul(plan.imports.len() as u32)
            + step(settings.requests_per_second).saturating_mul(calls)
    }
}

impl InlineDelivery {
    /// Delivers many contacts. Any contact that could still be synced but was not makes the
    /// whole call fail (the sender retries the batch; syncing is idempotent by email).
    pub async fn deliver_batch(
        &self,
        contacts: Vec<ContactSync>,
        secret: Arc<AppSecret>,
        options: ImportOptions<'_>,
        deadline: Instant,
    ) -> Result<BatchDelivered, DeliveryError> {
        let ImportOptions {
            route,
            callback,
            exclude_automations,
            generation,
            must_finish,
        } = options;
        let plan = plan_batch(contacts, exclude_automations);
        let needed = self.batch_duration(&plan);
        let budget = deadline.saturating_duration_since(Instant::now());
        if must_finish && needed > budget {
            return Err(DeliveryError::TooSlow {
                needed,
                budget,
                imports: plan.imports.len(),
                contacts: plan.one_by_one.len(),
            });
        }
        let BatchPlan {
            one_by_one,
            imports,
            originals: by_email,
        } = plan;
        let mut result = BatchDelivered::default();
        for contact in &one_by_one {
            self.one_by_one(contact, &secret, deadline, &mut result)
                .await?;
        }
        let mut secret = secret;
        let mut refreshed = false;
        let mut pending: VecDeque<Vec<BulkContact>> = imports.into();
        while let Some(part) = pending.pop_front() {
            // Only a split after a refused validation makes a part this small.
            if part.len() < MIN_BULK_CONTACTS {
                for contact in &part {
                    if let Some(original) = by_email.get(&contact.email) {
                        self.one_by_one(original, &secret, deadline, &mut result)
                            .await?;
                    }
                }
                continue;
            }
            let account = Account {
                api_url: &secret.api_url,
                api_key: &secret.api_key,
            };
            let import_callback = callback.map(|t| import_callback(&t.url, &t.secret, route));
            let answer = self
                .client()
                .bulk_import(
                    account,
                    &part,
                    import_callback.as_ref(),
                    exclude_automations,
                    deadline,
                )
                .await;
            match answer {
                Ok(ImportAnswer::Queued {
                    batch_id,
                    queued_contacts,
                }) => {
                    tracing::info!(batch_id = %batch_id, contacts = part.len(), "Bulk import queued.");
                    let reference = import_callback.as_ref().and_then(|c| {
                        c.params
                            .iter()
                            .find(|p| p.key == crate::delivery::callback::CALLBACK_REF_PARAM)
                            .map(|p| p.value.clone())
                    });
                    if let (Some(store), Some(reference)) = (self.imports(), &reference) {
                        let record = ImportRecord {
                            reference: reference.clone(),
                            batch_id: batch_id.clone(),
                            route: route.to_string(),
                            contacts: part
                                .iter()
                                .filter_map(|c| by_email.get(&c.email).cloned())
                                .collect(),
                            status: super::import_store::SUBMITTED.to_string(),
                            generation,
                            exclude_automations,
                            requeued_upto: 0,
                        };
                        // The importer has the contacts either way; without a record, a
                        // failed import cannot be retried automatically, so say so loudly.
                        if let Err(error) = store.record(&record).await {
                            tracing::error!(batch_id = %batch_id, error = %error, "Import not recorded; its callback will not find it.");
                        }
                    }
                    result.imports.push(ImportedBatch {
                        batch_id,
                        queued_contacts: queued_contacts.max(part.len()),
                        reference,
                    });
                }
                Ok(ImportAnswer::Invalid { failures, message }) => {
                    tracing::warn!(contacts = part.len(), failures = failures.len(), message = %message, "Bulk import refused by validation.");
                    // The index base is undocumented: both candidates get a verdict of their own.
                    let mut suspects: Vec<usize> = failures
                        .iter()
                        .filter_map(|f| f.index)
                        .flat_map(|i| [Some(i), i.checked_sub(1)])
                        .flatten()
                        .filter(|&i| i < part.len())
                        .collect();
                    suspects.sort_unstable();
                    suspects.dedup();
                    if suspects.is_empty() || suspects.len() == part.len() {
                        let mut left = part;
                        let right = left.split_off(left.len() / 2);
                        pending.push_front(right);
                        pending.push_front(left);
                        continue;
                    }
                    let mut rest = Vec::with_capacity(part.len());
                    for (i, contact) in part.into_iter().enumerate() {
                        if suspects.binary_search(&i).is_ok() {
                            if let Some(original) = by_email.get(&contact.email) {
                                self.one_by_one(original, &secret, deadline, &mut result)
                                    .await?;
                            }
                        } else {
                            rest.push(contact);
                        }
                    }
                    pending.push_front(rest);
                }
                Err(AcError::Unauthorized { status }) if !refreshed => {
                    refreshed = true;
                    let fresh = before_deadline(deadline, self.secrets().refresh(&secret)).await?;
                    if fresh.same_account(&secret) {
                        return Err(AcError::Unauthorized { status }.into());
                    }
                    secret = fresh;
                    pending.push_front(part);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(result)
    }

    async fn one_by_one(
        &self,
        contact: &ContactSync,
        secret: &Arc<AppSecret>,
        deadline: Instant,
        result: &mut BatchDelivered,
    ) -> Result<(), DeliveryError> {
        match self.deliver(contact, secret.clone(), deadline).await? {
            DeliveryOutcome::Synced { .. } | DeliveryOutcome::Queued { .. } => result.synced += 1,
            DeliveryOutcome::Rejected { reason } => result.rejected.push(RejectedContact {
                email: contact.email.clone(),
                reason,
            }),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_and_its_record_fit_their_limits() {
        use crate::activecampaign::contact_sync::{
            FieldKey, FieldValue, ListMembership, ListStatus,
        };
        // 250 contacts with a 1,200-character field and three lists: one request by the
        // importer's measure, but their record (nulls, list options) would pass 400 KB.
        let contacts: Vec<ContactSync> = (0..250)
            .map(|i| ContactSync {
                email: format!("p{i}@example.com"),
                first_name: Some("First".into()),
                fields: vec![FieldValue {
                    key: FieldKey::Id(1),
                    value: "x".repeat(1_200),
                }],
                lists: (1..=3)
                    .map(|id| ListMembership {
                        list_id: id,
                        status: ListStatus::Unsubscribed,
                        instant_responders: None,
                        no_responders: None,
                        last_message: None,
                        sdate: None,
                        may_resubscribe: false,
                    })
                    .collect(),
                ..ContactSync::default()
            })
            .collect();
        let plan = plan_batch(contacts, false);
        assert!(plan.imports.len() >= 2, "{} imports", plan.imports.len());
        for part in &plan.imports {
            let record: Vec<&ContactSync> =
                part.iter().map(|c| &plan.originals[&c.email]).collect();
            let bytes = serde_json::to_vec(&record).unwrap().len();
            assert!(
                bytes < crate::activecampaign::importer::MAX_IMPORT_BYTES,
                "{bytes}"
            );
        }
    }

    #[test]
    fn duplicates_merge_in_order() {
        let c = |email: &str, name: &str| ContactSync {
            email: email.into(),
            first_name: Some(name.into()),
            ..ContactSync::default()
        };
        let merged = merge_by_email(vec![c("a@x.co", "A"), c("b@x.co", "B"), c("a@x.co", "Ada")]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].first_name.as_deref(), Some("Ada"));
        assert_eq!(merged[1].email, "b@x.co");
    }
}
