//! ActiveCampaign's real answers, each of which today's code once misread as a settled
//! contact: a wrong key answered HTTP 200 with `result_code` 0, redirects, endless answers,
//! long `Retry-After`s, unreadable list statuses, and contacts too large to queue.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ac_webhook_sync::delivery::ContactQueue;
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::{FixedSecret, SecretCache, SecretFile};
use http::HeaderMap;
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn refused_data() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "result_code": 0, "result_message": "Contact Email Address is not valid.", "result_output": "json"
    }))
}

#[tokio::test]
async fn a_result_code_0_is_rejected_only_after_the_key_is_confirmed_once_a_minute() {
    let _logs = logs::checked();
    let server = scripted(vec![refused_data()]).await;
    let app = app_for(&server);
    for n in 0..5 {
        let response = send(&app, &nth_delivery("form-json", n)).await;
        assert_eq!(
            response.json_body()["status"],
            "rejected",
            "{}",
            response.body
        );
    }
    assert_eq!(
        received_syncs(&server).await.len(),
        6,
        "the first refusal is asked once more after its key check"
    );
    assert_eq!(
        key_checks(&server).await,
        1,
        "a stream of refusals costs one key check a minute"
    );
}

#[tokio::test]
async fn a_key_refused_a_moment_before_its_check_passes_is_not_a_rejected_contact() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_users_me(&server).await;
    // The key is refused once (ActiveCampaign's bad-key answer), then accepted again before
    // the key check: the contact is synced, not answered rejected with the key's message.
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .respond_with(v1_bad_key())
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_accepting(&server, 42).await;
    let response = send_event(&app_for(&server), "form-json").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    assert_eq!(key_checks(&server).await, 1);
}

#[tokio::test]
async fn a_key_answered_200_result_code_0_is_re_read_and_the_contact_synced_with_the_new_one() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    // The old key: v1's real answer to a revoked key, and v3's 403 for it.
    Mock::given(method("POST"))
        .and(wiremock::matchers::header("API-TOKEN", "old-key"))
        .respond_with(v1_bad_key())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::header("Api-Token", "old-key"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    mount_accepting(&server, 8).await;
    let dir = std::env::temp_dir().join(format!("acws-rotation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secret.json");
    let secret = |key: &str| {
        let mut value: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
        value["api_key"] = json!(key);
        value.to_string()
    };
    std::fs::write(&file, secret("old-key")).unwrap();
    let app = app_with(SecretFile(file.clone()), fast_client(), 1 << 20);
    assert_eq!(send_event(&app, "form-json").await.status, 503);
    // The operator rotates the key: the next refusal re-reads the secret and syncs.
    std::fs::write(&file, secret(LOCAL_API_KEY)).unwrap();
    let response = send_event(&app, "form-json").await;
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 8}),
        "{}",
        response.body
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_bad_key_on_contact_view_email_is_not_read_as_no_such_contact() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/admin/api.php"))
        .respond_with(v1_bad_key())
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/3/users/me"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&server)
        .await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(1)),
    )
    .await;
    // The shop route subscribes to list 2, guarded by a status lookup.
    let response = send_event(&app_for(&server), "shop-orders-paid").await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(
        received_syncs(&server).await.is_empty(),
        "nothing subscribed on the strength of a refused key"
    );
}

#[tokio::test]
async fn a_bounced_or_unconfirmed_contact_is_not_subscribed_by_an_order() {
    let _logs = logs::checked();
    for status in ["0", "3", "9"] {
        let server = MockServer::start().await;
        mount_users_me(&server).await;
        mount_contact_sync(
            &server,
            ResponseTemplate::new(200).set_body_json(synced_body(9)),
        )
        .await;
        Mock::given(method("GET"))
            .and(query_param("api_action", "contact_view_email"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": "9", "result_code": 1, "result_output": "json",
                "lists": {"2": {"listid": "2", "status": status}}
            })))
            .mount(&server)
            .await;
        let response = send_event(&app_for(&server), "shop-orders-paid").await;
        assert_eq!(response.json_body()["status"], "synced");
        let syncs = received_syncs(&server).await;
        assert!(
            !syncs[0].iter().any(|(k, _)| k == "status[2]"),
            "status {status}: {:?}",
            syncs[0]
        );
    }
}

#[tokio::test]
async fn unreadable_list_statuses_leave_the_subscribe_out_and_sync_the_rest() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_users_me(&server).await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(9)),
    )
    .await;
    Mock::given(method("GET"))
        .and(query_param("api_action", "contact_view_email"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let response = send_event(&app_for(&server), "shop-orders-paid").await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 1);
    let keys: Vec<&str> = syncs[0].iter().map(|(k, _)| k.as_str()).collect();
    assert!(!keys.contains(&"status[2]"), "{keys:?}");
    assert!(
        keys.contains(&"email") && keys.contains(&"tags"),
        "{keys:?}"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_the_key_does_not_travel() {
    let _logs = logs::checked();
    let elsewhere = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(synced_body(1)))
        .mount(&elsewhere)
        .await;
    let server =
        scripted(vec![ResponseTemplate::new(302).insert_header(
            "Location",
            format!("{}/admin/api.php", elsewhere.uri()),
        )])
        .await;
    let response = send_event(&app_for(&server), "form-json").await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_cause_logged(&response, "redirect");
    assert!(received_syncs(&server).await.len() >= 2, "a 3xx is retried");
    assert!(
        elsewhere.received_requests().await.unwrap().is_empty(),
        "the API-TOKEN header went to the redirect's host"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_an_unknown_outcome() {
    let _logs = logs::checked();
    let huge = format!(
        r#"{{"result_code":1,"subscriber_id":1,"padding":"{}"}}"#,
        "x".repeat(2 << 20)
    );
    let server = scripted(vec![
        ResponseTemplate::new(200).set_body_raw(huge.into_bytes(), "application/json"),
        ResponseTemplate::new(200).set_body_json(synced_body(2)),
    ])
    .await;
    let response = send_event(&app_for(&server), "form-json").await;
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 2}),
        "the 2 MiB answer was read: {}",
        response.body
    );
}

