//! The import-callback function: ActiveCampaign calls it when a bulk import completes. Its
//! payload is undocumented, so it is only a trigger: the callback is authenticated by the
//! token this deployment put in it, `import/info` says how the import ended, the outcome is
//! recorded once (repeats change nothing), logged and counted, and the contacts of a failed or
//! interrupted import go back through the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{HEALTH_PATH, health};
use crate::activecampaign::importer::ImportStatus;
use crate::activecampaign::{Account, ActiveCampaignClient, ContactSync};
use crate::crypto::constant_time_eq;
use crate::delivery::callback::{
    CALLBACK_REF_PARAM, CALLBACK_TOKEN_HEADER, CALLBACK_TOKEN_PARAM, callback_token,
};
use crate::delivery::import_store::SUBMITTED;
use crate::delivery::{Claim, ContactQueue, ImportStore, QueuedContact};
use crate::inbound::InboundRequest;
use crate::metrics;
use crate::redact::mask_email;
use crate::response::{HttpResponse, WebhookError};
use crate::secret::{AppSecret, SecretCache, before_deadline};
use crate::sources::AuthError;

/// Upper bound of one callback's work: the importer should get its answer quickly.
const CALLBACK_BUDGET: Duration = Duration::from_secs(8);
/// The largest callback body read. The importer's detailed results name at most 250 failed
/// contacts; anything larger is not a callback of ours, and is refused before it is parsed
/// (the function is public and this check comes before authentication).
pub const MAX_CALLBACK_BODY_BYTES: usize = 256 * 1024;
/// The parameters a callback is read for; nothing else in its body is kept.
const CALLBACK_KEYS: [&str; 5] = [
    CALLBACK_REF_PARAM,
    CALLBACK_TOKEN_PARAM,
    "batchId",
    "batch_id",
    "route",
];

/// How long a settler's claim on a record outlasts its deadline (the Lambda timeout's margin
/// over the budget).
const LEASE_MARGIN: Duration = Duration::from_secs(3);
/// Kept back from a requeue's sends to record how far they got.
const PROGRESS_WRITE: Duration = Duration::from_secs(1);

/// How many failed imports a contact is requeued from before it is dead-lettered instead
/// (an account at its contact limit fails every import: no requeue loop).
pub const DEFAULT_MAX_IMPORT_GENERATIONS: u32 = 3;

pub struct CallbackApp {
    store: Option<Arc<dyn ImportStore>>,
    secrets: Arc<SecretCache>,
    client: ActiveCampaignClient,
    queue: Option<Arc<dyn ContactQueue>>,
    dead_letters: Option<Arc<dyn ContactQueue>>,
    max_generations: u32,
}

impl CallbackApp {
    pub fn new(
        store: Option<Arc<dyn ImportStore>>,
        secrets: Arc<SecretCache>,
        client: ActiveCampaignClient,
        queue: Option<Arc<dyn ContactQueue>>,
    ) -> Self {
        Self {
            store,
            secrets,
            client,
            queue,
            dead_letters: None,
            max_generations: DEFAULT_MAX_IMPORT_GENERATIONS,
        }
    }

    /// Contacts of an import that failed `max_generations` times go to `queue` with the
    /// import's batch id and status as their reason.
    pub fn with_dead_letters(
        mut self,
        queue: Option<Arc<dyn ContactQueue>>,
        max_generations: u32,
    ) -> Self {
        self.dead_letters = queue;
        self.max_generations = max_generations;
        self
    }

    pub fn deadline(&self) -> Instant {
        Instant::now() + CALLBACK_BUDGET
    }

    pub(crate) fn store(&self) -> Option<&dyn ImportStore> {
        self.store.as_deref()
    }

    pub(crate) fn secrets(&self) -> &SecretCache {
        &self.secrets
    }

    pub async fn handle(&self, req: &InboundRequest, deadline: Instant) -> HttpResponse {
        if req.path.trim_end_matches('/') == HEALTH_PATH && req.method == Method::GET {
            return health();
        }
        if req.method != Method::GET && req.method != Method::POST {
            return WebhookError::MethodNotAllowed { allow: "GET, POST" }.to_response();
        }
        match self.settle(req, deadline).await {
            Ok(body) => HttpResponse::json(StatusCode::OK, &body),
            Err(error) => {
                tracing::warn!(status = error.status().as_u16(), error = %error, "Import callback not accepted.");
                error.to_response()
            }
        }
    }

