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

/// A sync-worker against the fake, looking references up there, dead-lettering to `dead_letters`.
fn worker_for(server: &MockServer, dead_letters: &Arc<MemoryQueue>) -> SyncWorker {
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(&server.uri())),
        Duration::from_secs(300),
    ));
    SyncWorker::new(
        ac_webhook_sync::delivery::InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        Some(dead_letters.clone() as Arc<dyn ContactQueue>),
        10,
    )
    .with_lookups(
        Arc::new(Mapping::bundled().unwrap()),
        SenderApis::new(Some(server.uri())).unwrap(),
    )
}

/// Queued messages as the worker receives them, for the first time.
fn records_of(messages: Vec<ac_webhook_sync::delivery::queue::MemoryMessage>) -> Vec<QueueRecord> {
    messages
        .into_iter()
        .map(|m| QueueRecord {
            message_id: m.id.clone(),
            receipt_handle: m.id,
            body: m.body,
            receive_count: 1,
        })
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
    answer_first(
        &server,
        ORDER,
        ResponseTemplate::new(429).insert_header("X-Rate-Limit-Time-Reset-Ms", "700"),
        Some(1),
    )
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
    answer_first(&server, ORDER, ResponseTemplate::new(503), Some(4)).await;
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
    let worker = worker_for(&server, &dead_letters);
    let records = records_of(queue.messages());
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

const HUBSPOT_CONTACTS: &str = "/crm/v3/objects/contacts";

/// The fake's requests to HubSpot's API, as `METHOD path?query`.
async fn hubspot_calls(server: &MockServer) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().starts_with("/crm/"))
        .collect()
}

/// Emails of the `contact_sync`s the fake answered with success.
async fn synced_emails(server: &MockServer) -> Vec<String> {
    let mut emails: Vec<String> = received_syncs(server)
        .await
        .iter()
        .filter_map(|s| s.iter().find(|(k, _)| k == "email").map(|(_, v)| v.clone()))
        .collect();
    emails.sort();
    emails
}

#[tokio::test]
async fn hubspot_contacts_are_read_one_by_id_and_several_in_one_batch_read() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let app = app_for(&server);
    let one = send_event(&app, "hubspot-app-webhook").await;
    assert_eq!(one.json_body()["status"], "synced", "{}", one.body);
    let calls = hubspot_calls(&server).await;
    assert_eq!(calls.len(), 1, "the two events name one contact");
    assert_eq!(calls[0].method.as_str(), "GET");
    assert_eq!(calls[0].url.path(), format!("{HUBSPOT_CONTACTS}/3234574"));
    assert_eq!(
        calls[0].url.query(),
        Some(
            "properties=email,firstname,lastname,phone,mobilephone,company,hs_email_optout&archived=false"
        )
    );
    assert_eq!(
        calls[0].headers.get("authorization").unwrap(),
        "Bearer pat-na1-local-hubspot-private-app-token"
    );
    let several = send_event(&app, "hubspot-app-contacts").await;
    let body = several.json_body();
    assert_eq!(
        (&body["status"], &body["synced"], &body["skipped"]),
        (&json!("synced"), &json!(2), &json!(1)),
        "{body}"
    );
    let calls = hubspot_calls(&server).await;
    assert_eq!(calls.len(), 2, "one batch read for three contacts");
    assert_eq!(calls[1].method.as_str(), "POST");
    assert_eq!(
        calls[1].url.path(),
        format!("{HUBSPOT_CONTACTS}/batch/read")
    );
    assert_eq!(calls[1].url.query(), Some("archived=false"));
    let asked: Value = serde_json::from_slice(&calls[1].body).unwrap();
    assert_eq!(
        asked["inputs"],
        json!([{"id": "3234574"}, {"id": "3234580"}, {"id": "999999"}])
    );
    assert_eq!(asked["properties"][0], "email");
    // Inara's events are the first request's again (a retry grouped with new events): she is
    // not synced again. Kaylee is; contact 999999 no longer exists.
    assert_eq!(
        synced_emails(&server).await,
        ["inara.serra@example.com", "kaylee.frye@example.com"]
    );
}

