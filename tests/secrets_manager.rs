//! The webhook function against a real Secrets Manager-compatible server (moto), reached the
//! way it is deployed: through the default AWS config chain and `AWS_ENDPOINT_URL`.
//! One test, because it sets process environment variables.

mod support;

use std::collections::HashMap;

use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::settings::Settings;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use serde_json::json;
use support::moto::Moto;
use support::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn admin_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

fn secret_with_key(api_url: &str, key: &str) -> String {
    let mut secret: serde_json::Value = serde_json::from_str(&local_secret_json(api_url)).unwrap();
    secret["api_key"] = json!(key);
    secret.to_string()
}

async fn app(secret_id: &str) -> WebhookApp {
    let vars = HashMap::from([("SECRET_ID", secret_id.to_string())]);
    let settings = Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    WebhookApp::from_settings(&settings).unwrap()
}

#[tokio::test]
async fn secrets_manager_fetch_rotation_and_failures() {
    let _logs = logs::checked();
    let moto = Moto::start();
    // SAFETY: this test binary has this one test, and nothing else reads the environment
    // concurrently while it is being set.
    unsafe {
        std::env::set_var("AWS_ENDPOINT_URL", &moto.endpoint);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let ac = MockServer::start().await;
    for (key, answer) in [
        (
            "key-1",
            ResponseTemplate::new(200).set_body_json(synced_body(1)),
        ),
        (
            "key-2",
            ResponseTemplate::new(200).set_body_json(synced_body(2)),
        ),
        // The revoked key, as v1 really answers it: HTTP 200, `result_code` 0.
        ("key-0", v1_bad_key()),
    ] {
        Mock::given(method("POST"))
            .and(path("/admin/api.php"))
            .and(header("API-TOKEN", key))
            .respond_with(answer)
            .mount(&ac)
            .await;
        // The key check that tells the two `result_code` 0s apart.
        let status = if key == "key-0" { 403 } else { 200 };
        Mock::given(method("GET"))
            .and(path("/api/3/users/me"))
            .and(header("Api-Token", key))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({})))
            .mount(&ac)
            .await;
    }
    let admin = admin_client(&moto.endpoint);
    admin
        .create_secret()
        .name("acws/test")
        .secret_string(secret_with_key(&ac.uri(), "key-1"))
        .send()
        .await
        .unwrap();

    // 1. The secret is read through AWS_ENDPOINT_URL and used.
    let app_one = app("acws/test").await;
    let response = send_event(&app_one, "shopify-orders-paid").await;
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 1})
    );

    // 2. Rotation: a new container caches key-0, which ActiveCampaign has revoked; the secret
    //    now holds key-2. The refused key triggers one refresh and the retry succeeds.
    admin
        .put_secret_value()
        .secret_id("acws/test")
        .secret_string(secret_with_key(&ac.uri(), "key-0"))
        .send()
        .await
        .unwrap();
    let app_two = app("acws/test").await;
    assert_eq!(
        send_event(&app_two, "form-json").await.status,
        503,
        "key-0 is revoked"
    );
    admin
        .put_secret_value()
        .secret_id("acws/test")
        .secret_string(secret_with_key(&ac.uri(), "key-2"))
        .send()
        .await
        .unwrap();
    let rotated = send_event(&app_two, "form-json").await;
    assert_eq!(
        rotated.json_body(),
        json!({"status": "synced", "subscriber_id": 2}),
        "{}",
        rotated.body
    );
    let tokens: Vec<String> = ac
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/admin/api.php")
        .filter_map(|r| {
            r.headers
                .get("API-TOKEN")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .collect();
    assert_eq!(tokens, ["key-1", "key-0", "key-0", "key-2"]);

    // 3. A secret that does not exist: 503, nothing sent.
    let before = ac.received_requests().await.unwrap().len();
    let missing = send_event(&app("acws/missing").await, "form-json").await;
    assert_eq!(missing.status, 503);
    assert!(missing.header("retry-after").is_some());
    // Named by its ARN, as the template names it: the account id stays in the log.
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:acws/gone-AbCdEf";
    let by_arn = send_event(&app(arn).await, "form-json").await;
    assert_cause_logged(&by_arn, "secret not found");
    assert!(!by_arn.body.contains("123456789012"), "{}", by_arn.body);

    // 4. A secret whose JSON lacks a key: 503, naming the key and not the values.
    admin
        .create_secret()
        .name("acws/malformed")
        .secret_string(
            r#"{"api_url":"https://x.api-us1.com","webhook_secrets":{"form":"local-form-token"}}"#,
        )
        .send()
        .await
        .unwrap();
    let malformed = send_event(&app("acws/malformed").await, "form-json").await;
    assert_eq!(malformed.status, 503);
    assert_cause_logged(&malformed, "api_key");
    assert!(!malformed.body.contains("local-form-token"));

    // 5. Secrets Manager unreachable: 503.
    drop(moto);
    let down = send_event(&app("acws/test").await, "form-json").await;
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(
        ac.received_requests().await.unwrap().len(),
        before,
        "nothing reached ActiveCampaign"
    );
}
