//! Senders whose webhooks carry only ids, looked up through their own API (a wiremock fake
//! answering as the API documents): the exact request, each failure (credentials missing or
//! refused, the object gone, the rate limit, an outage), and both delivery modes (inline, and
//! queued for the sync-worker, which looks the reference up).

mod support;

use std::sync::Arc;
use std::time::Duration;

use ac_webhook_sync::delivery::{ContactQueue, MemoryQueue, QueuedContact};
use ac_webhook_sync::functions::sync_worker::{QueueRecord, SyncWorker};
use ac_webhook_sync::lookup::SenderApis;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ORDER: &str = "/stores/abc123/v2/orders/100";

/// The fake's requests to BigCommerce's API, as `METHOD path`.
async fn api_calls(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path().starts_with("/stores/"))
        .map(|r| format!("{} {}", r.method, r.url.path()))
        .collect()
}

#[tokio::test]
async fn an_order_id_becomes_its_billing_contact_with_the_exact_requests() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_bigcommerce(&server).await;
    let response = send_event(&app_for(&server), "bigcommerce-order-created").await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    assert_eq!(
        api_calls(&server).await,
        [format!("GET {ORDER}"), format!("GET {ORDER}/products")]
    );
    // The token travels in X-Auth-Token only (the fake answers 404 to anything else).
    for request in server.received_requests().await.unwrap() {
        if request.url.path().starts_with("/stores/") {
            assert_eq!(request.url.query(), None);
            assert_eq!(request.headers.get("accept").unwrap(), "application/json");
        }
    }
    let sync = &received_syncs(&server).await[0];
    assert!(sync.contains(&("email".into(), "katherine.coleman@example.com".into())));
}

#[tokio::test]
async fn products_feed_sku_tags_like_a_shop_route() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_bigcommerce(&server).await;
    let mapping = Mapping::from_toml(
        "[routes.store]\nsender = \"bigcommerce\"\ntags = [\"bigcommerce\", \"sku:{sku}\"]\n\
         [routes.store.fields]\n\"1\" = \"{$.total_inc_tax} {$.currency_code}\"\n",
    )
    .unwrap();
    let mut secret: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
    secret["webhook_secrets"]["store"] = json!("local-bigcommerce-client-secret");
    secret["sender_api"]["store"] = secret["sender_api"]["bigcommerce"].clone();
    let app = ac_webhook_sync::functions::webhook::WebhookApp::new(
        mapping,
        Arc::new(SecretCache::new(
            FixedSecret(secret.to_string()),
            Duration::from_secs(300),
        )),
        fast_client(),
        ac_webhook_sync::functions::webhook::Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(5),
        },
    )
    .with_sender_apis(SenderApis::new(Some(server.uri())).unwrap());
    let mut request = event_request("bigcommerce-order-created");
    request.path = "/webhooks/store".into();
    let response = send(&app, &request).await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    let sync = &received_syncs(&server).await[0];
    let field = |k: &str| {
        sync.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("tags"), Some("bigcommerce, sku:SR-001, sku:DS-002"));
    assert_eq!(field("field[1,0]"), Some("225.0000 USD"));
}

#[tokio::test]
async fn missing_credentials_are_ignored_naming_the_key_and_a_bad_signature_is_401_regardless() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_bigcommerce(&server).await;
    let mut secret: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
    secret.as_object_mut().unwrap().remove("sender_api");
    let app = app_with(FixedSecret(secret.to_string()), fast_client(), 1 << 20)
        .with_sender_apis(SenderApis::new(Some(server.uri())).unwrap());
    let response = send_event(&app, "bigcommerce-order-created").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json_body()["status"], "ignored");
    let reason = response.json_body()["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("sender_api.bigcommerce.access_token"),
        "{reason}"
    );
    assert_eq!(
        send_event(&app, "bigcommerce-bad-signature").await.status,
        401
    );
    assert_eq!(
        send_event(&app_for(&server), "bigcommerce-bad-signature")
            .await
            .status,
        401
    );
    assert!(api_calls(&server).await.is_empty(), "nothing looked up");
    assert!(received_syncs(&server).await.is_empty());
}

#[tokio::test]
async fn an_order_that_no_longer_exists_is_ignored_with_a_reason() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_bigcommerce(&server).await;
    let response = send_event(&app_for(&server), "bigcommerce-order-missing").await;
    assert_eq!(
        response.json_body()["status"],
        "ignored",
        "{}",
        response.body
    );
    assert!(
        response.json_body()["reason"]
            .as_str()
            .unwrap()
            .contains("404")
    );
    assert!(received_syncs(&server).await.is_empty());
}

