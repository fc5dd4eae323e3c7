//! The local ActiveCampaign sandbox follows the documented rules (contact_sync, users/me, the
//! importer, the rate limits, wrong keys answered as ActiveCampaign answers them), its faults
//! and views work, and the project runs against it: the whole
//! bulk loop (batch → import → callback → import/info → recorded), the no-re-subscribe guard
//! end to end, and the client riding out the sandbox's 429s and faults.

mod support;

use std::time::Duration;

use ac_sandbox::{Fault, Language, NOT_AUTHORIZED, Sandbox, Seed};
use ac_webhook_sync::inbound::InboundRequest;
use http::{HeaderMap, Method};
use serde_json::{Value, json};
use support::*;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn start() -> (Sandbox, String) {
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English).quiet();
    let url = serve(&sandbox).await;
    (sandbox, url)
}

/// Serves `sandbox` on a free port; its URL.
async fn serve(sandbox: &Sandbox) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ac_sandbox::serve(listener, sandbox.clone()));
    url
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
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    // Someone who left list 1 through contact_sync.
    let app = app_for_url(&url);
    let post = form_webhook("left@example.com");
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
    assert_eq!(stored["new0@example.com"].fields[&3], "x");
}

#[tokio::test]
async fn one_bad_contact_or_too_many_rejects_the_whole_request() {
    let _logs = logs::checked();
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
async fn single_contact_imports_are_limited_to_20_a_minute() {
    let _logs = logs::checked();
    let (_sandbox, url) = start().await;
    for i in 0..20 {
        let (status, _) = import(
            &url,
            json!({"contacts": [contact(&format!("s{i}@example.com"))]}),
        )
        .await;
        assert_eq!(status, 200, "single-contact import {i}");
    }
    let (status, answer) = import(&url, json!({"contacts": [contact("s20@example.com")]})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["message"], "Rate limit exceeded.");
    // Multi-contact requests have their own limit (100 a minute).
    let two = json!({"contacts": [contact("t1@example.com"), contact("t2@example.com")]});
    assert_eq!(import(&url, two).await.0, 200);
}

#[tokio::test]
async fn the_whole_bulk_loop_runs_against_the_stand_in() {
    let _logs = logs::checked();
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

fn callback_for_url(url: &str) -> ac_webhook_sync::functions::import_callback::CallbackApp {
    ac_webhook_sync::functions::import_callback::CallbackApp::new(
        None,
        std::sync::Arc::new(ac_webhook_sync::secret::SecretCache::new(
            ac_webhook_sync::secret::FixedSecret(local_secret_json(url)),
            Duration::from_secs(300),
        )),
        fast_client(),
        None,
    )
}

const V1_SYNC: &str = "/admin/api.php?api_action=contact_sync&api_output=json";

/// An answer from the sandbox: status, headers, body as JSON (`Null` when it is not JSON).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

/// A v1 `contact_sync` with `key` and a form body.
async fn sync_with_key(url: &str, key: &str, form: &str) -> Answer {
    answer(
        reqwest::Client::new()
            .post(format!("{url}{V1_SYNC}"))
            .header("API-TOKEN", key)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn sync(url: &str, form: &str) -> Answer {
    sync_with_key(url, LOCAL_API_KEY, form).await
}

async fn view(url: &str, path: &str) -> Value {
    let response = reqwest::get(format!("{url}{path}")).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

async fn post_fault(url: &str, fault: &str) -> Answer {
    answer(
        reqwest::Client::new()
            .post(format!("{url}/sandbox/faults"))
            .body(fault.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn contact_sync_checks_the_key_and_upserts_by_lower_cased_email() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    // ActiveCampaign answers a wrong v1 key with HTTP 200 and result_code 0.
    let wrong = sync_with_key(&url, "wrong-key", "email=a%40example.com").await;
    assert_eq!(wrong.status, 200);
    assert_eq!(wrong.json(), not_authorized());
    let missing = sync_without_key(&url, "email=a%40example.com").await;
    assert_eq!((missing.status, missing.json()), (200, not_authorized()));
    assert!(
        sandbox.contacts().is_empty(),
        "nothing written without the key"
    );

    let first = sync(
        &url,
        "email=Ada.King%40Example.COM&first_name=Ada&last_name=King&phone=%2B44+20+7946+0000&customer_acct_name=Engines+Ltd",
    )
    .await;
    assert_eq!(
        (first.status, first.json()["result_code"].clone()),
        (200, json!(1))
    );
    // Sync sends only what changes: a later call without names leaves them alone.
    let second = sync(&url, "email=ada.king%40example.com&last_name=Lovelace").await;
    assert_eq!(second.json()["result_code"], 1);
    assert_eq!(
        first.json()["subscriber_id"],
        second.json()["subscriber_id"],
        "the same contact"
    );
    let contacts = sandbox.contacts();
    assert_eq!(contacts.len(), 1);
    let ada = &contacts["ada.king@example.com"];
    assert_eq!(ada.first_name.as_deref(), Some("Ada"));
    assert_eq!(ada.last_name.as_deref(), Some("Lovelace"));
    assert_eq!(ada.phone.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(ada.organization.as_deref(), Some("Engines Ltd"));
}

/// v1's body for a wrong or missing key (activecampaign-api-php issue #8).
fn not_authorized() -> Value {
    json!({"result_code": 0, "result_message": NOT_AUTHORIZED, "result_output": "json"})
}

/// A v1 `contact_sync` with no key at all.
async fn sync_without_key(url: &str, form: &str) -> Answer {
    answer(
        reqwest::Client::new()
            .post(format!("{url}{V1_SYNC}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string())
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// `GET /api/3/users/me` with `key` (none: no header).
async fn users_me(url: &str, key: Option<&str>) -> Answer {
    let mut request = reqwest::Client::new().get(format!("{url}/api/3/users/me"));
    if let Some(key) = key {
        request = request.header("Api-Token", key);
    }
    answer(request.send().await.unwrap()).await
}

fn forbidden() -> Value {
    json!({"message": "Forbidden"})
}

#[tokio::test]
async fn a_wrong_v1_key_is_answered_403_when_the_sandbox_is_told_to() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_bad_key_status(http::StatusCode::FORBIDDEN);
    let url = serve(&sandbox).await;
    let wrong = sync_with_key(&url, "wrong-key", "email=a%40example.com").await;
    assert_eq!((wrong.status, wrong.json()), (403, not_authorized()));
    let missing = sync_without_key(&url, "email=a%40example.com").await;
    assert_eq!((missing.status, missing.json()), (403, not_authorized()));
    assert!(sandbox.contacts().is_empty(), "nothing written");
    // The right key is served as usual; v3 keeps its own 403.
    assert_eq!(
        sync(&url, "email=a%40example.com").await.json()["result_code"],
        1
    );
    let v3 = users_me(&url, Some("wrong-key")).await;
    assert_eq!((v3.status, v3.json()), (403, forbidden()));
    assert_eq!(view(&url, "/sandbox/state").await["bad_key_status"], 403);
    // The default is ActiveCampaign's 200.
    let (_, default_url) = start().await;
    assert_eq!(
        view(&default_url, "/sandbox/state").await["bad_key_status"],
        200
    );
}

#[tokio::test]
async fn users_me_answers_the_right_key_and_forbids_any_other() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_rate_limit(5);
    let url = serve(&sandbox).await;
    let me = users_me(&url, Some(LOCAL_API_KEY)).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        json!({"user": {"id": "1", "username": "admin", "firstName": "Sandbox", "lastName": "Admin", "email": "admin@example.com"}})
    );
    for key in [Some("wrong-key"), None] {
        let refused = users_me(&url, key).await;
        assert_eq!(
            (refused.status, refused.json()),
            (403, forbidden()),
            "{key:?}"
        );
    }
    // It counts against the 5 requests/second like any v3 call (one used above; a wrong key
    // is not the account's and is not counted)...
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(users_me(&url, Some(LOCAL_API_KEY)).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(me.headers["ratelimit-limit"], "5");
    // ...and faults apply to it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    post_fault(&url, r#"{"kind":"status","status":503,"count":1}"#).await;
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 503);
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 200);
}

#[tokio::test]
async fn a_wrong_key_fault_refuses_the_right_key_everywhere_until_cleared() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    // For the next two API requests, then normal answers.
    let on = post_fault(&url, r#"{"kind":"wrong_key","count":2}"#).await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(
        view(&url, "/sandbox/faults").await["fault"],
        json!({"kind": "wrong_key", "count": 2})
    );
    let v1 = sync(&url, "email=k%40example.com").await;
    assert_eq!((v1.status, v1.json()), (200, not_authorized()));
    let v3 = users_me(&url, Some(LOCAL_API_KEY)).await;
    assert_eq!((v3.status, v3.json()), (403, forbidden()));
    assert!(
        sandbox.contacts().is_empty(),
        "a refused key writes nothing"
    );
    assert_eq!(
        sync(&url, "email=k%40example.com").await.json()["result_code"],
        1
    );
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 200);
    assert_eq!(view(&url, "/sandbox/faults").await["fault"], Value::Null);

    // Until cleared (a revoked key): every API, the importer's too.
    post_fault(&url, r#"{"kind":"wrong_key"}"#).await;
    for _ in 0..3 {
        let v1 = sync(&url, "email=r%40example.com").await;
        assert_eq!((v1.status, v1.json()), (200, not_authorized()));
    }
    let viewed = answer(
        reqwest::Client::new()
            .get(format!(
                "{url}/admin/api.php?api_action=contact_view_email&api_output=json&email=k%40example.com"
            ))
            .header("API-TOKEN", LOCAL_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(viewed.json(), not_authorized());
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 403);
    let (status, body) = import(&url, json!({"contacts": [contact("i@example.com")]})).await;
    assert_eq!((status, body), (403, forbidden()));
    let info = answer(
        reqwest::Client::new()
            .get(format!("{url}/api/3/import/info?batchId=x"))
            .header("Api-Token", LOCAL_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((info.status, info.json()), (403, forbidden()));
    assert_eq!(
        sandbox.contacts().keys().collect::<Vec<_>>(),
        ["k@example.com"],
        "nothing more written"
    );
    let cleared = reqwest::Client::new()
        .delete(format!("{url}/sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(
        sync(&url, "email=r%40example.com").await.json()["result_code"],
        1
    );
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 200);

    // With the old 403 shape configured, the fault answers v1 with 403 too.
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_bad_key_status(http::StatusCode::FORBIDDEN);
    let url = serve(&sandbox).await;
    sandbox.set_fault(Some(
        Fault::from_json(br#"{"kind":"wrong_key","count":1}"#).unwrap(),
    ));
    let v1 = sync(&url, "email=k%40example.com").await;
    assert_eq!((v1.status, v1.json()), (403, not_authorized()));
    assert_eq!(sync(&url, "email=k%40example.com").await.status, 200);
}

#[tokio::test]
async fn the_key_rotates_at_run_time() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    let rotate = |body: &'static str| {
        let url = url.clone();
        async move {
            answer(
                reqwest::Client::new()
                    .post(format!("{url}/sandbox/api-key"))
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(rotate(r#"{"api_key":"rotated-key"}"#).await.status, 200);
    let old = sync(&url, "email=o%40example.com").await;
    assert_eq!((old.status, old.json()), (200, not_authorized()));
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 403);
    let new = sync_with_key(&url, "rotated-key", "email=o%40example.com").await;
    assert_eq!(new.json()["result_code"], 1);
    assert_eq!(users_me(&url, Some("rotated-key")).await.status, 200);
    assert!(sandbox.contacts().contains_key("o@example.com"));
    for bad in ["", "{}", r#"{"api_key":""}"#, r#"{"api_key":7}"#] {
        assert_eq!(rotate(bad).await.status, 400, "{bad}");
    }
    sandbox.set_api_key(LOCAL_API_KEY);
    assert_eq!(users_me(&url, Some(LOCAL_API_KEY)).await.status, 200);
}

#[tokio::test]
async fn tags_add_up_and_lists_follow_status_including_re_subscribing() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    sync(&url, "email=t%40example.com&tags=a%2C+b&p[1]=1&status[1]=1").await;
    sync(&url, "email=t%40example.com&tags=c&p[1]=1&status[1]=2").await;
    let t = &sandbox.contacts()["t@example.com"];
    assert_eq!(
        t.tags.iter().map(String::as_str).collect::<Vec<_>>(),
        ["a", "b", "c"],
        "added, not replaced"
    );
    assert_eq!(t.lists[&1], 2, "status=2 unsubscribes");
    // ActiveCampaign's documented warning: status=1 re-subscribes someone who unsubscribed.
    sync(&url, "email=t%40example.com&p[1]=1&status[1]=1").await;
    assert_eq!(sandbox.contacts()["t@example.com"].lists[&1], 1);
    // A blank status is active; a sync without lists leaves them alone.
    sync(&url, "email=t%40example.com&p[2]=2").await;
    sync(&url, "email=t%40example.com&first_name=T").await;
    let t = &sandbox.contacts()["t@example.com"];
    assert_eq!((t.lists[&1], t.lists[&2]), (1, 1));
    // contact_view_email reports the statuses the client's no-re-subscribe guard reads.
    let viewed = answer(
        reqwest::Client::new()
            .get(format!(
                "{url}/admin/api.php?api_action=contact_view_email&api_output=json&email=T%40example.com"
            ))
            .header("API-TOKEN", LOCAL_API_KEY)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(viewed.json()["lists"]["2"]["status"], "1");
}

#[tokio::test]
async fn custom_fields_resolve_by_id_and_personalization_tag_from_the_seed() {
    let _logs = logs::checked();
    let seed = Seed::from_toml(
        "[[lists]]\nid = 5\nname = \"VIP\"\n[[fields]]\nid = 7\nperstag = \"FAVOURITE_COLOUR\"\ntitle = \"Colour\"\n[[fields]]\nid = 8\nperstag = \"SIZE\"",
    )
    .unwrap();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_seed(seed);
    let url = serve(&sandbox).await;
    let answer = sync(
        &url,
        "email=f%40example.com&field%5B%25favourite_colour%25%2C0%5D=Blue&field%5B8%2C0%5D=M&field%5B99%2C0%5D=x&field%5B%25NOPE%25%2C0%5D=y&p%5B5%5D=5",
    )
    .await;
    assert_eq!(
        answer.json()["result_code"],
        1,
        "unknown fields are skipped, the contact saved"
    );
    let f = &sandbox.contacts()["f@example.com"];
    assert_eq!(f.fields.get(&7).map(String::as_str), Some("Blue"));
    assert_eq!(f.fields.get(&8).map(String::as_str), Some("M"));
    assert_eq!(f.fields.len(), 2);
    assert_eq!(f.lists[&5], 1);
    let state = view(&url, "/sandbox/state").await;
    let ignored = state["ignored"].to_string();
    assert!(
        ignored.contains("99") && ignored.contains("%NOPE%"),
        "{ignored}"
    );
    // The bundled mapping's fields are not in this account: list 1 does not exist either.
    let refused = sync(&url, "email=f%40example.com&p[1]=1&tags=x").await;
    assert_eq!(refused.status, 200);
    assert_eq!(refused.json()["result_code"], 0);
    assert!(
        !refused.json()["result_message"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert!(
        sandbox.contacts()["f@example.com"].tags.is_empty(),
        "a refused sync writes nothing"
    );
}

#[tokio::test]
async fn validation_failures_are_result_code_0_with_a_message_in_the_accounts_language() {
    let _logs = logs::checked();
    for language in [Language::English, Language::Portuguese] {
        let sandbox = Sandbox::new(LOCAL_API_KEY, language).quiet();
        let url = serve(&sandbox).await;
        let bad_email = sync(&url, "email=not-an-email").await;
        let no_type = answer(
            reqwest::Client::new()
                .post(format!("{url}{V1_SYNC}"))
                .header("API-TOKEN", LOCAL_API_KEY)
                .body("email=ok%40example.com")
                .send()
                .await
                .unwrap(),
        )
        .await;
        let no_list = sync(&url, "email=ok%40example.com&p[42]=42").await;
        let added = sync(&url, "email=ok%40example.com").await;
        let updated = sync(&url, "email=ok%40example.com").await;
        for refused in [&bad_email, &no_type, &no_list] {
            assert_eq!(
                (refused.status, refused.json()["result_code"].clone()),
                (200, json!(0))
            );
        }
        assert!(sandbox.contacts().len() == 1, "only the valid sync wrote");
        let messages: Vec<String> = [&bad_email, &no_list, &added, &updated]
            .iter()
            .map(|a| a.json()["result_message"].as_str().unwrap().to_string())
            .collect();
        let portuguese = [
            "O endereço de e-mail do contato não é válido.",
            "A lista de ID 42 não existe.",
            "Contato adicionado",
            "Contato atualizado",
        ];
        let english = [
            "Contact Email Address is not valid.",
            "List ID 42 does not exist.",
            "Contact added",
            "Contact updated",
        ];
        let expected = if language == Language::Portuguese {
            portuguese
        } else {
            english
        };
        assert_eq!(messages, expected);
    }
}

#[tokio::test]
async fn over_five_requests_a_second_is_429_with_retry_after_in_whole_seconds() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_rate_limit(5);
    let url = serve(&sandbox).await;
    let mut answers = Vec::new();
    for i in 0..8 {
        answers.push(sync(&url, &format!("email=r{i}%40example.com")).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(&statuses[..5], [200; 5], "a burst of five is allowed");
    assert!(statuses[5..].contains(&429), "{statuses:?}");
    let limited = answers.iter().find(|a| a.status == 429).unwrap();
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=60).contains(&retry_after),
        "whole seconds: {retry_after}"
    );
    assert_eq!(limited.headers["ratelimit-limit"], "5");
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
    assert!(limited.json()["errors"][0]["title"].is_string());
    assert_eq!(answers[0].headers["ratelimit-limit"], "5");
    let refused = 8 - statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        sandbox.contacts().len(),
        8 - refused,
        "a refused request writes nothing"
    );
    // A wrong key is not the account's and is not counted; the views are not limited.
    let wrong = sync_with_key(&url, "wrong", "email=w%40example.com").await;
    assert_eq!((wrong.status, wrong.json()), (200, not_authorized()));
    view(&url, "/sandbox/contacts").await;
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(sync(&url, "email=later%40example.com").await.status, 200);
}

#[tokio::test]
async fn faults_switch_on_for_the_next_requests_and_off() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    // A status for the next two requests, then normal answers.
    let on = post_fault(
        &url,
        r#"{"kind":"status","status":503,"count":2,"retry_after":3}"#,
    )
    .await;
    assert_eq!(on.status, 200);
    assert_eq!(view(&url, "/sandbox/faults").await["fault"]["count"], 2);
    for _ in 0..2 {
        let failed = sync(&url, "email=s%40example.com").await;
        assert_eq!(failed.status, 503);
        assert_eq!(failed.headers["retry-after"], "3");
    }
    assert!(
        sandbox.contacts().is_empty(),
        "a status fault handles nothing"
    );
    assert_eq!(sync(&url, "email=s%40example.com").await.status, 200);
    assert_eq!(view(&url, "/sandbox/faults").await["fault"], Value::Null);

    // An empty body, though the contact is saved (as ActiveCampaign has been seen to do).
    post_fault(&url, r#"{"kind":"empty","count":1}"#).await;
    let empty = sync(&url, "email=e%40example.com").await;
    assert_eq!((empty.status, empty.text.as_str()), (200, ""));
    assert!(sandbox.contacts().contains_key("e@example.com"));

    // An HTML error page, not JSON, until cleared.
    post_fault(&url, r#"{"kind":"html"}"#).await;
    for _ in 0..3 {
        let html = sync(&url, "email=h%40example.com").await;
        assert_eq!(html.status, 502);
        assert!(
            html.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(html.text.starts_with("<html>") && html.json().is_null());
    }
    assert_eq!(
        view(&url, "/sandbox/contacts").await["contacts"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "views are never faulted"
    );
    let cleared = reqwest::Client::new()
        .delete(format!("{url}/sandbox/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(sync(&url, "email=h%40example.com").await.status, 200);

    // A slow answer, then handled.
    post_fault(&url, r#"{"kind":"slow","delay_ms":400,"count":1}"#).await;
    let started = std::time::Instant::now();
    assert_eq!(
        sync(&url, "email=slow%40example.com").await.json()["result_code"],
        1
    );
    assert!(started.elapsed() >= Duration::from_millis(400));

    // The importer's endpoints are faulted too; a bad fault is refused and names why.
    post_fault(&url, r#"{"kind":"status","status":500,"count":1}"#).await;
    assert_eq!(
        import(&url, json!({"contacts": [contact("i@example.com")]}))
            .await
            .0,
        500
    );
    let bad = post_fault(&url, r#"{"kind":"slow"}"#).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"].as_str().unwrap().contains("delay_ms"));
}

#[tokio::test]
async fn read_only_views_show_contacts_lists_tags_fields_and_imports() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_seed(Seed::bundled());
    let url = serve(&sandbox).await;
    sync(
        &url,
        "email=v%40example.com&first_name=Vi&tags=shopify%2C+vip&field%5B%25LAST_ORDER%25%2C0%5D=%231001&p[2]=2&status[2]=1",
    )
    .await;
    let contacts = view(&url, "/sandbox/contacts").await["contacts"].clone();
    let v = contacts
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["email"] == "v@example.com")
        .unwrap()
        .clone();
    assert_eq!(v["first_name"], "Vi");
    assert_eq!(v["tags"], json!(["shopify", "vip"]));
    assert_eq!(
        v["lists"],
        json!([{"id": 2, "name": "Customers", "status": "active"}])
    );
    assert_eq!(
        v["fields"],
        json!([{"id": 4, "perstag": "%LAST_ORDER%", "title": "Last order number", "value": "#1001"}])
    );
    let lists = view(&url, "/sandbox/lists").await["lists"].clone();
    // The seed's jon@example.com left Customers; mary@example.com left the Newsletter.
    assert_eq!(
        lists,
        json!([{"id": 1, "name": "Newsletter", "active": 0, "unsubscribed": 1},
               {"id": 2, "name": "Customers", "active": 1, "unsubscribed": 1}])
    );
    let tags = view(&url, "/sandbox/tags").await["tags"].clone();
    assert!(
        tags.as_array()
            .unwrap()
            .contains(&json!({"tag": "vip", "contacts": 1}))
    );
    let fields = view(&url, "/sandbox/fields").await["fields"].clone();
    assert!(fields.as_array().unwrap().contains(
        &json!({"id": 4, "perstag": "%LAST_ORDER%", "title": "Last order number", "values": 1})
    ));
    let (_, queued) = import(&url, json!({"contacts": [contact("bulk@example.com")]})).await;
    let state = view(&url, "/sandbox/state").await;
    assert_eq!(state["contacts"].as_array().unwrap().len(), 3);
    let batch_ids = |imports: &Value| -> Vec<Value> {
        imports
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["batch_id"].clone())
            .collect()
    };
    // The seed's finished import, then the one just queued.
    let seeded_import = json!("0641fbdd-5ee4-4c1c-9b6a-5b3f8d1c2e10");
    assert_eq!(batch_ids(&state["imports"]).len(), 2);
    assert!(batch_ids(&state["imports"]).contains(&queued["batchId"]));
    assert!(batch_ids(&state["imports"]).contains(&seeded_import));
    assert_eq!(
        batch_ids(&view(&url, "/sandbox/imports").await["imports"]),
        batch_ids(&state["imports"])
    );
    assert_eq!(
        info(&url, "0641fbdd-5ee4-4c1c-9b6a-5b3f8d1c2e10").await["status"],
        "completed"
    );
    assert_eq!(
        (
            state["rate_limit_per_second"].clone(),
            state["fault"].clone()
        ),
        (json!(0), Value::Null)
    );
    // Read-only: nothing else is served there.
    let post = reqwest::Client::new()
        .post(format!("{url}/sandbox/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

/// The bundled seed, as `ac-sandbox` starts by default.
async fn seeded() -> (Sandbox, String) {
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_seed(Seed::bundled());
    let url = serve(&sandbox).await;
    (sandbox, url)
}

#[tokio::test]
async fn the_webhook_function_never_re_subscribes_except_on_an_opt_in_route() {
    let _logs = logs::checked();
    let (sandbox, url) = seeded().await;
    let app = app_for_url(&url);
    // jon@example.com left Customers (list 2); an order is not an opt-in.
    let order = send_event(&app, "shop-orders-paid").await;
    assert_eq!(order.json_body()["status"], "synced", "{}", order.body);
    let jon = &sandbox.contacts()["jon@example.com"];
    assert_eq!(
        jon.lists.get(&2),
        Some(&2),
        "still unsubscribed from Customers"
    );
    assert_eq!(jon.lists.get(&1), Some(&1), "the newsletter, with consent");
    assert_eq!(
        jon.fields.get(&4).map(String::as_str),
        Some("#9999"),
        "%LAST_ORDER% landed"
    );
    assert_eq!(
        jon.fields.get(&1).map(String::as_str),
        Some("403.00 USD"),
        "field 1 updated"
    );
    // mary@example.com left the Newsletter (list 1); signing up again is an explicit opt-in.
    let signup = send_event(&app, "newsletter-signup").await;
    assert_eq!(signup.status, 303, "{}", signup.body);
    let mary = &sandbox.contacts()["mary@example.com"];
    assert_eq!(
        mary.lists.get(&1),
        Some(&1),
        "re-subscribed by her own sign-up"
    );
    assert_eq!(mary.fields.get(&2).map(String::as_str), Some("/blog/post"));
    assert_eq!(
        mary.fields.get(&3).map(String::as_str),
        Some("||rockets||math||")
    );
    assert!(mary.tags.contains("early-adopter") && mary.tags.contains("newsletter"));
}

#[tokio::test]
async fn the_client_rides_out_the_rate_limit_and_every_fault() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_rate_limit(5);
    let url = serve(&sandbox).await;
    // The client in the tests paces at 1000/s, so the sandbox's 429s are what hold it back.
    let app = app_for_url(&url);
    let requests: Vec<InboundRequest> = (0..12)
        .map(|i| form_webhook(&format!("burst{i}@example.com")))
        .collect();
    let answers = futures_util::future::join_all(requests.iter().map(|r| send(&app, r))).await;
    for answer in &answers {
        assert_eq!(answer.json_body()["status"], "synced", "{}", answer.body);
    }
    assert_eq!(sandbox.contacts().len(), 12);
    let refused = view(&url, "/sandbox/state").await["rate_limited_requests"].clone();
    assert!(
        refused.as_u64().unwrap() > 0,
        "the burst met the limit: {refused}"
    );

    for (fault, email) in [
        (
            r#"{"kind":"status","status":503,"count":3}"#,
            "after-503@example.com",
        ),
        (
            r#"{"kind":"status","status":500,"count":1}"#,
            "after-500@example.com",
        ),
        (r#"{"kind":"html","count":2}"#, "after-html@example.com"),
        (r#"{"kind":"empty","count":1}"#, "after-empty@example.com"),
        // Longer than the test client's 2 s call timeout: the call is retried.
        (
            r#"{"kind":"slow","delay_ms":2300,"count":1}"#,
            "after-slow@example.com",
        ),
    ] {
        after_fault(&sandbox, &app, fault, email).await;
    }
}

/// One webhook with `fault` switched on: synced all the same, the contact written.
async fn after_fault(
    sandbox: &Sandbox,
    app: &ac_webhook_sync::functions::webhook::WebhookApp,
    fault: &str,
    email: &str,
) {
    sandbox.set_fault(Some(Fault::from_json(fault.as_bytes()).unwrap()));
    let request = form_webhook(email);
    let answer = send(app, &request).await;
    assert_eq!(
        answer.json_body()["status"],
        "synced",
        "{fault}: {}",
        answer.body
    );
    assert!(sandbox.contacts().contains_key(email), "{fault}");
}

#[tokio::test]
async fn the_client_at_its_default_pace_never_meets_the_rate_limit() {
    let _logs = logs::checked();
    let sandbox = Sandbox::new(LOCAL_API_KEY, Language::English)
        .quiet()
        .with_rate_limit(5);
    let url = serve(&sandbox).await;
    let app = app_with(
        ac_webhook_sync::secret::FixedSecret(local_secret_json(&url)),
        ac_webhook_sync::activecampaign::ActiveCampaignClient::new(Default::default()).unwrap(),
        1 << 20,
    );
    let requests: Vec<InboundRequest> = (0..12)
        .map(|i| form_webhook(&format!("paced{i}@example.com")))
        .collect();
    let answers = futures_util::future::join_all(requests.iter().map(|r| send(&app, r))).await;
    assert!(answers.iter().all(|a| a.json_body()["status"] == "synced"));
    assert_eq!(sandbox.contacts().len(), 12);
    assert_eq!(
        view(&url, "/sandbox/state").await["rate_limited_requests"],
        0,
        "5 calls a second, evenly spaced, stay within ActiveCampaign's limit"
    );
}

/// A JSON post to the plain form route.
fn form_webhook(email: &str) -> InboundRequest {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    InboundRequest::post(
        "/webhooks/form?token=local-form-token",
        headers,
        json!({ "email": email }).to_string(),
    )
}

#[tokio::test]
async fn imports_can_be_made_to_fail_be_interrupted_or_lose_their_callback() {
    let _logs = logs::checked();
    let (sandbox, url) = start().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let set = reqwest::Client::new()
        .post(format!("{url}/sandbox/import-faults"))
        .body(r#"{"fail": 1, "interrupt": 1, "lose_callbacks": 2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(set.status(), 200);
    let body = |n: usize| {
        let contacts: Vec<Value> = (0..10)
            .map(|i| contact(&format!("fault{n}-{i}@example.com")))
            .collect();
        json!({"contacts": contacts, "callback": {"url": format!("{}/cb", receiver.uri()), "requestType": "POST",
               "detailed_results": "true", "params": [], "headers": []}})
    };
    let mut ends = Vec::new();
    for n in 0..3 {
        let (status, answer) = import(&url, body(n)).await;
        assert_eq!(status, 200, "{answer}");
        let batch = answer["batchId"].as_str().unwrap().to_string();
        let mut end = Value::Null;
        for _ in 0..100 {
            end = info(&url, &batch).await["status"].clone();
            if matches!(end.as_str(), Some("completed" | "failed" | "interrupted")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ends.push(end);
    }
    assert_eq!(
        ends,
        [json!("failed"), json!("interrupted"), json!("completed")]
    );
    // A failed or interrupted import writes no contact; the completed one does.
    let contacts = sandbox.contacts();
    assert!(
        !contacts
            .keys()
            .any(|e| e.starts_with("fault0-") || e.starts_with("fault1-"))
    );
    assert_eq!(
        contacts.keys().filter(|e| e.starts_with("fault2-")).count(),
        10
    );
    // Two callbacks were lost: only the third import called back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);
}
