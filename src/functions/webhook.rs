//! The webhook function: a request through the pipeline (route → handshake → authenticate →
//! parse → map), then delivery, then the SPEC's status codes. Lambda-free, so tests drive it
//! directly; `aws::lambda::http` adapts it to every HTTP front door.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use http::Method;
use tokio::time::Instant;

use super::{HEALTH_PATH, health};
use crate::activecampaign::ActiveCampaignClient;
use crate::captcha::{CaptchaVerifier, Verdict};
use crate::deadline::{DEFAULT_MARGIN, remaining_budget};
use crate::delivery::callback::CallbackTarget;
use crate::delivery::idempotency::{self, Stage};
use crate::delivery::{
    ContactQueue, Dedupe, Delivery, DeliveryClaim, DeliveryError, DeliveryOutcome,
    IdempotencyStore, ImportStore, InlineDelivery, MemoryIdempotencyStore, QueuedContact,
    RefusalKeeper,
};
use crate::inbound::InboundRequest;
use crate::lookup::{Credentials, LookupError, SenderApis, found_submissions};
use crate::mapping::guard::{CaptchaOutage, Refusal};
use crate::mapping::{Mapping, Route};
use crate::pipeline::{Arrival, Plan, arrive, verify_and_interpret};
use crate::redact::mask_email;
use crate::response::{BatchSummary, HttpResponse, RejectedRow, WebhookError, WebhookOutcome};
use crate::secret::{AppSecret, SecretCache, before_deadline};

/// Limits of one request.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// Budget when the runtime's deadline is unusable, and the cap on any budget.
    pub invocation_budget: Duration,
}

/// Everything the webhook function holds across invocations.
pub struct WebhookApp {
    mapping: Arc<Mapping>,
    secrets: Arc<SecretCache>,
    delivery: Delivery,
    limits: Limits,
    /// The import-callback function's URL, given to the importer with each bulk import.
    callback_url: Option<String>,
    /// Where contacts that ActiveCampaign refused are kept for an operator.
    refusals: RefusalKeeper,
    /// Claims on deliveries, so a sender's retry is answered, not delivered again.
    dedupe: Dedupe,
    /// Asks captcha providers about the tokens of routes with a `captcha`.
    captcha: Option<CaptchaVerifier>,
    /// Requests per source address, for routes with `rate_limit_per_ip`.
    address_limits: AddressLimits,
    /// Looks up what ids-only senders refer to (inline, or when the queue is down).
    sender_apis: Option<SenderApis>,
    /// Whether the delivery's clients are being built ahead of their first call.
    delivery_prepared: AtomicBool,
}

/// What one request was about, for its log line.
#[derive(Default)]
struct RequestLog {
    route: Option<String>,
    topic: Option<String>,
    delivery_id: Option<String>,
    email: Option<String>,
    /// The honeypot was filled: answered as a success, nothing delivered.
    decoy: bool,
}

impl WebhookApp {
    pub fn new(
        mapping: Mapping,
        secrets: Arc<SecretCache>,
        client: ActiveCampaignClient,
        limits: Limits,
    ) -> Self {
        Self {
            mapping: Arc::new(mapping),
            delivery: Delivery::Inline(InlineDelivery::new(client, secrets.clone())),
            secrets,
            limits,
            callback_url: None,
            refusals: RefusalKeeper::new(None),
            // This process's memory until a shared store is given (`with_idempotency_store`).
            dedupe: Dedupe::new(Arc::new(MemoryIdempotencyStore::new())),
            captcha: None,
            address_limits: AddressLimits::default(),
            sender_apis: None,
            delivery_prepared: AtomicBool::new(false),
        }
    }

    /// Looks up the references of ids-only senders through their APIs with `apis`.
    pub fn with_sender_apis(mut self, apis: SenderApis) -> Self {
        self.sender_apis = Some(apis);
        self
    }

    /// Verifies the captcha tokens of routes that have one with `verifier`.
    pub fn with_captcha_verifier(mut self, verifier: CaptchaVerifier) -> Self {
        self.captcha = Some(verifier);
        self
    }

    /// Keeps contacts that ActiveCampaign refused in this dead-letter queue, with the reason.
    pub fn with_dead_letters(mut self, queue: Option<Arc<dyn ContactQueue>>) -> Self {
        self.refusals = RefusalKeeper::new(queue);
        self
    }

    /// Records bulk imports in `store` for the import-callback function.
    pub fn with_import_store(mut self, store: Option<Arc<dyn ImportStore>>) -> Self {
        self.delivery = self.delivery.with_import_store(store);
        self
    }

    /// Keeps claims on deliveries in `store` (shared by every container of the function).
    pub fn with_idempotency_store(mut self, store: Arc<dyn IdempotencyStore>) -> Self {
        self.dedupe = Dedupe::new(store);
        self
    }

