//! The bulk import's round trip: a batch is imported and recorded (DynamoDB, on moto), then
//! ActiveCampaign's callback is authenticated by the token only this deployment can make,
//! `import/info` decides the outcome, the outcome is recorded once, and a failed import's
//! contacts go back through the queue (SQS, on moto).

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ac_webhook_sync::aws::dynamodb::ImportTable;
use ac_webhook_sync::delivery::ContactQueue;
use ac_webhook_sync::delivery::ImportStore;
use ac_webhook_sync::functions::import_callback::CallbackApp;
use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use support::moto::Moto;
use support::*;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "tests")
}

/// A fake ActiveCampaign: the importer queues everything; `import/info` answers `info`.
async fn activecampaign(info: Arc<Mutex<Value>>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/3/import/bulk_import"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap();
            let n = body["contacts"].as_array().unwrap().len();
            ResponseTemplate::new(200).set_body_json(
                json!({"success": 1, "queued_contacts": n, "batchId": format!("batch-{n}")}),
            )
        })
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/3/import/info"))
        .respond_with(move |_: &Request| {
            ResponseTemplate::new(200).set_body_json(info.lock().unwrap().clone())
        })
        .mount(&server)
        .await;
    server
}

/// The webhook function in queue mode, recording imports in `store`, its 6 MiB batches sent
/// to `queue`.
fn batch_webhook(
    ac: &MockServer,
    store: &Arc<ImportTable>,
    queue: Arc<dyn ContactQueue>,
) -> WebhookApp {
    app_with(
        FixedSecret(local_secret_json(&ac.uri())),
        fast_client(),
        6 << 20,
    )
    .with_callback_url(Some("https://callback.example/".into()))
    .with_import_store(Some(store.clone()))
    .with_queue(queue)
}

/// How many contacts each bulk import the fake received carried, in order.
async fn import_sizes(ac: &MockServer) -> Vec<usize> {
    ac.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/3/import/bulk_import")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            body["contacts"].as_array().unwrap().len()
        })
        .collect()
}

fn csv_post(rows: usize) -> InboundRequest {
    let mut body = String::from("email,name\n");
    for i in 0..rows {
        body.push_str(&format!("person{i}@example.com,Person {i}\n"));
    }
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/csv".parse().unwrap());
    InboundRequest::post("/webhooks/batch?token=local-batch-token", headers, body)
}

