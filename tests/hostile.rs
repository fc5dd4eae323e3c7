//! Hostile input at the function URL: each request gets its documented status, nothing
//! panics, and no partial contact reaches ActiveCampaign. Every case states what it sends,
//! what the sender is answered and exactly what ActiveCampaign received (usually nothing).

mod support;

use std::time::{Duration, UNIX_EPOCH};

use ac_webhook_sync::aws::lambda::http as lambda;
use std::sync::Arc;

use ac_webhook_sync::crypto::hmac_sha256;
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::mapping::{MAX_TAGS, MAX_TEXT_CHARS};
use ac_webhook_sync::response::HttpResponse;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use base64::Engine;
use http::{HeaderMap, HeaderValue};
use serde_json::{Value, json};
use support::*;
use wiremock::{MockServer, ResponseTemplate};

const FORM_TOKEN: &str = "local-form-token";
const SHOPIFY_SECRET: &str = "local-shopify-secret";
const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// ActiveCampaign that syncs everything and knows nobody (no list statuses to protect).
async fn activecampaign() -> (MockServer, WebhookApp) {
    let server = MockServer::start().await;
    mount_accepting(&server, 9).await;
    let app = app_for(&server);
    (server, app)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// A post to the token-authenticated `form` route.
fn form_post(content_type: &str, body: impl Into<bytes::Bytes>) -> InboundRequest {
    InboundRequest::post(
        &format!("/webhooks/form?token={FORM_TOKEN}"),
        headers(&[("content-type", content_type)]),
        body,
    )
}

fn shopify_signature(body: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(SHOPIFY_SECRET.as_bytes(), &[body]))
}

/// A Shopify `customers/create` delivery with the given signature header value.
fn shopify_post(body: &[u8], signature: &str) -> InboundRequest {
    InboundRequest::post(
        "/webhooks/shopify",
        headers(&[
            ("content-type", JSON),
            ("x-shopify-topic", "customers/create"),
            ("x-shopify-hmac-sha256", signature),
        ]),
        body.to_vec(),
    )
}

fn field<'a>(sync: &'a [(String, String)], key: &str) -> Option<&'a str> {
    sync.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Asserts the answer's status and that ActiveCampaign received nothing.
async fn refused(server: &MockServer, response: &HttpResponse, status: u16, case: &str) {
    assert_eq!(response.status, status, "{case}: {}", response.body);
    let error = response.json_body()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !error.is_empty(),
        "{case}: an error says why: {}",
        response.body
    );
    let requests = server.received_requests().await.unwrap();
    assert!(
        requests.is_empty(),
        "{case}: nothing reaches ActiveCampaign"
    );
}

/// The one contact ActiveCampaign received, after a 200 `synced`.
async fn synced_one(
    server: &MockServer,
    response: &HttpResponse,
    case: &str,
) -> Vec<(String, String)> {
    assert_eq!(response.status, 200, "{case}: {}", response.body);
    assert_eq!(response.json_body()["status"], "synced", "{case}");
    let mut syncs = received_syncs(server).await;
    assert_eq!(syncs.len(), 1, "{case}: exactly one contact_sync");
    syncs.remove(0)
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_before_anything_is_read() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let body = format!(
        r#"{{"email":"ada@example.com","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let response = send(&app, &form_post(JSON, body)).await;
    refused(&server, &response, 413, "1 MiB + 30 bytes").await;
}

#[tokio::test]
async fn deeply_nested_json_is_400_without_overflowing_the_stack() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    for depth in [65, 129, 100_000] {
        let body = format!(
            r#"{{"email":"ada@example.com","n":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let response = send(&app, &form_post(JSON, body)).await;
        refused(&server, &response, 400, &format!("nesting {depth}")).await;
    }
    // Just inside the limit is an ordinary submission.
    let body = format!(
        r#"{{"email":"ada@example.com","n":{}{}}}"#,
        "[".repeat(60),
        "]".repeat(60)
    );
    let sync = synced_one(
        &server,
        &send(&app, &form_post(JSON, body)).await,
        "nesting 60",
    )
    .await;
    assert_eq!(field(&sync, "email"), Some("ada@example.com"));
}

#[tokio::test]
async fn invalid_utf8_is_400() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let mut json_body = br#"{"email":"ada@example.com","name":""#.to_vec();
    json_body.extend_from_slice(&[0xff, 0xfe, b'"', b'}']);
    let response = send(&app, &form_post(JSON, json_body)).await;
    refused(&server, &response, 400, "JSON with invalid UTF-8").await;

    let mut form_body = b"email=ada%40example.com&name=".to_vec();
    form_body.extend_from_slice(&[0xc3, 0x28]);
    let response = send(&app, &form_post(FORM, form_body)).await;
    refused(&server, &response, 400, "form with invalid UTF-8").await;
}

