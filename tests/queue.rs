//! Durable delivery against a real SQS-compatible server (moto): the webhook function answers
//! `queued`, the sync-worker drains the queue into a fake ActiveCampaign, and nothing
//! acknowledged is lost, whether ActiveCampaign throttles, fails, or a message is unreadable.

mod support;

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant as StdInstant};

use ac_webhook_sync::delivery::{
    ContactQueue, IdempotencyStore, InlineDelivery, MemoryIdempotencyStore, MemoryQueue,
    PartlySent, QueueError, StoreError,
};
use ac_webhook_sync::functions::sync_worker::{QueueRecord, REASON_ATTRIBUTE, SyncWorker};
use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::secret::{AppSecret, FixedSecret, SecretCache, SecretError, SecretSource};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use http::HeaderMap;
use serde_json::json;
use std::sync::Arc;
use support::moto::{Moto, sqs_client};
use support::*;
use tokio::time::Instant;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

struct Queues {
    client: aws_sdk_sqs::Client,
    queue: String,
    dlq: String,
}

async fn queues(moto: &Moto) -> Queues {
    let client = sqs_client(&moto.endpoint);
    let mut urls = Vec::new();
    for name in ["contacts", "contacts-dlq"] {
        let created = client
            .create_queue()
            .queue_name(name)
            // Failed messages come back at once, so a test does not wait for visibility.
            .attributes(QueueAttributeName::VisibilityTimeout, "0")
            .send()
            .await
            .unwrap();
        urls.push(created.queue_url().unwrap().to_string());
    }
    Queues {
        client,
        dlq: urls.pop().unwrap(),
        queue: urls.pop().unwrap(),
    }
}

fn secrets(api_url: &str) -> Arc<SecretCache> {
    Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(api_url)),
        Duration::from_secs(300),
    ))
}

fn worker(q: &Queues, api_url: &str, max_receive_count: u32) -> SyncWorker {
    let secrets = secrets(api_url);
    SyncWorker::new(
        InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        Some(support::moto::sqs_queue(q.client.clone(), &q.dlq)),
        max_receive_count,
    )
}

fn queued_app(q: &Queues, api_url: &str) -> WebhookApp {
    app_with(
        FixedSecret(local_secret_json(api_url)),
        fast_client(),
        1 << 20,
    )
    .with_queue(support::moto::sqs_queue(q.client.clone(), &q.queue))
}

/// A received message as the worker takes it (what Lambda's event carries).
fn record_of(m: &aws_sdk_sqs::types::Message) -> QueueRecord {
    QueueRecord {
        message_id: m.message_id().unwrap().to_string(),
        receipt_handle: m.receipt_handle().unwrap().to_string(),
        body: m.body().unwrap().to_string(),
        receive_count: m
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|c| c.parse().ok())
            .unwrap(),
    }
}

/// What Lambda's SQS event source does: receive up to 10, invoke, delete what succeeded.
/// Returns how many batches it took to empty the queue.
async fn drain(q: &Queues, worker: &SyncWorker, budget: Duration) -> usize {
    let mut batches = 0;
    let started = StdInstant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "queue did not drain"
        );
        let received = q
            .client
            .receive_message()
            .queue_url(&q.queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return batches;
        }
        batches += 1;
        let records: Vec<QueueRecord> = messages.iter().map(record_of).collect();
        let report = worker.process(records, Instant::now() + budget).await;
        // Delete what succeeded, ten per call, as Lambda's event source does.
        let mut delete = q.client.delete_message_batch().queue_url(&q.queue);
        let mut any = false;
        for (i, m) in messages.iter().enumerate() {
            if !report.failed.iter().any(|f| f == m.message_id().unwrap()) {
                let entry = aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap())
                    .build()
                    .unwrap();
                delete = delete.entries(entry);
                any = true;
            }
        }
        if any {
            delete.send().await.unwrap();
        }
    }
}

/// Every message waiting in the dead-letter queue, with its attributes (received until the
/// queue has no more, each hidden meanwhile so none is counted twice).
async fn dead_letters(q: &Queues) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let batch = q
            .client
            .receive_message()
            .queue_url(&q.dlq)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if batch.is_empty() {
            return all;
        }
        all.extend(batch);
    }
}

