//! Fault injection: one test per way ActiveCampaign, the network or Secrets Manager can fail,
//! each asserting what the sender is answered and that nothing acknowledged is lost: a 200
//! only after ActiveCampaign accepted the contact, otherwise a 503 with `Retry-After` so the
//! sender delivers again. (Queue faults are in tests/queue.rs, more ActiveCampaign answers in
//! tests/activecampaign_faults.rs, a revoked key and a rotated secret in
//! tests/secrets_manager.rs.)

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ac_webhook_sync::activecampaign::ContactSync;
use ac_webhook_sync::delivery::{InlineDelivery, QueuedContact};
use ac_webhook_sync::functions::import_callback::CallbackApp;
use ac_webhook_sync::functions::sync_worker::{QueueRecord, SyncWorker};
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::response::HttpResponse;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use aws_sdk_secretsmanager::config::{Credentials, Region};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

const EVENT: &str = "shopify-orders-paid";
/// What the committed `shopify-orders-paid` event syncs as.
const EVENT_EMAIL: &str = "jon@example.com";

fn ok_sync() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(synced_body(7))
}

fn too_many(retry_after: Option<&str>) -> ResponseTemplate {
    let response =
        ResponseTemplate::new(429).set_body_json(json!({"message": "Too Many Requests"}));
    match retry_after {
        Some(secs) => response.insert_header("Retry-After", secs),
        None => response,
    }
}

/// Sends the event with `budget` to answer in.
async fn send_within(app: &WebhookApp, budget: Duration) -> HttpResponse {
    app.handle(&event_request(EVENT), Instant::now() + budget)
        .await
}

/// A 200 `synced`: ActiveCampaign got the contact, every attempt the same request.
async fn assert_synced(server: &MockServer, response: &HttpResponse, attempts: usize) {
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    let syncs = received_syncs(server).await;
    assert_eq!(syncs.len(), attempts, "attempts");
    assert!(
        syncs.windows(2).all(|w| w[0] == w[1]),
        "every retry sends the same contact"
    );
    assert!(syncs[0].contains(&("email".to_string(), EVENT_EMAIL.to_string())));
}

/// A 503 that tells the sender when to come back: nothing was acknowledged.
fn assert_unavailable(response: &HttpResponse, reason: &str) {
    let retry_after: u64 = response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_cause_logged(response, reason);
}

#[tokio::test]
async fn a_429_storm_with_retry_after_is_waited_out() {
    let _logs = logs::checked();
    // Three answers of "wait a second": the sync waits them out, three seconds in all.
    let mut answers = vec![too_many(Some("1")); 3];
    answers.push(ok_sync());
    let server = scripted(answers).await;
    let started = Instant::now();
    let response = send_within(&app_for(&server), Duration::from_secs(5)).await;
    assert_synced(&server, &response, 4).await;
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "Retry-After was not waited: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_429_storm_without_retry_after_backs_off_and_syncs() {
    let _logs = logs::checked();
    let mut answers = vec![too_many(None); 8];
    answers.push(ok_sync());
    let server = scripted(answers).await;
    let response = send_within(&app_for(&server), Duration::from_secs(5)).await;
    assert_synced(&server, &response, 9).await;
}

#[tokio::test]
async fn a_429_storm_that_outlasts_the_budget_is_503_never_200() {
    let _logs = logs::checked();
    for retry_after in [None, Some("1")] {
        let server = scripted(vec![too_many(retry_after)]).await;
        let started = Instant::now();
        let response = send_within(&app_for(&server), Duration::from_millis(1500)).await;
        assert_unavailable(&response, "429");
        assert!(
            started.elapsed() < Duration::from_millis(1600),
            "answered within the budget"
        );
        assert!(!received_syncs(&server).await.is_empty());
    }
}

#[tokio::test]
async fn a_last_attempt_cut_short_by_the_deadline_keeps_the_429_as_the_reason() {
    let _logs = logs::checked();
    let slow = ok_sync().set_delay(Duration::from_secs(10));
    let server = scripted(vec![too_many(None), slow]).await;
    let response = send_within(&app_for(&server), Duration::from_millis(1500)).await;
    assert_unavailable(&response, "HTTP 429, then no answer before the deadline");
    assert_eq!(received_syncs(&server).await.len(), 2);
}

