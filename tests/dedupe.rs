//! A sender's retry never syncs twice: the same signed delivery, sent again and again (at
//! once and spread out, inline and through the queue, with the claim in memory or on
//! DynamoDB), is synced once; the others get the first answer or are told to come back. A
//! failed first attempt does not hold the retry back, a store that is down loses nothing, and
//! a window ends. Counted in `contact_sync` requests ActiveCampaign answered with success.

mod support;

use std::sync::Arc;
use std::time::Duration;

use ac_webhook_sync::delivery::{InlineDelivery, QueuedContact};
use ac_webhook_sync::functions::sync_worker::{QueueRecord, SyncWorker};
use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use serde_json::{Value, json};
use support::moto::Moto;
use support::*;
use tokio::task::JoinSet;
use wiremock::{MockServer, ResponseTemplate};

const ORDER: &str = "shopify-orders-paid";

/// A fake ActiveCampaign that syncs everyone, and how many syncs it answered with success.
async fn activecampaign() -> MockServer {
    let server = MockServer::start().await;
    mount_accepting(&server, 42).await;
    server
}

async fn syncs(server: &MockServer) -> usize {
    received_syncs(server).await.len()
}

/// Sends `event` `times` times at once; the answers' `status`es (or HTTP status codes).
async fn at_once(app: Arc<WebhookApp>, event: &str, times: usize) -> Vec<String> {
    let request = event_request(event);
    let mut sends = JoinSet::new();
    for _ in 0..times {
        let (app, request) = (app.clone(), request.clone());
        sends.spawn(async move { answer_of(&send(&app, &request).await) });
    }
    sends.join_all().await
}

fn answer_of(response: &ac_webhook_sync::response::HttpResponse) -> String {
    match response.status.as_u16() {
        200 => response.json_body()["status"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        status => status.to_string(),
    }
}

fn count(answers: &[String], what: &str) -> usize {
    answers.iter().filter(|a| *a == what).count()
}

#[tokio::test]
async fn a_thousand_copies_at_once_sync_once() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let answers = at_once(Arc::new(app_for(&ac)), ORDER, 1000).await;
    assert_eq!(syncs(&ac).await, 1);
    assert_eq!(count(&answers, "synced"), 1, "{answers:?}");
    // The others: the first answer again, or (while the first was in flight) come back.
    assert_eq!(count(&answers, "duplicate") + count(&answers, "503"), 999);
}

#[tokio::test]
async fn a_thousand_copies_spread_out_sync_once_and_each_gets_the_first_answer() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let app = app_for(&ac);
    let first = send_event(&app, ORDER).await;
    assert_eq!(first.json_body()["status"], "synced");
    for _ in 0..999 {
        let again = send_event(&app, ORDER).await;
        assert_eq!(again.status, 200);
        assert_eq!(
            again.json_body(),
            json!({"status": "duplicate", "first": first.json_body()})
        );
    }
    assert_eq!(syncs(&ac).await, 1);
}

#[tokio::test]
async fn with_the_claims_on_dynamodb_a_thousand_copies_from_ten_containers_sync_once() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let ac = activecampaign().await;
    let table = support::moto::idempotency_table(&moto.endpoint).await;
    // Ten containers of the function sharing the table, each handling its copies one at a
    // time (as Lambda gives a container one request at a time), all of them at once.
    let request = event_request(ORDER);
    let mut containers = JoinSet::new();
    for _ in 0..10 {
        let app = app_for(&ac).with_idempotency_store(table.clone());
        let request = request.clone();
        containers.spawn(async move {
            let mut answers = Vec::new();
            for _ in 0..100 {
                answers.push(answer_of(&send(&app, &request).await));
            }
            answers
        });
    }
    let answers: Vec<String> = containers.join_all().await.into_iter().flatten().collect();
    assert_eq!(answers.len(), 1000);
    assert_eq!(syncs(&ac).await, 1, "{answers:?}");
    assert_eq!(count(&answers, "synced"), 1);
}

#[tokio::test]
async fn a_failed_first_attempt_does_not_hold_the_retry_back() {
    let _logs = logs::checked();
    let down = MockServer::start().await;
    mount_users_me(&down).await;
    mount_contact_sync(&down, ResponseTemplate::new(503)).await;
    let ac = activecampaign().await;
    let secrets = |url: &str| {
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(url)),
            Duration::from_secs(300),
        ))
    };
    let store: Arc<dyn ac_webhook_sync::delivery::IdempotencyStore> =
        Arc::new(ac_webhook_sync::delivery::MemoryIdempotencyStore::new());
    let app = |url: &str| {
        WebhookApp::new(
            Mapping::bundled().unwrap(),
            secrets(url),
            fast_client(),
            ac_webhook_sync::functions::webhook::Limits {
                max_body_bytes: 1 << 20,
                invocation_budget: Duration::from_secs(2),
            },
        )
        .with_idempotency_store(store.clone())
    };
    let failed = send_event(&app(&down.uri()), ORDER).await;
    assert_eq!(failed.status, 503, "{}", failed.body);
    let retried = send_event(&app(&ac.uri()), ORDER).await;
    assert_eq!(retried.json_body()["status"], "synced", "{}", retried.body);
    assert_eq!(syncs(&ac).await, 1);
}