#[tokio::test]
async fn the_rate_limit_is_waited_out_for_as_long_as_bigcommerce_says() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    Mock::given(method("GET"))
        .and(path(ORDER))
        .respond_with(ResponseTemplate::new(429).insert_header("X-Rate-Limit-Time-Reset-Ms", "700"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_bigcommerce(&server).await;
    let started = std::time::Instant::now();
    let response = send_event(&app_for(&server), "bigcommerce-order-created").await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        api_calls(&server).await.len(),
        3,
        "the order twice, then its products"
    );
}

#[tokio::test]
async fn an_api_outage_is_503_and_the_retry_after_it_lands() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    // Down for the first request's every attempt (four), up after.
    Mock::given(method("GET"))
        .and(path(ORDER))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_bigcommerce(&server).await;
    let app = app_for(&server);
    let down = send_event(&app, "bigcommerce-order-created").await;
    assert_cause_logged(&down, "the bigcommerce API is unavailable");
    assert!(down.header("retry-after").is_some());
    assert!(received_syncs(&server).await.is_empty());
    // BigCommerce retries the same delivery: its claim was given up, so it is looked up now.
    let retry = send_event(&app, "bigcommerce-order-created").await;
    assert_eq!(retry.json_body()["status"], "synced", "{}", retry.body);
    // A third copy is the first answer again.
    assert_eq!(
        send_event(&app, "bigcommerce-order-created")
            .await
            .json_body()["status"],
        "duplicate"
    );
}

#[tokio::test]
async fn refused_credentials_are_503_until_fixed() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    Mock::given(method("GET"))
        .and(path(ORDER))
        .and(header("X-Auth-Token", "local-bigcommerce-access-token"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!([{"status": 401, "message": "You have not been authenticated."}]),
            ),
        )
        .with_priority(1)
        .mount(&server)
        .await;
    let response = send_event(&app_for(&server), "bigcommerce-order-created").await;
    assert_cause_logged(
        &response,
        "refused the credentials of sender_api.bigcommerce",
    );
    assert!(
        !logs::captured()
            .text()
            .contains("local-bigcommerce-access-token")
    );
}

/// Queue mode: the webhook function queues the reference at once (nothing looked up), and the
/// sync-worker looks it up, maps it and syncs it; an order gone is dead-lettered with why.
#[tokio::test]
async fn in_queue_mode_the_worker_looks_the_reference_up() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_bigcommerce(&server).await;
    let queue = Arc::new(MemoryQueue::new());
    let dead_letters = Arc::new(MemoryQueue::new());
    let app = app_for(&server).with_queue(queue.clone());
    for event in ["bigcommerce-order-created", "bigcommerce-order-missing"] {
        let answer = send_event(&app, event).await;
        assert_eq!(answer.json_body()["status"], "queued", "{}", answer.body);
    }
    assert!(
        api_calls(&server).await.is_empty(),
        "the webhook only queued"
    );
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(&server.uri())),
        Duration::from_secs(300),
    ));
    let worker = SyncWorker::new(
        ac_webhook_sync::delivery::InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        Some(dead_letters.clone() as Arc<dyn ContactQueue>),
        10,
    )
    .with_lookups(
        Arc::new(Mapping::bundled().unwrap()),
        SenderApis::new(Some(server.uri())).unwrap(),
    );
    let records: Vec<QueueRecord> = queue
        .messages()
        .into_iter()
        .map(|m| QueueRecord {
            message_id: m.id.clone(),
            receipt_handle: m.id,
            body: m.body,
            receive_count: 1,
        })
        .collect();
    let report = worker
        .process(
            records,
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await;
    assert_eq!(report.synced, 1, "{report:?}");
    assert_eq!(report.dead_lettered, 1, "{report:?}");
    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 1);
    assert!(syncs[0].contains(&("email".into(), "katherine.coleman@example.com".into())));
    let dead = dead_letters.messages();
    let reason = dead[0]
        .attributes
        .iter()
        .find(|(k, _)| k == "reason")
        .unwrap();
    assert!(reason.1.contains("order 404 was not found"), "{reason:?}");
    assert!(
        QueuedContact::from_json(&dead[0].body).is_err(),
        "the lookup itself is kept"
    );
}
