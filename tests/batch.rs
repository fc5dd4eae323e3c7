//! Batches: CSV, JSON and NDJSON exports mapped row by row and delivered in bulk through the
//! Bulk Contact Importer (chunks of at most 250 contacts), or through `contact_sync` when
//! there are fewer than 10. Against a fake importer that validates every email and refuses a
//! whole request for one bad contact, as ActiveCampaign documents.

mod support;

use std::collections::BTreeSet;
use std::sync::Mutex;

use ac_webhook_sync::inbound::InboundRequest;
use http::HeaderMap;
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// An address ActiveCampaign refuses (e.g. on the account's exclusion list).
const EXCLUDED: &str = "excluded@example.com";

#[derive(Default)]
struct FakeImporter {
    imported: Mutex<Vec<Value>>,
}

impl Respond for FakeImporter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        let contacts = body["contacts"].as_array().unwrap().clone();
        assert!(contacts.len() <= 250, "at most 250 contacts per request");
        assert!(request.body.len() < 400_000, "under 400,000 bytes");
        if let Some(i) = contacts.iter().position(|c| c["email"] == EXCLUDED) {
            return ResponseTemplate::new(400).set_body_json(json!({
                "success": 0,
                "message": "JSON payload did not pass validation. The import was not queued for processing.",
                "failureReasons": [{"contact": i, "failureReason": "Email is excluded"}]
            }));
        }
        let mut imported = self.imported.lock().unwrap();
        imported.extend(contacts.iter().cloned());
        let batch = imported.len();
        // The official example's capital S; other sources show lower case.
        ResponseTemplate::new(200).set_body_json(json!({
            "Success": 1, "queued_contacts": contacts.len(), "batchId": format!("batch-{batch}"),
            "message": "Contact import queued"
        }))
    }
}

async fn fake_activecampaign() -> MockServer {
    let server = MockServer::start().await;
    mount_users_me(&server).await;
    Mock::given(method("POST"))
        .and(path("/api/3/import/bulk_import"))
        .and(wiremock::matchers::header("Api-Token", LOCAL_API_KEY))
        .respond_with(FakeImporter::default())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/admin/api.php"))
        .respond_with(|request: &Request| {
            let body = String::from_utf8_lossy(&request.body);
            if body.contains("excluded%40example.com") {
                ResponseTemplate::new(200).set_body_json(json!({"result_code": 0, "result_message": "Contact is excluded", "result_output": "json"}))
            } else {
                ResponseTemplate::new(200).set_body_json(synced_body(11))
            }
        })
        .mount(&server)
        .await;
    server
}

fn post(route: &str, content_type: &str, body: String) -> InboundRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", content_type.parse().unwrap());
    InboundRequest::post(
        &format!("/webhooks/{route}?token=local-{route}-token"),
        headers,
        body,
    )
}

fn csv(rows: usize) -> String {
    let mut out = String::from("Email,First Name,Last Name,Company,Newsletter\n");
    for i in 0..rows {
        out.push_str(&format!(
            "Person{i}@Example.com,First{i},Last{i},Company {i},{}\n",
            if i % 2 == 0 { "yes" } else { "" }
        ));
    }
    out
}

