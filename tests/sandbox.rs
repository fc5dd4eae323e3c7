//! The local ActiveCampaign stand-in's importer follows the documented rules, and the whole
//! bulk loop runs against it: batch → import → callback → import/info → recorded.

mod support;

use std::time::Duration;

use ac_webhook_sync::inbound::InboundRequest;
use ac_webhook_sync::sandbox::{Language, Sandbox};
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn start() -> (Sandbox, String) {
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English).quiet();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ac_webhook_sync::sandbox::serve(listener, sandbox.clone()));
    (sandbox, url)
}

async fn import(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/3/import/bulk_import"))
        .header("Api-Token", LOCAL_API_KEY)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

async fn info(url: &str, batch_id: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/3/import/info?batchId={batch_id}"))
        .header("Api-Token", LOCAL_API_KEY)
        .send()
        .await
        .unwrap();
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn until_completed(url: &str, batch_id: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..100 {
        let status = info(url, batch_id).await["status"].clone();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if status == "completed" {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("import did not complete: {seen:?}");
}

fn contact(email: &str) -> Value {
    json!({"email": email, "first_name": "F", "tags": ["imported"], "fields": [{"id": 3, "value": "x"}], "subscribe": [{"listid": 1}]})
}

#[tokio::test]
async fn imports_progress_and_never_re_subscribe() {
    let (sandbox, url) = start().await;
    // Someone who left list 1 through contact_sync.
    let app = app_for_url(&url);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    let post = InboundRequest::post(
        "/webhooks/form?token=local-form-token",
        headers,
        json!({"email": "left@example.com"}).to_string(),
    );
    assert_eq!(send(&app, &post).await.json_body()["status"], "synced");
    reqwest::Client::new()
        .post(format!(
            "{url}/admin/api.php?api_action=contact_sync&api_output=json"
        ))
        .header("API-TOKEN", LOCAL_API_KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("email=left%40example.com&p[1]=1&status[1]=2&tags=existing")
        .send()
        .await
        .unwrap();
    let mut contacts: Vec<Value> = (0..11)
        .map(|i| contact(&format!("new{i}@example.com")))
        .collect();
    contacts.push(contact("left@example.com"));
    let (status, answer) = import(&url, json!({"contacts": contacts})).await;
    assert_eq!(status, 200);
    assert_eq!(answer["queued_contacts"], 12);
    let batch_id = answer["batchId"].as_str().unwrap().to_string();
    assert_eq!(
        info(&url, &batch_id).await["status"],
        false,
        "false right after submission"
    );
    let progression = until_completed(&url, &batch_id).await;
    assert_eq!(progression.last(), Some(&json!("completed")));
    assert!(
        progression.len() >= 3,
        "went through the statuses: {progression:?}"
    );
    let done = info(&url, &batch_id).await;
    assert_eq!(
        done["success"].as_array().unwrap().len(),
        11,
        "ids of the created contacts only"
    );
    let stored = sandbox.contacts();
    assert_eq!(
        stored["left@example.com"].lists[&1], 2,
        "the importer does not re-subscribe"
    );
    assert!(
        stored["left@example.com"].tags.contains("existing")
            && stored["left@example.com"].tags.contains("imported"),
        "tags add up"
    );
    assert_eq!(stored["new0@example.com"].lists[&1], 1);
    assert_eq!(stored["new0@example.com"].fields["3"], "x");
}

#[tokio::test]
async fn one_bad_contact_or_too_many_rejects_the_whole_request() {
    let (sandbox, url) = start().await;
    let (status, answer) = import(
        &url,
        json!({"contacts": [contact("a@example.com"), contact("not-an-email")]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["failureReasons"],
        json!([{"contact": 1, "failureReason": "Field 'email' incorrect format"}])
    );
    let many: Vec<Value> = (0..251)
        .map(|i| contact(&format!("m{i}@example.com")))
        .collect();
    assert_eq!(import(&url, json!({"contacts": many})).await.0, 400);
    let huge = "x".repeat(400_001);
    assert_eq!(
        import(
            &url,
            json!({"contacts": [contact("a@example.com")], "pad": huge})
        )
        .await
        .0,
        400
    );
    assert!(sandbox.contacts().is_empty(), "nothing was imported");
    let bad_key = reqwest::Client::new()
        .post(format!("{url}/api/3/import/bulk_import"))
        .header("Api-Token", "wrong")
        .body(json!({"contacts": [contact("a@example.com")]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 403);
}

#[tokio::test]
async fn the_whole_bulk_loop_runs_against_the_stand_in() {
    let (_sandbox, url) = start().await;
    // The callback lands here; the test hands it to the import-callback function.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let app = app_for_url(&url).with_callback_url(Some(format!("{}/callback", receiver.uri())));
    let mut csv = String::from("email,name\n");
    for i in 0..20 {
        csv.push_str(&format!("loop{i}@example.com,Loop {i}\n"));
    }
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "text/csv".parse().unwrap());
    let answer = send(
        &app,
        &InboundRequest::post("/webhooks/batch?token=local-batch-token", headers, csv),
    )
    .await
    .json_body();
    assert_eq!(answer["status"], "queued", "{answer}");
    let mut fired = Vec::new();
    for _ in 0..100 {
        fired = receiver.received_requests().await.unwrap();
        if !fired.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fired.len(), 1, "the stand-in called back once");
    let callback = &fired[0];
    let mut request =
        InboundRequest::post("/callback", callback.headers.clone(), callback.body.clone());
    request.method = Method::POST;
    let settled = callback_for_url(&url)
        .handle(
            &request,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await;
    let body = settled.json_body();
    assert_eq!(
        body["status"], "unknown",
        "no import store here and no batchId in the callback: {body}"
    );
    // With the batch id the callback resolves against the stand-in's import/info.
    let batch_id = answer["imports"][0]["batch_id"].as_str().unwrap();
    let mut with_id = request.clone();
    let mut form: Vec<(String, String)> = form_urlencoded::parse(&callback.body)
        .into_owned()
        .collect();
    form.push(("batchId".into(), batch_id.into()));
    with_id.body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish()
        .into();
    let settled = callback_for_url(&url)
        .handle(
            &with_id,
            tokio::time::Instant::now() + Duration::from_secs(5),
        )
        .await
        .json_body();
    assert_eq!(settled["status"], "recorded", "{settled}");
    assert_eq!(settled["import_status"], "completed");
}

fn app_for_url(url: &str) -> ac_webhook_sync::edge::WebhookApp {
    app_with(
        ac_webhook_sync::secrets::SecretSource::Fixed(local_secret_json(url)),
        fast_client(),
        1 << 20,
    )
}

fn callback_for_url(url: &str) -> ac_webhook_sync::imports::callback::CallbackApp {
    ac_webhook_sync::imports::callback::CallbackApp::new(
        None,
        std::sync::Arc::new(ac_webhook_sync::secrets::SecretCache::new(
            ac_webhook_sync::secrets::SecretSource::Fixed(local_secret_json(url)),
            Duration::from_secs(300),
        )),
        fast_client(),
        None,
    )
}
