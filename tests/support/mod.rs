//! Shared test support: the app wired to a fake ActiveCampaign, events/ files loaded through
//! the real Lambda adapter, and the form fields ActiveCampaign received.
#![allow(dead_code)]

pub mod logs;
pub mod moto;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ac_webhook_sync::activecampaign::{ActiveCampaignClient, ClientSettings};
use ac_webhook_sync::aws::lambda::http as lambda;
use ac_webhook_sync::captcha::CaptchaVerifier;
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::response::HttpResponse;
use ac_webhook_sync::secret::{FixedSecret, SecretCache, SecretSource};
use serde_json::{Value, json};
use tokio::time::Instant;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// When the committed Stripe events were signed (scripts/make_events.py).
pub const EVENTS_SIGNED_AT: u64 = 1_767_225_600;
pub const LOCAL_API_KEY: &str = "local-dev-key";

pub fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// local/secret.json with its `api_url` pointed at `api_url`.
pub fn local_secret_json(api_url: &str) -> String {
    let raw = std::fs::read_to_string(repo_path("local/secret.json")).unwrap();
    let mut secret: Value = serde_json::from_str(&raw).unwrap();
    secret["api_url"] = json!(api_url);
    secret.to_string()
}

/// Client settings for tests: fast backoff, no pacing delay worth waiting for.
pub fn fast_client() -> ActiveCampaignClient {
    ActiveCampaignClient::new(ClientSettings {
        call_timeout: Duration::from_secs(2),
        requests_per_second: 1000.0,
        imports_per_second: 1000.0,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
    })
    .unwrap()
}

pub fn app_with(
    secret: impl SecretSource + 'static,
    client: ActiveCampaignClient,
    max_body_bytes: usize,
) -> WebhookApp {
    WebhookApp::new(
        Mapping::bundled().unwrap(),
        Arc::new(SecretCache::new(secret, Duration::from_secs(300))),
        client,
        Limits {
            max_body_bytes,
            invocation_budget: Duration::from_secs(5),
        },
    )
}

/// The app with the local secret pointed at `server`.
pub fn app_for(server: &MockServer) -> WebhookApp {
    app_for_url(&server.uri())
}

/// Where the apps of these helpers verify captchas: on the fake ActiveCampaign's server, as
/// the local stack verifies them on the sandbox (see [`mount_turnstile`]).
pub const TURNSTILE_PATH: &str = "/turnstile/v0/siteverify";
/// The token the newsletter events carry (Cloudflare's dummy token).
pub const DUMMY_TOKEN: &str = "XXXX.DUMMY.TOKEN.XXXX";

/// The app with the local secret's `api_url` set to `url`, verifying captchas at `url`.
pub fn app_for_url(url: &str) -> WebhookApp {
    app_with(
        FixedSecret(local_secret_json(url)),
        fast_client(),
        1024 * 1024,
    )
    .with_captcha_verifier(CaptchaVerifier::new(Some(format!("{url}{TURNSTILE_PATH}"))).unwrap())
    .with_sender_apis(ac_webhook_sync::lookup::SenderApis::new(Some(url.to_string())).unwrap())
}

/// Every sender API local/sender-apis.json holds, as each answers: BigCommerce (below),
/// Squarespace's orders, Stripe's and Paddle's customers, each for its local credential, with
/// 404 for anything else.
pub async fn mount_sender_apis(server: &MockServer) {
    mount_bigcommerce(server).await;
    mount_hubspot(server).await;
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("local/sender-apis.json")).unwrap(),
    )
    .unwrap();
    let bearer = |api: &str, key: &str| format!("Bearer {}", data[api][key].as_str().unwrap());
    let objects = [
        ("squarespace", "api_key", "orders", "/1.0/commerce/orders/"),
        ("stripe", "secret_key", "customers", "/v1/customers/"),
        ("paddle", "api_key", "customers", "/customers/"),
    ];
    for (api, key, kind, prefix) in objects {
        for (id, object) in data[api][kind].as_object().unwrap() {
            Mock::given(method("GET"))
                .and(path(format!("{prefix}{id}")))
                .and(header("Authorization", bearer(api, key).as_str()))
                .respond_with(ResponseTemplate::new(200).set_body_json(object))
                .with_priority(2)
                .mount(server)
                .await;
        }
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(format!("^{prefix}")))
            .respond_with(ResponseTemplate::new(404).set_body_json(json!({"error": "not found"})))
            .with_priority(3)
            .mount(server)
            .await;
    }
}