#[tokio::test]
async fn every_5xx_is_retried_until_activecampaign_answers() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(500),
        ResponseTemplate::new(502).set_body_string("<html><body>Bad gateway</body></html>"),
        ResponseTemplate::new(503).insert_header("Retry-After", "0"),
        ResponseTemplate::new(504),
        ok_sync(),
    ])
    .await;
    let response = send_within(&app_for(&server), Duration::from_secs(5)).await;
    assert_synced(&server, &response, 5).await;
}

#[tokio::test]
async fn empty_non_json_and_html_answers_are_retried_then_503() {
    let _logs = logs::checked();
    let server = scripted(vec![
        ResponseTemplate::new(200),
        ResponseTemplate::new(200).set_body_string("OK"),
        ResponseTemplate::new(200)
            .insert_header("content-type", "text/html")
            .set_body_string("<!DOCTYPE html><title>Maintenance</title>"),
    ])
    .await;
    let response = send_within(&app_for(&server), Duration::from_millis(800)).await;
    assert_unavailable(&response, "ActiveCampaign");
    assert!(received_syncs(&server).await.len() >= 3);
}

#[tokio::test]
async fn answers_slower_than_the_remaining_time_are_503_in_time() {
    let _logs = logs::checked();
    let server = scripted(vec![ok_sync().set_delay(Duration::from_secs(30))]).await;
    let started = Instant::now();
    let response = send_within(&app_for(&server), Duration::from_millis(1200)).await;
    assert_unavailable(&response, "");
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "answered after {:?}",
        started.elapsed()
    );
}

/// Reads one HTTP/1.1 request (headers and a Content-Length body); false at end of stream.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                }
            }
            return true;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How a raw-socket ActiveCampaign misbehaves on one request.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Reads the request, then resets the connection (RST, no answer).
    Reset,
    /// Promises a body and closes the connection halfway through it.
    CutShort,
    Answer,
}