    /// The secret, once `token` is this deployment's token for `reference`.
    async fn check_token(
        &self,
        reference: &str,
        token: &str,
        deadline: Instant,
    ) -> Result<Arc<AppSecret>, WebhookError> {
        let secret = before_deadline(deadline, self.secrets.get())
            .await
            .map_err(unavailable)?;
        let key = secret
            .callback_secret
            .as_ref()
            .ok_or(AuthError::NoSecretConfigured)?;
        if !constant_time_eq(callback_token(key, reference).as_bytes(), token.as_bytes()) {
            return Err(AuthError::TokenMismatch.into());
        }
        Ok(secret)
    }

    async fn settle(&self, req: &InboundRequest, deadline: Instant) -> Result<Value, WebhookError> {
        if req.body.len() > MAX_CALLBACK_BODY_BYTES {
            return Err(WebhookError::PayloadTooLarge {
                size: req.body.len(),
                limit: MAX_CALLBACK_BODY_BYTES,
            });
        }
        // Our callbacks carry the reference in the URL and the token in a header: both are
        // checked before the body is parsed.
        let query_ref = req
            .query
            .iter()
            .find(|(k, _)| k == CALLBACK_REF_PARAM)
            .map(|(_, v)| v.clone());
        if let (Some(reference), Some(token)) = (&query_ref, req.header(CALLBACK_TOKEN_HEADER)) {
            self.check_token(reference, token, deadline).await?;
        }
        let params = callback_params(req);
        let reference = params
            .get(CALLBACK_REF_PARAM)
            .cloned()
            .ok_or(AuthError::MissingToken)?;
        let token = req
            .header(CALLBACK_TOKEN_HEADER)
            .map(str::to_string)
            .or_else(|| params.get(CALLBACK_TOKEN_PARAM).cloned())
            .ok_or(AuthError::MissingToken)?;
        let secret = self.check_token(&reference, &token, deadline).await?;
        let record = match &self.store {
            Some(store) => store.get(&reference).await.map_err(unavailable)?,
            None => None,
        };
        if record.as_ref().is_some_and(|r| r.status != SUBMITTED) {
            return Ok(json!({"status": "already_recorded", "ref": reference}));
        }
        let batch_id = params
            .get("batchId")
            .or_else(|| params.get("batch_id"))
            .cloned();
        self.settle_import(&reference, record, batch_id, &secret, deadline)
            .await
    }

    /// Settles one import: `import/info` says how it ended; a final outcome is requeued (if
    /// the import failed), then recorded once, logged and counted. Shared by the callback and
    /// the reconciler, which finds imports whose callback never settled them.
    pub(crate) async fn settle_import(
        &self,
        reference: &str,
        record: Option<crate::delivery::ImportRecord>,
        batch_id: Option<String>,
        secret: &AppSecret,
        deadline: Instant,
    ) -> Result<Value, WebhookError> {
        let batch_id = record.as_ref().map(|r| r.batch_id.clone()).or(batch_id);
        let Some(batch_id) = batch_id else {
            tracing::warn!(reference = %reference, "Import callback for an import with no record and no batch id.");
            return Ok(
                json!({"status": "unknown", "ref": reference, "reason": "no record of this import"}),
            );
        };
        let account = Account {
            api_url: &secret.api_url,
            api_key: &secret.api_key,
        };
        let info = self
            .client
            .import_info(account, &batch_id, deadline)
            .await
            .map_err(unavailable)?;
        if !info.status.is_final() {
            tracing::info!(batch_id = %batch_id, import_status = info.status.as_str(), "Import not finished yet.");
            return Ok(
                json!({"status": "pending", "batch_id": batch_id, "import_status": info.status.as_str()}),
            );
        }
        let route = record
            .as_ref()
            .map_or("unknown", |r| r.route.as_str())
            .to_string();
        let failed = info.failure.len();
        let import_failed = matches!(
            info.status,
            ImportStatus::Failed | ImportStatus::Interrupted
        );
        // A failed import's contacts are sent back (or dead-lettered), not imported: none of
        // them counts as imported.
        let succeeded = match (&record, import_failed) {
            (_, true) => 0,
            (Some(record), false) => record.contacts.len().saturating_sub(failed),
            (None, false) => info.success.len(),
        };
        // Requeue first, settle after: if the sends fail part-way the callback answers 503
        // and the record stays open with how far they got, so the importer's retry (or the
        // reconciler) sends only the rest.
        let requeued = match (record, import_failed) {
            (Some(record), true) => {
                let Some(record) = self.claim(reference, record, deadline).await? else {
                    return Ok(json!({"status": "already_recorded", "batch_id": batch_id}));
                };
                self.requeue(&record, info.status.as_str(), &info.failure, deadline)
                    .await?
            }
            _ => Requeued::default(),
        };
        let first = match &self.store {
            Some(store) => store
                .finish(reference, info.status.as_str(), succeeded, failed)
                .await
                .map_err(unavailable)?,
            None => true,
        };
        if !first {
            return Ok(json!({"status": "already_recorded", "batch_id": batch_id}));
        }
        let failed_emails: Vec<String> = info.failure.iter().map(|e| mask_email(e)).collect();
        tracing::info!(
            batch_id = %batch_id,
            route = %route,
            import_status = info.status.as_str(),
            succeeded,
            failed,
            requeued = requeued.queued,
            dead_lettered = requeued.dead_lettered,
            failed_emails = ?failed_emails,
            "Bulk import finished."
        );
        metrics::emit(metrics::import_outcome(
            &route,
            metrics::ImportCounts {
                succeeded,
                failed,
                requeued: requeued.queued,
                dead_lettered: requeued.dead_lettered,
                import_failed,
            },
        ));
        Ok(json!({
            "status": "recorded",
            "batch_id": batch_id,
            "import_status": info.status.as_str(),
            "succeeded": succeeded,
            "failed": failed,
            "requeued": requeued.queued,
            "dead_lettered": requeued.dead_lettered,
        }))
    }