/// HubSpot's CRM v3 contacts as local/sender-apis.json has them, for the local private-app
/// token: `GET /crm/v3/objects/contacts/{id}` (404 `OBJECT_NOT_FOUND` for one it lacks) and
/// `POST .../batch/read` (200 with every contact asked for, 207 Multi-Status naming the ids
/// it lacks beside those found).
pub async fn mount_hubspot(server: &MockServer) {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("local/sender-apis.json")).unwrap(),
    )
    .unwrap();
    let api = data["hubspot"].clone();
    let bearer = format!("Bearer {}", api["access_token"].as_str().unwrap());
    for (id, contact) in api["contacts"].as_object().unwrap() {
        Mock::given(method("GET"))
            .and(path(format!("/crm/v3/objects/contacts/{id}")))
            .and(header("Authorization", bearer.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(contact))
            .with_priority(2)
            .mount(server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/crm/v3/objects/contacts/batch/read"))
        .and(header("Authorization", bearer.as_str()))
        .respond_with(HubSpotBatchRead(api["contacts"].clone()))
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(wiremock::matchers::path_regex("^/crm/v3/"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({
            "status": "error", "message": "Object not found.  objectId are usually numeric.",
            "correlationId": "8f3c7b52-0000-4000-8000-000000000003",
            "category": "OBJECT_NOT_FOUND"
        })))
        .with_priority(3)
        .mount(server)
        .await;
}

/// HubSpot's batch read: the contacts asked for that exist, and a 207 naming the others.
pub struct HubSpotBatchRead(pub Value);

impl wiremock::Respond for HubSpotBatchRead {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let asked: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let ids: Vec<String> = asked["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["id"].as_str().map(str::to_string))
            .collect();
        let results: Vec<Value> = ids
            .iter()
            .filter_map(|id| self.0.get(id).cloned())
            .collect();
        let missing: Vec<&String> = ids
            .iter()
            .filter(|id| self.0.get(id.as_str()).is_none())
            .collect();
        let mut body = json!({
            "status": "COMPLETE", "results": results,
            "startedAt": "2026-01-01T00:00:00.100Z", "completedAt": "2026-01-01T00:00:00.150Z"
        });
        if missing.is_empty() {
            return ResponseTemplate::new(200).set_body_json(body);
        }
        body["numErrors"] = json!(1);
        body["errors"] = json!([{
            "status": "error", "category": "OBJECT_NOT_FOUND",
            "message": "Could not get some CONTACT objects, they may be deleted or not exist. Check that ids are valid.",
            "context": {"ids": missing}, "links": {}
        }]);
        ResponseTemplate::new(207).set_body_json(body)
    }
}

/// BigCommerce's API as local/sender-apis.json has it (the sandbox serves the same): order 100
/// of store abc123 and its products, for the local access token; 404 for any other order.
/// Ahead of a catch-all ActiveCampaign fake (priority 2; a test's own answer takes 1).
pub async fn mount_bigcommerce(server: &MockServer) {
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("local/sender-apis.json")).unwrap(),
    )
    .unwrap();
    let api = &data["bigcommerce"];
    let token = api["access_token"].as_str().unwrap();
    Mock::given(method("GET"))
        .and(path("/stores/abc123/v2/orders/100"))
        .and(header("X-Auth-Token", token))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(&api["stores"]["abc123"]["orders"]["100"]),
        )
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/stores/abc123/v2/orders/100/products"))
        .and(header("X-Auth-Token", token))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(&api["stores"]["abc123"]["products"]["100"]),
        )
        .with_priority(2)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex("^/stores/"))
        .respond_with(ResponseTemplate::new(404).set_body_json(
            json!([{"status": 404, "message": "The requested resource was not found."}]),
        ))
        .with_priority(3)
        .mount(server)
        .await;
}

/// Turnstile's answer to the local secret's captcha key and the dummy token: a pass.
pub async fn mount_turnstile(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path(TURNSTILE_PATH))
        .and(wiremock::matchers::body_string_contains(
            "secret=1x0000000000000000000000000000000AA",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "success": true, "challenge_ts": "2026-01-01T00:00:00.000Z",
            "hostname": "example.com", "error-codes": [], "action": "", "cdata": ""
        })))
        .mount(server)
        .await;
}

/// The import-callback function with the local secret pointed at `server` (no import store:
/// the batch id comes from the callback).
pub fn callback_for(
    server: &MockServer,
) -> ac_webhook_sync::functions::import_callback::CallbackApp {
    ac_webhook_sync::functions::import_callback::CallbackApp::new(
        None,
        Arc::new(SecretCache::new(
            FixedSecret(local_secret_json(&server.uri())),
            Duration::from_secs(300),
        )),
        fast_client(),
        None,
    )
}

/// Loads events/<name>.json through the project's Lambda adapter.
pub fn event_request(name: &str) -> InboundRequest {
    let raw = std::fs::read_to_string(repo_path(&format!("events/{name}.json")))
        .unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
    let mut inbound = lambda::from_json(&raw).unwrap_or_else(|e| panic!("events/{name}.json: {e}"));
    // Stripe's replay window is checked against the time the events were signed.
    inbound.received_at = UNIX_EPOCH + Duration::from_secs(EVENTS_SIGNED_AT + 5);
    inbound
}