#[tokio::test]
async fn duplicate_keys_give_one_contact_from_the_last_json_key_or_the_first_form_value() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let body = r#"{"email":"first@example.com","email":"last@example.com"}"#;
    let sync = synced_one(&server, &send(&app, &form_post(JSON, body)).await, "JSON").await;
    // serde_json keeps the last of repeated keys, as JavaScript's JSON.parse does.
    assert_eq!(field(&sync, "email"), Some("last@example.com"));

    server.reset().await;
    let (server, app) = activecampaign().await;
    let body = "email=first%40example.com&email=second%40example.com";
    let sync = synced_one(&server, &send(&app, &form_post(FORM, body)).await, "form").await;
    assert_eq!(field(&sync, "email"), Some("first@example.com"));
}

#[tokio::test]
async fn huge_numbers_of_fields_are_refused_on_forms_and_harmless_in_json() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let form: String =
        (0..5_000).map(|i| format!("f{i}=v&")).collect::<String>() + "email=ada%40example.com";
    let response = send(&app, &form_post(FORM, form)).await;
    refused(&server, &response, 400, "5,000 form fields").await;

    let mut object: serde_json::Map<String, Value> =
        (0..50_000).map(|i| (format!("k{i}"), json!(i))).collect();
    object.insert("email".into(), json!("ada@example.com"));
    let body = serde_json::to_vec(&object).unwrap();
    assert!(body.len() < 1024 * 1024);
    let sync = synced_one(
        &server,
        &send(&app, &form_post(JSON, body)).await,
        "50,000 JSON keys",
    )
    .await;
    assert_eq!(field(&sync, "email"), Some("ada@example.com"));
}

fn multipart(parts: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "----hostile-boundary";
    let mut body = Vec::new();
    for (name, value) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn multipart_with_many_or_huge_parts() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let names: Vec<String> = (0..5_000).map(|i| format!("f{i}")).collect();
    let mut parts: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    parts.push(("email", "ada@example.com"));
    let (content_type, body) = multipart(&parts);
    let response = send(&app, &form_post(&content_type, body)).await;
    refused(&server, &response, 400, "5,000 parts").await;

    let huge = "x".repeat(900 * 1024);
    let (content_type, body) = multipart(&[("email", "ada@example.com"), ("comment", &huge)]);
    let sync = synced_one(
        &server,
        &send(&app, &form_post(&content_type, body)).await,
        "a 900 KB part",
    )
    .await;
    assert_eq!(field(&sync, "email"), Some("ada@example.com"));

    server.reset().await;
    let (server, app) = activecampaign().await;
    let (content_type, body) = multipart(&[("email", "ada@example.com")]);
    let truncated = body[..body.len() - 8].to_vec();
    let response = send(&app, &form_post(&content_type, truncated)).await;
    refused(&server, &response, 400, "a truncated multipart body").await;
}

#[tokio::test]
async fn crlf_and_commas_in_values_cannot_inject_headers_tags_or_fields() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    mount_turnstile(&server).await;
    // The newsletter route tags `source:{$.source}` and redirects browsers to a fixed URL.
    let body = "your_email=ada%40example.com&your_name=Ada%0D%0ASet-Cookie%3A%20x%3D1\
                &agree=yes&source=ads%2Cvip%0D%0AX-Injected%3A%201&page=%0Ahttps%3A%2F%2Fevil.example\
                &cf-turnstile-response=XXXX.DUMMY.TOKEN.XXXX";
    let request = InboundRequest::post(
        "/webhooks/newsletter?token=local-newsletter-token",
        headers(&[("content-type", FORM)]),
        body,
    );
    let response = send(&app, &request).await;
    assert_eq!(response.status, 303, "{}", response.body);
    assert_eq!(
        response.header("location"),
        Some("https://example.com/thanks")
    );
    let lambda = lambda::into_response(response);
    assert_eq!(
        lambda.headers().len(),
        1,
        "only Location: {:?}",
        lambda.headers()
    );

    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 1);
    let sync = &syncs[0];
    for (key, value) in sync {
        assert!(!value.contains(['\r']), "{key} carries a CR: {value:?}");
    }
    assert_eq!(field(sync, "first_name"), Some("Ada"));
    assert_eq!(field(sync, "last_name"), Some("Set-Cookie: x=1"));
    // `source` takes only the route's listed values: this one makes no tag at all (neither
    // `vip` of its own after the comma, nor a header after the CR LF).
    let tags: Vec<&str> = field(sync, "tags").unwrap().split(", ").collect();
    assert_eq!(tags, ["newsletter"]);
}