    /// Bulk imports ask ActiveCampaign to report completion to this URL.
    pub fn with_callback_url(mut self, url: Option<String>) -> Self {
        self.callback_url = url;
        self
    }

    /// Delivers through the queue (answering `queued`), syncing inline only when the queue
    /// cannot be reached.
    pub fn with_queue(mut self, queue: Arc<dyn ContactQueue>) -> Self {
        let fallback = match self.delivery {
            Delivery::Inline(inline)
            | Delivery::Queue {
                fallback: inline, ..
            } => inline,
        };
        self.delivery = Delivery::Queue { queue, fallback };
        self
    }

    /// Once, at the first request that reads the secret: builds the queue's and the claim
    /// store's clients (about 0.5 M instructions each) on tasks of their own. On the
    /// function's one thread they run at the request's first wait, which as deployed is the
    /// secret's read from Secrets Manager, instead of when the first call needs them. Not at
    /// start-up: a cold start that answers `/health` would pay for them. Nothing waits for
    /// these tasks; a call that comes first builds its client itself, or waits for the build
    /// under way.
    fn prepare_delivery(&self) {
        if self.delivery_prepared.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Delivery::Queue { queue, .. } = &self.delivery {
            let queue = queue.clone();
            tokio::spawn(async move { queue.prepare().await });
        }
        let dedupe = self.dedupe.clone();
        tokio::spawn(async move { dedupe.prepare().await });
    }

    /// The instant by which this invocation must answer.
    pub fn deadline(&self, runtime_deadline_ms: u64) -> Instant {
        let budget = remaining_budget(
            runtime_deadline_ms,
            SystemTime::now(),
            self.limits.invocation_budget,
            DEFAULT_MARGIN,
            self.limits.invocation_budget,
        );
        Instant::now() + budget
    }

    /// Handles one request and logs one line about it.
    pub async fn handle(&self, req: &InboundRequest, deadline: Instant) -> HttpResponse {
        if req.path.trim_end_matches('/') == HEALTH_PATH {
            return if req.method == Method::GET {
                health()
            } else {
                WebhookError::MethodNotAllowed { allow: "GET" }.to_response()
            };
        }
        let mut log = RequestLog::default();
        let result = self.process(req, deadline, &mut log).await;
        let email = log.email.as_deref().map(mask_email);
        match result {
            Ok((outcome, redirect)) if log.decoy => {
                tracing::info!(
                    route = log.route.as_deref(),
                    outcome = "honeypot",
                    "Webhook answered as a success, and nothing synced: its honeypot field was filled."
                );
                match redirect {
                    Some(location) => HttpResponse::redirect(&location),
                    None => outcome.to_response(),
                }
            }
            Ok((outcome, redirect)) => {
                tracing::info!(
                    route = log.route.as_deref(),
                    topic = log.topic.as_deref(),
                    delivery_id = log.delivery_id.as_deref(),
                    email = email.as_deref(),
                    outcome = outcome.label(),
                    reason = outcome_reason(&outcome),
                    "Webhook handled."
                );
                match redirect {
                    Some(location) => HttpResponse::redirect(&location),
                    None => outcome.to_response(),
                }
            }
            Err(error) => {
                if let Some(route) = &log.route {
                    let defence = match &error {
                        WebhookError::Forbidden(Refusal::Origin) => {
                            Some(crate::metrics::ORIGIN_REFUSED)
                        }
                        WebhookError::Forbidden(_) => Some(crate::metrics::CAPTCHA_REFUSED),
                        WebhookError::TooManyRequests { .. } => Some(crate::metrics::RATE_LIMITED),
                        _ => None,
                    };
                    if let Some(name) = defence {
                        crate::metrics::emit(crate::metrics::defence(route, name));
                    }
                }
                let status = error.status().as_u16();
                if status >= 500 {
                    tracing::error!(route = log.route.as_deref(), topic = log.topic.as_deref(), email = email.as_deref(), status, error = %error, "Webhook not accepted; the sender should retry.");
                } else {
                    tracing::warn!(route = log.route.as_deref(), topic = log.topic.as_deref(), status, error = %error, "Webhook refused.");
                }
                error.to_response()
            }
        }
    }