fn form_post(email: &str) -> ac_webhook_sync::inbound::InboundRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let body = json!({"email": email, "name": "Burst Person", "company": "Flash Sale"}).to_string();
    ac_webhook_sync::inbound::InboundRequest::post(
        "/webhooks/form?token=local-form-token",
        headers,
        body,
    )
}

/// The emails of a request the fake is about to answer with success: the `contact_sync`'s
/// one, or every contact of a bulk import.
fn emails_of(request: &Request) -> Vec<String> {
    if request.url.path() == "/api/3/import/bulk_import" {
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        return body["contacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap().to_string())
            .collect();
    }
    form_urlencoded::parse(&request.body)
        .filter(|(k, _)| k == "email")
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn synced_emails(syncs: &[Vec<(String, String)>]) -> BTreeSet<String> {
    syncs
        .iter()
        .filter_map(|pairs| {
            pairs
                .iter()
                .find(|(k, _)| k == "email")
                .map(|(_, v)| v.clone())
        })
        .collect()
}

/// ActiveCampaign's limit, scaled: at most `per_second` requests in any second, else 429.
struct Throttled {
    per_second: usize,
    seen: Mutex<VecDeque<StdInstant>>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    /// Emails of the requests answered with success (a contact answered 429 is not in it).
    accepted: Arc<Mutex<BTreeSet<String>>>,
}

impl Respond for Throttled {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut seen = self.seen.lock().unwrap();
        let now = StdInstant::now();
        while seen
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            seen.pop_front();
        }
        if seen.len() >= self.per_second {
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return ResponseTemplate::new(429).insert_header("Retry-After", "1");
        }
        seen.push_back(now);
        self.accepted.lock().unwrap().extend(emails_of(request));
        if request.url.path() == "/api/3/import/bulk_import" {
            return ResponseTemplate::new(200).set_body_json(
                json!({"success": 1, "queued_contacts": 10, "batchId": format!("b-{}", seen.len())}),
            );
        }
        ResponseTemplate::new(200).set_body_json(synced_body(1))
    }
}