#[tokio::test]
async fn a_long_retry_after_is_the_wait_told_to_the_sender_capped_at_fifteen_minutes() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "600"),
    ])
    .await;
    let app = app_for(&server);
    let first = send_event(&app, "form-json").await;
    assert_eq!(first.status, 503);
    assert_eq!(first.header("retry-after"), Some("600"));
    // The pause holds: the next sender is told the wait that is left, not a fixed 30 s, and
    // ActiveCampaign is not asked again.
    let second = send_event(&app, "form-json").await;
    assert_eq!(second.status, 503);
    let left: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((595..=600).contains(&left), "Retry-After {left}");
    assert_eq!(received_syncs(&server).await.len(), 1);

    let server = scripted(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "3600"),
    ])
    .await;
    let capped = send_event(&app_for(&server), "form-json").await;
    assert_eq!(capped.header("retry-after"), Some("900"));
}

/// A route with ten custom fields, each taken from the payload.
fn big_fields_app(api_url: &str, queue: Option<Arc<dyn ContactQueue>>) -> WebhookApp {
    let mut toml = String::from("[routes.big]\nsender = \"form\"\n[routes.big.fields]\n");
    for (id, key) in FIELD_KEYS.iter().enumerate() {
        toml.push_str(&format!("\"{}\" = \"$.{key}\"\n", id + 1));
    }
    let mut secret: Value = serde_json::from_str(&local_secret_json(api_url)).unwrap();
    secret["webhook_secrets"]["big"] = json!("big-token");
    let app = WebhookApp::new(
        Mapping::from_toml(&toml).unwrap(),
        Arc::new(SecretCache::new(
            FixedSecret(secret.to_string()),
            Duration::from_secs(300),
        )),
        fast_client(),
        Limits {
            max_body_bytes: 6 << 20,
            invocation_budget: Duration::from_secs(5),
        },
    );
    match queue {
        Some(queue) => app.with_queue(queue),
        None => app,
    }
}

const FIELD_KEYS: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];

/// A post whose every field value is `chars` two-byte characters.
fn big_post(chars: usize) -> InboundRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let value = "é".repeat(chars);
    let mut body = json!({"email": "big@example.com"});
    for key in FIELD_KEYS {
        body[key] = json!(value);
    }
    InboundRequest::post("/webhooks/big?token=big-token", headers, body.to_string())
}

#[tokio::test]
async fn a_contact_too_large_for_the_queue_is_413_naming_its_field_not_an_outage() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 3).await;
    // A queue nobody listens on: the size check comes first, so it is never reached (and
    // no inline fallback syncs the contact as if the queue were down).
    let queue = support::moto::sqs_queue(
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        ),
        "http://127.0.0.1:9/queue/contacts",
    );
    let app = big_fields_app(&server.uri(), Some(queue));
    let started = StdInstant::now();
    let response = send(&app, &big_post(30_000)).await;
    assert_eq!(response.status, 413, "{}", response.body);
    assert!(response.body.contains("field["), "{}", response.body);
    assert!(received_syncs(&server).await.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn custom_field_values_are_cut_to_their_documented_length() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_accepting(&server, 3).await;
    let app = big_fields_app(&server.uri(), None);
    let response = send(&app, &big_post(60_000)).await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    let syncs = received_syncs(&server).await;
    let field = syncs[0].iter().find(|(k, _)| k == "field[1,0]").unwrap();
    assert_eq!(
        field.1.chars().count(),
        ac_webhook_sync::mapping::MAX_FIELD_CHARS
    );
}

#[tokio::test]
async fn a_key_revoked_within_the_minute_of_a_confirmation_is_still_caught() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    // First a genuine refusal with the key good (asked twice: once more after the check);
    // then the key is revoked.
    Mock::given(method("POST"))
        .respond_with(refused_data())
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(v1_bad_key())
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/3/users/me"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"user": {"id": "1"}})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/3/users/me"))
        .respond_with(ResponseTemplate::new(403))
        .with_priority(2)
        .mount(&server)
        .await;
    let app = app_for(&server);
    let first = send_event(&app, "form-json").await;
    assert_eq!(first.json_body()["status"], "rejected", "{}", first.body);
    // Seconds later, inside the 60 s the "good" verdict is trusted: a refusal with another
    // message is checked again, so the revoked key is a 503, not a contact answered rejected.
    let second = send(&app, &nth_delivery("form-json", 1)).await;
    assert_eq!(second.status, 503, "{}", second.body);
    assert_cause_logged(&second, "API key");
}
