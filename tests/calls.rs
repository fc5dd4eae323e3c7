//! Call counts, counted by loopback fakes: ActiveCampaign requests per contact, Secrets
//! Manager calls per container and TTL, and TCP connections opened across invocations.
//!
//! The fakes speak plain HTTP: the clients pool TLS and plain connections alike (one pool per
//! host in reqwest and in the SDK's hyper client), so one accepted TCP connection here is one
//! TLS handshake against the real services.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ac_webhook_sync::functions::webhook::WebhookApp;
use ac_webhook_sync::secret::SecretCache;
use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use axum::Router;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::serve::ListenerExt;
use serde_json::json;
use support::*;
use wiremock::MockServer;

const SECRET_ID: &str = "acws-calls";
/// The `X-Amz-Target` of the one Secrets Manager operation the functions use.
const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";
const INVOCATIONS: usize = 5;

/// What a fake saw: requests by kind, and TCP connections accepted.
#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    contact_sync: AtomicUsize,
    contact_view_email: AtomicUsize,
    other: AtomicUsize,
    get_secret_value: AtomicUsize,
}

impl Counts {
    fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// Serves `router` on a free loopback port, counting accepted connections; returns its URL.
async fn serve(router: Router, counts: Arc<Counts>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let listener = listener.tap_io(move |_| {
        counts.connections.fetch_add(1, Ordering::SeqCst);
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

fn json_answer(body: serde_json::Value) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
}

/// A fake ActiveCampaign v1 API: `contact_sync` succeeds, `contact_view_email` finds no one.
async fn fake_activecampaign(counts: Arc<Counts>) -> String {
    async fn v1(
        State(counts): State<Arc<Counts>>,
        Query(query): Query<std::collections::HashMap<String, String>>,
    ) -> impl IntoResponse {
        match query.get("api_action").map(String::as_str) {
            Some("contact_sync") => {
                counts.contact_sync.fetch_add(1, Ordering::SeqCst);
                json_answer(synced_body(7))
            }
            Some("contact_view_email") => {
                counts.contact_view_email.fetch_add(1, Ordering::SeqCst);
                json_answer(
                    json!({"result_code": 0, "result_message": "Failed: Nothing is returned", "result_output": "json"}),
                )
            }
            _ => {
                counts.other.fetch_add(1, Ordering::SeqCst);
                json_answer(json!({"result_code": 0, "result_message": "unexpected call"}))
            }
        }
    }
    let router = Router::new()
        .route("/admin/api.php", axum::routing::any(v1))
        .with_state(counts.clone());
    serve(router, counts).await
}

/// A fake Secrets Manager answering `GetSecretValue` with `secret_json`.
async fn fake_secrets_manager(counts: Arc<Counts>, secret_json: String) -> String {
    let state = (counts.clone(), Arc::new(secret_json));
    let router = Router::new()
        .route(
            "/",
            axum::routing::post(
                |State((counts, secret)): State<(Arc<Counts>, Arc<String>)>,
                 headers: HeaderMap| async move {
                    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
                    if target != Some(GET_SECRET_VALUE) {
                        counts.other.fetch_add(1, Ordering::SeqCst);
                        return (axum::http::StatusCode::BAD_REQUEST, String::new());
                    }
                    counts.get_secret_value.fetch_add(1, Ordering::SeqCst);
                    let answer = json!({
                        "ARN": format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{SECRET_ID}-AbCdEf"),
                        "Name": SECRET_ID,
                        "SecretString": secret.as_str(),
                        "VersionId": "v1",
                        "VersionStages": ["AWSCURRENT"],
                        "CreatedDate": 1_767_225_600,
                    });
                    (axum::http::StatusCode::OK, answer.to_string())
                },
            ),
        )
        .with_state(state);
    serve(router, counts).await
}

fn secrets_manager_client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// The webhook app with its secret in the fake Secrets Manager and its ActiveCampaign on the
/// fake AC, as one warm container.
/// The last part is the captcha provider's fake, which must live as long as the app.
async fn container(ttl: Duration) -> (WebhookApp, Arc<Counts>, Arc<Counts>, MockServer) {
    let ac_counts = Arc::new(Counts::default());
    let sm_counts = Arc::new(Counts::default());
    let ac_url = fake_activecampaign(ac_counts.clone()).await;
    let sm_url = fake_secrets_manager(sm_counts.clone(), local_secret_json(&ac_url)).await;
    let source = ac_webhook_sync::aws::secrets_manager::SecretsManager::new(
        secrets_manager_client(&sm_url),
        SECRET_ID,
    );
    // The newsletter's captcha is verified apart, so the counts are ActiveCampaign's alone.
    let turnstile = MockServer::start().await;
    mount_turnstile(&turnstile).await;
    let verifier = ac_webhook_sync::captcha::CaptchaVerifier::new(Some(format!(
        "{}{TURNSTILE_PATH}",
        turnstile.uri()
    )))
    .unwrap();
    let app = WebhookApp::new(
        ac_webhook_sync::mapping::Mapping::bundled().unwrap(),
        Arc::new(SecretCache::new(source, ttl)),
        fast_client(),
        ac_webhook_sync::functions::webhook::Limits {
            max_body_bytes: 1024 * 1024,
            invocation_budget: Duration::from_secs(5),
        },
    )
    .with_captcha_verifier(verifier);
    (app, ac_counts, sm_counts, turnstile)
}

/// Sends `event` and checks it was accepted: `synced`, or the 303 a browser form is sent on
/// success with (the fakes' counts say what was called).
async fn send_accepted(app: &WebhookApp, event: &str, n: usize) {
    let response = send(app, &nth_delivery(event, n)).await;
    let synced = response.json_body()["status"] == "synced";
    assert!(
        synced || response.status == http::StatusCode::SEE_OTHER,
        "{event}: {} {:?}",
        response.status,
        response.json_body()
    );
}

#[tokio::test]
async fn an_opt_in_route_makes_one_activecampaign_request_per_contact() {
    let (app, ac, _, _turnstile) = container(Duration::from_secs(300)).await;
    for n in 0..INVOCATIONS {
        send_accepted(&app, "newsletter-signup", n).await;
    }
    assert_eq!(Counts::get(&ac.contact_sync), INVOCATIONS);
    assert_eq!(Counts::get(&ac.contact_view_email), 0);
    assert_eq!(Counts::get(&ac.other), 0);
}

#[tokio::test]
async fn a_route_without_lists_makes_one_activecampaign_request_per_contact() {
    let (app, ac, _, _turnstile) = container(Duration::from_secs(300)).await;
    for n in 0..INVOCATIONS {
        send_accepted(&app, "shopify-orders-create", n).await;
    }
    assert_eq!(Counts::get(&ac.contact_sync), INVOCATIONS);
    assert_eq!(Counts::get(&ac.contact_view_email), 0);
}

/// The one deliberate exception: a route that subscribes to lists without being an opt-in
/// first reads the contact's list statuses, so nobody who unsubscribed is re-subscribed.
#[tokio::test]
async fn a_non_opt_in_route_with_lists_adds_one_unsubscribe_check() {
    let (app, ac, _, _turnstile) = container(Duration::from_secs(300)).await;
    for n in 0..INVOCATIONS {
        send_accepted(&app, "shop-orders-paid", n).await;
    }
    assert_eq!(Counts::get(&ac.contact_sync), INVOCATIONS);
    assert_eq!(Counts::get(&ac.contact_view_email), INVOCATIONS);
    assert_eq!(Counts::get(&ac.other), 0);
}

#[tokio::test]
async fn one_secrets_manager_call_per_container_per_ttl() {
    let ttl = Duration::from_millis(1500);
    let (app, _, sm, _turnstile) = container(ttl).await;
    for n in 0..INVOCATIONS {
        send_accepted(&app, "newsletter-signup", n).await;
    }
    assert_eq!(Counts::get(&sm.get_secret_value), 1, "within one TTL");
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    for n in INVOCATIONS..2 * INVOCATIONS {
        send_accepted(&app, "newsletter-signup", n).await;
    }
    assert_eq!(
        Counts::get(&sm.get_secret_value),
        2,
        "once more after the TTL"
    );
    assert_eq!(Counts::get(&sm.other), 0);
}

#[tokio::test]
async fn health_reads_no_secret_and_opens_no_connection() {
    let (app, ac, sm, _turnstile) = container(Duration::from_secs(300)).await;
    let response = send_event(&app, "health").await;
    assert_eq!(response.json_body()["status"], "ok");
    assert_eq!(Counts::get(&sm.connections), 0);
    assert_eq!(Counts::get(&ac.connections), 0);
}

#[tokio::test]
async fn one_connection_per_service_is_reused_across_invocations() {
    let (app, ac, sm, _turnstile) = container(Duration::from_millis(300)).await;
    for n in 0..INVOCATIONS {
        send_accepted(&app, "shop-orders-paid", n).await;
        // Lets the TTL lapse between some invocations, so the secret is fetched again.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(Counts::get(&ac.contact_sync), INVOCATIONS);
    assert!(
        Counts::get(&sm.get_secret_value) >= 2,
        "the secret was re-read"
    );
    assert_eq!(
        Counts::get(&ac.connections),
        1,
        "ActiveCampaign connections"
    );
    assert_eq!(
        Counts::get(&sm.connections),
        1,
        "Secrets Manager connections"
    );
}