#[tokio::test]
async fn hubspot_without_a_token_is_ignored_naming_the_key_and_with_none_found_too() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let mut secret: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
    secret["sender_api"]
        .as_object_mut()
        .unwrap()
        .remove("hubspot");
    let app = app_with(FixedSecret(secret.to_string()), fast_client(), 1 << 20)
        .with_sender_apis(SenderApis::new(Some(server.uri())).unwrap());
    let answer = send_event(&app, "hubspot-app-contacts").await;
    assert_eq!(answer.json_body()["status"], "ignored");
    assert!(
        answer.body.contains("sender_api.hubspot.access_token"),
        "{}",
        answer.body
    );
    assert!(hubspot_calls(&server).await.is_empty());
    // None of the contacts exists: HubSpot may answer 404, or 207 with no results.
    for gone in [
        ResponseTemplate::new(404).set_body_json(json!({"status": "error", "category": "OBJECT_NOT_FOUND"})),
        ResponseTemplate::new(207).set_body_json(json!({"status": "COMPLETE", "results": [], "numErrors": 1,
            "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "context": {"ids": ["3234574", "3234580", "999999"]}}]})),
    ] {
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        Mock::given(method("POST"))
            .and(path(format!("{HUBSPOT_CONTACTS}/batch/read")))
            .respond_with(gone)
            .with_priority(1)
            .mount(&server)
            .await;
        let answer = send_event(&app_for(&server), "hubspot-app-contacts").await;
        assert_eq!(answer.json_body()["status"], "ignored", "{}", answer.body);
        assert!(answer.body.contains("was not found"), "{}", answer.body);
        assert!(received_syncs(&server).await.is_empty());
    }
}

#[tokio::test]
async fn hubspot_rate_limit_is_waited_out_by_retry_after() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    Mock::given(method("POST"))
        .and(path(format!("{HUBSPOT_CONTACTS}/batch/read")))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "policyName": "SECONDLY"})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_hubspot(&server).await;
    let started = std::time::Instant::now();
    let answer = send_event(&app_for(&server), "hubspot-app-contacts").await;
    assert_eq!(answer.json_body()["synced"], 2, "{}", answer.body);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(hubspot_calls(&server).await.len(), 2);
}

/// ActiveCampaign and HubSpot's API, where every `contact_sync` of Kaylee answers 503.
async fn hubspot_with_kaylee_failing() -> MockServer {
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .and(wiremock::matchers::body_string_contains("kaylee"))
        .respond_with(ResponseTemplate::new(503))
        .with_priority(1)
        .mount(&server)
        .await;
    server
}

/// ActiveCampaign fails for the second contact: 503, and HubSpot's retry of the request syncs
/// only that one (the first has its own claim, finished).
#[tokio::test]
async fn a_hubspot_request_retried_after_failing_part_way_syncs_each_contact_once() {
    let _logs = logs::checked();
    let server = hubspot_with_kaylee_failing().await;
    let app = app_for(&server);
    let down = send_event(&app, "hubspot-app-contacts").await;
    assert_eq!(down.status, 503, "{}", down.body);
    let first_try: Vec<String> = received_syncs(&server)
        .await
        .iter()
        .filter_map(|s| s.iter().find(|(k, _)| k == "email").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(first_try[0], "inara.serra@example.com");
    assert!(
        first_try[1..]
            .iter()
            .all(|e| e == "kaylee.frye@example.com")
    );
    // ActiveCampaign is back; HubSpot sends the same request again.
    server.reset().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let retry = send_event(&app, "hubspot-app-contacts").await;
    assert_eq!(retry.json_body()["synced"], 2, "{}", retry.body);
    assert_eq!(synced_emails(&server).await, ["kaylee.frye@example.com"]);
}

/// Queue mode: one message per contact, each looked up on its own by the worker; the one that
/// no longer exists is dead-lettered with why.
#[tokio::test]
async fn in_queue_mode_each_hubspot_contact_is_its_own_message() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let queue = Arc::new(MemoryQueue::new());
    let dead_letters = Arc::new(MemoryQueue::new());
    let app = app_for(&server).with_queue(queue.clone());
    let answer = send_event(&app, "hubspot-app-contacts").await;
    let body = answer.json_body();
    assert_eq!(
        (&body["status"], &body["queued"]),
        (&json!("queued"), &json!(3)),
        "{body}"
    );
    assert!(hubspot_calls(&server).await.is_empty(), "only queued");
    let messages = queue.messages();
    assert_eq!(messages.len(), 3);
    // Each message keeps only the events about its contact.
    let kept: Value = serde_json::from_str(&messages[1].body).unwrap();
    assert_eq!(kept["webhook"].as_array().unwrap().len(), 1);
    assert_eq!(kept["webhook"][0]["objectId"], 3234580);
    let worker = worker_for(&server, &dead_letters);
    let records = records_of(messages);
    let report = worker
        .process(
            records,
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await;
    assert_eq!((report.synced, report.dead_lettered), (2, 1), "{report:?}");
    assert_eq!(
        synced_emails(&server).await,
        ["inara.serra@example.com", "kaylee.frye@example.com"]
    );
    let reason = dead_letters.messages()[0]
        .attributes
        .iter()
        .find(|(k, _)| k == "reason")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(reason.contains("contact 999999 was not found"), "{reason}");
}

/// `response` to GETs of `object` ahead of the APIs' own fakes: the first `times`, or all.
async fn answer_first(
    server: &MockServer,
    object: &str,
    response: ResponseTemplate,
    times: Option<u64>,
) {
    let mock = Mock::given(method("GET"))
        .and(path(object))
        .respond_with(response)
        .with_priority(1);
    match times {
        Some(times) => mock.up_to_n_times(times).mount(server).await,
        None => mock.mount(server).await,
    }
}

/// The fake's requests to `object`.
async fn requests_to(server: &MockServer, object: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == object)
        .collect()
}