/// The callback ActiveCampaign was asked to make, as it would make it (POST, JSON params).
async fn requested_callbacks(server: &MockServer) -> Vec<(String, String, String)> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/3/import/bulk_import")
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let params = body["callback"]["params"].as_array().unwrap();
            let get = |k: &str| {
                params.iter().find(|p| p["key"] == k).unwrap()["value"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            (
                get("ref"),
                get("token"),
                body["callback"]["url"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn callback_post(reference: &str, token: &str) -> InboundRequest {
    let body = json!({"params": [{"key": "ref", "value": reference}, {"key": "token", "value": token}], "success": 11, "failure": 1});
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("x-import-token", token.parse().unwrap());
    InboundRequest::post("/", headers, body.to_string())
}

async fn info_calls(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/api/3/import/info")
        .count()
}

#[tokio::test]
async fn an_import_is_recorded_settled_once_and_retried_when_it_fails() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let info = Arc::new(Mutex::new(json!({"status": "active"})));
    let ac = activecampaign(info.clone()).await;
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(&ac.uri())),
        Duration::from_secs(300),
    ));
    let webhook: WebhookApp = app_with(
        FixedSecret(local_secret_json(&ac.uri())),
        fast_client(),
        1 << 20,
    )
    .with_callback_url(Some("https://callback.example/".into()))
    .with_import_store(Some(store.clone()));
    let callback = CallbackApp::new(
        Some(store.clone()),
        secrets,
        fast_client(),
        Some(support::moto::sqs_queue(sqs.clone(), &queue_url)),
    );
    let deadline = || Instant::now() + Duration::from_secs(5);

    // 1. A batch of 12 is imported, and its import recorded under its callback reference.
    let answer = send(&webhook, &csv_post(12)).await.json_body();
    assert_eq!(
        answer["imports"],
        json!([{"batch_id": "batch-12", "queued_contacts": 12}]),
        "{answer}"
    );
    let (reference, token, url) = requested_callbacks(&ac).await.remove(0);
    // The reference rides in the URL too, so the token is checked before the body is read.
    assert_eq!(url, format!("https://callback.example/?ref={reference}"));
    let record = store.get(&reference).await.unwrap().expect("recorded");
    assert_eq!(
        (
            record.batch_id.as_str(),
            record.route.as_str(),
            record.contacts.len()
        ),
        ("batch-12", "batch", 12)
    );

    // 2. Forged or missing tokens are refused, and nothing is asked of ActiveCampaign.
    let forged = callback
        .handle(&callback_post(&reference, &"0".repeat(64)), deadline())
        .await;
    assert_eq!(forged.status, 401);
    let mut missing = callback_post(&reference, "x");
    missing.body = json!({"ref": reference}).to_string().into();
    missing.headers.clear();
    assert_eq!(callback.handle(&missing, deadline()).await.status, 401);
    assert_eq!(info_calls(&ac).await, 0);

    // 3. Still running: pending, nothing recorded.
    let pending = callback
        .handle(&callback_post(&reference, &token), deadline())
        .await
        .json_body();
    assert_eq!(pending["status"], "pending");
    assert_eq!(
        store.get(&reference).await.unwrap().unwrap().status,
        "submitted"
    );

    // 4. Completed with one failure: recorded once; a repeat changes nothing and asks nothing.
    *info.lock().unwrap() =
        json!({"status": "completed", "success": ["1", "2"], "failure": ["person3@example.com"]});
    let done = callback
        .handle(&callback_post(&reference, &token), deadline())
        .await
        .json_body();
    assert_eq!(
        done,
        json!({"status": "recorded", "batch_id": "batch-12", "import_status": "completed", "succeeded": 11, "failed": 1, "requeued": 0, "dead_lettered": 0})
    );
    assert_eq!(
        store.get(&reference).await.unwrap().unwrap().status,
        "completed"
    );
    let calls = info_calls(&ac).await;
    let again = callback
        .handle(&callback_post(&reference, &token), deadline())
        .await
        .json_body();
    assert_eq!(again["status"], "already_recorded");
    assert_eq!(
        info_calls(&ac).await,
        calls,
        "a repeat asks ActiveCampaign nothing"
    );

    // 5. A GET callback (params in the query) for an import that failed: its contacts, less
    //    the ones the importer named, go back through the queue.
    send(&webhook, &csv_post(15)).await;
    let (reference, token, url) = requested_callbacks(&ac).await.remove(1);
    assert!(url.ends_with(&format!("?ref={reference}")), "{url}");
    *info.lock().unwrap() =
        json!({"status": "failed", "success": [], "failure": ["person0@example.com"]});
    let mut get = InboundRequest::post(
        &format!("/?ref={reference}&token={token}"),
        HeaderMap::new(),
        "",
    );
    get.method = Method::GET;
    let failed = callback.handle(&get, deadline()).await.json_body();
    assert_eq!(failed["status"], "recorded", "{failed}");
    assert_eq!(failed["requeued"], 14);
    let mut queued = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_ne!(body["contact"]["email"], "person0@example.com");
            assert_eq!(body["route"], "batch");
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            queued += 1;
        }
    }
    assert_eq!(queued, 14);
}

#[tokio::test]
async fn a_callback_over_its_limit_is_413_before_anything_is_parsed_or_checked() {
    let _logs = logs::checked();
    let ac = scripted(vec![]).await;
    let callback = callback_for(&ac);
    let deadline = || Instant::now() + Duration::from_secs(5);
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        "application/x-www-form-urlencoded".parse().unwrap(),
    );
    // 6 MiB of `a&`: three million form pairs, unauthenticated.
    let flood = InboundRequest::post("/", headers.clone(), "a&".repeat(3 << 20));
    let answer = callback.handle(&flood, deadline()).await;
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(ac.received_requests().await.unwrap().is_empty());
    // A forged header token against the reference in the URL: refused by the token alone.
    headers.insert("x-import-token", "forged".parse().unwrap());
    let forged = InboundRequest::post("/?ref=queue-1", headers, "a&".repeat(100_000));
    assert_eq!(callback.handle(&forged, deadline()).await.status, 401);
}

