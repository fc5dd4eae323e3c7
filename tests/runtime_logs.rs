//! The `webhook` binary at TRACE, through the real Lambda runtime: its logs (runtime layers
//! included, which log every raw event at TRACE) carry no route token, no signature and no
//! full email.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const RESPONSE: &str = "/2018-06-01/runtime/invocation/req-1/response";

#[tokio::test]
async fn trace_level_logs_leak_no_token_signature_or_email() {
    let ac = MockServer::start().await;
    mount_accepting(&ac, 4).await;
    // A Lambda Runtime API that hands out one event, then waits.
    let runtime_api = MockServer::start().await;
    let event = std::fs::read_to_string(repo_path("events/shopify-orders-paid.json")).unwrap();
    let deadline_ms = (now_secs() + 60) * 1000;
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Lambda-Runtime-Aws-Request-Id", "req-1")
                .insert_header(
                    "Lambda-Runtime-Deadline-Ms",
                    deadline_ms.to_string().as_str(),
                )
                .insert_header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:us-east-1:123456789012:function:webhook",
                )
                .set_body_string(event.clone()),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&runtime_api)
        .await;
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .with_priority(2)
        .mount(&runtime_api)
        .await;
    Mock::given(method("POST"))
        .and(path(RESPONSE))
        .respond_with(ResponseTemplate::new(202))
        .mount(&runtime_api)
        .await;

    let dir = std::env::temp_dir().join(format!("acws-runtime-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret.json");
    std::fs::write(&secret, local_secret_json(&ac.uri())).unwrap();
    let address = runtime_api.address().to_string();
    let child = webhook_process(&address, &secret)
        .env("RUST_LOG", "trace")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let started = Instant::now();
    let answered = loop {
        let posted = runtime_api
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.url.path() == RESPONSE);
        if let Some(posted) = posted {
            break posted;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the function never answered its event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The process is ended only after it answered; give its last lines a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut child = child;
    child.kill().ok();
    let output = child.wait_with_output().unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let answer = String::from_utf8_lossy(&answered.body);
    assert!(answer.contains("synced"), "{answer}");
    assert!(
        logs.contains("Webhook handled"),
        "the function's own logs are there: {logs}"
    );

    let raw: serde_json::Value = serde_json::from_str(&event).unwrap();
    let signature = raw["headers"]["x-shopify-hmac-sha256"]
        .as_str()
        .expect("the event is signed");
    let email = "jon@example.com";
    for leak in [signature, email, "local-shopify-secret", LOCAL_API_KEY] {
        assert!(
            !logs.contains(leak),
            "{leak:?} reached the logs at TRACE:\n{logs}"
        );
    }
    // Nothing of the raw event's body is logged either.
    assert!(!logs.contains("raw JSON event"), "{logs}");
}