/// Each of the other looked-up APIs, through the same failures as BigCommerce: the exact
/// request (path, bearer, Squarespace's User-Agent), the object gone (ignored), the rate limit
/// waited out by `Retry-After`, an outage (503, then the retry lands) and refused credentials.
#[tokio::test]
async fn squarespace_stripe_and_paddle_lookups_meet_each_failure() {
    let _logs = logs::checked();
    let cases = [
        (
            "squarespace-order-create",
            "/1.0/commerce/orders/5f0b8b1c2d3e4f5a6b7c8d9f",
            "Bearer local-squarespace-api-key",
        ),
        (
            "stripe-subscription-created",
            "/v1/customers/cus_Q8subscriber",
            "Bearer rk_test_local_stripe_restricted",
        ),
        (
            "paddle-transaction-completed",
            "/customers/ctm_01jgzb7kx0a2c4e6g8j0k2m4p6",
            "Bearer pdl_sdbx_apikey_local_paddle",
        ),
    ];
    for (event, object, bearer) in cases {
        // Found: the exact request, and the contact synced.
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        mount_sender_apis(&server).await;
        let found = send_event(&app_for(&server), event).await;
        assert_eq!(
            found.json_body()["status"],
            "synced",
            "{event}: {}",
            found.body
        );
        let made = requests_to(&server, object).await;
        assert_eq!(made.len(), 1, "{event}");
        assert_eq!(made[0].method.as_str(), "GET");
        assert_eq!(
            made[0].headers.get("authorization").unwrap(),
            bearer,
            "{event}"
        );
        if event.starts_with("squarespace") {
            let agent = made[0].headers.get("user-agent").unwrap().to_str().unwrap();
            assert!(agent.contains("ac-webhook-sync"), "{agent}");
        }
        assert_eq!(received_syncs(&server).await.len(), 1, "{event}");

        // Gone: ignored with the 404 named, nothing synced.
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        answer_first(
            &server,
            object,
            ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})),
            None,
        )
        .await;
        let gone = send_event(&app_for(&server), event).await;
        assert_eq!(
            gone.json_body()["status"],
            "ignored",
            "{event}: {}",
            gone.body
        );
        assert!(gone.body.contains("404"), "{event}: {}", gone.body);
        assert!(received_syncs(&server).await.is_empty(), "{event}");

        // Rate limited once: waited out as asked, then synced.
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        answer_first(
            &server,
            object,
            ResponseTemplate::new(429).insert_header("Retry-After", "1"),
            Some(1),
        )
        .await;
        mount_sender_apis(&server).await;
        let started = std::time::Instant::now();
        let waited = send_event(&app_for(&server), event).await;
        assert_eq!(
            waited.json_body()["status"],
            "synced",
            "{event}: {}",
            waited.body
        );
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{event}: {:?}",
            started.elapsed()
        );
        assert_eq!(requests_to(&server, object).await.len(), 2, "{event}");

        // Down for every attempt of the first request: 503, and the sender's retry lands.
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        answer_first(&server, object, ResponseTemplate::new(502), Some(4)).await;
        mount_sender_apis(&server).await;
        let app = app_for(&server);
        let down = send_event(&app, event).await;
        assert_eq!(down.status, 503, "{event}: {}", down.body);
        assert!(received_syncs(&server).await.is_empty(), "{event}");
        let retry = send_event(&app, event).await;
        assert_eq!(
            retry.json_body()["status"],
            "synced",
            "{event}: {}",
            retry.body
        );
        assert_eq!(received_syncs(&server).await.len(), 1, "{event}");

        // Credentials refused: 503 until an operator fixes them, the key never logged.
        let server = MockServer::start().await;
        mount_accepting(&server, 5).await;
        answer_first(&server, object, ResponseTemplate::new(401), None).await;
        let refused = send_event(&app_for(&server), event).await;
        assert_eq!(refused.status, 503, "{event}: {}", refused.body);
        let key = bearer.trim_start_matches("Bearer ");
        assert!(
            !logs::captured().text().contains(key),
            "{event}: the key was logged"
        );
    }
}