/// A failed import of `contacts` recorded under a fresh reference at `generation`; returns
/// the callback that reports it.
async fn failed_import(
    store: &Arc<ImportTable>,
    generation: u32,
    contacts: usize,
) -> InboundRequest {
    let reference = format!("queue-test-{generation}-{contacts}");
    store
        .record(&ac_webhook_sync::delivery::ImportRecord {
            reference: reference.clone(),
            batch_id: format!("batch-g{generation}"),
            route: "queue".into(),
            contacts: (0..contacts)
                .map(|i| ac_webhook_sync::activecampaign::ContactSync {
                    email: format!("loop{i}@example.com"),
                    ..Default::default()
                })
                .collect(),
            status: "submitted".into(),
            generation,
            exclude_automations: true,
            requeued_upto: 0,
        })
        .await
        .unwrap();
    let secret = secrecy::SecretString::from("local-callback-secret".to_string());
    let token = ac_webhook_sync::delivery::callback::callback_token(&secret, &reference);
    callback_post(&reference, &token)
}

async fn drain_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut all = Vec::new();
    loop {
        let batch = sqs
            .receive_message()
            .queue_url(url)
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

#[tokio::test]
async fn a_failed_import_requeues_before_it_settles_and_stops_after_three_generations() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let dlq_url = sqs
        .create_queue()
        .queue_name("contacts-dlq")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let info = Arc::new(Mutex::new(
        json!({"status": "interrupted", "success": [], "failure": []}),
    ));
    let ac = activecampaign(info).await;
    let secrets = || {
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&ac.uri())),
            Duration::from_secs(300),
        ))
    };
    let deadline = || Instant::now() + Duration::from_secs(8);

    // 1. The queue is down: 503, and the record stays open for the retried callback.
    let closed = format!("http://127.0.0.1:{}", support::moto::free_port());
    let down = CallbackApp::new(
        Some(store.clone()),
        secrets(),
        fast_client(),
        Some(support::moto::sqs_queue(
            aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .credentials_provider(credentials())
                    .endpoint_url(&closed)
                    .build(),
            ),
            format!("{closed}/123456789012/contacts"),
        )),
    );
    let callback = failed_import(&store, 0, 30).await;
    assert_eq!(down.handle(&callback, deadline()).await.status, 503);
    let callbacks = CallbackApp::new(
        Some(store.clone()),
        secrets(),
        fast_client(),
        Some(support::moto::sqs_queue(sqs.clone(), &queue_url)),
    )
    .with_dead_letters(Some(support::moto::sqs_queue(sqs.clone(), &dlq_url)), 3);
    let retried = callbacks.handle(&callback, deadline()).await.json_body();
    assert_eq!(retried["status"], "recorded", "{retried}");
    assert_eq!(retried["requeued"], 30);
    let requeued = drain_all(&sqs, &queue_url).await;
    assert_eq!(requeued.len(), 30, "all 30 back in the queue, in batches");
    let message: Value = serde_json::from_str(requeued[0].body().unwrap()).unwrap();
    assert_eq!(message["generation"], 1);
    assert_eq!(
        message["exclude_automations"], true,
        "kept through the requeue"
    );

    // 2. The third requeue is the last: the fourth failure dead-letters, with its reason.
    let third = callbacks
        .handle(&failed_import(&store, 2, 12).await, deadline())
        .await
        .json_body();
    assert_eq!(
        (third["requeued"].as_u64(), third["dead_lettered"].as_u64()),
        (Some(12), Some(0))
    );
    let fourth = callbacks
        .handle(&failed_import(&store, 3, 12).await, deadline())
        .await
        .json_body();
    assert_eq!(
        (
            fourth["requeued"].as_u64(),
            fourth["dead_lettered"].as_u64()
        ),
        (Some(0), Some(12))
    );
    let dead = drain_all(&sqs, &dlq_url).await;
    assert_eq!(dead.len(), 12);
    let reason = dead[0].message_attributes().unwrap()["reason"]
        .string_value()
        .unwrap();
    assert_eq!(reason, "import batch-g3 ended interrupted 4 times");
}