    /// The record, taken for this settler (see [`ImportStore::claim`]); `None` once its
    /// outcome is recorded. Another settler at work is a 503: the retry finds it settled.
    async fn claim(
        &self,
        reference: &str,
        record: crate::delivery::ImportRecord,
        deadline: Instant,
    ) -> Result<Option<crate::delivery::ImportRecord>, WebhookError> {
        let Some(store) = &self.store else {
            return Ok(Some(record));
        };
        // The lease outlasts this settler's deadline by the Lambda's own margin, so one that
        // is stopped at its timeout gives the record up soon after.
        let lease = deadline.saturating_duration_since(Instant::now()) + LEASE_MARGIN;
        match store.claim(reference, lease).await.map_err(unavailable)? {
            Claim::Claimed(record) => Ok(Some(record)),
            Claim::Settled => Ok(None),
            Claim::Busy { for_secs } => Err(WebhookError::Busy {
                what: "another settler is sending this import's contacts back",
                retry_after: Duration::from_secs(for_secs),
            }),
        }
    }

    /// Sends a failed import's contacts back through the queue (in `SendMessageBatch`es),
    /// except those the importer named as failing (their data is at fault, not the import),
    /// starting where an earlier settler stopped. Contacts already requeued from
    /// `max_generations` failed imports go to the dead-letter queue instead, with the
    /// import's batch id and status as the reason.
    async fn requeue(
        &self,
        record: &crate::delivery::ImportRecord,
        status: &str,
        failed: &[String],
        deadline: Instant,
    ) -> Result<Requeued, WebhookError> {
        let generation = record.generation + 1;
        let exhausted = generation > self.max_generations;
        let target = if exhausted {
            &self.dead_letters
        } else {
            &self.queue
        };
        let Some(queue) = target else {
            tracing::error!(batch_id = %record.batch_id, exhausted, "Import failed and no queue is configured to keep its contacts.");
            return Err(WebhookError::Unavailable {
                reason: "no queue to keep a failed import's contacts".into(),
                retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
            });
        };
        let kept = |contact: &&ContactSync| {
            !failed
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&contact.email))
        };
        // Each body with its contact's position in the record, from where the last settler
        // stopped.
        let (positions, bodies): (Vec<usize>, Vec<String>) = record
            .contacts
            .iter()
            .enumerate()
            .skip(record.requeued_upto)
            .filter(|(_, contact)| kept(contact))
            .map(|(position, contact)| {
                let mut message =
                    QueuedContact::new(&record.route, Some(&record.batch_id), contact.clone());
                message.generation = generation;
                message.exclude_automations = record.exclude_automations;
                (position, message.to_json())
            })
            .unzip();
        let reason = format!(
            "import {} ended {status} {} times",
            record.batch_id, generation
        );
        let attributes: Vec<(&str, &str)> = if exhausted {
            vec![
                (crate::delivery::REASON_ATTRIBUTE, reason.as_str()),
                (crate::delivery::ROUTE_ATTRIBUTE, record.route.as_str()),
            ]
        } else {
            Vec::new()
        };
        // Time is kept back to write down how far the sends got.
        let sends_until = deadline.checked_sub(PROGRESS_WRITE).unwrap_or(deadline);
        if let Err(partly) = queue.send_many(bodies, &attributes, sends_until).await {
            let upto = positions
                .get(partly.sent)
                .copied()
                .unwrap_or(record.contacts.len());
            if let Some(store) = &self.store
                && let Err(error) = store.requeue_progress(&record.reference, upto).await
            {
                // The next settler resends from the last progress kept: twice, never lost.
                tracing::warn!(batch_id = %record.batch_id, error = %error, "Requeue progress not kept.");
            }
            tracing::warn!(batch_id = %record.batch_id, sent_back = upto, of = record.contacts.len(), error = %partly.error, "Failed import's contacts sent back part-way; the rest wait for the next settler.");
            return Err(WebhookError::Unavailable {
                reason: partly.error.to_string(),
                retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
            });
        }
        let sent = record.contacts.iter().filter(kept).count();
        if exhausted {
            tracing::error!(batch_id = %record.batch_id, contacts = sent, reason = %reason, "Contacts of a repeatedly failing import dead-lettered.");
            Ok(Requeued {
                queued: 0,
                dead_lettered: sent,
            })
        } else {
            Ok(Requeued {
                queued: sent,
                dead_lettered: 0,
            })
        }
    }
}