/// A HubSpot app webhook of `events`, signed (v3) as HubSpot signs with the local client secret.
fn hubspot_request(events: &Value) -> ac_webhook_sync::inbound::InboundRequest {
    use ac_webhook_sync::sources::spec::Signing;
    let host = "abcdefghij.lambda-url.us-east-1.on.aws";
    let body = events.to_string();
    let signed = ac_webhook_sync::sources::sender("hubspot")
        .unwrap()
        .auth
        .sign(&Signing {
            secret: "local-hubspot-client-secret",
            body: body.as_bytes(),
            timestamp: EVENTS_SIGNED_AT as i64,
            id: "",
            url: &format!("https://{host}/webhooks/hubspot"),
        });
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    for (name, value) in signed.headers {
        headers.insert(name, value.parse().unwrap());
    }
    let mut request =
        ac_webhook_sync::inbound::InboundRequest::post("/webhooks/hubspot", headers, body);
    request.received_at = std::time::UNIX_EPOCH + Duration::from_secs(EVENTS_SIGNED_AT + 5);
    request
}

/// One app-webhook event about `contact`.
fn hubspot_event(event_id: u64, kind: &str, contact: u64, portal: u64) -> Value {
    json!({"eventId": event_id, "subscriptionId": 12345, "portalId": portal, "appId": 54321,
           "occurredAt": 1767225599000u64 + event_id, "subscriptionType": kind,
           "attemptNumber": 0, "objectId": contact, "changeSource": "CRM"})
}

#[tokio::test]
async fn hubspot_contacts_are_picked_by_the_routes_topics_and_account_each() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let mapping = Mapping::from_toml(
        "[routes.hubspot]\nsender = \"hubspot\"\ntopics = [\"contact.propertyChange\"]\n",
    )
    .unwrap();
    let app = ac_webhook_sync::functions::webhook::WebhookApp::new(
        mapping,
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&server.uri())),
            Duration::from_secs(300),
        )),
        fast_client(),
        ac_webhook_sync::functions::webhook::Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(5),
        },
    )
    .with_sender_apis(SenderApis::new(Some(server.uri())).unwrap());
    // The change comes second: the route's topics pick that contact, not the first event's.
    let events = json!([
        hubspot_event(1, "contact.creation", 3234580, 62515),
        hubspot_event(2, "contact.propertyChange", 3234574, 62515),
    ]);
    let answer = send(&app, &hubspot_request(&events)).await;
    assert_eq!(answer.json_body()["status"], "synced", "{}", answer.body);
    assert_eq!(synced_emails(&server).await, ["inara.serra@example.com"]);
    let only_made = json!([hubspot_event(3, "contact.creation", 3234580, 62515)]);
    let answer = send(&app, &hubspot_request(&only_made)).await;
    assert_eq!(answer.json_body()["status"], "ignored", "{}", answer.body);
    assert!(
        answer.body.contains("contact.creation is not handled"),
        "{}",
        answer.body
    );

    // Events of two accounts: only those of the token's account (`portal_id`) are looked up.
    let mut secret: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
    secret["sender_api"]["hubspot"]["portal_id"] = json!(62515);
    let app = app_with(FixedSecret(secret.to_string()), fast_client(), 1 << 20)
        .with_sender_apis(SenderApis::new(Some(server.uri())).unwrap());
    let mixed = json!([
        hubspot_event(4, "contact.creation", 3234574, 99999),
        hubspot_event(5, "contact.creation", 3234580, 62515),
    ]);
    let answer = send(&app, &hubspot_request(&mixed)).await;
    assert_eq!(answer.json_body()["status"], "synced", "{}", answer.body);
    let read = hubspot_calls(&server).await;
    assert_eq!(
        read.last().unwrap().url.path(),
        format!("{HUBSPOT_CONTACTS}/3234580"),
        "only the configured account's contact"
    );
}