/// A raw-socket server: request `i` meets `plan[i]` (the last repeats). Counts requests.
async fn raw_server(plan: Vec<Misbehaviour>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let plan = plan.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                while read_request(&mut stream).await {
                    let i = seen.fetch_add(1, Ordering::SeqCst);
                    match plan[i.min(plan.len() - 1)] {
                        Misbehaviour::Reset => {
                            // A zero linger turns the close into a reset.
                            let _ = stream.set_zero_linger();
                            return;
                        }
                        Misbehaviour::CutShort => {
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 200\r\n\r\n{\"result_code\":1,")
                                .await;
                            return;
                        }
                        Misbehaviour::Answer => {
                            let body = synced_body(7).to_string();
                            let answer = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if stream.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn connection_resets_and_answers_cut_short_are_retried() {
    let _logs = logs::checked();
    use Misbehaviour::*;
    let (url, count) = raw_server(vec![Reset, CutShort, Reset, Answer]).await;
    let response = send_within(&app_for_url(&url), Duration::from_secs(5)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json_body(),
        json!({"status": "synced", "subscriber_id": 7})
    );
    assert_eq!(count.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_connection_that_always_resets_is_503() {
    let _logs = logs::checked();
    let (url, count) = raw_server(vec![Misbehaviour::Reset]).await;
    let response = send_within(&app_for_url(&url), Duration::from_millis(1000)).await;
    assert_unavailable(&response, "");
    assert!(count.load(Ordering::SeqCst) >= 2, "retried");
}

// ---- Secrets Manager, through the SDK as deployed (production loader and timeouts) ----

const SECRETS_TARGET: &str = "secretsmanager.GetSecretValue";

fn secret_value(json: &str) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_json(json!({
            "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:acws-AbCdEf",
            "Name": "acws", "VersionId": "v1", "VersionStages": ["AWSCURRENT"],
            "SecretString": json, "CreatedDate": 1767225600.0
        }))
}

fn secrets_error(status: u16, kind: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_json(json!({"__type": kind, "message": "injected fault"}))
}

/// A Secrets Manager endpoint answering from `answers`, and a secret cache reading from it.
async fn secret_cache_at(
    answers: Vec<ResponseTemplate>,
    ttl: Duration,
) -> (MockServer, Arc<SecretCache>) {
    let store = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("x-amz-target", SECRETS_TARGET))
        .respond_with(Script(answers, AtomicUsize::new(0)))
        .mount(&store)
        .await;
    let config = ac_webhook_sync::aws::loader()
        .endpoint_url(store.uri())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await;
    let source = ac_webhook_sync::aws::secrets_manager::SecretsManager::new(
        aws_sdk_secretsmanager::Client::new(&config),
        "acws",
    );
    (store, Arc::new(SecretCache::new(source, ttl)))
}

/// The same, with the webhook app reading its secret there.
async fn secrets_manager(
    answers: Vec<ResponseTemplate>,
    ttl: Duration,
) -> (MockServer, WebhookApp) {
    let (store, secrets) = secret_cache_at(answers, ttl).await;
    let app = WebhookApp::new(
        Mapping::bundled().unwrap(),
        secrets,
        fast_client(),
        Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(5),
        },
    );
    (store, app)
}

async fn secret_reads(store: &MockServer) -> usize {
    store.received_requests().await.unwrap().len()
}

const TTL: Duration = Duration::from_secs(300);

#[tokio::test]
async fn secrets_manager_throttling_is_retried_by_the_sdk() {
    let _logs = logs::checked();
    let ac = scripted(vec![ok_sync()]).await;
    let secret = local_secret_json(&ac.uri());
    let (store, app) = secrets_manager(
        vec![
            secrets_error(400, "ThrottlingException"),
            secret_value(&secret),
        ],
        TTL,
    )
    .await;
    let response = send_within(&app, Duration::from_secs(5)).await;
    assert_synced(&ac, &response, 1).await;
    assert_eq!(secret_reads(&store).await, 2);
}

#[tokio::test]
async fn secrets_manager_throttling_throughout_is_503_and_nothing_is_sent() {
    let _logs = logs::checked();
    let ac = scripted(vec![ok_sync()]).await;
    let (store, app) = secrets_manager(vec![secrets_error(400, "ThrottlingException")], TTL).await;
    let response = send_within(&app, Duration::from_secs(5)).await;
    assert_unavailable(&response, "ThrottlingException");
    assert!(secret_reads(&store).await >= 2, "the SDK retried");
    assert!(received_syncs(&ac).await.is_empty());
}

#[tokio::test]
async fn secrets_manager_errors_are_503_and_nothing_is_sent() {
    let _logs = logs::checked();
    for (answer, reason) in [
        (secrets_error(400, "ResourceNotFoundException"), "not found"),
        (
            secrets_error(400, "AccessDeniedException"),
            "AccessDeniedException",
        ),
        (secrets_error(400, "DecryptionFailure"), "DecryptionFailure"),
        (secrets_error(500, "InternalServiceError"), "unavailable"),
        (secret_value("api_key=k-not-json-secret"), "malformed"),
        (
            secret_value(r#"{"api_url":"https://x.api-us1.com","webhook_secrets":{}}"#),
            "api_key",
        ),
    ] {
        let ac = scripted(vec![ok_sync()]).await;
        let (_store, app) = secrets_manager(vec![answer], TTL).await;
        let response = send_within(&app, Duration::from_secs(5)).await;
        assert_unavailable(&response, reason);
        assert!(
            !response.body.contains("k-not-json-secret"),
            "no value is echoed"
        );
        assert!(
            received_syncs(&ac).await.is_empty(),
            "{reason}: nothing sent"
        );
    }
}

/// The budget the hanging-store tests give an invocation, and the most its answer may take.
const HANG_BUDGET: Duration = Duration::from_millis(1500);
const HANG_ANSWERED_BY: Duration = Duration::from_millis(1700);

/// A Secrets Manager answer that comes long after any invocation's deadline.
fn hanging_secret(ac: &MockServer) -> ResponseTemplate {
    secret_value(&local_secret_json(&ac.uri())).set_delay(Duration::from_secs(30))
}

fn assert_answered_in_time(started: Instant) {
    assert!(
        started.elapsed() < HANG_ANSWERED_BY,
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_secrets_manager_that_hangs_is_503_before_the_deadline() {
    let _logs = logs::checked();
    let ac = scripted(vec![ok_sync()]).await;
    let (_store, app) = secrets_manager(vec![hanging_secret(&ac)], TTL).await;
    let started = Instant::now();
    let response = send_within(&app, HANG_BUDGET).await;
    assert_unavailable(&response, "");
    assert_answered_in_time(started);
    assert!(received_syncs(&ac).await.is_empty());
}

#[tokio::test]
async fn a_worker_whose_secret_read_hangs_hands_its_batch_back_before_the_deadline() {
    let _logs = logs::checked();
    let ac = scripted(vec![ok_sync()]).await;
    let (_store, secrets) = secret_cache_at(vec![hanging_secret(&ac)], TTL).await;
    let worker = SyncWorker::new(
        InlineDelivery::new(fast_client(), secrets.clone()),
        secrets,
        None,
        5,
    );
    let contact = ContactSync {
        email: "ada@example.com".into(),
        ..Default::default()
    };
    let record = QueueRecord {
        message_id: "m-1".into(),
        body: QueuedContact::new("newsletter", Some("d-1"), contact).to_json(),
        receive_count: 1,
        ..Default::default()
    };
    let started = Instant::now();
    let report = worker.process(vec![record], started + HANG_BUDGET).await;
    assert_eq!(report.failed, vec!["m-1".to_string()], "SQS retries it");
    assert_answered_in_time(started);
    assert!(received_syncs(&ac).await.is_empty());
}

#[tokio::test]
async fn an_import_callback_whose_secret_read_hangs_is_503_before_the_deadline() {
    let _logs = logs::checked();
    let ac = scripted(vec![]).await;
    let (_store, secrets) = secret_cache_at(vec![hanging_secret(&ac)], TTL).await;
    let callback = CallbackApp::new(None, secrets, fast_client(), None);
    let started = Instant::now();
    let response = callback
        .handle(
            &event_request("import-callback-post"),
            started + Duration::from_millis(1500),
        )
        .await;
    assert_eq!(
        response.status.as_u16(),
        503,
        "ActiveCampaign calls back again"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1700),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn when_secrets_manager_fails_after_the_ttl_the_cached_secret_still_serves() {
    let _logs = logs::checked();
    let ac = scripted(vec![ok_sync()]).await;
    let (store, app) = secrets_manager(
        vec![
            secret_value(&local_secret_json(&ac.uri())),
            secrets_error(500, "InternalServiceError"),
        ],
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(send_within(&app, Duration::from_secs(5)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another delivery (the first one again would be answered from its first answer).
    let next = app
        .handle(
            &nth_delivery(EVENT, 1),
            Instant::now() + Duration::from_secs(5),
        )
        .await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(next.json_body()["status"], "synced", "{}", next.body);
    assert_eq!(received_syncs(&ac).await.len(), 2);
    assert!(
        secret_reads(&store).await >= 2,
        "the expired secret was read again"
    );
}

#[tokio::test]
async fn no_contact_starves_behind_one_that_always_times_out() {
    let _logs = logs::checked();
    // ActiveCampaign never answers for one contact in time, and at once for the others.
    let ac = MockServer::start().await;
    mount_users_me(&ac).await;
    Mock::given(method("POST"))
        .and(wiremock::matchers::body_string_contains(
            "slow%40example.com",
        ))
        .respond_with(ok_sync().set_delay(Duration::from_secs(5)))
        .with_priority(1)
        .mount(&ac)
        .await;
    mount_contact_sync(&ac, ok_sync()).await;
    let secrets = Arc::new(SecretCache::new(
        FixedSecret(local_secret_json(&ac.uri())),
        TTL,
    ));
    let client = ac_webhook_sync::activecampaign::ActiveCampaignClient::new(
        ac_webhook_sync::activecampaign::ClientSettings {
            call_timeout: Duration::from_millis(150),
            requests_per_second: 1000.0,
            imports_per_second: 1000.0,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
        },
    )
    .unwrap();
    // No wait between receives, so the test sees many; the circuit closes at once.
    let worker = SyncWorker::new(
        InlineDelivery::new(client, secrets.clone()),
        secrets,
        None,
        50,
    )
    .with_source_queue(
        None,
        ac_webhook_sync::functions::sync_worker::RetrySchedule {
            base: Duration::ZERO,
            max: Duration::ZERO,
        },
    );
    let record = |email: &str| QueueRecord {
        message_id: email.to_string(),
        body: QueuedContact::new(
            "form",
            None,
            ContactSync {
                email: email.into(),
                ..Default::default()
            },
        )
        .to_json(),
        receive_count: 1,
        ..Default::default()
    };
    // Emails before "slow" in email order: under a fixed order they would always be tried
    // first; those after it would never be tried at all.
    let mut waiting: Vec<String> = ["ann", "bob", "tom", "zoe"]
        .iter()
        .map(|n| format!("{n}@example.com"))
        .collect();
    waiting.push("slow@example.com".into());
    for _ in 0..30 {
        let records = waiting.iter().map(|e| record(e)).collect();
        let report = worker
            .process(records, Instant::now() + Duration::from_millis(400))
            .await;
        waiting.retain(|e| report.failed.contains(e));
        if waiting == ["slow@example.com"] {
            break;
        }
    }
    assert_eq!(
        waiting,
        ["slow@example.com"],
        "a contact starved behind the slow one"
    );
}