#[tokio::test]
async fn a_store_that_is_down_delays_nothing_and_loses_nothing() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let closed = format!("http://127.0.0.1:{}", support::moto::free_port());
    let unreachable = Arc::new(ac_webhook_sync::aws::dynamodb::IdempotencyTable::new(
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
                .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .endpoint_url(closed)
                .build(),
        ),
        "idempotency",
    ));
    let app = app_for(&ac).with_idempotency_store(unreachable);
    for _ in 0..2 {
        let response = send_event(&app, ORDER).await;
        assert_eq!(
            response.json_body()["status"],
            "synced",
            "{}",
            response.body
        );
    }
    // Unguarded, both went through: a duplicate sync, never a lost contact.
    assert_eq!(syncs(&ac).await, 2);
}

/// The bundled mapping with one route added.
fn app_with_route(ac: &MockServer, route: &str) -> WebhookApp {
    let mut toml = std::fs::read_to_string(repo_path("mapping.toml")).unwrap();
    toml.push('\n');
    toml.push_str(route);
    WebhookApp::new(
        Mapping::from_toml(&toml).unwrap(),
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&ac.uri()).replace("\"shopify\":", "\"short\": \"local-shopify-secret\", \"off\": \"local-shopify-secret\", \"shopify\":")),
            Duration::from_secs(300),
        )),
        fast_client(),
        ac_webhook_sync::functions::webhook::Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(5),
        },
    )
}

/// The order event, sent to another route of the same sender.
fn order_on(route: &str) -> ac_webhook_sync::inbound::InboundRequest {
    let mut request = event_request(ORDER);
    request.path = format!("/webhooks/{route}");
    request
}

#[tokio::test]
async fn a_window_ends_and_a_route_can_turn_deduplication_off() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let app = app_with_route(
        &ac,
        "[routes.short]\nsender = \"shopify\"\ndedupe_window_secs = 1\n\
         [routes.off]\nsender = \"shopify\"\ndedupe = false\n",
    );
    let first = send(&app, &order_on("short")).await;
    assert_eq!(first.json_body()["status"], "synced", "{}", first.body);
    assert_eq!(
        send(&app, &order_on("short")).await.json_body()["status"],
        "duplicate"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        send(&app, &order_on("short")).await.json_body()["status"],
        "synced"
    );
    assert_eq!(syncs(&ac).await, 2, "once per window");

    for _ in 0..2 {
        assert_eq!(
            send(&app, &order_on("off")).await.json_body()["status"],
            "synced"
        );
    }
    assert_eq!(
        syncs(&ac).await,
        4,
        "every retry on a route without deduplication"
    );
}

#[tokio::test]
async fn a_sender_without_ids_is_recognised_by_its_body_for_a_while() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let app = app_for(&ac);
    // A double-click on a plain HTML form: the same body twice.
    assert_eq!(
        send_event(&app, "form-urlencoded").await.json_body()["status"],
        "synced"
    );
    let again = send_event(&app, "form-urlencoded").await;
    assert_eq!(again.json_body()["status"], "duplicate", "{}", again.body);
    // Another submission is another contact.
    assert_eq!(
        send_event(&app, "form-json").await.json_body()["status"],
        "synced"
    );
    assert_eq!(syncs(&ac).await, 2);
}

/// A sync-worker over the ActiveCampaign at `url`, its claims in its own memory.
fn worker_for(
    url: &str,
    dead_letters: Option<Arc<dyn ac_webhook_sync::delivery::ContactQueue>>,
    max_receive_count: u32,
) -> SyncWorker {
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(url)),
        Duration::from_secs(300),
    ));
    SyncWorker::new(
        InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        dead_letters,
        max_receive_count,
    )
}

/// A queued message as SQS hands it to the worker.
fn record(message_id: &str, message: &QueuedContact) -> QueueRecord {
    QueueRecord {
        message_id: message_id.to_string(),
        receipt_handle: format!("handle-{message_id}"),
        body: message.to_json(),
        receive_count: 1,
    }
}