#[tokio::test]
async fn a_hubspot_retry_grouped_differently_syncs_each_contact_once_and_gaps_are_retried() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    let app = app_for(&server);
    let inara = hubspot_event(1, "contact.creation", 3234574, 62515);
    let kaylee = hubspot_event(2, "contact.creation", 3234580, 62515);
    send(&app, &hubspot_request(&json!([inara.clone()]))).await;
    // HubSpot retries events on their own schedules: the next request holds Inara's event again
    // beside a new one.
    let answer = send(&app, &hubspot_request(&json!([inara, kaylee]))).await;
    assert_eq!(answer.json_body()["synced"], 2, "{}", answer.body);
    assert_eq!(
        synced_emails(&server).await,
        ["inara.serra@example.com", "kaylee.frye@example.com"]
    );

    // A 207 that leaves a contact out without saying it is gone: tried again (503).
    let server = MockServer::start().await;
    mount_accepting(&server, 5).await;
    Mock::given(method("POST"))
        .and(path(format!("{HUBSPOT_CONTACTS}/batch/read")))
        .respond_with(ResponseTemplate::new(207).set_body_json(json!({
            "status": "COMPLETE", "numErrors": 1,
            "results": [ {"id": "3234574", "properties": {"email": "inara.serra@example.com"}} ],
            "errors": [{"status": "error", "category": "RATE_LIMITS", "message": "try again"}]
        })))
        .with_priority(1)
        .mount(&server)
        .await;
    let answer = send_event(&app_for(&server), "hubspot-app-contacts").await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(received_syncs(&server).await.is_empty());
}

/// The queue, down or up as the test says.
struct SwitchedQueue {
    inner: MemoryQueue,
    up: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ContactQueue for SwitchedQueue {
    async fn send_body(
        &self,
        body: String,
        attributes: &[(&str, &str)],
        deadline: tokio::time::Instant,
    ) -> Result<String, ac_webhook_sync::delivery::QueueError> {
        if !self.up.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ac_webhook_sync::delivery::QueueError::Unavailable(
                "down".into(),
            ));
        }
        self.inner.send_body(body, attributes, deadline).await
    }
    async fn send_many(
        &self,
        bodies: Vec<String>,
        attributes: &[(&str, &str)],
        deadline: tokio::time::Instant,
    ) -> Result<usize, ac_webhook_sync::delivery::PartlySent> {
        self.inner.send_many(bodies, attributes, deadline).await
    }
    async fn change_visibility(
        &self,
        receipt_handle: &str,
        delay: Duration,
    ) -> Result<(), ac_webhook_sync::delivery::QueueError> {
        self.inner.change_visibility(receipt_handle, delay).await
    }
}

/// Queue mode with the queue down: the contacts are looked up inline, Inara syncs and
/// Kaylee's sync fails (503). HubSpot's retry finds the queue up: Inara is not queued again.
#[tokio::test]
async fn a_contact_synced_inline_while_the_queue_was_down_is_not_queued_on_the_retry() {
    let _logs = logs::checked();
    let server = hubspot_with_kaylee_failing().await;
    let queue = Arc::new(SwitchedQueue {
        inner: MemoryQueue::new(),
        up: false.into(),
    });
    let app = app_for(&server).with_queue(queue.clone());
    let down = send_event(&app, "hubspot-app-contacts").await;
    assert_eq!(down.status, 503, "{}", down.body);
    server.reset().await;
    mount_accepting(&server, 5).await;
    mount_hubspot(&server).await;
    queue.up.store(true, std::sync::atomic::Ordering::SeqCst);
    let retry = send_event(&app, "hubspot-app-contacts").await;
    let body = retry.json_body();
    assert_eq!(
        (&body["status"], &body["synced"], &body["queued"]),
        (&json!("queued"), &json!(1), &json!(2)),
        "{body}"
    );
    let queued: Vec<String> = queue
        .inner
        .messages()
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.body).unwrap()["lookup"]["id"].to_string())
        .collect();
    assert_eq!(queued, ["\"3234580\"", "\"999999\""]);
}
