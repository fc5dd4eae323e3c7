//! The sync-worker: drains queued contacts into ActiveCampaign. Contacts of one batch are
//! merged per email (one call per person), synced at ActiveCampaign's pace, and only the
//! messages that failed are reported for retry. Nothing leaves the queue unless it was synced
//! or is in the dead-letter queue with its reason: messages that cannot succeed (unreadable,
//! or refused by ActiveCampaign) go there at once, others once they used their last allowed
//! receive. A message handed back for retry is hidden for as long as ActiveCampaign asked to
//! wait (`Retry-After`), and at least for the backoff of its receive count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::activecampaign::ContactSync;
use crate::activecampaign::importer::{
    MAX_CONTACTS_PER_IMPORT, MIN_BULK_CONTACTS, balanced_chunks,
};
use crate::delivery::callback::CallbackTarget;
use crate::delivery::idempotency::{self, Stage};
use crate::delivery::{
    ContactQueue, Dedupe, DeliveryClaim, DeliveryError, DeliveryOutcome, IdempotencyStore,
    InlineDelivery, MemoryIdempotencyStore, QueuedBatch, QueuedContact, rejected_reason,
};
use crate::redact::mask_email;
use crate::secret::{AppSecret, SecretCache, before_deadline};

pub use crate::delivery::RetrySchedule;
pub use crate::delivery::{REASON_ATTRIBUTE, ROUTE_ATTRIBUTE};
/// Message attribute with the id of the message it was in the source queue.
pub const SOURCE_ID_ATTRIBUTE: &str = "source_message_id";

/// One message of the batch, independent of Lambda's event types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueRecord {
    pub message_id: String,
    /// Lets the worker change the message's visibility (hide it for a wait) before handing
    /// it back; empty when unknown.
    pub receipt_handle: String,
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
    /// Messages whose contact went into a bulk import.
    pub imported: usize,
    pub rejected: usize,
    pub dead_lettered: usize,
    /// The messages moved to the dead-letter queue whole (they may be moved back).
    pub dead_lettered_ids: Vec<String>,
    /// Messages handed back and hidden for a while (message id, for how long).
    pub delayed: Vec<(String, Duration)>,
    /// Messages synced before (redelivered, or the same delivery queued twice): not synced
    /// again, and they leave the queue.
    pub duplicates: usize,
}

/// The longest the claims of a batch may take to settle after it was processed (the worker's
/// budget leaves 5 s of the Lambda timeout for this and the answer).
const SETTLE_TIME: Duration = Duration::from_secs(2);

/// How long a message is recognised when SQS delivers it again: its longest stay in the
/// queue (14 days).
const REDELIVERY_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);

/// The claim key of a message: the delivery's identity where the route deduplicates, so a
/// second message of the same delivery is recognised too; otherwise the SQS message id.
fn synced_key(record: &QueueRecord) -> (String, Duration) {
    #[derive(serde::Deserialize)]
    struct Dedupe {
        route: String,
        dedupe_id: Option<String>,
        dedupe_window_secs: Option<u64>,
    }
    // A contact's message or a lookup's: both say how their delivery is recognised.
    if let Ok(message) = serde_json::from_str::<Dedupe>(&record.body)
        && let (Some(identity), Some(window)) = (&message.dedupe_id, message.dedupe_window_secs)
    {
        return (
            idempotency::key(Stage::Synced, &message.route, Some(identity), &[]),
            Duration::from_secs(window),
        );
    }
    (
        format!("synced#message#{}", record.message_id),
        REDELIVERY_WINDOW,
    )
}

/// The least time one contact of a batch is given: one ActiveCampaign call at its default
/// timeout, and a retry.
const MIN_SHARE: Duration = Duration::from_secs(12);

/// The route name bulk imports from the queue report in their callback.
pub const QUEUE_CALLBACK_ROUTE: &str = "queue";

/// Whether the account is failing, in this container: while `open_until` is ahead, batches
/// are not tried (see [`SyncWorker::process`]).
#[derive(Debug, Default)]
struct Circuit {
    /// Account-wide failures in a row: the step of the retry schedule the circuit waits.
    failures: u32,
    open_until: Option<Instant>,
    reason: String,
}

/// A failure that says nothing about the message: the key refused, ActiveCampaign or
/// Secrets Manager unavailable, no time left.
struct AccountFailure {
    reason: String,
    retry_after: Option<Duration>,
}