/// Posts `people` webhooks in queue mode, then drains the queue against a fake that allows
/// `per_second` requests. Returns (bulk imports, all requests, 429s answered).
async fn burst(people: usize, per_second: usize) -> (usize, usize, usize) {
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    Mock::given(method("POST"))
        .respond_with(Throttled {
            per_second,
            seen: Mutex::new(VecDeque::new()),
            refused: refused.clone(),
            accepted: accepted.clone(),
        })
        .mount(&ac)
        .await;
    let app = queued_app(&q, &ac.uri());
    let emails: BTreeSet<String> = (0..people)
        .map(|i| format!("buyer{i}@example.com"))
        .collect();
    for email in &emails {
        let response = send(&app, &form_post(email)).await;
        assert_eq!(
            response.json_body()["status"],
            "queued",
            "{}",
            response.body
        );
        assert!(
            response.json_body()["message_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty())
        );
    }
    // The same buyer twice: one person, merged into one call when they share a batch.
    send_event(&app, "shopify-orders-create").await;
    send_event(&app, "shopify-orders-paid").await;
    assert!(
        ac.received_requests().await.unwrap().is_empty(),
        "nothing synced before the worker runs"
    );

    // The worker paces faster than the fake allows, so it meets 429s and must honour them.
    let settings = ac_webhook_sync::activecampaign::ClientSettings {
        requests_per_second: 40.0,
        imports_per_second: 40.0,
        base_backoff: Duration::from_millis(20),
        ..Default::default()
    };
    let client = ac_webhook_sync::activecampaign::ActiveCampaignClient::new(settings).unwrap();
    let cache = secrets(&ac.uri());
    let worker = SyncWorker::new(
        InlineDelivery::new(client, cache.clone()),
        cache,
        Some(support::moto::sqs_queue(q.client.clone(), &q.dlq)),
        5,
    );
    drain(&q, &worker, Duration::from_secs(10)).await;
    let received = ac.received_requests().await.unwrap();
    let imports = received
        .iter()
        .filter(|r| r.url.path() == "/api/3/import/bulk_import")
        .count();
    let mut expected = emails.clone();
    expected.insert("jon@example.com".into());
    assert_eq!(
        *accepted.lock().unwrap(),
        expected,
        "every acknowledged contact was answered success by ActiveCampaign"
    );
    assert!(dead_letters(&q).await.is_empty(), "nothing dead-lettered");
    let refused = refused.load(std::sync::atomic::Ordering::SeqCst);
    (imports, received.len(), refused)
}

#[tokio::test]
async fn a_burst_of_a_thousand_is_acknowledged_at_once_and_none_is_lost() {
    let _logs = logs::checked();
    let (imports, requests, _) = burst(1000, 50).await;
    // Batches of ten people go through the importer: far fewer requests than contacts.
    assert!(imports >= 90, "{imports} bulk imports");
    assert!(requests < 200, "{requests} requests for 1,001 contacts");
}

/// Every message of the queue in one batch, as an event source mapping with a large batch
/// size hands them over.
async fn receive_all(q: &Queues) -> Vec<QueueRecord> {
    let mut records = Vec::new();
    loop {
        let messages = q
            .client
            .receive_message()
            .queue_url(&q.queue)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if messages.is_empty() {
            return records;
        }
        records.extend(messages.iter().map(record_of));
    }
}

#[tokio::test]
async fn a_large_batch_hands_back_only_the_imports_not_made() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    // The first import is queued; ActiveCampaign then fails for the whole account.
    let imported = Arc::new(Mutex::new(BTreeSet::new()));
    let first = imported.clone();
    Mock::given(method("POST"))
        .respond_with(move |request: &Request| {
            let mut first = first.lock().unwrap();
            if first.is_empty() {
                first.extend(emails_of(request));
                return ResponseTemplate::new(200).set_body_json(
                    json!({"success": 1, "queued_contacts": 200, "batchId": "b-1"}),
                );
            }
            ResponseTemplate::new(500)
        })
        .mount(&ac)
        .await;
    let app = queued_app(&q, &ac.uri());
    for i in 0..600 {
        let response = send(&app, &form_post(&format!("p{i}@example.com"))).await;
        assert_eq!(response.json_body()["status"], "queued");
    }
    let records = receive_all(&q).await;
    assert_eq!(records.len(), 600);
    let ids: std::collections::HashMap<String, String> = records
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            let email = body["contact"]["email"].as_str().unwrap().to_string();
            (r.message_id.clone(), email)
        })
        .collect();
    let worker = worker(&q, &ac.uri(), 5);
    let report = worker
        .process(records, Instant::now() + Duration::from_secs(10))
        .await;
    let imported = imported.lock().unwrap().clone();
    // 600 people are three imports of 200: the one made keeps its messages out of the retry.
    assert_eq!(imported.len(), 200, "one import of a third of the batch");
    assert_eq!(report.imported, 200);
    assert_eq!(report.failed.len(), 400, "{report:?}");
    let retried: BTreeSet<String> = report.failed.iter().map(|id| ids[id].clone()).collect();
    assert!(
        retried.is_disjoint(&imported),
        "nothing imported is retried"
    );
    assert!(dead_letters(&q).await.is_empty());
}

#[tokio::test]
async fn throttling_is_honoured_without_loss() {
    let _logs = logs::checked();
    let (_, _, refused) = burst(60, 2).await;
    assert!(
        refused > 0,
        "the fake answered 429 and the worker honoured it"
    );
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_with_its_reason() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    mount_contact_sync(
        &ac,
        ResponseTemplate::new(200).set_body_json(synced_body(1)),
    )
    .await;
    q.client
        .send_message()
        .queue_url(&q.queue)
        .message_body("{\"not\": \"a contact\"}")
        .send()
        .await
        .unwrap();
    send(&queued_app(&q, &ac.uri()), &form_post("fine@example.com")).await;
    drain(&q, &worker(&q, &ac.uri(), 5), Duration::from_secs(10)).await;
    assert_eq!(
        synced_emails(&received_syncs(&ac).await),
        BTreeSet::from(["fine@example.com".to_string()])
    );
    let dead = dead_letters(&q).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("{\"not\": \"a contact\"}"));
    let reason = dead[0].message_attributes().unwrap()[REASON_ATTRIBUTE]
        .string_value()
        .unwrap();
    assert!(reason.contains("not a queued contact"), "{reason}");
}