    async fn process(
        &self,
        req: &InboundRequest,
        deadline: Instant,
        log: &mut RequestLog,
    ) -> Result<(WebhookOutcome, Option<String>), WebhookError> {
        let route = match arrive(&self.mapping, self.limits.max_body_bytes, req)? {
            Arrival::Handshake { route, reason } => {
                log.route = Some(route.name.clone());
                let outcome = WebhookOutcome::Ignored {
                    reason: reason.to_string(),
                };
                return Ok((outcome, None));
            }
            Arrival::Request(route) => route,
        };
        log.route = Some(route.name.clone());
        if let Some(per_minute) = route.guard.rate_limit_per_ip {
            self.address_limits
                .admit(&route.name, req.source_ip.as_deref(), per_minute)?;
        }
        self.prepare_delivery();
        let secret = before_deadline(deadline, self.secrets.get())
            .await
            .map_err(|e| unavailable(e.into()))?;
        let (contact, submission, redirect) = match verify_and_interpret(route, req, &secret)? {
            Plan::Answer {
                outcome,
                redirect,
                submission,
            } => {
                if let Some(submission) = submission {
                    log.topic = submission.topic.clone();
                    log.delivery_id = submission.delivery_id.clone();
                }
                return Ok((outcome, redirect));
            }
            Plan::Decoy {
                redirect,
                submission,
                email,
            } => {
                log.decoy = true;
                log.topic = submission.topic.clone();
                crate::metrics::emit(crate::metrics::defence(
                    &route.name,
                    crate::metrics::HONEYPOT_FILLED,
                ));
                // Claimed like a real delivery, so its repeat is a `duplicate` as a real
                // one's would be.
                let (key, window) = claim_key(route, &submission, &req.body);
                let claim = self.dedupe.claim(key, window, deadline).await;
                match claim {
                    DeliveryClaim::Duplicate(first) => {
                        return Ok((WebhookOutcome::Duplicate { first }, redirect));
                    }
                    DeliveryClaim::InProgress { retry_after } => {
                        return Err(WebhookError::Busy {
                            what: "the same delivery is being handled now",
                            retry_after,
                        });
                    }
                    DeliveryClaim::Held { .. } | DeliveryClaim::Unguarded => {}
                }
                let outcome = self.decoy(&route.name, email.as_deref(), &secret);
                self.dedupe
                    .finish(&claim, &outcome.to_response().json_body())
                    .await;
                return Ok((outcome, redirect));
            }
            Plan::Batch {
                contacts,
                row_of_email,
                summary,
            } => {
                // The same route and bytes again is a poster's retry: the first answer stands.
                let digest = body_digest(&route.name, &req.body);
                if let Some(first) = self.recall_batch(&digest).await {
                    return Ok((WebhookOutcome::Duplicate { first }, None));
                }
                let outcome = self
                    .deliver_batch(route, contacts, row_of_email, summary, secret, deadline)
                    .await?;
                self.remember_batch(&digest, &outcome).await;
                return Ok((outcome, None));
            }
            Plan::Lookup {
                submission,
                redirect,
            } => {
                log.topic = submission.topic.clone();
                log.delivery_id = submission.delivery_id.clone();
                let outcome = self
                    .deliver_lookup(route, *submission, req, secret, deadline, log)
                    .await?;
                return Ok((outcome, redirect));
            }
            Plan::Contact {
                contact,
                submission,
                redirect,
            } => (contact, submission, redirect),
        };
        log.topic = submission.topic.clone();
        log.delivery_id = submission.delivery_id.clone();
        log.email = Some(contact.email.clone());
        let delivery_id = submission.delivery_id.as_deref();
        let identity = idempotency::delivery_identity(submission.topic.as_deref(), delivery_id);
        let (key, window) = claim_key(route, &submission, &req.body);
        let claim = self.dedupe.claim(key, window, deadline).await;
        match claim {
            DeliveryClaim::Duplicate(first) => {
                crate::metrics::emit(crate::metrics::duplicates(&route.name));
                return Ok((WebhookOutcome::Duplicate { first }, redirect));
            }
            DeliveryClaim::InProgress { retry_after } => {
                return Err(WebhookError::Busy {
                    what: "the same delivery is being handled now",
                    retry_after,
                });
            }
            DeliveryClaim::Held { .. } | DeliveryClaim::Unguarded => {}
        }
        let mut contact = contact;
        if route.guard.captcha.is_some() {
            match self
                .check_captcha(route, &submission, &secret, req, deadline)
                .await
            {
                Ok(true) => {}
                // Delivered unverified: the captcha proved nothing, so it cannot stand in for
                // the proof a re-subscription needs (a form's double opt-in still can).
                Ok(false) if route.form.is_none() => {
                    for list in &mut contact.lists {
                        list.may_resubscribe = false;
                    }
                }
                Ok(false) => {}
                Err(error) => {
                    self.dedupe.abandon(&claim).await;
                    return Err(error);
                }
            }
        }
        let delivered = self
            .delivery
            .deliver(
                route,
                delivery_id,
                identity.filter(|_| window.is_some()).zip(window),
                &contact,
                secret,
                deadline,
            )
            .await;
        let outcome = match delivered {
            Ok(DeliveryOutcome::Synced { subscriber_id }) => {
                WebhookOutcome::Synced { subscriber_id }
            }
            Ok(DeliveryOutcome::Queued { message_id }) => WebhookOutcome::Queued { message_id },
            Ok(DeliveryOutcome::Rejected { reason }) => {
                let message = QueuedContact::new(
                    &route.name,
                    submission.delivery_id.as_deref(),
                    (*contact).clone(),
                );
                self.refusals.keep(&message, &reason, deadline).await;
                WebhookOutcome::Rejected { reason }
            }
            Err(error) => {
                self.dedupe.abandon(&claim).await;
                return Err(unavailable(error));
            }
        };
        self.dedupe
            .finish(&claim, &outcome.to_response().json_body())
            .await;
        Ok((outcome, redirect))
    }

