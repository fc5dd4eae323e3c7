//! Runs every events/ file and the failure paths with logs captured (the production log
//! setup, JSON, at DEBUG) and fails if a key, secret, token, signature or unmasked email
//! appears in any line. One test, because it sets process environment variables.

mod support;

use ac_webhook_sync::secret::FixedSecret;
use serde_json::Value;
use support::logs::{Captured, secret_values};
use support::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Signatures, tokens and emails carried by an event.
fn sensitive_parts_of_event(name: &str) -> Vec<String> {
    let raw = std::fs::read_to_string(repo_path(&format!("events/{name}.json"))).unwrap();
    let event: Value = serde_json::from_str(&raw).unwrap();
    let mut parts = Vec::new();
    // Every header that carries a signature, whatever the sender.
    for (name, value) in event["headers"].as_object().unwrap() {
        if name.contains("signature") || name.contains("hmac") {
            let value = value.as_str().unwrap_or_default();
            parts.extend(
                value
                    .split([',', '=', ';', ' '])
                    .filter(|p| p.len() >= 16)
                    .map(str::to_string),
            );
        }
    }
    if let Some(query) = event["rawQueryString"].as_str() {
        // Route names and references are not secret; tokens are.
        parts.extend(
            form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k.contains("token") || k.contains("secret") || k.contains("key"))
                .map(|(_, v)| v.into_owned()),
        );
    }
    let request = event_request(name);
    let body = String::from_utf8_lossy(&request.body).to_lowercase();
    let decoded: String = form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| format!("{k} {v} "))
        .collect();
    for text in [body.as_str(), decoded.as_str()] {
        for word in text.split(|c: char| !(c.is_alphanumeric() || "@._+-".contains(c))) {
            if word.contains('@') && word.len() > 5 {
                parts.push(word.trim_matches('.').to_string());
            }
        }
    }
    parts
}

#[tokio::test]
async fn no_secret_token_signature_or_email_is_logged() {
    // SAFETY: the only test in this binary; set before any thread reads the environment.
    unsafe {
        std::env::set_var("AWS_LAMBDA_LOG_FORMAT", "JSON");
        std::env::set_var("RUST_LOG", "debug");
    }
    let captured = Captured::default();
    let writer = captured.clone();
    lambda_runtime::tracing::init_default_subscriber_with_writer(move || writer.clone());

    let server = MockServer::start().await;
    mount_contact_sync(
        &server,
        ResponseTemplate::new(200).set_body_json(synced_body(3)),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"result_code": 0})),
        )
        .mount(&server)
        .await;
    let app = app_for(&server);
    let mut sensitive = secret_values();
    let mut names: Vec<String> = std::fs::read_dir(repo_path("events"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .into_string()
                .ok()?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    for name in &names {
        send_event(&app, name).await;
        sensitive.extend(sensitive_parts_of_event(name));
    }
    // Failure paths log too: a refused key, and an outage with retries.
    let refusing = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&refusing)
        .await;
    send_event(&app_for(&refusing), "shopify-orders-paid").await;
    let down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&down)
        .await;
    let short = app_with(
        FixedSecret(local_secret_json(&down.uri())),
        fast_client(),
        1 << 20,
    );
    send_event(&short, "stripe-invoice-paid").await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert!(
        lines.len() >= names.len(),
        "expected a line per request, got {}",
        lines.len()
    );
    assert!(
        logs.contains("j***@example.com"),
        "emails are logged masked"
    );
    assert!(
        logs.contains("\"outcome\":\"synced\""),
        "outcomes are logged as fields"
    );
    sensitive.sort();
    sensitive.dedup();
    assert!(
        sensitive.len() > 20,
        "the check covers {} values",
        sensitive.len()
    );
    let leaks: Vec<String> = sensitive
        .iter()
        .filter_map(|s| {
            let line = lines
                .iter()
                .find(|l| l.to_lowercase().contains(&s.to_lowercase()))?;
            Some(format!("{s:?} in {line}"))
        })
        .collect();
    assert!(leaks.is_empty(), "leaked into logs:\n{}", leaks.join("\n"));
}