#[tokio::test]
async fn over_long_names_tags_and_too_many_tags_are_cut_to_activecampaigns_limits() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(9)),
    )
    .await;
    // A route that tags each entry of a submitted array, as a product list would.
    let long = "é".repeat(1_000);
    let mut tags: Vec<String> = (0..200).map(|i| format!("t{i}")).collect();
    tags[0] = "x".repeat(300);
    // A token route's payload tags take listed values only: here, every one sent.
    let mapping = Mapping::from_toml(&format!(
        "[routes.tagged]\nsender = \"form\"\ntags = [\"$.tags[*]\"]\ntag_values = {{ \"$.tags[*]\" = {tags:?} }}\n"
    ))
    .unwrap();
    let app = WebhookApp::new(
        mapping,
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&server.uri()).replace("\"form\"", "\"tagged\"")),
            Duration::from_secs(300),
        )),
        fast_client(),
        Limits {
            max_body_bytes: 1024 * 1024,
            invocation_budget: Duration::from_secs(5),
        },
    );
    let body = json!({"email": "ada@example.com", "first_name": long, "last_name": "King",
                      "company": "c".repeat(300), "tags": tags});
    let request = InboundRequest::post(
        &format!("/webhooks/tagged?token={FORM_TOKEN}"),
        headers(&[("content-type", JSON)]),
        body.to_string(),
    );
    let sync = synced_one(&server, &send(&app, &request).await, "long").await;
    assert_eq!(
        field(&sync, "first_name").unwrap(),
        "é".repeat(MAX_TEXT_CHARS)
    );
    assert_eq!(field(&sync, "last_name"), Some("King"));
    assert_eq!(
        field(&sync, "customer_acct_name").unwrap(),
        "c".repeat(MAX_TEXT_CHARS)
    );
    let sent: Vec<&str> = field(&sync, "tags").unwrap().split(", ").collect();
    assert_eq!(sent.len(), MAX_TAGS);
    assert_eq!(sent[0], "x".repeat(MAX_TEXT_CHARS));
    assert_eq!(sent[MAX_TAGS - 1], format!("t{}", MAX_TAGS - 1));
}

#[tokio::test]
async fn case_variants_and_idn_domains_are_one_contact() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    for email in [
        "Ann+News@Example.COM",
        "ann+news@example.com",
        " ANN+NEWS@EXAMPLE.COM ",
    ] {
        let body = json!({ "email": email }).to_string();
        assert_eq!(send(&app, &form_post(JSON, body)).await.status, 200);
    }
    for email in [
        "zoë@Bücher.example",
        "zoë@xn--bcher-kva.example",
        "ZOË@BÜCHER.EXAMPLE",
    ] {
        let body = json!({ "email": email }).to_string();
        assert_eq!(
            send(&app, &form_post(JSON, body)).await.status,
            200,
            "{email}"
        );
    }
    let emails: Vec<String> = received_syncs(&server)
        .await
        .iter()
        .map(|s| field(s, "email").unwrap().to_string())
        .collect();
    assert_eq!(
        emails,
        [
            "ann+news@example.com",
            "ann+news@example.com",
            "ann+news@example.com",
            "zoë@xn--bcher-kva.example",
            "zoë@xn--bcher-kva.example",
            "zoë@xn--bcher-kva.example",
        ]
    );
    // A `+` must travel percent-encoded: a raw `+` in a form body is a space.
    let raw = server.received_requests().await.unwrap();
    assert!(String::from_utf8_lossy(&raw[0].body).contains("email=ann%2Bnews%40example.com"));
}