#[tokio::test]
async fn an_outage_retries_until_the_last_receive_then_dead_letters_with_the_reason() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&ac)
        .await;
    let response = send(
        &queued_app(&q, &ac.uri()),
        &form_post("patient@example.com"),
    )
    .await;
    assert_eq!(response.json_body()["status"], "queued");
    drain(&q, &worker(&q, &ac.uri(), 3), Duration::from_secs(1)).await;
    let dead = dead_letters(&q).await;
    assert_eq!(dead.len(), 1, "kept, not lost");
    let reason = dead[0].message_attributes().unwrap()[REASON_ATTRIBUTE]
        .string_value()
        .unwrap();
    assert!(reason.contains("HTTP 503"), "{reason}");
    assert!(dead[0].body().unwrap().contains("patient@example.com"));
}

#[tokio::test]
async fn without_a_queue_the_webhook_syncs_inline_or_answers_503() {
    let _logs = logs::checked();
    let closed = format!("http://127.0.0.1:{}", support::moto::free_port());
    let unreachable = support::moto::sqs_queue(
        sqs_client(&closed),
        format!("{closed}/123456789012/contacts"),
    );
    let ac = MockServer::start().await;
    mount_contact_sync(
        &ac,
        ResponseTemplate::new(200).set_body_json(synced_body(8)),
    )
    .await;
    let app = app_with(
        FixedSecret(local_secret_json(&ac.uri())),
        fast_client(),
        1 << 20,
    )
    .with_queue(unreachable.clone());
    let response = send(&app, &form_post("fallback@example.com")).await;
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 8})
    );
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let app = app_with(
        FixedSecret(local_secret_json(&down.uri())),
        fast_client(),
        1 << 20,
    )
    .with_queue(unreachable);
    let response = send(&app, &form_post("nowhere@example.com")).await;
    assert_eq!(
        response.status, 503,
        "neither queued nor synced: the sender must retry"
    );
}

#[tokio::test]
async fn a_refused_contact_is_dead_lettered_with_its_reason_and_route() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    mount_users_me(&ac).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains(
            "refused%40example.com",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "result_code": 0, "result_message": "Invalid list id", "result_output": "json"
        })))
        .with_priority(1)
        .mount(&ac)
        .await;
    mount_contact_sync(
        &ac,
        ResponseTemplate::new(200).set_body_json(synced_body(1)),
    )
    .await;
    let app = queued_app(&q, &ac.uri());
    for email in ["fine@example.com", "refused@example.com"] {
        assert_eq!(
            send(&app, &form_post(email)).await.json_body()["status"],
            "queued"
        );
    }
    drain(&q, &worker(&q, &ac.uri(), 5), Duration::from_secs(10)).await;
    let dead = dead_letters(&q).await;
    assert_eq!(dead.len(), 1, "the refusal is kept, once");
    assert!(dead[0].body().unwrap().contains("refused@example.com"));
    let attributes = dead[0].message_attributes().unwrap();
    assert_eq!(
        attributes[REASON_ATTRIBUTE].string_value(),
        Some("rejected: Invalid list id")
    );
    assert_eq!(attributes["route"].string_value(), Some("form"));
    assert_eq!(
        key_checks(&ac).await,
        1,
        "the key was confirmed before blaming the data"
    );
}

#[tokio::test]
async fn a_revoked_key_answered_result_code_0_is_retried_never_dead_lettered_as_refused() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(v1_bad_key())
        .mount(&ac)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&ac)
        .await;
    send(&queued_app(&q, &ac.uri()), &form_post("kept@example.com")).await;
    drain(&q, &worker(&q, &ac.uri(), 3), Duration::from_secs(2)).await;
    let dead = dead_letters(&q).await;
    assert_eq!(dead.len(), 1);
    let reason = dead[0].message_attributes().unwrap()[REASON_ATTRIBUTE]
        .string_value()
        .unwrap()
        .to_string();
    assert!(reason.contains("API key"), "{reason}");
    assert!(!reason.starts_with("rejected"), "{reason}");
}

/// Receives one batch as the event source mapping would, with receipt handles.
async fn receive(q: &Queues) -> Vec<QueueRecord> {
    let received = q
        .client
        .receive_message()
        .queue_url(&q.queue)
        .max_number_of_messages(10)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    received
        .messages
        .unwrap_or_default()
        .iter()
        .map(|m| QueueRecord {
            message_id: m.message_id().unwrap().to_string(),
            receipt_handle: m.receipt_handle().unwrap().to_string(),
            body: m.body().unwrap().to_string(),
            receive_count: 1,
        })
        .collect()
}