async fn bulk_requests(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/api/3/import/bulk_import")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_csv_export_goes_through_the_importer_in_chunks() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let app = app_for(&server);
    let mut body = csv(600);
    body.push_str("not-an-email,Bad,Row,,\n,No,Email,,\nperson0@example.com,Again,Duplicate,,\n");
    let response = send(&app, &post("import", "text/csv", body)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = response.json_body();
    assert_eq!(answer["status"], "queued");
    assert_eq!(answer["rows"], 603);
    assert_eq!(answer["imported"], 600);
    assert_eq!(answer["skipped"], 1);
    // The header is row 1, as in a spreadsheet.
    assert_eq!(
        answer["rejected"],
        json!([{"row": 602, "email": "not-an-email", "reason": "invalid email address"}])
    );
    let requests = bulk_requests(&server).await;
    assert_eq!(
        requests
            .iter()
            .map(|r| r["contacts"].as_array().unwrap().len())
            .collect::<Vec<_>>(),
        vec![200, 200, 200],
        "balanced chunks"
    );
    let first = &requests[0]["contacts"][0];
    assert_eq!(first["email"], "person0@example.com", "lower-cased");
    assert_eq!(
        first["first_name"], "Again",
        "the duplicate row merged into the first"
    );
    assert_eq!(first["tags"], json!(["import"]));
    assert_eq!(first["subscribe"], json!([{"listid": 1}]), "consent column");
    assert_eq!(first["exclude_automations"], true);
    assert!(
        requests[0]["contacts"][1].get("subscribe").is_none(),
        "no consent, no list"
    );
    assert_eq!(requests[0]["exclude_automations"], true);
    assert!(
        received_syncs(&server).await.is_empty(),
        "nothing went one by one"
    );
}

#[tokio::test]
async fn two_thousand_five_hundred_rows_take_ten_requests() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    // A fast importer: 10 requests fit in the 5 s budget (10,000 rows would not, at any
    // realistic answer time: see the 413 test below).
    let response = send(&app_for(&server), &post("import", "text/csv", csv(2_500))).await;
    assert_eq!(response.json_body()["imported"], 2_500, "{}", response.body);
    let requests = bulk_requests(&server).await;
    assert_eq!(requests.len(), 10);
    let emails: BTreeSet<String> = requests
        .iter()
        .flat_map(|r| {
            r["contacts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["email"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(emails.len(), 2_500, "every contact sent once");
}

#[tokio::test]
async fn a_refused_contact_is_reported_and_the_rest_imported() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let mut rows: Vec<Value> = (0..30)
        .map(|i| json!({"email": format!("p{i}@example.com"), "name": format!("P {i}")}))
        .collect();
    rows.insert(17, json!({"email": EXCLUDED, "name": "Ex Cluded"}));
    let response = send(
        &app_for(&server),
        &post("batch", "application/json", Value::Array(rows).to_string()),
    )
    .await;
    let answer = response.json_body();
    assert_eq!(answer["status"], "queued", "{}", response.body);
    assert_eq!(
        answer["rejected"],
        json!([{"row": 18, "email": EXCLUDED, "reason": "Contact is excluded"}])
    );
    let imported: usize = answer["imported"].as_u64().unwrap() as usize;
    let synced = answer["synced"].as_u64().unwrap() as usize;
    assert_eq!(
        imported + synced,
        30,
        "every other contact imported or synced: {answer}"
    );
    let syncs = received_syncs(&server).await;
    // At most two suspects one by one, and the refused one asked once more after its
    // fresh key check.
    assert!(
        syncs.len() <= 3,
        "only the suspects went one by one ({})",
        syncs.len()
    );
}

#[tokio::test]
async fn fewer_than_ten_go_one_by_one_and_ndjson_works() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let body: String = (0..4)
        .map(|i| format!("{{\"email\":\"n{i}@example.com\",\"first_name\":\"N{i}\"}}\n"))
        .collect();
    let response = send(
        &app_for(&server),
        &post("batch", "application/x-ndjson", body),
    )
    .await;
    assert_eq!(
        response.json_body()["status"],
        "synced",
        "{}",
        response.body
    );
    assert_eq!(response.json_body()["synced"], 4);
    assert_eq!(received_syncs(&server).await.len(), 4);
    assert!(bulk_requests(&server).await.is_empty());
}

#[tokio::test]
async fn the_importer_rate_limit_is_retried() {
    let _logs = logs::checked();
    let server = MockServer::start().await;
    let calls = std::sync::atomic::AtomicUsize::new(0);
    Mock::given(method("POST"))
        .and(path("/api/3/import/bulk_import"))
        .respond_with(move |_: &Request| {
            if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                ResponseTemplate::new(400).set_body_json(json!({"success": 0, "message": "Rate limit exceeded.", "failureReasons": ["Up to 100 imports may be requested per minute."]}))
            } else {
                ResponseTemplate::new(201).set_body_json(json!({"success": 1, "queued_contacts": 12, "batchId": "b-after-limit"}))
            }
        })
        .mount(&server)
        .await;
    let response = send(&app_for(&server), &post("batch", "text/csv", csv(12))).await;
    assert_eq!(
        response.json_body()["imports"],
        json!([{"batch_id": "b-after-limit", "queued_contacts": 12}]),
        "{}",
        response.body
    );
    assert_eq!(bulk_requests(&server).await.len(), 2);
}

#[tokio::test]
async fn imports_carry_a_callback_token_only_this_deployment_can_make() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let app = app_for(&server).with_callback_url(Some("https://callback.example/".into()));
    send(&app, &post("batch", "text/csv", csv(10))).await;
    let request = &bulk_requests(&server).await[0];
    let callback = &request["callback"];
    assert_eq!(callback["requestType"], "POST");
    let param = |k: &str| {
        callback["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["key"] == k)
            .unwrap()["value"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        callback["url"],
        format!("https://callback.example/?ref={}", param("ref"))
    );
    let secret = secrecy::SecretString::from("local-callback-secret".to_string());
    assert_eq!(
        param("token"),
        ac_webhook_sync::delivery::callback::callback_token(&secret, &param("ref"))
    );
    assert_eq!(
        callback["headers"][0]["value"].as_str().unwrap(),
        param("token")
    );
    assert_eq!(param("route"), "batch");
}

#[tokio::test]
async fn a_malformed_batch_is_400_naming_the_row() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let response = send(
        &app_for(&server),
        &post(
            "batch",
            "application/x-ndjson",
            "{\"email\":\"a@b.co\"}\nnot json\n".into(),
        ),
    )
    .await;
    assert_eq!(response.status, 400);
    assert!(
        response.json_body()["error"]
            .as_str()
            .unwrap()
            .starts_with("row 2:")
    );
}