#[tokio::test]
async fn addresses_that_are_not_addresses_are_skipped_without_a_call() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    for email in [
        "ann news@example.com",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@exa mple.com",
        "ann@-.com\r\nbcc@evil.example",
    ] {
        let response = send(
            &app,
            &form_post(JSON, json!({ "email": email }).to_string()),
        )
        .await;
        assert_eq!(response.status, 200, "{email:?}: {}", response.body);
        assert_ne!(response.json_body()["status"], "synced", "{email:?}");
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// The committed Stripe event, received `delay` seconds after it was signed.
fn stripe_event_received_after(delay: u64) -> InboundRequest {
    let mut request = event_request("stripe-checkout-session-completed");
    request.received_at = UNIX_EPOCH + Duration::from_secs(EVENTS_SIGNED_AT + delay);
    request
}

#[tokio::test]
async fn replays_inside_the_window_get_the_first_answer_and_outside_are_401() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let first = send(&app, &stripe_event_received_after(60)).await;
    assert_eq!(first.json_body()["status"], "synced", "{}", first.body);
    let replay = send(&app, &stripe_event_received_after(60)).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.json_body()["status"], "duplicate");
    assert_eq!(replay.json_body()["first"], first.json_body());
    assert_eq!(
        received_syncs(&server).await.len(),
        1,
        "nothing synced again"
    );

    server.reset().await;
    let (server, app) = activecampaign().await;
    for delay in [301, 86_400] {
        let response = send(&app, &stripe_event_received_after(delay)).await;
        refused(&server, &response, 401, &format!("{delay} s late")).await;
    }
    // Signed in the future beyond the tolerance too.
    let mut early = event_request("stripe-checkout-session-completed");
    early.received_at = UNIX_EPOCH + Duration::from_secs(EVENTS_SIGNED_AT - 600);
    refused(&server, &send(&app, &early).await, 401, "600 s early").await;
}

#[tokio::test]
async fn signatures_in_the_wrong_encoding_or_with_a_wrong_prefix_are_401() {
    let mut logs = logs::checked();
    let (server, app) = activecampaign().await;
    let body = br#"{"id":1,"email":"ada@example.com","first_name":"Ada"}"#;
    let right = shopify_signature(body);
    let raw = hmac_sha256(SHOPIFY_SECRET.as_bytes(), &[body]);
    for (case, signature) in [
        ("hex instead of base64", hex::encode(raw)),
        (
            "url-safe base64",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
        ),
        ("a sha256= prefix", format!("sha256={right}")),
        ("upper-cased", right.to_uppercase()),
        ("truncated", right[..20].to_string()),
        ("empty", String::new()),
        ("of another body", shopify_signature(b"{}")),
    ] {
        logs.also_secret(signature.clone());
        let response = send(&app, &shopify_post(body, &signature)).await;
        refused(&server, &response, 401, case).await;
    }
    logs.also_secret(right.clone());
    let ok = send(&app, &shopify_post(body, &right)).await;
    assert_eq!(ok.status, 200, "the right signature passes: {}", ok.body);
}

#[tokio::test]
async fn a_token_anywhere_but_the_query_is_401() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let body = format!("email=ada%40example.com&token={FORM_TOKEN}");
    let cases = [
        (
            "in the body",
            InboundRequest::post("/webhooks/form", headers(&[("content-type", FORM)]), body),
        ),
        (
            "in an Authorization header",
            InboundRequest::post(
                "/webhooks/form",
                headers(&[
                    ("content-type", FORM),
                    ("authorization", &format!("Bearer {FORM_TOKEN}")),
                ]),
                "email=ada%40example.com",
            ),
        ),
        (
            "another route's token",
            InboundRequest::post(
                "/webhooks/form?token=local-newsletter-token",
                headers(&[("content-type", FORM)]),
                "email=ada%40example.com",
            ),
        ),
        (
            "the token with a suffix",
            InboundRequest::post(
                &format!("/webhooks/form?token={FORM_TOKEN}x"),
                headers(&[("content-type", FORM)]),
                "email=ada%40example.com",
            ),
        ),
    ];
    for (case, request) in cases {
        refused(&server, &send(&app, &request).await, 401, case).await;
    }
}

#[tokio::test]
async fn route_names_with_path_tricks_are_404() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    for path in [
        "/webhooks/../health",
        "/webhooks/form/../form",
        "/webhooks/%2e%2e/form",
        "/webhooks/%66orm",
        "/webhooks/FORM",
        "/webhooks//form",
        "/webhooks/form%00",
        "/webhooks/form/extra",
        "/webhooks/__proto__",
        "/webhooks/",
        "/webhooks",
        "//webhooks/form",
    ] {
        let request = InboundRequest::post(
            &format!("{path}?token={FORM_TOKEN}"),
            headers(&[("content-type", JSON)]),
            r#"{"email":"ada@example.com"}"#,
        );
        refused(&server, &send(&app, &request).await, 404, path).await;
    }
}