#[tokio::test]
async fn a_long_retry_after_hides_the_batch_for_the_wait_and_spends_no_attempts() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&ac)
        .await;
    let app = queued_app(&q, &ac.uri());
    send(&app, &form_post("first@example.com")).await;
    let worker = worker(&q, &ac.uri(), 5).with_source_queue(
        Some(support::moto::sqs_queue(q.client.clone(), &q.queue)),
        ac_webhook_sync::functions::sync_worker::RetrySchedule {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    );
    let first = receive(&q).await;
    let report = worker
        .process(first, Instant::now() + Duration::from_secs(5))
        .await;
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.delayed[0].1, Duration::from_secs(3600));
    // The queue's own visibility timeout is 0: only the worker's hiding keeps it away.
    assert!(
        receive(&q).await.is_empty(),
        "handed back hidden for the wait"
    );
    // A later batch meets the container's pause: handed back at once for the time left,
    // without asking ActiveCampaign again.
    send(&app, &form_post("second@example.com")).await;
    let second = receive(&q).await;
    assert_eq!(second.len(), 1);
    let report = worker
        .process(second, Instant::now() + Duration::from_secs(5))
        .await;
    assert_eq!(report.failed.len(), 1);
    let left = report.delayed[0].1.as_secs();
    assert!((3590..=3600).contains(&left), "{left}");
    assert!(receive(&q).await.is_empty());
    assert_eq!(ac.received_requests().await.unwrap().len(), 1);
    assert!(dead_letters(&q).await.is_empty());
}