/// events/<name>.json as the `n`-th of many distinct deliveries of its kind, so that each is
/// delivered rather than answered as a duplicate of the first: a Shopify event gets its own
/// event id (Shopify does not sign it), an unsigned form or JSON post its own bytes.
pub fn nth_delivery(name: &str, n: usize) -> InboundRequest {
    let mut request = event_request(name);
    if n == 0 {
        return request;
    }
    if let Some(id) = request.header("x-shopify-event-id") {
        let id = format!("{id}-{n}");
        request
            .headers
            .insert("x-shopify-event-id", id.parse().expect("a header value"));
        return request;
    }
    let mut body = request.body.to_vec();
    if request.media_type().as_deref() == Some("application/x-www-form-urlencoded") {
        body.extend_from_slice(format!("&n={n}").as_bytes());
    } else {
        body.extend(std::iter::repeat_n(b' ', n));
    }
    request.body = body.into();
    request
}

/// A 503 tells the caller only to retry; its cause, `reason`, is in the log.
pub fn assert_cause_logged(response: &HttpResponse, reason: &str) {
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(
        response.json_body()["error"],
        ac_webhook_sync::response::PUBLIC_UNAVAILABLE,
        "nothing of the cause in the body"
    );
    let logged = logs::captured().text();
    assert!(logged.contains(reason), "no log line mentions {reason:?}");
}

pub async fn send(app: &WebhookApp, req: &InboundRequest) -> HttpResponse {
    app.handle(req, Instant::now() + Duration::from_secs(5))
        .await
}

pub async fn send_event(app: &WebhookApp, name: &str) -> HttpResponse {
    send(app, &event_request(name)).await
}

/// A successful `contact_sync` answer.
pub fn synced_body(subscriber_id: u64) -> Value {
    json!({"subscriber_id": subscriber_id, "sendlast_should": 0, "sendlast_did": 0,
           "result_code": 1, "result_message": "Contact added", "result_output": "json"})
}

/// Mounts a `contact_sync` that answers `response` for the local key.
pub async fn mount_contact_sync(server: &MockServer, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .and(query_param("api_action", "contact_sync"))
        .and(query_param("api_output", "json"))
        .and(header("API-TOKEN", LOCAL_API_KEY))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Form fields of every `contact_sync` the fake received, in order.
pub async fn received_syncs(server: &MockServer) -> Vec<Vec<(String, String)>> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| {
            r.url
                .query()
                .is_some_and(|q| q.contains("api_action=contact_sync"))
        })
        .map(|r| {
            form_urlencoded::parse(&r.body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .collect()
}

pub fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Seconds since the epoch, for signing fresh requests.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Answers from a script, one per call, repeating the last.
pub struct Script(pub Vec<ResponseTemplate>, pub AtomicUsize);

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let i = self.1.fetch_add(1, Ordering::SeqCst);
        self.0[i.min(self.0.len() - 1)].clone()
    }
}

/// v3 `GET /api/3/users/me`, the key check behind every `result_code` 0: 200 for the local
/// key, 403 for any other (as ActiveCampaign's v3 answers a bad key).
pub async fn mount_users_me(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/api/3/users/me"))
        .and(header("Api-Token", LOCAL_API_KEY))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"user": {"id": "1", "username": "admin"}})),
        )
        .with_priority(1)
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/3/users/me"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "Forbidden"})))
        .with_priority(2)
        .mount(server)
        .await;
}

/// How many key checks (`/api/3/users/me`) the fake answered.
pub async fn key_checks(server: &MockServer) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == "/api/3/users/me")
        .count()
}

/// v1's answer to a wrong or revoked key: HTTP 200 and `result_code` 0
/// (activecampaign-api-php issue #8), the same shape as a refusal of the data.
pub fn v1_bad_key() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "result_code": 0,
        "result_message": "You are not authorized to access this file",
        "result_output": "json"
    }))
}

/// A fake ActiveCampaign whose v1 API answers from `answers`, in order (and whose key check
/// accepts the local key).
pub async fn scripted(answers: Vec<ResponseTemplate>) -> MockServer {
    let server = MockServer::start().await;
    mount_users_me(&server).await;
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .respond_with(Script(answers, AtomicUsize::new(0)))
        .mount(&server)
        .await;
    server
}

/// Mounts an ActiveCampaign that syncs every contact as `subscriber_id` and knows nobody's
/// list statuses (`contact_view_email` finds no one).
pub async fn mount_accepting(server: &MockServer, subscriber_id: u64) {
    mount_users_me(server).await;
    mount_contact_sync(
        server,
        ResponseTemplate::new(200).set_body_json(synced_body(subscriber_id)),
    )
    .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result_code": 0})))
        .mount(server)
        .await;
}

/// The `webhook` binary as Lambda starts it: against the Runtime API at `runtime_api`, its
/// secret read from `secret`, nothing else of this environment. The caller adds what it needs
/// (`RUST_LOG`, pipes) and spawns it.
pub fn webhook_process(runtime_api: &str, secret: &std::path::Path) -> std::process::Command {
    // Set for integration tests only; benchmarks share this module without it.
    let binary = option_env!("CARGO_BIN_EXE_webhook").unwrap_or("webhook");
    let mut command = std::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "webhook")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "stream")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "group")
        .env("AWS_REGION", "us-east-1")
        .env("SECRET_FILE", secret);
    command
}
