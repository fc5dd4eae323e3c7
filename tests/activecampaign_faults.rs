//! The rows of SPEC's response table that depend on ActiveCampaign's behaviour, each against
//! a fake that misbehaves in one way, asserting what the sender gets and what was sent.

mod support;

use std::time::{Duration, Instant as StdInstant};

use ac_webhook_sync::activecampaign::{ActiveCampaignClient, ClientSettings};
use ac_webhook_sync::secret::FixedSecret;
use serde_json::json;
use support::*;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ok_sync() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(synced_body(5))
}

#[tokio::test]
async fn rate_limited_then_synced_honouring_retry_after() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "1"),
        ok_sync(),
    ])
    .await;
    let app = app_for(&server);
    let started = StdInstant::now();
    let response = send_event(&app, "shopify-orders-paid").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 5})
    );
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        started.elapsed()
    );
    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 2);
    assert_eq!(syncs[0], syncs[1], "the retry sends the same contact");
}

#[tokio::test]
async fn refused_data_is_rejected_not_retried() {
    let _logs = logs::checked();
    let server = scripted(vec![ResponseTemplate::new(200).set_body_json(json!({
        "result_code": 0, "result_message": "O endereço de e-mail do contato não é válido.", "result_output": "json", "results": []
    }))])
    .await;
    let app = app_for(&server);
    let response = send_event(&app, "form-json").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json_body()["status"], "rejected");
    assert_eq!(
        response.json_body()["reason"],
        "O endereço de e-mail do contato não é válido."
    );
    // The first refusal is asked once more after the key check (the key might have been
    // refused a moment before it was checked); the next, inside the check's minute, is not.
    assert_eq!(received_syncs(&server).await.len(), 2);
    assert_eq!(
        send_event(&app, "form-urlencoded").await.json_body()["status"],
        "rejected"
    );
    assert_eq!(received_syncs(&server).await.len(), 3);
    // The same refused delivery again is answered from the first answer: nothing is sent.
    let again = send_event(&app, "form-json").await.json_body();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["first"]["status"], "rejected");
    assert_eq!(received_syncs(&server).await.len(), 3);
}

#[tokio::test]
async fn unknown_outcomes_are_retried_until_answered() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(200),
        ResponseTemplate::new(200).set_body_string("<html>gateway</html>"),
        ResponseTemplate::new(502),
        ok_sync(),
    ])
    .await;
    let response = send_event(&app_for(&server), "woocommerce-order-created").await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    assert_eq!(received_syncs(&server).await.len(), 4);
}

#[tokio::test]
async fn activecampaign_down_is_503_with_retry_after() {
    let _logs = logs::checked();
    let server = scripted(vec![ResponseTemplate::new(503)]).await;
    let app = app_with(
        FixedSecret(local_secret_json(&server.uri())),
        fast_client(),
        1024 * 1024,
    );
    let response = send_event(&app, "stripe-invoice-paid").await;
    assert_eq!(response.status, 503);
    assert!(
        response
            .header("retry-after")
            .is_some_and(|v| v.parse::<u64>().unwrap() >= 1)
    );
    assert_cause_logged(&response, "HTTP 503");
    assert!(
        received_syncs(&server).await.len() >= 2,
        "retried within the budget"
    );
}

#[tokio::test]
async fn a_long_retry_after_ends_in_503_carrying_it() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(429).insert_header("Retry-After", "120"),
    ])
    .await;
    let response = send_event(&app_for(&server), "form-json").await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("120"));
    assert_eq!(
        received_syncs(&server).await.len(),
        1,
        "no retry that cannot fit the deadline"
    );
}