#[tokio::test]
async fn the_worker_syncs_a_redelivered_message_and_a_second_copy_of_a_delivery_once() {
    let _logs = logs::checked();
    let ac = activecampaign().await;
    let worker = worker_for(&ac.uri(), None, 5);
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    let contact = |email: &str| ac_webhook_sync::activecampaign::ContactSync {
        email: email.into(),
        ..Default::default()
    };
    let mut delivered = QueuedContact::new("shopify", Some("event-1"), contact("ada@example.com"));
    delivered.dedupe_id = Some("orders/paid#event-1".into());
    delivered.dedupe_window_secs = Some(3600);
    // The same message delivered twice by SQS, then a second message of the same delivery
    // (queued twice while the webhook's store was down).
    let first = worker
        .process(vec![record("m-1", &delivered)], deadline())
        .await;
    assert_eq!((first.synced, first.duplicates), (1, 0));
    let redelivered = worker
        .process(vec![record("m-1", &delivered)], deadline())
        .await;
    assert_eq!((redelivered.synced, redelivered.duplicates), (0, 1));
    assert!(redelivered.failed.is_empty(), "it leaves the queue");
    let copy = worker
        .process(vec![record("m-2", &delivered)], deadline())
        .await;
    assert_eq!((copy.synced, copy.duplicates), (0, 1));
    assert_eq!(syncs(&ac).await, 1);

    // Without a delivery id, only a redelivery of the same message is recognised.
    let plain = QueuedContact::new("form", None, contact("grace@example.com"));
    let once = worker
        .process(vec![record("m-3", &plain)], deadline())
        .await;
    let again = worker
        .process(vec![record("m-3", &plain)], deadline())
        .await;
    let other = worker
        .process(vec![record("m-4", &plain)], deadline())
        .await;
    assert_eq!((once.synced, again.duplicates, other.synced), (1, 1, 1));
    assert_eq!(syncs(&ac).await, 3);
}

#[tokio::test]
async fn through_the_queue_a_thousand_copies_become_one_message_and_one_sync() {
    let _logs = logs::checked();
    let moto = Moto::start();
    let ac = activecampaign().await;
    let (sqs, queue_url) = support::moto::sqs(&moto.endpoint, "contacts").await;
    let app = Arc::new(app_for(&ac).with_queue(support::moto::sqs_queue(sqs.clone(), &queue_url)));
    let answers = at_once(app, ORDER, 1000).await;
    assert_eq!(count(&answers, "queued"), 1, "{answers:?}");
    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let worker = worker_for(&ac.uri(), None, 5);
    let as_record = |m: &aws_sdk_sqs::types::Message| QueueRecord {
        message_id: m.message_id().unwrap().to_string(),
        receipt_handle: m.receipt_handle().unwrap().to_string(),
        body: m.body().unwrap().to_string(),
        receive_count: 1,
    };
    let message: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert!(
        message["dedupe_window_secs"].as_u64().is_some(),
        "{message}"
    );
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(5);
    // SQS delivers it twice (its visibility ran out while the first was being synced).
    let first = worker
        .process(vec![as_record(&messages[0])], deadline())
        .await;
    let second = worker
        .process(vec![as_record(&messages[0])], deadline())
        .await;
    assert_eq!((first.synced, second.duplicates), (1, 1));
    assert_eq!(syncs(&ac).await, 1);
}

#[tokio::test]
async fn a_dead_letter_moved_back_after_the_fix_is_synced_not_taken_for_a_duplicate() {
    let _logs = logs::checked();
    let down = MockServer::start().await;
    mount_users_me(&down).await;
    mount_contact_sync(&down, ResponseTemplate::new(503)).await;
    let ac = activecampaign().await;
    let store: Arc<dyn ac_webhook_sync::delivery::IdempotencyStore> =
        Arc::new(ac_webhook_sync::delivery::MemoryIdempotencyStore::new());
    let dead_letters = Arc::new(ac_webhook_sync::delivery::MemoryQueue::new());
    let worker = |url: &str| {
        let dead_letters: Arc<dyn ac_webhook_sync::delivery::ContactQueue> = dead_letters.clone();
        worker_for(url, Some(dead_letters), 3).with_idempotency_store(store.clone())
    };
    let mut message = QueuedContact::new(
        "shopify",
        Some("event-9"),
        ac_webhook_sync::activecampaign::ContactSync {
            email: "ada@example.com".into(),
            ..Default::default()
        },
    );
    message.dedupe_id = Some("orders/paid#event-9".into());
    message.dedupe_window_secs = Some(3600);
    // Its last receive, ActiveCampaign still down: into the dead-letter queue.
    let mut last = record("m-1", &message);
    last.receive_count = 3;
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(2);
    let report = worker(&down.uri()).process(vec![last], deadline()).await;
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    // The operator redrives it once ActiveCampaign is back: a new message, the same body.
    let moved = &dead_letters.messages()[0];
    let redriven = QueueRecord {
        message_id: "m-2".into(),
        receipt_handle: "handle-m-2".into(),
        body: moved.body.clone(),
        receive_count: 1,
    };
    let report = worker(&ac.uri()).process(vec![redriven], deadline()).await;
    assert_eq!((report.synced, report.duplicates), (1, 0), "{report:?}");
    assert_eq!(syncs(&ac).await, 1);
}
