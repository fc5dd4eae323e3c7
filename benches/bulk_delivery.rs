//! How many ActiveCampaign requests a batch costs, and how long it takes at ActiveCampaign's
//! real limits (the importer's 100 requests per minute), against the single-contact floor of
//! 5 requests per second. Run: `cargo bench --bench bulk_delivery`.

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use ac_webhook_sync::activecampaign::{ActiveCampaignClient, ClientSettings};
use ac_webhook_sync::functions::webhook::{Limits, WebhookApp};
use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::mapping::Mapping;
use ac_webhook_sync::secret::{FixedSecret, SecretCache};
use http::HeaderMap;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// ActiveCampaign's documented single-contact limit.
const FLOOR_PER_SECOND: f64 = 5.0;

async fn fake() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/3/import/bulk_import"))
        .respond_with(|request: &Request| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
            let n = body["contacts"].as_array().map_or(0, Vec::len);
            ResponseTemplate::new(200)
                .set_body_json(json!({"success": 1, "queued_contacts": n, "batchId": "b"}))
        })
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"result_code": 1, "subscriber_id": 1})),
        )
        .mount(&server)
        .await;
    server
}

fn app(api_url: &str) -> WebhookApp {
    let raw =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/local/secret.json")).unwrap();
    let mut secret: Value = serde_json::from_str(&raw).unwrap();
    secret["api_url"] = json!(api_url);
    // The real paces: 5 requests/s for contact_sync, 100 imports/min for the importer.
    let client = ActiveCampaignClient::new(ClientSettings::default()).unwrap();
    WebhookApp::new(
        Mapping::bundled().unwrap(),
        Arc::new(SecretCache::new(
            FixedSecret(secret.to_string()),
            Duration::from_secs(300),
        )),
        client,
        Limits {
            max_body_bytes: 1 << 20,
            invocation_budget: Duration::from_secs(600),
        },
    )
}

fn csv(rows: usize) -> String {
    let mut out = String::from("Email,First Name,Last Name,Company\n");
    for i in 0..rows {
        out.push_str(&format!(
            "person{i}@example.com,First{i},Last{i},Company {i}\n"
        ));
    }
    out
}

#[tokio::main]
async fn main() {
    println!(
        "| contacts | ActiveCampaign requests | contacts per request | wall time | at 5 requests/s | faster |"
    );
    println!("|---|---|---|---|---|---|");
    for contacts in [1_000usize, 10_000] {
        let server = fake().await;
        let app = app(&server.uri());
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/csv".parse().unwrap());
        let request = InboundRequest::post(
            "/webhooks/import?token=local-import-token",
            headers,
            csv(contacts),
        );
        let started = StdInstant::now();
        let response = app
            .handle(
                &request,
                tokio::time::Instant::now() + Duration::from_secs(600),
            )
            .await;
        let elapsed = started.elapsed();
        let answer = response.json_body();
        assert_eq!(
            answer["imported"].as_u64().unwrap_or(0) + answer["synced"].as_u64().unwrap_or(0),
            contacts as u64,
            "{answer}"
        );
        let requests = server.received_requests().await.unwrap_or_default().len();
        let floor = Duration::from_secs_f64(contacts as f64 / FLOOR_PER_SECOND);
        println!(
            "| {contacts} | {requests} | {:.0} | {:.1} s | {:.0} s | {:.0}x |",
            contacts as f64 / requests as f64,
            elapsed.as_secs_f64(),
            floor.as_secs_f64(),
            floor.as_secs_f64() / elapsed.as_secs_f64()
        );
    }
}