impl From<&DeliveryError> for AccountFailure {
    fn from(error: &DeliveryError) -> Self {
        Self {
            reason: error.to_string(),
            retry_after: retry_after_of(error),
        }
    }
}

/// What a batch is worked through in: one person, a group imported together, or a batch
/// message (a chunk of a batch route's contacts, imported as one).
enum Unit {
    One(Person),
    Import {
        people: Vec<Person>,
        exclude_automations: bool,
    },
    Chunk {
        record: QueueRecord,
        batch: QueuedBatch,
    },
}

impl Unit {
    fn one(person: Person) -> Self {
        Unit::One(person)
    }

    /// The queue messages this unit came from.
    fn records(&self) -> Vec<&QueueRecord> {
        match self {
            Unit::One(person) => person.sources.iter().collect(),
            Unit::Import { people, .. } => people.iter().flat_map(|p| p.sources.iter()).collect(),
            Unit::Chunk { record, .. } => vec![record],
        }
    }
}

/// One person of a batch: their merged contact and the messages it came from.
struct Person {
    contact: ContactSync,
    exclude_automations: bool,
    /// The highest requeue generation among its messages.
    generation: u32,
    sources: Vec<QueueRecord>,
}

pub struct SyncWorker {
    delivery: InlineDelivery,
    secrets: Arc<SecretCache>,
    dead_letters: Option<Arc<dyn ContactQueue>>,
    /// The queue the batches come from, to hide a message for a wait before handing it back.
    source_queue: Option<Arc<dyn ContactQueue>>,
    retry_schedule: RetrySchedule,
    max_receive_count: u32,
    callback_url: Option<String>,
    invocation_budget: Duration,
    circuit: std::sync::Mutex<Circuit>,
    /// The least time one contact (or one import) of a batch is given.
    min_share: Duration,
    /// Claims on synced messages: a redelivered message, or a second message of the same
    /// delivery, is not synced again.
    dedupe: Dedupe,
    /// The routes, and the senders' APIs, for references queued by ids-only senders.
    lookups: Option<(Arc<crate::mapping::Mapping>, crate::lookup::SenderApis)>,
}

impl SyncWorker {
    pub fn new(
        delivery: InlineDelivery,
        secrets: Arc<SecretCache>,
        dead_letters: Option<Arc<dyn ContactQueue>>,
        max_receive_count: u32,
    ) -> Self {
        Self {
            delivery,
            secrets,
            dead_letters,
            source_queue: None,
            retry_schedule: RetrySchedule::default(),
            max_receive_count,
            callback_url: None,
            invocation_budget: crate::settings::DEFAULT_INVOCATION_BUDGET,
            circuit: std::sync::Mutex::new(Circuit::default()),
            min_share: MIN_SHARE,
            dedupe: Dedupe::new(Arc::new(MemoryIdempotencyStore::new())),
            lookups: None,
        }
    }

    /// Looks up queued references (ids-only senders) with `apis` and maps them by `mapping`.
    pub fn with_lookups(
        mut self,
        mapping: Arc<crate::mapping::Mapping>,
        apis: crate::lookup::SenderApis,
    ) -> Self {
        self.lookups = Some((mapping, apis));
        self
    }