#[tokio::test]
async fn a_requeue_stopped_part_way_is_finished_by_the_retry_and_nothing_is_sent_twice() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let info = Arc::new(Mutex::new(
        json!({"status": "failed", "success": [], "failure": ["loop7@example.com"]}),
    ));
    let ac = activecampaign(info).await;
    let app = |queue: aws_sdk_sqs::Client| {
        CallbackApp::new(
            Some(store.clone()),
            Arc::new(SecretCache::new(
                FixedSecret(local_secret_json(&ac.uri())),
                Duration::from_secs(300),
            )),
            fast_client(),
            Some(support::moto::sqs_queue(queue, &queue_url)),
        )
    };
    let deadline = || Instant::now() + Duration::from_secs(8);
    let callback = failed_import(&store, 0, 250).await;
    // Ten SendMessageBatch requests (100 contacts) go through, then the queue goes down.
    let first = app(support::moto::sqs_failing_after(&moto.endpoint, 10))
        .handle(&callback, deadline())
        .await;
    assert_eq!(first.status, 503);
    let record = store.get("queue-test-0-250").await.unwrap().unwrap();
    assert_eq!(
        (record.status.as_str(), record.requeued_upto),
        ("submitted", 101),
        "open, with how far the requeue got (one contact was the importer's to refuse)"
    );
    // The retried callback sends only the rest, and settles.
    let retried = app(sqs.clone())
        .handle(&callback, deadline())
        .await
        .json_body();
    assert_eq!(retried["status"], "recorded", "{retried}");
    assert_eq!(retried["requeued"], 249);
    let sent: Vec<String> = drain_all(&sqs, &queue_url)
        .await
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["contact"]["email"].as_str().unwrap().to_string()
        })
        .collect();
    let distinct: std::collections::HashSet<&String> = sent.iter().collect();
    assert_eq!(
        (sent.len(), distinct.len()),
        (249, 249),
        "every contact but the refused one, once"
    );
    assert!(!distinct.contains(&"loop7@example.com".to_string()));
}

#[tokio::test]
async fn one_settler_at_a_time_holds_a_record_and_gives_it_up() {
    use ac_webhook_sync::delivery::Claim;
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    failed_import(&store, 0, 3).await;
    let reference = "queue-test-0-3";
    let lease = Duration::from_secs(30);
    assert!(matches!(
        store.claim(reference, lease).await.unwrap(),
        Claim::Claimed(_)
    ));
    match store.claim(reference, lease).await.unwrap() {
        Claim::Busy { for_secs } => assert!((29..=31).contains(&for_secs), "{for_secs}"),
        other => panic!("a second settler got {other:?}"),
    }
    // A settler that stops part-way keeps its progress and lets the next one in at once.
    store.requeue_progress(reference, 2).await.unwrap();
    match store.claim(reference, lease).await.unwrap() {
        Claim::Claimed(record) => assert_eq!(record.requeued_upto, 2),
        other => panic!("after the first gave up: {other:?}"),
    }
    assert!(store.finish(reference, "failed", 0, 0).await.unwrap());
    assert_eq!(store.claim(reference, lease).await.unwrap(), Claim::Settled);
}

#[tokio::test]
async fn imports_whose_callback_never_came_are_settled_by_the_reconciler() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let info = Arc::new(Mutex::new(
        json!({"status": "failed", "success": [], "failure": ["loop0@example.com"]}),
    ));
    let ac = activecampaign(info.clone()).await;
    let callbacks = CallbackApp::new(
        Some(store.clone()),
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&ac.uri())),
            Duration::from_secs(300),
        )),
        fast_client(),
        Some(support::moto::sqs_queue(sqs.clone(), &queue_url)),
    );
    // Two imports whose callbacks never arrive (or arrived before their records existed).
    failed_import(&store, 0, 12).await;
    failed_import(&store, 1, 20).await;
    let reconciler =
        ac_webhook_sync::functions::import_reconciler::Reconciler::new(callbacks, Duration::ZERO);
    let report = reconciler
        .run(Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!(
        (report.open, report.settled, report.errors),
        (2, 2, 0),
        "{report:?}"
    );
    assert_eq!(report.oldest_open_secs, 0);
    // The failed imports' contacts are back in the queue (less the one the importer named).
    assert_eq!(drain_all(&sqs, &queue_url).await.len(), 11 + 19);
    // Settled once: a second run finds nothing open, and the index of open imports (which the
    // reconciler queries rather than scanning the table) is empty again.
    let again = reconciler
        .run(Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!(again.open, 0);
    assert_eq!(support::moto::open_imports(&moto.endpoint).await, 0);
    // An import still running stays open, and its age is reported for the alarm.
    *info.lock().unwrap() = json!({"status": "active"});
    failed_import(&store, 0, 15).await;
    let pending = reconciler
        .run(Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!((pending.open, pending.pending), (1, 1), "{pending:?}");
    assert_eq!(support::moto::open_imports(&moto.endpoint).await, 1);
}

#[tokio::test]
async fn a_queued_batch_is_answered_at_once_imported_by_the_worker_and_a_repeat_is_not_imported_twice()
 {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let info = Arc::new(Mutex::new(json!({"status": "active"})));
    let ac = activecampaign(info).await;
    let queue = support::moto::sqs_queue(sqs.clone(), &queue_url);
    let webhook: WebhookApp = app_with(
        FixedSecret(local_secret_json(&ac.uri())),
        fast_client(),
        6 << 20,
    )
    .with_callback_url(Some("https://callback.example/".into()))
    .with_import_store(Some(store.clone()))
    .with_queue(queue.clone());
    let mut request = csv_post(600);
    let mut body = String::from_utf8(request.body.to_vec()).unwrap();
    body.push_str("not-an-email,Bad Row\n");
    request.body = body.into_bytes().into();
    let answer = send(&webhook, &request).await.json_body();
    assert_eq!(answer["status"], "queued", "{answer}");
    assert_eq!(answer["queued"], 600);
    assert_eq!(answer["rejected"].as_array().unwrap().len(), 1, "{answer}");
    assert!(
        ac.received_requests().await.unwrap().is_empty(),
        "nothing imported before the worker runs"
    );
    // The same body again: the first answer, and nothing queued twice.
    let repeat = send(&webhook, &request).await.json_body();
    assert_eq!(repeat["status"], "duplicate");
    assert_eq!(repeat["first"], answer);
    // The worker imports each message as one bulk import: 200 + 200 + 200.
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(&ac.uri())),
        Duration::from_secs(300),
    ));
    let worker = ac_webhook_sync::functions::sync_worker::SyncWorker::new(
        ac_webhook_sync::delivery::InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        None,
        10,
    );
    let mut records = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(300)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if received.is_empty() {
            break;
        }
        records.extend(received.into_iter().map(|m| {
            ac_webhook_sync::functions::sync_worker::QueueRecord {
                message_id: m.message_id().unwrap().to_string(),
                receipt_handle: m.receipt_handle().unwrap().to_string(),
                body: m.body().unwrap().to_string(),
                receive_count: 1,
            }
        }));
    }
    assert_eq!(records.len(), 3, "three batch messages");
    let report = worker
        .process(records, Instant::now() + Duration::from_secs(10))
        .await;
    assert_eq!(
        (report.imported, report.failed.len()),
        (600, 0),
        "{report:?}"
    );
    let sizes = import_sizes(&ac).await;
    assert_eq!(sizes, vec![200, 200, 200]);
}