    /// An ids-only sender's webhook: the route's credentials checked (without them, `ignored`
    /// naming the missing key), the delivery claimed, then in queue mode the reference queued
    /// for the sync-worker, or inline (and when the queue is down) looked up now, mapped and
    /// synced. An object that no longer exists is `ignored`; an API that fails, 503.
    async fn deliver_lookup(
        &self,
        route: &Route,
        webhook: crate::submission::Submission,
        req: &InboundRequest,
        secret: Arc<AppSecret>,
        deadline: Instant,
        log: &mut RequestLog,
    ) -> Result<WebhookOutcome, WebhookError> {
        let Some(lookup) = webhook.lookup.clone() else {
            return Err(unavailable_because("a lookup without its reference".into()));
        };
        let credentials = match Credentials::for_route(
            lookup.api,
            &route.name,
            secret.sender_api.get(&route.name),
        ) {
            Ok(credentials) => credentials,
            Err(missing) => {
                tracing::warn!(route = %route.name, reason = %missing, "Lookup not made: the route has no credentials for its sender's API.");
                return Ok(WebhookOutcome::Ignored {
                    reason: missing.to_string(),
                });
            }
        };
        let identity = idempotency::delivery_identity(
            webhook.topic.as_deref(),
            webhook.delivery_id.as_deref(),
        );
        let (key, window) = claim_key(route, &webhook, &req.body);
        let claim = self.dedupe.claim(key, window, deadline).await;
        match claim {
            DeliveryClaim::Duplicate(first) => {
                crate::metrics::emit(crate::metrics::duplicates(&route.name));
                return Ok(WebhookOutcome::Duplicate { first });
            }
            DeliveryClaim::InProgress { retry_after } => {
                return Err(WebhookError::Busy {
                    what: "the same delivery is being handled now",
                    retry_after,
                });
            }
            DeliveryClaim::Held { .. } | DeliveryClaim::Unguarded => {}
        }
        let mut webhook = webhook;
        let requested = lookup.ids().count();
        // What the queue stage did with each of several contacts (queued, or done before).
        let mut handled = BatchSummary::default();
        if let Delivery::Queue { queue, .. } = &self.delivery {
            // One message per object (the several contacts of a HubSpot request), each its own
            // delivery under its own claim, so the sync-worker looks each up on its own and a
            // contact an earlier try synced or queued is not queued again.
            let several = requested > 1;
            // Objects with their own deliveries are claimed each (however a retry groups them).
            let per_object = !lookup.objects.is_empty();
            let mut first_message = None;
            let mut left = Vec::new();
            for one in lookup.one_per_object() {
                if !left.is_empty() {
                    left.push(one.id.clone());
                    continue;
                }
                let (own_identity, own_claim) = if per_object {
                    let topic = one.objects.get(&one.id).and_then(|o| o.topics.first());
                    let delivery = one.delivery_of(&one.id);
                    let own_identity =
                        idempotency::delivery_identity(topic.map(String::as_str), delivery);
                    let (key, window) =
                        claim_key_for(route, topic.map(String::as_str), delivery, &req.body);
                    match self.dedupe.claim(key, window, deadline).await {
                        DeliveryClaim::Duplicate(first) => {
                            count_answer(&mut handled, &first, requested, None);
                            continue;
                        }
                        DeliveryClaim::InProgress { .. } => {
                            // Being handled by another try: this request is answered 503
                            // below, and comes back.
                            left.push(one.id.clone());
                            continue;
                        }
                        claim => (own_identity, Some(claim)),
                    }
                } else {
                    (identity.clone(), None)
                };
                let mut message =
                    crate::delivery::message::QueuedLookup::new(&route.name, &webhook, one.clone());
                if several {
                    message.webhook = events_naming(&webhook.payload, &one.id);
                }
                if let (Some(identity), Some(window)) = (own_identity, window) {
                    message.dedupe_id = Some(identity);
                    message.dedupe_window_secs = Some(window.as_secs());
                }
                match queue.send_body(message.to_json(), &[], deadline).await {
                    Ok(message_id) => {
                        let outcome = WebhookOutcome::Queued {
                            message_id: message_id.clone(),
                        };
                        if let Some(own) = &own_claim {
                            self.dedupe
                                .finish(own, &outcome.to_response().json_body())
                                .await;
                        }
                        first_message.get_or_insert(message_id);
                        handled.queued += 1;
                        handled.messages += 1;
                    }
                    Err(error) => {
                        if let Some(own) = &own_claim {
                            self.dedupe.abandon(own).await;
                        }
                        tracing::error!(route = %route.name, error = %error, "Queue unavailable; looking the reference up inline instead.");
                        left.push(one.id.clone());
                    }
                }
            }
            if left.is_empty() {
                let outcome = match first_message {
                    Some(message_id) if !several => WebhookOutcome::Queued { message_id },
                    _ => WebhookOutcome::Batch(Box::new(BatchSummary {
                        rows: requested,
                        ..handled
                    })),
                };
                self.dedupe
                    .finish(&claim, &outcome.to_response().json_body())
                    .await;
                return Ok(outcome);
            }
            // What the queue did not take is looked up now.
            webhook.lookup = lookup.retain(|id, _| left.iter().any(|l| l == id));
        }
        let mut result = self
            .look_up_and_sync(route, &webhook, &credentials, secret, req, deadline, log)
            .await;
        if handled != BatchSummary::default()
            && let Ok(outcome) = &mut result
        {
            // The answer counts every contact: those the queue stage handled, and the rest.
            let mut summary = BatchSummary {
                rows: requested,
                ..handled
            };
            match &mut *outcome {
                WebhookOutcome::Batch(rest) => {
                    summary.synced += rest.synced;
                    summary.queued += rest.queued;
                    summary.messages += rest.messages;
                    summary.skipped += rest.skipped;
                    summary.rejected.append(&mut rest.rejected);
                }
                single => count_answer(&mut summary, &single.to_response().json_body(), 0, None),
            }
            *outcome = WebhookOutcome::Batch(Box::new(summary));
        }
        match &result {
            Ok(outcome) => {
                self.dedupe
                    .finish(&claim, &outcome.to_response().json_body())
                    .await
            }
            Err(_) => self.dedupe.abandon(&claim).await,
        }
        result
    }