/// The event source mapping, run for real time against moto: receives (long-polling a
/// second), invokes the worker, deletes what succeeded, until `done` or `limit`. Returns the
/// largest receive count seen and every (receive count, delay) a message was hidden for.
async fn event_source(
    q: &Queues,
    worker: &SyncWorker,
    budget: Duration,
    limit: Duration,
    done: impl Fn() -> bool,
) -> (u32, Vec<(u32, Duration)>) {
    let started = StdInstant::now();
    let mut most_receives = 0;
    let mut hidden = Vec::new();
    while !done() && started.elapsed() < limit {
        let received = q
            .client
            .receive_message()
            .queue_url(&q.queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            continue;
        }
        let records: Vec<QueueRecord> = messages.iter().map(record_of).collect();
        let counts: std::collections::HashMap<String, u32> = records
            .iter()
            .map(|r| (r.message_id.clone(), r.receive_count))
            .collect();
        most_receives = most_receives.max(counts.values().copied().max().unwrap_or(0));
        let report = worker.process(records, Instant::now() + budget).await;
        for (id, delay) in &report.delayed {
            hidden.push((counts[id], *delay));
        }
        for m in &messages {
            if !report.failed.iter().any(|f| f == m.message_id().unwrap()) {
                q.client
                    .delete_message()
                    .queue_url(&q.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    }
    (most_receives, hidden)
}

/// An ActiveCampaign that is down (or refuses the key) until `until`, then accepts every
/// contact; it counts the contacts it accepted and the requests made while down.
struct Outage {
    until: StdInstant,
    down: ResponseTemplate,
    accepted: Arc<Mutex<BTreeSet<String>>>,
    during: Arc<std::sync::atomic::AtomicUsize>,
}

impl Respond for Outage {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        if StdInstant::now() < self.until {
            self.during
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if request.url.path() == "/api/3/users/me" {
                return ResponseTemplate::new(403);
            }
            return self.down.clone();
        }
        if request.url.path() == "/api/3/users/me" {
            return ResponseTemplate::new(200).set_body_json(json!({"user": {"id": "1"}}));
        }
        if request.url.path() == "/api/3/import/bulk_import" {
            self.accepted.lock().unwrap().extend(emails_of(request));
            return ResponseTemplate::new(200)
                .set_body_json(json!({"success": 1, "queued_contacts": 10, "batchId": "b-1"}));
        }
        if String::from_utf8_lossy(&request.body).contains("refused%40example.com") {
            return ResponseTemplate::new(200).set_body_json(json!({
                "result_code": 0, "result_message": "Invalid list id", "result_output": "json"
            }));
        }
        self.accepted.lock().unwrap().extend(emails_of(request));
        ResponseTemplate::new(200).set_body_json(synced_body(1))
    }
}

/// The outage schedule at 1/30 scale (a second for 30 s): base 1 s, doubling, at most 30 s,
/// ten receives; so a 15-minute outage is 30 s and a 10-minute key refusal 20 s.
const SCALED: ac_webhook_sync::functions::sync_worker::RetrySchedule =
    ac_webhook_sync::functions::sync_worker::RetrySchedule {
        base: Duration::from_secs(1),
        max: Duration::from_secs(30),
    };

async fn ride_out(down: ResponseTemplate, outage: Duration, people: usize) {
    let moto = Moto::start();
    let q = queues(&moto).await;
    let ac = MockServer::start().await;
    let accepted = Arc::new(Mutex::new(BTreeSet::new()));
    let during = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = queued_app(&q, &ac.uri());
    let mut expected = BTreeSet::new();
    for i in 0..people {
        let email = format!("waiting{i}@example.com");
        assert_eq!(
            send(&app, &form_post(&email)).await.json_body()["status"],
            "queued"
        );
        expected.insert(email);
    }
    // During the window: a poison message, and a contact whose data will be refused.
    q.client
        .send_message()
        .queue_url(&q.queue)
        .message_body("{\"not\": \"a contact\"}")
        .send()
        .await
        .unwrap();
    send(&app, &form_post("refused@example.com")).await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Outage {
            until: StdInstant::now() + outage,
            down,
            accepted: accepted.clone(),
            during: during.clone(),
        })
        .mount(&ac)
        .await;
    // The client's real backoff (250 ms doubling to 4 s), so a probe is a few calls.
    let client = ac_webhook_sync::activecampaign::ActiveCampaignClient::new(
        ac_webhook_sync::activecampaign::ClientSettings {
            call_timeout: Duration::from_secs(2),
            requests_per_second: 1000.0,
            imports_per_second: 1000.0,
            ..Default::default()
        },
    )
    .unwrap();
    let cache = secrets(&ac.uri());
    let worker = SyncWorker::new(
        InlineDelivery::new(client, cache.clone()),
        cache,
        Some(support::moto::sqs_queue(q.client.clone(), &q.dlq)),
        10,
    )
    .with_source_queue(
        Some(support::moto::sqs_queue(q.client.clone(), &q.queue)),
        SCALED,
    );
    let watch = accepted.clone();
    let wanted = expected.clone();
    let (most_receives, hidden) = event_source(
        &q,
        &worker,
        Duration::from_secs(3),
        outage + Duration::from_secs(60),
        move || wanted.is_subset(&watch.lock().unwrap()),
    )
    .await;
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        expected.is_subset(&accepted),
        "not synced: {:?}",
        expected.difference(&accepted).collect::<Vec<_>>()
    );
    // The poison went at once; the refusal once ActiveCampaign could say so.
    let dead = dead_letters(&q).await;
    let reasons: BTreeSet<String> = dead
        .iter()
        .map(|m| {
            m.message_attributes().unwrap()[REASON_ATTRIBUTE]
                .string_value()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(dead.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not a queued contact")),
        "{reasons:?}"
    );
    assert!(reasons.contains("rejected: Invalid list id"), "{reasons:?}");
    // The schedule: no message used more than its receives, each wait at least its step.
    assert!(most_receives < 10, "{most_receives} receives");
    for (receives, delay) in &hidden {
        assert!(
            *delay >= SCALED.delay(*receives, None),
            "{receives}: {delay:?}"
        );
    }
    // A circuit, not a stampede: a handful of probes during the window, not one per
    // contact per receive.
    let probes = during.load(std::sync::atomic::Ordering::SeqCst);
    assert!(probes <= 40, "{probes} requests while the account was down");
}

#[tokio::test]
async fn a_fifteen_minute_outage_at_scale_ends_with_everyone_synced_and_none_dead_lettered() {
    let _logs = logs::checked();
    ride_out(ResponseTemplate::new(503), Duration::from_secs(30), 15).await;
}

#[tokio::test]
async fn a_ten_minute_key_refusal_at_scale_ends_with_everyone_synced_and_none_dead_lettered() {
    let _logs = logs::checked();
    ride_out(v1_bad_key(), Duration::from_secs(20), 15).await;
}

/// A queue or a claim store that counts how often it was got ready for its first call.
struct Counted<T> {
    inner: T,
    prepared: std::sync::atomic::AtomicUsize,
}

impl<T> Counted<T> {
    fn new(inner: T) -> Arc<Self> {
        Arc::new(Self {
            inner,
            prepared: 0.into(),
        })
    }

    fn prepared(&self) -> usize {
        self.prepared.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl ContactQueue for Counted<MemoryQueue> {
    async fn prepare(&self) {
        self.prepared
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    async fn send_body(
        &self,
        body: String,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<String, QueueError> {
        self.inner.send_body(body, attributes, deadline).await
    }
    async fn send_many(
        &self,
        bodies: Vec<String>,
        attributes: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<usize, PartlySent> {
        self.inner.send_many(bodies, attributes, deadline).await
    }
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), QueueError> {
        self.inner.change_visibility(receipt_handle, delay).await
    }
}

#[async_trait::async_trait]
impl IdempotencyStore for Counted<MemoryIdempotencyStore> {
    async fn prepare(&self) {
        self.prepared
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    async fn begin(
        &self,
        key: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<ac_webhook_sync::delivery::idempotency::Begun, StoreError> {
        self.inner.begin(key, owner, lease).await
    }
    async fn finish(
        &self,
        key: &str,
        owner: &str,
        answer: &serde_json::Value,
        window: Duration,
    ) -> Result<(), StoreError> {
        self.inner.finish(key, owner, answer, window).await
    }
    async fn abandon(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        self.inner.abandon(key, owner).await
    }
}

/// The secret, read only once the test lets it through: a read that waits on the network.
struct HeldSecret {
    json: String,
    open: tokio::sync::watch::Receiver<bool>,
}

#[async_trait::async_trait]
impl SecretSource for HeldSecret {
    async fn fetch(&self) -> Result<AppSecret, SecretError> {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
        AppSecret::from_json(&self.json)
    }
}

/// Waits (a second at most) for the tasks the app spawned to have got both ready.
async fn until_prepared(queue: &Counted<MemoryQueue>, store: &Counted<MemoryIdempotencyStore>) {
    let give_up = StdInstant::now() + Duration::from_secs(1);
    while (queue.prepared() == 0 || store.prepared() == 0) && StdInstant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The queue's and the claim store's clients are built while the first webhook's secret is
/// read (on tasks of their own), not after it: once, and not for a `/health` cold start.
#[tokio::test]
async fn the_first_webhook_gets_the_queue_and_the_claim_store_ready_while_its_secret_is_read() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    let (release, open) = tokio::sync::watch::channel(false);
    let queue = Counted::new(MemoryQueue::new());
    let store = Counted::new(MemoryIdempotencyStore::new());
    let secret = HeldSecret {
        json: local_secret_json(&server.uri()),
        open,
    };
    let app = Arc::new(
        app_with(secret, fast_client(), 1 << 20)
            .with_queue(queue.clone())
            .with_idempotency_store(store.clone()),
    );

    let mut health = event_request("form-json");
    health.method = http::Method::GET;
    health.path = "/health".into();
    assert_eq!(send(&app, &health).await.status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        (queue.prepared(), store.prepared()),
        (0, 0),
        "/health reads no secret"
    );

    // A webhook whose token is wrong still reads the secret. While that read waits, both get
    // ready; once it is let through, the webhook is refused and nothing was sent.
    let mut forged = event_request("form-json");
    forged.query = vec![("token".into(), "not-the-token".into())];
    forged.raw_query = "token=not-the-token".into();
    let refused = tokio::spawn({
        let app = app.clone();
        async move { send(&app, &forged).await }
    });
    until_prepared(&queue, &store).await;
    assert_eq!(
        (queue.prepared(), store.prepared()),
        (1, 1),
        "ready before the secret's read ends"
    );
    assert!(!refused.is_finished());
    release.send(true).unwrap();
    assert_eq!(refused.await.unwrap().status, 401);
    assert!(queue.inner.messages().is_empty());

    for n in 0..3 {
        let answer = send(&app, &nth_delivery("form-json", n)).await;
        assert_eq!(answer.json_body()["status"], "queued", "{}", answer.body);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        (queue.prepared(), store.prepared()),
        (1, 1),
        "once per container"
    );
    assert_eq!(queue.inner.messages().len(), 3);
}