#[tokio::test]
async fn the_preview_splits_a_batch_as_delivery_does_at_every_size() {
    let _logs = logs::checked();
    let secret = ac_webhook_sync::secret::AppSecret::from_json(&local_secret_json(
        "https://acct.api-us1.com",
    ))
    .unwrap();
    let mapping = ac_webhook_sync::mapping::Mapping::bundled().unwrap();
    for rows in [5, 9, 10, 11, 249, 250, 251, 253, 501] {
        let server = fake_activecampaign().await;
        let request = post("import", "text/csv", csv(rows));
        let preview = ac_webhook_sync::preview::preview(&mapping, &secret, &request);
        let previewed: Vec<usize> = preview["batch"]["bulk_import"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["contacts"].as_array().unwrap().len())
            .collect();
        let previewed_syncs = preview["batch"]["contact_sync"].as_array().unwrap().len();
        let response = send(&app_for(&server), &request).await;
        assert_eq!(response.status, 200, "{}", response.body);
        let sent: Vec<usize> = bulk_requests(&server)
            .await
            .iter()
            .map(|r| r["contacts"].as_array().unwrap().len())
            .collect();
        let synced = received_syncs(&server).await.len();
        assert_eq!(
            (&previewed, previewed_syncs),
            (&sent, synced),
            "{rows} rows"
        );
        if rows == 253 {
            assert_eq!(sent, vec![127, 126]);
            assert_eq!(synced, 0);
        }
    }
}

#[tokio::test]
async fn a_batch_too_big_for_one_invocation_is_413_before_anything_is_imported() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    // The importer's real pace (100 a minute) and the tests' 5 s budget.
    let app = app_with(
        ac_webhook_sync::secret::FixedSecret(local_secret_json(&server.uri())),
        ac_webhook_sync::activecampaign::ActiveCampaignClient::new(Default::default()).unwrap(),
        6 << 20,
    );
    let response = send(&app, &post("import", "text/csv", csv(10_000))).await;
    assert_eq!(response.status, 413, "{}", response.body);
    let error = response.json_body()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("40 bulk imports") && error.contains("split it"),
        "{error}"
    );
    assert!(
        bulk_requests(&server).await.is_empty(),
        "nothing imported in part"
    );
    // What fits is imported in full: 1,000 rows are 4 imports, about 2.4 s at that pace.
    let response = send(&app, &post("import", "text/csv", csv(1_000))).await;
    assert_eq!(response.json_body()["imported"], 1_000, "{}", response.body);
    assert_eq!(bulk_requests(&server).await.len(), 4);
}

#[tokio::test]
async fn a_queue_mode_batch_too_big_for_inline_while_the_queue_is_down_is_503_not_413() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let app = app_with(
        ac_webhook_sync::secret::FixedSecret(local_secret_json(&server.uri())),
        ac_webhook_sync::activecampaign::ActiveCampaignClient::new(Default::default()).unwrap(),
        6 << 20,
    )
    .with_queue(support::moto::sqs_queue(
        support::moto::sqs_failing_after("http://127.0.0.1:9", 0),
        "http://127.0.0.1:9/123456789012/contacts",
    ));
    // Not the batch's size but the queue's outage: a 413 would tell the poster to give up.
    let response = send(&app, &post("import", "text/csv", csv(10_000))).await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert!(response.header("retry-after").is_some());
    assert!(bulk_requests(&server).await.is_empty(), "nothing imported");
}

#[tokio::test]
async fn a_callback_url_without_its_secret_is_an_error_naming_the_key_not_silent_imports() {
    let _logs = logs::checked();
    let server = fake_activecampaign().await;
    let mut secret: Value = serde_json::from_str(&local_secret_json(&server.uri())).unwrap();
    secret.as_object_mut().unwrap().remove("callback_secret");
    let app = app_with(
        ac_webhook_sync::secret::FixedSecret(secret.to_string()),
        fast_client(),
        1 << 20,
    )
    .with_callback_url(Some("https://callback.example/".into()));
    let response = send(&app, &post("import", "text/csv", csv(20))).await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_cause_logged(&response, "callback_secret");
    assert!(bulk_requests(&server).await.is_empty());
}