    /// Keeps claims on synced messages in `store` (shared by every instance of the worker).
    pub fn with_idempotency_store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.dedupe = Dedupe::new(store);
        self
    }

    /// Messages handed back are first hidden in `queue` for their wait (see [`RetrySchedule`]);
    /// without it they come back after the queue's own visibility timeout.
    pub fn with_source_queue(
        mut self,
        queue: Option<Arc<dyn ContactQueue>>,
        schedule: RetrySchedule,
    ) -> Self {
        self.source_queue = queue;
        self.retry_schedule = schedule;
        self
    }

    /// The most one batch may take (`INVOCATION_BUDGET_MS`), within the runtime's deadline.
    pub fn with_invocation_budget(mut self, budget: Duration) -> Self {
        self.invocation_budget = budget;
        self
    }

    pub fn invocation_budget(&self) -> Duration {
        self.invocation_budget
    }

    /// Bulk imports ask ActiveCampaign to report completion to this URL.
    pub fn with_callback_url(mut self, url: Option<String>) -> Self {
        self.callback_url = url;
        self
    }

    /// Syncs a batch of messages. Each is claimed first: one synced before (a redelivery,
    /// or the same delivery queued twice) is done and leaves the queue; one being synced by
    /// another instance now goes back; the others are synced, and their claims kept for what
    /// left the queue and given up for what goes back.
    pub async fn process(&self, records: Vec<QueueRecord>, deadline: Instant) -> BatchReport {
        let keys = records
            .iter()
            .map(|record| {
                let (key, window) = synced_key(record);
                (key, Some(window))
            })
            .collect();
        // Each claim lasts the batch's time (plus a margin); each store call is bounded.
        let claimed = self.dedupe.claim_all(keys, deadline).await;
        let mut claims = Vec::with_capacity(records.len());
        let mut fresh = Vec::with_capacity(records.len());
        let (mut duplicates, mut busy) = (0, Vec::new());
        for (record, claim) in records.into_iter().zip(claimed) {
            match claim {
                DeliveryClaim::Duplicate(_) => duplicates += 1,
                DeliveryClaim::InProgress { retry_after } => busy.push((record, retry_after)),
                claim => {
                    claims.push((record.message_id.clone(), claim));
                    fresh.push(record);
                }
            }
        }
        let mut report = self.process_claimed(fresh, deadline).await;
        // Synced (or imported) ones keep their claim; those handed back or dead-lettered give
        // it up, so a retry, or a redrive once the operator fixed the cause, is synced.
        let unsynced: std::collections::HashSet<&String> = report
            .failed
            .iter()
            .chain(&report.dead_lettered_ids)
            .collect();
        let (synced, unsynced): (Vec<_>, Vec<_>) = claims
            .into_iter()
            .partition(|(message_id, _)| !unsynced.contains(message_id));
        let synced = synced
            .into_iter()
            .map(|(message_id, claim)| (claim, serde_json::json!({ "synced_from": message_id })))
            .collect();
        let unsynced = unsynced.into_iter().map(|(_, claim)| claim).collect();
        let settle = self.dedupe.settle_all(synced, unsynced);
        // Bounded: past it, a claim lapses with its lease (a synced one could then be synced
        // again if redelivered, never lost).
        if tokio::time::timeout(SETTLE_TIME, settle).await.is_err() {
            tracing::warn!("Claims not all settled in time; the rest lapse with their lease.");
        }
        if duplicates > 0 {
            tracing::info!(
                duplicates,
                "Messages already synced left the queue without a sync."
            );
        }
        report.duplicates = duplicates;
        // Being synced elsewhere: back after that instance's lease, when it will be done.
        for (record, retry_after) in busy {
            if self.hide(&record, retry_after).await {
                report
                    .delayed
                    .push((record.message_id.clone(), retry_after));
            }
            report.failed.push(record.message_id);
        }
        report
    }

    async fn process_claimed(&self, records: Vec<QueueRecord>, deadline: Instant) -> BatchReport {
        let mut report = BatchReport::default();
        // Email → the merged contact, the messages it came from, and whether its route
        // excludes automations (the latest message decides).
        let mut people: BTreeMap<String, Person> = BTreeMap::new();
        // Batch messages (a batch route's contacts in chunks): one import each.
        let mut chunks: Vec<Unit> = Vec::new();
        let mut lookups = Vec::new();
        for record in records {
            if crate::delivery::message::QueuedLookup::is_lookup(&record.body) {
                lookups.push(record);
                continue;
            }
            if QueuedBatch::is_batch(&record.body) {
                match QueuedBatch::from_json(&record.body) {
                    Ok(batch) => chunks.push(Unit::Chunk { record, batch }),
                    Err(error) => {
                        let reason = error.to_string();
                        self.dead_letter_or_retry(
                            &[record],
                            &reason,
                            Retry::Never,
                            deadline,
                            &mut report,
                        )
                        .await;
                    }
                }
                continue;
            }
            match QueuedContact::from_json(&record.body) {
                Ok(message) => match people.get_mut(&message.contact.email) {
                    Some(person) => {
                        person.contact.merge(message.contact);
                        person.exclude_automations = message.exclude_automations;
                        person.generation = person.generation.max(message.generation);
                        person.sources.push(record);
                    }
                    None => {
                        people.insert(
                            message.contact.email.clone(),
                            Person {
                                contact: message.contact,
                                exclude_automations: message.exclude_automations,
                                generation: message.generation,
                                sources: vec![record],
                            },
                        );
                    }
                },
                // Retrying cannot fix an unreadable message: dead-letter it at once.
                Err(error) => {
                    let reason = error.to_string();
                    self.dead_letter_or_retry(
                        &[record],
                        &reason,
                        Retry::Never,
                        deadline,
                        &mut report,
                    )
                    .await;
                }
            }
        }
        // References are looked up first: what they find joins the people of the batch.
        for (record, contact, exclude_automations) in
            self.resolve_lookups(lookups, deadline, &mut report).await
        {
            add_person(&mut people, contact, exclude_automations, record);
        }
        if people.is_empty() && chunks.is_empty() {
            return report;
        }
        // While the account is failing (a refused key, ActiveCampaign down or asking to
        // wait, Secrets Manager down), nothing is tried until the circuit's next probe: a
        // batch waits for it when it comes within half the time left, and is otherwise handed
        // back hidden until then, without an attempt.
        if let Some((wait, why)) = self.circuit_wait().await {
            let left = deadline.saturating_duration_since(Instant::now());
            if wait <= left / 2 {
                tokio::time::sleep(wait).await;
            } else {
                let reason =
                    format!("not tried, ActiveCampaign unavailable for the whole account: {why}");
                tracing::warn!(wait_s = wait.as_secs(), people = people.len(), chunks = chunks.len(), reason = %why, "Account unavailable; handing the batch back until the next probe.");
                crate::metrics::emit(crate::metrics::account_unavailable());
                let units = people.into_values().map(Unit::one).chain(chunks);
                for unit in units {
                    for record in unit.records() {
                        self.dead_letter_or_retry(
                            std::slice::from_ref(record),
                            &reason,
                            Retry::After(Some(wait)),
                            deadline,
                            &mut report,
                        )
                        .await;
                    }
                }
                return report;
            }
        }
        // A hanging store must leave time to hand the batch back (retry or dead-letter).
        let secret = match before_deadline(deadline, self.secrets.get()).await {
            Ok(secret) => secret,
            Err(error) => {
                let failure = AccountFailure {
                    reason: error.to_string(),
                    retry_after: None,
                };
                let units = people.into_values().map(Unit::one).chain(chunks).collect();
                self.account_failed(failure, units, deadline, &mut report)
                    .await;
                return report;
            }
        };
        // Ten or more people with the same automation setting go through the importer, one
        // unit per request's worth (at most 250, balanced), so a large batch that runs out of
        // time or meets a failure hands back only the imports not made; the others go one by
        // one. Units go in an order that changes with every batch, so that no contact always
        // waits behind the same one.
        let (excluding, including): (Vec<Person>, Vec<Person>) =
            people.into_values().partition(|p| p.exclude_automations);
        let mut units: Vec<Unit> = chunks;
        for (group, exclude_automations) in [(excluding, true), (including, false)] {
            if group.len() >= MIN_BULK_CONTACTS {
                let sizes = vec![1; group.len()];
                for people in balanced_chunks(group, sizes, MAX_CONTACTS_PER_IMPORT, usize::MAX) {
                    units.push(Unit::Import {
                        people,
                        exclude_automations,
                    });
                }
            } else {
                units.extend(group.into_iter().map(Unit::one));
            }
        }
        fastrand::shuffle(&mut units);
        let mut units = std::collections::VecDeque::from(units);
        while let Some(unit) = units.pop_front() {
            // Each unit gets its share of the time left (at least one call's worth), so one
            // slow contact cannot use the whole batch's budget.
            let now = Instant::now();
            let left = deadline.saturating_duration_since(now);
            let share = (left / (units.len() as u32 + 1))
                .max(self.min_share)
                .min(left);
            let unit_deadline = now + share;
            let outcome = match &unit {
                Unit::Import {
                    people,
                    exclude_automations,
                } => {
                    self.import(
                        people,
                        *exclude_automations,
                        &secret,
                        unit_deadline,
                        deadline,
                        &mut report,
                    )
                    .await
                }
                Unit::One(person) => {
                    self.sync_one(person, &secret, unit_deadline, deadline, &mut report)
                        .await
                }
                Unit::Chunk { record, batch } => {
                    self.import_chunk(record, batch, &secret, unit_deadline, deadline, &mut report)
                        .await
                }
            };
            match outcome {
                Ok(()) => self.close_circuit(),
                Err(failure) => {
                    // The account is failing: this unit and every untried one go back.
                    let mut failed = vec![unit];
                    failed.extend(units.drain(..));
                    self.account_failed(failure, failed, deadline, &mut report)
                        .await;
                    break;
                }
            }
        }
        tracing::info!(
            synced = report.synced,
            imported = report.imported,
            rejected = report.rejected,
            failed = report.failed.len(),
            dead_lettered = report.dead_lettered,
            "Queue batch processed."
        );
        report
    }

    /// Looks each queued reference up and maps it through its route. What cannot be resolved
    /// now goes back (an API that fails or asks to wait, credentials still missing or refused:
    /// an operator may fix them within the retries) or to the dead-letter queue with its
    /// reason (an object that no longer exists, one without an email, an unreadable message).
    async fn resolve_lookups(
        &self,
        records: Vec<QueueRecord>,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Vec<(QueueRecord, ContactSync, bool)> {
        let mut found = Vec::new();
        if records.is_empty() {
            return found;
        }
        let Some((mapping, apis)) = &self.lookups else {
            let reason = "a lookup message, and this worker was set up without lookups";
            self.dead_letter_or_retry(&records, reason, Retry::After(None), deadline, report)
                .await;
            return found;
        };
        let secret = match before_deadline(deadline, self.secrets.get()).await {
            Ok(secret) => secret,
            Err(error) => {
                let reason = error.to_string();
                self.dead_letter_or_retry(&records, &reason, Retry::After(None), deadline, report)
                    .await;
                return found;
            }
        };
        // The lookups may take half the time left: the rest is the syncs'. What is not tried
        // by then goes back, and while the account is failing nothing is looked up at all.
        let lookup_deadline =
            Instant::now() + deadline.saturating_duration_since(Instant::now()) / 2;
        let circuit = self.circuit_wait().await;
        for record in records {
            let skipped = match &circuit {
                Some((wait, why)) => Some((
                    format!(
                        "not looked up, ActiveCampaign unavailable for the whole account: {why}"
                    ),
                    Retry::After(Some(*wait)),
                )),
                None if Instant::now() >= lookup_deadline => Some((
                    "not looked up within this batch's time".to_string(),
                    Retry::After(None),
                )),
                None => None,
            };
            if let Some((reason, retry)) = skipped {
                self.dead_letter_or_retry(
                    std::slice::from_ref(&record),
                    &reason,
                    retry,
                    deadline,
                    report,
                )
                .await;
                continue;
            }
            let (reason, retry) =
                match crate::delivery::message::QueuedLookup::from_json(&record.body) {
                    Err(error) => (error.to_string(), Retry::Never),
                    Ok(message) => match mapping.route(&message.route) {
                        None => (
                            format!("route {} is not in this worker's mapping", message.route),
                            Retry::After(None),
                        ),
                        Some(route) => {
                            match self
                                .look_up(route, apis, &message, &secret, lookup_deadline)
                                .await
                            {
                                Ok(contact) => {
                                    found.push((record, contact, route.exclude_automations));
                                    continue;
                                }
                                Err(failure) => failure,
                            }
                        }
                    },
                };
            self.dead_letter_or_retry(
                std::slice::from_ref(&record),
                &reason,
                retry,
                deadline,
                report,
            )
            .await;
        }
        found
    }

    async fn look_up(
        &self,
        route: &crate::mapping::Route,
        apis: &crate::lookup::SenderApis,
        message: &crate::delivery::message::QueuedLookup,
        secret: &AppSecret,
        deadline: Instant,
    ) -> Result<ContactSync, (String, Retry)> {
        use crate::lookup::{Credentials, LookupError};
        let lookup = &message.lookup;
        // The webhook function queues one object per message; several would be synced only
        // in part, so such a message is kept, not half-done.
        if !lookup.more_ids.is_empty() {
            return Err((
                format!(
                    "a queued lookup names {} {}s: one per message is expected",
                    lookup.ids().count(),
                    lookup.object
                ),
                Retry::Never,
            ));
        }
        let credentials =
            Credentials::for_route(lookup.api, &route.name, secret.sender_api.get(&route.name))
                .map_err(|missing| (missing.to_string(), Retry::After(None)))?;
        let object = apis
            .fetch(lookup, &route.name, &credentials, deadline)
            .await
            .map_err(|error| {
                let retry = match &error {
                    LookupError::NotFound { .. } | LookupError::OtherStore { .. } => Retry::Never,
                    LookupError::Unavailable { retry_after, .. } => Retry::After(*retry_after),
                    _ => Retry::After(None),
                };
                (error.to_string(), retry)
            })?;
        // A queued lookup names one object (the webhook function queues one message each).
        let Some(submission) =
            crate::lookup::found_submissions(lookup, object, &message.webhook_submission())
                .into_iter()
                .next()
        else {
            return Err((
                format!("{} {} was not found", lookup.object, lookup.id),
                Retry::Never,
            ));
        };
        match crate::mapping::map_submission(&submission, route) {
            crate::mapping::MappingOutcome::Contact(contact) => Ok(*contact),
            crate::mapping::MappingOutcome::Skipped { reason }
            | crate::mapping::MappingOutcome::Rejected { reason } => Err((
                format!(
                    "{} {} found, but not synced: {reason}",
                    lookup.object, lookup.id
                ),
                Retry::Never,
            )),
        }
    }

    /// How long until the circuit's next probe, when the account is failing (or the pacer
    /// holds every request back for a `Retry-After`), and why.
    async fn circuit_wait(&self) -> Option<(Duration, String)> {
        let now = Instant::now();
        let open = self.circuit.lock().ok().and_then(|c| {
            c.open_until
                .filter(|until| *until > now)
                .map(|until| (until - now, c.reason.clone()))
        });
        let paused = self.delivery.client().pacer().wait().await;
        match open {
            Some((wait, why)) if wait >= paused => Some((wait, why)),
            _ if !paused.is_zero() => Some((
                paused,
                format!(
                    "ActiveCampaign asked to wait {} s (Retry-After)",
                    paused.as_secs()
                ),
            )),
            open => open,
        }
    }

    fn close_circuit(&self) {
        if let Ok(mut circuit) = self.circuit.lock()
            && circuit.failures > 0
        {
            tracing::info!(
                failures = circuit.failures,
                "ActiveCampaign answers again; the circuit is closed."
            );
            *circuit = Circuit::default();
        }
    }

    /// An account-wide failure: the circuit opens for the next step of the retry schedule
    /// (or ActiveCampaign's `Retry-After`), the failure is counted, and `units` are handed
    /// back hidden for that long. The first unit was tried; the others were not, and their
    /// reason says so.
    async fn account_failed(
        &self,
        failure: AccountFailure,
        units: Vec<Unit>,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        let wait = match self.circuit.lock() {
            Ok(mut circuit) => {
                circuit.failures += 1;
                let wait = self
                    .retry_schedule
                    .delay(circuit.failures, failure.retry_after);
                circuit.open_until = Some(Instant::now() + wait);
                circuit.reason.clone_from(&failure.reason);
                wait
            }
            Err(_) => self.retry_schedule.delay(1, failure.retry_after),
        };
        tracing::warn!(error = %failure.reason, wait_s = wait.as_secs(), "Account unavailable; the circuit is open until the next probe.");
        crate::metrics::emit(crate::metrics::account_unavailable());
        let untried = format!(
            "not tried, ActiveCampaign unavailable for the whole account: {}",
            failure.reason
        );
        for (i, unit) in units.iter().enumerate() {
            let reason = if i == 0 { &failure.reason } else { &untried };
            for record in unit.records() {
                self.dead_letter_or_retry(
                    std::slice::from_ref(record),
                    reason,
                    Retry::After(failure.retry_after),
                    deadline,
                    report,
                )
                .await;
            }
        }
    }

    /// Syncs one person by `unit_deadline`; an account-wide failure is returned for the
    /// caller to open the circuit.
    async fn sync_one(
        &self,
        person: &Person,
        secret: &Arc<AppSecret>,
        unit_deadline: Instant,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Result<(), AccountFailure> {
        let email = mask_email(&person.contact.email);
        match self
            .delivery
            .deliver(&person.contact, secret.clone(), unit_deadline)
            .await
        {
            Ok(DeliveryOutcome::Synced { .. } | DeliveryOutcome::Queued { .. }) => {
                report.synced += person.sources.len();
                Ok(())
            }
            Ok(DeliveryOutcome::Rejected { reason }) => {
                tracing::warn!(email = %email, reason = %reason, "ActiveCampaign rejected a queued contact; dead-lettering it.");
                self.refused(&person.sources, &reason, deadline, report)
                    .await;
                Ok(())
            }
            Err(error) => {
                tracing::warn!(email = %email, error = %error, "Queued contact not synced; it will be retried.");
                Err(AccountFailure::from(&error))
            }
        }
    }

    /// Where this worker's imports report completion; a callback URL without the secret
    /// that signs it fails the account, not the message.
    fn callback_target(
        &self,
        secret: &AppSecret,
    ) -> Result<Option<CallbackTarget>, AccountFailure> {
        CallbackTarget::required(self.callback_url.as_ref(), secret.callback_secret.as_ref())
            .map_err(|e| AccountFailure {
                reason: e.to_string(),
                retry_after: None,
            })
    }

    /// Imports one batch message as one bulk import (its contacts were chosen to fit one).
    /// Contacts the importer refuses are dead-lettered one by one; if that fails, the whole
    /// message is retried (importing again is an upsert by email).
    async fn import_chunk(
        &self,
        record: &QueueRecord,
        batch: &QueuedBatch,
        secret: &Arc<AppSecret>,
        unit_deadline: Instant,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Result<(), AccountFailure> {
        let callback = self.callback_target(secret)?;
        let result = self
            .delivery
            .deliver_batch(
                batch.contacts.clone(),
                secret.clone(),
                crate::delivery::ImportOptions {
                    route: &batch.route,
                    callback: callback.as_ref(),
                    exclude_automations: batch.exclude_automations,
                    generation: 0,
                    must_finish: false,
                },
                unit_deadline,
            )
            .await
            .map_err(|error| {
                tracing::warn!(contacts = batch.contacts.len(), error = %error, "Batch message not imported; it will be retried.");
                AccountFailure::from(&error)
            })?;
        let mut kept = true;
        for rejected in &result.rejected {
            let Some(contact) = batch.contacts.iter().find(|c| c.email == rejected.email) else {
                continue;
            };
            crate::metrics::emit(crate::metrics::rejected_contacts(&batch.route, 1));
            report.rejected += 1;
            let Some(dlq) = &self.dead_letters else {
                kept = false;
                continue;
            };
            let mut message = QueuedContact::new(&batch.route, None, contact.clone());
            message.exclude_automations = batch.exclude_automations;
            let reason = rejected_reason(&rejected.reason);
            let attributes = [
                (REASON_ATTRIBUTE, reason.as_str()),
                (ROUTE_ATTRIBUTE, batch.route.as_str()),
                (SOURCE_ID_ATTRIBUTE, record.message_id.as_str()),
            ];
            let deadline = deadline.max(Instant::now() + Duration::from_secs(3));
            match dlq
                .send_body(message.to_json(), &attributes, deadline)
                .await
            {
                Ok(_) => report.dead_lettered += 1,
                Err(error) => {
                    tracing::error!(error = %error, "Dead-letter queue unavailable; the batch message will be retried.");
                    kept = false;
                }
            }
        }
        if kept {
            report.imported += batch.contacts.len() - result.rejected.len();
        } else {
            report.failed.push(record.message_id.clone());
        }
        Ok(())
    }

    /// A contact ActiveCampaign refused: counted by route and dead-lettered at once with
    /// `rejected: <message>`, for an operator to fix and redrive (never deleted).
    async fn refused(
        &self,
        records: &[QueueRecord],
        message: &str,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        report.rejected += records.len();
        for record in records {
            let route = route_of(&record.body);
            crate::metrics::emit(crate::metrics::rejected_contacts(&route, 1));
        }
        self.dead_letter_or_retry(
            records,
            &rejected_reason(message),
            Retry::Never,
            deadline,
            report,
        )
        .await;
    }

    async fn import(
        &self,
        people: &[Person],
        exclude_automations: bool,
        secret: &Arc<AppSecret>,
        unit_deadline: Instant,
        deadline: Instant,
        report: &mut BatchReport,
    ) -> Result<(), AccountFailure> {
        let callback = self.callback_target(secret)?;
        let contacts = people.iter().map(|p| p.contact.clone()).collect();
        // Contacts requeued from failed imports carry how often that happened.
        let generation = people.iter().map(|p| p.generation).max().unwrap_or(0);
        let result = self
            .delivery
            .deliver_batch(
                contacts,
                secret.clone(),
                crate::delivery::ImportOptions {
                    route: QUEUE_CALLBACK_ROUTE,
                    callback: callback.as_ref(),
                    exclude_automations,
                    generation,
                    must_finish: false,
                },
                unit_deadline,
            )
            .await;
        match result {
            Ok(result) => {
                for person in people {
                    let rejected = result
                        .rejected
                        .iter()
                        .find(|r| r.email == person.contact.email);
                    match rejected {
                        Some(r) => {
                            tracing::warn!(email = %mask_email(&r.email), reason = %r.reason, "ActiveCampaign rejected a queued contact; dead-lettering it.");
                            self.refused(&person.sources, &r.reason, deadline, report)
                                .await;
                        }
                        None => report.imported += person.sources.len(),
                    }
                }
                for import in &result.imports {
                    tracing::info!(batch_id = %import.batch_id, contacts = import.queued_contacts, "Queued contacts imported in bulk.");
                }
                Ok(())
            }
            Err(error) => {
                tracing::warn!(people = people.len(), error = %error, "Bulk import failed; its messages will be retried.");
                Err(AccountFailure::from(&error))
            }
        }
    }

    /// Dead-letters the records when they cannot succeed ([`Retry::Never`]) or have used their
    /// last receive; otherwise reports them for retry, hidden for their wait first. A record
    /// is only dropped from the source queue once the dead-letter queue has it.
    async fn dead_letter_or_retry(
        &self,
        records: &[QueueRecord],
        reason: &str,
        retry: Retry,
        deadline: Instant,
        report: &mut BatchReport,
    ) {
        for record in records {
            let exhausted = match retry {
                Retry::Never => true,
                Retry::After(_) => record.receive_count >= self.max_receive_count,
            };
            let moved = match (&self.dead_letters, exhausted) {
                (Some(dlq), true) => {
                    // Dead-lettering must not be starved by a spent batch deadline.
                    let deadline = deadline.max(Instant::now() + Duration::from_secs(3));
                    let route = route_of(&record.body);
                    let attributes = [
                        (REASON_ATTRIBUTE, reason),
                        (ROUTE_ATTRIBUTE, route.as_str()),
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
                report.dead_lettered_ids.push(record.message_id.clone());
                continue;
            }
            if let Retry::After(retry_after) = retry {
                let delay = self.retry_schedule.delay(record.receive_count, retry_after);
                if self.hide(record, delay).await {
                    report.delayed.push((record.message_id.clone(), delay));
                }
            }
            report.failed.push(record.message_id.clone());
        }
    }

    /// Hides a message for `delay` before it is handed back (`ChangeMessageVisibility`), so a
    /// wait costs one receive instead of one per batch. Best effort: on failure the message
    /// returns after the queue's own visibility timeout.
    async fn hide(&self, record: &QueueRecord, delay: Duration) -> bool {
        let Some(queue) = &self.source_queue else {
            return false;
        };
        if record.receipt_handle.is_empty() || delay.is_zero() {
            return false;
        }
        match queue.change_visibility(&record.receipt_handle, delay).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(message_id = %record.message_id, error = %error, "Could not hide the message for its wait; it returns after the queue's visibility timeout.");
                false
            }
        }
    }
}

/// Whether a failed message may be retried, and after how long ActiveCampaign asked.
/// Adds a looked-up contact to the batch's people, merged with the same email's.
fn add_person(
    people: &mut BTreeMap<String, Person>,
    contact: ContactSync,
    exclude_automations: bool,
    record: QueueRecord,
) {
    // Its route's `exclude_automations` goes with it; the latest message decides.
    match people.get_mut(&contact.email) {
        Some(person) => {
            person.contact.merge(contact);
            person.exclude_automations = exclude_automations;
            person.sources.push(record);
        }
        None => {
            people.insert(
                contact.email.clone(),
                Person {
                    contact,
                    exclude_automations,
                    generation: 0,
                    sources: vec![record],
                },
            );
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Retry {
    /// It cannot succeed as it is: dead-letter it now.
    Never,
    After(Option<Duration>),
}

/// The route a message (a contact's, a batch's or a lookup's) names, for dead letters.
fn route_of(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Routed {
        route: String,
    }
    serde_json::from_str::<Routed>(body).map_or_else(|_| String::new(), |m| m.route)
}

fn retry_after_of(error: &DeliveryError) -> Option<Duration> {
    match error {
        DeliveryError::ActiveCampaign(crate::activecampaign::AcError::Unavailable {
            retry_after,
            ..
        }) => *retry_after,
        _ => None,
    }
}