    /// Looks the webhook's reference up and syncs what it found: one contact, or each of the
    /// several of a HubSpot request under its own claim (a retry after a failure part-way
    /// does not sync again those that were synced), answered as a batch.
    #[allow(clippy::too_many_arguments)]
    async fn look_up_and_sync(
        &self,
        route: &Route,
        webhook: &crate::submission::Submission,
        credentials: &Credentials,
        secret: Arc<AppSecret>,
        req: &InboundRequest,
        deadline: Instant,
        log: &mut RequestLog,
    ) -> Result<WebhookOutcome, WebhookError> {
        let (Some(lookup), Some(apis)) = (&webhook.lookup, &self.sender_apis) else {
            return Err(unavailable_because(
                "no sender API client was set up".into(),
            ));
        };
        let found = match apis.fetch(lookup, &route.name, credentials, deadline).await {
            Ok(found) => found,
            Err(error @ (LookupError::NotFound { .. } | LookupError::OtherStore { .. })) => {
                return Ok(WebhookOutcome::Ignored {
                    reason: error.to_string(),
                });
            }
            Err(LookupError::Unavailable {
                api,
                reason,
                retry_after,
            }) => {
                return Err(WebhookError::Unavailable {
                    reason: format!("the {api} API is unavailable: {reason}"),
                    retry_after: retry_after.unwrap_or(crate::delivery::DEFAULT_RETRY_AFTER),
                });
            }
            // Wrong credentials or a strange answer: nothing acknowledged, the sender retries
            // while the operator fixes it.
            Err(error) => return Err(unavailable_because(error.to_string())),
        };
        let requested = 1 + lookup.more_ids.len();
        let mut found = found_submissions(lookup, found, webhook);
        if requested == 1 && found.len() == 1 && lookup.objects.is_empty() {
            let submission = found.remove(0);
            return self
                .sync_found(route, &submission, secret, deadline, log)
                .await;
        }
        let mut summary = BatchSummary {
            rows: requested,
            // Contacts that no longer exist.
            skipped: requested.saturating_sub(found.len()),
            ..BatchSummary::default()
        };
        let mut single = None;
        for (row, submission) in found.iter().enumerate() {
            let (key, window) = claim_key(route, submission, &req.body);
            let claim = self.dedupe.claim(key, window, deadline).await;
            match claim {
                DeliveryClaim::Duplicate(first) => {
                    count_answer(&mut summary, &first, row + 1, None);
                    single = Some(WebhookOutcome::Duplicate { first });
                    continue;
                }
                DeliveryClaim::InProgress { retry_after } => {
                    return Err(WebhookError::Busy {
                        what: "the same contact of this delivery is being handled now",
                        retry_after,
                    });
                }
                DeliveryClaim::Held { .. } | DeliveryClaim::Unguarded => {}
            }
            let outcome = match self
                .sync_found(route, submission, secret.clone(), deadline, log)
                .await
            {
                Ok(outcome) => outcome,
                Err(error) => {
                    self.dedupe.abandon(&claim).await;
                    return Err(error);
                }
            };
            count_answer(
                &mut summary,
                &outcome.to_response().json_body(),
                row + 1,
                submission.contact.email.as_deref().map(mask_email),
            );
            self.dedupe
                .finish(&claim, &outcome.to_response().json_body())
                .await;
            single = Some(outcome);
        }
        // One contact asked for and found: its own answer.
        match single {
            Some(outcome) if requested == 1 && found.len() == 1 => Ok(outcome),
            _ => Ok(WebhookOutcome::Batch(Box::new(summary))),
        }
    }