/// The same refused request as each front door sends it.
fn front_door_events(body: &str, host: &str) -> Vec<(&'static str, serde_json::Value)> {
    let query = format!("token={FORM_TOKEN}");
    vec![
        (
            "Function URL",
            json!({
                "version": "2.0", "rawPath": "/webhooks/form", "rawQueryString": query,
                "headers": {"content-type": JSON, "host": host},
                "body": body, "isBase64Encoded": true,
                "requestContext": {"http": {"method": "POST", "path": "/webhooks/form"},
                                   "stage": "$default"}
            }),
        ),
        (
            "REST API",
            json!({
                "resource": "/webhooks/{route}", "path": "/webhooks/form", "httpMethod": "POST",
                "headers": {"content-type": JSON, "Host": host},
                "multiValueHeaders": {"content-type": [JSON], "Host": [host]},
                "queryStringParameters": {"token": FORM_TOKEN},
                "multiValueQueryStringParameters": {"token": [FORM_TOKEN]},
                "body": body, "isBase64Encoded": true,
                "requestContext": {"stage": "prod", "httpMethod": "POST", "path": "/prod/webhooks/form"}
            }),
        ),
        (
            "ALB",
            json!({
                "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/webhooks/0123456789abcdef"}},
                "httpMethod": "POST", "path": "/webhooks/form",
                "queryStringParameters": {"token": FORM_TOKEN},
                "headers": {"content-type": JSON, "host": host},
                "body": body, "isBase64Encoded": true
            }),
        ),
    ]
}