#[tokio::test]
async fn a_batch_the_queue_takes_only_part_of_imports_just_the_rest_inline() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let ac = activecampaign(Arc::new(Mutex::new(json!({"status": "active"})))).await;
    // 3,000 contacts are 12 messages of 250: the first SendMessageBatch (as many as fit in
    // 256 KiB) goes through, then the queue goes down.
    let webhook = batch_webhook(
        &ac,
        &store,
        support::moto::sqs_queue(
            support::moto::sqs_failing_after(&moto.endpoint, 1),
            &queue_url,
        ),
    );
    let answer = send(&webhook, &csv_post(3000)).await;
    assert_eq!(answer.status, 200);
    let answer = answer.json_body();
    let answered_queued = answer["queued"].as_u64().unwrap() as usize;
    assert!(
        answered_queued > 0 && answered_queued < 3000,
        "part queued: {answer}"
    );
    let imported: usize = import_sizes(&ac).await.iter().sum();
    assert_eq!(
        (imported, answer["imported"].as_u64()),
        (3000 - answered_queued, Some(imported as u64)),
        "only the contacts the queue did not take are imported inline"
    );
    let queued: usize = drain_all(&sqs, &queue_url)
        .await
        .iter()
        .map(|m| {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            body["contacts"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(queued, answered_queued);
}

#[tokio::test]
async fn entries_sqs_took_from_a_request_it_answered_in_part_are_not_imported_as_well() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let store = support::moto::import_table(&moto.endpoint).await;
    let (_, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let ac = activecampaign(Arc::new(Mutex::new(json!({"status": "active"})))).await;
    // 3,000 contacts in 12 messages: SQS takes all of the first request's entries but its
    // last, then the retry of that one fails.
    let webhook = batch_webhook(
        &ac,
        &store,
        support::moto::sqs_queue(
            support::moto::sqs_taking_all_but_one(&moto.endpoint),
            &queue_url,
        ),
    );
    let answer = send(&webhook, &csv_post(3000)).await.json_body();
    let queued = answer["queued"].as_u64().unwrap() as usize;
    let imported: usize = import_sizes(&ac).await.iter().sum();
    // Before, the whole request counted as not sent: 0 queued, and its taken entries
    // imported inline as well.
    assert!(queued > 0, "the taken entries count as queued: {answer}");
    assert_eq!(
        queued + imported,
        3000,
        "each contact queued or imported, none both: {answer}"
    );
}