/// What became of a failed import's contacts.
#[derive(Debug, Default)]
struct Requeued {
    queued: usize,
    dead_lettered: usize,
}

fn unavailable(error: impl std::fmt::Display) -> WebhookError {
    WebhookError::Unavailable {
        reason: error.to_string(),
        retry_after: crate::delivery::DEFAULT_RETRY_AFTER,
    }
}

/// Every key/value the callback carries: the query string (GET), a form or JSON body (POST;
/// the importer's encoding is undocumented), and `params` arrays of `{key, value}`.
/// The callback's parameters (query first, then a JSON or form body); only the keys a
/// callback is read for are kept.
pub fn callback_params(req: &InboundRequest) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = HashMap::new();
    let mut add = |key: &str, value: &Value| {
        if !CALLBACK_KEYS.contains(&key) {
            return;
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        params.entry(key.to_string()).or_insert(text);
    };
    for (key, value) in &req.query {
        add(key, &Value::String(value.clone()));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(body)) => {
            for (key, value) in &body {
                add(key, value);
            }
            if let Some(Value::Array(items)) = body.get("params") {
                for item in items {
                    if let (Some(Value::String(key)), Some(value)) =
                        (item.get("key"), item.get("value"))
                    {
                        add(key, value);
                    }
                }
            }
        }
        _ => {
            // Pair by pair, without collecting a body of `a&a&a…` into millions of strings.
            for (key, value) in form_urlencoded::parse(&req.body) {
                if CALLBACK_KEYS.contains(&key.as_ref()) {
                    add(&key, &Value::String(value.into_owned()));
                }
            }
        }
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    #[test]
    fn params_from_query_json_form_and_param_arrays() {
        let mut req = InboundRequest::post("/?ref=r1&token=t1", HeaderMap::new(), "");
        req.method = Method::GET;
        assert_eq!(callback_params(&req)["ref"], "r1");
        let json = InboundRequest::post(
            "/",
            HeaderMap::new(),
            r#"{"ref":"r2","batchId":"b","params":[{"key":"token","value":"t2"}]}"#,
        );
        let p = callback_params(&json);
        assert_eq!(
            (
                p["ref"].as_str(),
                p["token"].as_str(),
                p["batchId"].as_str()
            ),
            ("r2", "t2", "b")
        );
        let form = InboundRequest::post("/", HeaderMap::new(), "ref=r3&token=t3&success=10");
        assert_eq!(callback_params(&form)["token"], "t3");
    }
}