#[tokio::test]
async fn events_the_adapter_cannot_read_are_400_not_a_panic() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let good_body = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"email":"ada@example.com"}"#,
    );
    // Each would make `lambda_http` panic in its conversion: the body's base64, or a host
    // that makes no URL.
    for (body, host, what) in [
        ("not base64 at all!", "example.com", "invalid base64"),
        (
            good_body.as_str(),
            "bad host name",
            "a host that makes no URL",
        ),
    ] {
        for (door, raw) in front_door_events(body, host) {
            let event = lambda_http::LambdaEvent::new(
                serde_json::from_value(raw).unwrap(),
                lambda_http::Context::default(),
            );
            let answered = lambda::answer(event, |req| {
                let app = &app;
                async move { send(app, &req).await }
            })
            .await;
            let answered = serde_json::to_value(answered).unwrap();
            assert_eq!(answered["statusCode"], 400, "{door}, {what}: {answered}");
            if door == "ALB" {
                assert_eq!(answered["statusDescription"], "400 Bad Request");
            }
        }
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_content_type_that_lies_about_the_body_is_400_or_415() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let response = send(
        &app,
        &form_post("multipart/form-data", "email=ada%40example.com"),
    )
    .await;
    refused(&server, &response, 400, "multipart without a boundary").await;
    let response = send(
        &app,
        &form_post("text/plain", r#"{"email":"ada@example.com"}"#),
    )
    .await;
    refused(&server, &response, 415, "text/plain").await;
    let response = send(&app, &form_post(JSON, "email=ada%40example.com")).await;
    refused(&server, &response, 400, "a form body labelled JSON").await;
}

#[tokio::test]
async fn case_variants_in_one_batch_are_one_contact() {
    let _logs = logs::checked();
    let (server, app) = activecampaign().await;
    let csv = "email,first_name\nAnn@Example.com,Ann\nann@EXAMPLE.COM,\n ANN@example.com ,Annie\n";
    let request = InboundRequest::post(
        "/webhooks/import?token=local-import-token",
        headers(&[("content-type", "text/csv")]),
        csv,
    );
    let response = send(&app, &request).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let syncs = received_syncs(&server).await;
    assert_eq!(syncs.len(), 1, "one contact: {syncs:?}");
    assert_eq!(field(&syncs[0], "email"), Some("ann@example.com"));
    // Later rows win, as later webhooks would.
    assert_eq!(field(&syncs[0], "first_name"), Some("Annie"));
    assert_eq!(response.json_body()["rows"], 3, "{}", response.body);
}

/// The same MAC in the other encoding: hex ↔ base64.
fn other_encoding(tag: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    match hex::decode(tag) {
        Ok(raw) => b64.encode(raw),
        Err(_) => hex::encode(b64.decode(tag).expect("hex or base64")),
    }
}

/// A `k=v` list header without its `prefix` part.
fn without_part(header: &str, separator: char, prefix: &str) -> String {
    let parts: Vec<&str> = header
        .split(separator)
        .filter(|p| !p.starts_with(prefix))
        .collect();
    parts.join(&separator.to_string())
}

/// A `k=v` list header with its `prefix` part's digest in the other encoding.
fn recoded_part(header: &str, separator: char, prefix: &str) -> String {
    let parts: Vec<String> = header
        .split(separator)
        .map(|p| match p.strip_prefix(prefix) {
            Some(digest) => format!("{prefix}{}", other_encoding(digest)),
            None => p.to_string(),
        })
        .collect();
    parts.join(&separator.to_string())
}

/// A way to spoil a signature header, named.
type Variant = (&'static str, fn(&str) -> String);
/// An event, its signature header, and the spoilt versions to try.
type SenderVariants = (&'static str, &'static str, &'static [Variant]);

#[tokio::test]
async fn every_senders_signature_in_another_encoding_or_scheme_is_401() {
    let mut logs = logs::checked();
    let (server, app) = activecampaign().await;
    let cases: &[SenderVariants] = &[
        (
            "typeform-form-response",
            "typeform-signature",
            &[
                ("no sha256= prefix", |s| {
                    s.trim_start_matches("sha256=").to_string()
                }),
                ("sha1= prefix", |s| s.replacen("sha256=", "sha1=", 1)),
                ("hex digest", |s| {
                    format!("sha256={}", other_encoding(s.trim_start_matches("sha256=")))
                }),
            ],
        ),
        (
            "stripe-checkout-session-completed",
            "stripe-signature",
            &[
                ("only the v0 scheme", |s| without_part(s, ',', "v1=")),
                ("v1 renamed v2", |s| s.replace("v1=", "v2=")),
                ("no timestamp", |s| without_part(s, ',', "t=")),
                ("base64 digest", |s| recoded_part(s, ',', "v1=")),
            ],
        ),
        (
            "standardwebhooks-contact-created",
            "webhook-signature",
            &[
                ("no version", |s| s.trim_start_matches("v1,").to_string()),
                ("v1a (asymmetric) label", |s| s.replacen("v1,", "v1a,", 1)),
                ("hex digest", |s| {
                    format!("v1,{}", other_encoding(s.trim_start_matches("v1,")))
                }),
            ],
        ),
        (
            "paddle-customer-created",
            "paddle-signature",
            &[
                ("h2 scheme", |s| s.replace("h1=", "h2=")),
                ("no timestamp", |s| without_part(s, ';', "ts=")),
                ("base64 digest", |s| recoded_part(s, ';', "h1=")),
            ],
        ),
        (
            "lemonsqueezy-order-created",
            "x-signature",
            &[
                ("base64 digest", |s| other_encoding(s)),
                ("sha256= prefix", |s| format!("sha256={s}")),
            ],
        ),
        (
            "tally-form-response",
            "tally-signature",
            &[("hex digest", |s| other_encoding(s))],
        ),
        (
            "webflow-form-submission",
            "x-webflow-signature",
            &[("base64 digest", |s| other_encoding(s))],
        ),
        (
            "calendly-invitee-created",
            "calendly-webhook-signature",
            &[("v0 scheme", |s| s.replace("v1=", "v0="))],
        ),
        (
            "woocommerce-order-created",
            "x-wc-webhook-signature",
            &[("hex digest", |s| other_encoding(s))],
        ),
    ];
    let mut tried = 0;
    for (event, header, variants) in cases {
        let original = event_request(event);
        let signature = original
            .header(header)
            .unwrap_or_else(|| panic!("{event}: {header}"))
            .to_string();
        logs.also_secret(signature.clone());
        for (case, variant) in variants.iter() {
            let mut request = original.clone();
            let forged = variant(&signature);
            assert_ne!(forged, signature, "{event}: {case} changes the header");
            logs.also_secret(forged.clone());
            request
                .headers
                .insert(*header, HeaderValue::from_str(&forged).unwrap());
            refused(
                &server,
                &send(&app, &request).await,
                401,
                &format!("{event}: {case}"),
            )
            .await;
            tried += 1;
        }
        let genuine = send(&app, &original).await;
        assert_eq!(genuine.status, 200, "{event} as signed: {}", genuine.body);
        server.reset().await;
        mount_accepting(&server, 9).await;
    }
    assert_eq!(tried, 19);
}