    /// Maps and syncs one contact a lookup found.
    async fn sync_found(
        &self,
        route: &Route,
        submission: &crate::submission::Submission,
        secret: Arc<AppSecret>,
        deadline: Instant,
        log: &mut RequestLog,
    ) -> Result<WebhookOutcome, WebhookError> {
        let webhook = submission;
        let contact = match crate::mapping::map_submission(submission, route) {
            crate::mapping::MappingOutcome::Contact(contact) => contact,
            crate::mapping::MappingOutcome::Skipped { reason } => {
                return Ok(WebhookOutcome::Skipped { reason });
            }
            crate::mapping::MappingOutcome::Rejected { reason } => {
                return Ok(WebhookOutcome::Rejected { reason });
            }
        };
        log.email = Some(contact.email.clone());
        match self
            .delivery
            .inline()
            .deliver(&contact, secret, deadline)
            .await
        {
            Ok(DeliveryOutcome::Synced { subscriber_id }) => {
                Ok(WebhookOutcome::Synced { subscriber_id })
            }
            Ok(DeliveryOutcome::Queued { message_id }) => Ok(WebhookOutcome::Queued { message_id }),
            Ok(DeliveryOutcome::Rejected { reason }) => {
                let message = QueuedContact::new(
                    &route.name,
                    webhook.delivery_id.as_deref(),
                    (*contact).clone(),
                );
                self.refusals.keep(&message, &reason, deadline).await;
                Ok(WebhookOutcome::Rejected { reason })
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    /// What a success would have answered, for a filled honeypot: a queued message's id in
    /// queue mode (a fresh UUID, as SQS gives), a synced contact's id inline (the same for the
    /// same email, as ActiveCampaign's is). Bots learn nothing from it.
    fn decoy(&self, route: &str, email: Option<&str>, secret: &AppSecret) -> WebhookOutcome {
        match self.delivery {
            Delivery::Queue { .. } => WebhookOutcome::Queued {
                message_id: random_message_id(),
            },
            Delivery::Inline(_) => WebhookOutcome::Synced {
                subscriber_id: Some(decoy_subscriber_id(route, email, secret)),
            },
        }
    }

    /// The route's captcha: `Ok(true)` verified, `Ok(false)` not verified because the provider
    /// is down and the route accepts that; 403 for a missing or failed token, 503 when the
    /// provider cannot be asked (by default) or refuses our secret.
    async fn check_captcha(
        &self,
        route: &Route,
        submission: &crate::submission::Submission,
        secret: &AppSecret,
        req: &InboundRequest,
        deadline: Instant,
    ) -> Result<bool, WebhookError> {
        let Some(rule) = &route.guard.captcha else {
            return Ok(true);
        };
        let token = rule.token(submission).ok_or(Refusal::CaptchaMissing)?;
        let not_configured = |reason: String| WebhookError::Unavailable {
            reason,
            retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
        };
        let key = secret.captcha_secrets.get(&route.name).ok_or_else(|| {
            not_configured(format!(
                "route {} has a captcha but the secret has no captcha_secrets.{}",
                route.name, route.name
            ))
        })?;
        let verifier = self
            .captcha
            .as_ref()
            .ok_or_else(|| not_configured("no captcha verifier was set up".into()))?;
        match verifier
            .verify(rule, key, token, req.source_ip.as_deref(), deadline)
            .await
        {
            Verdict::Passed => Ok(true),
            Verdict::Failed(why) => {
                tracing::warn!(route = %route.name, provider = rule.provider.name(), why = %why, "Captcha refused.");
                Err(Refusal::CaptchaFailed.into())
            }
            Verdict::Misconfigured(why) => Err(not_configured(why)),
            Verdict::Unavailable(why) => match rule.on_outage {
                CaptchaOutage::Refuse => Err(not_configured(format!(
                    "captcha provider {} unavailable: {why}",
                    rule.provider.name()
                ))),
                CaptchaOutage::Accept => {
                    tracing::warn!(route = %route.name, provider = rule.provider.name(), why = %why, "Captcha provider unavailable; delivering unverified, as the route allows.");
                    crate::metrics::emit(crate::metrics::defence(
                        &route.name,
                        crate::metrics::CAPTCHA_UNVERIFIED,
                    ));
                    Ok(false)
                }
            },
        }
    }

    async fn recall_batch(&self, digest: &str) -> Option<serde_json::Value> {
        let store = self.delivery.inline().imports()?;
        match store.recall_answer(digest).await {
            Ok(first) => first,
            Err(error) => {
                // Without the store a repeat is imported again: harmless to the data.
                tracing::warn!(error = %error, "Batch answers unreadable; a repeat is not recognised.");
                None
            }
        }
    }

    async fn remember_batch(&self, digest: &str, outcome: &WebhookOutcome) {
        let Some(store) = self.delivery.inline().imports() else {
            return;
        };
        if let Err(error) = store
            .remember_answer(digest, &outcome.to_response().json_body())
            .await
        {
            tracing::warn!(error = %error, "Batch answer not kept; a repeat would be imported again.");
        }
    }

    /// Delivers a batch's contacts together (see `deliver_batch`) and completes its summary.
    /// In queue mode they are queued for the sync-worker (answered at once); if the queue
    /// cannot be reached, or in inline mode, they are imported within the invocation.
    async fn deliver_batch(
        &self,
        route: &Route,
        contacts: Vec<crate::activecampaign::ContactSync>,
        row_of_email: std::collections::HashMap<String, usize>,
        mut summary: BatchSummary,
        secret: Arc<AppSecret>,
        deadline: Instant,
    ) -> Result<WebhookOutcome, WebhookError> {
        // Set when the queue took only part of a batch: the rest is imported inline.
        let mut queue_failed = None;
        let contacts = match self.delivery.queue_batch(route, contacts, deadline).await {
            Ok(queued) => {
                summary.queued = queued.queued.contacts;
                summary.messages = queued.queued.messages;
                if queued.left.is_empty() {
                    summary.rejected.sort_by_key(|r| r.row);
                    tracing::info!(route = %route.name, rows = summary.rows, queued = summary.queued, messages = summary.messages, skipped = summary.skipped, rejected = summary.rejected.len(), "Batch queued.");
                    return Ok(WebhookOutcome::Batch(Box::new(summary)));
                }
                if let Some(error) = &queued.error {
                    tracing::error!(error = %error, queued = summary.queued, left = queued.left.len(), "Queue unavailable for part of a batch; importing the rest inline instead.");
                }
                queue_failed = queued.error;
                queued.left
            }
            Err(inline) => inline,
        };
        let callback =
            CallbackTarget::required(self.callback_url.as_ref(), secret.callback_secret.as_ref())
                .map_err(|e| unavailable(e.into()))?;
        let result = self
            .delivery
            .inline()
            .deliver_batch(
                contacts,
                secret,
                crate::delivery::ImportOptions {
                    route: &route.name,
                    callback: callback.as_ref(),
                    exclude_automations: route.exclude_automations,
                    generation: 0,
                    must_finish: true,
                },
                deadline,
            )
            .await
            .map_err(|error| match (error, &queue_failed) {
                // Too much to import inline is the queue's outage here, not the batch's size:
                // the poster should come back, not give up.
                (error @ DeliveryError::TooSlow { .. }, Some(queue)) => WebhookError::Unavailable {
                    reason: format!(
                        "{queue}; and the rest of the batch cannot be imported inline ({error})"
                    ),
                    retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
                },
                (error, _) => unavailable(error),
            })?;
        summary.synced = result.synced;
        summary.imports = result.imports;
        for rejected in result.rejected {
            summary.rejected.push(RejectedRow {
                row: row_of_email.get(&rejected.email).copied().unwrap_or(0),
                email: Some(rejected.email),
                reason: rejected.reason,
            });
        }
        summary.rejected.sort_by_key(|r| r.row);
        tracing::info!(
            route = %route.name,
            rows = summary.rows,
            synced = summary.synced,
            imported = summary.imports.iter().map(|i| i.queued_contacts).sum::<usize>(),
            imports = summary.imports.len(),
            skipped = summary.skipped,
            rejected = summary.rejected.len(),
            "Batch handled."
        );
        Ok(WebhookOutcome::Batch(Box::new(summary)))
    }

    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.mapping.route(name)
    }
}

/// The digest that recognises a batch's repeat: its route and its exact bytes.
fn body_digest(route: &str, body: &[u8]) -> String {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    digest.update(route.as_bytes());
    digest.update([0]);
    digest.update(body);
    hex::encode(digest.finalize())
}

/// 503 for a cause that is the deployment's (the log says which).
fn unavailable_because(reason: String) -> WebhookError {
    WebhookError::Unavailable {
        reason,
        retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
    }
}

/// A contact that was not delivered: 413 when it can never be queued as it is, otherwise
/// 503 with `Retry-After` (the sender retries).
fn unavailable(error: DeliveryError) -> WebhookError {
    match error {
        DeliveryError::TooLarge(too_large) => WebhookError::ContactTooLarge(too_large),
        error @ DeliveryError::TooSlow { .. } => WebhookError::BatchTooSlow(error.to_string()),
        error => WebhookError::Unavailable {
            retry_after: error.retry_after(),
            reason: error.to_string(),
        },
    }
}

/// The claim key and window of a single delivery: the route, and the sender's id for it or
/// (without one) its exact body.
fn claim_key(
    route: &Route,
    submission: &crate::submission::Submission,
    body: &[u8],
) -> (String, Option<Duration>) {
    claim_key_for(
        route,
        submission.topic.as_deref(),
        submission.delivery_id.as_deref(),
        body,
    )
}

/// The claim of a delivery by its topic and id (or, without an id, its body).
fn claim_key_for(
    route: &Route,
    topic: Option<&str>,
    delivery_id: Option<&str>,
    body: &[u8],
) -> (String, Option<Duration>) {
    let identity = idempotency::delivery_identity(topic, delivery_id);
    let window = idempotency::window_for(route.dedupe_window, identity.is_some());
    let key = idempotency::key(Stage::Received, &route.name, identity.as_deref(), body);
    (key, window)
}

/// The events of a webhook's array that name `id` (`objectId`): what a queued lookup of one of
/// its several contacts keeps of it.
fn events_naming(payload: &serde_json::Value, id: &str) -> serde_json::Value {
    match payload.as_array() {
        Some(events) => serde_json::Value::Array(
            events
                .iter()
                .filter(|e| crate::submission::text_at(e, "objectId").as_deref() == Some(id))
                .cloned()
                .collect(),
        ),
        None => payload.clone(),
    }
}

/// Counts one contact's answer (its own, or the first answer of a duplicate) into `summary`.
fn count_answer(
    summary: &mut BatchSummary,
    answer: &serde_json::Value,
    row: usize,
    email: Option<String>,
) {
    match answer["status"].as_str() {
        Some("synced") => summary.synced += 1,
        Some("queued") => {
            summary.queued += 1;
            summary.messages += 1;
        }
        Some("rejected") => summary.rejected.push(RejectedRow {
            row,
            email,
            reason: answer["reason"].as_str().unwrap_or_default().to_string(),
        }),
        _ => summary.skipped += 1,
    }
}

/// An id shaped like an SQS message id: a random (version 4, RFC 4122 variant) UUID.
fn random_message_id() -> String {
    let mut bytes = [0u8; 16];
    fastrand::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A subscriber id for a decoy, the same for the same route and email: keyed by the API key,
/// so nobody can tell it from a real one by computing it.
fn decoy_subscriber_id(route: &str, email: Option<&str>, secret: &AppSecret) -> u64 {
    use secrecy::ExposeSecret;
    let tag = crate::crypto::hmac_sha256(
        secret.api_key.expose_secret().as_bytes(),
        &[
            b"decoy\0",
            route.as_bytes(),
            b"\0",
            email.unwrap_or_default().as_bytes(),
        ],
    );
    let mut first = [0u8; 8];
    first.copy_from_slice(&tag[..8]);
    1_000 + u64::from_le_bytes(first) % 9_999_000
}

/// Requests per route and source address in the current minute, in this container: a cheap
/// first line against one address flooding a form (a WAF rate rule in front is the real one).
/// An IPv6 address counts by its /64 (what one subscriber is given), an IPv4-mapped one as
/// its IPv4 address.
#[derive(Default)]
struct AddressLimits {
    counts: std::sync::Mutex<AddressWindow>,
}

#[derive(Default)]
struct AddressWindow {
    minute: u64,
    by_address: std::collections::HashMap<(String, std::net::IpAddr), u32>,
}

/// The most addresses counted in a minute. Past it, new addresses go uncounted (a flood from
/// that many addresses is the WAF's), and the ones counted keep their counts: filling the
/// table resets nobody.
const MAX_ADDRESSES: usize = 10_000;

/// The unit an address is counted in: an IPv4 address, or an IPv6 /64.
fn address_unit(address: &str) -> Option<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv6Addr};
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                Some(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
        },
        v4 => Some(v4),
    }
}

impl AddressLimits {
    fn admit(
        &self,
        route: &str,
        address: Option<&str>,
        per_minute: u32,
    ) -> Result<(), WebhookError> {
        let Some(unit) = address.and_then(address_unit) else {
            return Ok(());
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut window = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if window.minute != now / 60 {
            window.minute = now / 60;
            window.by_address.clear();
        }
        let key = (route.to_string(), unit);
        if window.by_address.len() >= MAX_ADDRESSES && !window.by_address.contains_key(&key) {
            return Ok(());
        }
        let count = window.by_address.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        if *count > per_minute {
            return Err(WebhookError::TooManyRequests {
                retry_after: Duration::from_secs(60 - now % 60),
            });
        }
        Ok(())
    }
}

fn outcome_reason(outcome: &WebhookOutcome) -> Option<&str> {
    match outcome {
        WebhookOutcome::Synced { .. }
        | WebhookOutcome::Queued { .. }
        | WebhookOutcome::Batch(_)
        | WebhookOutcome::Duplicate { .. } => None,
        WebhookOutcome::Skipped { reason }
        | WebhookOutcome::Ignored { reason }
        | WebhookOutcome::Rejected { reason } => Some(reason),
    }
}