#[tokio::test]
async fn unreachable_activecampaign_is_503() {
    let _logs = logs::checked();
    // A port nothing listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = app_for_url(&format!("http://127.0.0.1:{port}"));
    let response = send_event(&app, "shopify-customers-create").await;
    assert_eq!(response.status, 503);
    assert_cause_logged(&response, "connection failed");
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(200)
            .set_body_json(synced_body(1))
            .set_delay(Duration::from_secs(3)),
        ok_sync(),
    ])
    .await;
    let client = ActiveCampaignClient::new(ClientSettings {
        call_timeout: Duration::from_millis(300),
        requests_per_second: 100.0,
        imports_per_second: 100.0,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
    })
    .unwrap();
    let app = app_with(
        FixedSecret(local_secret_json(&server.uri())),
        client,
        1 << 20,
    );
    let started = StdInstant::now();
    let response = send_event(&app, "form-json").await;
    // The slow answer would have been subscriber 1: only a call cut off at its 300 ms
    // timeout and retried gets the second answer, subscriber 5, this soon.
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 5}),
        "{}",
        response.body
    );
    assert_eq!(received_syncs(&server).await.len(), 2);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_refused_key_that_stays_refused_is_503() {
    let _logs = logs::checked();
    // Both shapes: HTTP 403, and v1's real one (HTTP 200, `result_code` 0), which only the
    // key check (v3 users/me: 403) tells from a refusal of the data.
    for v1_answer in [
        ResponseTemplate::new(403).set_body_json(json!({"result_code": 0})),
        v1_bad_key(),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(header("API-TOKEN", LOCAL_API_KEY))
            .respond_with(v1_answer)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})))
            .mount(&server)
            .await;
        let response = send_event(&app_for(&server), "form-json").await;
        assert_eq!(response.status, 503, "{}", response.body);
        assert_ne!(response.json_body()["status"], "rejected");
        assert_cause_logged(&response, "API key");
        assert!(!response.body.contains(LOCAL_API_KEY));
    }
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    let app = app_with(
        FixedSecret(local_secret_json(&server.uri())),
        fast_client(),
        64,
    );
    let response = send_event(&app, "shopify-orders-create").await;
    assert_eq!(response.status, 413);
    assert!(received_syncs(&server).await.is_empty());
}

#[tokio::test]
async fn malformed_secret_is_503_and_names_no_value() {
    let _logs = logs::checked();
    let app = app_with(
        FixedSecret(r#"{"api_url":"https://x.api-us1.com","api_key":"k-very-secret","webhook_secrets":{"form":7}}"#.into()),
        fast_client(),
        1 << 20,
    );
    let response = send_event(&app, "form-json").await;
    assert_eq!(response.status, 503);
    assert!(response.header("retry-after").is_some());
    assert!(!response.body.contains("k-very-secret"));
}

#[tokio::test]
async fn the_stand_in_answers_like_activecampaign() {
    let _logs = logs::checked();
    use ac_sandbox::{Language, Sandbox};
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::Portuguese).quiet();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ac_sandbox::serve(listener, sandbox.clone()));
    let app = app_for_url(&url);
    // Localised messages change nothing: success is result_code 1.
    assert_eq!(
        send_event(&app, "shopify-orders-create").await.json_body()["status"],
        "synced"
    );
    assert_eq!(
        send_event(&app, "shopify-orders-paid").await.json_body()["status"],
        "synced"
    );
    let contacts = sandbox.contacts();
    assert_eq!(contacts.len(), 1, "one contact, updated");
    let jon = &contacts["jon@example.com"];
    assert_eq!(jon.first_name.as_deref(), Some("Jon"));
    assert_eq!(jon.organization.as_deref(), Some("Night's Watch"));
    // The shop route: an order must not re-subscribe someone who left list 2.
    sandbox_unsubscribe(&url, "jon@example.com", 2).await;
    assert_eq!(
        send_event(&app, "shop-orders-paid").await.json_body()["status"],
        "synced"
    );
    let jon = &sandbox.contacts()["jon@example.com"];
    assert_eq!(
        jon.lists.get(&2),
        Some(&2),
        "still unsubscribed from list 2"
    );
    assert_eq!(
        jon.lists.get(&1),
        Some(&1),
        "subscribed to list 1 with consent"
    );
    assert!(jon.tags.contains("sku:IPOD2008PINK"));
    // A wrong key is refused.
    let wrong = app_with(
        FixedSecret(local_secret_json(&url).replace(LOCAL_API_KEY, "wrong")),
        fast_client(),
        1 << 20,
    );
    assert_eq!(send_event(&wrong, "form-json").await.status, 503);
}

async fn sandbox_unsubscribe(url: &str, email: &str, list: u64) {
    let body = format!("email={email}&p[{list}]={list}&status[{list}]=2");
    let response = reqwest::Client::new()
        .post(format!(
            "{url}/admin/api.php?api_action=contact_sync&api_output=json"
        ))
        .header("API-TOKEN", LOCAL_API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
}
